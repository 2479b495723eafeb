//! A pipeline launched in the background: what `streamlib launch` and the MCP server hold
//! while it runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use streamlib_clock::{Clock, FreeRunningClock, ManualClock, Rational, SoftwareClock};
use streamlib_runtime::{RuntimeHandle, RuntimeStats, StreamRuntime};

use crate::build::{BuiltPipeline, ClockFactory, Controls, Graph, Negotiation, build_negotiated};
use crate::desc::PipelineDesc;
use crate::error::LaunchError;
use crate::policy::Policy;
use crate::registry::Registry;

/// Which clock drives a launched pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// Realtime: ticks at the frame rate, from the system's monotonic clock.
    #[default]
    Software,
    /// As fast as the pipeline goes: the next tick once the previous one crossed the graph.
    Free,
    /// IEEE 1588 PTP (feature `ptp`): ticks on the grandmaster's TAI frame boundaries, so
    /// pipelines on machines locked to one master stamp frames alike. The interface comes from
    /// [`LaunchOptions::ptp_interface`] (a name like `eth0` or an IPv4 address).
    Ptp,
}

/// How to run a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchOptions {
    /// Ticks per second (and the nominal rate of the free clock). `None`: the rate the
    /// sources fix (a 25 fps file runs at 25; sources that disagree are an error), 30 when
    /// none fixes one.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Whether negotiation may insert format converters (`convert`, `scale`, `videorate`)
    /// with a warning; off, each link that needs one is an error naming both sides.
    #[serde(default = "yes")]
    pub auto_convert: bool,
    /// The clock.
    pub clock: ClockKind,
    /// Stop after this many ticks; run until stopped or end of stream when `None`.
    pub frames: Option<u64>,
    /// The interface PTP runs on, for [`ClockKind::Ptp`] (a name or an IPv4 address).
    #[serde(default)]
    pub ptp_interface: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for LaunchOptions {
    fn default() -> Self {
        Self {
            fps: None,
            auto_convert: true,
            clock: ClockKind::Software,
            frames: None,
            ptp_interface: None,
        }
    }
}

/// The frame rate as a rational: integer rates exactly, NTSC rates as `N*1000/1001`.
pub fn fps_rational(fps: f64) -> Result<Rational, LaunchError> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(LaunchError::Handler {
            element: "runtime".to_owned(),
            handler: "clock".to_owned(),
            message: format!("--fps {fps} is not in (0, 1000]"),
        });
    }
    let ntsc = (fps * 1001.0 / 1000.0).round();
    let rational = if (fps - fps.round()).abs() < 1e-9 {
        Ok(Rational::fps(fps.round() as u32))
    } else if (ntsc * 1000.0 / 1001.0 - fps).abs() < 1e-3 {
        Rational::new(ntsc as u32 * 1000, 1001)
    } else {
        Rational::new((fps * 1000.0).round() as u32, 1000)
    };
    rational.map_err(|e| LaunchError::Handler {
        element: "runtime".to_owned(),
        handler: "clock".to_owned(),
        message: format!("--fps {fps}: {e}"),
    })
}

/// A pipeline running in the background. Dropping it stops the runtime (files are finalized,
/// threads joined).
pub struct Session {
    runtime: StreamRuntime,
    handle: RuntimeHandle,
    controls: Controls,
    graph: Graph,
    desc: PipelineDesc,
    options: LaunchOptions,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pipeline", &self.desc.to_text())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Builds `desc` under [`Policy::default`] and starts it.
    pub fn start(
        registry: &Registry,
        desc: &PipelineDesc,
        options: LaunchOptions,
    ) -> Result<Self, LaunchError> {
        Self::start_with(registry, desc, options, &Policy::default())
    }

