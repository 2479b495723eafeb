//! SoftwareClock against real time. Assertions are about structure (order, skips, never
//! early), not microseconds, so a loaded machine cannot make them flake.

use std::time::{Duration, Instant};

use streamlib_clock::{
    Clock, ClockError, ClockSourceId, Rational, SoftwareClock, SoftwareClockOptions, TickWait,
    TimedTick,
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn next_tick(clock: &mut impl Clock) -> Result<TimedTick, ClockError> {
    match clock.wait_tick(TIMEOUT)? {
        TickWait::Tick(tick) => Ok(tick),
        other => panic!("expected a tick, got {other:?}"),
    }
}

/// A tick is never handed out before its deadline, and its fields agree with each other.
fn check_tick(clock: &SoftwareClock, tick: &TimedTick) {
    assert!(
        clock.now_ns() >= tick.timestamp,
        "tick {} delivered early",
        tick.frame_number
    );
    assert_eq!(tick.timestamp, tick.fps.frame_time_ns(tick.frame_number));
    assert_eq!(tick.clock_source_id, ClockSourceId::SOFTWARE);
}

#[test]
fn ticks_arrive_in_order_for_half_a_second() -> Result<(), ClockError> {
    let fps = Rational::fps(100);
    let mut clock = SoftwareClock::new(fps);
    clock.start()?;
    let mut previous: Option<u64> = None;
    let mut last = 0;
    for _ in 0..50 {
        let tick = next_tick(&mut clock)?;
        check_tick(&clock, &tick);
        if let Some(previous) = previous {
            assert!(tick.frame_number > previous);
        }
        previous = Some(tick.frame_number);
        last = tick.frame_number;
    }
    let stats = clock.stats();
    assert_eq!(stats.ticks, 50);
    // Every elapsed frame is either delivered or counted as missed.
    assert_eq!(stats.ticks + stats.missed, last + 1);
    // A consumer that keeps up sees consecutive frames; allow a few skips for a stalled VM.
    assert!(stats.missed <= 10, "missed {} of 50 ticks", stats.missed);
    assert!(stats.max_lateness_ns >= stats.last_lateness_ns);
    Ok(())
}

#[test]
fn precise_mode_ticks_in_order() -> Result<(), ClockError> {
    let options = SoftwareClockOptions {
        precise: true,
        spin_margin: Duration::from_micros(500),
        timer_slack_ns: None,
    };
    let mut clock = SoftwareClock::with_options(Rational::FPS_59_94, options);
    assert_eq!(clock.options(), options);
    clock.start()?;
    let mut previous = None;
    for _ in 0..10 {
        let tick = next_tick(&mut clock)?;
        check_tick(&clock, &tick);
        // `None` sorts before every `Some`, so this also covers the first tick.
        assert!(previous < Some(tick.frame_number));
        previous = Some(tick.frame_number);
    }
    Ok(())
}

#[test]
fn a_slow_consumer_skips_ahead_instead_of_bunching() -> Result<(), ClockError> {
    let mut clock = SoftwareClock::new(Rational::fps(100));
    clock.start()?;
    let before = next_tick(&mut clock)?;
    let missed_before = clock.stats().missed;

    // Three and a half periods of work: deadlines before+1..=before+3 pass meanwhile.
    std::thread::sleep(Duration::from_millis(35));
    let jumped = next_tick(&mut clock)?;
    check_tick(&clock, &jumped);
    assert!(
        jumped.frame_number >= before.frame_number + 3,
        "expected a jump of at least 3 frames, got {} -> {}",
        before.frame_number,
        jumped.frame_number
    );
    let skipped = jumped.frame_number - before.frame_number - 1;
    assert_eq!(clock.stats().missed - missed_before, skipped);

    // No burst of stale ticks: the next one is newer and waits for its own deadline.
    let after = next_tick(&mut clock)?;
    check_tick(&clock, &after);
    assert!(after.frame_number > jumped.frame_number);
    let stats = clock.stats();
    assert_eq!(stats.ticks + stats.missed, after.frame_number + 1);
    Ok(())
}

#[test]
fn short_timeout_returns_timeout() -> Result<(), ClockError> {
    let mut clock = SoftwareClock::new(Rational::fps(1));
    clock.start()?;
    // Frame 0 is due at start; frame 1 a whole second later.
    next_tick(&mut clock)?;
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
    assert!(
        waited < Duration::from_millis(900),
        "returned after {waited:?}"
    );
    assert_eq!(clock.stats().ticks, 1);
    Ok(())
}

#[test]
fn waiting_before_start_is_an_error() {
    let mut clock = SoftwareClock::new(Rational::fps(30));
    let err = clock.wait_tick(Duration::ZERO);
    assert!(matches!(&err, Err(ClockError::NotStarted { clock }) if clock.contains("software")));
    assert_eq!(clock.now_ns(), 0);
}

#[test]
fn invalid_rates_fail_at_start() {
    for (num, den) in [(0, 1), (30, 0), (0, 0)] {
        let mut clock = SoftwareClock::new(Rational { num, den });
        let err = clock.start();
        assert!(
            matches!(err, Err(ClockError::InvalidRate { num: n, den: d }) if n == num && d == den)
        );
    }
}

#[test]
fn boxed_clocks_are_clocks() -> Result<(), ClockError> {
    let mut clock: Box<dyn Clock> = Box::new(SoftwareClock::new(Rational::fps(10)));
    clock.start()?;
    let tick = next_tick(&mut clock)?;
    assert_eq!(tick.frame_number, 0);
    assert_eq!(clock.info().id, ClockSourceId::SOFTWARE);
    assert_eq!(clock.stats().ticks, 1);
    assert_eq!(clock.lock_state(), streamlib_clock::LockState::Locked);
    Ok(())
}
