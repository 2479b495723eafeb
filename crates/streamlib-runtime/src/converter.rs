//! Format converters the runtime may insert where a link's caps do not intersect, as it
//! inserts memory transfers where memory capabilities do not.

use std::fmt;
use std::sync::Arc;

use streamlib_ports::{Caps, HandlerError};

use crate::TransferHandler;

/// What a converter changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conversion {
    /// The pixel format (`convert`).
    Format,
    /// The frame size (`scale`).
    Size,
    /// The frame rate (`videorate`): to the clock's rate only, by repeating or dropping.
    Rate,
    /// An audio stream's channel count (`audioconvert`): up- or down-mixing.
    Channels,
    /// An audio stream's sample rate (`audioresample`): to any rate the target fixes.
    SampleRate,
}

impl Conversion {
    /// `"format"`, `"size"`, `"rate"`, `"channels"` or `"sample rate"`, as
    /// [`streamlib_ports::Mismatch`] names fields.
    pub fn field(self) -> &'static str {
        match self {
            Conversion::Format => "format",
            Conversion::Size => "size",
            Conversion::Rate => "rate",
            Conversion::Channels => "channels",
            Conversion::SampleRate => "sample rate",
        }
    }
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// Makes a converter whose output carries `target` (fixed caps) from an input it follows.
pub type ConverterFactory =
    Arc<dyn Fn(&Caps) -> Result<TransferHandler, HandlerError> + Send + Sync>;

/// Whether a converter can take `input` (fixed caps) to `output`: for converters that handle
/// only some pairs of what they accept and produce (UYVY to RGB but not to I420).
pub type ConverterSupports = Arc<dyn Fn(&Caps, &Caps) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Converter {
    pub(crate) conversion: Conversion,
    pub(crate) name: String,
    /// What its input accepts (a scaler may take only some pixel formats).
    pub(crate) accepts: Caps,
    /// What its output can produce in the field it changes.
    pub(crate) produces: Caps,
    pub(crate) factory: ConverterFactory,
    pub(crate) supports: Option<ConverterSupports>,
}

/// The converters negotiation may insert. Empty by default; `streamlib-handlers-video`
/// registers `convert`, `scale` and `videorate` (`register_converters`).
#[derive(Clone, Default)]
pub struct ConverterRegistry {
    entries: Vec<Converter>,
}

impl ConverterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` (named `name`, the handler's registry name) for `conversion`:
    /// its input accepts `accepts`, its output can produce `produces`. A later registration
    /// of the same conversion replaces the earlier one.
    pub fn register(
        &mut self,
        conversion: Conversion,
        name: impl Into<String>,
        accepts: Caps,
        produces: Caps,
        factory: ConverterFactory,
    ) -> &mut Self {
        self.entries.retain(|e| e.conversion != conversion);
        self.entries.push(Converter {
            conversion,
            name: name.into(),
            accepts,
            produces,
            factory,
            supports: None,
        });
        self.entries.sort_by_key(|e| e.conversion);
        self
    }

    /// Limits the registered converter for `conversion` to the input → output pairs
    /// `supports` accepts: negotiation then never plans a conversion it would refuse.
    pub fn limit(&mut self, conversion: Conversion, supports: ConverterSupports) -> &mut Self {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.conversion == conversion) {
            entry.supports = Some(supports);
        }
        self
    }

    /// The converter for `conversion`, if registered.
    pub(crate) fn get(&self, conversion: Conversion) -> Option<&Converter> {
        self.entries.iter().find(|e| e.conversion == conversion)
    }

    /// Registered conversions, in a fixed order.
    pub fn conversions(&self) -> impl Iterator<Item = Conversion> + '_ {
        self.entries.iter().map(|e| e.conversion)
    }

    /// Number of registered converters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for ConverterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (e.conversion, &e.name)))
            .finish()
    }
}
