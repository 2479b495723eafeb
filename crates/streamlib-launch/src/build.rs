//! From a description to a runtime: validate against the registry and the policy, build each
//! handler (or, for a dry run, a stand-in with its registered ports), add it with its
//! dispatcher, link the ports (the runtime negotiates memory and inserts transfers), and keep
//! the live-property handles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use streamlib_clock::Rational;
use streamlib_dispatch::{
    DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
};
use streamlib_ports::{AnyInputPort, AnyOutputPort, PortKind};
use streamlib_runtime::{Connection, Stream, StreamRuntime};

use crate::desc::{ElementDesc, LinkDesc, PipelineDesc};
use crate::error::{LaunchError, list, nearest};
use crate::options::StreamOptions;
use crate::parse::is_identifier;
use crate::policy::{Access, Policy};
use crate::registry::{
    Check, CheckError, HandlerSpec, LiveHandle, Properties, PropertySpec, Registry, Report,
};
use crate::value::{Value, ValueError};

/// The dispatchers `@name` may choose.
pub const DISPATCHERS: &[&str] = &[
    "inline",
    "threadpool",
    "dedicated",
    #[cfg(feature = "async")]
    "async",
    #[cfg(feature = "process")]
    "process",
];

/// Checks every property of `element` against `spec` and fills in defaults.
pub fn validate_properties(
    element: &ElementDesc,
    spec: &HandlerSpec,
) -> Result<Properties, LaunchError> {
    let mut values = BTreeMap::new();
    for (name, text) in &element.properties {
        let Some(prop) = spec.property(name) else {
            return Err(LaunchError::UnknownProperty {
                element: element.name.clone(),
                handler: spec.name.to_owned(),
                property: name.clone(),
                suggestion: nearest(name, spec.properties.iter().map(|p| p.name)),
                available: list(spec.properties.iter().map(|p| p.name)),
            });
        };
        values.insert(
            name.clone(),
            parse_value(element, spec, name, text, &prop.ty)?,
        );
    }
    for prop in spec.properties.iter().filter(|p| !p.name.contains('<')) {
        if values.contains_key(prop.name) {
            continue;
        }
        match prop.default {
            Some(default) => {
                let value = prop.ty.parse(default).map_err(|_| LaunchError::Handler {
                    element: element.name.clone(),
                    handler: spec.name.to_owned(),
                    message: format!("the registered default of `{}` is invalid", prop.name),
                })?;
                values.insert(prop.name.to_owned(), value);
            }
            None => {
                return Err(LaunchError::MissingProperty {
                    element: element.name.clone(),
                    handler: spec.name.to_owned(),
                    property: prop.name.to_owned(),
                    doc: prop.doc.to_owned(),
                });
            }
        }
    }
    Ok(Properties::new(values))
}

fn parse_value(
    element: &ElementDesc,
    spec: &HandlerSpec,
    name: &str,
    text: &str,
    ty: &crate::PropType,
) -> Result<Value, LaunchError> {
    ty.parse(text).map_err(|e| match e {
        ValueError::Type(expected) => LaunchError::BadValue {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            property: name.to_owned(),
            value: text.to_owned(),
            expected,
        },
        ValueError::Range(range) => LaunchError::OutOfRange {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            property: name.to_owned(),
            value: text.to_owned(),
            range,
        },
    })
}

/// Checks a description against the registry without building anything: handler names,
/// element names, properties (types, ranges, required ones), dispatchers; files and
/// addresses against [`Policy::default`].
pub fn validate(registry: &Registry, desc: &PipelineDesc) -> Result<(), LaunchError> {
    validate_with(registry, desc, &Policy::default())
}

/// [`validate`] under `policy`: a file outside its folders, a URL, a device or a
/// non-loopback address it forbids is a [`LaunchError::Refused`].
pub fn validate_with(
    registry: &Registry,
    desc: &PipelineDesc,
    policy: &Policy,
) -> Result<(), LaunchError> {
    check_elements(registry, desc, &Arc::new(policy.clone())).map(|_| ())
}

