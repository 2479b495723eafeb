//! Handlers describe themselves: the ports a handler really has, with their format caps,
//! read from an instance built with its default properties — what `streamlib inspect`
//! shows beside the registered description, and what the tests hold the description to.

use serde::Serialize;
use streamlib_ports::Caps;

use crate::build::validate_properties;
use crate::desc::ElementDesc;
use crate::{Access, Direction, LaunchError, Registry};

/// One port of a built handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortDescription {
    /// Port name.
    pub name: String,
    /// Input or output.
    pub direction: Direction,
    /// Message kind.
    pub kind: String,
    /// Memory capabilities (`[cpu]`, `[cpu, gpu]`).
    pub memory: String,
    /// Latest-read or ordered (inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Format caps: what it produces or accepts (`video rgba8 1280x720`).
    pub caps: String,
    /// For an output: the input whose negotiated caps it follows, and in which fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
}

impl Registry {
    /// The ports of `name` as an instance built with its default properties reports them,
    /// caps included. `Ok(None)` for a handler that cannot be built without reaching
    /// something (a file, an address: it has a policy check, a required property, or a
    /// default that names a file): its caps are fixed when the pipeline builds it (a file's
    /// are probed, a receiver's come from its SDP).
    ///
    /// # Errors
    /// [`LaunchError::UnknownHandler`]; the handler's own error if its defaults do not build.
    pub fn describe(&self, name: &str) -> Result<Option<Vec<PortDescription>>, LaunchError> {
        let spec = self.get(name).ok_or_else(|| LaunchError::UnknownHandler {
            name: name.to_owned(),
            suggestion: crate::nearest(name, self.names()),
        })?;
        let reaches = spec.properties.iter().any(|p| {
            p.default.is_none() && !p.name.contains('<')
                || matches!(p.access, Access::Read | Access::Write) && p.default != p.no_file
        });
        if reaches || self.check(name).is_some() {
            return Ok(None);
        }
        self.describe_with(name, &[]).map(Some)
    }

    /// The ports of `name` built with `properties` (the rest at their defaults), caps
    /// included. This builds the handler as a pipeline would, with what that reaches: a
    /// reader opens its file, a receiver binds its port (no policy is applied; for tests and
    /// tools that chose the properties themselves).
    ///
    /// # Errors
    /// [`LaunchError::UnknownHandler`]; a property error; the handler's own error.
    pub fn describe_with(
        &self,
        name: &str,
        properties: &[(&str, &str)],
    ) -> Result<Vec<PortDescription>, LaunchError> {
        let spec = self.get(name).ok_or_else(|| LaunchError::UnknownHandler {
            name: name.to_owned(),
            suggestion: crate::nearest(name, self.names()),
        })?;
        let element = ElementDesc {
            name: format!("{name}0"),
            handler: name.to_owned(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dispatcher: None,
        };
        let properties = validate_properties(&element, spec)?;
        let built = (spec.factory)(&properties).map_err(|e| LaunchError::Handler {
            element: element.name.clone(),
            handler: name.to_owned(),
            message: e.to_string(),
        })?;
        let ports = built.handler.ports();
        let mut out = Vec::new();
        for input in ports.inputs() {
            out.push(PortDescription {
                name: input.name().to_owned(),
                direction: Direction::Input,
                kind: input.kind().to_string(),
                memory: input.caps().to_string(),
                delivery: Some(input.delivery().to_string()),
                caps: shown(&input.format_caps()),
                follows: None,
            });
        }
        for output in ports.outputs() {
            let follows = output.follows().and_then(|(id, follow)| {
                let input = ports.inputs().iter().find(|i| i.id() == id)?;
                let fields: Vec<&str> = [
                    (follow.format, "format"),
                    (follow.size, "size"),
                    (follow.rate, "rate"),
                ]
                .into_iter()
                .filter_map(|(on, field)| on.then_some(field))
                .collect();
                Some(format!("{} ({})", input.name(), fields.join(", ")))
            });
            out.push(PortDescription {
                name: output.name().to_owned(),
                direction: Direction::Output,
                kind: output.kind().to_string(),
                memory: output.caps().to_string(),
                delivery: None,
                caps: shown(&output.format_caps()),
                follows,
            });
        }
        Ok(out)
    }
}

fn shown(caps: &Caps) -> String {
    match caps {
        Caps::Any => "any (not declared)".to_owned(),
        other => other.to_string(),
    }
}
