//! `streamlib inspect`: the registry as a table or JSON.

use std::fmt::Write as _;

use streamlib_launch::{HandlerSpec, LaunchError, PropertySpec, Registry, nearest};

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
    // The ports as an instance built with the defaults reports them, caps included.
    let built = registry.describe(name)?;
    if json {
        let mut value = serde_json::to_value(spec).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "built_ports".to_owned(),
                serde_json::to_value(&built).unwrap_or_default(),
            );
            object.insert(
                "stream_options".to_owned(),
                serde_json::to_value(stream_options(registry, spec)).unwrap_or_default(),
            );
        }
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
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
    match &built {
        Some(ports) => {
            out.push_str("\nCaps (as built with the default properties):\n");
            for port in ports {
                let direction = match port.direction {
                    streamlib_launch::Direction::Input => "in ",
                    streamlib_launch::Direction::Output => "out",
                };
                let follows = port
                    .follows
                    .as_deref()
                    .map(|f| format!("  (follows {f})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {direction} {:10} {}{follows}", port.name, port.caps);
            }
        }
        None => out.push_str(
            "\nCaps: fixed when the pipeline builds it (probed from its file or SDP, or from \
             its properties)\n",
        ),
    }
    out.push_str("\nProperties:\n");
    if spec.properties.is_empty() {
        out.push_str("  none\n");
    }
    property_lines(&mut out, &spec.properties);
    let options = stream_options(registry, spec);
    if !options.is_empty() {
        out.push_str("\nStream options (every element, any dispatcher):\n");
        property_lines(&mut out, &options);
    }
    Ok(out)
}

/// The stream options this handler's elements take: all but those its own properties shadow.
fn stream_options(registry: &Registry, spec: &HandlerSpec) -> Vec<PropertySpec> {
    registry
        .stream_options()
        .iter()
        .filter(|o| spec.property(o.name).is_none())
        .cloned()
        .collect()
}

/// One entry per property: name, type, default, and its doc on the next line.
fn property_lines(out: &mut String, properties: &[PropertySpec]) {
    for prop in properties {
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
}
