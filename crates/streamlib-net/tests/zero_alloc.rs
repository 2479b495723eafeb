//! After warm-up, packetizing and reassembling frames allocates nothing per packet or frame.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use streamlib_net::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    run(&mut p, &mut jb, 10, 50, 0);
    run(&mut p, &mut jb, 60, 50, 97);
    let allocated = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(
        allocated,
        0,
        "allocations over 100 frames ({} packets each)",
        p.packets_per_frame()
    );
    assert_eq!(jb.counters().frames_complete, 60);
    assert_eq!(jb.counters().frames_incomplete, 50);
    assert!(delivered >= 60);
}
