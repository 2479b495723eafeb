//! GenlockClock: lock tracking and missed pulses, deterministically with ManualPulse and in
//! real time with SoftwarePulse.

use std::time::Duration;

use streamlib_clock::{
    Clock, ClockError, ClockSourceId, GenlockClock, LockState, ManualPulse, PulseSender, Rational,
    SoftwarePulse, TickWait, TimedTick, Timescale,
};

const FPS: Rational = Rational::fps(100);
const PERIOD: u64 = 10_000_000;

fn manual_genlock() -> Result<(GenlockClock, PulseSender), ClockError> {
    let (source, sender) = ManualPulse::new("test pulse");
    let mut clock = GenlockClock::new(source, FPS);
    clock.start()?;
    Ok((clock, sender))
}

/// Injects one pulse and returns its tick and the lock state that followed.
fn pulse(
    clock: &mut GenlockClock,
    sender: &PulseSender,
    timestamp_ns: u64,
) -> Result<(TimedTick, LockState), ClockError> {
    sender.pulse(timestamp_ns);
    match clock.wait_tick(Duration::ZERO)? {
        TickWait::Tick(tick) => Ok((tick, clock.lock_state())),
        other => panic!("expected a tick, got {other:?}"),
    }
}

#[test]
fn locks_after_three_good_intervals() -> Result<(), ClockError> {
    let (mut clock, sender) = manual_genlock()?;
    assert_eq!(clock.lock_state(), LockState::Unlocked);
    let base = 5_000_000_000;
    let mut states = Vec::new();
    for n in 0..5 {
        let (tick, state) = pulse(&mut clock, &sender, base + n * PERIOD)?;
        assert_eq!(tick.frame_number, n);
        assert_eq!(tick.timestamp, base + n * PERIOD);
        assert_eq!(tick.clock_source_id, ClockSourceId::GENLOCK);
        states.push(state);
    }
    use LockState::{Locked, Locking};
    assert_eq!(states, [Locking, Locking, Locking, Locked, Locked]);
    assert_eq!(clock.stats().missed, 0);
    assert_eq!(clock.info().timescale, Timescale::External);
    Ok(())
}

#[test]
fn jitter_within_tolerance_keeps_lock() -> Result<(), ClockError> {
    let (mut clock, sender) = manual_genlock()?;
    let mut t = 0;
    pulse(&mut clock, &sender, t)?;
    for _ in 0..3 {
        t += PERIOD;
        pulse(&mut clock, &sender, t)?;
    }
    assert_eq!(clock.lock_state(), LockState::Locked);
    // Intervals 5 % and 9 % off the period, either way, are inside the default ±10 %.
    for jitter in [500_000i64, -500_000, 900_000, -900_000] {
        t = t.saturating_add_signed(PERIOD as i64 + jitter);
        let (_, state) = pulse(&mut clock, &sender, t)?;
        assert_eq!(state, LockState::Locked, "interval jitter {jitter} ns");
    }
    Ok(())
}

#[test]
fn gaps_count_missed_pulses_and_jump_frames() -> Result<(), ClockError> {
    let (mut clock, sender) = manual_genlock()?;
    for n in 0..4 {
        pulse(&mut clock, &sender, n * PERIOD)?;
    }
    assert_eq!(clock.lock_state(), LockState::Locked);

    // One pulse missing (a gap of 2 periods): counted, but still locked.
    let (tick, state) = pulse(&mut clock, &sender, 5 * PERIOD)?;
    assert_eq!(tick.frame_number, 5);
    assert_eq!(clock.stats().missed, 1);
    assert_eq!(state, LockState::Locked);

    // A gap of 4 periods: the reference went away for > 2 periods, so relock from scratch.
    let (tick, state) = pulse(&mut clock, &sender, 9 * PERIOD)?;
    assert_eq!(tick.frame_number, 9);
    assert_eq!(clock.stats().missed, 4);
    assert_eq!(state, LockState::Locking);
    for n in 10..13 {
        pulse(&mut clock, &sender, n * PERIOD)?;
    }
    assert_eq!(clock.lock_state(), LockState::Locked);

    let stats = clock.stats();
    assert_eq!(stats.ticks + stats.missed, 13);
    Ok(())
}

