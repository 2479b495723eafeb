//! Per-hop cost of a 1080p RGBA frame crossing into a child process and back (a slot index
//! over the control socket; the child touches one byte and answers), against an in-process
//! handoff of the same slot to a worker thread and back, in the same run. The pool's
//! bytes-copied counter is printed at the end: it must be 0.
//!
//! The bench binary is its own worker: started with `STREAMLIB_PROCESS_WORKER` set it runs
//! the echo loop instead of criterion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "bench"
)]

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use criterion::Criterion;
use streamlib_ports::PixelFormat;
use streamlib_process::{
    BufferPool, Child, ChildOptions, FrameSlot, Message, ShmPool, SlotLease, Worker,
};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_LEN: usize = (WIDTH * HEIGHT * 4) as usize;

fn frame_slot() -> FrameSlot {
    FrameSlot {
        port: 0,
        slot: 0,
        generation: 0,
        len: FRAME_LEN as u32,
        width: WIDTH,
        height: HEIGHT,
        format: PixelFormat::Rgba8,
        stride: WIDTH * 4,
    }
}

/// The child: touch one byte of every frame, send it back, answer `Done`.
fn worker_main() {
    let Ok((mut worker, _)) = Worker::connect() else {
        std::process::exit(2);
    };
    if worker.ready().is_err() {
        std::process::exit(2);
    }
    let mut frame = None;
    loop {
        let Ok(message) = worker.receive() else {
            std::process::exit(0)
        };
        match message {
            Message::Frame(slot) => frame = Some(slot),
            Message::TickEnd { frame: number } => {
                if let Some(slot) = frame.take() {
                    if let Ok(bytes) = worker.frame_mut(&slot) {
                        bytes[0] = bytes[0].wrapping_add(1);
                    }
                    let _ = worker.send(&Message::Frame(slot));
                }
                let _ = worker.send(&Message::Done {
                    frame: number,
                    process_ns: 0,
                });
            }
            Message::Stop => std::process::exit(0),
            _ => {}
        }
    }
}

fn hops(c: &mut Criterion) {
    let pool = ShmPool::new("bench", 4, FRAME_LEN).unwrap();
    let mut group = c.benchmark_group("hop_1080p_rgba");

    let mut command = Command::new(std::env::current_exe().unwrap());
    command.stdin(Stdio::null()).stdout(Stdio::null());
    let mut child = Child::spawn(command, "touch", &[], &pool, ChildOptions::default()).unwrap();
    let mut tick = 0_u64;
    group.bench_function("child_process", |b| {
        b.iter(|| {
            tick += 1;
            let mut lease = pool.acquire().unwrap();
            lease.as_mut_slice()[0] = tick as u8;
            child.start_tick(tick, 0).unwrap();
            child.send_frame(lease, frame_slot()).unwrap();
            child
                .finish_tick(|lease, _| {
                    black_box(lease.as_slice()[0]);
                })
                .unwrap();
        });
    });

    // What `@process` does: the producer's frame is a buffer of a pool over reserved slots
    // (its `PoolProvider`); the proxy finds its slot, lends it, and keeps the buffer until the
    // child answers.
    let storage = pool.reserve(2).unwrap();
    // SAFETY: fresh storage from `reserve`, this pool its only user.
    let frames = unsafe { BufferPool::with_storage("bench-frames", FRAME_LEN, storage) }.unwrap();
    group.bench_function("child_process_pool_buffer", |b| {
        b.iter(|| {
            tick += 1;
            let mut buf = frames.acquire().unwrap();
            buf[0] = tick as u8;
            let buf = buf.freeze();
            let slot = pool.slot_of(buf.as_ptr()).unwrap();
            child.start_tick(tick, 0).unwrap();
            child
                .send_frame(pool.lend(slot).unwrap(), frame_slot())
                .unwrap();
            child
                .finish_tick(|_, answer| {
                    black_box(answer.slot() == slot && buf[0] == (tick as u8).wrapping_add(1));
                })
                .unwrap();
            drop(buf);
        });
    });
    drop(child);

    // The same slot handed to a thread and back through std's channels.
    let (to_worker, from_parent) = mpsc::sync_channel::<SlotLease>(1);
    let (to_parent, from_worker) = mpsc::sync_channel::<SlotLease>(1);
    let thread = std::thread::spawn(move || {
        while let Ok(mut lease) = from_parent.recv() {
            let bytes = lease.as_mut_slice();
            bytes[0] = bytes[0].wrapping_add(1);
            if to_parent.send(lease).is_err() {
                break;
            }
        }
    });
    group.bench_function("in_process_thread", |b| {
        b.iter(|| {
            tick += 1;
            let mut lease = pool.acquire().unwrap();
            lease.as_mut_slice()[0] = tick as u8;
            to_worker.send(lease).unwrap();
            let lease = from_worker.recv().unwrap();
            black_box(lease.as_slice()[0]);
        });
    });
    drop(to_worker);
    thread.join().unwrap();

    // What crossing would cost if the pixels were copied, once each way: the bound the
    // zero-copy hop is measured against (memory bandwidth, not a peer).
    let from = vec![0x5a_u8; FRAME_LEN];
    let mut to = vec![0_u8; FRAME_LEN];
    group.bench_function("copy_frame_twice", |b| {
        b.iter(|| {
            to.copy_from_slice(black_box(&from));
            black_box(&mut to);
            to.copy_from_slice(black_box(&from));
            black_box(&to);
        });
    });
    group.finish();
    eprintln!("bytes copied into the pool: {}", pool.bytes_copied());
}

fn main() {
    if Worker::is_worker() {
        worker_main();
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    hops(&mut criterion);
    criterion.final_summary();
}
