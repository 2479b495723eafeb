//! Fuzz targets: whatever a network peer sends, nothing panics and every counter adds up.
//!
//! Each target runs as an ordinary test on a bounded number of random inputs (plus the seed
//! corpus in `tests/__fuzz__/<target>/corpus/`), and for as long as asked under
//! libFuzzer or AFL with `cargo xtask fuzz <target>`. `BOLERO_RANDOM_ITERATIONS` overrides
//! the count here.
//!
//! The jitter buffer targets read their input as a *sequence of operations* (push a real
//! packet, a mutated one, one with rewritten numbers or another SSRC, raw bytes, let time
//! pass, flush, hold delivered frames so the pool runs dry), so they reach reordering,
//! duplicates, losses, resyncs and source changes instead of stopping at the RTP header.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bolero::check;
use streamlib_clock::Rational;
use streamlib_net::*;
use streamlib_ports::{FrameLimits, FramePool, VideoFrame};
use streamlib_test_support::FuzzInput as Input;

/// Random inputs per target in an ordinary test run (CI).
const ITERATIONS: usize = 2_000;

/// Inputs for the sequence targets: long enough for many steps in random runs.
fn sequence() -> impl bolero::generator::ValueGenerator<Output = Vec<u8>> {
    bolero::produce::<Vec<u8>>().with().len(32usize..4096)
}

/// One step of a packet sequence, shared by the video and audio targets.
enum Step {
    /// Packet `n` of the prepared stream, as sent.
    Real(usize),
    /// Packet `n` with one byte changed.
    Mutated { n: usize, at: usize, xor: u8 },
    /// Packet `n` with its RTP sequence number and timestamp rewritten.
    Renumbered { n: usize, seq: u16, ts: u32 },
    /// Packet `n` from another source.
    OtherSsrc { n: usize, ssrc: u32 },
    /// Any bytes.
    Raw(Vec<u8>),
    /// Time passes; the buffer is polled.
    Wait(u64),
    /// End of stream.
    Flush,
    /// Start or stop holding on to delivered frames (downstream that keeps them).
    ToggleHold,
}

impl Step {
    fn read(input: &mut Input<'_>) -> Step {
        match input.u8() % 10 {
            0..=2 => Step::Real(usize::from(input.u8())),
            3 => Step::Mutated {
                n: usize::from(input.u8()),
                at: usize::from(input.u8()),
                xor: input.u8().max(1),
            },
            4 => Step::Renumbered {
                n: usize::from(input.u8()),
                seq: input.u16(),
                ts: input.u32(),
            },
            5 => Step::OtherSsrc {
                n: usize::from(input.u8()),
                ssrc: input.u32(),
            },
            6 => {
                let len = usize::from(input.u8());
                Step::Raw(input.bytes(len).to_vec())
            }
            // Up to ~650 ms: past the window, the frame timeout and the SSRC takeover.
            7 => Step::Wait(u64::from(input.u16()) * 10_000),
            8 => Step::Flush,
            _ => Step::ToggleHold,
        }
    }

    /// The datagram this step pushes, if any.
    fn datagram(&self, packets: &[Vec<u8>]) -> Option<Vec<u8>> {
        let pick = |n: usize| packets[n % packets.len()].clone();
        Some(match *self {
            Step::Real(n) => pick(n),
            Step::Mutated { n, at, xor } => {
                let mut d = pick(n);
                let i = at % d.len();
                d[i] ^= xor;
                d
            }
            Step::Renumbered { n, seq, ts } => {
                let mut d = pick(n);
                d[2..4].copy_from_slice(&seq.to_be_bytes());
                d[4..8].copy_from_slice(&ts.to_be_bytes());
                d
            }
            Step::OtherSsrc { n, ssrc } => {
                let mut d = pick(n);
                d[8..12].copy_from_slice(&ssrc.to_be_bytes());
                d
            }
            Step::Raw(ref bytes) => bytes.clone(),
            Step::Wait(_) | Step::Flush | Step::ToggleHold => return None,
        })
    }
}

/// What the video sink saw.
#[derive(Default)]
struct VideoSeen {
    complete: u64,
    incomplete: u64,
    held: Vec<VideoFrame>,
    hold: bool,
}

