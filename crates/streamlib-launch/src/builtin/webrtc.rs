//! `webrtcsink` (WHEP): browsers and other WebRTC peers watch the pipeline.

use crate::Registry;

pub(super) fn register(registry: &mut Registry) {
    let _ = registry;
}
