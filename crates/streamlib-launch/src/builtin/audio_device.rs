//! `audiosink` and `audiosrc` (streamlib-handlers-audio, feature `device`).

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}
