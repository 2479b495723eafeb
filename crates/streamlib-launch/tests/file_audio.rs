//! Audio through files from pipeline text: `filereader`'s `audio` output and `filewriter`'s
//! `audio` input by name, the track's rate and channels taken from the negotiated caps (or
//! forced by `audio-rate` / `audio-channels`), checked with ffprobe and FFmpeg's `volumedetect`
//! on the written files, and the errors for a container that cannot hold audio.
#![cfg(all(feature = "file", feature = "video", feature = "audio"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; measured figures are printed for the record (--nocapture)"
)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::media;

/// One video frame at 30 fps, in seconds: the duration tolerance.
const FRAME_S: f64 = 1.0 / 30.0;

fn ffmpeg(args: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg {args:?}: {stderr}");
    stderr
}

/// 2 s of `testsrc` 320x240 at 30 fps (H.264) and a 440 Hz sine at 44.1 kHz mono (AAC) in
/// MP4: a rate and channel count no default would pick, so the written track must follow
/// the negotiation.
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("av.mp4");
    ffmpeg(&[
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-ac",
        "1",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
    path
}

/// ffprobe's fields of the first stream of `kind` (`a` or `v`).
fn probe(path: &Path, kind: &str) -> HashMap<String, String> {
    let out = media::output(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            &format!("{kind}:0"),
            "-show_entries",
            "stream=codec_name,sample_rate,channels,duration,start_time",
            "-of",
            "default=nw=1",
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn seconds(fields: &HashMap<String, String>, key: &str) -> f64 {
    fields[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key}: {fields:?}"))
}

/// FFmpeg's `volumedetect` mean volume of the audio, in dB.
fn mean_volume_db(path: &Path) -> f64 {
    let log = ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-map",
        "0:a",
        "-af",
        "volumedetect",
        "-f",
        "null",
        "-",
    ]);
    let line = log
        .lines()
        .find(|l| l.contains("mean_volume:"))
        .unwrap_or_else(|| panic!("no mean_volume in {log}"));
    line.split("mean_volume:")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(" dB")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn reader_audio_through_volume_into_the_writer_by_name() {
    let dir = media::temp_dir("launch-file-audio", "volume");
    let src = source(&dir);
    let out = dir.join("out.mp4");
    let text = format!(
        "filereader location={} name=r pacing=fast ! filewriter location={} name=w  \
         r.audio ! volume volume=0.5 ! w.audio",
        src.display(),
        out.display()
    );
    let graph = support::run_free(&text, None);
    let audio_edges: Vec<&str> = graph
        .edges
        .iter()
        .filter(|e| e.caps.starts_with("audio"))
        .map(|e| e.caps.as_str())
        .collect();
    assert_eq!(audio_edges, ["audio 44100Hz 1ch"; 2], "{:?}", graph.edges);

    let (audio, video) = (probe(&out, "a"), probe(&out, "v"));
    eprintln!("written: audio {audio:?}, video {video:?}");
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "44100", "the negotiated rate");
    assert_eq!(audio["channels"], "1", "the negotiated channels");
    let (audio_s, video_s) = (seconds(&audio, "duration"), seconds(&video, "duration"));
    assert!((video_s - 2.0).abs() <= FRAME_S, "video {video_s} s");
    assert!(
        (audio_s - 2.0).abs() <= FRAME_S,
        "audio {audio_s} s, video {video_s} s"
    );

    // volume=0.5 is -6.02 dB; both files went through AAC once from the same sine.
    let (before, after) = (mean_volume_db(&src), mean_volume_db(&out));
    eprintln!("mean volume: source {before} dB, written {after} dB");
    assert!(
        (after - before + 6.02).abs() < 0.2,
        "source {before} dB, written {after} dB"
    );
}

#[test]
fn audiotestsrc_beside_a_testpattern_and_forced_track_formats() {
    let dir = media::temp_dir("launch-file-audio", "testsrc");
    // Negotiated: audiotestsrc's 48 kHz stereo.
    let negotiated = dir.join("negotiated.mkv");
    support::run_free(
        &format!(
            "testpattern size=320x240 ! filewriter location={} name=w  audiotestsrc ! w.audio",
            negotiated.display()
        ),
        Some(60),
    );
    // Forced: 44.1 kHz mono (swresample converts).
    let forced = dir.join("forced.mkv");
    support::run_free(
        &format!(
            "testpattern size=320x240 ! filewriter location={} name=w audio-rate=44100 \
             audio-channels=1  audiotestsrc ! w.audio",
            forced.display()
        ),
        Some(60),
    );
    for (path, codec, rate, channels) in [
        (&negotiated, "aac", "48000", "2"),
        (&forced, "aac", "44100", "1"),
    ] {
        let (audio, video) = (probe(path, "a"), probe(path, "v"));
        eprintln!("{}: audio {audio:?}, video {video:?}", path.display());
        assert_eq!(
            (
                audio["codec_name"].as_str(),
                audio["sample_rate"].as_str(),
                audio["channels"].as_str()
            ),
            (codec, rate, channels),
            "{}",
            path.display()
        );
        // Matroska states durations per file, not per stream: read the packets', from the
        // video's start (FFmpeg shifts the file by the AAC priming so that no timestamp is
        // negative: the video starts at 1024 samples, the primed audio at 0).
        let end = last_packet_end(path) - seconds(&video, "start_time");
        assert!(
            (end - 2.0).abs() <= FRAME_S,
            "{}: ends at {end} s",
            path.display()
        );
    }
}

/// The end time (pts + duration) of the audio's last packet, in seconds.
fn last_packet_end(path: &Path) -> f64 {
    let text = media::probe(path, "a:0", "packet=pts_time,duration_time");
    let last = text.last().unwrap();
    let mut fields = last.split(',').map(|f| f.parse::<f64>().unwrap());
    fields.next().unwrap() + fields.next().unwrap_or(0.0)
}

/// The error building `text` must give (the run's, when the build succeeds and `at_start`).
fn failure(text: &str, at_start: bool) -> String {
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(5);
    let built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock));
    let err = match (built, at_start) {
        (Err(e), false) => e.to_string(),
        (Ok(mut built), true) => match built.runtime.run() {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text}: ran"),
        },
        (Err(e), true) => panic!("{text}: refused at build, not at start: {e}"),
        (Ok(_), false) => panic!("{text}: built"),
    };
    eprintln!("{err}");
    err
}