/// Checks every property that names a file
/// ([`PropertySpec::access`](crate::PropertySpec::access)) against the policy
/// and puts the path to open in its place; then the handler's own
/// [`Check`](crate::Check).
///
/// The value in effect is checked, whether given or the registered default (a default such
/// as `out.mp4` would otherwise write where the policy forbids), and every numbered
/// property (`layer0.image` for `layer<N>.image`) by the name given. Only the property's
/// [`no_file`](crate::PropertySpec::no_file) value is left alone.
fn apply_policy(
    registry: &Registry,
    element: &ElementDesc,
    spec: &HandlerSpec,
    properties: &mut Properties,
) -> Result<(), LaunchError> {
    for prop in spec.properties.iter().filter(|p| !p.access.is_none()) {
        let names: Vec<String> = properties
            .iter()
            .filter(|(name, _)| prop.matches(name))
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in names {
            let isolated = element.dispatcher.as_deref() == Some("process");
            // A crash test is a number; a file is text.
            let shown = match prop.access {
                Access::Crash => properties
                    .get(&name)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                _ => properties.text(&name).to_owned(),
            };
            let checked = check_access(properties.policy(), prop, &shown, isolated)
                .map_err(|e| refused(element, spec, &name, e))?;
            if let Some(path) = checked {
                properties.set(&name, Value::Text(path));
            }
        }
    }
    run_check(registry.check(spec.name), element, spec, properties)
}

/// The path to open for `text`, a value of the file property `prop`, if it names a file.
fn check_access(
    policy: &Policy,
    prop: &PropertySpec,
    text: &str,
    isolated: bool,
) -> Result<Option<String>, crate::PolicyError> {
    if prop.no_file == Some(text) {
        return Ok(None);
    }
    match prop.access {
        Access::Read => policy.check_read(text).map(Some),
        Access::Write => policy.check_write(text).map(Some),
        Access::Crash => policy.check_crash(text, isolated).map(|()| None),
        Access::None => Ok(None),
    }
}

/// The handler's own [`Check`](crate::Check) of `properties`, if it has one.
fn run_check(
    check: Option<&Check>,
    element: &ElementDesc,
    spec: &HandlerSpec,
    properties: &Properties,
) -> Result<(), LaunchError> {
    let Some(check) = check else {
        return Ok(());
    };
    check(properties).map_err(|e| match e {
        CheckError::Refused { property, error } => refused(element, spec, &property, error),
        CheckError::Invalid(e) => LaunchError::Handler {
            element: element.name.clone(),
            handler: spec.name.to_owned(),
            message: e.to_string(),
        },
    })
}

fn refused(
    element: &ElementDesc,
    spec: &HandlerSpec,
    property: &str,
    source: crate::PolicyError,
) -> LaunchError {
    LaunchError::Refused {
        element: element.name.clone(),
        handler: spec.name.to_owned(),
        property: property.to_owned(),
        source,
    }
}

fn check_elements<'r>(
    registry: &'r Registry,
    desc: &PipelineDesc,
    policy: &Arc<Policy>,
) -> Result<Vec<(&'r HandlerSpec, Properties, StreamOptions)>, LaunchError> {
    if desc.elements.is_empty() {
        return Err(LaunchError::Empty);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = Vec::with_capacity(desc.elements.len());
    for element in &desc.elements {
        if !is_identifier(&element.name) {
            return Err(LaunchError::InvalidName {
                name: element.name.clone(),
            });
        }
        if !seen.insert(element.name.as_str()) {
            return Err(LaunchError::DuplicateName {
                name: element.name.clone(),
            });
        }
        let spec = registry
            .get(&element.handler)
            .ok_or_else(|| LaunchError::UnknownHandler {
                name: element.handler.clone(),
                suggestion: nearest(&element.handler, registry.names()),
            })?;
        if let Some(name) = &element.dispatcher
            && !DISPATCHERS.contains(&name.as_str())
        {
            return Err(LaunchError::UnknownDispatcher {
                element: element.name.clone(),
                name: name.clone(),
                suggestion: nearest(name, DISPATCHERS.iter().copied()),
                available: DISPATCHERS.join(", "),
            });
        }
        let (element, options) = crate::options::split(element, spec)?;
        let element = &element;
        if let Some(nice) = options.child.nice {
            policy
                .check_nice(nice)
                .map_err(|e| refused(element, spec, "nice", e))?;
        }
        let mut properties = validate_properties(element, spec)?.with_policy(Arc::clone(policy));
        apply_policy(registry, element, spec, &mut properties)?;
        checked.push((spec, properties, options));
    }
    Ok(checked)
}

/// A built element: what it is, where its live properties go, what it reports, and what a
/// live change is checked against (the properties in effect, under the pipeline's policy,
/// and the handler's [`Check`]).
#[derive(Clone)]
struct ElementInfo {
    handler: &'static str,
    spec: HandlerSpec,
    live: Option<LiveHandle>,
    report: Option<Report>,
    properties: Arc<Mutex<Properties>>,
    check: Option<Check>,
}

impl std::fmt::Debug for ElementInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementInfo")
            .field("handler", &self.handler)
            .field("live", &self.live)
            .field("report", &self.report.is_some())
            .finish_non_exhaustive()
    }
}

