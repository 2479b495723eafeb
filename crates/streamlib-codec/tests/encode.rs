//! The encoders against real decoders: packets are muxed with FFmpeg into a file that
//! ffprobe reads back (frame count, key frames where requested, durations), and the
//! bitrate change shows in the packet sizes.
#![allow(
    clippy::print_stderr,
    reason = "the tests print the packet sizes they measured"
)]

use std::path::Path;

use ffmpeg_next as ffmpeg;
use streamlib_buffers::PooledBuf;
use streamlib_clock::Rational;
use streamlib_codec::encode::{
    AudioCodec, AudioEncoder, AudioEncoderConfig, EncodedPacket, VideoCodec, VideoEncoder,
    VideoEncoderConfig,
};
use streamlib_ports::{AudioBuffer, FrameLayout, PixelFormat, VideoFrame};
use streamlib_test_support::media::{probe, temp_dir};

/// An owned copy of an [`EncodedPacket`].
#[derive(Debug, Clone)]
struct Owned {
    data: Vec<u8>,
    pts: i64,
    dts: i64,
    keyframe: bool,
    duration: i64,
}

fn keep(into: &mut Vec<Owned>) -> impl FnMut(EncodedPacket<'_>) + '_ {
    |p| {
        into.push(Owned {
            data: p.data.to_vec(),
            pts: p.pts,
            dts: p.dts,
            keyframe: p.keyframe,
            duration: p.duration,
        });
    }
}

/// A frame whose content moves (vertical bars shifted by `n`) plus `noise` (0..=255) of
/// pseudo-random texture, so the encoder has work and the rate control something to cut.
fn frame(layout: FrameLayout, n: u32, noise: u8) -> VideoFrame {
    let mut bytes = vec![0u8; layout.buffer_len()];
    let mut seed = 0x9e37_79b9u32.wrapping_mul(n + 1);
    let stride = layout.stride() as usize;
    for y in 0..layout.height() as usize {
        for x in 0..layout.width() as usize {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let grain = if noise == 0 {
                0
            } else {
                ((seed >> 24) as u8) % noise
            };
            let bar = (((x as u32 + n * 4) / 40) % 4) as u8 * 60;
            let px = &mut bytes[y * stride + x * 4..][..4];
            px.copy_from_slice(&[
                bar.saturating_add(grain),
                (y as u8).saturating_add(grain / 2),
                200u8.saturating_sub(bar),
                255,
            ]);
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes)).unwrap_or_else(|e| panic!("frame: {e}"))
}

/// Writes `packets` of one stream with `params` into `path` with FFmpeg's muxer for the
/// file's extension.
fn mux(path: &Path, params: ffmpeg::codec::Parameters, tb: ffmpeg::Rational, packets: &[Owned]) {
    let mut out =
        ffmpeg::format::output(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    {
        let mut stream = out
            .add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None))
            .unwrap_or_else(|e| panic!("add stream: {e}"));
        stream.set_parameters(params);
        stream.set_time_base(tb);
        // SAFETY: the stream's parameters are valid; the muxer picks its own tag.
        unsafe { (*(*stream.as_mut_ptr()).codecpar).codec_tag = 0 };
    }
    out.write_header().unwrap_or_else(|e| panic!("header: {e}"));
    let stream_tb = out
        .stream(0)
        .map(|s| s.time_base())
        .unwrap_or_else(|| panic!("no stream"));
    for p in packets {
        let mut packet = ffmpeg::Packet::copy(&p.data);
        packet.set_pts(Some(p.pts));
        packet.set_dts(Some(p.dts));
        packet.set_duration(p.duration);
        if p.keyframe {
            packet.set_flags(ffmpeg::codec::packet::Flags::KEY);
        }
        packet.set_stream(0);
        packet.rescale_ts(tb, stream_tb);
        packet
            .write_interleaved(&mut out)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }
    out.write_trailer()
        .unwrap_or_else(|e| panic!("trailer: {e}"));
}

const FORCED: [i64; 3] = [0, 17, 40];

