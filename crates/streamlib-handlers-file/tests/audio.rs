//! Audio through real FFmpeg: FileReader's audio output against files the FFmpeg CLI made,
//! FileWriter's audio track checked with ffprobe and decoded back by the CLI, a round trip,
//! and the errors. Signals are sines whose frequency and level are measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; the measured figures are printed for the record (--nocapture)"
)]

mod audio_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use audio_support::*;
use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_handlers_file::{
    AudioCodec, AudioConfig, FileError, FileReader, FileWriter, MediaInfo, ReaderConfig,
    ReaderPacing, ReaderStats, WriterConfig, WriterStats,
};
use streamlib_handlers_video::{FrameCapture, Pattern, TestPattern, TestPatternConfig};
use streamlib_ports::*;
use streamlib_runtime::{Stream, StreamRuntime};

struct ReadRun {
    audio: Vec<(u64, AudioBuffer)>,
    /// The first two frames (keeping more would hold the reader's frame pool).
    video: Vec<(u64, VideoFrame)>,
    frames: u64,
    stats: ReaderStats,
    info: MediaInfo,
}

/// FileReader (video and audio connected) through a runtime on a free-running clock at
/// `fps`, until end of stream or `limit` ticks.
fn read(config: ReaderConfig, fps: u32, limit: Option<u64>) -> ReadRun {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = FileReader::new(config).unwrap();
        let (stats, info) = (reader.stats(), reader.info().clone());
        let (video_out, audio_out) = (reader.output(), reader.audio());
        let capture = FrameCapture::new(0..2);
        let (video_in, frames) = (capture.input(), capture.handle());
        let (sink, audio) = AudioSink::new();
        let audio_in = sink.input.handle();
        let clock = FreeRunningClock::new(Rational::fps(fps));
        let clock = match limit {
            Some(n) => clock.with_limit(n),
            None => clock,
        };
        let mut rt = StreamRuntime::new(clock);
        rt.add_stream(Stream::new("reader", reader)).unwrap();
        rt.add_stream(Stream::new("capture", capture)).unwrap();
        rt.add_stream(Stream::new("sink", sink)).unwrap();
        rt.connect(&video_out, &video_in).unwrap();
        rt.connect(&audio_out, &audio_in).unwrap();
        rt.run().unwrap();
        let audio = std::mem::take(&mut *audio.lock().unwrap());
        let _ = tx.send(ReadRun {
            audio,
            video: frames.frames(),
            frames: frames.received(),
            stats,
            info,
        });
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("runtime did not finish within 120 s (or panicked)")
}

/// Every buffer follows the previous one without gap or overlap (1 ns of rounding).
fn assert_contiguous(audio: &[(u64, AudioBuffer)]) {
    for pair in audio.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        let end = a.timestamp_ns() + a.duration_ns();
        assert!(
            end.abs_diff(b.timestamp_ns()) <= 1,
            "buffer at {} ns + {} ns is followed by one at {} ns",
            a.timestamp_ns(),
            a.duration_ns(),
            b.timestamp_ns()
        );
    }
}

fn all_samples(audio: &[(u64, AudioBuffer)]) -> Vec<f32> {
    audio
        .iter()
        .flat_map(|(_, b)| b.samples().iter().copied())
        .collect()
}

