//! A pipeline running in the background, started from Python: the description the Python
//! `StreamRuntime` assembled (built-in handlers by registry name, Python handlers by object),
//! built by `streamlib-launch` exactly as pipeline text is, then supervised by the runtime.
//!
//! Every call that waits for the runtime's threads releases the GIL first (`py.detach`): those
//! threads run Python handlers, which need it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use streamlib::launch::{
    BuiltHandler, ClockKind, HandlerSpec, LaunchError, LaunchOptions, PipelineDesc, Policy,
    PropType, Registry, Session, prop, stats_json_with_reports,
};
use streamlib::ports::{HandlerError, StreamHandler};
use streamlib::runtime::RuntimeError;

use crate::handler::{Failures, PythonHandler};
use crate::{PipelineError, StartError};

/// The registry name Python handlers are built under; the property names the handler.
pub(crate) const PYTHON_HANDLER: &str = "python";
const SLOT: &str = "slot";

type Prepared = Arc<Mutex<HashMap<String, Box<dyn StreamHandler>>>>;

/// The builtin registry plus `python`, whose factory hands out the prepared Python handlers.
fn registry(prepared: &Prepared) -> Registry {
    let mut registry = crate::specs::builtin().clone();
    let prepared = Arc::clone(prepared);
    registry.register(HandlerSpec {
        name: PYTHON_HANDLER,
        summary: "a handler written in Python (streamlib.StreamHandler)",
        ports: Vec::new(),
        properties: vec![prop(
            SLOT,
            PropType::Text,
            None,
            false,
            "the stream id of the prepared Python handler",
        )],
        factory: Arc::new(move |properties| {
            let slot = properties.text(SLOT).to_owned();
            let handler = prepared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&slot)
                .ok_or_else(|| HandlerError::msg(format!("no Python handler for '{slot}'")))?;
            Ok(BuiltHandler {
                handler,
                live: None,
                report: None,
            })
        }),
    });
    registry
}

/// The Python exception for a launch error; `failures` supplies the Python exception a
/// Python handler raised in `on_start`, set as the cause.
pub(crate) fn launch_error(py: Python<'_>, error: &LaunchError, failures: &Failures) -> PyErr {
    if let LaunchError::Runtime(RuntimeError::StartFailed { stream, .. }) = error {
        let err = StartError::new_err(error.to_string());
        let cause = failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(stream);
        if let Some(cause) = cause {
            err.set_cause(py, Some(PyErr::from_value(cause.into_bound(py))));
        }
        return err;
    }
    PipelineError::new_err(error.to_string())
}

/// How a child interpreter becomes a `@process` worker: before anything else, it hands over
/// to the worker loop (`streamlib.__init__` prints nothing and reads no argument).
const WORKER: &str =
    "import sys; from streamlib._native import _process_worker; sys.exit(_process_worker())";

/// Makes `@process` elements start this interpreter as their worker (the launch crate's
/// default, the current executable, would be `python` without the worker's code).
fn install_worker(py: Python<'_>) -> PyResult<()> {
    let executable: String = py.import("sys")?.getattr("executable")?.extract()?;
    streamlib::launch::process::ProcessOptions::current()
        .program(executable, &["-c", WORKER])
        .install();
    Ok(())
}

/// A started pipeline.
#[pyclass(module = "streamlib._native")]
pub struct Runtime {
    session: Mutex<Option<Session>>,
    failures: Failures,
    handle: streamlib::runtime::RuntimeHandle,
    /// A stop under way on its own thread, which an interrupted `stop()` left running.
    stopping: Mutex<Option<Arc<Stopping>>>,
}

/// The outcome of a stop running on its own thread, once there is one.
#[derive(Default)]
struct Stopping {
    outcome: Mutex<Option<Result<String, LaunchError>>>,
    done: Condvar,
}

