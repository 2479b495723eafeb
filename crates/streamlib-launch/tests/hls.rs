//! `hlssink` from pipeline text: a test pattern streamed into a folder FFmpeg plays back, and
//! the policy's refusals naming the property.
#![cfg(all(feature = "hls", feature = "video"))]

mod support;

use streamlib_launch::{Policy, Registry, parse, validate_with};
use streamlib_test_support::media::{output, temp_dir};

#[test]
fn testpattern_into_hlssink_from_text_plays_in_ffmpeg() {
    let dir = temp_dir("launch-hls", "vod");
    let text = format!(
        "testpattern size=320x240 ! hlssink location={} playlist=vod target-duration=1",
        dir.display()
    );
    support::run_free(&text, Some(60));
    let playlist = std::fs::read_to_string(dir.join("index.m3u8"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    assert_eq!(
        playlist.matches("#EXTINF:1.00000,").count(),
        2,
        "{playlist}"
    );
    let counted = output(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
            &dir.join("index.m3u8").to_string_lossy(),
        ],
    );
    let counted = String::from_utf8_lossy(&counted);
    assert_eq!(counted.lines().next(), Some("320,240,60"), "{counted}");
}

#[cfg(feature = "audio")]
#[test]
fn audio_from_text_becomes_an_aac_track() {
    let dir = temp_dir("launch-hls", "audio");
    let text = format!(
        "testpattern size=320x240 ! hlssink name=h location={} playlist=event target-duration=1  \
         audiotestsrc ! h.audio",
        dir.display()
    );
    support::run_free(&text, Some(60));
    let streams = output(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "csv=p=0",
            &dir.join("index.m3u8").to_string_lossy(),
        ],
    );
    let streams = String::from_utf8_lossy(&streams);
    assert!(
        streams.contains("h264") && streams.contains("aac"),
        "{streams}"
    );
}

#[test]
fn bad_properties_are_refused_naming_them() {
    let dir = temp_dir("launch-hls", "bad");
    let d = dir.display();
    support::assert_refused_naming(&[
        (
            &format!("testpattern ! hlssink location={d} part-duration=0.2 segment-format=ts"),
            "part-duration",
        ),
        (
            &format!("testpattern ! hlssink location={d} serve=not-an-address"),
            "serve",
        ),
        (
            &format!("testpattern ! hlssink location={d} serve-path=nope"),
            "serve-path",
        ),
        ("testpattern ! hlssink", "location"),
    ]);
}

#[test]
fn the_policy_refuses_a_folder_outside_it_and_a_public_address() {
    let dir = temp_dir("launch-hls", "policy");
    let policy = Policy::confined()
        .allow_write(&dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::builtin();
    let check = |text: &str| {
        let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        validate_with(&registry, &desc, &policy).map_err(|e| e.to_string())
    };
    let inside = format!("testpattern ! hlssink location={}/live", dir.display());
    check(&inside).unwrap_or_else(|e| panic!("{inside}: {e}"));
    let served = format!("{inside} serve=127.0.0.1:8554");
    check(&served).unwrap_or_else(|e| panic!("{served}: {e}"));
    for (text, property) in [
        (
            "testpattern ! hlssink location=/etc/streamlib-hls".to_owned(),
            "location",
        ),
        (format!("{inside} serve=0.0.0.0:8554"), "serve"),
    ] {
        let error = check(&text)
            .err()
            .unwrap_or_else(|| panic!("{text} was accepted"));
        assert!(error.contains(property), "{text}: {error}");
    }
    assert!(!dir.join("live").exists(), "validating creates nothing");
}