    /// Builds `desc` under `policy` (files and addresses are checked before any handler is
    /// built) and starts it.
    pub fn start_with(
        registry: &Registry,
        desc: &PipelineDesc,
        options: LaunchOptions,
        policy: &Policy,
    ) -> Result<Self, LaunchError> {
        let mut built = build_for(registry, desc, &options, policy)?;
        built.runtime.start()?;
        let handle = built.runtime.handle();
        Ok(Self {
            runtime: built.runtime,
            handle,
            controls: built.controls,
            graph: built.graph,
            desc: desc.clone(),
            options,
        })
    }

    /// Builds `desc` as [`start_with`](Self::start_with) would, negotiates it, and returns
    /// the graph without starting anything: what `streamlib graph` prints, caps included.
    pub fn negotiated_graph(
        registry: &Registry,
        desc: &PipelineDesc,
        options: &LaunchOptions,
        policy: &Policy,
    ) -> Result<Graph, LaunchError> {
        Ok(build_for(registry, desc, options, policy)?.graph)
    }

    /// Live property control.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// The negotiated graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The description it was started from.
    pub fn desc(&self) -> &PipelineDesc {
        &self.desc
    }

    /// A handle to stop it or read its stats from another thread.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// Current statistics.
    pub fn stats(&self) -> Option<RuntimeStats> {
        self.runtime.stats()
    }

    /// Whether it ended by itself (end of stream everywhere, a frame limit, a window closed).
    pub fn is_finished(&self) -> bool {
        self.runtime.is_finished()
    }

    /// Blocks until it ends (end of stream, frame limit, Ctrl-C, a handle's stop), then stops
    /// it and returns the final statistics.
    pub fn wait(&mut self) -> Result<RuntimeStats, LaunchError> {
        Ok(self.runtime.run()?)
    }

    /// Stops it now and returns the final statistics.
    pub fn stop(&mut self) -> Result<RuntimeStats, LaunchError> {
        Ok(self.runtime.stop()?)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Stops the clock, joins every thread, finalizes files (a no-op once stopped).
        let _ = self.runtime.stop();
    }
}

