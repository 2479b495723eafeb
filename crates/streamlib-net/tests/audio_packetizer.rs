//! Audio packetizer ↔ jitter buffer round trips, reordering / duplicates / losses, and hostile
//! datagrams and SDP text.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use proptest::prelude::*;
use streamlib_net::*;

fn encoding() -> impl Strategy<Value = AudioEncoding> {
    prop_oneof![Just(AudioEncoding::L16), Just(AudioEncoding::L24)]
}

fn packet_time() -> impl Strategy<Value = PacketTime> {
    prop_oneof![Just(PacketTime::Ms1), Just(PacketTime::Us125)]
}

/// Every packet of `samples` cut into buffers of `split` frames (the last padded).
fn packetize(
    format: AudioFormat,
    samples: &[f32],
    split: usize,
    seq: u16,
    ts: u32,
) -> Vec<Vec<u8>> {
    let cfg = AudioPacketizerConfig {
        initial_sequence: seq,
        ..Default::default()
    };
    let mut p = AudioPacketizer::new(format, cfg).unwrap();
    let mut out = Vec::new();
    let ch = usize::from(format.channels);
    let mut emit = |d: &[u8]| out.push(d.to_vec());
    for (k, chunk) in samples.chunks(split * ch).enumerate() {
        p.push(chunk, ts.wrapping_add((k * split) as u32), &mut emit);
    }
    p.flush(&mut emit);
    out
}

