//! Clocks that drive a streamlib runtime.
//!
//! One [`Clock`] paces a whole runtime: the runtime calls [`Clock::start`] once, then
//! [`Clock::wait_tick`] in a loop, producing one frame per [`TimedTick`]. This crate provides
//!
//! - [`SoftwareClock`]: the local monotonic timer at a fixed [`Rational`] rate, on absolute
//!   deadlines (no drift at 30000/1001 over hours), skipping rather than bunching late ticks;
//! - [`FreeRunningClock`]: ticks as fast as the pipeline asks, with nominal timestamps, for
//!   offline work and benchmarks;
//! - [`ManualClock`]: ticks pushed through a [`ManualClockHandle`], for tests and stepping;
//! - [`GenlockClock`]: one tick per pulse of a [`PulseSource`] (genlock input, or
//!   [`SoftwarePulse`] / [`ManualPulse`] without hardware), with lock tracking.
//!
//! A PTP clock lives in another crate and plugs in through the same trait.
//!
//! ```
//! use std::time::Duration;
//! use streamlib_clock::{Clock, ClockError, ManualClock, Rational, TickWait};
//!
//! let (mut clock, handle) = ManualClock::new(Rational::FPS_29_97);
//! clock.start()?;
//! handle.tick_n(2);
//! handle.end();
//!
//! let mut timestamps = Vec::new();
//! while let TickWait::Tick(tick) = clock.wait_tick(Duration::from_millis(100))? {
//!     timestamps.push(tick.timestamp);
//! }
//! // Frame 1 of 29.97 fps is due 1001/30000 s in, rounded down to the nanosecond.
//! assert_eq!(timestamps, [0, 33_366_666]);
//! # Ok::<(), ClockError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod error;
mod free_running;
mod genlock;
mod histogram;
mod limited;
mod manual;
mod monotonic;
mod pulse;
mod rational;
mod software;

pub use clock::{
    Clock, ClockInfo, ClockSourceId, ClockStats, LockState, Pacing, TickWait, TimedTick, Timescale,
};
pub use error::ClockError;
pub use free_running::FreeRunningClock;
pub use genlock::{GenlockClock, GenlockOptions, PulseSource, PulseWait};
pub use histogram::LatencyHistogram;
pub use limited::Limited;
pub use manual::{ManualClock, ManualClockHandle};
pub use monotonic::{
    now_ns as monotonic_now_ns, set_timer_slack_ns as set_thread_timer_slack_ns,
    sleep_until_ns as sleep_until_monotonic_ns,
};
pub use pulse::{ManualPulse, PulseSender, SoftwarePulse, SoftwarePulseControl};
pub use rational::Rational;
pub use software::{SoftwareClock, SoftwareClockOptions};

/// The clocks and their tick, for `use streamlib_clock::prelude::*` (`streamlib::prelude`
/// includes it).
pub mod prelude {
    pub use crate::{
        Clock, FreeRunningClock, GenlockClock, ManualClock, Rational, SoftwareClock, TimedTick,
    };
}
