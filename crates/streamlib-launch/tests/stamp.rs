//! `testpattern stamp=true` through a real lossy codec: the frame stamp that glass-to-glass
//! latency is measured with must read back from an H.264 file FFmpeg decodes, with the frame
//! numbers in order and the wall-clock times rising.
#![cfg(all(feature = "file", feature = "video"))]

mod support;

use streamlib_handlers_video::stamp;
use streamlib_test_support::media;

#[test]
fn stamps_read_back_after_h264_and_ffmpeg_decoding() {
    let dir = media::temp_dir("stamp", "h264");
    let path = dir.join("stamped.mp4");
    let (width, height) = (640usize, 360usize);
    support::run_free(
        &format!(
            "testpattern size={width}x{height} stamp=true ! filewriter location={}",
            path.display()
        ),
        Some(30),
    );
    let raw = media::output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path.to_str().unwrap_or_else(|| panic!("utf-8 path")),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-",
        ],
    );
    let frame_len = width * height * 4;
    let stamps: Vec<stamp::Stamp> = raw
        .chunks_exact(frame_len)
        .map(|frame| {
            stamp::read(frame, width * 4, width as u32)
                .unwrap_or_else(|| panic!("a decoded frame has no readable stamp"))
        })
        .collect();
    assert_eq!(stamps.len(), 30, "frames in the file");
    for (n, pair) in stamps.windows(2).enumerate() {
        assert_eq!(pair[1].frame, pair[0].frame + 1, "frame {n} -> {}", n + 1);
        assert!(pair[1].unix_ms >= pair[0].unix_ms, "time went back at {n}");
    }
    let now = stamp::now_unix_ms();
    assert!(
        stamps[0].unix_ms <= now && now - stamps[0].unix_ms < 120_000,
        "the stamp's time {} is not this run's ({now})",
        stamps[0].unix_ms
    );
    let _ = std::fs::remove_dir_all(&dir);
}
