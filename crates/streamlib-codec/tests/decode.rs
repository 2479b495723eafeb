//! The decoders against real encoders (libvpx, libx264, libopus through the encode module):
//! colours survive the round trip, a resolution change is scaled to the first size, damaged
//! or oversized input is an error and never a panic, and Opus comes back as the tone it was.

use streamlib_buffers::PooledBuf;
use streamlib_clock::Rational;
use streamlib_codec::decode::{AudioDecoder, DecodeError, VideoDecoder};
use streamlib_codec::encode::{
    AudioCodec, AudioEncoder, AudioEncoderConfig, VideoCodec, VideoEncoder, VideoEncoderConfig,
};
use streamlib_ports::{AudioBuffer, FrameLayout, FrameLimits, PixelFormat, VideoFrame};

/// Quadrant colours: red, green, blue, white (top-left, top-right, bottom-left, bottom-right).
const QUADRANTS: [[u8; 3]; 4] = [[230, 20, 20], [20, 210, 20], [20, 20, 230], [235, 235, 235]];

fn quadrant_frame(width: u32, height: u32) -> VideoFrame {
    let layout = FrameLayout::new(width, height, PixelFormat::Rgba8)
        .unwrap_or_else(|e| panic!("layout: {e}"));
    let mut data = vec![0u8; layout.buffer_len()];
    let stride = layout.stride() as usize;
    for y in 0..height as usize {
        for x in 0..width as usize {
            let q =
                usize::from(x >= width as usize / 2) + 2 * usize::from(y >= height as usize / 2);
            let [r, g, b] = QUADRANTS[q];
            data[y * stride + x * 4..y * stride + x * 4 + 4].copy_from_slice(&[r, g, b, 255]);
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(data)).unwrap_or_else(|e| panic!("frame: {e}"))
}

/// `frames` pictures of `width`x`height` encoded with `codec`: one packet each.
fn encode(codec: VideoCodec, width: u32, height: u32, frames: i64) -> Vec<Vec<u8>> {
    let mut config = VideoEncoderConfig::new(codec, width, height, Rational::fps(30));
    config.low_latency = true;
    config.bitrate_bps = 1_500_000;
    let frame = quadrant_frame(width, height);
    let mut encoder =
        VideoEncoder::new(&config, frame.layout()).unwrap_or_else(|e| panic!("{codec}: {e}"));
    let mut packets = Vec::new();
    for pts in 0..frames {
        encoder
            .encode(&frame, pts, pts == 0, &mut |p| {
                packets.push(p.data.to_vec());
            })
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
    }
    encoder
        .flush(&mut |p| packets.push(p.data.to_vec()))
        .unwrap_or_else(|e| panic!("{codec}: {e}"));
    packets
}

fn pixel(frame: &VideoFrame, x: u32, y: u32) -> [u8; 4] {
    let bytes = frame
        .cpu_bytes()
        .unwrap_or_else(|| panic!("not a CPU frame"));
    let at = (y * frame.stride() + x * 4) as usize;
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

fn assert_quadrants(frame: &VideoFrame, what: &str) {
    let (w, h) = (frame.width(), frame.height());
    let centres = [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    for (q, (x, y)) in centres.into_iter().enumerate() {
        let got = pixel(frame, x, y);
        for c in 0..3 {
            let diff = i32::from(got[c]) - i32::from(QUADRANTS[q][c]);
            assert!(
                diff.abs() <= 24,
                "{what}: quadrant {q} at {x},{y} is {got:?}, expected about {:?}",
                QUADRANTS[q]
            );
        }
        assert_eq!(got[3], 255, "{what}: alpha");
    }
}

fn decode_all(decoder: &mut VideoDecoder, packets: &[Vec<u8>]) -> Vec<VideoFrame> {
    let mut frames = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        decoder
            .decode(p, i as i64, &mut |f| frames.push(f))
            .unwrap_or_else(|e| panic!("packet {i}: {e}"));
    }
    frames
}

#[test]
fn vp8_and_h264_come_back_as_rgba_frames_of_the_colours_sent() {
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let packets = encode(codec, 320, 240, 12);
        let mut decoder = VideoDecoder::new(codec).unwrap_or_else(|e| panic!("{codec}: {e}"));
        let frames = decode_all(&mut decoder, &packets);
        // One picture per packet, none held back (low delay).
        assert_eq!(frames.len(), 12, "{codec}");
        for frame in &frames {
            assert_eq!(
                (frame.width(), frame.height(), frame.format()),
                (320, 240, PixelFormat::Rgba8),
                "{codec}"
            );
        }
        assert_quadrants(&frames[11], &codec.to_string());
        let stats = decoder.stats();
        assert_eq!(
            (stats.packets, stats.decoded, stats.errors),
            (12, 12, 0),
            "{codec}"
        );
    }
}

#[test]
fn a_new_resolution_is_scaled_to_the_first_one() {
    let mut decoder = VideoDecoder::new(VideoCodec::Vp8).unwrap_or_else(|e| panic!("{e}"));
    let first = decode_all(&mut decoder, &encode(VideoCodec::Vp8, 320, 240, 3));
    let later = decode_all(&mut decoder, &encode(VideoCodec::Vp8, 160, 120, 3));
    assert_eq!(first.len() + later.len(), 6);
    for frame in first.iter().chain(&later) {
        assert_eq!((frame.width(), frame.height()), (320, 240));
    }
    assert_quadrants(&later[2], "scaled up from 160x120");
    assert_eq!(decoder.stats().rescaled, 3);
    // A fixed output size applies from the first picture.
    let mut fixed = VideoDecoder::new(VideoCodec::H264).unwrap_or_else(|e| panic!("{e}"));
    fixed.set_output_size(Some((64, 48)));
    let frames = decode_all(&mut fixed, &encode(VideoCodec::H264, 320, 240, 2));
    assert_eq!((frames[1].width(), frames[1].height()), (64, 48));
    assert_quadrants(&frames[1], "scaled down to 64x48");
}

#[test]
fn damaged_input_is_an_error_and_the_decoder_recovers_at_the_next_keyframe() {
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let mut decoder = VideoDecoder::new(codec).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = 0;
        assert!(matches!(
            decoder.decode(&[], 0, &mut |_| seen += 1),
            Err(DecodeError::Packet { .. })
        ));
        // Noise, and a keyframe cut short: errors or nothing decoded, never a panic.
        let packets = encode(codec, 320, 240, 4);
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = decoder.decode(&noise, 1, &mut |_| seen += 1);
        let _ = decoder.decode(&packets[0][..packets[0].len() / 3], 2, &mut |_| seen += 1);
        let frames = decode_all(&mut decoder, &packets);
        assert_eq!(frames.len(), 4, "{codec} after garbage");
        assert_quadrants(&frames[3], &format!("{codec} after garbage"));
    }
}