#[test]
fn reader_decodes_the_tone_in_step_with_the_video() {
    let dir = TempDir::new("reader");
    let path = make_tone_file(&dir, "tone.mp4");
    let run = read(
        ReaderConfig {
            pacing: ReaderPacing::AsFastAsPossible,
            ..ReaderConfig::new(&path)
        },
        30,
        None,
    );
    let audio_info = run.info.audio.clone().expect("the file has audio");
    assert_eq!(
        (
            audio_info.codec.as_str(),
            audio_info.sample_rate,
            audio_info.channels
        ),
        ("aac", RATE, 1),
        "{audio_info:?}"
    );
    assert_eq!(run.frames, 60);
    assert_eq!(run.video[0].1.timestamp_ns(), 0);
    let total: u64 = run.audio.iter().map(|(_, b)| b.frames() as u64).sum();
    eprintln!(
        "reader: {} buffers, {total} samples, first at {} ns",
        run.audio.len(),
        run.audio[0].1.timestamp_ns()
    );
    assert!(
        total.abs_diff(2 * u64::from(RATE)) <= AAC_SLACK,
        "{total} samples for 2 s at 48 kHz"
    );
    assert_eq!(run.stats.audio_samples_output(), total);
    assert_eq!(run.stats.audio_buffers_output(), run.audio.len() as u64);
    for (_, b) in &run.audio {
        assert_eq!((b.sample_rate(), b.channels()), (RATE, 1));
    }
    // Fixed-size buffers, the last possibly shorter.
    let (last, rest) = run.audio.split_last().unwrap();
    assert!(rest.iter().all(|(_, b)| b.frames() == 1024));
    assert!(last.1.frames() <= 1024);
    assert!(run.audio[0].1.timestamp_ns() < 1_000_000);
    assert_contiguous(&run.audio);
    // In step: frame n (pts n/30 s) shows on tick n with every buffer that begins before the
    // frame ends, so a buffer arrives exactly on the tick of the frame it begins in.
    // (Frame times are whole ns, so a buffer within 1 ns of a boundary may go either way.)
    let frame_of = |ts: u64| {
        (0..60u64)
            .take_while(|&n| n * 1_000_000_000 / 30 <= ts)
            .last()
            .unwrap()
    };
    for &(tick, ref b) in rest {
        let ts = b.timestamp_ns();
        assert!(
            (frame_of(ts.saturating_sub(1))..=frame_of(ts + 1)).contains(&tick),
            "buffer at {ts} ns arrived on tick {tick}"
        );
    }
    let samples = all_samples(&run.audio);
    let (freq, level) = (frequency(&samples, RATE), rms(&samples));
    let purity = tone_purity(&samples, RATE, 1000.0);
    eprintln!("reader: {freq:.2} Hz, RMS {level:.4}, purity {purity:.4}");
    assert!((freq - 1000.0).abs() < 1.0, "{freq} Hz");
    // FFmpeg's sine source has amplitude 1/8: RMS 0.0884.
    assert!((0.08..0.097).contains(&level), "RMS {level}");
    assert!(purity > 0.95, "purity {purity}");
}

#[test]
fn reader_audio_follows_realtime_pacing() {
    // Realtime pacing on a free-running 60 fps clock: each frame shows twice, audio still
    // flows exactly once and in step.
    let dir = TempDir::new("realtime");
    let path = make_tone_file(&dir, "tone.mkv");
    let run = read(ReaderConfig::new(&path), 60, None);
    let total: u64 = run.audio.iter().map(|(_, b)| b.frames() as u64).sum();
    // Matroska shifts the video by the AAC priming so that no timestamp is negative.
    let video_start = run.video[0].1.timestamp_ns();
    eprintln!(
        "realtime: {} buffers, {total} samples from {} ns, video from {video_start} ns",
        run.audio.len(),
        run.audio[0].1.timestamp_ns()
    );
    assert!(total.abs_diff(2 * u64::from(RATE)) <= AAC_SLACK, "{total}");
    assert_contiguous(&run.audio);
    for &(tick, ref b) in &run.audio {
        // Due at tick n: the first frame's time plus n/60 s, plus one frame interval.
        let limit = video_start + tick * 1_000_000_000 / 60 + 1_000_000_000 / 30;
        assert!(
            b.timestamp_ns() < limit,
            "buffer at {} ns on tick {tick}",
            b.timestamp_ns()
        );
    }
    let freq = frequency(&all_samples(&run.audio), RATE);
    assert!((freq - 1000.0).abs() < 1.0, "{freq} Hz");
}