#[test]
fn a_container_without_audio_fails_naming_the_writer_and_the_file() {
    let dir = media::temp_dir("launch-file-audio", "errors");
    let y4m = dir.join("out.y4m");
    // Forced formats are checked when the writer is built.
    let err = failure(
        &format!(
            "testpattern size=64x48 ! filewriter location={} name=w audio-rate=48000 \
             audio-channels=2  audiotestsrc ! w.audio",
            y4m.display()
        ),
        false,
    );
    assert!(
        err.starts_with("w (filewriter)") && err.contains("out.y4m"),
        "{err}"
    );
    assert!(err.contains("cannot hold audio"), "{err}");

    // Negotiated formats are checked at start: the run fails, naming both.
    let err = failure(
        &format!(
            "testpattern size=64x48 ! filewriter location={} name=w  audiotestsrc ! w.audio",
            y4m.display()
        ),
        true,
    );
    assert!(err.contains("'w'") && err.contains("out.y4m"), "{err}");
    assert!(err.contains("cannot hold audio"), "{err}");

    // Opus does not go in MP4.
    let mp4 = dir.join("out.mp4");
    let err = failure(
        &format!(
            "testpattern size=64x48 ! filewriter location={} name=w audio-codec=opus  \
             audiotestsrc ! w.audio",
            mp4.display()
        ),
        false,
    );
    assert!(
        err.starts_with("w (filewriter)") && err.contains("out.mp4"),
        "{err}"
    );
    assert!(err.contains("cannot hold libopus"), "{err}");

    // Nor PCM.
    let err = failure(
        &format!(
            "testpattern size=64x48 ! filewriter location={} name=w audio-codec=pcm  \
             audiotestsrc ! w.audio",
            mp4.display()
        ),
        false,
    );
    assert!(err.contains("cannot hold pcm_s16le"), "{err}");
}
