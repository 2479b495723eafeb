//! `audioresample` (streamlib-handlers-audio).

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}
