//! The crate's one error type.

/// Everything that can go wrong while configuring or running a clock.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// A frame rate with a zero numerator or denominator.
    #[error(
        "invalid frame rate {num}/{den}: numerator and denominator must both be greater than zero"
    )]
    InvalidRate {
        /// The numerator that was given (frames).
        num: u32,
        /// The denominator that was given (seconds).
        den: u32,
    },

    /// A clock option that cannot work (a negative tolerance, a zero lock count, …).
    #[error("invalid clock configuration: {what}")]
    InvalidConfig {
        /// Which option was wrong, with its value and the accepted range.
        what: String,
    },

    /// A pulse source failed; the genlock clock cannot tick without it.
    #[error("pulse source `{source_name}` failed: {message}")]
    Pulse {
        /// The failing source's [`PulseSource::name`](crate::PulseSource::name).
        source_name: String,
        /// What went wrong, in the source's words.
        message: String,
    },

    /// `wait_tick` was called before `start`; the runtime must start a clock exactly once first.
    #[error("clock `{clock}` was asked for a tick before start() was called")]
    NotStarted {
        /// The clock's [`ClockInfo::name`](crate::ClockInfo::name).
        clock: String,
    },

    /// The operating system refused a timer call.
    #[error("clock `{clock}`: {operation} failed: {source}")]
    Os {
        /// The clock's [`ClockInfo::name`](crate::ClockInfo::name).
        clock: String,
        /// The system call that failed, e.g. `clock_nanosleep`.
        operation: &'static str,
        /// The error the system returned.
        #[source]
        source: std::io::Error,
    },
}
