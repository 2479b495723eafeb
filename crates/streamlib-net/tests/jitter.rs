//! Jitter buffer policy: reordering, duplicates, losses, incomplete frames, wrap-around.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::*;
use streamlib_net::*;

const MS: u64 = 1_000_000;

fn setup(seq: u32) -> (VideoFormat, Packetizer) {
    let f = format(Sampling::YCbCr422Depth8, 64, 8);
    // 300-byte packets: a 64×8 UYVY frame (1024 bytes) takes several.
    let cfg = PacketizerConfig {
        max_udp_payload: 300,
        initial_sequence: seq,
        ..Default::default()
    };
    (f, Packetizer::new(f, cfg).unwrap())
}

#[test]
fn reordered_and_duplicated_packets_still_make_whole_frames() {
    let (f, mut p) = setup(0);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    for n in 0..3u32 {
        let px = pattern(&f, n);
        let mut packets = packetize(&mut p, &px, 128, n * 3000);
        packets.swap(0, 2);
        let dup = packets[1].clone();
        packets.insert(3, dup);
        for d in &packets {
            jb.push(d, u64::from(n) * 33 * MS, &mut collect(&mut out));
        }
        assert_eq!(out.len() as u32, n + 1, "frame {n} delivered on completion");
        assert!(out[n as usize].1);
        assert!(out[n as usize].3 == px);
    }
    let c = jb.counters();
    assert_eq!(c.duplicates, 3);
    assert_eq!(c.reordered, 6, "two late packets per frame");
    assert_eq!((c.frames_complete, c.lost_packets, c.malformed), (3, 0, 0));
}

#[test]
fn a_lost_packet_makes_an_incomplete_frame_per_policy() {
    for policy in [IncompletePolicy::Drop, IncompletePolicy::DeliverMarked] {
        let (f, mut p) = setup(0);
        let config = JitterConfig {
            policy,
            window: Duration::from_millis(2),
            ..Default::default()
        };
        let mut jb = jitter(f, config);
        let mut out = Out::new();
        let frame0 = packetize(&mut p, &pattern(&f, 0), 128, 0);
        let frame1 = packetize(&mut p, &pattern(&f, 1), 128, 3000);
        // Frame 0 loses its second packet (lines 1..3 or so).
        for (i, d) in frame0.iter().enumerate() {
            if i != 1 {
                jb.push(d, 0, &mut collect(&mut out));
            }
        }
        // Marker seen: the deadline is 2 ms later. Not yet at 1 ms.
        jb.poll(MS, &mut collect(&mut out));
        assert!(out.is_empty());
        jb.poll(2 * MS, &mut collect(&mut out));
        let c = *jb.counters();
        assert_eq!(c.lost_packets, 1);
        match policy {
            IncompletePolicy::Drop => {
                assert!(out.is_empty());
                assert_eq!(c.frames_dropped, 1);
            }
            IncompletePolicy::DeliverMarked => {
                assert_eq!(out.len(), 1);
                assert!(!out[0].1);
                assert!(!out[0].2.is_empty(), "missing lines listed");
                assert_eq!(c.frames_incomplete, 1);
            }
        }
        // The late packet of frame 0 is dropped as late; frame 1 is whole.
        jb.push(&frame0[1], 3 * MS, &mut collect(&mut out));
        assert_eq!(jb.counters().late, 1);
        for d in &frame1 {
            jb.push(d, 4 * MS, &mut collect(&mut out));
        }
        assert!(out.last().unwrap().1);
        assert_eq!(out.last().unwrap().0, 3000);
    }
}

#[test]
fn missing_lines_are_listed_exactly() {
    let f = format(Sampling::YCbCr422Depth8, 64, 8);
    // One line per packet: 128 bytes + headers.
    let cfg = PacketizerConfig {
        max_udp_payload: 12 + 2 + 6 + 128,
        ..Default::default()
    };
    let mut p = Packetizer::new(f, cfg).unwrap();
    let packets = packetize(&mut p, &pattern(&f, 0), 128, 0);
    assert_eq!(packets.len(), 8);
    let config = JitterConfig {
        policy: IncompletePolicy::DeliverMarked,
        ..Default::default()
    };
    let mut jb = jitter(f, config);
    let mut out = Out::new();
    for (i, d) in packets.iter().enumerate() {
        if ![2, 3, 6].contains(&i) {
            jb.push(d, 0, &mut collect(&mut out));
        }
    }
    jb.poll(10 * MS, &mut collect(&mut out));
    assert_eq!(
        out[0].2,
        vec![
            LineSpan { first: 2, count: 2 },
            LineSpan { first: 6, count: 1 }
        ]
    );
    assert_eq!(jb.counters().lost_packets, 3);
}

