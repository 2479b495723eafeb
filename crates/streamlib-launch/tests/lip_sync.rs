//! Lip sync through a file: `testpattern pattern=flash` (white on the first frame at or after
//! each clock second) beside `audiotestsrc wave=ticks` (a beep starting on each second),
//! written by `filewriter` for about 4 s, then decoded with the FFmpeg CLI. Video onsets (the
//! pts of each frame whose mean luma jumps to white) and audio onsets (the first sample over
//! a threshold after silence, placed with the audio stream's `start_time`) agree within 1 ms
//! (issue 15's bar), in each container and codec the writer offers: MP4 (AAC, its priming
//! hidden by the edit list), Matroska (AAC, the file shifted by the priming; FLAC and PCM,
//! without delay), WebM (Opus, its pre-skip in `CodecDelay`) and MOV (PCM).
#![cfg(all(feature = "file", feature = "video", feature = "audio"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; measured offsets are printed for the record (--nocapture)"
)]

mod support;

use std::path::Path;

use streamlib_test_support::media;

/// Issue 15's bar for audio against video onsets, in seconds.
const MAX_OFFSET_S: f64 = 0.001;
/// 4 s at 30 fps and a few frames more, so the flash and the beep at 4 s are both written.
const TICKS: u64 = 125;
const WIDTH: usize = 160;
const HEIGHT: usize = 120;

/// [`media::beep_onsets`], checking on the way that, where nothing is dropped (MP4, whose
/// edit list already hides the AAC priming; AAC in Matroska, whose priming is decoded; FLAC;
/// PCM), the first decoded audio frame's pts and the stream's `start_time` agree. (Opus drops
/// its pre-skip, so its first decoded sample plays after `start_time`.)
fn audio_onsets(path: &Path) -> Vec<f64> {
    let start = media::probe_f64(path, "a:0", "frame=pts_time");
    let stream_start = media::probe_f64(path, "a:0", "stream=start_time");
    let codec = media::probe(path, "a:0", "stream=codec_name");
    if codec[0] != "opus" {
        assert!(
            (start - stream_start).abs() < 1e-6,
            "{}: first audio frame at {start} s, stream start_time {stream_start} s",
            path.display()
        );
    }
    media::beep_onsets(path)
}

/// Writes the flash and the ticks to `path` and returns (video onset, audio − video) for
/// each second.
fn record_and_measure(path: &Path, extra: &str) -> Vec<(f64, f64)> {
    let text = format!(
        "testpattern pattern=flash moving-box=false size={WIDTH}x{HEIGHT} ! \
         filewriter location={} name=w {extra}  audiotestsrc wave=ticks freq=1000 ! w.audio",
        path.display()
    );
    support::run_free(&text, Some(TICKS));
    let (video, audio) = (media::flash_onsets(path, WIDTH, HEIGHT), audio_onsets(path));
    eprintln!(
        "{}: start_time video {} s, audio {} s; onsets video {video:?}, audio {audio:?}",
        path.display(),
        media::probe_f64(path, "v:0", "stream=start_time"),
        media::probe_f64(path, "a:0", "stream=start_time"),
    );
    assert_eq!(video.len(), 5, "one flash per second, 0 ..= 4 s: {video:?}");
    assert_eq!(audio.len(), video.len(), "one beep per flash: {audio:?}");
    video
        .iter()
        .zip(&audio)
        .map(|(&v, &a)| (v, a - v))
        .collect()
}

/// Records `name` with the writer's `extra` properties, checks its audio is in `codec`, and
/// every beep within the bar of its flash.
fn assert_in_sync(name: &str, extra: &str, codec: &str) {
    let dir = media::temp_dir("launch-lip-sync", name);
    let path = dir.join(name);
    let offsets = record_and_measure(&path, extra);
    assert_eq!(
        media::probe(&path, "a:0", "stream=codec_name"),
        [codec],
        "{name}"
    );
    for &(video, offset) in &offsets {
        eprintln!(
            "{name}: flash at {video:.6} s, beep {:+.3} ms",
            offset * 1e3
        );
    }
    for (second, &(video, offset)) in offsets.iter().enumerate() {
        // Every flash on its second (the file's time zero is the first frame, at 0).
        assert!(
            (video - second as f64).abs() < 0.03,
            "{name}: flash {second} at {video} s"
        );
        assert!(
            offset.abs() < MAX_OFFSET_S,
            "{name}: beep {second} is {:+.3} ms from its flash",
            offset * 1e3
        );
    }
}

#[test]
fn flash_and_tick_stay_together_in_mp4_aac() {
    assert_in_sync("sync.mp4", "", "aac");
}

#[test]
fn flash_and_tick_stay_together_in_matroska_aac() {
    assert_in_sync("sync.mkv", "", "aac");
}

#[test]
fn flash_and_tick_stay_together_in_webm_opus() {
    assert_in_sync("sync.webm", "", "opus");
}

#[test]
fn flash_and_tick_stay_together_in_matroska_flac_and_pcm() {
    assert_in_sync("flac.mkv", "audio-codec=flac", "flac");
    assert_in_sync("pcm.mkv", "audio-codec=pcm", "pcm_s16le");
}

#[test]
fn flash_and_tick_stay_together_in_mov_pcm() {
    assert_in_sync("pcm.mov", "audio-codec=pcm", "pcm_s16le");
}
