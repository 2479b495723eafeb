//! The registry's handler specs as Python dicts: what `streamlib.handlers` makes its classes
//! from (names, ports, properties with types, ranges, defaults and docs).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use streamlib::launch::{Direction, HandlerSpec, PortSpec, PropType, PropertySpec, Registry};
use streamlib::ports::MemorySpace;

fn port<'py>(py: Python<'py>, spec: &PortSpec) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("name", spec.name)?;
    dict.set_item(
        "direction",
        match spec.direction {
            Direction::Input => "input",
            Direction::Output => "output",
        },
    )?;
    dict.set_item("kind", spec.kind.to_string())?;
    let caps: Vec<&str> = spec.caps.iter().map(MemorySpace::as_str).collect();
    dict.set_item("capabilities", caps)?;
    dict.set_item("delivery", spec.delivery.to_string())?;
    dict.set_item("doc", spec.doc)?;
    dict.set_item("required", spec.required)?;
    dict.set_item("count", spec.count)?;
    Ok(dict)
}

fn property<'py>(py: Python<'py>, spec: &PropertySpec) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("name", spec.name)?;
    let (ty, min, max, choices): (&str, Option<f64>, Option<f64>, Option<Vec<&str>>) =
        match &spec.ty {
            PropType::Bool => ("bool", None, None, None),
            PropType::Int { min, max } => ("int", Some(*min as f64), Some(*max as f64), None),
            PropType::Float { min, max } => ("float", Some(*min), Some(*max), None),
            PropType::Text => ("text", None, None, None),
            PropType::Path => ("path", None, None, None),
            PropType::Size { max } => ("size", Some(1.0), Some(f64::from(*max)), None),
            PropType::Enum(words) => ("enum", None, None, Some(words.to_vec())),
            PropType::Color => ("color", None, None, None),
        };
    dict.set_item("type", ty)?;
    dict.set_item("min", min)?;
    dict.set_item("max", max)?;
    dict.set_item("choices", choices)?;
    dict.set_item("describe", spec.ty.describe())?;
    dict.set_item("default", spec.default)?;
    dict.set_item("live", spec.live)?;
    dict.set_item("doc", spec.doc)?;
    Ok(dict)
}

fn handler<'py>(py: Python<'py>, spec: &HandlerSpec) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("name", spec.name)?;
    dict.set_item("summary", spec.summary)?;
    let ports = PyList::empty(py);
    for p in &spec.ports {
        ports.append(port(py, p)?)?;
    }
    dict.set_item("ports", ports)?;
    let properties = PyList::empty(py);
    for p in &spec.properties {
        properties.append(property(py, p)?)?;
    }
    dict.set_item("properties", properties)?;
    Ok(dict)
}

/// Every handler of the builtin registry.
pub(crate) fn all(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    Registry::builtin()
        .iter()
        .map(|spec| handler(py, spec))
        .collect()
}