#[test]
fn reader_audio_starts_at_the_offset_and_loops_contiguously() {
    let dir = TempDir::new("offset");
    let path = make_tone_file(&dir, "tone.mp4");
    let run = read(
        ReaderConfig {
            pacing: ReaderPacing::AsFastAsPossible,
            start_offset: Duration::from_millis(500),
            ..ReaderConfig::new(&path)
        },
        30,
        None,
    );
    let total: u64 = run.audio.iter().map(|(_, b)| b.frames() as u64).sum();
    eprintln!(
        "offset: first video {} ns, first audio {} ns, {total} samples",
        run.video[0].1.timestamp_ns(),
        run.audio[0].1.timestamp_ns()
    );
    assert_eq!(run.audio[0].1.timestamp_ns(), 500_000_000);
    assert_eq!(run.video[0].1.timestamp_ns(), 500_000_000);
    assert!(
        total.abs_diff(3 * u64::from(RATE) / 2) <= AAC_SLACK,
        "{total}"
    );
    assert_contiguous(&run.audio);

    // Looping for 5 s of ticks over the 2 s file: one timeline, no gap at the wraps.
    let run = read(
        ReaderConfig {
            pacing: ReaderPacing::AsFastAsPossible,
            looping: true,
            ..ReaderConfig::new(&path)
        },
        30,
        Some(150),
    );
    assert!(run.stats.loops() >= 2, "{} loops", run.stats.loops());
    assert_contiguous(&run.audio);
    let (_, last) = run.audio.last().unwrap();
    let end = last.timestamp_ns() + last.duration_ns();
    eprintln!(
        "looping: {} loops, audio ends at {end} ns",
        run.stats.loops()
    );
    assert!(
        end.abs_diff(5_000_000_000) <= 22_000_000,
        "audio ends at {end} ns"
    );
    let freq = frequency(&all_samples(&run.audio), RATE);
    assert!((freq - 1000.0).abs() < 1.0, "{freq} Hz");
}

#[test]
fn reader_converts_to_the_configured_rate_and_channels() {
    let dir = TempDir::new("convert");
    let path = make_tone_file(&dir, "tone.mp4");
    let run = read(
        ReaderConfig {
            pacing: ReaderPacing::AsFastAsPossible,
            audio_sample_rate: Some(44_100),
            audio_channels: Some(2),
            audio_buffer_frames: 512,
            ..ReaderConfig::new(&path)
        },
        30,
        None,
    );
    let total: u64 = run.audio.iter().map(|(_, b)| b.frames() as u64).sum();
    assert!(
        run.audio
            .iter()
            .all(|(_, b)| (b.sample_rate(), b.channels()) == (44_100, 2))
    );
    assert!(
        run.audio[..run.audio.len() - 1]
            .iter()
            .all(|(_, b)| b.frames() == 512)
    );
    assert_contiguous(&run.audio);
    let samples = all_samples(&run.audio);
    let (left, right) = (channel(&samples, 2, 0), channel(&samples, 2, 1));
    assert_eq!(left, right, "mono is copied to both channels");
    let freq = frequency(&left, 44_100);
    eprintln!(
        "converted: {total} samples at 44.1 kHz, {freq:.2} Hz, RMS {:.4}",
        rms(&left)
    );
    assert!(total.abs_diff(2 * 44_100) <= AAC_SLACK, "{total}");
    assert!((freq - 1000.0).abs() < 1.0, "{freq} Hz");
}

/// TestPattern and a 440 Hz stereo sine at `rate` for `frames` ticks at 30 fps into
/// `config`.
fn write_av(config: WriterConfig, frames: u64, rate: u32) -> WriterStats {
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(frames));
    let pattern = TestPattern::new(TestPatternConfig::new(320, 240, Pattern::SmpteBars)).unwrap();
    let sine = SineSource::new(rate, 2, 440.0);
    let writer = FileWriter::new(config).unwrap();
    let stats = writer.stats();
    let (video_out, audio_out) = (pattern.output(), sine.out.handle());
    let (video_in, audio_in) = (writer.input(), writer.audio_input());
    rt.add_stream(Stream::new("pattern", pattern)).unwrap();
    rt.add_stream(Stream::new("sine", sine)).unwrap();
    rt.add_stream(Stream::new("writer", writer)).unwrap();
    rt.connect(&video_out, &video_in).unwrap();
    rt.connect(&audio_out, &audio_in).unwrap();
    rt.run().unwrap();
    stats
}