/// How long `stop()` waits between looks at the signals (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Refuses a call that would wait for the runtime from inside one of its own handler's
/// callbacks (it would wait for itself), or start a runtime inside a handler's tick.
fn refuse_in_callback(what: &str, own: Option<usize>) -> PyResult<()> {
    let Some(callback) = crate::handler::in_callback() else {
        return Ok(());
    };
    if own.is_some_and(|key| key != callback.runtime) {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "StreamRuntime.{what}() called from inside handler `{}`'s {}(); return from {} and \
         {what} from the code that runs the runtime (tick.request_stop() or \
         runtime.request_stop() ask for a stop without waiting)",
        callback.handler, callback.hook, callback.hook
    )))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[pymethods]
impl Runtime {
    /// Builds and starts `pipeline` (a pipeline description as JSON; Python handlers are
    /// elements of handler `python` whose `slot` names an entry of `handlers`).
    #[new]
    #[pyo3(signature = (pipeline, handlers, fps=None, clock="software", frames=None, auto_convert=true))]
    fn new(
        py: Python<'_>,
        pipeline: &str,
        handlers: &Bound<'_, PyDict>,
        fps: Option<f64>,
        clock: &str,
        frames: Option<u64>,
        auto_convert: bool,
    ) -> PyResult<Self> {
        refuse_in_callback("start", None)?;
        let desc =
            PipelineDesc::from_json(pipeline).map_err(|e| PipelineError::new_err(e.to_string()))?;
        let failures: Failures = Arc::default();
        let prepared: Prepared = Arc::default();
        for (slot, object) in handlers.iter() {
            let slot: String = slot.extract()?;
            let handler = PythonHandler::new(&slot, &object, Arc::clone(&failures))?;
            lock(&prepared).insert(slot, Box::new(handler));
        }
        let clock = match clock {
            "software" | "realtime" => ClockKind::Software,
            "free" | "free-running" => ClockKind::Free,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown clock {other:?}; clocks: \"software\" (realtime), \"free\" (as fast as the pipeline goes)"
                )));
            }
        };
        let options = LaunchOptions {
            fps,
            auto_convert,
            clock,
            frames,
            ptp_interface: None,
        };
        if desc
            .elements
            .iter()
            .any(|e| e.dispatcher.as_deref() == Some("process"))
        {
            install_worker(py)?;
        }
        let registry = registry(&prepared);
        let started =
            py.detach(|| Session::start_with(&registry, &desc, options, &Policy::default()));
        // Handlers not built (an earlier element failed) are dropped here, with the GIL.
        lock(&prepared).clear();
        let session = started.map_err(|e| launch_error(py, &e, &failures))?;
        let handle = session.handle();
        Ok(Self {
            session: Mutex::new(Some(session)),
            failures,
            handle,
            stopping: Mutex::new(None),
        })
    }

    /// Whether it ended by itself (end of stream everywhere, the frame limit, a stop request).
    fn is_finished(&self) -> bool {
        lock(&self.session)
            .as_ref()
            .is_none_or(Session::is_finished)
    }

    /// Asks it to stop, from any thread, without waiting.
    fn request_stop(&self) {
        self.handle.stop();
    }

    /// Statistics now, as JSON (see `stats_json`); `None` once stopped.
    fn stats(&self) -> Option<String> {
        let session = lock(&self.session);
        let session = session.as_ref()?;
        let stats = session.stats()?;
        Some(stats_json_with_reports(&stats, session.controls()).to_string())
    }

    /// Stops it (clock stopped, handlers' `on_stop` called, files finalized, threads joined)
    /// and returns the final statistics as JSON; `None` if already stopped.
    ///
    /// The stop runs on a thread of its own while this one waits without the GIL, looking at
    /// the signals every 50 ms: Ctrl-C raises `KeyboardInterrupt` here even when a handler is
    /// stuck in `process`, and the stop goes on (files are finalized once that handler
    /// returns); calling `stop()` again waits for it.
    fn stop(&self, py: Python<'_>) -> PyResult<Option<String>> {
        refuse_in_callback("stop", Some(crate::handler::runtime_key(&self.failures)))?;
        let pending = lock(&self.stopping).clone();
        let stopping = match pending {
            Some(stopping) => stopping,
            None => {
                let Some(session) = lock(&self.session).take() else {
                    return Ok(None);
                };
                let stopping = Arc::new(Stopping::default());
                *lock(&self.stopping) = Some(Arc::clone(&stopping));
                // The session waits here for the thread; if there is no thread, it is
                // stopped on this one (without the GIL), like before.
                let session = Arc::new(Mutex::new(Some(session)));
                let spawned = std::thread::Builder::new()
                    .name("streamlib-stop".into())
                    .spawn({
                        let (session, stopping) = (Arc::clone(&session), Arc::clone(&stopping));
                        move || {
                            if let Some(session) = lock(&session).take() {
                                finish(session, &stopping);
                            }
                        }
                    });
                if spawned.is_err()
                    && let Some(session) = lock(&session).take()
                {
                    py.detach(|| finish(session, &stopping));
                }
                stopping
            }
        };
        loop {
            let outcome = py.detach(|| {
                let outcome = lock(&stopping.outcome);
                let (mut outcome, _) = stopping
                    .done
                    .wait_timeout_while(outcome, SIGNAL_POLL, |o| o.is_none())
                    .unwrap_or_else(PoisonError::into_inner);
                outcome.take()
            });
            if let Some(outcome) = outcome {
                *lock(&self.stopping) = None;
                return outcome
                    .map(Some)
                    .map_err(|e| launch_error(py, &e, &self.failures));
            }
            if lock(&self.stopping).is_none() {
                // Another thread's `stop()` took the outcome.
                return Ok(None);
            }
            // KeyboardInterrupt (or what a signal handler raised) leaves the stop running.
            py.check_signals()?;
        }
    }

    /// Sets a live property of a built-in element (`blur0`, `sigma`, `3`), checked like a
    /// launch-time value.
    fn set_property(&self, element: &str, property: &str, value: &str) -> PyResult<()> {
        let session = lock(&self.session);
        let session = session
            .as_ref()
            .ok_or_else(|| PipelineError::new_err("the pipeline is stopped"))?;
        session
            .controls()
            .set(element, property, value)
            .map_err(|e| PipelineError::new_err(e.to_string()))
    }

    /// The negotiated graph as JSON (nodes, links with their caps, inserted converters).
    fn graph(&self) -> Option<String> {
        lock(&self.session).as_ref().map(|s| s.graph().to_json())
    }

    /// The exception the Python handler of stream `stream` last raised, if any.
    fn failure(&self, py: Python<'_>, stream: &str) -> Option<Py<PyAny>> {
        lock(&self.failures).get(stream).map(|e| e.clone_ref(py))
    }
}

