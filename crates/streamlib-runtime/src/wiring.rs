//! Building the graph: adding streams, connecting ports (agreeing on memory and inserting
//! transfers where the capabilities do not overlap), validating, and laying the graph out in
//! topological order for the running graph.

use std::collections::HashSet;
use std::sync::Arc;

use streamlib_dispatch::Dispatcher;
use streamlib_ports::{
    AnyInputPort, AnyOutputPort, Caps, Follow, HandlerError, InputRef, MemorySpace, Message,
    OutputRef, PortId, Ports,
};

use crate::graph::topological_order;
use crate::node::NodeSpec;
use crate::{RuntimeError, Stream, StreamRuntime, TransferHandler};

/// A stream added to a runtime, with the ports its handler declared.
pub(crate) struct Added {
    pub(crate) stream: Stream,
    pub(crate) ports: Ports,
}

/// The input and output of an inserted transfer or converter.
pub(crate) type InsertedPorts = (Arc<dyn AnyInputPort>, Arc<dyn AnyOutputPort>);

/// One wire, recorded by `connect` and made when the runtime negotiates.
pub(crate) struct Link {
    pub(crate) output: Arc<dyn AnyOutputPort>,
    pub(crate) input: Arc<dyn AnyInputPort>,
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) memory: MemorySpace,
}

/// What `connect` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `stream.port` of the output.
    pub output: String,
    /// `stream.port` of the input.
    pub input: String,
    /// The memory space agreed (the input's side when a transfer was inserted).
    pub memory: MemorySpace,
    /// The id of a transfer stream inserted between them, if any.
    pub transfer: Option<String>,
    /// The format caps negotiated on the link (at the input), once negotiated
    /// ([`StreamRuntime::negotiate`]); `None` before.
    pub caps: Option<Caps>,
    /// Ids of the format converters negotiation inserted, in order.
    pub converters: Vec<String>,
}

impl StreamRuntime {
    /// Adds a stream. Its id must be unique and free of '.'.
    pub fn add_stream(&mut self, stream: Stream) -> Result<(), RuntimeError> {
        self.ensure_building("add a stream")?;
        self.ensure_not_negotiated("add a stream")?;
        if stream.id.is_empty() || stream.id.contains('.') {
            return Err(RuntimeError::InvalidStreamId { id: stream.id });
        }
        if self.added.iter().any(|a| a.stream.id == stream.id) {
            return Err(RuntimeError::DuplicateStream { id: stream.id });
        }
        let ports = stream.handler.ports();
        let index = self.added.len();
        for id in ports
            .inputs()
            .iter()
            .map(|p| p.id())
            .chain(ports.outputs().iter().map(|p| p.id()))
        {
            self.port_owner.insert(id, index);
        }
        self.added.push(Added { stream, ports });
        Ok(())
    }

    pub(crate) fn port_label(&self, owner: usize, port: &str) -> String {
        format!("{}.{}", self.added[owner].stream.id, port)
    }

    /// Connects two typed ports; a kind mismatch does not compile. Negotiates memory and
    /// inserts a transfer handler where the capabilities do not overlap.
    ///
    /// ```compile_fail
    /// # use streamlib_ports::*;
    /// # use streamlib_clock::{ManualClock, Rational};
    /// # let mut runtime = streamlib_runtime::StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    /// let video = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
    /// let audio = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
    /// runtime.connect(&video.handle(), &audio.handle()); // video into audio: a type error
    /// ```
    pub fn connect<T: Message>(
        &mut self,
        output: &OutputRef<T>,
        input: &InputRef<T>,
    ) -> Result<Connection, RuntimeError> {
        self.connect_ports(output.erased(), input.erased())
    }

    /// Connects ports named `stream.port`, e.g. `connect_by_name("pattern.video", "blur.video")`.
    pub fn connect_by_name(
        &mut self,
        output: &str,
        input: &str,
    ) -> Result<Connection, RuntimeError> {
        let out = self.find_port(output, true)?;
        let inp = self.find_port(input, false)?;
        match (out, inp) {
            (FoundPort::Output(o), FoundPort::Input(i)) => self.connect_ports(o, i),
            _ => Err(RuntimeError::MalformedPortName {
                name: format!("{output} -> {input}"),
            }),
        }
    }

