//! The handler registry: every handler a pipeline description may name, with its ports and
//! typed properties, and a factory that builds it from validated properties.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use streamlib_ports::{
    DeliveryMode, HandlerError, MemoryCaps, PortKind, Ports, ProcessContext, StartContext,
    StreamHandler,
};

use crate::policy::{Access, Policy};
use crate::value::{PropType, Value};

/// Which way a port faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Receives messages.
    Input,
    /// Sends messages.
    Output,
}

/// A port as `inspect` shows it. Names may contain `<N>` for numbered ports (`layer<N>`).
#[derive(Debug, Clone, Serialize)]
pub struct PortSpec {
    /// Port name.
    pub name: &'static str,
    /// Input or output.
    pub direction: Direction,
    /// Message kind: `video`, `audio`, `data`, `event`.
    #[serde(serialize_with = "display")]
    pub kind: PortKind,
    /// Memory capabilities: `[cpu]`, `[gpu]`, `[cpu, gpu]`.
    #[serde(serialize_with = "display")]
    pub caps: MemoryCaps,
    /// Latest-read or ordered.
    #[serde(serialize_with = "display")]
    pub delivery: DeliveryMode,
    /// One line on what flows through it.
    pub doc: &'static str,
    /// Whether the runtime refuses to start with it unconnected (inputs; see
    /// [`PortSpec::optional`]).
    #[serde(skip_serializing_if = "is_true")]
    pub required: bool,
    /// For a numbered port (`layer<N>`): the integer property that says how many there are
    /// (see [`PortSpec::numbered_by`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<&'static str>,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl PortSpec {
    /// The same input, but the pipeline may leave it unconnected.
    pub const fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// A numbered port (`layer<N>`) of which there are as many as the integer property
    /// `count` says: `layer0` to `layer{count-1}`.
    pub const fn numbered_by(mut self, count: &'static str) -> Self {
        self.count = Some(count);
        self
    }
}

/// A typed property.
#[derive(Debug, Clone, Serialize)]
pub struct PropertySpec {
    /// Name; may contain `<N>` for per-port properties (`layer<N>.opacity`) or `<NAME>` for
    /// named ones (`var.<NAME>`).
    pub name: &'static str,
    /// Type and range.
    #[serde(serialize_with = "prop_type")]
    pub ty: PropType,
    /// Default as text; `None` means the property is required.
    pub default: Option<&'static str>,
    /// Whether it can be changed while the pipeline runs.
    pub live: bool,
    /// One line on what it does.
    pub doc: &'static str,
    /// Whether it names a file the handler reads or writes, for the [`Policy`] to check
    /// before the handler runs. The value in effect is checked, given or default, unless it
    /// is [`PropertySpec::no_file`].
    #[serde(skip_serializing_if = "Access::is_none")]
    pub access: Access,
    /// The value that names no file for a property with [`PropertySpec::access`] (`system`
    /// for the built-in font, empty for no SDP): the handler opens nothing for it, so the
    /// policy does not check it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_file: Option<&'static str>,
}

impl PropertySpec {
    /// The same property, naming a file the handler reads ([`Access::Read`]) or writes
    /// ([`Access::Write`]).
    pub const fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The same property, with `value` meaning "no file" (see [`PropertySpec::no_file`]).
    pub const fn no_file(mut self, value: &'static str) -> Self {
        self.no_file = Some(value);
        self
    }

    /// Whether `name` is this property (`layer3.opacity` matches `layer<N>.opacity`).
    ///
    /// `<N>` stands for a number (a port index), `<NAME>` for an identifier (letters, digits,
    /// `_`, `-`: a variable name).
    pub fn matches(&self, name: &str) -> bool {
        let (placeholder, accept): (&str, fn(u8) -> bool) = if self.name.contains("<NAME>") {
            ("<NAME>", |b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
            })
        } else {
            ("<N>", |b| b.is_ascii_digit())
        };
        match self.name.split_once(placeholder) {
            None => self.name == name,
            Some((prefix, suffix)) => name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(accept)),
        }
    }
}

fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn prop_type<S: serde::Serializer>(ty: &PropType, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("type", ty.name())?;
    map.serialize_entry("accepts", &ty.describe())?;
    match ty {
        PropType::Int { min, max } => {
            map.serialize_entry("min", min)?;
            map.serialize_entry("max", max)?;
        }
        PropType::Float { min, max } => {
            map.serialize_entry("min", min)?;
            map.serialize_entry("max", max)?;
        }
        PropType::Enum(words) => map.serialize_entry("values", words)?,
        _ => {}
    }
    map.end()
}

/// An element's validated properties: every one given, parsed and range-checked, plus the
/// defaults of those not given; and the [`Policy`] the pipeline is built under, for
/// factories to check what they derive (the addresses of an SDP file).
#[derive(Debug, Clone, Default)]
pub struct Properties {
    values: BTreeMap<String, Value>,
    policy: Arc<Policy>,
}

