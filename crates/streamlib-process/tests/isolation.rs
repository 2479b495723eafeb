//! Real child processes: this test binary re-executes itself as the worker (`worker_entry`,
//! selected by an environment variable) in a role — echo frames, segfault, abort, exit 0
//! mid-run, hang, never start, write garbage, unmap its pool, forge a slot — and each test
//! checks that the parent gets a typed, clear failure quickly, with every slot back in the pool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_ports::PixelFormat;
use streamlib_process::{
    Child, ChildEnd, ChildId, ChildOptions, FrameSlot, Message, ProcessError, ShmPool, Worker,
};

const ROLE: &str = "STREAMLIB_PROCESS_TEST_ROLE";
const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_LEN: usize = (WIDTH * HEIGHT * 4) as usize;
/// The tick period the tests pretend to run at.
const TICK: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The child side.

/// The worker's entry point: does nothing unless this process was started as a worker.
#[test]
fn worker_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let code = match run_worker(&role) {
        Ok(()) => 0,
        Err(ProcessError::ParentGone) => 0,
        Err(error) => {
            eprintln!("worker {role}: {error}");
            3
        }
    };
    std::process::exit(code);
}

fn invert(bytes: &mut [u8]) {
    // SAFETY: any bit pattern is a valid u64 and u8; align_to_mut splits at alignment.
    let (head, words, tail) = unsafe { bytes.align_to_mut::<u64>() };
    head.iter_mut().for_each(|b| *b = !*b);
    words.iter_mut().for_each(|w| *w = !*w);
    tail.iter_mut().for_each(|b| *b = !*b);
}

fn run_worker(role: &str) -> Result<(), ProcessError> {
    let (name, at) = role.split_once(':').unwrap_or((role, "1"));
    let at: u64 = at.parse().unwrap_or(1);
    if name == "never-start" {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    let (mut worker, startup) = Worker::connect()?;
    assert_eq!(startup.handler, "invert");
    worker.ready()?;
    let mut frames: [Option<FrameSlot>; 8] = [None; 8];
    let mut tick = 0;
    loop {
        let message = worker.receive()?;
        match message {
            Message::Tick { .. } => {
                tick += 1;
                frames = [None; 8];
            }
            Message::Frame(frame) => {
                if let Some(free) = frames.iter_mut().find(|f| f.is_none()) {
                    *free = Some(frame);
                }
            }
            Message::TickEnd { frame: number } => {
                let started = Instant::now();
                if tick == at {
                    misbehave(name, &mut worker, frames[0])?;
                }
                for frame in frames.iter().flatten() {
                    if name == "limits" {
                        let report = limits_report();
                        let bytes = worker.frame_mut(frame)?;
                        bytes[..report.len()].copy_from_slice(report.as_bytes());
                        bytes[report.len()] = 0;
                    } else {
                        invert(worker.frame_mut(frame)?);
                    }
                    if name != "hold" {
                        worker.send(&Message::Frame(*frame))?;
                    }
                }
                let process_ns = started.elapsed().as_nanos() as u64;
                worker.send(&Message::Done {
                    frame: number,
                    process_ns,
                })?;
            }
            Message::Stop => return Ok(()),
            _ => {}
        }
    }
}

/// Does what role `name` says, at its tick.
fn misbehave(
    name: &str,
    worker: &mut Worker,
    frame: Option<FrameSlot>,
) -> Result<(), ProcessError> {
    match name {
        // SAFETY: none: writing through a wild pointer is the point; the kernel sends SIGSEGV.
        "segv" => unsafe { (16 as *mut u64).write_volatile(1) },
        "abort" => std::process::abort(),
        "exit0" => std::process::exit(0),
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        "garbage" => {
            worker
                .channel_mut()
                .send_raw(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2])?;
            std::thread::sleep(Duration::from_secs(60));
        }
        "forge" => {
            let mut forged = frame.unwrap_or(FrameSlot {
                port: 0,
                slot: 0,
                generation: 0,
                len: 0,
                width: 1,
                height: 1,
                format: PixelFormat::Rgba8,
                stride: 4,
            });
            forged.slot = forged.slot.wrapping_add(1) % 4;
            worker.send(&Message::Frame(forged))?;
            std::thread::sleep(Duration::from_secs(60));
        }
        "unmap" => {
            let truncated = worker.pool_mut().truncate_for_test();
            worker.send_error(&format!("truncate: {truncated:?}"))?;
            worker.pool_mut().unmap_slots_for_test();
            // frame_mut hands out the (now unmapped) slot: the write faults.
            if let Some(frame) = frame {
                invert(worker.frame_mut(&frame)?);
            }
        }
        "alloc" => {
            let big = vec![1_u8; 1 << 30];
            std::hint::black_box(&big);
        }
        _ => {}
    }
    Ok(())
}

