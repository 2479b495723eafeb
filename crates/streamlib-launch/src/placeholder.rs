//! Stand-ins for a dry run: a handler with the ports its registration declares and nothing
//! else, so that validating a pipeline links and negotiates it without building anything
//! (no file, socket, window or frame pool).

use streamlib_ports::{
    AudioBuffer, DataMessage, DeliveryMode, HandlerError, InputPort, KeyEvent, MemoryCaps, Message,
    OutputPort, PortKind, Ports, ProcessContext, StreamHandler, VideoFrame,
};

use crate::desc::{ElementDesc, PipelineDesc};
use crate::registry::{BuiltHandler, Direction, HandlerSpec, PortSpec, Properties};

/// The most numbered ports (`layer<N>`) a stand-in makes.
const MAX_NUMBERED: i64 = 1024;

/// A handler that only has ports; the runtime that holds it is never started.
struct Placeholder {
    ports: Ports,
}

impl StreamHandler for Placeholder {
    fn ports(&self) -> Ports {
        self.ports.clone()
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Err(HandlerError::msg("a dry run's stand-in never runs"))
    }

    fn type_name(&self) -> &'static str {
        "Placeholder"
    }
}

/// The stand-in for `element`: `spec`'s ports, numbered ones as many as their count
/// property says (or as the pipeline's links name, when the registration gives none).
pub(crate) fn built(
    spec: &HandlerSpec,
    properties: &Properties,
    element: &ElementDesc,
    desc: &PipelineDesc,
) -> BuiltHandler {
    let mut ports = Ports::new();
    for port in &spec.ports {
        for name in names(port, properties, element, desc) {
            ports = add(ports, port, name);
        }
    }
    BuiltHandler::fixed(Placeholder { ports })
}

/// The concrete names of `port`: itself, or `prefix0suffix` … for a numbered one.
fn names(
    port: &PortSpec,
    properties: &Properties,
    element: &ElementDesc,
    desc: &PipelineDesc,
) -> Vec<String> {
    let Some((prefix, suffix)) = port.name.split_once("<N>") else {
        return vec![port.name.to_owned()];
    };
    let count = match port.count {
        Some(property) => properties.int(property),
        None => desc
            .links
            .iter()
            .filter_map(|link| {
                let end = match port.direction {
                    Direction::Input => &link.to,
                    Direction::Output => &link.from,
                };
                (end.element == element.name).then_some(end.port.as_deref()?)
            })
            .filter_map(|name| {
                name.strip_prefix(prefix)?
                    .strip_suffix(suffix)?
                    .parse()
                    .ok()
            })
            .map(|n: i64| n.saturating_add(1))
            .max()
            .unwrap_or(1),
    };
    (0..count.clamp(0, MAX_NUMBERED))
        .map(|n| format!("{prefix}{n}{suffix}"))
        .collect()
}

fn add(ports: Ports, port: &PortSpec, name: String) -> Ports {
    let (caps, delivery, required) = (port.caps, port.delivery, port.required);
    match (port.direction, port.kind) {
        (Direction::Input, PortKind::Video) => {
            input::<VideoFrame>(ports, name, caps, delivery, required)
        }
        (Direction::Input, PortKind::Audio) => {
            input::<AudioBuffer>(ports, name, caps, delivery, required)
        }
        (Direction::Input, PortKind::Data) => {
            input::<DataMessage>(ports, name, caps, delivery, required)
        }
        (Direction::Input, PortKind::Event) => {
            input::<KeyEvent>(ports, name, caps, delivery, required)
        }
        (Direction::Output, PortKind::Video) => {
            ports.output(&OutputPort::<VideoFrame>::new(name, caps))
        }
        (Direction::Output, PortKind::Audio) => {
            ports.output(&OutputPort::<AudioBuffer>::new(name, caps))
        }
        (Direction::Output, PortKind::Data) => {
            ports.output(&OutputPort::<DataMessage>::new(name, caps))
        }
        (Direction::Output, PortKind::Event) => {
            ports.output(&OutputPort::<KeyEvent>::new(name, caps))
        }
    }
}

fn input<T: Message>(
    ports: Ports,
    name: String,
    caps: MemoryCaps,
    delivery: DeliveryMode,
    required: bool,
) -> Ports {
    let port = InputPort::<T>::new(name, caps).with_delivery(delivery);
    let port = if required { port } else { port.optional() };
    ports.input(&port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::{Registry, parse, validate_properties};

    /// What a dry run relies on: every input's name, kind, memory and whether it is required;
    /// every output's name, kind and memory.
    fn shape(ports: &Ports) -> Vec<String> {
        let inputs = ports.inputs().iter().map(|p| {
            format!(
                "in {} {} {} {}",
                p.name(),
                p.kind(),
                p.caps(),
                p.is_required()
            )
        });
        let outputs = ports
            .outputs()
            .iter()
            .map(|p| format!("out {} {} {}", p.name(), p.kind(), p.caps()));
        inputs.chain(outputs).collect()
    }

    /// A registration's ports are the ports its handler has: otherwise a dry run would accept
    /// links a build refuses, or the other way round.
    #[test]
    fn registered_ports_are_the_handlers_ports() {
        let dir = std::env::temp_dir().join(format!("streamlib-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The smallest video file there is: one 2x2 Y4M frame.
        let y4m = dir.join("one.y4m");
        let mut bytes = b"YUV4MPEG2 W2 H2 F30:1 C420jpeg\nFRAME\n".to_vec();
        bytes.extend_from_slice(&[128; 6]);
        std::fs::write(&y4m, bytes).unwrap();
        let mut elements = vec![
            "testpattern".to_owned(),
            "blur".to_owned(),
            "compositor layers=3".to_owned(),
            "drawing".to_owned(),
            "null".to_owned(),
            "convert format=uyvy".to_owned(),
        ];
        if cfg!(feature = "file") {
            elements.push(format!("filereader location={}", y4m.display()));
            elements.push(format!(
                "filewriter location={}",
                dir.join("x.mkv").display()
            ));
        }
        if cfg!(feature = "net") {
            elements.push("networksend destination=127.0.0.1:9".to_owned());
            elements.push("networkreceive bind=127.0.0.1:0".to_owned());
            elements.push("networkaudiosend destination=127.0.0.1:9".to_owned());
            elements.push("networkaudioreceive bind=127.0.0.1:0".to_owned());
        }
        let registry = Registry::builtin();
        for text in &elements {
            let desc = parse(text).unwrap();
            let element = &desc.elements[0];
            let spec = registry.get(&element.handler).unwrap();
            let properties = validate_properties(element, spec).unwrap();
            let real = (spec.factory)(&properties).unwrap();
            let stand_in = built(spec, &properties, element, &desc);
            assert_eq!(
                shape(&stand_in.handler.ports()),
                shape(&real.handler.ports()),
                "{text}"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
