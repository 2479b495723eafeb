//! Pulse sources for [`GenlockClock`](crate::GenlockClock) without genlock hardware:
//! [`SoftwarePulse`] (a timer thread) and [`ManualPulse`] (pulses injected by hand).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{ClockError, PulseSource, PulseWait, Rational, monotonic};

/// Locks a mutex whose data is only counters and timestamps written in single statements, so
/// a panic elsewhere while it was held cannot have left it inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` until `deadline` (`None`: forever). Returns the guard and whether the
/// deadline has passed.
fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    match deadline {
        None => (
            condvar.wait(guard).unwrap_or_else(PoisonError::into_inner),
            false,
        ),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return (guard, true);
            }
            let guard = condvar
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            (guard, false)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SoftwarePulse

/// How long before a pulse deadline the thread stops waiting on the condition variable (which
/// is interruptible but coarse) and sleeps on the absolute timer (precise).
const FINAL_SLEEP_NS: u64 = 2_000_000;

#[derive(Debug)]
struct SoftwareState {
    /// Pulses emitted so far; the consumer compares it with the last one it saw.
    seq: u64,
    timestamp_ns: u64,
    stopped: bool,
    /// Pulses due before this monotonic time are suppressed.
    paused_until_ns: u64,
}

#[derive(Debug)]
struct SoftwareShared {
    state: Mutex<SoftwareState>,
    /// Signalled when a pulse is emitted or the source stops (the consumer waits on it).
    pulsed: Condvar,
    /// Signalled on stop and pause (the pulse thread waits on it).
    control: Condvar,
}

/// A [`PulseSource`] driven by a thread that pulses at a [`Rational`] rate on absolute
/// deadlines of the local monotonic clock.
///
/// Pulse timestamps are those deadlines, in ns of the local monotonic clock
/// (`CLOCK_MONOTONIC` on Linux). Like a hardware pulse latch it keeps only the newest pulse:
/// a consumer that falls behind sees a gap in the timestamps, not a backlog.
///
/// Dropping it stops and joins the thread. [`SoftwarePulseControl`] stops it or injects pauses.
#[derive(Debug)]
pub struct SoftwarePulse {
    name: String,
    shared: Arc<SoftwareShared>,
    last_seen: u64,
    thread: Option<JoinHandle<()>>,
}

/// Stops a [`SoftwarePulse`] or suspends its pulses; cheap to clone.
#[derive(Clone, Debug)]
pub struct SoftwarePulseControl {
    shared: Arc<SoftwareShared>,
}