/// Every datagram ends in exactly one counter, and every finalized frame in one outcome.
fn check_video_counters(jb: &JitterBuffer, seen: &VideoSeen, pushed: (u64, u64), slots: usize) {
    let c = jb.counters();
    assert_eq!((c.datagrams, c.bytes), pushed, "{c:?}");
    assert_eq!(
        c.datagrams,
        c.packets + c.malformed + c.foreign_ssrc + c.duplicates + c.late + c.pool_exhausted,
        "received = placed + malformed + foreign + duplicate + late + no buffer: {c:?}"
    );
    assert_eq!(c.malformed, c.malformed_by.iter().sum::<u64>(), "{c:?}");
    assert_eq!(c.frames_complete, seen.complete, "{c:?}");
    assert_eq!(c.frames_incomplete, seen.incomplete, "{c:?}");
    // Counted on arrival, before a packet may still be dropped as late or for want of a buffer.
    assert!(
        c.reordered <= c.packets + c.late + c.pool_exhausted,
        "{c:?}"
    );
    assert!(jb.pending() <= slots, "{c:?}");
}

/// A small stream packetized for real, then the input's sequence of steps fed to a jitter
/// buffer with the input's settings.
fn video_jitter(data: &[u8]) {
    let mut input = Input(data);
    let sampling = Sampling::ALL[usize::from(input.u8()) % Sampling::ALL.len()];
    let width = 2 * (1 + u32::from(input.u8() % 24));
    let height = 1 + u32::from(input.u8() % 8);
    let max_udp_payload = 40 + usize::from(input.u8());
    let initial_sequence = input.u32();
    let first_ts = input.u32();
    let settings = input.u8();
    let config = JitterConfig {
        window: std::time::Duration::from_millis(1 + u64::from(settings % 10)),
        slots: 2 + usize::from(settings / 10 % 7),
        policy: if settings & 0x80 == 0 {
            IncompletePolicy::Drop
        } else {
            IncompletePolicy::DeliverMarked
        },
        payload_type: (settings & 0x40 == 0).then_some(96),
        ..JitterConfig::default()
    };
    let format = VideoFormat::new(sampling, width, height, Rational::fps(30)).unwrap();
    let Ok(mut packetizer) = Packetizer::new(
        format,
        PacketizerConfig {
            max_udp_payload,
            initial_sequence,
            uniform_length: settings & 0x20 != 0,
            ..PacketizerConfig::default()
        },
    ) else {
        return; // a payload too small for one pixel group: refused, as it should be
    };
    let layout = format.layout().unwrap();
    let stride = layout.stride() as usize;
    let mut packets = Vec::new();
    for n in 0..4u32 {
        let pixels: Vec<u8> = (0..layout.buffer_len())
            .map(|i| (i as u32).wrapping_mul(7).wrapping_add(n) as u8)
            .collect();
        let ts = first_ts.wrapping_add(n * 3000);
        let mut buf = vec![0; packetizer.max_packet_len()];
        let mut frame = packetizer.frame(&pixels, stride, ts).unwrap();
        while let Some(len) = frame.next_into(&mut buf) {
            packets.push(buf[..len].to_vec());
        }
    }
    assert!(!packets.is_empty());

    let pool_frames = config.slots + 2;
    let pool = FramePool::new("fuzz", layout, pool_frames, pool_frames).unwrap();
    let mut jb = JitterBuffer::new(format, pool, config).unwrap();
    let mut seen = VideoSeen::default();
    let mut now_ns = 1_000_000_000u64;
    let mut pushed = (0u64, 0u64);
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        steps += 1;
        let step = Step::read(&mut input);
        now_ns += 50_000; // 50 µs between steps
        let mut sink = |d: Delivered<'_>| {
            assert_eq!(d.frame.layout(), layout);
            assert_eq!(d.complete, d.missing.is_empty());
            if config.policy == IncompletePolicy::Drop {
                assert!(d.complete, "an incomplete frame was delivered under Drop");
            }
            for span in d.missing {
                assert!(
                    span.count > 0 && span.first + span.count <= height,
                    "{span:?}"
                );
            }
            if d.complete {
                seen.complete += 1;
            } else {
                seen.incomplete += 1;
            }
            if seen.hold {
                seen.held.push(d.frame);
            }
        };
        match step {
            Step::Wait(ns) => {
                now_ns += ns;
                jb.poll(now_ns, &mut sink);
            }
            Step::Flush => jb.flush(now_ns, &mut sink),
            Step::ToggleHold => {
                seen.hold = !seen.hold;
                seen.held.clear();
            }
            ref other => {
                let d = other.datagram(&packets).unwrap_or_default();
                pushed.0 += 1;
                pushed.1 += d.len() as u64;
                jb.push(&d, now_ns, &mut sink);
            }
        }
        check_video_counters(&jb, &seen, pushed, config.slots);
    }
    seen.held.clear();
    jb.flush(now_ns, &mut |d: Delivered<'_>| {
        if d.complete {
            seen.complete += 1;
        } else {
            seen.incomplete += 1;
        }
    });
    check_video_counters(&jb, &seen, pushed, config.slots);
    assert_eq!(jb.pending(), 0, "flush leaves nothing open");
}