/// Builds `desc` with the clock `options` ask for, at `options.fps` or the sources' rate.
fn build_for(
    registry: &Registry,
    desc: &PipelineDesc,
    options: &LaunchOptions,
    policy: &Policy,
) -> Result<BuiltPipeline, LaunchError> {
    let make = |fps: Rational| clock_for(options, fps);
    let (runtime, rate_from_sources): (StreamRuntime, Option<ClockFactory<'_>>) = match options.fps
    {
        Some(fps) => (StreamRuntime::new(make(fps_rational(fps)?)?), None),
        // A stand-in until the sources say their rate: nothing ticks it, and the real
        // clock (a PTP clock opens sockets) is made once, at the rate chosen.
        None => (
            StreamRuntime::new(ManualClock::new(Rational::fps(DEFAULT_FPS)).0),
            Some(&make),
        ),
    };
    let negotiation = Negotiation {
        rate_from_sources,
        auto_convert: options.auto_convert,
    };
    build_negotiated(registry, desc, runtime, policy, &negotiation)
}

/// The rate when neither `--fps` nor any source fixes one.
const DEFAULT_FPS: u32 = 30;

/// The clock `options` ask for at `fps`, limited to `options.frames` ticks.
fn clock_for(options: &LaunchOptions, fps: Rational) -> Result<Box<dyn Clock>, LaunchError> {
    Ok(match options.clock {
        ClockKind::Ptp => ptp_clock(fps, options.ptp_interface.as_deref(), options.frames)?,
        ClockKind::Software => limited(SoftwareClock::new(fps), options.frames),
        ClockKind::Free => {
            let clock = FreeRunningClock::new(fps);
            Box::new(match options.frames {
                Some(n) => clock.with_limit(n),
                None => clock,
            })
        }
    })
}

/// `clock`, limited to `frames` ticks when given.
fn limited(clock: impl Clock, frames: Option<u64>) -> Box<dyn Clock> {
    match frames {
        Some(frames) => Box::new(streamlib_clock::Limited::new(clock, frames)),
        None => Box::new(clock),
    }
}

#[cfg(feature = "ptp")]
fn ptp_clock(
    fps: Rational,
    interface: Option<&str>,
    frames: Option<u64>,
) -> Result<Box<dyn Clock>, LaunchError> {
    use streamlib_ptp::{Interface, PtpClock, PtpConfig, Transport};
    let clock_error = |message: String| LaunchError::Handler {
        element: "runtime".to_owned(),
        handler: "ptp clock".to_owned(),
        message,
    };
    let name = interface.ok_or_else(|| {
        clock_error("--clock ptp needs the interface PTP runs on (--ptp-interface eth0)".into())
    })?;
    let interface = match name.parse() {
        Ok(address) => Interface::Address(address),
        Err(_) => Interface::Name(name.to_owned()),
    };
    let clock = PtpClock::new(fps, PtpConfig::new(Transport::multicast(interface)))
        .map_err(|e| clock_error(e.to_string()))?;
    Ok(limited(clock, frames))
}

#[cfg(not(feature = "ptp"))]
fn ptp_clock(_: Rational, _: Option<&str>, _: Option<u64>) -> Result<Box<dyn Clock>, LaunchError> {
    Err(LaunchError::Handler {
        element: "runtime".to_owned(),
        handler: "ptp clock".to_owned(),
        message: "this build has no PTP clock (enable the `ptp` feature)".to_owned(),
    })
}

/// Statistics as JSON: the clock, then one object per stream (durations in microseconds).
pub fn stats_json(stats: &RuntimeStats) -> Json {
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    json!({
        "clock": stats.clock,
        "clock_ticks": stats.clock_ticks,
        "clock_missed": stats.clock_missed,
        "elapsed_s": stats.elapsed.as_secs_f64(),
        "tick_rate": stats.tick_rate(),
        "streams": stats.streams.iter().map(|s| json!({
            "id": s.id,
            "handler": s.handler,
            "dispatcher": s.dispatcher,
            "state": s.state.to_string(),
            "ticks": s.ticks,
            "skipped_ticks": s.skipped_ticks,
            "items_in": s.items_in,
            "items_out": s.items_out,
            "skipped_pool_empty": s.skipped_pool_empty,
            "pool_grown": s.pool_grown,
            "pool_capacity": s.pool_capacity,
            "drops": s.total_drops(),
            "errors": s.errors,
            "panics": s.panics,
            "restarts": s.restarts,
            "error": s.last_error,
            "deadline_misses": s.deadline_misses,
            "process_p50_us": micros(s.p50),
            "process_p99_us": micros(s.p99),
            "process_max_us": micros(s.max),
            "latency_p50_us": micros(s.latency_p50),
            "latency_p99_us": micros(s.latency_p99),
        })).collect::<Vec<_>>(),
    })
}

/// [`stats_json`] with each stream's `"report"`: the handler's own counters where it keeps
/// any (see [`BuiltHandler::with_report`](crate::BuiltHandler::with_report)).
pub fn stats_json_with_reports(stats: &RuntimeStats, controls: &Controls) -> Json {
    let mut json = stats_json(stats);
    if let Some(streams) = json.get_mut("streams").and_then(Json::as_array_mut) {
        for stream in streams {
            let report = stream
                .get("id")
                .and_then(Json::as_str)
                .and_then(|id| controls.report(id));
            if let (Some(report), Some(object)) = (report, stream.as_object_mut()) {
                object.insert("report".to_owned(), report);
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn frame_rates() {
        assert_eq!(fps_rational(30.0).unwrap(), Rational::fps(30));
        assert_eq!(
            fps_rational(29.97).unwrap(),
            Rational::new(30_000, 1001).unwrap()
        );
        assert_eq!(
            fps_rational(59.94).unwrap(),
            Rational::new(60_000, 1001).unwrap()
        );
        assert_eq!(
            fps_rational(12.5).unwrap(),
            Rational::new(12_500, 1000).unwrap()
        );
        assert!(fps_rational(0.0).is_err());
        assert!(fps_rational(f64::NAN).is_err());
    }
}