impl Properties {
    /// From already-validated values (the builder makes these), under [`Policy::default`].
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Self {
            values,
            policy: Arc::default(),
        }
    }

    /// The same values under `policy`.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// The policy the pipeline is built under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the value of `name` (the builder puts checked, canonical paths here).
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Every value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A flag (false when absent).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    /// An integer (0 when absent).
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(Value::as_int).unwrap_or(0)
    }

    /// A number (0 when absent).
    pub fn float(&self, name: &str) -> f64 {
        self.get(name).and_then(Value::as_float).unwrap_or(0.0)
    }

    /// Text ("" when absent).
    pub fn text(&self, name: &str) -> &str {
        self.get(name).and_then(Value::as_text).unwrap_or("")
    }

    /// A size ((1, 1) when absent).
    pub fn size(&self, name: &str) -> (u32, u32) {
        self.get(name).and_then(Value::as_size).unwrap_or((1, 1))
    }

    /// A colour (opaque black when absent).
    pub fn color(&self, name: &str) -> [u8; 4] {
        self.get(name)
            .and_then(Value::as_color)
            .unwrap_or([0, 0, 0, 255])
    }
}

/// Changes waiting for the next `process` call.
#[derive(Default)]
struct Pending {
    changes: Mutex<Vec<(String, Value)>>,
    /// Set when `changes` has entries, so that ticks without changes take no lock.
    dirty: AtomicBool,
}

/// Sets an element's live properties from any thread. Changes are queued and applied at the
/// start of the handler's next `process` call, never during one; several changes made
/// between two calls reach the same call, in order.
#[derive(Clone, Default)]
pub struct LiveHandle {
    pending: Arc<Pending>,
}

impl LiveHandle {
    /// Queues `name = value` (already validated against the property's type and range).
    pub fn push(&self, name: &str, value: Value) {
        let mut changes = self
            .pending
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        changes.push((name.to_owned(), value));
        self.pending.dirty.store(true, Ordering::Release);
    }
}

impl fmt::Debug for LiveHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveHandle").finish_non_exhaustive()
    }
}

/// Applies one live change to the handler.
type ApplyFn<H> = Box<dyn FnMut(&mut H, &str, &Value) -> Result<(), HandlerError> + Send>;

/// A handler whose live property changes are applied between two `process` calls.
struct Controlled<H: StreamHandler> {
    inner: H,
    pending: Arc<Pending>,
    apply: ApplyFn<H>,
    batch: Vec<(String, Value)>,
}

impl<H: StreamHandler> Controlled<H> {
    /// Applies the queued changes. A change the handler refuses (a value inside the declared
    /// range that the handler still cannot take) is logged and skipped, the old value kept:
    /// a live change must never fail the stream it was meant to tune.
    fn apply_pending(&mut self) {
        if !self.pending.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        {
            let mut changes = self
                .pending
                .changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *changes, &mut self.batch);
        }
        for (name, value) in self.batch.drain(..) {
            if let Err(e) = (self.apply)(&mut self.inner, &name, &value) {
                tracing::warn!(property = %name, %value, error = %e, "live change refused; the previous value stays");
            }
        }
    }
}

impl<H: StreamHandler> StreamHandler for Controlled<H> {
    fn ports(&self) -> Ports {
        self.inner.ports()
    }
    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.inner.on_start(ctx)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.apply_pending();
        self.inner.process(ctx)
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.inner.on_stop()
    }
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }
}

/// A handler's own counters as JSON, readable from any thread while it runs (what
/// `streamlib launch --json` prints as a stream's `"report"`).
pub type Report = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What a factory returns: the handler, a handle for its live properties if it has any, and
/// a report of its own counters if it keeps any.
pub struct BuiltHandler {
    /// The handler, ready to be added to a runtime.
    pub handler: Box<dyn StreamHandler>,
    /// Where live property changes go.
    pub live: Option<LiveHandle>,
    /// Its counters (see [`BuiltHandler::with_report`]).
    pub report: Option<Report>,
}

impl BuiltHandler {
    /// A handler without live properties.
    pub fn fixed(handler: impl StreamHandler) -> Self {
        Self {
            handler: Box::new(handler),
            live: None,
            report: None,
        }
    }

    /// Adds a report: `report` is called from other threads (statistics, `--json`) while
    /// the handler runs, so it reads a shared stats handle, never the handler itself.
    pub fn with_report(
        mut self,
        report: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.report = Some(Arc::new(report));
        self
    }

    /// A handler whose live properties `apply` sets (called on the handler's own thread,
    /// between two `process` calls).
    pub fn live<H: StreamHandler>(
        handler: H,
        apply: impl FnMut(&mut H, &str, &Value) -> Result<(), HandlerError> + Send + 'static,
    ) -> Self {
        let handle = LiveHandle::default();
        Self {
            handler: Box::new(Controlled {
                inner: handler,
                pending: Arc::clone(&handle.pending),
                apply: Box::new(apply),
                batch: Vec::new(),
            }),
            live: Some(handle),
            report: None,
        }
    }
}

