//! The crate's error type.

/// Why a dispatcher could not take a work unit (or could not be built).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The operating system refused to start a thread the dispatcher needs.
    #[error("could not spawn thread `{name}`")]
    ThreadSpawn {
        /// The name the thread would have had (`streamlib-pool-3`, `streamlib-camer`, …).
        name: String,
        /// What the OS said (usually resource exhaustion: too many threads or no memory).
        #[source]
        source: std::io::Error,
    },

    /// The dispatcher already holds as many units as it was built for.
    #[error(
        "the {dispatcher} dispatcher is full: it holds {capacity} units; detach one or build it \
         with a larger capacity"
    )]
    CapacityExceeded {
        /// Which dispatcher (its [`kind`](crate::Dispatcher::kind)).
        dispatcher: &'static str,
        /// How many units it can hold at once.
        capacity: usize,
    },

    /// The dispatcher was shut down; it accepts no new units.
    #[error("the {dispatcher} dispatcher has been shut down and accepts no new units")]
    ShutDown {
        /// Which dispatcher (its [`kind`](crate::Dispatcher::kind)).
        dispatcher: &'static str,
    },

    /// The tokio runtime behind `AsyncDispatcher` (feature `async`) could not be built.
    #[error("could not build the tokio runtime: {message}")]
    Runtime {
        /// tokio's explanation.
        message: String,
    },
}