/// Stops `session` and hands the outcome (statistics as JSON) to whoever waits on
/// `stopping`.
fn finish(mut session: Session, stopping: &Stopping) {
    let outcome = session
        .stop()
        .map(|s| stats_json_with_reports(&s, session.controls()).to_string());
    // The handlers (Python objects among them) go with the session, before the outcome is
    // reported: once `stop()` returns, nothing of the pipeline runs any more.
    drop(session);
    *lock(&stopping.outcome) = Some(outcome);
    stopping.done.notify_all();
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let session = lock(&self.session).take();
        if let Some(session) = session {
            // Stopping joins threads that may be waiting for the GIL: release it first.
            Python::attach(|py| py.detach(move || drop(session)));
        }
    }
}

/// Checks `properties` (name → text) of handler `handler` against its registered spec and
/// returns them with defaults filled in, as text.
pub(crate) fn validate(
    handler: &str,
    element: &str,
    properties: BTreeMap<String, String>,
) -> PyResult<BTreeMap<String, String>> {
    let spec = crate::specs::spec(handler)?;
    let desc = streamlib::launch::ElementDesc {
        name: element.to_owned(),
        handler: handler.to_owned(),
        properties,
        dispatcher: None,
    };
    let values = streamlib::launch::validate_properties(&desc, spec)
        .map_err(|e| crate::PropertyError::new_err(e.to_string()))?;
    Ok(values
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_string()))
        .collect())
}
