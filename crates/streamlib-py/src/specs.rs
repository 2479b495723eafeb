//! The handler registry the bindings build from, made once: its specs as the JSON `streamlib
//! inspect --json` prints (the registry's own serialization, which `streamlib.handlers` makes
//! its classes from), and the property matching pipeline text uses.

use std::sync::OnceLock;

use streamlib::launch::{HandlerSpec, Registry};

use crate::PipelineError;

/// The builtin registry, built on first use and kept: every `validate_properties`, runtime
/// start and `@process` worker reads the same one.
pub(crate) fn builtin() -> &'static Registry {
    static BUILTIN: OnceLock<Registry> = OnceLock::new();
    BUILTIN.get_or_init(Registry::builtin)
}

/// The spec of handler `name`, or the error pipeline text gives for an unknown one.
pub(crate) fn spec(name: &str) -> pyo3::PyResult<&'static HandlerSpec> {
    let registry = builtin();
    registry.get(name).ok_or_else(|| {
        let suggestion = streamlib::launch::nearest(name, registry.names())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        PipelineError::new_err(format!("unknown handler `{name}`{suggestion}"))
    })
}

/// Every handler of the builtin registry, serialized by the registry's types (`HandlerSpec`
/// is `Serialize`), as a JSON array.
pub(crate) fn all_json() -> pyo3::PyResult<String> {
    let specs: Vec<&HandlerSpec> = builtin().iter().collect();
    serde_json::to_string(&specs).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("serializing the handler specs: {e}"))
    })
}

/// The name of the property of handler `handler` that `name` is (`layer3.opacity` is
/// `layer<N>.opacity`), as pipeline text matches it; `None` if it is none.
pub(crate) fn property_name(handler: &str, name: &str) -> pyo3::PyResult<Option<&'static str>> {
    Ok(spec(handler)?.property(name).map(|p| p.name))
}
