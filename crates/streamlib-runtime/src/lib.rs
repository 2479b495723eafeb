//! The streamlib runtime: lifecycle, one shared clock, dispatchers, capability negotiation and
//! supervision.
//!
//! A [`StreamRuntime`] owns [`Stream`]s (a handler plus how to run it), wires their ports with
//! [`StreamRuntime::connect`] (negotiating memory and inserting transfers from a
//! [`TransferRegistry`] where capabilities do not overlap), and drives them from one clock:
//! each tick, a handler runs after its upstream handlers ran the same tick, so a frame crosses
//! the whole pipeline on the tick it was produced. A handler that fails or panics is contained
//! and restarted by its [`RestartPolicy`]; the rest keeps running.
//!
//! ```
//! use std::time::Duration;
//! use streamlib_clock::{ManualClock, Rational};
//! use streamlib_ports::*;
//! use streamlib_runtime::{Stream, StreamRuntime};
//!
//! struct Counter { out: OutputPort<DataMessage> }
//! impl StreamHandler for Counter {
//!     fn ports(&self) -> Ports { Ports::new().output(&self.out) }
//!     fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
//!         let n = ctx.tick().frame_number;
//!         self.out.write(DataMessage::text("count", &n.to_string(), ctx.tick().timestamp));
//!         Ok(())
//!     }
//! }
//! struct Collect { input: InputPort<DataMessage>, seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> }
//! impl StreamHandler for Collect {
//!     fn ports(&self) -> Ports { Ports::new().input(&self.input) }
//!     fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
//!         while let Some(m) = self.input.recv() {
//!             self.seen.lock().unwrap().push(m.as_text().unwrap_or("").to_owned());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let (clock, ticks) = ManualClock::new(Rational::fps(30));
//! let mut runtime = StreamRuntime::new(clock);
//! let counter = Counter { out: OutputPort::new("count", MemoryCaps::CPU) };
//! let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! let collect = Collect { input: InputPort::new("in", MemoryCaps::CPU), seen: seen.clone() };
//! let (out, inp) = (counter.out.handle(), collect.input.handle());
//! runtime.add_stream(Stream::new("counter", counter))?;
//! runtime.add_stream(Stream::new("collect", collect))?;
//! runtime.connect(&out, &inp)?;
//! runtime.start()?;
//! ticks.tick_n(3);
//! assert!(runtime.wait_for_ticks(3, Duration::from_secs(5)));
//! let stats = runtime.stop()?;
//! assert_eq!(*seen.lock().unwrap(), ["0", "1", "2"]);
//! assert_eq!(stats.stream("collect").unwrap().ticks, 3);
//! # Ok::<(), streamlib_runtime::RuntimeError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod converter;
mod drive;
mod error;
mod graph;
mod handle;
mod negotiate;
mod node;
mod running;
mod runtime;
mod stats;
mod stream;
mod transfer;
mod wiring;

pub use converter::{Conversion, ConverterFactory, ConverterRegistry, ConverterSupports};
pub use error::RuntimeError;
pub use handle::RuntimeHandle;
pub use runtime::StreamRuntime;
pub use stats::{InputDrops, RuntimeStats, StreamState, StreamStats};
pub use stream::{Backoff, RestartPolicy, Stream};
pub use transfer::{TransferFactory, TransferHandler, TransferRegistry};
pub use wiring::Connection;

/// The runtime, its streams and their supervision, for `use streamlib_runtime::prelude::*`
/// (`streamlib::prelude` includes it).
pub mod prelude {
    pub use crate::{
        Backoff, RestartPolicy, RuntimeHandle, RuntimeStats, Stream, StreamRuntime, StreamState,
    };
}