impl SoftwarePulse {
    /// Starts the pulse thread at `rate`; the first pulse is due at once.
    ///
    /// # Errors
    /// [`ClockError::InvalidRate`] for a zero rate, [`ClockError::Os`] when the thread cannot
    /// be spawned.
    pub fn start(rate: Rational) -> Result<(SoftwarePulse, SoftwarePulseControl), ClockError> {
        let rate = Rational::new(rate.num, rate.den)?;
        let name = format!("software pulse {rate} fps");
        let shared = Arc::new(SoftwareShared {
            state: Mutex::new(SoftwareState {
                seq: 0,
                timestamp_ns: 0,
                stopped: false,
                paused_until_ns: 0,
            }),
            pulsed: Condvar::new(),
            control: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("streamlib-pulse".into())
            .spawn(move || run_pulses(&thread_shared, rate))
            .map_err(|source| ClockError::Os {
                clock: name.clone(),
                operation: "spawning the pulse thread",
                source,
            })?;
        let control = SoftwarePulseControl {
            shared: Arc::clone(&shared),
        };
        let pulse = SoftwarePulse {
            name,
            shared,
            last_seen: 0,
            thread: Some(thread),
        };
        Ok((pulse, control))
    }
}

fn run_pulses(shared: &SoftwareShared, rate: Rational) {
    if let Err(err) = monotonic::set_timer_slack_ns(1) {
        tracing::warn!(%err, "pulse thread could not set timer slack");
    }
    let origin = monotonic::now_ns();
    let mut next = 0u64;
    loop {
        let deadline = origin.saturating_add(rate.frame_time_ns(next));
        // Wait interruptibly (stop must not wait a whole period), then sleep precisely.
        let mut state = lock(&shared.state);
        loop {
            if state.stopped {
                return;
            }
            let now = monotonic::now_ns();
            if now.saturating_add(FINAL_SLEEP_NS) >= deadline {
                break;
            }
            let wait = Duration::from_nanos(deadline - FINAL_SLEEP_NS - now);
            state = shared
                .control
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(state);
        if let Err(err) = monotonic::sleep_until_ns(deadline) {
            tracing::error!(%err, "pulse thread cannot sleep, stopping");
            break;
        }
        // After a stall, pulse once for the newest due deadline instead of a burst.
        let due = rate
            .frame_at_ns(monotonic::now_ns().saturating_sub(origin))
            .max(next);
        let timestamp_ns = origin.saturating_add(rate.frame_time_ns(due));
        next = due.saturating_add(1);

        let mut state = lock(&shared.state);
        if state.stopped {
            return;
        }
        if timestamp_ns >= state.paused_until_ns {
            state.seq += 1;
            state.timestamp_ns = timestamp_ns;
            drop(state);
            shared.pulsed.notify_all();
        }
    }
    lock(&shared.state).stopped = true;
    shared.pulsed.notify_all();
}

impl PulseSource for SoftwarePulse {
    fn name(&self) -> &str {
        &self.name
    }

    /// The newest pulse not yet returned; [`PulseWait::Ended`] once stopped and drained.
    fn wait_pulse(&mut self, timeout: Duration) -> Result<PulseWait, ClockError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.shared.state);
        loop {
            if state.seq != self.last_seen {
                self.last_seen = state.seq;
                return Ok(PulseWait::Pulse {
                    timestamp_ns: state.timestamp_ns,
                });
            }
            if state.stopped {
                return Ok(PulseWait::Ended);
            }
            let (guard, timed_out) = wait_until(&self.shared.pulsed, state, deadline);
            if timed_out {
                return Ok(PulseWait::Timeout);
            }
            state = guard;
        }
    }
}

impl Drop for SoftwarePulse {
    fn drop(&mut self) {
        lock(&self.shared.state).stopped = true;
        self.shared.control.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(source = %self.name, "pulse thread panicked");
        }
    }
}

impl SoftwarePulseControl {
    /// Stops the pulses for good: the source reports [`PulseWait::Ended`] once its last pulse
    /// has been read.
    pub fn stop(&self) {
        lock(&self.shared.state).stopped = true;
        self.shared.control.notify_all();
        self.shared.pulsed.notify_all();
    }

    /// Suppresses every pulse due within `duration` from now; pulses resume on the same
    /// deadline grid afterwards, so the gap is a whole number of periods.
    pub fn pause(&self, duration: Duration) {
        let until = monotonic::now_ns().saturating_add(crate::clock::duration_ns(duration));
        let mut state = lock(&self.shared.state);
        state.paused_until_ns = state.paused_until_ns.max(until);
    }

    /// Whether the source was stopped (by [`stop`](Self::stop), by dropping it, or because the
    /// timer failed).
    pub fn is_stopped(&self) -> bool {
        lock(&self.shared.state).stopped
    }

    /// Pulses emitted so far.
    pub fn pulses_emitted(&self) -> u64 {
        lock(&self.shared.state).seq
    }
}

// ---------------------------------------------------------------------------------------------
// ManualPulse

#[derive(Debug)]
struct ManualState {
    /// Grows only while the sender runs ahead of the consumer; steady state reuses its slots.
    queue: VecDeque<u64>,
    ended: bool,
    senders: usize,
}

#[derive(Debug)]
struct ManualShared {
    state: Mutex<ManualState>,
    pulsed: Condvar,
}

/// A [`PulseSource`] fed by hand through [`PulseSender`], for deterministic tests and for
/// bridging pulses that arrive from another thread (an interrupt handler, a capture callback).
///
/// Every injected pulse is delivered, in order. [`PulseWait::Ended`] comes once the queue is
/// empty and either [`PulseSender::end`] was called or every sender was dropped.
#[derive(Debug)]
pub struct ManualPulse {
    name: String,
    shared: Arc<ManualShared>,
}

/// Injects pulses into a [`ManualPulse`]; cheap to clone and share between threads.
#[derive(Debug)]
pub struct PulseSender {
    shared: Arc<ManualShared>,
}