#[test]
fn rtp_video_jitter() {
    check!()
        .with_generator(sequence())
        .with_iterations(ITERATIONS)
        .for_each(|data: &Vec<u8>| video_jitter(data));
}

/// The audio twin: a real AES67 stream, stepped through the input's sequence.
fn audio_jitter(data: &[u8]) {
    let mut input = Input(data);
    let b = input.u8();
    let encoding = if b & 1 == 0 {
        AudioEncoding::L16
    } else {
        AudioEncoding::L24
    };
    let channels = 1 + u16::from(b >> 1) % 8;
    let packet_time = if b & 0x80 == 0 {
        PacketTime::Ms1
    } else {
        PacketTime::Us125
    };
    let format = AudioFormat::new(encoding, channels)
        .unwrap()
        .with_packet_time(packet_time);
    let settings = input.u8();
    let config = AudioJitterConfig {
        payload_type: (settings & 0x80 == 0).then_some(97),
        reorder_window: 1 + usize::from(settings % 64),
        max_wait: std::time::Duration::from_micros(100 + u64::from(input.u8()) * 100),
        max_conceal: u64::from(input.u16() % 2000),
    };
    let mut packetizer = AudioPacketizer::new(
        format,
        AudioPacketizerConfig {
            initial_sequence: input.u16(),
            ..AudioPacketizerConfig::default()
        },
    )
    .unwrap();
    let frames = format.frames_per_packet();
    let first_ts = input.u32();
    let mut packets = Vec::new();
    for n in 0..24u32 {
        let samples = vec![(n as f32 + 1.0) / 32.0; format.samples_per_packet()];
        let ts = first_ts.wrapping_add(n * frames as u32);
        packetizer.push(&samples, ts, &mut |d: &[u8]| packets.push(d.to_vec()));
    }
    assert!(!packets.is_empty());

    let mut jb = AudioJitterBuffer::new(format, config).unwrap();
    let per_packet = format.samples_per_packet();
    let (mut real, mut concealed) = (0u64, 0u64);
    let mut now_ns = 1_000_000_000u64;
    let mut pushed = (0u64, 0u64);
    let check = |jb: &AudioJitterBuffer, real: u64, concealed: u64, pushed: (u64, u64)| {
        let c = jb.counters();
        assert_eq!((c.datagrams, c.bytes), pushed, "{c:?}");
        assert_eq!(
            c.datagrams,
            c.packets + c.malformed + c.foreign_ssrc + c.duplicates + c.late,
            "received = placed + malformed + foreign + duplicate + late: {c:?}"
        );
        assert_eq!(
            c.packets,
            real + jb.held() as u64,
            "placed = delivered + held: {c:?}"
        );
        assert_eq!(c.samples, real * frames as u64, "{c:?}");
        assert_eq!(c.concealed_samples, concealed * frames as u64, "{c:?}");
        assert!(c.lost >= concealed, "{c:?}");
        assert!(jb.held() <= config.reorder_window + 1, "{c:?}");
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 1024 {
        steps += 1;
        let step = Step::read(&mut input);
        now_ns += 20_000;
        let mut out = |chunk: AudioChunk<'_>| {
            assert_eq!(chunk.samples.len(), per_packet);
            if chunk.concealed {
                assert!(chunk.samples.iter().all(|&s| s == 0.0));
                concealed += 1;
            } else {
                real += 1;
            }
        };
        match step {
            Step::Wait(ns) => {
                now_ns += ns;
                jb.poll(now_ns, &mut out);
            }
            Step::Flush => jb.flush(&mut out),
            Step::ToggleHold => {}
            ref other => {
                let d = other.datagram(&packets).unwrap_or_default();
                pushed.0 += 1;
                pushed.1 += d.len() as u64;
                jb.push(&d, now_ns, &mut out);
            }
        }
        check(&jb, real, concealed, pushed);
    }
    jb.flush(&mut |chunk: AudioChunk<'_>| {
        if chunk.concealed {
            concealed += 1;
        } else {
            real += 1;
        }
    });
    check(&jb, real, concealed, pushed);
    assert_eq!(jb.held(), 0, "flush leaves nothing held");
}

#[test]
fn rtp_audio_jitter() {
    check!()
        .with_generator(sequence())
        .with_iterations(ITERATIONS)
        .for_each(|data: &Vec<u8>| audio_jitter(data));
}

