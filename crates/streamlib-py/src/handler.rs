//! A handler written in Python, run by the Rust runtime: a `StreamHandler` that holds the
//! Python object and calls its `on_start`, `process(tick)` and `on_stop`.
//!
//! The GIL is taken only inside those calls (`Python::attach`); the runtime's threads and every
//! Rust handler run without it. `process` may be a plain method or a coroutine function: a
//! coroutine is run to completion on an event loop this handler owns (created on first use,
//! closed in `on_stop`), so `await` inside `process` works, one tick at a time. A Python
//! exception becomes the handler's error: the runtime's supervision contains it (the stream
//! fails, or restarts under its restart policy) and the exception object is kept so that
//! Python can raise it again as the cause of `StreamFailed` or `StartError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use streamlib::ports::{HandlerError, Ports, ProcessContext, StartContext, StreamHandler};

use crate::frame::{Tick, type_name};
use crate::ports::{BoundPorts, CurrentTick, bind};

/// The last exception each Python handler raised, by stream id.
pub(crate) type Failures = Arc<Mutex<HashMap<String, Py<PyAny>>>>;

/// A Python object run as a stream handler.
pub(crate) struct PythonHandler {
    id: Arc<str>,
    object: Py<PyAny>,
    process: Py<PyAny>,
    ports: Ports,
    /// The ticks of its outputs, set before each `process` call to stamp what they write.
    output_ticks: Vec<Arc<CurrentTick>>,
    type_name: &'static str,
    event_loop: Option<Py<PyAny>>,
    failures: Failures,
    /// Its runtime's [`runtime_key`].
    runtime: usize,
}

thread_local! {
    /// This thread's Python thread state while it does not hold the GIL, once it has one.
    static THREAD_STATE: std::cell::Cell<*mut pyo3::ffi::PyThreadState> =
        const { std::cell::Cell::new(std::ptr::null_mut()) };
    /// How deep this thread is in [`attached`] calls.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The Python handler callback this thread is running, if any (see [`Callback`]).
    static CALLBACK: std::cell::RefCell<Option<Callback>> = const { std::cell::RefCell::new(None) };
}

/// A Python handler callback running on this thread: what [`in_callback`] reports.
#[derive(Clone)]
pub(crate) struct Callback {
    /// The handler's stream id.
    pub(crate) handler: Arc<str>,
    /// `process`, `on_start` or `on_stop`.
    pub(crate) hook: &'static str,
    /// Its runtime's [`runtime_key`].
    pub(crate) runtime: usize,
}

/// Marks this thread as running `hook` of a handler until dropped, restoring what was there
/// (a handler's callback may run another runtime's inline).
struct InCallback(Option<Callback>);

impl InCallback {
    fn enter(handler: &PythonHandler, hook: &'static str) -> Self {
        let callback = Callback {
            handler: Arc::clone(&handler.id),
            hook,
            runtime: handler.runtime,
        };
        Self(CALLBACK.with(|c| c.replace(Some(callback))))
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        let previous = self.0.take();
        CALLBACK.with(|c| *c.borrow_mut() = previous);
    }
}

/// The runtime whose handler callbacks hold `failures` (one map per runtime): what ties a
/// callback to its runtime in [`in_callback`].
pub(crate) fn runtime_key(failures: &Failures) -> usize {
    Arc::as_ptr(failures).cast::<()>() as usize
}

/// The Python handler callback this thread is inside, if any.
pub(crate) fn in_callback() -> Option<Callback> {
    CALLBACK.with(|c| c.borrow().clone())
}

/// Gives the GIL back (saving the thread state) when an [`attached`] call ends, even by panic.
struct Detach;

impl Drop for Detach {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
        // SAFETY: `attached` took the GIL with this thread's state; saving it releases the
        // GIL and returns the same state, kept for the next call.
        THREAD_STATE.with(|s| s.set(unsafe { pyo3::ffi::PyEval_SaveThread() }));
    }
}

/// Runs `f` with the GIL, keeping this thread's Python thread state between calls.
///
/// `Python::attach` on a thread Python does not know creates a thread state and, when it
/// returns, destroys it again: microseconds on every `process` call. The runtime's threads call
/// Python handlers tick after tick, so each keeps its state and only takes the GIL back. The
/// state is never freed (a few hundred bytes per runtime thread that ever ran Python, kept
/// until the interpreter exits): freeing it from the thread's exit could race interpreter
/// shutdown, and a hang at exit is worse than the bytes. Only for threads that do not hold the
/// GIL when they call (the runtime's; the caller of `Session::start`/`stop` detached first).
fn attached<R>(f: impl FnOnce(Python<'_>) -> R) -> R {
    if DEPTH.with(std::cell::Cell::get) > 0 {
        return Python::attach(f);
    }
    let state = THREAD_STATE.with(std::cell::Cell::get);
    if state.is_null() {
        // SAFETY: the interpreter runs (this extension is loaded in it) and this thread does
        // not hold the GIL; `PyGILState_Ensure` makes (or finds) its thread state and takes the
        // GIL, which `PyEval_SaveThread` at once releases, handing back the state.
        let state = unsafe {
            let _ = pyo3::ffi::PyGILState_Ensure();
            pyo3::ffi::PyEval_SaveThread()
        };
        THREAD_STATE.with(|s| s.set(state));
    }
    let state = THREAD_STATE.with(std::cell::Cell::get);
    // SAFETY: `state` is this thread's saved thread state and this thread holds no GIL.
    unsafe { pyo3::ffi::PyEval_RestoreThread(state) };
    DEPTH.with(|d| d.set(d.get() + 1));
    let _detach = Detach;
    Python::attach(f)
}

/// A class name as the `&'static str` stats want, leaked once per distinct name.
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(name) = names.get(&name) {
        return name;
    }
    let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
    names.insert(name, leaked);
    leaked
}