/// Sets live properties of a built pipeline's elements, from any thread. A change is checked
/// like a launch-time value: its type and range, the pipeline's [`Policy`] for a property
/// naming a file, and the handler's [`Check`] (the addresses it would reach).
#[derive(Debug, Clone, Default)]
pub struct Controls {
    elements: BTreeMap<String, ElementInfo>,
}

impl Controls {
    /// Validates `property=value` for `element` like a launch-time property and queues it;
    /// the handler sees it at the start of its next `process` call.
    pub fn set(&self, element: &str, property: &str, value: &str) -> Result<(), LaunchError> {
        let info = self
            .elements
            .get(element)
            .ok_or_else(|| LaunchError::UnknownElement {
                link: format!("{element}.{property}={value}"),
                name: element.to_owned(),
                suggestion: nearest(element, self.elements.keys().map(String::as_str)),
            })?;
        let spec = &info.spec;
        let desc = ElementDesc {
            name: element.to_owned(),
            handler: info.handler.to_owned(),
            properties: BTreeMap::new(),
            dispatcher: None,
        };
        let prop = spec
            .property(property)
            .ok_or_else(|| LaunchError::UnknownProperty {
                element: element.to_owned(),
                handler: info.handler.to_owned(),
                property: property.to_owned(),
                suggestion: nearest(property, spec.properties.iter().map(|p| p.name)),
                available: list(spec.properties.iter().map(|p| p.name)),
            })?;
        let live =
            info.live
                .as_ref()
                .filter(|_| prop.live)
                .ok_or_else(|| LaunchError::NotLive {
                    element: element.to_owned(),
                    handler: info.handler.to_owned(),
                    property: property.to_owned(),
                    live: list(spec.properties.iter().filter(|p| p.live).map(|p| p.name)),
                })?;
        let mut value = parse_value(&desc, spec, property, value, &prop.ty)?;
        // The whole check under the lock, so that two changes at once are each checked
        // against the other.
        let mut current = info
            .properties
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = current.clone();
        if let Some(text) = value.as_text() {
            // A live change on a running element: `@process` or not, as it was built.
            let checked = check_access(next.policy(), prop, text, false)
                .map_err(|e| refused(&desc, spec, property, e))?;
            if let Some(path) = checked {
                value = Value::Text(path);
            }
        }
        next.set(property, value.clone());
        run_check(info.check.as_ref(), &desc, spec, &next)?;
        *current = next;
        live.push(property, value);
        Ok(())
    }

    /// The element names, sorted.
    pub fn elements(&self) -> impl Iterator<Item = &str> {
        self.elements.keys().map(String::as_str)
    }

    /// The registered spec of `element`'s handler (its ports and properties: types, ranges,
    /// which are live), for a user interface that offers the live ones as controls.
    pub fn spec(&self, element: &str) -> Option<&HandlerSpec> {
        self.elements.get(element).map(|info| &info.spec)
    }