fn limits_report() -> String {
    // SAFETY: sched_getaffinity fills the zeroed set; getpriority and getrlimit are plain calls.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
        let cpus: Vec<String> = (0..64)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .map(|c| c.to_string())
            .collect();
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_AS, &mut limit);
        format!("cpus={} nice={nice} as={}", cpus.join(","), limit.rlim_cur)
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side.

fn worker(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "worker_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

fn options() -> ChildOptions {
    ChildOptions {
        id: ChildId(1),
        // Generous on a loaded machine: a debug test binary starting under load.
        start_timeout: Duration::from_secs(20),
        tick_deadline: Duration::from_secs(2),
        ..ChildOptions::default()
    }
}

fn pool(name: &str) -> ShmPool {
    ShmPool::new(name, 4, FRAME_LEN).unwrap_or_else(|e| panic!("pool: {e}"))
}

fn spawn(role: &str, pool: &ShmPool, options: ChildOptions) -> Child {
    Child::spawn(worker(role), "invert", &[("mode", "test")], pool, options)
        .unwrap_or_else(|e| panic!("spawn {role}: {e}"))
}

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

fn pattern(frame: u64, i: usize) -> u8 {
    (i as u64).wrapping_mul(31).wrapping_add(frame) as u8
}

/// One hop: fill a slot, hand it over, check the child inverted it in place. Returns the time
/// from the tick's start (after the fill) to the parent's answer (success or failure).
fn hop(child: &mut Child, pool: &ShmPool, frame: u64) -> (Result<(), ProcessError>, Duration) {
    let mut started = Instant::now();
    let result = (|| {
        let mut lease = pool.acquire()?;
        let bytes = lease.as_mut_slice();
        bytes
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = pattern(frame, i));
        // Producing the frame is not part of the crossing: time from the tick's start.
        started = Instant::now();
        child.start_tick(frame, frame * 33_333_333)?;
        child.send_frame(lease, frame_slot())?;
        let mut returned = 0;
        child.finish_tick(|lease, slot| {
            returned += 1;
            assert_eq!(slot.len() as usize, FRAME_LEN);
            let bytes = &lease.as_slice()[..FRAME_LEN];
            let wrong = bytes
                .iter()
                .enumerate()
                .filter(|&(i, b)| *b != !pattern(frame, i))
                .count();
            assert_eq!(wrong, 0, "frame {frame}: {wrong} bytes not inverted");
        })?;
        assert_eq!(returned, 1);
        Ok(())
    })();
    (result, started.elapsed())
}

fn expect_death(role: &str, check: impl Fn(&ProcessError) -> bool) -> (ProcessError, Duration) {
    let pool = pool(role.split(':').next().unwrap_or(role));
    let mut child = spawn(role, &pool, options());
    // Tick 1 is good; tick 2 is where the role misbehaves.
    let (first, _) = hop(&mut child, &pool, 1);
    first.unwrap_or_else(|e| panic!("{role}: first tick: {e}"));
    let (second, took) = hop(&mut child, &pool, 2);
    let error = second.expect_err("the child misbehaved, the tick must fail");
    eprintln!("{role}: {error} (noticed after {took:?})");
    assert!(check(&error), "{role}: unexpected error {error:?}");
    // Slots it held are back; the pool is whole; the dead child refuses further work.
    assert_eq!(
        pool.available(),
        pool.slots(),
        "{role}: slots not reclaimed"
    );
    assert!(child.start_tick(3, 0).is_err());
    (error, took)
}