/// What a jitter buffer let out: (timestamp, concealed, samples) per packet.
fn receive(
    format: AudioFormat,
    datagrams: &[Vec<u8>],
) -> (Vec<(u32, bool, Vec<f32>)>, AudioReceiveCounters) {
    let mut jb = AudioJitterBuffer::new(
        format,
        AudioJitterConfig {
            reorder_window: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let mut got = Vec::new();
    let mut sink = |c: AudioChunk<'_>| got.push((c.rtp_timestamp, c.concealed, c.samples.to_vec()));
    for d in datagrams {
        jb.push(d, 0, &mut sink);
    }
    jb.flush(&mut sink);
    let counters = *jb.counters();
    (got, counters)
}

fn step(encoding: AudioEncoding) -> f32 {
    match encoding {
        AudioEncoding::L16 => 1.0 / 32_768.0,
        AudioEncoding::L24 => 1.0 / 8_388_608.0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn round_trip(
        enc in encoding(),
        pt in packet_time(),
        channels in 1u16..=8,
        frames in 1usize..400,
        split in 1usize..200,
        seq in any::<u16>(),
        ts in any::<u32>(),
        values in proptest::collection::vec(-1.0f32..=1.0, 1..64),
    ) {
        let format = AudioFormat::new(enc, channels).unwrap().with_packet_time(pt);
        let samples: Vec<f32> = (0..frames * usize::from(channels))
            .map(|i| values[i % values.len()] * if i % 7 == 0 { 0.001 } else { 1.0 })
            .collect();
        let packets = packetize(format, &samples, split, seq, ts);
        let fpp = format.frames_per_packet();
        prop_assert_eq!(packets.len(), frames.div_ceil(fpp));
        for (i, d) in packets.iter().enumerate() {
            let (h, payload) = RtpHeader::parse(d).unwrap();
            prop_assert_eq!(h.sequence, seq.wrapping_add(i as u16));
            prop_assert_eq!(h.timestamp, ts.wrapping_add((i * fpp) as u32));
            prop_assert_eq!(payload.len(), format.payload_len());
        }
        let (got, c) = receive(format, &packets);
        prop_assert_eq!(got.len(), packets.len());
        prop_assert_eq!((c.lost, c.malformed, c.duplicates), (0, 0, 0));
        let flat: Vec<f32> = got.iter().flat_map(|g| g.2.iter().copied()).collect();
        let tol = step(enc);
        for (i, (a, b)) in samples.iter().zip(&flat).enumerate() {
            prop_assert!((a - b).abs() <= tol, "sample {}: sent {} got {}", i, a, b);
        }
        // The padding of the last packet is silence.
        prop_assert!(flat[samples.len()..].iter().all(|s| *s == 0.0));
    }

    #[test]
    fn reordered_duplicated_and_lost_packets(
        channels in 1u16..=4,
        packets_n in 2usize..120,
        seq in any::<u16>(),
        swaps in proptest::collection::vec(any::<bool>(), 120),
        drops in proptest::collection::vec(0u8..10, 120),
        dups in proptest::collection::vec(0u8..10, 120),
    ) {
        let format = AudioFormat::new(AudioEncoding::L24, channels).unwrap();
        let fpp = format.frames_per_packet();
        let ch = usize::from(channels);
        // Packet k holds the value k / 1024 in every sample: easy to recognise.
        let samples: Vec<f32> = (0..packets_n * fpp * ch)
            .map(|i| (i / (fpp * ch)) as f32 / 1024.0)
            .collect();
        let packets = packetize(format, &samples, fpp * 3, seq, 0);
        // Lose ~10 %, swap neighbours, duplicate ~10 %. Never the first packet (the stream
        // starts at the first one that arrives: nothing earlier can be known) nor the last
        // (nothing after it would reveal the loss).
        let lost: Vec<bool> = (0..packets_n)
            .map(|k| k > 0 && k + 1 < packets_n && drops[k] == 0)
            .collect();
        let mut order: Vec<usize> = (0..packets_n).collect();
        let mut k = 1;
        while k + 1 < packets_n {
            if swaps[k] {
                order.swap(k, k + 1);
                k += 1;
            }
            k += 1;
        }
        let mut wire = Vec::new();
        for &k in &order {
            if !lost[k] {
                wire.push(packets[k].clone());
                if dups[k] == 0 {
                    wire.push(packets[k].clone());
                }
            }
        }
        let (got, c) = receive(format, &wire);
        let lost_n = lost.iter().filter(|l| **l).count() as u64;
        prop_assert_eq!(got.len(), packets_n, "{:?}", c);
        prop_assert_eq!(c.lost, lost_n);
        prop_assert_eq!(c.concealed_samples, lost_n * fpp as u64);
        prop_assert_eq!(c.duplicates, dups.iter().zip(&lost).take(packets_n).filter(|(d, l)| **d == 0 && !**l).count() as u64);
        prop_assert_eq!(c.late, 0);
        for (k, (ts, concealed, s)) in got.iter().enumerate() {
            prop_assert_eq!(*ts, (k * fpp) as u32);
            prop_assert_eq!(*concealed, lost[k]);
            let want = if lost[k] { 0.0 } else { k as f32 / 1024.0 };
            prop_assert!(s.iter().all(|v| *v == want), "packet {}", k);
        }
    }

    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..40),
        channels in 1u16..=8,
        enc in encoding(),
    ) {
        let format = AudioFormat::new(enc, channels).unwrap();
        let mut jb = AudioJitterBuffer::new(format, AudioJitterConfig { payload_type: None, ..Default::default() }).unwrap();
        let mut out = 0usize;
        for (i, d) in datagrams.iter().enumerate() {
            let _ = RtpHeader::parse(d);
            jb.push(d, i as u64 * 1_000_000, &mut |c: AudioChunk<'_>| out += c.samples.len());
        }
        jb.poll(u64::MAX / 2, &mut |c: AudioChunk<'_>| out += c.samples.len());
        jb.flush(&mut |c: AudioChunk<'_>| out += c.samples.len());
        prop_assert_eq!(out % format.samples_per_packet(), 0);
        prop_assert_eq!(jb.counters().datagrams, datagrams.len() as u64);
    }

    #[test]
    fn mutated_packets_never_panic(
        flips in proptest::collection::vec((0usize..300, any::<u8>()), 1..8),
        cut in 0usize..300,
    ) {
        let format = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
        let packets = packetize(format, &[0.25; 48 * 2 * 4], 48, 0xfffe, 0);
        let mut jb = AudioJitterBuffer::new(format, AudioJitterConfig::default()).unwrap();
        for p in &packets {
            let mut d = p.clone();
            for (at, v) in &flips {
                if let Some(b) = d.get_mut(*at) {
                    *b = *v;
                }
            }
            d.truncate(cut.max(1));
            jb.push(&d, 0, &mut |_| {});
        }
        jb.flush(&mut |_| {});
    }

    #[test]
    fn arbitrary_sdp_never_panics(text in "[ -~\r\n]{0,300}", cut in 0usize..400) {
        let _ = AudioSdpSession::parse(&text);
        let format = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
        let valid = AudioSdpSession {
            name: "s".into(),
            ttl: 4,
            ..AudioSdpSession::new([10, 0, 0, 1].into(), ([239, 0, 0, 1], 5004).into(), format)
        }
        .to_sdp();
        let mut mixed = valid[..cut.min(valid.len())].to_string();
        mixed.push_str(&text);
        let _ = AudioSdpSession::parse(&mixed);
    }
}
