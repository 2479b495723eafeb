use std::fmt;
use std::sync::Arc;

use streamlib_dispatch::Dispatcher;
use streamlib_ports::{
    AnyInputPort, AnyOutputPort, HandlerError, MemorySpace, PortKind, StreamHandler,
};

/// A transfer handler ready to be inserted: the handler and its one input and one output.
pub struct TransferHandler {
    /// The handler (moves data between memory spaces).
    pub handler: Box<dyn StreamHandler>,
    /// Its input (accepts the source space).
    pub input: Arc<dyn AnyInputPort>,
    /// Its output (produces the target space).
    pub output: Arc<dyn AnyOutputPort>,
    /// Where it should run; the runtime's default when `None`.
    pub dispatcher: Option<Arc<dyn Dispatcher>>,
}

impl TransferHandler {
    /// `handler` with its `input` and `output`, on the runtime's default dispatcher.
    pub fn new(
        handler: impl StreamHandler + 'static,
        input: Arc<dyn AnyInputPort>,
        output: Arc<dyn AnyOutputPort>,
    ) -> Self {
        Self {
            handler: Box::new(handler),
            input,
            output,
            dispatcher: None,
        }
    }
}

/// Makes a fresh transfer handler for each insertion.
pub type TransferFactory = Arc<dyn Fn() -> Result<TransferHandler, HandlerError> + Send + Sync>;

struct Entry {
    kind: PortKind,
    from: MemorySpace,
    to: MemorySpace,
    name: String,
    factory: TransferFactory,
}

/// Transfer handlers the runtime may insert when port capabilities do not overlap. Empty by
/// default; crates such as `streamlib-gpu` register CPU↔GPU transfers.
#[derive(Default)]
pub struct TransferRegistry {
    entries: Vec<Entry>,
}

impl TransferRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` (named `name`, e.g. `"CpuToGpu"`) for `kind` messages moving from
    /// `from` to `to`. A later registration for the same triple replaces the earlier one.
    pub fn register(
        &mut self,
        kind: PortKind,
        from: MemorySpace,
        to: MemorySpace,
        name: impl Into<String>,
        factory: TransferFactory,
    ) {
        self.entries
            .retain(|e| !(e.kind == kind && e.from == from && e.to == to));
        self.entries.push(Entry {
            kind,
            from,
            to,
            name: name.into(),
            factory,
        });
    }

    /// The transfer for the triple, with its name.
    pub fn find(
        &self,
        kind: PortKind,
        from: MemorySpace,
        to: MemorySpace,
    ) -> Option<(&str, &TransferFactory)> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.from == from && e.to == to)
            .map(|e| (e.name.as_str(), &e.factory))
    }

    /// Number of registered transfers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for TransferRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|e| format!("{} ({}: {} -> {})", e.name, e.kind, e.from, e.to)),
            )
            .finish()
    }
}
