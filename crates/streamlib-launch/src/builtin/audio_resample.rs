//! `audioresample` (streamlib-handlers-audio).

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}

pub(crate) fn register_converters(converters: &mut streamlib_runtime::ConverterRegistry) {
    let _ = converters;
}
