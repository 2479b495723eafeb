//! The `StreamHandler` trait: pure processing logic, inert until a runtime starts it.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use streamlib_clock::{ClockInfo, TimedTick};

use crate::{AnyInputPort, AnyOutputPort, InputPort, Message, OutputPort};

/// The ports a handler exposes, in declaration order.
#[derive(Default, Clone)]
pub struct Ports {
    inputs: Vec<Arc<dyn AnyInputPort>>,
    outputs: Vec<Arc<dyn AnyOutputPort>>,
}

impl Ports {
    /// No ports yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an input.
    pub fn input<T: Message>(mut self, port: &InputPort<T>) -> Self {
        self.inputs.push(port.handle().erased());
        self
    }

    /// Adds an output.
    pub fn output<T: Message>(mut self, port: &OutputPort<T>) -> Self {
        self.outputs.push(port.handle().erased());
        self
    }

    /// The inputs.
    pub fn inputs(&self) -> &[Arc<dyn AnyInputPort>] {
        &self.inputs
    }

    /// The outputs.
    pub fn outputs(&self) -> &[Arc<dyn AnyOutputPort>] {
        &self.outputs
    }
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports")
            .field(
                "inputs",
                &self.inputs.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field(
                "outputs",
                &self.outputs.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a handler reports when `on_start`, `process` or `on_stop` fails. Any error type
/// converts into it with `?`; the runtime adds the handler id and applies the stream's restart
/// policy.
pub struct HandlerError {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl HandlerError {
    /// An error from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            inner: message.to_string().into(),
        }
    }

    /// The underlying error.
    pub fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The underlying error, owned.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.inner
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self {
            inner: Box::new(error),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a handler learns when it starts.
#[derive(Debug, Clone)]
pub struct StartContext<'a> {
    handler_id: &'a str,
    clock: &'a ClockInfo,
}

impl<'a> StartContext<'a> {
    /// Built by the runtime (and by tests driving a handler by hand).
    pub fn new(handler_id: &'a str, clock: &'a ClockInfo) -> Self {
        Self { handler_id, clock }
    }

    /// The id the handler was added under.
    pub fn handler_id(&self) -> &str {
        self.handler_id
    }

    /// The runtime's clock: rate, timescale, pacing.
    pub fn clock(&self) -> &ClockInfo {
        self.clock
    }
}

/// What a handler gets on every `process` call.
#[derive(Debug)]
pub struct ProcessContext<'a> {
    handler_id: &'a str,
    tick: TimedTick,
    deadline: Option<Instant>,
    concurrency_limit: usize,
    inputs_ended: bool,
    end_requested: bool,
    stop_requested: bool,
}

impl<'a> ProcessContext<'a> {
    /// Built by the runtime (and by tests driving a handler by hand).
    pub fn new(handler_id: &'a str, tick: TimedTick) -> Self {
        Self {
            handler_id,
            tick,
            deadline: None,
            concurrency_limit: 1,
            inputs_ended: false,
            end_requested: false,
            stop_requested: false,
        }
    }

    /// Sets the time by which this call should return.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets how many threads the handler may use for data-parallel work in this call.
    pub fn with_concurrency_limit(mut self, limit: usize) -> Self {
        self.concurrency_limit = limit.max(1);
        self
    }

    /// Marks this call as the last one: every upstream has ended and been drained.
    pub fn with_inputs_ended(mut self, ended: bool) -> Self {
        self.inputs_ended = ended;
        self
    }

    /// The tick being processed.
    pub fn tick(&self) -> &TimedTick {
        &self.tick
    }

    /// The id the handler was added under.
    pub fn handler_id(&self) -> &str {
        self.handler_id
    }

    /// When this call should have returned (the stream's `time_limit`), if set. Overruns are
    /// counted, not interrupted.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How many threads the handler may use for data-parallel work (the stream's
    /// `concurrency_limit`; 1 unless configured).
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency_limit
    }

    /// Whether every upstream output has ended and been drained: the handler should flush
    /// what it holds; the runtime ends its outputs after this call.
    pub fn inputs_ended(&self) -> bool {
        self.inputs_ended
    }

    /// Signals end of stream (a file reached its end): the runtime ends this handler's outputs
    /// after this call and stops calling it. Downstream handlers drain, then end in turn.
    pub fn end_of_stream(&mut self) {
        self.end_requested = true;
    }

    /// Whether [`end_of_stream`](Self::end_of_stream) was called.
    pub fn end_requested(&self) -> bool {
        self.end_requested
    }

    /// Asks the runtime to stop the whole pipeline (a display window was closed, Esc was
    /// pressed): `run` returns after this call, as if `RuntimeHandle::stop` was called.
    pub fn request_stop(&mut self) {
        self.stop_requested = true;
    }

    /// Whether [`request_stop`](Self::request_stop) was called.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }
}

/// Processing logic. A handler owns its ports, does nothing until a runtime starts it, and
/// then gets `process` once per clock tick, after its upstream handlers have processed the
/// same tick. It must not block for long: read inputs (references), compute, write outputs
/// (references).
pub trait StreamHandler: Send + 'static {
    /// Its ports, for wiring by name, validation and negotiation.
    fn ports(&self) -> Ports;

    /// Called once before the first `process` (and again after a restart).
    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }

    /// Processes one tick.
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError>;

    /// Called once when the runtime stops it (also before a restart). Finalize here.
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }

    /// A short type name for stats and logs.
    fn type_name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full)
    }
}

impl<H: StreamHandler + ?Sized> StreamHandler for Box<H> {
    fn ports(&self) -> Ports {
        (**self).ports()
    }
    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        (**self).on_start(ctx)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        (**self).process(ctx)
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        (**self).on_stop()
    }
    fn type_name(&self) -> &'static str {
        (**self).type_name()
    }
}
