use thiserror::Error;

use streamlib_ports::{MemoryCaps, PortError, PortKind};

/// Errors from building, starting and stopping a runtime.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// Two streams were added under one id.
    #[error("a stream with id '{id}' was already added; stream ids must be unique")]
    DuplicateStream {
        /// The id.
        id: String,
    },
    /// A stream id was empty or contained a '.' (which separates stream and port in names).
    #[error("invalid stream id '{id}': ids must be non-empty and contain no '.'")]
    InvalidStreamId {
        /// The id.
        id: String,
    },
    /// A port handle does not belong to any stream of this runtime.
    #[error("port '{port}' belongs to no stream added to this runtime (add its handler first)")]
    UnknownPort {
        /// Port name.
        port: String,
    },
    /// A name like `"blur.video"` named a stream that does not exist.
    #[error("no stream named '{id}'; streams: {available}")]
    UnknownStream {
        /// The missing id.
        id: String,
        /// The ids that exist.
        available: String,
    },
    /// A name like `"blur.video"` named a port the stream does not have.
    #[error(
        "stream '{stream}' has no {direction} port '{port}'; its {direction} ports: {available}"
    )]
    UnknownPortName {
        /// Stream id.
        stream: String,
        /// `"input"` or `"output"`.
        direction: &'static str,
        /// The missing port.
        port: String,
        /// Ports it has.
        available: String,
    },
    /// A port name was not of the form `stream.port`.
    #[error("'{name}' is not a port name; write it as <stream>.<port>, e.g. 'blur.video'")]
    MalformedPortName {
        /// What was given.
        name: String,
    },
    /// The two ports carry different messages.
    #[error(
        "cannot connect {output} ({output_kind}, {output_type}) to {input} ({input_kind}, \
         {input_type}): the message types differ"
    )]
    KindMismatch {
        /// `stream.port` of the output.
        output: String,
        /// Its kind.
        output_kind: PortKind,
        /// Its message type.
        output_type: &'static str,
        /// `stream.port` of the input.
        input: String,
        /// Its kind.
        input_kind: PortKind,
        /// Its message type.
        input_type: &'static str,
    },
    /// The memory capabilities do not overlap and automatic transfers are off.
    #[error(
        "cannot connect {output} {output_caps} to {input} {input_caps}: no common memory space \
         and automatic transfers are disabled (insert a transfer handler or enable auto_transfer)"
    )]
    NoCommonMemory {
        /// `stream.port` of the output.
        output: String,
        /// Its capabilities.
        output_caps: MemoryCaps,
        /// `stream.port` of the input.
        input: String,
        /// Its capabilities.
        input_caps: MemoryCaps,
    },
    /// The capabilities do not overlap and no transfer handler is registered for the pair.
    #[error(
        "cannot connect {output} {output_caps} to {input} {input_caps}: no common memory space \
         and no {kind} transfer from {from} to {to} is registered (enable the feature that \
         provides it, e.g. `gpu`)"
    )]
    NoTransfer {
        /// `stream.port` of the output.
        output: String,
        /// Its capabilities.
        output_caps: MemoryCaps,
        /// `stream.port` of the input.
        input: String,
        /// Its capabilities.
        input_caps: MemoryCaps,
        /// Port kind.
        kind: PortKind,
        /// Source memory space.
        from: streamlib_ports::MemorySpace,
        /// Target memory space.
        to: streamlib_ports::MemorySpace,
    },
    /// Two linked ports share no format and nothing was allowed or able to bridge them.
    #[error(
        "{output} -> {input}: {output} produces {output_caps}; {input} accepts {input_caps}; \
         they differ in {field}. {fix}"
    )]
    NotNegotiated {
        /// `stream.port` of the output.
        output: String,
        /// What it produces.
        output_caps: streamlib_ports::Caps,
        /// `stream.port` of the input.
        input: String,
        /// What it accepts.
        input_caps: streamlib_ports::Caps,
        /// The first field that disagrees (`format`, `size`, `rate`, `kind`, …).
        field: String,
        /// What would make the link valid.
        fix: String,
    },
    /// A handler's own caps refuse what its input carries (a transform declared a template
    /// narrower than what it follows).
    #[error(
        "{output} cannot follow {input}: {input} carries {input_caps} but {output} produces only \
         {output_caps} (differs in {field}); put a converter before {input}"
    )]
    TransformRefused {
        /// `stream.port` of the output.
        output: String,
        /// Its template.
        output_caps: streamlib_ports::Caps,
        /// `stream.port` of the input it follows.
        input: String,
        /// What was negotiated on that input.
        input_caps: streamlib_ports::Caps,
        /// The field.
        field: String,
    },
    /// Wiring failed at the port level.
    #[error("cannot connect {output} to {input}: {source}")]
    Port {
        /// `stream.port` of the output.
        output: String,
        /// `stream.port` of the input.
        input: String,
        /// The port layer's reason.
        #[source]
        source: PortError,
    },
    /// A required input has no upstream.
    #[error(
        "input '{port}' of stream '{stream}' is not connected (mark it optional or connect it)"
    )]
    UnconnectedInput {
        /// Stream id.
        stream: String,
        /// Port name.
        port: String,
    },
    /// The graph has a cycle.
    #[error("the pipeline has a cycle through streams: {streams}")]
    Cycle {
        /// The streams on the cycle, comma-separated.
        streams: String,
    },
    /// Nothing to run.
    #[error("the runtime has no streams")]
    Empty,
    /// The operation needs a runtime in another state.
    #[error("cannot {action}: the runtime is {state}")]
    InvalidState {
        /// What was attempted.
        action: &'static str,
        /// The state it is in.
        state: &'static str,
    },
    /// A handler's `on_start` failed.
    #[error("stream '{stream}' ({handler}) failed to start: {message}")]
    StartFailed {
        /// Stream id.
        stream: String,
        /// Handler type.
        handler: &'static str,
        /// What it said.
        message: String,
    },
    /// The clock failed.
    #[error("clock '{clock}': {source}")]
    Clock {
        /// Clock name.
        clock: String,
        /// The clock's error.
        #[source]
        source: streamlib_clock::ClockError,
    },
    /// A dispatcher failed.
    #[error("dispatcher '{dispatcher}' for stream '{stream}': {source}")]
    Dispatch {
        /// Stream id.
        stream: String,
        /// Dispatcher kind.
        dispatcher: &'static str,
        /// The dispatcher's error.
        #[source]
        source: streamlib_dispatch::DispatchError,
    },
    /// A transfer handler could not be created.
    #[error("transfer '{transfer}' for {output} -> {input} could not be created: {message}")]
    TransferFailed {
        /// Transfer name.
        transfer: String,
        /// `stream.port` of the output.
        output: String,
        /// `stream.port` of the input.
        input: String,
        /// Why.
        message: String,
    },
    /// A runtime thread could not be spawned.
    #[error("could not spawn the runtime's {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