/// The audio and video streams of `path` (exactly one of each).
fn streams(path: &Path) -> (HashMap<String, String>, HashMap<String, String>) {
    let all = probe_streams(path);
    assert_eq!(all.len(), 2, "{all:?}");
    let find = |kind: &str| {
        all.iter()
            .find(|s| s["codec_type"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} stream: {all:?}"))
    };
    (find("video"), find("audio"))
}

#[test]
fn writer_adds_an_aac_track_as_long_as_the_video() {
    let dir = TempDir::new("writer");
    let path = dir.file("av.mp4");
    let config = WriterConfig {
        audio: Some(AudioConfig::new(RATE, 2)),
        ..WriterConfig::new(&path)
    };
    let stats = write_av(config, 60, RATE);
    assert!(stats.is_finalized());
    assert_eq!(stats.audio_samples_written(), 2 * u64::from(RATE));
    let (video, audio) = streams(&path);
    eprintln!("writer: {video:?} {audio:?}");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (
            audio["codec_name"].as_str(),
            audio["sample_rate"].as_str(),
            audio["channels"].as_str()
        ),
        ("aac", "48000", "2")
    );
    let video_s: f64 = video["duration"].parse().unwrap();
    let audio_s: f64 = audio["duration"].parse().unwrap();
    let slack = AAC_SLACK as f64 / f64::from(RATE);
    assert!((video_s - 2.0).abs() < 0.01, "video {video_s} s");
    assert!(
        (audio_s - video_s).abs() <= slack,
        "audio {audio_s} s, video {video_s} s"
    );
    // 94 frames of 1024 samples, plus what the encoder's delay holds back.
    let packets = stats.audio_packets_written();
    assert!((94..=96).contains(&packets), "{packets} audio packets");
    assert_decodes_cleanly(&path);

    let samples = decode_audio(&path);
    assert!(
        (samples.len() as u64 / 2).abs_diff(2 * u64::from(RATE)) <= AAC_SLACK,
        "{} samples decoded",
        samples.len() / 2
    );
    for c in 0..2 {
        let signal = channel(&samples, 2, c);
        let (freq, level) = (frequency(&signal, RATE), rms(&signal));
        eprintln!("writer channel {c}: {freq:.2} Hz, RMS {level:.4}");
        assert!((freq - 440.0).abs() < 0.5, "channel {c}: {freq} Hz");
        // Amplitude 0.5: RMS 0.354.
        assert!((0.33..0.37).contains(&level), "channel {c}: RMS {level}");
        assert!(tone_purity(&signal, RATE, 440.0) > 0.98);
    }
}

#[test]
fn writer_opus_in_webm() {
    let dir = TempDir::new("webm");
    let path = dir.file("av.webm");
    let config = WriterConfig {
        audio: Some(AudioConfig::new(RATE, 2)),
        ..WriterConfig::new(&path)
    };
    write_av(config, 30, RATE);
    let (video, audio) = streams(&path);
    assert_eq!(video["codec_name"], "vp9");
    assert_eq!(audio["codec_name"], "opus");
    assert_decodes_cleanly(&path);
    let samples = decode_audio(&path);
    let frames = samples.len() as u64 / 2;
    eprintln!("webm: {frames} samples decoded");
    assert!(frames.abs_diff(u64::from(RATE)) <= 960 * 2, "{frames}");
    let freq = frequency(&channel(&samples, 2, 0), RATE);
    assert!((freq - 440.0).abs() < 0.5, "{freq} Hz");
}

#[test]
fn writer_resamples_buffers_of_another_rate() {
    // 44.1 kHz buffers into a 48 kHz track: swresample converts, duration and pitch hold.
    let dir = TempDir::new("resample");
    let path = dir.file("av.mkv");
    let config = WriterConfig {
        audio: Some(AudioConfig::new(RATE, 2)),
        ..WriterConfig::new(&path)
    };
    let stats = write_av(config, 60, 44_100);
    assert_eq!(stats.audio_samples_written(), 2 * 44_100);
    let (_, audio) = streams(&path);
    assert_eq!(audio["sample_rate"], "48000");
    assert_decodes_cleanly(&path);
    let samples = decode_audio(&path);
    let frames = samples.len() as u64 / 2;
    let freq = frequency(&channel(&samples, 2, 1), RATE);
    eprintln!("resampled: {frames} samples at 48 kHz, {freq:.2} Hz");
    assert!(
        frames.abs_diff(2 * u64::from(RATE)) <= AAC_SLACK,
        "{frames}"
    );
    assert!((freq - 440.0).abs() < 0.5, "{freq} Hz");
}

