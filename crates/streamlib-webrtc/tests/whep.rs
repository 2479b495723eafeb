//! webrtcsink against aiortc, an independent WebRTC stack: frames arrive with the test
//! pattern's size and bar colours, audio arrives as Opus at 48 kHz, several viewers watch at
//! once and one leaving does not disturb the others.
#![allow(clippy::print_stderr, reason = "tests print the figures they measured")]

mod whep_common;

use std::time::Duration;

use streamlib_codec::encode::VideoCodec;
use streamlib_webrtc::WebRtcSinkConfig;
use whep_common::{assert_bars, finish, loopback, serve, spawn_viewer, view, wait_for};

#[test]
fn aiortc_receives_vp8_bars_and_opus() {
    let served = serve(640, 360, 30, loopback(), true);
    // Nothing is encoded before anyone watches.
    std::thread::sleep(Duration::from_millis(500));
    let idle = served.stats.snapshot();
    assert!(idle.frames_in > 0, "{idle:?}");
    assert_eq!(idle.frames_encoded, 0, "encoded without a viewer: {idle:?}");

    let result = view(&served.url, &["--frames", "60"]);
    assert_eq!(result["status"], 201, "{result}");
    assert!(result["frames"].as_u64() >= Some(60), "{result}");
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(640), Some(360)),
        "{result}"
    );
    assert_bars(&result, 24);
    assert!(
        result["audio_frames"].as_u64().unwrap_or(0) > 10,
        "{result}"
    );
    assert_eq!(result["audio_rate"], 48000, "{result}");
    assert_eq!(result["delete_status"], 200, "{result}");
    let s = served.stats.snapshot();
    assert!(
        s.frames_encoded >= 60 && s.keyframes >= 1 && s.audio_packets > 10,
        "{s:?}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || served.stats.snapshot().viewers
            == 0),
        "the DELETEd viewer is gone: {:?}",
        served.stats.snapshot()
    );
    eprintln!("aiortc VP8: {result}\nsink: {:?}", served.stats.snapshot());
}

#[test]
fn aiortc_receives_h264() {
    let config = WebRtcSinkConfig {
        codec: VideoCodec::H264,
        ..loopback()
    };
    let served = serve(640, 360, 30, config, false);
    let result = view(&served.url, &["--frames", "45", "--no-audio"]);
    assert!(result["frames"].as_u64() >= Some(45), "{result}");
    assert_eq!(result["width"], 640, "{result}");
    assert_bars(&result, 24);
    eprintln!("aiortc H.264: {result}");
}

#[test]
fn viewers_watch_at_once_and_one_leaving_spares_the_others() {
    let served = serve(640, 360, 30, loopback(), false);
    let stayers: Vec<_> = (0..3)
        .map(|_| {
            spawn_viewer(
                &served.url,
                &["--frames", "30", "--hold", "4", "--no-audio"],
            )
        })
        .collect();
    // This one receives a little, then vanishes without a DELETE (killed): its ICE times out.
    let mut leaver = spawn_viewer(&served.url, &["--frames", "100000", "--no-audio"]);
    assert!(
        wait_for(Duration::from_secs(60), || served
            .stats
            .snapshot()
            .viewers_connected
            >= 4),
        "four viewers connect: {:?}",
        served.stats.snapshot()
    );
    std::thread::sleep(Duration::from_secs(1));
    leaver.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = leaver.wait();
    for child in stayers {
        let result = finish(child);
        assert!(result["frames"].as_u64() >= Some(30), "{result}");
        assert_bars(&result, 24);
        // Frames kept coming during the hold, after the other viewer vanished: at 30 fps over
        // 4 s, well over a few dozen even on a loaded machine.
        assert!(result["hold_frames"].as_u64().unwrap_or(0) > 30, "{result}");
    }
    // The vanished viewer is dropped once its ICE times out.
    assert!(
        wait_for(Duration::from_secs(40), || served.stats.snapshot().viewers
            == 0),
        "every viewer dropped in the end: {:?}",
        served.stats.snapshot()
    );
    eprintln!("sink: {:?}", served.stats.snapshot());
}