/// Encodes 60 frames with keyframes requested at [`FORCED`] only, muxes them and returns
/// the key frames ffprobe finds (by frame index, in presentation order).
fn keyframes_where_requested(codec: VideoCodec, low_latency: bool, file: &str) {
    let layout = FrameLayout::new(320, 240, PixelFormat::Rgba8).unwrap_or_else(|e| panic!("{e}"));
    let mut config = VideoEncoderConfig::new(codec, 320, 240, Rational::fps(30));
    config.keyframe_interval = 0;
    config.low_latency = low_latency;
    config.global_header = true;
    config.bitrate_bps = 500_000;
    let mut encoder = VideoEncoder::new(&config, layout).unwrap_or_else(|e| panic!("{e}"));
    let mut packets = Vec::new();
    for n in 0..60u32 {
        let pts = i64::from(n);
        encoder
            .encode(
                &frame(layout, n, 8),
                pts,
                FORCED.contains(&pts),
                &mut keep(&mut packets),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    encoder
        .flush(&mut keep(&mut packets))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(packets.len(), 60, "{codec}: one packet per frame");
    let mut keys: Vec<i64> = packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.pts)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, FORCED, "{codec}: packets flagged key");
    if codec != VideoCodec::Vp8 {
        assert!(
            encoder.extradata().is_some_and(|e| e.len() > 8),
            "{codec}: extradata"
        );
    }
    let dir = temp_dir("codec", "keyframes");
    let path = dir.join(file);
    mux(&path, encoder.parameters(), encoder.time_base(), &packets);
    let frames = probe(&path, "v:0", "frame=key_frame,pict_type");
    assert_eq!(
        frames.len(),
        60,
        "{codec}: ffprobe decodes every frame: {frames:?}"
    );
    let decoded_keys: Vec<i64> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with("1,I"))
        .map(|(i, _)| i as i64)
        .collect();
    assert_eq!(
        decoded_keys, FORCED,
        "{codec}: decoded key frames: {frames:?}"
    );
}

#[test]
fn h264_keyframes_only_where_requested() {
    keyframes_where_requested(VideoCodec::H264, false, "h264.mp4");
}

#[test]
fn h264_low_latency_keyframes_and_no_reordering() {
    keyframes_where_requested(VideoCodec::H264, true, "h264-ll.mp4");
}

#[test]
fn h265_keyframes_only_where_requested() {
    if !VideoCodec::H265.encoder_available() {
        panic!("this FFmpeg has no libx265");
    }
    keyframes_where_requested(VideoCodec::H265, true, "h265.mkv");
}

#[test]
fn vp8_keyframes_only_where_requested() {
    keyframes_where_requested(VideoCodec::Vp8, true, "vp8.webm");
}

/// Mean packet size (bytes) of non-key packets with pts in `range`.
fn mean_size(packets: &[Owned], range: std::ops::Range<i64>) -> f64 {
    let sizes: Vec<usize> = packets
        .iter()
        .filter(|p| range.contains(&p.pts) && !p.keyframe)
        .map(|p| p.data.len())
        .collect();
    assert!(!sizes.is_empty(), "no packets in {range:?}");
    sizes.iter().sum::<usize>() as f64 / sizes.len() as f64
}

