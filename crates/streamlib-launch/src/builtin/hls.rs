//! `hlssink`: HTTP Live Streaming.

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}
