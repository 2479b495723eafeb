//! ManualClock (and FreeRunningClock): ordering, timeouts, ending, and no allocation per tick.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use streamlib_clock::{
    Clock, ClockError, ClockSourceId, FreeRunningClock, GenlockClock, ManualClock, ManualPulse,
    Pacing, Rational, TickWait,
};

/// Counts allocations made by the current thread only, so tests running in parallel do not
/// disturb each other's counts.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialized thread-local, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged; `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn frame(wait: TickWait) -> u64 {
    match wait {
        TickWait::Tick(tick) => tick.frame_number,
        other => panic!("expected a tick, got {other:?}"),
    }
}

#[test]
fn queued_ticks_come_out_in_order() -> Result<(), ClockError> {
    let fps = Rational::FPS_29_97;
    let (mut clock, handle) = ManualClock::new(fps);
    clock.start()?;
    handle.tick_n(4);
    handle.tick();
    for n in 0..5 {
        let TickWait::Tick(tick) = clock.wait_tick(Duration::ZERO)? else {
            panic!("tick {n} missing");
        };
        assert_eq!(tick.frame_number, n);
        assert_eq!(tick.timestamp, fps.frame_time_ns(n));
        assert_eq!(tick.clock_source_id, ClockSourceId::MANUAL);
        assert_eq!(clock.now_ns(), tick.timestamp);
    }
    assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Timeout);
    assert_eq!(clock.stats().ticks, 5);
    assert_eq!(clock.info().pacing, Pacing::Pipeline);
    Ok(())
}

#[test]
fn timeout_waits_about_the_timeout() -> Result<(), ClockError> {
    let (mut clock, _handle) = ManualClock::new(Rational::fps(30));
    clock.start()?;
    let begin = Instant::now();
    assert_eq!(
        clock.wait_tick(Duration::from_millis(20))?,
        TickWait::Timeout
    );
    let waited = begin.elapsed();
    assert!(
        waited >= Duration::from_millis(20),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(1), "returned after {waited:?}");
    Ok(())
}

#[test]
fn end_delivers_the_queue_then_ends() -> Result<(), ClockError> {
    let (mut clock, handle) = ManualClock::new(Rational::fps(30));
    clock.start()?;
    handle.tick_n(2);
    handle.end();
    assert_eq!(frame(clock.wait_tick(Duration::ZERO)?), 0);
    assert_eq!(frame(clock.wait_tick(Duration::ZERO)?), 1);
    assert_eq!(clock.wait_tick(Duration::from_secs(5))?, TickWait::Ended);
    assert_eq!(clock.wait_tick(Duration::from_secs(5))?, TickWait::Ended);
    Ok(())
}

#[test]
fn dropping_every_handle_ends() -> Result<(), ClockError> {
    let (mut clock, handle) = ManualClock::new(Rational::fps(30));
    clock.start()?;
    let other = handle.clone();
    other.tick();
    drop(handle);
    assert_eq!(frame(clock.wait_tick(Duration::ZERO)?), 0);
    // One handle is still alive: nothing queued is a timeout, not the end.
    assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Timeout);
    drop(other);
    assert_eq!(clock.wait_tick(Duration::from_secs(5))?, TickWait::Ended);
    Ok(())
}

#[test]
fn a_blocked_wait_wakes_on_a_tick_from_another_thread() -> Result<(), ClockError> {
    let (mut clock, handle) = ManualClock::new(Rational::fps(30));
    clock.start()?;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..100 {
            handle.tick();
        }
        // Dropping the only handle ends the clock once the ticks are read.
    });
    let mut expected = 0;
    loop {
        match clock.wait_tick(Duration::from_secs(2))? {
            TickWait::Tick(tick) => {
                assert_eq!(tick.frame_number, expected);
                expected += 1;
            }
            TickWait::Ended => break,
            TickWait::Timeout => panic!("producer stalled"),
        }
    }
    assert_eq!(expected, 100);
    assert!(producer.join().is_ok());
    Ok(())
}

#[test]
fn waiting_before_start_is_an_error() {
    let (mut clock, handle) = ManualClock::new(Rational::fps(30));
    handle.tick();
    let err = clock.wait_tick(Duration::ZERO);
    assert!(matches!(&err, Err(ClockError::NotStarted { clock }) if clock.contains("manual")));
    let (mut clock, _handle) = ManualClock::new(Rational { num: 30, den: 0 });
    assert!(matches!(
        clock.start(),
        Err(ClockError::InvalidRate { num: 30, den: 0 })
    ));
}

#[test]
fn ticks_do_not_allocate() -> Result<(), ClockError> {
    let (mut manual, handle) = ManualClock::new(Rational::fps(60));
    manual.start()?;
    let mut free = FreeRunningClock::new(Rational::fps(60));
    free.start()?;
    let (source, sender) = ManualPulse::new("test pulse");
    let mut genlock = GenlockClock::new(source, Rational::fps(60));
    genlock.start()?;
    // Warm up once so lazily initialised statics are not counted.
    handle.tick();
    manual.wait_tick(Duration::ZERO)?;
    sender.pulse(0);
    genlock.wait_tick(Duration::ZERO)?;

    let period = Rational::fps(60).frame_time_ns(1);
    let before = allocations();
    for n in 1..1_000u64 {
        handle.tick();
        assert!(matches!(
            manual.wait_tick(Duration::ZERO)?,
            TickWait::Tick(_)
        ));
        assert!(matches!(free.wait_tick(Duration::ZERO)?, TickWait::Tick(_)));
        sender.pulse(n * period);
        assert!(matches!(
            genlock.wait_tick(Duration::ZERO)?,
            TickWait::Tick(_)
        ));
    }
    assert_eq!(allocations() - before, 0, "allocations while ticking");
    Ok(())
}