#[test]
fn round_trip_keeps_duration_and_tone() {
    let dir = TempDir::new("round-trip");
    let source = make_tone_file(&dir, "source.mp4");
    let copy = dir.file("copy.mkv");
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
    let reader = FileReader::new(ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        ..ReaderConfig::new(&source)
    })
    .unwrap();
    let writer = FileWriter::new(WriterConfig {
        audio: Some(AudioConfig::new(RATE, 1)),
        ..WriterConfig::new(&copy)
    })
    .unwrap();
    let stats = writer.stats();
    let (video_out, audio_out) = (reader.output(), reader.audio());
    let (video_in, audio_in) = (writer.input(), writer.audio_input());
    rt.add_stream(Stream::new("reader", reader)).unwrap();
    rt.add_stream(Stream::new("writer", writer)).unwrap();
    rt.connect(&video_out, &video_in).unwrap();
    rt.connect(&audio_out, &audio_in).unwrap();
    rt.run().unwrap();
    assert!(stats.is_finalized());
    assert_decodes_cleanly(&copy);
    assert_eq!(count_video_frames(&copy), 60);
    let (original, copied) = (decode_audio(&source), decode_audio(&copy));
    eprintln!(
        "round trip: {} samples in, {} written, {} decoded back",
        original.len(),
        stats.audio_samples_written(),
        copied.len()
    );
    assert!(
        (copied.len() as u64).abs_diff(original.len() as u64) <= AAC_SLACK,
        "{} samples, source {}",
        copied.len(),
        original.len()
    );
    let freq = frequency(&copied, RATE);
    assert!((freq - 1000.0).abs() < 1.0, "{freq} Hz");
    assert!((0.08..0.097).contains(&rms(&copied)));
}

#[test]
fn audio_errors_name_the_file() {
    let dir = TempDir::new("errors");
    let y4m = dir.file("out.y4m");
    let err = FileWriter::new(WriterConfig {
        audio: Some(AudioConfig::new(RATE, 2)),
        ..WriterConfig::new(&y4m)
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FileError::AudioTrack { .. }), "{err:?}");
    assert!(
        text.contains(y4m.to_str().unwrap()) && text.contains("cannot hold audio"),
        "{text}"
    );

    let webm = dir.file("out.webm");
    let err = FileWriter::new(WriterConfig {
        audio: Some(AudioConfig {
            codec: Some(AudioCodec::Aac),
            ..AudioConfig::new(RATE, 2)
        }),
        ..WriterConfig::new(&webm)
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot hold aac"), "{err}");
    let err = FileWriter::new(WriterConfig {
        audio: Some(AudioConfig::new(44_100, 2)),
        ..WriterConfig::new(&webm)
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("libopus cannot encode 44100 Hz"),
        "{err}"
    );

    // An audio input connected to a writer without a track, from a source whose caps say
    // nothing (the track would follow the negotiated rate and channels): refused at start.
    let mp4 = dir.file("out.mp4");
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(5));
    let pattern = TestPattern::new(TestPatternConfig::new(64, 64, Pattern::SmpteBars)).unwrap();
    let sine = SineSource::new(RATE, 2, 440.0);
    let writer = FileWriter::new(WriterConfig::new(&mp4)).unwrap();
    let (video_out, audio_out) = (pattern.output(), sine.out.handle());
    let (video_in, audio_in) = (writer.input(), writer.audio_input());
    rt.add_stream(Stream::new("pattern", pattern)).unwrap();
    rt.add_stream(Stream::new("sine", sine)).unwrap();
    rt.add_stream(Stream::new("writer", writer)).unwrap();
    rt.connect(&video_out, &video_in).unwrap();
    rt.connect(&audio_out, &audio_in).unwrap();
    let err = rt.run().unwrap_err().to_string();
    assert!(
        err.contains("sample rate was not fixed by negotiation") && err.contains("out.mp4"),
        "{err}"
    );

    // The reader's audio output connected on a file without audio: refused at start.
    let silent = dir.file("silent.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=30",
        "-frames:v",
        "5",
        "-c:v",
        "libx264",
        silent.to_str().unwrap(),
    ]);
    let reader = FileReader::new(ReaderConfig::new(&silent)).unwrap();
    assert_eq!(reader.info().audio, None);
    let (sink, _) = AudioSink::new();
    let (audio_out, audio_in) = (reader.audio(), sink.input.handle());
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
    rt.add_stream(Stream::new("reader", reader)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&audio_out, &audio_in).unwrap();
    let err = rt.run().unwrap_err().to_string();
    assert!(
        err.contains("no audio stream") && err.contains("silent.mp4"),
        "{err}"
    );

    // Options out of range.
    let err = FileReader::new(ReaderConfig {
        audio_buffer_frames: 0,
        ..ReaderConfig::new(&silent)
    })
    .err()
    .unwrap();
    assert!(matches!(
        err,
        FileError::OutOfRange {
            what: "audio_buffer_frames",
            ..
        }
    ));
}