    /// The properties `element` runs with now: given, defaulted, and changed live since.
    pub fn properties(&self, element: &str) -> Option<Properties> {
        let info = self.elements.get(element)?;
        Some(
            info.properties
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// The report of `element`'s own counters now, if its handler keeps any (network
    /// handlers do: packets, losses, pacing).
    pub fn report(&self, element: &str) -> Option<serde_json::Value> {
        self.elements.get(element)?.report.as_ref().map(|r| r())
    }
}

/// A pipeline built into a runtime, not started yet.
pub struct BuiltPipeline {
    /// The runtime, with every element added and linked.
    pub runtime: StreamRuntime,
    /// Live property control.
    pub controls: Controls,
    /// The graph as negotiated (transfers included).
    pub graph: Graph,
}

impl std::fmt::Debug for BuiltPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltPipeline")
            .field("graph", &self.graph)
            .finish_non_exhaustive()
    }
}

/// Builds `desc` into `runtime` (which brings the clock and any registered transfers), under
/// [`Policy::default`].
pub fn build(
    registry: &Registry,
    desc: &PipelineDesc,
    runtime: StreamRuntime,
) -> Result<BuiltPipeline, LaunchError> {
    build_with(registry, desc, runtime, &Policy::default())
}

/// Builds `desc` into `runtime` under `policy`: every file and address is checked before the
/// first handler is built.
pub fn build_with(
    registry: &Registry,
    desc: &PipelineDesc,
    runtime: StreamRuntime,
    policy: &Policy,
) -> Result<BuiltPipeline, LaunchError> {
    assemble(
        registry,
        desc,
        runtime,
        policy,
        Mode::Build,
        &Negotiation::default(),
    )
}

/// Makes the pipeline's clock once its rate is known.
pub type ClockFactory<'a> =
    &'a dyn Fn(Rational) -> Result<Box<dyn streamlib_clock::Clock>, LaunchError>;

/// How the builder negotiates: where the clock's rate comes from, whether converters may be
/// inserted.
#[derive(Clone, Copy)]
pub struct Negotiation<'a> {
    /// `None`: keep the runtime's clock. `Some(make)`: take the rate the sources fix (one
    /// rate; several are an error, none keeps the runtime's) and, when it differs, replace
    /// the runtime's clock with `make(rate)`.
    pub rate_from_sources: Option<ClockFactory<'a>>,
    /// Whether format converters may be inserted (with a warning); off, a link that needs
    /// one is an error naming both sides.
    pub auto_convert: bool,
}

impl Default for Negotiation<'_> {
    fn default() -> Self {
        Self {
            rate_from_sources: None,
            auto_convert: true,
        }
    }
}

impl std::fmt::Debug for Negotiation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Negotiation")
            .field("rate_from_sources", &self.rate_from_sources.is_some())
            .field("auto_convert", &self.auto_convert)
            .finish()
    }
}

/// [`build_with`], negotiating as `negotiation` says.
pub fn build_negotiated(
    registry: &Registry,
    desc: &PipelineDesc,
    runtime: StreamRuntime,
    policy: &Policy,
    negotiation: &Negotiation<'_>,
) -> Result<BuiltPipeline, LaunchError> {
    assemble(registry, desc, runtime, policy, Mode::Build, negotiation)
}

