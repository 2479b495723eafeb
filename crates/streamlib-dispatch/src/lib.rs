//! Execution contexts for stream handlers.
//!
//! The runtime owns a graph of handlers. For each handler it builds a [`WorkUnit`] whose
//! [`run`](WorkUnit::run) processes the handler once, and [attaches](Dispatcher::attach) it to
//! the handler's [`Dispatcher`]. Each clock tick, when a handler becomes ready, the runtime calls
//! [`Activation::activate`]; the dispatcher then calls `run()` once, in its own execution
//! context:
//!
//! | dispatcher | where `run()` executes | for |
//! | --- | --- | --- |
//! | [`InlineDispatcher`] | on the thread that calls `activate()` | light handlers: no hand-off at all |
//! | [`ThreadPoolDispatcher`] | on one of N shared worker threads | most CPU work |
//! | [`DedicatedThreadDispatcher`] | on a thread owned by this one unit, optionally pinned and SCHED_FIFO | audio, capture, anything latency-critical |
//! | `AsyncDispatcher` (feature `async`) | as a task on a tokio runtime | I/O-bound, brief handlers |
//!
//! Every dispatcher keeps the same contract: `activate()` and the path that calls `run()`
//! allocate nothing at steady state and take no lock unless they must wake a sleeping thread;
//! an activation that arrives while one is still waiting coalesces with it; a panicking `run()`
//! is caught, handed to [`WorkUnit::panicked`] (which logs it with `tracing` unless the unit says
//! otherwise) and does not take the executor down; and once
//! [`Activation::detach`] returns, `run()` is never called again.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::{Duration, Instant};
//!
//! use streamlib_dispatch::{Dispatcher, ThreadPoolDispatcher, WorkUnit};
//!
//! struct Counter {
//!     runs: AtomicUsize,
//! }
//!
//! impl WorkUnit for Counter {
//!     fn run(&self) {
//!         self.runs.fetch_add(1, Ordering::Release);
//!     }
//!     fn name(&self) -> &str {
//!         "counter"
//!     }
//! }
//!
//! # fn main() -> Result<(), streamlib_dispatch::DispatchError> {
//! let dispatcher = ThreadPoolDispatcher::new(2);
//! let counter = Arc::new(Counter { runs: AtomicUsize::new(0) });
//! let activation = dispatcher.attach(counter.clone())?;
//!
//! activation.activate();
//! let deadline = Instant::now() + Duration::from_secs(5);
//! while counter.runs.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
//!     std::thread::yield_now();
//! }
//!
//! activation.detach();
//! dispatcher.shutdown();
//! assert_eq!(counter.runs.load(Ordering::Acquire), 1);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod dedicated;
mod error;
mod gate;
mod inline;
mod thread_pool;

#[cfg(feature = "async")]
mod async_tokio;

#[cfg(feature = "async")]
pub use async_tokio::AsyncDispatcher;
pub use dedicated::{DedicatedActivation, DedicatedThreadDispatcher, DedicatedThreadStatus};
pub use error::DispatchError;
pub use inline::InlineDispatcher;
pub use thread_pool::ThreadPoolDispatcher;

use std::any::Any;
use std::sync::Arc;

/// One handler's work, as the dispatcher sees it.
pub trait WorkUnit: Send + Sync + 'static {
    /// Runs the unit's work once.
    ///
    /// A panic need not be caught here: the dispatcher catches it (the one `catch_unwind` on the
    /// activation path), keeps the executing thread alive, and hands the payload to
    /// [`panicked`](Self::panicked).
    fn run(&self);

    /// Name for thread names and logs (the handler id).
    fn name(&self) -> &str;

    /// Called on the thread that ran the unit, right after [`run`](Self::run) panicked with
    /// `payload`. The unit stays attached and runs again on its next activation.
    ///
    /// The default logs the panic with `tracing::error!`. The runtime overrides it to count the
    /// failure and apply the handler's restart policy. A panic in here is caught and logged too.
    fn panicked(&self, payload: &(dyn Any + Send)) {
        gate::log_panic(self.name(), payload);
    }
}

/// The handle through which the runtime asks for runs of one attached unit.
///
/// Dropping it detaches the unit.
pub trait Activation: Send + Sync {
    /// Asks for one run of the unit soon.
    ///
    /// Never blocks on the unit's work, except with [`InlineDispatcher`], which runs it on the
    /// caller's thread by design. Activating again while an activation is still waiting is a
    /// no-op; activating while the unit runs buys exactly one more run after it.
    fn activate(&self);

    /// Stops the unit: after `detach` returns, `run()` is never called again (a run in progress
    /// on another thread is waited for) and any thread owned solely for this unit has been
    /// joined. Idempotent.
    ///
    /// Called from inside the unit's own `run()`, it cannot wait for that run: it returns at once
    /// and the run in progress is the last one.
    fn detach(&self);
}

/// An execution context that runs attached units when they are activated.
pub trait Dispatcher: Send + Sync + 'static {
    /// Short name: `"inline"`, `"threadpool"`, `"dedicated"`, `"async"`.
    fn kind(&self) -> &'static str;

    /// Starts serving `unit`; the returned activation asks for runs.
    ///
    /// # Errors
    ///
    /// [`DispatchError::ShutDown`] after [`shutdown`](Self::shutdown);
    /// [`DispatchError::CapacityExceeded`] when a bounded dispatcher is full;
    /// [`DispatchError::ThreadSpawn`] when a thread it needs could not be started.
    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError>;

    /// Joins every thread this dispatcher owns (units still attached are detached first).
    ///
    /// Called once by the runtime at stop, after all detaches. Idempotent. Dropping the
    /// dispatcher also shuts it down.
    fn shutdown(&self);
}

/// The dispatchers, for `use streamlib_dispatch::prelude::*` (`streamlib::prelude` includes
/// it).
pub mod prelude {
    #[cfg(feature = "async")]
    pub use crate::AsyncDispatcher;
    pub use crate::{
        DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
    };
}