impl PythonHandler {
    /// Binds the ports `object` declares in `self.inputs` / `self.outputs` to stream `id`.
    pub(crate) fn new(id: &str, object: &Bound<'_, PyAny>, failures: Failures) -> PyResult<Self> {
        let class = type_name(object);
        let mut bound = BoundPorts::default();
        for direction in ["input", "output"] {
            let attribute = format!("{direction}s");
            let ports = object.getattr(attribute.as_str()).map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "handler '{id}' ({class}) has no self.{attribute}: call super().__init__() in its __init__"
                ))
            })?;
            let ports = ports.cast::<PyDict>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "handler '{id}' ({class}): self.{attribute} must be a dict of ports, not {}",
                    type_name(&ports)
                ))
            })?;
            for (key, value) in ports.iter() {
                let key: String = key.extract().map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(format!(
                        "handler '{id}' ({class}): the keys of self.{attribute} must be port names (str)"
                    ))
                })?;
                bind(id, direction, &key, &value, &mut bound)?;
            }
        }
        let process = object.getattr("process")?;
        if !process.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "handler '{id}' ({class}): process must be a method, not {}",
                type_name(&process)
            )));
        }
        Ok(Self {
            id: Arc::from(id),
            object: object.clone().unbind(),
            process: process.unbind(),
            ports: bound.ports,
            output_ticks: bound.ticks,
            type_name: intern(class),
            event_loop: None,
            runtime: runtime_key(&failures),
            failures,
        })
    }

    /// Runs `result` to completion if it is a coroutine, on this handler's own event loop.
    fn complete<'py>(
        &mut self,
        py: Python<'py>,
        result: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if result.is_none() || !result.hasattr("__await__")? {
            return Ok(result);
        }
        let event_loop = match &self.event_loop {
            Some(l) => l.bind(py).clone(),
            None => {
                let l = py.import("asyncio")?.call_method0("new_event_loop")?;
                self.event_loop = Some(l.clone().unbind());
                l
            }
        };
        event_loop.call_method1("run_until_complete", (result,))
    }

    /// The handler error for a Python exception raised in `what`, keeping the exception.
    fn error(&self, py: Python<'_>, what: &str, err: PyErr) -> HandlerError {
        let message = describe(py, &err);
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.id.to_string(), err.into_value(py).into_any());
        HandlerError::msg(format!("{what} raised {message}"))
    }

    /// Calls an optional hook (`on_start`, `on_stop`).
    fn hook(&mut self, name: &'static str) -> Result<(), HandlerError> {
        attached(|py| {
            let _callback = InCallback::enter(self, name);
            let object = self.object.bind(py).clone();
            let outcome = (|| -> PyResult<()> {
                if !object.hasattr(name)? {
                    return Ok(());
                }
                let result = object.call_method0(name)?;
                let result = self.complete(py, result)?;
                if !result.is_none() {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "{name}() returned {}; it must return None",
                        type_name(&result)
                    )));
                }
                Ok(())
            })();
            outcome.map_err(|e| self.error(py, &format!("{name}()"), e))
        })
    }
}

/// `ValueError: message (at file.py:12 in process)`.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let kind = err
        .get_type(py)
        .name()
        .map_or_else(|_| "Exception".to_owned(), |n| n.to_string());
    let message = err
        .value(py)
        .str()
        .map_or_else(|_| String::new(), |s| s.to_string());
    let place = err
        .traceback(py)
        .and_then(|tb| {
            let frames = py
                .import("traceback")
                .ok()?
                .call_method1("extract_tb", (tb,))
                .ok()?;
            let last = frames.get_item(-1).ok()?;
            let file: String = last.getattr("filename").ok()?.extract().ok()?;
            let line: u32 = last.getattr("lineno").ok()?.extract().ok()?;
            let function: String = last.getattr("name").ok()?.extract().ok()?;
            let file = file.rsplit('/').next().unwrap_or(&file).to_owned();
            Some(format!(" (at {file}:{line} in {function})"))
        })
        .unwrap_or_default();
    if message.is_empty() {
        format!("{kind}{place}")
    } else {
        format!("{kind}: {message}{place}")
    }
}

impl StreamHandler for PythonHandler {
    fn ports(&self) -> Ports {
        self.ports.clone()
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.hook("on_start")
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        attached(|py| {
            let tick = *ctx.tick();
            for output in &self.output_ticks {
                output.set(&tick);
            }
            let callback = InCallback::enter(self, "process");
            let outcome = (|| -> PyResult<(bool, bool)> {
                let tick = Bound::new(py, Tick::new(&tick))?;
                let result = self.process.bind(py).call1((&tick,))?;
                let result = self.complete(py, result)?;
                if !result.is_none() {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "process() returned {}; it must return None (publish with self.outputs[name].write(...))",
                        type_name(&result)
                    )));
                }
                let tick = tick.get();
                Ok((tick.end_requested(), tick.stop_requested()))
            })();
            drop(callback);
            match outcome {
                Ok((end, stop)) => {
                    if end {
                        ctx.end_of_stream();
                    }
                    if stop {
                        ctx.request_stop();
                    }
                    Ok(())
                }
                Err(e) => Err(self.error(py, "process()", e)),
            }
        })
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        let result = self.hook("on_stop");
        if let Some(event_loop) = self.event_loop.take() {
            attached(|py| {
                let _ = event_loop.bind(py).call_method0("close");
            });
        }
        result
    }

    fn type_name(&self) -> &'static str {
        self.type_name
    }
}