fn killed_by(error: &ProcessError, signal: i32) -> bool {
    matches!(error, ProcessError::ChildDied { end: ChildEnd::Signaled(s), reclaimed, .. } if *s == signal && *reclaimed >= 1)
}

#[test]
fn frames_cross_into_a_child_and_back_without_copies() {
    let pool = pool("echo");
    let mut child = spawn("echo", &pool, options());
    for frame in 1..=10 {
        let (result, _) = hop(&mut child, &pool, frame);
        result.unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    }
    assert_eq!(pool.bytes_copied(), 0, "pixels were copied");
    assert_eq!(pool.available(), pool.slots());
    assert_eq!(child.stop(Duration::from_secs(5)), ChildEnd::Exited(0));
}

#[test]
fn a_segfault_is_a_typed_failure_within_a_tick() {
    let (error, took) = expect_death("segv:2", |e| killed_by(e, libc::SIGSEGV));
    assert!(error.to_string().contains("SIGSEGV"), "{error}");
    // The tick itself (fill, hand over, crash, notice) fits in a tick period on a quiet
    // machine; allow for load.
    assert!(took < TICK * 10, "noticed after {took:?}");
}

#[test]
fn an_abort_is_named() {
    let (error, _) = expect_death("abort:2", |e| killed_by(e, libc::SIGABRT));
    assert!(error.to_string().contains("SIGABRT"), "{error}");
}

#[test]
fn exit_status_zero_in_the_middle_of_the_run_is_a_failure() {
    let (error, _) = expect_death("exit0:2", |e| {
        matches!(
            e,
            ProcessError::ChildDied {
                end: ChildEnd::Exited(0),
                ..
            }
        )
    });
    assert!(
        error
            .to_string()
            .contains("status 0 in the middle of the run"),
        "{error}"
    );
}