impl ManualPulse {
    /// A manual pulse source named `name` and its first sender.
    pub fn new(name: impl Into<String>) -> (ManualPulse, PulseSender) {
        let shared = Arc::new(ManualShared {
            state: Mutex::new(ManualState {
                queue: VecDeque::with_capacity(64),
                ended: false,
                senders: 1,
            }),
            pulsed: Condvar::new(),
        });
        let source = ManualPulse {
            name: name.into(),
            shared: Arc::clone(&shared),
        };
        (source, PulseSender { shared })
    }
}

impl PulseSource for ManualPulse {
    fn name(&self) -> &str {
        &self.name
    }

    fn wait_pulse(&mut self, timeout: Duration) -> Result<PulseWait, ClockError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(timestamp_ns) = state.queue.pop_front() {
                return Ok(PulseWait::Pulse { timestamp_ns });
            }
            if state.ended || state.senders == 0 {
                return Ok(PulseWait::Ended);
            }
            let (guard, timed_out) = wait_until(&self.shared.pulsed, state, deadline);
            if timed_out {
                return Ok(PulseWait::Timeout);
            }
            state = guard;
        }
    }
}

impl PulseSender {
    /// Injects one pulse stamped `timestamp_ns` (in whatever timescale the consumer expects).
    pub fn pulse(&self, timestamp_ns: u64) {
        lock(&self.shared.state).queue.push_back(timestamp_ns);
        self.shared.pulsed.notify_one();
    }

    /// Ends the source once the injected pulses are read.
    pub fn end(&self) {
        lock(&self.shared.state).ended = true;
        self.shared.pulsed.notify_all();
    }
}

impl Clone for PulseSender {
    fn clone(&self) -> Self {
        lock(&self.shared.state).senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for PulseSender {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.pulsed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_pulses_arrive_in_order_then_end() -> Result<(), ClockError> {
        let (mut source, sender) = ManualPulse::new("test");
        sender.pulse(10);
        sender.pulse(20);
        assert_eq!(source.name(), "test");
        assert_eq!(
            source.wait_pulse(Duration::ZERO)?,
            PulseWait::Pulse { timestamp_ns: 10 }
        );
        assert_eq!(
            source.wait_pulse(Duration::ZERO)?,
            PulseWait::Pulse { timestamp_ns: 20 }
        );
        assert_eq!(source.wait_pulse(Duration::ZERO)?, PulseWait::Timeout);
        let second = sender.clone();
        drop(sender);
        assert_eq!(source.wait_pulse(Duration::ZERO)?, PulseWait::Timeout);
        drop(second);
        assert_eq!(source.wait_pulse(Duration::ZERO)?, PulseWait::Ended);
        Ok(())
    }

    #[test]
    fn software_pulses_are_on_the_grid() -> Result<(), ClockError> {
        let rate = Rational::fps(200);
        let (mut source, control) = SoftwarePulse::start(rate)?;
        let mut previous = None;
        for _ in 0..5 {
            let PulseWait::Pulse { timestamp_ns } = source.wait_pulse(Duration::from_secs(1))?
            else {
                panic!("expected a pulse");
            };
            if let Some(previous) = previous {
                // Deadlines are exact: 5 ms apart, or a whole multiple after a stall.
                assert!(timestamp_ns > previous);
                assert_eq!((timestamp_ns - previous) % 5_000_000, 0);
            }
            previous = Some(timestamp_ns);
        }
        assert!(control.pulses_emitted() >= 5);
        control.stop();
        assert!(control.is_stopped());
        Ok(())
    }

    #[test]
    fn dropping_the_source_stops_the_thread() -> Result<(), ClockError> {
        // One pulse every 10 s: dropping must not wait for the next deadline.
        let (source, control) = SoftwarePulse::start(Rational::new(1, 10)?)?;
        let before = Instant::now();
        drop(source);
        assert!(control.is_stopped());
        assert!(before.elapsed() < Duration::from_secs(5));
        Ok(())
    }

    #[test]
    fn zero_rate_is_rejected() {
        assert!(matches!(
            SoftwarePulse::start(Rational::fps(0)),
            Err(ClockError::InvalidRate { .. })
        ));
    }
}