#[test]
fn drift_out_of_tolerance_unlocks() -> Result<(), ClockError> {
    let (mut clock, sender) = manual_genlock()?;
    for n in 0..4 {
        pulse(&mut clock, &sender, n * PERIOD)?;
    }
    assert_eq!(clock.lock_state(), LockState::Locked);
    // 1.3 periods: neither one period nor two.
    let t = 3 * PERIOD + 13 * PERIOD / 10;
    let (tick, state) = pulse(&mut clock, &sender, t)?;
    assert_eq!(state, LockState::Unlocked);
    assert_eq!(tick.frame_number, 4);
    // A pulse stamped in the past is out of tolerance too, yet frame numbers keep rising.
    let (tick, state) = pulse(&mut clock, &sender, t - 1)?;
    assert_eq!(state, LockState::Unlocked);
    assert_eq!(tick.frame_number, 5);
    // Good intervals again: locking, then locked.
    let mut t = t - 1;
    let mut states = Vec::new();
    for _ in 0..3 {
        t += PERIOD;
        states.push(pulse(&mut clock, &sender, t)?.1);
    }
    assert_eq!(
        states,
        [LockState::Locking, LockState::Locking, LockState::Locked]
    );
    Ok(())
}

#[test]
fn silence_unlocks_and_end_ends() -> Result<(), ClockError> {
    let (mut clock, sender) = manual_genlock()?;
    for n in 0..4 {
        pulse(&mut clock, &sender, n * PERIOD)?;
    }
    assert_eq!(clock.lock_state(), LockState::Locked);
    // 30 ms without a pulse is 3 periods: more than the 2 allowed.
    assert_eq!(
        clock.wait_tick(Duration::from_millis(30))?,
        TickWait::Timeout
    );
    assert_eq!(clock.lock_state(), LockState::Unlocked);
    // now_ns extrapolates from the latest pulse on the local clock.
    assert!(clock.now_ns() >= 3 * PERIOD + 30_000_000);

    sender.end();
    assert_eq!(clock.wait_tick(Duration::from_secs(1))?, TickWait::Ended);
    assert_eq!(clock.lock_state(), LockState::Unlocked);
    Ok(())
}

#[test]
fn waiting_before_start_is_an_error() {
    let (source, _sender) = ManualPulse::new("unstarted");
    let mut clock = GenlockClock::new(source, FPS);
    let err = clock.wait_tick(Duration::ZERO);
    assert!(matches!(&err, Err(ClockError::NotStarted { clock }) if clock.contains("unstarted")));
}

/// Waits for the next tick, failing the test after a second of silence.
fn next_tick(clock: &mut GenlockClock) -> Result<TimedTick, ClockError> {
    match clock.wait_tick(Duration::from_secs(1))? {
        TickWait::Tick(tick) => Ok(tick),
        other => panic!("expected a tick, got {other:?}"),
    }
}

/// Ticks until locked, with a generous bound for a loaded machine.
fn tick_until_locked(clock: &mut GenlockClock) -> Result<TimedTick, ClockError> {
    for _ in 0..50 {
        let tick = next_tick(clock)?;
        if clock.lock_state() == LockState::Locked {
            return Ok(tick);
        }
    }
    panic!("no lock within 50 pulses: {:?}", clock.stats());
}

#[test]
fn software_pulse_locks_survives_a_pause_and_ends() -> Result<(), ClockError> {
    let (source, control) = SoftwarePulse::start(FPS)?;
    let mut clock = GenlockClock::new(source, FPS);
    clock.start()?;
    let locked_at = tick_until_locked(&mut clock)?;

    // Suppress 80 ms of pulses: the clock times out and reports the lost lock.
    control.pause(Duration::from_millis(80));
    let mut before_gap = locked_at;
    loop {
        match clock.wait_tick(Duration::from_millis(30))? {
            // A pulse emitted just before the pause took effect.
            TickWait::Tick(tick) => before_gap = tick,
            TickWait::Timeout => break,
            TickWait::Ended => panic!("source ended during the pause"),
        }
    }
    assert_eq!(clock.lock_state(), LockState::Unlocked);
    let missed_before = clock.stats().missed;

    // Pulses resume on the same grid: the frame number jumps by the whole gap.
    let after_gap = next_tick(&mut clock)?;
    let steps = after_gap.frame_number - before_gap.frame_number;
    assert!(steps >= 4, "gap of only {steps} periods");
    assert_eq!(after_gap.timestamp - before_gap.timestamp, steps * PERIOD);
    assert_eq!(clock.stats().missed - missed_before, steps - 1);
    assert_ne!(clock.lock_state(), LockState::Locked);

    let relocked = tick_until_locked(&mut clock)?;
    let stats = clock.stats();
    assert_eq!(
        stats.ticks + stats.missed,
        relocked.frame_number + 1,
        "every period is a tick or a miss"
    );

    control.stop();
    for _ in 0..5 {
        if clock.wait_tick(Duration::from_secs(1))? == TickWait::Ended {
            return Ok(());
        }
    }
    panic!("stopped source never ended");
}