/// The one rate the sources fix, if any; an error listing them when they disagree.
pub fn rate_from_sources(runtime: &StreamRuntime) -> Result<Option<Rational>, LaunchError> {
    let rates = runtime.source_rates();
    let mut distinct: Vec<Rational> = Vec::new();
    for (_, rate) in &rates {
        if !distinct
            .iter()
            .any(|d| streamlib_ports::FrameRate(*d) == streamlib_ports::FrameRate(*rate))
        {
            distinct.push(*rate);
        }
    }
    match distinct.len() {
        0 => Ok(None),
        1 => Ok(Some(distinct[0])),
        _ => Err(LaunchError::RatesDisagree {
            rates: rates
                .iter()
                .map(|(port, rate)| format!("{port} {rate}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Validates and negotiates `desc` under `policy` without building a single handler: each
/// element is a stand-in with its registered ports, so nothing is written (no SDP file), no
/// socket bound, no file opened but those the policy lets it read, and no frame pool
/// allocated. The build hooks run (a GPU handler's transfers are registered). Returns the
/// graph `build` would negotiate.
pub fn dry_run(
    registry: &Registry,
    desc: &PipelineDesc,
    policy: &Policy,
) -> Result<Graph, LaunchError> {
    let rate = Rational::fps(30);
    // A clock that never ticks: the runtime is never started.
    let (clock, never) = streamlib_clock::ManualClock::new(rate);
    let manual = |rate: Rational| -> Result<Box<dyn streamlib_clock::Clock>, LaunchError> {
        Ok(Box::new(streamlib_clock::ManualClock::new(rate).0))
    };
    let negotiation = Negotiation {
        rate_from_sources: Some(&manual),
        auto_convert: true,
    };
    let built = assemble(
        registry,
        desc,
        StreamRuntime::new(clock),
        policy,
        Mode::Dry,
        &negotiation,
    )?;
    let graph = built.graph;
    drop(built.runtime);
    drop(never);
    Ok(graph)
}

/// Whether handlers are built, or stand-ins made from their registered ports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Build,
    Dry,
}

fn assemble(
    registry: &Registry,
    desc: &PipelineDesc,
    mut runtime: StreamRuntime,
    policy: &Policy,
    mode: Mode,
    negotiation: &Negotiation<'_>,
) -> Result<BuiltPipeline, LaunchError> {
    let checked = check_elements(registry, desc, &Arc::new(policy.clone()))?;
    for hook in registry.build_hooks() {
        hook(desc, &mut runtime).map_err(|e| LaunchError::Handler {
            element: "runtime".to_owned(),
            handler: "build hook".to_owned(),
            message: e.to_string(),
        })?;
    }
    let mut controls = Controls::default();
    let mut ports: BTreeMap<String, streamlib_ports::Ports> = BTreeMap::new();
    let mut nodes = Vec::with_capacity(desc.elements.len());
    let mut pool: Option<Arc<dyn Dispatcher>> = None;
    // `@process` elements: the pool provider each gives the outputs feeding it.
    #[cfg(feature = "process")]
    let mut providers: BTreeMap<String, Arc<dyn streamlib_ports::PoolProvider>> = BTreeMap::new();
    for (element, (spec, properties, options)) in desc.elements.iter().zip(checked) {
        let built = match mode {
            Mode::Build => (spec.factory)(&properties).map_err(|e| LaunchError::Handler {
                element: element.name.clone(),
                handler: spec.name.to_owned(),
                message: e.to_string(),
            })?,
            Mode::Dry => crate::placeholder::built(spec, &properties, element, desc),
        };
        // The real handler was built only for its ports: a proxy runs it in a child.
        #[cfg(feature = "process")]
        let built = if element.dispatcher.as_deref() == Some("process") {
            let proxied =
                crate::process::proxy(&element.name, spec, &properties, built, &options.child)?;
            providers.insert(element.name.clone(), proxied.provider);
            proxied.built
        } else {
            built
        };
        ports.insert(element.name.clone(), built.handler.ports());
        let mut stream = Stream::boxed(element.name.clone(), built.handler);
        if let (Some(name), Mode::Build) = (&element.dispatcher, mode) {
            stream = stream.dispatcher(dispatcher(name, &mut pool)?);
        }
        let stream = options.apply(stream);
        runtime.add_stream(stream)?;
        nodes.push(GraphNode {
            name: element.name.clone(),
            handler: spec.name.to_owned(),
            dispatcher: element.dispatcher.clone(),
            transfer: false,
            inserted: None,
        });
        controls.elements.insert(
            element.name.clone(),
            ElementInfo {
                handler: spec.name,
                spec: spec.clone(),
                live: built.live,
                report: built.report,
                properties: Arc::new(Mutex::new(properties)),
                check: registry.check(spec.name).cloned(),
            },
        );
    }
    let mut used_inputs: BTreeMap<(String, String), ()> = BTreeMap::new();
    for link in &desc.links {
        let (output, input) = resolve_link(desc, &ports, &used_inputs, link)?;
        used_inputs.insert((link.to.element.clone(), input.name().to_owned()), ());
        #[cfg(feature = "process")]
        if let Some(provider) = providers.get(&link.to.element) {
            // Its producer writes frames into the element's shared memory: they cross as slots.
            output.set_pool_provider(Some(Arc::clone(provider)));
        }
        runtime.connect_ports(output, input)?;
    }
    if let Some(make) = negotiation.rate_from_sources {
        // The sources' one rate, or (none fixes one) the runtime's clock's.
        let rate = rate_from_sources(&runtime)?.unwrap_or(runtime.clock_info().fps);
        runtime.set_clock(make(rate)?)?;
    }
    crate::builtin::register_converters(runtime.converters_mut());
    runtime.set_auto_convert(negotiation.auto_convert);
    let edges = runtime.negotiate()?.to_vec();
    for edge in &edges {
        if let Some(transfer) = &edge.transfer {
            nodes.push(GraphNode {
                name: transfer.clone(),
                handler: "transfer".to_owned(),
                dispatcher: None,
                transfer: true,
                inserted: Some(format!("memory: {}", edge.memory)),
            });
        }
        for converter in &edge.converters {
            let handler = converter.split('-').next().unwrap_or(converter).to_owned();
            nodes.push(GraphNode {
                name: converter.clone(),
                inserted: Some(format!(
                    "{} between {} and {}",
                    match handler.as_str() {
                        "scale" => "size",
                        "videorate" => "rate",
                        "audioconvert" => "channels",
                        "audioresample" => "sample rate",
                        _ => "format",
                    },
                    edge.output,
                    edge.input
                )),
                handler,
                dispatcher: None,
                transfer: true,
            });
        }
    }
    runtime.validate()?;
    Ok(BuiltPipeline {
        runtime,
        controls,
        graph: Graph {
            nodes,
            edges: edges.iter().map(GraphEdge::from).collect(),
        },
    })
}

fn dispatcher(
    name: &str,
    pool: &mut Option<Arc<dyn Dispatcher>>,
) -> Result<Arc<dyn Dispatcher>, LaunchError> {
    Ok(match name {
        "inline" => Arc::new(InlineDispatcher::new()),
        "dedicated" => Arc::new(DedicatedThreadDispatcher::new()),
        // A `@process` element's proxy waits on its child: a thread of its own.
        #[cfg(feature = "process")]
        "process" => Arc::new(crate::process::ProcessDispatcher::new()),
        #[cfg(feature = "async")]
        "async" => Arc::new(streamlib_dispatch::AsyncDispatcher::new(1).map_err(|e| {
            LaunchError::Handler {
                element: name.to_owned(),
                handler: "async dispatcher".to_owned(),
                message: e.to_string(),
            }
        })?),
        // One pool shared by every `@threadpool` element, sized to the machine.
        _ => Arc::clone(pool.get_or_insert_with(|| {
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            Arc::new(ThreadPoolDispatcher::new(workers))
        })),
    })
}

type PortPair = (Arc<dyn AnyOutputPort>, Arc<dyn AnyInputPort>);

/// Finds the two ports of `link`: named ones, or the first output and the first free input
/// of the output's kind.
fn resolve_link(
    desc: &PipelineDesc,
    ports: &BTreeMap<String, streamlib_ports::Ports>,
    used: &BTreeMap<(String, String), ()>,
    link: &LinkDesc,
) -> Result<PortPair, LaunchError> {
    let shown = format!("{} ! {}", link.from, link.to);
    let element = |name: &str| -> Result<(&ElementDesc, &streamlib_ports::Ports), LaunchError> {
        match (desc.element(name), ports.get(name)) {
            (Some(e), Some(p)) => Ok((e, p)),
            _ => Err(LaunchError::UnknownElement {
                link: shown.clone(),
                name: name.to_owned(),
                suggestion: nearest(name, desc.elements.iter().map(|e| e.name.as_str())),
            }),
        }
    };
    let (from, from_ports) = element(&link.from.element)?;
    let (to, to_ports) = element(&link.to.element)?;
    let outputs = from_ports.outputs();
    let output = match &link.from.port {
        Some(name) => outputs.iter().find(|p| p.name() == name).ok_or_else(|| {
            unknown_port(
                &shown,
                from,
                "output",
                name,
                outputs.iter().map(|p| p.name()),
            )
        })?,
        None => outputs.first().ok_or_else(|| LaunchError::NoFreePort {
            link: shown.clone(),
            element: from.name.clone(),
            handler: from.handler.clone(),
            direction: "output",
            kind: "anything".to_owned(),
            available: "none".to_owned(),
        })?,
    };
    let inputs = to_ports.inputs();
    let input = match &link.to.port {
        Some(name) => inputs.iter().find(|p| p.name() == name).ok_or_else(|| {
            unknown_port(&shown, to, "input", name, inputs.iter().map(|p| p.name()))
        })?,
        None => {
            let kind: PortKind = output.kind();
            inputs
                .iter()
                .find(|p| {
                    p.kind() == kind && !used.contains_key(&(to.name.clone(), p.name().to_owned()))
                })
                .ok_or_else(|| LaunchError::NoFreePort {
                    link: shown.clone(),
                    element: to.name.clone(),
                    handler: to.handler.clone(),
                    direction: "input",
                    kind: kind.to_string(),
                    available: list(inputs.iter().map(|p| p.name())),
                })?
        }
    };
    Ok((Arc::clone(output), Arc::clone(input)))
}

fn unknown_port<'a>(
    link: &str,
    element: &ElementDesc,
    direction: &'static str,
    port: &str,
    available: impl Iterator<Item = &'a str> + Clone,
) -> LaunchError {
    LaunchError::UnknownPort {
        link: link.to_owned(),
        element: element.name.clone(),
        handler: element.handler.clone(),
        direction,
        port: port.to_owned(),
        suggestion: nearest(port, available.clone()),
        available: list(available),
    }
}

/// One stream of the negotiated graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphNode {
    /// Stream id.
    pub name: String,
    /// Registered handler name, or `transfer` for one the runtime inserted.
    pub handler: String,
    /// `@dispatcher`, if one was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatcher: Option<String>,
    /// Whether the runtime inserted it (a memory transfer or a format converter).
    pub transfer: bool,
    /// Why it was inserted (`memory: gpu`, `format between a.video and b.video`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted: Option<String>,
}

/// One link of the negotiated graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// `stream.port` of the output.
    pub from: String,
    /// `stream.port` of the input.
    pub to: String,
    /// The memory space agreed.
    pub memory: String,
    /// The transfer stream inserted between them, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    /// The format caps negotiated on the link (`video uyvy 640x480 30`), `any` when neither
    /// side declared one.
    pub caps: String,
    /// Format converters inserted between them, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub converters: Vec<String>,
}

impl From<&Connection> for GraphEdge {
    fn from(c: &Connection) -> Self {
        GraphEdge {
            from: c.output.clone(),
            to: c.input.clone(),
            memory: c.memory.to_string(),
            transfer: c.transfer.clone(),
            caps: c
                .caps
                .as_ref()
                .map_or_else(|| "any".to_owned(), |c| c.to_string()),
            converters: c.converters.clone(),
        }
    }
}

/// The validated, negotiated graph: what `streamlib graph` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Streams, transfers last.
    pub nodes: Vec<GraphNode>,
    /// Links as negotiated.
    pub edges: Vec<GraphEdge>,
}

impl Graph {
    /// Graphviz form.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
        for node in &self.nodes {
            let style = if node.transfer { ", style=dashed" } else { "" };
            let dispatcher = node
                .dispatcher
                .as_deref()
                .map(|d| format!("\\n@{d}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n({}){dispatcher}\"{style}];",
                node.name, node.name, node.handler
            );
        }
        for edge in &self.edges {
            let node = |port: &str| port.split('.').next().unwrap_or(port).to_owned();
            let label = |port: &str| port.split_once('.').map_or("", |(_, p)| p).to_owned();
            // from -> transfer -> converters -> to, the caps on the last hop.
            let mut hops = vec![node(&edge.from)];
            hops.extend(edge.transfer.iter().cloned());
            hops.extend(edge.converters.iter().cloned());
            hops.push(node(&edge.to));
            let last = hops.len() - 2;
            for (i, pair) in hops.windows(2).enumerate() {
                let mut attrs = Vec::new();
                if i == 0 {
                    attrs.push(format!("taillabel=\"{}\"", label(&edge.from)));
                }
                if i == last {
                    attrs.push(format!("headlabel=\"{}\"", label(&edge.to)));
                    attrs.push(format!("label=\"{}\\n{}\"", edge.memory, edge.caps));
                }
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\" [{}];",
                    pair[0],
                    pair[1],
                    attrs.join(", ")
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