/// 90 frames at 800 kbit/s, then 90 at 200 kbit/s: the second half's packets (after a
/// settling second) are well under half the first's.
fn bitrate_change_shows(codec: VideoCodec) -> (f64, f64) {
    let layout = FrameLayout::new(320, 240, PixelFormat::Rgba8).unwrap_or_else(|e| panic!("{e}"));
    let mut config = VideoEncoderConfig::new(codec, 320, 240, Rational::fps(30));
    config.low_latency = true;
    config.bitrate_bps = 800_000;
    config.keyframe_interval = 30;
    let mut encoder = VideoEncoder::new(&config, layout).unwrap_or_else(|e| panic!("{e}"));
    let mut packets = Vec::new();
    for n in 0..180u32 {
        if n == 90 {
            encoder
                .set_bitrate(200_000)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        encoder
            .encode(
                &frame(layout, n, 96),
                i64::from(n),
                false,
                &mut keep(&mut packets),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    encoder
        .flush(&mut keep(&mut packets))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(encoder.config().bitrate_bps, 200_000);
    assert_eq!(encoder.bitrate_pending(), None);
    let before = mean_size(&packets, 30..90);
    let after = mean_size(&packets, 120..180);
    assert!(
        after < before * 0.5,
        "{codec}: mean packet {before:.0} B at 800 kbit/s, {after:.0} B at 200 kbit/s"
    );
    // The stream stays decodable across the change (a reopened encoder starts with a key
    // frame).
    let dir = temp_dir("codec", "bitrate");
    let ext = if codec == VideoCodec::Vp8 {
        "ivf"
    } else {
        "h264"
    };
    let path = dir.join(format!("{codec:?}.{ext}"));
    let mut params_packets = packets.clone();
    params_packets.sort_by_key(|p| p.dts);
    mux(
        &path,
        encoder.parameters(),
        encoder.time_base(),
        &params_packets,
    );
    let frames = probe(&path, "v:0", "frame=pts");
    assert_eq!(frames.len(), 180, "{codec}: decoded frames");
    (before, after)
}

#[test]
fn h264_bitrate_changes_mid_stream() {
    let (before, after) = bitrate_change_shows(VideoCodec::H264);
    eprintln!("H.264: {before:.0} B -> {after:.0} B per frame");
}

#[test]
fn vp8_bitrate_changes_at_the_next_keyframe() {
    let (before, after) = bitrate_change_shows(VideoCodec::Vp8);
    eprintln!("VP8: {before:.0} B -> {after:.0} B per frame");
}

#[test]
fn frames_of_another_size_are_scaled_and_gpu_frames_refused() {
    let small = FrameLayout::new(160, 120, PixelFormat::Bgra8).unwrap_or_else(|e| panic!("{e}"));
    let big = FrameLayout::new(321, 241, PixelFormat::Rgba8).unwrap_or_else(|e| panic!("{e}"));
    let config = VideoEncoderConfig::new(VideoCodec::H264, 321, 241, Rational::fps(25));
    let mut encoder = VideoEncoder::new(&config, big).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (encoder.config().width, encoder.config().height),
        (320, 240)
    );
    let mut packets = Vec::new();
    for n in 0..10u32 {
        let layout = if n % 2 == 0 { small } else { big };
        encoder
            .encode(
                &frame(layout, n, 0),
                i64::from(n),
                false,
                &mut keep(&mut packets),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    encoder
        .flush(&mut keep(&mut packets))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(packets.len(), 10);
    let again = encoder.encode(&frame(small, 0, 0), 11, false, &mut |_| {});
    assert!(again.is_err(), "a flushed encoder refuses frames");
    let zero = VideoEncoderConfig {
        bitrate_bps: 0,
        ..config
    };
    let err = VideoEncoder::new(&zero, big).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("bitrate_bps")));
}

/// One second of a 440 Hz stereo sine at `rate` in 10 ms buffers.
fn sine_buffers(rate: u32) -> Vec<AudioBuffer> {
    let per = rate as usize / 100;
    (0..100)
        .map(|b| {
            let mut samples = Vec::with_capacity(per * 2);
            for i in 0..per {
                let t = (b * per + i) as f32 / rate as f32;
                let v = (t * 440.0 * std::f32::consts::TAU).sin() * 0.5;
                samples.extend_from_slice(&[v, v]);
            }
            AudioBuffer::new(PooledBuf::from_vec(samples), 2, rate, 0)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn audio_round_trip(codec: AudioCodec, rate: u32, input_rate: u32, file: &str) {
    let config = AudioEncoderConfig {
        codec,
        sample_rate: rate,
        channels: 2,
        bitrate_bps: 96_000,
    };
    let mut encoder = AudioEncoder::new(&config).unwrap_or_else(|e| panic!("{e}"));
    let mut packets = Vec::new();
    for buffer in sine_buffers(input_rate) {
        encoder
            .encode(&buffer, &mut keep(&mut packets))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    encoder
        .flush(&mut keep(&mut packets))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(encoder.extradata().is_some(), "{codec}: extradata");
    let frame = encoder.frame_size() as i64;
    // pts run contiguously in frames from minus the encoder delay.
    for (i, p) in packets.iter().enumerate().take(packets.len() - 1) {
        assert_eq!(
            p.pts,
            i as i64 * frame - encoder.initial_padding(),
            "{codec}: packet {i}"
        );
    }
    let dir = temp_dir("codec", "audio");
    let path = dir.join(file);
    mux(&path, encoder.parameters(), encoder.time_base(), &packets);
    let duration: f64 = probe(&path, "a:0", "format=duration")
        .first()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{codec}: no duration"));
    assert!(
        (0.98..=1.1).contains(&duration),
        "{codec}: one second of audio, ffprobe says {duration} s"
    );
}

#[test]
fn aac_encodes_a_second_of_audio_resampled() {
    audio_round_trip(AudioCodec::Aac, 48_000, 44_100, "aac.m4a");
}

#[test]
fn opus_encodes_a_second_of_audio() {
    audio_round_trip(AudioCodec::Opus, 48_000, 48_000, "opus.webm");
}

#[test]
fn encoders_are_send() {
    fn is_send<T: Send>() {}
    is_send::<VideoEncoder>();
    is_send::<AudioEncoder>();
}
