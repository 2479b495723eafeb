//! Stream options in pipeline text: words an element takes beside its handler's properties
//! that say how the runtime runs it, not what the handler does (`restart=`, `max-restarts=`).
//! They are the same for every handler and every dispatcher, so they are parsed here, once.

use streamlib_runtime::Stream;

use crate::LaunchError;
use crate::desc::ElementDesc;

/// The stream options of one element (none given: the runtime's defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamOptions {}

/// Splits `element`'s stream options from its handler's properties: the element without
/// them (for property validation) and the options.
pub(crate) fn split(element: &ElementDesc) -> Result<(ElementDesc, StreamOptions), LaunchError> {
    Ok((element.clone(), StreamOptions::default()))
}

impl StreamOptions {
    /// Applies the options to the stream the element was built into.
    pub(crate) fn apply(&self, stream: Stream) -> Stream {
        stream
    }
}
