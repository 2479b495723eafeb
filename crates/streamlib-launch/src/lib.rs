//! Pipelines as text and as JSON, for people at a shell and for programs and AI agents.
//!
//! - A [`Registry`] of handlers by short name (`testpattern`, `blur`, `compositor`, `drawing`,
//!   `display`, `null`, `filereader`, `filewriter`, …), each with its ports and typed
//!   properties (type, default, range, one-line doc). [`Registry::builtin`] holds what this
//!   build ships; user crates [`register`](Registry::register) their own.
//! - A text syntax in the spirit of `gst-launch-1.0` ([`parse`]), and the same graph as
//!   JSON ([`PipelineDesc::from_json`], [`PipelineDesc::to_json`]); text and JSON convert both
//!   ways. Errors point at the column, suggest the nearest valid name, and state ranges.
//! - [`build`]: validates a description against the registry and adds it to a
//!   [`StreamRuntime`](streamlib_runtime::StreamRuntime), which negotiates memory and inserts
//!   transfers. The result carries the negotiated [`Graph`] (DOT or JSON) and [`Controls`] for
//!   changing live properties (blur sigma, compositor layer opacity, drawing text) between two
//!   `process` calls.
//! - A [`Policy`] of what a pipeline may reach (folders to read and write, loopback or any
//!   address, FFmpeg protocols), checked before any handler opens anything; [`dry_run`]
//!   validates and negotiates a pipeline without building a handler: nothing written, no
//!   socket bound, no frame pool allocated.
//!
//! ```
//! use streamlib_clock::{FreeRunningClock, Rational};
//! use streamlib_launch::{Registry, build, parse};
//! use streamlib_runtime::StreamRuntime;
//!
//! let desc = parse("testpattern size=64x36 ! blur sigma=1.5 ! null")?;
//! let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(5);
//! let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))?;
//! built.controls.set("blur0", "sigma", "3")?; // reaches the blur before its next frame
//! let stats = built.runtime.run()?;
//! assert_eq!(stats.stream("testpattern0").map(|s| s.items_out), Some(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod build;
mod builtin;
mod desc;
mod describe;
mod error;
mod options;
mod parse;
mod placeholder;
mod policy;
#[cfg(feature = "process")]
pub mod process;
mod registry;
mod session;
mod value;

pub use build::{
    BuiltPipeline, ClockFactory, Controls, DISPATCHERS, Graph, GraphEdge, GraphNode, Negotiation,
    build, build_negotiated, build_with, dry_run, rate_from_sources, validate, validate_properties,
    validate_with,
};
#[cfg(feature = "gpu")]
pub use builtin::gpu;
pub use builtin::register_converters;
pub use desc::{ElementDesc, LinkDesc, PipelineDesc, PortRef};
pub use describe::PortDescription;
pub use error::{LaunchError, ParseError, nearest};
pub use parse::parse;
pub use policy::{Access, Policy, PolicyError};
pub use registry::{
    BuildHook, BuiltHandler, Check, CheckError, Direction, Factory, HandlerSpec, LiveHandle,
    PortSpec, Properties, PropertySpec, Registry, Report, port, prop,
};
pub use session::{
    ClockKind, LaunchOptions, Session, fps_rational, stats_json, stats_json_with_reports,
};
pub use value::{PropType, Value, ValueError};

/// Which of this crate's optional handler groups this build compiled in. A crate that
/// re-exports `streamlib-launch` behind its own features (the `streamlib` facade) checks these
/// at compile time, so a feature that forgets to forward here fails to build instead of
/// giving a registry without the handlers it promised.
pub mod compiled {
    /// `testpattern`, `blur`, `compositor`, … (feature `video`).
    pub const VIDEO: bool = cfg!(feature = "video");
    /// `display` (feature `display`).
    pub const DISPLAY: bool = cfg!(feature = "display");
    /// `filereader`, `filewriter` (feature `file`).
    pub const FILE: bool = cfg!(feature = "file");
    /// `networksend`, `networkreceive` and their audio twins (feature `net`).
    pub const NET: bool = cfg!(feature = "net");
    /// `audiotestsrc`, `volume`, `loudness` (feature `audio`).
    pub const AUDIO: bool = cfg!(feature = "audio");
    /// `--clock ptp` (feature `ptp`).
    pub const PTP: bool = cfg!(feature = "ptp");
    /// `@async` (feature `async`).
    pub const ASYNC: bool = cfg!(feature = "async");
    /// `blur memory=gpu|any` and the CPU↔GPU transfers (feature `gpu`).
    pub const GPU: bool = cfg!(feature = "gpu");
}

/// Pipelines from text, for `use streamlib_launch::prelude::*` (`streamlib::prelude` includes
/// it with the facade's `launch` feature).
pub mod prelude {
    pub use crate::{LaunchOptions, PipelineDesc, Policy, Registry, Session, build, parse};
}