#[test]
fn the_watchdog_kills_a_child_that_overruns_its_deadline() {
    let pool = pool("hang");
    let deadline = Duration::from_millis(300);
    let mut child = spawn(
        "hang:2",
        &pool,
        ChildOptions {
            tick_deadline: deadline,
            ..options()
        },
    );
    // The first tick (a 1080p invert in a debug build) may be slow under load: give it time.
    let (first, _) = hop(&mut child, &pool, 1);
    if let Err(error) = first {
        // Only an overrun is acceptable on a very slow machine, and then it is the same test.
        assert!(matches!(error, ProcessError::Overran { .. }), "{error}");
        return;
    }
    let (second, took) = hop(&mut child, &pool, 2);
    let error = second.expect_err("hang must be killed");
    eprintln!("hang: {error} (after {took:?})");
    assert!(
        matches!(
            error,
            ProcessError::Overran {
                frame: 2,
                reclaimed: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(child.ended(), Some(ChildEnd::Signaled(libc::SIGKILL)));
    assert_eq!(pool.available(), pool.slots());
}

#[test]
fn a_child_that_never_says_ready_is_killed() {
    let pool = pool("never");
    let started = Instant::now();
    let error = Child::spawn(
        worker("never-start"),
        "invert",
        &[],
        &pool,
        ChildOptions {
            start_timeout: Duration::from_millis(500),
            ..options()
        },
    )
    .expect_err("it never starts");
    eprintln!("never-start: {error}");
    assert!(
        matches!(error, ProcessError::StartTimeout { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("did not start within 500ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn garbage_on_the_control_socket_is_contained() {
    let (error, _) = expect_death("garbage:2", |e| {
        matches!(e, ProcessError::Misbehaved { .. })
    });
    assert!(
        error.to_string().contains("protocol version 222"),
        "{error}"
    );
}

#[test]
fn a_forged_slot_index_is_refused() {
    let (error, _) = expect_death("forge:2", |e| matches!(e, ProcessError::Misbehaved { .. }));
    assert!(
        error.to_string().contains("is not held by child #1"),
        "{error}"
    );
}

#[test]
fn a_child_that_unmaps_and_truncates_its_pool_hurts_only_itself() {
    let (error, _) = expect_death("unmap:2", |e| killed_by(e, libc::SIGSEGV));
    assert!(error.to_string().contains("SIGSEGV"), "{error}");
}

#[test]
fn the_pool_stays_whole_after_a_child_tried_to_truncate_it() {
    let pool = pool("truncate");
    let mut child = spawn("unmap:1", &pool, options());
    let (result, _) = hop(&mut child, &pool, 1);
    assert!(result.is_err());
    // Every byte of every slot still reads (a shrunk file would raise SIGBUS here).
    for _ in 0..pool.slots() {
        let lease = pool.acquire().unwrap();
        assert!(lease.as_slice().iter().step_by(4096).count() > 0);
        std::mem::forget(lease);
    }
}

#[test]
fn a_sigkill_from_outside_is_noticed() {
    let pool = pool("sigkill");
    let mut child = spawn("hang:2", &pool, options());
    hop(&mut child, &pool, 1)
        .0
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = child.pid() as libc::pid_t;
    // The child holds a slot and sleeps in its tick when the kill comes.
    let lease = pool.acquire().unwrap();
    child.start_tick(2, 0).unwrap();
    child.send_frame(lease, frame_slot()).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: signalling our own child, still unreaped (the parent is blocked in the tick).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Instant::now()
    });
    let result = child.finish_tick(|_, _| panic!("no frame from a killed child"));
    let noticed = Instant::now();
    let killed = killer.join().unwrap();
    let error = result.expect_err("killed");
    eprintln!(
        "sigkill: {error} (noticed {:?} after the kill)",
        noticed - killed
    );
    assert!(killed_by(&error, libc::SIGKILL), "{error:?}");
    assert!(error.to_string().contains("SIGKILL"));
    assert!(noticed - killed < TICK * 10);
    assert_eq!(pool.available(), pool.slots());
}

#[test]
fn a_restarted_child_reuses_the_pool() {
    let pool = pool("restart");
    let mut child = spawn("segv:2", &pool, options());
    hop(&mut child, &pool, 1)
        .0
        .unwrap_or_else(|e| panic!("{e}"));
    let crash = Instant::now();
    assert!(hop(&mut child, &pool, 2).0.is_err());
    drop(child);
    let mut child = spawn("echo", &pool, options());
    let restarted = crash.elapsed();
    for frame in 3..6 {
        hop(&mut child, &pool, frame)
            .0
            .unwrap_or_else(|e| panic!("after restart: {e}"));
    }
    eprintln!("restart: crash to a ready child in {restarted:?}");
    assert_eq!(pool.available(), pool.slots());
}

#[test]
fn slots_a_child_keeps_are_reclaimed_at_done() {
    let pool = pool("hold");
    let mut child = spawn("hold", &pool, options());
    let lease = pool.acquire().unwrap();
    child.start_tick(1, 0).unwrap();
    child.send_frame(lease, frame_slot()).unwrap();
    let done = child
        .finish_tick(|_, _| panic!("it keeps its frame"))
        .unwrap();
    assert_eq!(done.unreturned, 1);
    assert_eq!(pool.available(), pool.slots());
}

#[test]
fn resource_limits_are_applied() {
    let pool = pool("limits");
    let mut child = spawn(
        "limits",
        &pool,
        ChildOptions {
            memory_limit: Some(1 << 30),
            cpu_affinity: Some(vec![0]),
            nice: Some(7),
            ..options()
        },
    );
    let lease = pool.acquire().unwrap();
    child.start_tick(1, 0).unwrap();
    child.send_frame(lease, frame_slot()).unwrap();
    let mut report = String::new();
    child
        .finish_tick(|lease, _| {
            let bytes = lease.as_slice();
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(0);
            report = String::from_utf8_lossy(&bytes[..end]).into_owned();
        })
        .unwrap();
    assert_eq!(report, format!("cpus=0 nice=7 as={}", 1_u64 << 30));
}

#[test]
fn the_memory_limit_turns_a_runaway_allocation_into_a_contained_abort() {
    let pool = pool("alloc");
    let mut child = spawn(
        "alloc:1",
        &pool,
        ChildOptions {
            memory_limit: Some(768 << 20),
            ..options()
        },
    );
    let (result, _) = hop(&mut child, &pool, 1);
    let error = result.expect_err("the allocation fails");
    eprintln!("alloc: {error}");
    assert!(killed_by(&error, libc::SIGABRT), "{error:?}");
}