#[test]
fn a_newer_frame_sets_the_deadline_of_an_older_one_without_marker() {
    let (f, mut p) = setup(0);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    let frame0 = packetize(&mut p, &pattern(&f, 0), 128, 0);
    let frame1 = packetize(&mut p, &pattern(&f, 1), 128, 3000);
    // Frame 0 loses its marker packet; frame 1 starts.
    for d in &frame0[..frame0.len() - 1] {
        jb.push(d, 0, &mut collect(&mut out));
    }
    jb.push(&frame1[0], MS, &mut collect(&mut out));
    jb.poll(5 * MS, &mut collect(&mut out));
    assert!(out.is_empty());
    jb.poll(6 * MS, &mut collect(&mut out));
    assert_eq!(jb.counters().frames_dropped, 1);
    for d in &frame1[1..] {
        jb.push(d, 7 * MS, &mut collect(&mut out));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(jb.counters().frames_complete, 1);
    // The marker packet of frame 0 counted as lost in frame 0.
    assert_eq!(jb.counters().lost_packets, 1);
}

#[test]
fn frames_across_16_and_32_bit_sequence_wraps() {
    for start in [0xffff - 3, u32::MAX - 3] {
        let (f, mut p) = setup(start);
        let mut jb = jitter(f, JitterConfig::default());
        let mut out = Out::new();
        for n in 0..4u32 {
            for d in packetize(
                &mut p,
                &pattern(&f, n),
                128,
                n.wrapping_mul(3000).wrapping_sub(6000),
            ) {
                jb.push(&d, u64::from(n) * 33 * MS, &mut collect(&mut out));
            }
        }
        let c = jb.counters();
        assert_eq!(
            (c.frames_complete, c.lost_packets, c.late, c.duplicates),
            (4, 0, 0, 0),
            "{start:#x}"
        );
        // RTP timestamps wrapped too (started at -6000).
        assert_eq!(out[3].0, 3000);
    }
}

#[test]
fn frames_held_downstream_exhaust_the_pool_and_are_counted() {
    let (f, mut p) = setup(0);
    let pool = streamlib_ports::FramePool::new("small", f.layout().unwrap(), 2, 2).unwrap();
    let mut jb = JitterBuffer::new(f, pool, JitterConfig::default()).unwrap();
    let mut held = Vec::new();
    for n in 0..3u32 {
        for d in packetize(&mut p, &pattern(&f, n), 128, n * 3000) {
            jb.push(&d, 0, &mut |d: Delivered<'_>| held.push(d.frame));
        }
    }
    assert_eq!(held.len(), 2);
    assert!(jb.counters().pool_exhausted > 0);
    drop(held);
    for d in packetize(&mut p, &pattern(&f, 3), 128, 9000) {
        jb.push(&d, 0, &mut |_| {});
    }
    assert_eq!(jb.counters().frames_complete, 3);
}

#[test]
fn bad_configs_are_refused() {
    let f = format(Sampling::YCbCr422Depth8, 64, 8);
    let pool = streamlib_ports::FramePool::new("p", f.layout().unwrap(), 2, 2).unwrap();
    let config = JitterConfig {
        window: Duration::from_millis(20),
        ..Default::default()
    };
    let err = JitterBuffer::new(f, pool.clone(), config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("window") && err.contains("1 ..= 10 ms"),
        "{err}"
    );
    let other = format(Sampling::RgbDepth8, 64, 8);
    let err = JitterBuffer::new(other, pool, JitterConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool layout"), "{err}");
}

/// A sender that restarts (same SSRC, sequence from 0, earlier timestamps) or whose clock
/// steps back (PTP locking) is followed after `RESYNC_PACKETS` far-older packets; a few stray
/// old packets are only late.
#[test]
fn a_restarted_or_stepped_source_is_followed() {
    let frames = |p: &mut Packetizer, f: &VideoFormat, ts0: u32, n: u32| -> Vec<Vec<u8>> {
        (0..n)
            .flat_map(|k| packetize(p, &pattern(f, k), 128, ts0.wrapping_add(k * 3000)))
            .collect()
    };
    let dropped = JitterBuffer::RESYNC_PACKETS - 1;
    // A restart: the same SSRC, sequence numbers and timestamps start over.
    let (f, mut p) = setup(70_000);
    let per_frame = p.packets_per_frame() as u32;
    // Frames after the resync that arrive whole: those starting after the dropped packets.
    let whole_after = |n: u32| n - dropped.div_ceil(per_frame);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    let before = frames(&mut p, &f, 50_000_000, 4);
    let (_, mut restarted) = setup(0);
    let after = frames(&mut restarted, &f, 1_000, 12);
    for (i, d) in before.iter().chain(&after).enumerate() {
        jb.push(d, i as u64 * MS, &mut collect(&mut out));
    }
    let c = *jb.counters();
    assert_eq!(c.resyncs, 1, "{c:?}");
    assert_eq!(c.late, u64::from(dropped), "{c:?}");
    assert_eq!(c.frames_complete, u64::from(4 + whole_after(12)), "{c:?}");
    assert_eq!(out.last().unwrap().0, 1_000 + 11 * 3000);
    assert!(out.last().unwrap().3 == pattern(&f, 11));

    // A clock step back with the sequence running on: followed the same way.
    let (f, mut p) = setup(0);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    let before = frames(&mut p, &f, 900_000_000, 3);
    let after = frames(&mut p, &f, 100_000_000, 12);
    for (i, d) in before.iter().chain(&after).enumerate() {
        jb.push(d, i as u64 * MS, &mut collect(&mut out));
    }
    let c = *jb.counters();
    assert_eq!(
        (c.resyncs, c.frames_complete),
        (1, u64::from(3 + whole_after(12))),
        "{c:?}"
    );

    // A handful of ancient packets (a far older sequence and time) in a live stream: late,
    // no resync.
    let (f, mut ancient) = setup(0);
    let (_, mut p) = setup(100_000);
    let mut jb = jitter(f, JitterConfig::default());
    let mut out = Out::new();
    let old = frames(&mut ancient, &f, 0, 1);
    let live = frames(&mut p, &f, 1_000_000, 3);
    let first = per_frame as usize;
    for (i, d) in live[..first]
        .iter()
        .chain(&old[..3])
        .chain(&live[first..])
        .enumerate()
    {
        jb.push(d, i as u64 * MS, &mut collect(&mut out));
    }
    let c = *jb.counters();
    assert_eq!((c.resyncs, c.late, c.frames_complete), (0, 3, 3), "{c:?}");
}
