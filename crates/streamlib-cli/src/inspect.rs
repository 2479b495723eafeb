//! `streamlib inspect`: the registry as a table or JSON.

use std::fmt::Write as _;

use streamlib_launch::{HandlerSpec, LaunchError, Registry, nearest};

/// The handler list, or one handler's ports and properties.
pub fn render(registry: &Registry, name: Option<&str>, json: bool) -> Result<String, LaunchError> {
    let Some(name) = name else {
        if json {
            let all: Vec<&HandlerSpec> = registry.iter().collect();
            return Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&all).unwrap_or_default()
            ));
        }
        let mut out = String::new();
        let width = registry.names().map(str::len).max().unwrap_or(0);
        for spec in registry.iter() {
            let _ = writeln!(out, "{:width$}  {}", spec.name, spec.summary);
        }
        return Ok(out);
    };
    let spec = registry
        .get(name)
        .ok_or_else(|| LaunchError::UnknownHandler {
            name: name.to_owned(),
            suggestion: nearest(name, registry.names()),
        })?;
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(spec).unwrap_or_default()
        ));
    }
    let mut out = format!("{}: {}\n\nPorts:\n", spec.name, spec.summary);
    for port in &spec.ports {
        let direction = match port.direction {
            streamlib_launch::Direction::Input => "in ",
            streamlib_launch::Direction::Output => "out",
        };
        let _ = writeln!(
            out,
            "  {direction} {:10} {:6} {:11} {:12} {}",
            port.name,
            port.kind.to_string(),
            port.caps.to_string(),
            port.delivery.to_string(),
            port.doc
        );
    }
    out.push_str("\nProperties:\n");
    if spec.properties.is_empty() {
        out.push_str("  none\n");
    }
    for prop in &spec.properties {
        let default = match prop.default {
            Some(d) => format!("default {d}"),
            None if prop.name.contains("<N>") => "per port".to_owned(),
            None => "required".to_owned(),
        };
        let live = if prop.live { ", live" } else { "" };
        let _ = writeln!(
            out,
            "  {:18} {} ({default}{live})\n  {:18} {}",
            prop.name,
            prop.ty.describe(),
            "",
            prop.doc
        );
    }
    Ok(out)
}