impl fmt::Debug for BuiltHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltHandler")
            .field("handler", &self.handler.type_name())
            .field("live", &self.live.is_some())
            .field("report", &self.report.is_some())
            .finish()
    }
}

/// Builds a handler from validated properties.
pub type Factory = Arc<dyn Fn(&Properties) -> Result<BuiltHandler, HandlerError> + Send + Sync>;

/// A registered handler: name, documentation, ports, properties and factory.
#[derive(Clone, Serialize)]
pub struct HandlerSpec {
    /// The name pipelines use (`testpattern`).
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its ports.
    pub ports: Vec<PortSpec>,
    /// Its properties.
    pub properties: Vec<PropertySpec>,
    /// Builds it.
    #[serde(skip)]
    pub factory: Factory,
}

impl HandlerSpec {
    /// The property spec `name` matches.
    pub fn property(&self, name: &str) -> Option<&PropertySpec> {
        self.properties.iter().find(|p| p.matches(name))
    }
}

impl fmt::Debug for HandlerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerSpec")
            .field("name", &self.name)
            .field("ports", &self.ports)
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

/// Prepares a runtime for a description before its elements are added: e.g. registers the
/// CPU↔GPU transfers when the description uses a GPU handler.
pub type BuildHook = Arc<
    dyn Fn(&crate::PipelineDesc, &mut streamlib_runtime::StreamRuntime) -> Result<(), HandlerError>
        + Send
        + Sync,
>;

/// Why a handler's [`Check`] refused its properties.
#[derive(Debug)]
pub enum CheckError {
    /// The [`Policy`] forbids what a property would reach.
    Refused {
        /// The property at fault (`sdp`, `bind`, `destination`).
        property: String,
        /// The rule it broke.
        error: crate::PolicyError,
    },
    /// The properties are valid one by one but not together (an odd width for 4:2:2, an
    /// address that does not parse): what the factory would refuse.
    Invalid(HandlerError),
}

impl From<HandlerError> for CheckError {
    fn from(e: HandlerError) -> Self {
        CheckError::Invalid(e)
    }
}

/// Checks a handler's validated properties without building it: what the factory would
/// refuse, and what it would reach (the addresses it sends to or binds, those inside an SDP
/// file) against [`Properties::policy`]. It opens nothing but files the policy lets it
/// read. Runs when a pipeline is validated or dry-run, and before the factory when it is
/// built.
pub type Check = Arc<dyn Fn(&Properties) -> Result<(), CheckError> + Send + Sync>;

/// The handlers a pipeline description may name. [`Registry::builtin`] has every handler this
/// build of streamlib ships; user crates add theirs with [`Registry::register`].
#[derive(Clone, Default)]
pub struct Registry {
    specs: BTreeMap<&'static str, HandlerSpec>,
    hooks: Vec<BuildHook>,
    checks: BTreeMap<&'static str, Check>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `spec`, replacing a handler of the same name.
    pub fn register(&mut self, spec: HandlerSpec) -> &mut Self {
        self.specs.insert(spec.name, spec);
        self
    }

    /// Adds a hook [`build`](crate::build) runs on the runtime before adding elements (a GPU
    /// crate registers its transfers this way, only when a description needs them).
    pub fn add_build_hook(&mut self, hook: BuildHook) -> &mut Self {
        self.hooks.push(hook);
        self
    }

    /// Adds the [`Check`] of handler `name` (beyond the file properties its
    /// [`PropertySpec::access`] declares), replacing an earlier one.
    pub fn add_check(&mut self, name: &'static str, check: Check) -> &mut Self {
        self.checks.insert(name, check);
        self
    }

    /// The [`Check`] of handler `name`, if it has one.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.get(name)
    }

    /// The build hooks, in the order added.
    pub fn build_hooks(&self) -> &[BuildHook] {
        &self.hooks
    }

    /// The handler named `name`.
    pub fn get(&self, name: &str) -> Option<&HandlerSpec> {
        self.specs.get(name)
    }

    /// Every handler, by name.
    pub fn iter(&self) -> impl Iterator<Item = &HandlerSpec> {
        self.specs.values()
    }

    /// Every handler name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.keys().copied()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.specs.keys()).finish()
    }
}

/// A port spec, for registrations.
pub const fn port(
    name: &'static str,
    direction: Direction,
    kind: PortKind,
    caps: MemoryCaps,
    delivery: DeliveryMode,
    doc: &'static str,
) -> PortSpec {
    PortSpec {
        name,
        direction,
        kind,
        caps,
        delivery,
        doc,
        required: true,
        count: None,
    }
}

/// A property spec, for registrations.
pub const fn prop(
    name: &'static str,
    ty: PropType,
    default: Option<&'static str>,
    live: bool,
    doc: &'static str,
) -> PropertySpec {
    PropertySpec {
        name,
        ty,
        default,
        live,
        doc,
        access: Access::None,
        no_file: None,
    }
}