#[test]
fn a_picture_over_the_limits_is_refused() {
    let limits = FrameLimits {
        max_width: 4096,
        max_height: 4096,
        max_pixels: 200 * 200,
    };
    let mut decoder =
        VideoDecoder::with_limits(VideoCodec::Vp8, limits).unwrap_or_else(|e| panic!("{e}"));
    let packets = encode(VideoCodec::Vp8, 320, 240, 1);
    let mut frames = 0;
    let result = decoder.decode(&packets[0], 0, &mut |_| frames += 1);
    assert_eq!(frames, 0);
    // FFmpeg refuses it itself (max_pixels), or the size check does.
    assert!(
        result.is_err(),
        "a 320x240 picture passed a 200x200-pixel limit"
    );
}

#[test]
fn frames_held_downstream_bound_the_pool_and_the_rest_are_counted() {
    let mut decoder = VideoDecoder::new(VideoCodec::Vp8).unwrap_or_else(|e| panic!("{e}"));
    decoder.set_pool_max(2);
    let frames = decode_all(&mut decoder, &encode(VideoCodec::Vp8, 64, 64, 5));
    assert_eq!(frames.len(), 2);
    assert_eq!(decoder.stats().pool_exhausted, 3);
    assert_eq!(decoder.pool().map(|p| p.pool().capacity()), Some(2));
}

#[test]
fn opus_comes_back_as_the_tone_it_was_at_48khz() {
    let config = AudioEncoderConfig {
        codec: AudioCodec::Opus,
        sample_rate: 48_000,
        channels: 2,
        bitrate_bps: 96_000,
    };
    let mut encoder = AudioEncoder::new(&config).unwrap_or_else(|e| panic!("{e}"));
    // One second of 1 kHz at -6 dBFS on the left, 500 Hz on the right.
    let frames = 48_000usize;
    let samples: Vec<f32> = (0..frames)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            [
                0.5 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin(),
                0.5 * (2.0 * std::f32::consts::PI * 500.0 * t).sin(),
            ]
        })
        .collect();
    let buffer = AudioBuffer::new(PooledBuf::from_vec(samples), 2, 48_000, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut packets = Vec::new();
    encoder
        .encode(&buffer, &mut |p| packets.push(p.data.to_vec()))
        .unwrap_or_else(|e| panic!("{e}"));
    encoder
        .flush(&mut |p| packets.push(p.data.to_vec()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(packets.len() >= 45, "{} Opus packets", packets.len());
    let mut decoder = AudioDecoder::new(2).unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<f32> = Vec::new();
    for p in &packets {
        decoder
            .decode(p, 0, &mut |b| {
                assert_eq!((b.sample_rate(), b.channels()), (48_000, 2));
                out.extend_from_slice(b.samples());
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let decoded = out.len() / 2;
    assert!(decoded >= 46_000, "{decoded} frames decoded of 48000");
    // Skip the codec's start-up; measure the middle half second.
    let window = &out[2 * 12_000..2 * 36_000];
    for (channel, hz) in [(0usize, 1000.0f32), (1, 500.0)] {
        let s: Vec<f32> = window.iter().skip(channel).step_by(2).copied().collect();
        let crossings = s.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        let measured = crossings as f32 / 0.5;
        assert!(
            (measured - hz).abs() < hz * 0.02,
            "channel {channel}: {measured} Hz, sent {hz}"
        );
        let rms = (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt();
        assert!(
            (rms - 0.3536).abs() < 0.05,
            "channel {channel}: RMS {rms}, sent 0.354"
        );
    }
    // Mono output mixes both channels down.
    let mut mono = AudioDecoder::new(1).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    mono.decode(&packets[10], 0, &mut |b| {
        assert_eq!(b.channels(), 1);
        n += b.frames();
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(n > 0);
    // An empty packet is nothing; garbage is an error, not a panic; three channels are
    // refused up front.
    assert_eq!(decoder.decode(&[], 0, &mut |_| {}).ok(), Some(0));
    let _ = decoder.decode(&[0xff; 3000], 0, &mut |_| {});
    assert!(AudioDecoder::new(3).is_err());
}
