//! `webrtcsrc` (WHIP): a browser publishes its camera and microphone into a pipeline.

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}
