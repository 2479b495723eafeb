//! What the control room serves, read from a running session: the graph with every element's
//! properties, the live statistics, and property changes.

use serde_json::{Value as Json, json};
use streamlib_launch::{Controls, Graph, LaunchError, Session, stats_json_with_reports};
use streamlib_runtime::RuntimeHandle;

/// The most per-port controls shown for one numbered port (`layer0` … `layer63`).
const MAX_NUMBERED: i64 = 64;

/// How many numbered ports named `prefix<N>` the element has: the value of the integer
/// property that counts them (`layers` for `layer<N>`), at most [`MAX_NUMBERED`].
fn numbered_ports(
    spec: &streamlib_launch::HandlerSpec,
    values: &streamlib_launch::Properties,
    prefix: &str,
) -> i64 {
    spec.ports
        .iter()
        .filter(|port| {
            port.name
                .split_once("<N>")
                .is_some_and(|(p, _)| p == prefix)
        })
        .find_map(|port| port.count)
        .and_then(|count| values.get(count))
        .and_then(streamlib_launch::Value::as_int)
        .map_or(0, |n| n.clamp(0, MAX_NUMBERED))
}

/// A video output tapped for a preview: the `webrtcsink` inserted on it and what it taps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewTap {
    /// The inserted element's name.
    pub element: String,
    /// `element.port` of the video output it receives.
    pub source: String,
}

/// The session's parts the server threads read: all clonable handles, so the session itself
/// stays with its owner.
#[derive(Clone)]
pub(crate) struct Room {
    pipeline: String,
    graph: Graph,
    controls: Controls,
    handle: RuntimeHandle,
    previews: Vec<PreviewTap>,
}

/// Why a property change was refused, as HTTP sees it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No such element or property (`404`).
    NotFound(String),
    /// The value or the change is not accepted (`400`).
    Refused(String),
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("pipeline", &self.pipeline)
            .field("previews", &self.previews)
            .finish_non_exhaustive()
    }
}

impl Room {
    pub(crate) fn new(session: &Session, previews: Vec<PreviewTap>) -> Self {
        Self {
            pipeline: session.desc().to_text(),
            graph: session.graph().clone(),
            controls: session.controls().clone(),
            handle: session.handle(),
            previews,
        }
    }

    /// The negotiated graph: nodes (with their handler's summary, ports and properties, each
    /// with its current value and whether it is live; inserted transfers, converters and
    /// preview taps marked), edges (memory, caps, what was inserted on them).
    pub(crate) fn graph_json(&self) -> Json {
        let nodes: Vec<Json> = self
            .graph
            .nodes
            .iter()
            .map(|node| {
                let preview = self.previews.iter().find(|p| p.element == node.name);
                let mut out = json!({
                    "name": node.name,
                    "handler": node.handler,
                    "dispatcher": node.dispatcher,
                    "transfer": node.transfer,
                    "inserted": node.inserted,
                    "preview_of": preview.map(|p| p.source.clone()),
                    "properties": self.properties_json(&node.name),
                });
                if let (Some(spec), Some(map)) =
                    (self.controls.spec(&node.name), out.as_object_mut())
                {
                    map.insert("summary".into(), json!(spec.summary));
                    map.insert(
                        "ports".into(),
                        serde_json::to_value(&spec.ports).unwrap_or(Json::Null),
                    );
                }
                out
            })
            .collect();
        json!({
            "pipeline": self.pipeline,
            "nodes": nodes,
            "edges": serde_json::to_value(&self.graph.edges).unwrap_or(Json::Null),
            "previews": self.previews.iter().map(|p| json!({
                "element": p.element,
                "source": p.source,
            })).collect::<Vec<_>>(),
        })
    }

    /// `element`'s properties: every value it runs with (given, defaulted or changed live),
    /// then the live ones with no value yet, each with its type, range, doc and `live`.
    fn properties_json(&self, element: &str) -> Vec<Json> {
        let (Some(spec), Some(values)) = (
            self.controls.spec(element),
            self.controls.properties(element),
        ) else {
            return Vec::new();
        };
        let describe = |name: &str, value: Option<String>| {
            spec.property(name).map(|prop| {
                let mut ty = serde_json::to_value(prop).unwrap_or(Json::Null);
                let ty = ty.get_mut("ty").map(Json::take).unwrap_or(Json::Null);
                json!({
                    "name": name,
                    "value": value,
                    "live": prop.live,
                    "doc": prop.doc,
                    "type": ty,
                })
            })
        };
        let mut out: Vec<Json> = values
            .iter()
            .filter_map(|(name, value)| describe(name, Some(value.to_string())))
            .collect();
        for prop in spec.properties.iter().filter(|p| p.live) {
            // Per-port properties (`layer<N>.opacity`) once for each port there is.
            let names = match prop.name.split_once("<N>") {
                Some((prefix, suffix)) => (0..numbered_ports(spec, &values, prefix))
                    .map(|i| format!("{prefix}{i}{suffix}"))
                    .collect(),
                None if prop.name.contains('<') => Vec::new(),
                None => vec![prop.name.to_owned()],
            };
            for name in names {
                if values.get(&name).is_none() {
                    out.extend(describe(&name, prop.default.map(str::to_owned)));
                }
            }
        }
        out
    }

    /// The statistics now (as `pipeline_stats` and `--stats --json` show them, handlers'
    /// reports included), with `running` and the server's wall-clock time in ms.
    pub(crate) fn stats_json(&self) -> Json {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match self.handle.stats() {
            Some(stats) => {
                let mut json = stats_json_with_reports(&stats, &self.controls);
                if let Some(map) = json.as_object_mut() {
                    map.insert("running".into(), json!(true));
                    map.insert("time_ms".into(), json!(time_ms));
                }
                json
            }
            None => json!({ "running": false, "time_ms": time_ms, "streams": [] }),
        }
    }

    /// Sets `element.property = value` through [`Controls::set`] (checked like a
    /// launch-time value; the handler sees it before its next frame).
    pub(crate) fn set_property(
        &self,
        element: &str,
        property: &str,
        value: &str,
    ) -> Result<(), Refusal> {
        self.controls
            .set(element, property, value)
            .map_err(|e| match e {
                LaunchError::UnknownElement { .. } | LaunchError::UnknownProperty { .. } => {
                    Refusal::NotFound(e.to_string())
                }
                other => Refusal::Refused(other.to_string()),
            })
    }
}