/// Values the SDP mutator splices in: extremes, neighbours of the limits, wrong types.
const SDP_TOKENS: [&str; 24] = [
    "0",
    "1",
    "-1",
    "95",
    "96",
    "127",
    "128",
    "255",
    "256",
    "32767",
    "32768",
    "16384",
    "16385",
    "65535",
    "65536",
    "4294967295",
    "18446744073709551616",
    "",
    "x",
    "/",
    ":",
    ";",
    "=",
    "\u{0}",
];

/// SDP text from the input: either the raw bytes, or a real session's SDP edited line by
/// line (a value replaced by a token, a line dropped or doubled, bytes inserted), which
/// reaches the field parsers that random bytes never get past.
fn sdp_text(data: &[u8], real: &str) -> String {
    let mut input = Input(data);
    if input.u8() & 1 == 0 {
        return String::from_utf8_lossy(input.bytes(usize::MAX)).into_owned();
    }
    let mut lines: Vec<String> = real.lines().map(str::to_owned).collect();
    let mut edits = 0;
    while !input.is_empty() && edits < 16 && !lines.is_empty() {
        edits += 1;
        let i = usize::from(input.u8()) % lines.len();
        match input.u8() % 5 {
            0 => {
                lines.remove(i);
            }
            1 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            2 => {
                let len = usize::from(input.u8() % 16);
                let bytes = String::from_utf8_lossy(input.bytes(len)).into_owned();
                let line = &mut lines[i];
                let at = usize::from(input.u8()) % (line.len() + 1);
                if line.is_char_boundary(at) {
                    line.insert_str(at, &bytes);
                }
            }
            _ => {
                // Replace the n-th run of digits or letters after the `=` with a token.
                let token = SDP_TOKENS[usize::from(input.u8()) % SDP_TOKENS.len()];
                let n = usize::from(input.u8() % 12);
                let line = &lines[i];
                let mut runs = Vec::new();
                let mut start = None;
                for (at, c) in line.char_indices().chain([(line.len(), ' ')]) {
                    match (start, c.is_ascii_alphanumeric()) {
                        (None, true) => start = Some(at),
                        (Some(s), false) => {
                            runs.push(s..at);
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(range) = runs.get(n % runs.len().max(1)).cloned() {
                    lines[i].replace_range(range, token);
                }
            }
        }
    }
    lines.join("\r\n")
}

/// A real video SDP (from the ST 2110-20 example) to mutate.
const VIDEO_SDP: &str = include_str!("seeds/st2110-20.sdp");

/// A real audio SDP to mutate.
const AUDIO_SDP: &str = include_str!("seeds/aes67-l24.sdp");

/// Mutations of `real`, each parsed or refused with an error; what parses gives an SDP
/// (`to_sdp`) that parses again, and `check` gets both.
fn each_parsed_sdp<S>(
    real: &str,
    parse: fn(&str) -> Result<S, NetError>,
    to_sdp: fn(&S) -> String,
    check: fn(&S, &S),
) {
    check!()
        .with_iterations(ITERATIONS)
        .for_each(|data: &[u8]| {
            let Ok(session) = parse(&sdp_text(data, real)) else {
                return;
            };
            let own = to_sdp(&session);
            let again = parse(&own).unwrap_or_else(|e| panic!("own SDP refused: {e}\n{own}"));
            check(&session, &again);
        });
}

/// Any text: parsed or refused with an error, and what parses is within the frame limits and
/// parses again, the same, from its own SDP.
#[test]
fn sdp_video() {
    each_parsed_sdp(
        VIDEO_SDP,
        SdpSession::parse,
        SdpSession::to_sdp,
        |session, again| {
            let f = session.format;
            assert!(
                FrameLimits::DEFAULT.check(f.width, f.height).is_ok(),
                "{f:?}"
            );
            assert_eq!(
                (again.format, again.destination, again.payload_type),
                (f, session.destination, session.payload_type)
            );
        },
    );
}

/// The seeds are SDPs streamlib writes itself.
#[test]
fn sdp_seeds_are_our_own() {
    assert_eq!(SdpSession::parse(VIDEO_SDP).unwrap().to_sdp(), VIDEO_SDP);
    assert_eq!(
        AudioSdpSession::parse(AUDIO_SDP).unwrap().to_sdp(),
        AUDIO_SDP
    );
}

/// The audio SDP, the same way.
#[test]
fn sdp_audio() {
    each_parsed_sdp(
        AUDIO_SDP,
        AudioSdpSession::parse,
        AudioSdpSession::to_sdp,
        |session, again| {
            assert_eq!(
                (again.format, again.destination, again.payload_type),
                (session.format, session.destination, session.payload_type)
            );
        },
    );
}
