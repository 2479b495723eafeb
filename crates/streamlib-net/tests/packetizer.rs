//! Packetizer ↔ jitter buffer round trips, and hostile datagrams.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use proptest::prelude::*;
use streamlib_net::*;

fn sampling() -> impl Strategy<Value = Sampling> {
    prop_oneof![
        Just(Sampling::YCbCr422Depth8),
        Just(Sampling::YCbCr422Depth10),
        Just(Sampling::RgbDepth8),
    ]
}

/// With `uniform_length`, every 1080p packet but the last has one length (the padding a GSO
/// sender relies on), a few bytes over the unpadded longest at most, and still reassembles.
#[test]
fn uniform_length_pads_every_packet_but_the_last() {
    for s in [
        Sampling::YCbCr422Depth8,
        Sampling::YCbCr422Depth10,
        Sampling::RgbDepth8,
    ] {
        let f = format(s, 1920, 1080);
        let cfg = PacketizerConfig {
            uniform_length: true,
            ..Default::default()
        };
        let mut p = Packetizer::new(f, cfg).unwrap();
        let unpadded = Packetizer::new(f, PacketizerConfig::default()).unwrap();
        assert_eq!(unpadded.uniform_len(), 0);
        assert_eq!(p.packets_per_frame(), unpadded.packets_per_frame());
        let len = p.uniform_len();
        assert!(len <= 1472 && len > 1400, "{s:?}: {len}");
        let px = pattern(&f, 3);
        let stride = f.layout().unwrap().stride() as usize;
        let packets = packetize(&mut p, &px, stride, 77);
        let (last, rest) = packets.split_last().unwrap();
        assert!(rest.iter().all(|d| d.len() == len), "{s:?}");
        assert!(last.len() <= len);
        let padded = rest.iter().filter(|d| d[0] & 0x20 != 0).count();
        // 1920 RGB pixels happen to fill every packet exactly; 4:2:2 lines do not.
        assert_eq!(
            padded > 0,
            s != Sampling::RgbDepth8,
            "{s:?}: {padded} padded"
        );
        let mut out = Out::new();
        let mut jb = jitter(f, JitterConfig::default());
        for d in &packets {
            jb.push(d, 0, &mut collect(&mut out));
        }
        assert_eq!(out.len(), 1);
        assert!(
            out[0].1 && out[0].3 == px,
            "{s:?}: reassembled frame differs"
        );
        assert_eq!(jb.counters().malformed, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        s in sampling(),
        half_w in 1u32..200,
        h in 1u32..40,
        mtu in 100usize..9000,
        seed in any::<u32>(),
        seq in any::<u32>(),
        ts in any::<u32>(),
        uniform_length in any::<bool>(),
    ) {
        let w = if s == Sampling::RgbDepth8 { half_w * 2 - 1 } else { half_w * 2 };
        let f = format(s, w, h);
        let max = udp_payload_for_mtu(mtu, false).max(40);
        let cfg = PacketizerConfig {
            initial_sequence: seq,
            max_udp_payload: max,
            uniform_length,
            ..Default::default()
        };
        let mut p = Packetizer::new(f, cfg).unwrap();
        let px = pattern(&f, seed);
        let stride = f.layout().unwrap().stride() as usize;
        let packets = packetize(&mut p, &px, stride, ts);
        prop_assert_eq!(packets.len(), p.packets_per_frame());
        prop_assert_eq!(p.next_sequence(), seq.wrapping_add(packets.len() as u32));
        for (i, d) in packets.iter().enumerate() {
            prop_assert!(d.len() <= max);
            if uniform_length && i + 1 < packets.len() {
                prop_assert!(d.len() <= p.uniform_len());
            }
            let (h, _) = RtpHeader::parse(d).unwrap();
            prop_assert_eq!(h.marker, i + 1 == packets.len());
        }
        let mut out = Out::new();
        let mut jb = jitter(f, JitterConfig::default());
        // Reverse order: rows carry their position, so order must not matter.
        for d in packets.iter().rev() {
            jb.push(d, 0, &mut collect(&mut out));
        }
        jb.flush(1, &mut collect(&mut out));
        prop_assert_eq!(out.len(), 1);
        prop_assert!(out[0].1, "complete");
        prop_assert_eq!(out[0].0, ts);
        prop_assert!(out[0].3 == px, "pixels differ");
        prop_assert_eq!(jb.counters().malformed, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let f = format(Sampling::YCbCr422Depth10, 64, 16);
        let mut jb = jitter(f, JitterConfig { payload_type: None, ..Default::default() });
        let mut out = Out::new();
        jb.push(&data, 0, &mut collect(&mut out));
        jb.flush(1, &mut collect(&mut out));
        let c = jb.counters();
        prop_assert_eq!(c.datagrams, 1);
        prop_assert_eq!(c.malformed + c.packets, 1);
    }

    #[test]
    fn mutated_packets_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let f = format(Sampling::YCbCr422Depth8, 64, 16);
        let mut p = Packetizer::new(f, PacketizerConfig { max_udp_payload: 300, ..Default::default() }).unwrap();
        let px = pattern(&f, 1);
        let packets = packetize(&mut p, &px, 128, 9);
        let mut jb = jitter(f, JitterConfig::default());
        let mut out = Out::new();
        for d in &packets {
            let mut d = d.clone();
            for (i, v) in &flips {
                let i = i.index(d.len());
                d[i] = *v;
            }
            let keep = cut.index(d.len() + 1);
            jb.push(&d[..keep], 0, &mut collect(&mut out));
        }
        jb.flush(1, &mut collect(&mut out));
        let c = jb.counters();
        prop_assert_eq!(c.datagrams, packets.len() as u64);
        prop_assert_eq!(c.malformed + c.packets + c.duplicates + c.late + c.foreign_ssrc + c.pool_exhausted, c.datagrams);
    }
}

#[test]
fn malformed_reasons_are_counted() {
    let f = format(Sampling::YCbCr422Depth8, 64, 4);
    let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
    let px = pattern(&f, 0);
    let good = packetize(&mut p, &px, 128, 0).remove(0);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    let mut sink = collect(&mut out);
    jb.push(&good[..5], 0, &mut sink); // truncated RTP header
    let mut v1 = good.clone();
    v1[0] = 0x40;
    jb.push(&v1, 0, &mut sink); // version 1
    let mut pt = good.clone();
    pt[1] = 97;
    jb.push(&pt, 0, &mut sink); // payload type
    let mut line = good.clone();
    line[16] = 0x7f; // line number 32512+ > height
    jb.push(&line, 0, &mut sink);
    let mut field = good.clone();
    field[16] |= 0x80;
    jb.push(&field, 0, &mut sink);
    let mut long = good.clone();
    long[14] = 0xff; // SRD length beyond the datagram
    jb.push(&long, 0, &mut sink);
    let c = *jb.counters();
    assert_eq!(c.malformed, 6);
    assert_eq!(c.malformed_by[Malformed::Truncated as usize], 1);
    assert_eq!(c.malformed_by[Malformed::Version as usize], 1);
    assert_eq!(c.malformed_by[Malformed::PayloadType as usize], 1);
    assert_eq!(c.malformed_by[Malformed::RowOutOfBounds as usize], 1);
    assert_eq!(c.malformed_by[Malformed::Interlaced as usize], 1);
    assert_eq!(c.malformed_by[Malformed::PayloadHeader as usize], 1);
    assert_eq!(c.packets, 0);
}
