//! Python bindings of streamlib: `streamlib._native`, the extension module under the Python
//! package `streamlib` (its Python half lives in `python/streamlib/`).
//!
//! What it adds to the Rust runtime, nothing more:
//! - handlers written in Python (`handler.rs`): a `StreamHandler` over a Python object whose
//!   ports are real runtime ports declared from Python (`ports.rs`);
//! - frames as numpy arrays over the pooled buffers, without a copy (`frame.rs`);
//! - a pipeline built from the description the Python `StreamRuntime` assembles, through the
//!   same registry and builder as pipeline text (`runtime.rs`), and the registry's handler specs
//!   so the Python handler classes are made from them, never from a second list.
//!
//! Built with maturin (`pip install ./crates/streamlib-py`); see `docs/PYTHON.md`.

mod frame;
mod handler;
mod ports;
mod runtime;
mod specs;

use std::sync::atomic::Ordering;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    StreamlibError,
    pyo3::exceptions::PyException,
    "Base class of streamlib's errors."
);
pyo3::create_exception!(
    _native,
    PipelineError,
    StreamlibError,
    "A pipeline that cannot be built: unknown handler, port or dispatcher, caps that do not meet."
);
pyo3::create_exception!(
    _native,
    PropertyError,
    StreamlibError,
    "A handler property of the wrong type, out of range, unknown or missing."
);
pyo3::create_exception!(
    _native,
    StartError,
    StreamlibError,
    "A handler's on_start failed; the Python exception it raised is the __cause__."
);

/// Bytes the bindings copied between numpy and the runtime's buffers since the process
/// started (only `write()` of a numpy array copies; frames never do).
#[pyfunction]
fn bytes_copied() -> u64 {
    frame::BYTES_COPIED.load(Ordering::Relaxed)
}

/// The registry's handlers (name, summary, ports, properties) as the JSON array `streamlib
/// inspect --json` prints.
#[pyfunction]
fn handler_specs_json() -> PyResult<String> {
    specs::all_json()
}

/// The name of handler `handler`'s property that `name` is (`layer3.opacity` is
/// `layer<N>.opacity`), or `None`.
#[pyfunction]
fn property_name(handler: &str, name: &str) -> PyResult<Option<&'static str>> {
    specs::property_name(handler, name)
}

/// Checks `properties` (name to text) for handler `handler` (element `element` in errors);
/// returns every property in effect (defaults filled in) as text.
#[pyfunction]
fn validate_properties(
    handler: &str,
    element: &str,
    properties: std::collections::BTreeMap<String, String>,
) -> PyResult<std::collections::BTreeMap<String, String>> {
    runtime::validate(handler, element, properties)
}

/// Pipeline text (`testpattern ! blur sigma=2 ! null`) as the pipeline JSON `Runtime` takes.
#[pyfunction]
fn parse_pipeline(text: &str) -> PyResult<String> {
    streamlib::launch::parse(text)
        .map(|desc| desc.to_json())
        .map_err(|e| PipelineError::new_err(e.to_string()))
}

/// The `@process` worker's entry point: what a child interpreter started for a
/// `dispatcher="processpool"` element runs (see `runtime.rs`); returns the exit code.
#[pyfunction]
fn _process_worker(py: Python<'_>) -> u8 {
    let code = py.detach(|| streamlib::launch::process::run_worker(specs::builtin()));
    if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        3
    }
}

/// The extension module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<frame::Tick>()?;
    module.add_class::<frame::PyVideoFrame>()?;
    module.add_class::<frame::PixelOwner>()?;
    module.add_class::<frame::PyAudioBuffer>()?;
    module.add_class::<frame::PyDataMessage>()?;
    module.add_class::<ports::VideoInput>()?;
    module.add_class::<ports::VideoOutput>()?;
    module.add_class::<ports::AudioInput>()?;
    module.add_class::<ports::AudioOutput>()?;
    module.add_class::<ports::DataInput>()?;
    module.add_class::<ports::DataOutput>()?;
    module.add_class::<runtime::Runtime>()?;
    module.add_function(wrap_pyfunction!(bytes_copied, module)?)?;
    module.add_function(wrap_pyfunction!(handler_specs_json, module)?)?;
    module.add_function(wrap_pyfunction!(property_name, module)?)?;
    module.add_function(wrap_pyfunction!(validate_properties, module)?)?;
    module.add_function(wrap_pyfunction!(parse_pipeline, module)?)?;
    module.add_function(wrap_pyfunction!(_process_worker, module)?)?;
    module.add("StreamlibError", py.get_type::<StreamlibError>())?;
    module.add("PipelineError", py.get_type::<PipelineError>())?;
    module.add("PropertyError", py.get_type::<PropertyError>())?;
    module.add("StartError", py.get_type::<StartError>())?;
    module.add("DISPATCHERS", streamlib::launch::DISPATCHERS.to_vec())?;
    module.add("PYTHON_HANDLER", runtime::PYTHON_HANDLER)?;
    module.add("GPU", streamlib::launch::compiled::GPU)?;
    Ok(())
}