    fn find_port(&self, name: &str, output: bool) -> Result<FoundPort, RuntimeError> {
        let (stream, port) = name
            .split_once('.')
            .filter(|(s, p)| !s.is_empty() && !p.is_empty())
            .ok_or_else(|| RuntimeError::MalformedPortName {
                name: name.to_owned(),
            })?;
        let added = self
            .added
            .iter()
            .find(|a| a.stream.id == stream)
            .ok_or_else(|| RuntimeError::UnknownStream {
                id: stream.to_owned(),
                available: list(self.added.iter().map(|a| a.stream.id.as_str())),
            })?;
        let missing = |names: Vec<&str>| RuntimeError::UnknownPortName {
            stream: stream.to_owned(),
            direction: if output { "output" } else { "input" },
            port: port.to_owned(),
            available: list(names.into_iter()),
        };
        if output {
            let outs = added.ports.outputs();
            outs.iter()
                .find(|p| p.name() == port)
                .map(|p| FoundPort::Output(Arc::clone(p)))
                .ok_or_else(|| missing(outs.iter().map(|p| p.name()).collect()))
        } else {
            let ins = added.ports.inputs();
            ins.iter()
                .find(|p| p.name() == port)
                .map(|p| FoundPort::Input(Arc::clone(p)))
                .ok_or_else(|| missing(ins.iter().map(|p| p.name()).collect()))
        }
    }

    /// Connects type-erased ports (what `connect` and `connect_by_name` use).
    pub fn connect_ports(
        &mut self,
        output: Arc<dyn AnyOutputPort>,
        input: Arc<dyn AnyInputPort>,
    ) -> Result<Connection, RuntimeError> {
        self.ensure_building("connect ports")?;
        self.ensure_not_negotiated("connect ports")?;
        let from = *self
            .port_owner
            .get(&output.id())
            .ok_or_else(|| RuntimeError::UnknownPort {
                port: output.name().to_owned(),
            })?;
        let to = *self
            .port_owner
            .get(&input.id())
            .ok_or_else(|| RuntimeError::UnknownPort {
                port: input.name().to_owned(),
            })?;
        let out_label = self.port_label(from, output.name());
        let in_label = self.port_label(to, input.name());
        if output.message_type() != input.message_type() {
            return Err(RuntimeError::KindMismatch {
                output: out_label,
                output_kind: output.kind(),
                output_type: output.message_type_name(),
                input: in_label,
                input_kind: input.kind(),
                input_type: input.message_type_name(),
            });
        }
        if input.is_connected() || self.links.iter().any(|l| l.input.id() == input.id()) {
            return Err(RuntimeError::Port {
                output: out_label,
                input: in_label.clone(),
                source: streamlib_ports::PortError::AlreadyConnected { input: in_label },
            });
        }
        let agreed = match output.negotiated() {
            Some(fixed) => input.caps().contains(fixed).then_some(fixed),
            None => output.caps().negotiate(&input.caps()),
        };
        if let Some(space) = agreed {
            // Wired when the runtime negotiates: a format converter may yet go between them.
            output.set_negotiated(space);
            input.set_negotiated(space);
            self.links.push(Link {
                output,
                input,
                from,
                to,
                memory: space,
            });
            let connection = Connection {
                output: out_label,
                input: in_label,
                memory: space,
                transfer: None,
                caps: None,
                converters: Vec::new(),
            };
            self.connections.push(connection.clone());
            return Ok(connection);
        }
        self.insert_transfer(output, input, out_label, in_label)
    }

