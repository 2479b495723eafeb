//! After warm-up, packetizing and reassembling frames allocates nothing per packet or frame.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use streamlib_net::*;
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_allocates_nothing() {
    let f = format(Sampling::YCbCr422Depth10, 640, 360);
    let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
    let px = pattern(&f, 3);
    let mut jb = jitter(
        f,
        JitterConfig {
            policy: IncompletePolicy::DeliverMarked,
            ..Default::default()
        },
    );
    let mut buf = vec![0u8; p.max_packet_len()];
    let mut delivered = 0u64;
    let mut run =
        |p: &mut Packetizer, jb: &mut JitterBuffer, from: u32, frames: u32, drop_every: usize| {
            for n in from..from + frames {
                let mut frame = p.frame(&px, 1280, n * 3000).unwrap();
                let mut i = 0;
                while let Some(len) = frame.next_into(&mut buf) {
                    i += 1;
                    if drop_every > 0 && i % drop_every == 0 {
                        continue; // a lost packet: incomplete frames take the same path
                    }
                    jb.push(
                        &buf[..len],
                        u64::from(n) * 33_000_000,
                        &mut |d: Delivered<'_>| {
                            delivered += u64::from(d.frame.cpu_bytes().is_some());
                        },
                    );
                }
                jb.poll(u64::from(n) * 33_000_000 + 20_000_000, &mut |_| {});
            }
        };
    run(&mut p, &mut jb, 0, 10, 0);
    let before = allocations();
    run(&mut p, &mut jb, 10, 50, 0);
    run(&mut p, &mut jb, 60, 50, 97);
    let allocated = allocations() - before;
    assert_eq!(
        allocated,
        0,
        "allocations over 100 frames ({} packets each)",
        p.packets_per_frame()
    );
    assert_eq!(jb.counters().frames_complete, 60);
    assert_eq!(jb.counters().frames_incomplete, 50);
    assert!(delivered >= 60);

    // In the same test: the allocation counter is process-wide, and a second test running
    // beside this one would be counted too.
    audio_steady_state_allocates_nothing();
}

/// ST 2110-30: packetizing 10 ms buffers and reassembling them through the audio jitter
/// buffer, with reordering, duplicates and losses, allocates nothing after warm-up.
fn audio_steady_state_allocates_nothing() {
    let format = AudioFormat::new(AudioEncoding::L24, 8).unwrap();
    let mut p = AudioPacketizer::new(format, AudioPacketizerConfig::default()).unwrap();
    let mut jb = AudioJitterBuffer::new(format, AudioJitterConfig::default()).unwrap();
    let buffer: Vec<f32> = (0..480 * 8).map(|i| (i as f32 / 4000.0).sin()).collect();
    let mut held = vec![0u8; format.packet_len()];
    let mut held_len = 0;
    let mut received = 0u64;
    let mut n = 0u64;
    let mut run = |p: &mut AudioPacketizer, jb: &mut AudioJitterBuffer, buffers: u32| {
        for b in 0..buffers {
            p.push(&buffer, b * 480, &mut |d: &[u8]| {
                n += 1;
                let now = n * 1_000_000;
                let mut sink = |c: AudioChunk<'_>| received += c.samples.len() as u64;
                match n % 50 {
                    // Lost.
                    7 => {}
                    // Held back and sent after the next one (reordered).
                    20 => {
                        held[..d.len()].copy_from_slice(d);
                        held_len = d.len();
                    }
                    21 => {
                        jb.push(d, now, &mut sink);
                        jb.push(&held[..held_len], now, &mut sink);
                    }
                    // Duplicated.
                    30 => {
                        jb.push(d, now, &mut sink);
                        jb.push(d, now, &mut sink);
                    }
                    _ => jb.push(d, now, &mut sink),
                }
                jb.poll(now, &mut sink);
            });
        }
    };
    run(&mut p, &mut jb, 20);
    let before = allocations();
    run(&mut p, &mut jb, 200);
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "allocations over 2000 audio packets");
    let c = *jb.counters();
    assert_eq!((c.lost, c.duplicates, c.reordered), (44, 44, 44), "{c:?}");
    assert!(received > 0);
}