    /// A free stream id for a handler named `name` inserted after `out_label`
    /// (`CpuToGpu-src-video`, then `-2`, `-3`, … on fan-out).
    pub(crate) fn inserted_id(&self, name: &str, out_label: &str) -> String {
        let base = format!("{name}-{}", out_label.replace('.', "-"));
        let mut id = base.clone();
        let mut n = 1;
        while self.added.iter().any(|a| a.stream.id == id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }

    /// Makes the transfer or converter `name` that goes between `out_label` and `in_label`
    /// (a factory's failure named after all three), and picks its stream id.
    pub(crate) fn make_inserted(
        &self,
        name: &str,
        out_label: &str,
        in_label: &str,
        make: impl FnOnce() -> Result<TransferHandler, HandlerError>,
    ) -> Result<(TransferHandler, String), RuntimeError> {
        let inserted = make().map_err(|e| RuntimeError::TransferFailed {
            transfer: name.to_owned(),
            output: out_label.to_owned(),
            input: in_label.to_owned(),
            message: e.to_string(),
        })?;
        Ok((inserted, self.inserted_id(name, out_label)))
    }

    /// Adds an inserted transfer or converter as stream `id`; returns its two ports.
    pub(crate) fn add_inserted(
        &mut self,
        id: &str,
        inserted: TransferHandler,
    ) -> Result<InsertedPorts, RuntimeError> {
        let mut stream = Stream::boxed(id.to_owned(), inserted.handler);
        if let Some(d) = inserted.dispatcher {
            stream = stream.dispatcher(d);
        }
        self.add_stream(stream)?;
        Ok((inserted.input, inserted.output))
    }

    fn insert_transfer(
        &mut self,
        output: Arc<dyn AnyOutputPort>,
        input: Arc<dyn AnyInputPort>,
        out_label: String,
        in_label: String,
    ) -> Result<Connection, RuntimeError> {
        if !self.auto_transfer {
            return Err(RuntimeError::NoCommonMemory {
                output: out_label,
                output_caps: output.caps(),
                input: in_label,
                input_caps: input.caps(),
            });
        }
        let from_space = output.negotiated().unwrap_or(output.caps().preferred());
        let to_space = input.caps().preferred();
        let kind = output.kind();
        let Some((name, factory)) = self.transfers.find(kind, from_space, to_space) else {
            return Err(RuntimeError::NoTransfer {
                output: out_label,
                output_caps: output.caps(),
                input: in_label,
                input_caps: input.caps(),
                kind,
                from: from_space,
                to: to_space,
            });
        };
        let name = name.to_owned();
        let (transfer, id) = self.make_inserted(&name, &out_label, &in_label, || factory())?;
        tracing::warn!(
            "{out_label} {} and {in_label} {} share no memory space: inserting transfer '{id}' \
             ({from_space} -> {to_space}); every frame is copied across",
            output.caps(),
            input.caps()
        );
        let (t_in, t_out) = self.add_inserted(&id, transfer)?;
        // A transfer moves frames, not formats: what comes out is what went in.
        t_out.set_follows(t_in.id(), Follow::ALL);
        self.connect_ports(output, t_in)?;
        self.connect_ports(t_out, input)?;
        // The two halves through the transfer are one connection of the user's.
        let through = format!("{id}.");
        self.connections.retain(|c| {
            !(c.output == out_label && c.input.starts_with(&through)
                || c.output.starts_with(&through) && c.input == in_label)
        });
        let connection = Connection {
            output: out_label,
            input: in_label,
            memory: to_space,
            transfer: Some(id),
            caps: None,
            converters: Vec::new(),
        };
        self.connections.push(connection.clone());
        Ok(connection)
    }

    /// Checks the graph: at least one stream, every required input connected, no cycle.
    /// Returns the streams in topological order.
    pub fn validate(&self) -> Result<Vec<usize>, RuntimeError> {
        if self.added.is_empty() {
            return Err(RuntimeError::Empty);
        }
        let linked: HashSet<PortId> = self.links.iter().map(|l| l.input.id()).collect();
        for added in &self.added {
            if let Some(port) = added
                .ports
                .inputs()
                .iter()
                .find(|p| p.is_required() && !p.is_connected() && !linked.contains(&p.id()))
            {
                return Err(RuntimeError::UnconnectedInput {
                    stream: added.stream.id.clone(),
                    port: port.name().to_owned(),
                });
            }
        }
        topological_order(self.added.len(), &self.edges()).map_err(|on_cycle| RuntimeError::Cycle {
            streams: list(on_cycle.iter().map(|&i| self.added[i].stream.id.as_str())),
        })
    }

    pub(crate) fn edges(&self) -> Vec<(usize, usize)> {
        self.links.iter().map(|l| (l.from, l.to)).collect()
    }

    /// Moves every stream out into what the running graph needs, in topological `order`, with
    /// each stream's upstream and downstream as positions in that order. Output formats are
    /// frozen: nothing may renegotiate them once the graph runs.
    pub(crate) fn take_node_specs(
        &mut self,
        order: &[usize],
        default: &Arc<dyn Dispatcher>,
    ) -> Vec<NodeSpec> {
        let mut position = vec![0; self.added.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut upstream = vec![Vec::new(); order.len()];
        let mut downstream = vec![Vec::new(); order.len()];
        for (from, to) in self.edges() {
            let (f, t) = (position[from], position[to]);
            if !downstream[f].contains(&t) {
                downstream[f].push(t);
                upstream[t].push(f);
            }
        }
        let mut slots: Vec<Option<Added>> = std::mem::take(&mut self.added)
            .into_iter()
            .map(Some)
            .collect();
        let mut specs = Vec::with_capacity(order.len());
        for (pos, &i) in order.iter().enumerate() {
            let Some(added) = slots[i].take() else {
                continue;
            };
            for output in added.ports.outputs() {
                output.freeze();
            }
            let stream = added.stream;
            specs.push(NodeSpec {
                id: stream.id,
                handler: stream.handler,
                inputs: added.ports.inputs().to_vec(),
                outputs: added.ports.outputs().to_vec(),
                upstream: std::mem::take(&mut upstream[pos]),
                downstream: std::mem::take(&mut downstream[pos]),
                dispatcher: stream.dispatcher.unwrap_or_else(|| Arc::clone(default)),
                policy: stream.restart_policy,
                time_limit: stream.time_limit,
                concurrency_limit: stream.concurrency_limit,
            });
        }
        specs
    }
}

enum FoundPort {
    Output(Arc<dyn AnyOutputPort>),
    Input(Arc<dyn AnyInputPort>),
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}
