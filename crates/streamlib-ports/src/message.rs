use std::fmt;

use crate::{AudioBuffer, DataMessage, DeliveryMode, KeyEvent, MouseEvent, VideoFrame};

/// What a port carries, for run-time checks and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// [`VideoFrame`]s.
    Video,
    /// [`AudioBuffer`]s.
    Audio,
    /// [`DataMessage`]s.
    Data,
    /// Input events ([`KeyEvent`], [`MouseEvent`]).
    Event,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Video => "video",
            PortKind::Audio => "audio",
            PortKind::Data => "data",
            PortKind::Event => "event",
        })
    }
}

/// A type that can travel through ports. Cloning must be cheap (share, not copy, payloads).
pub trait Message: Clone + Send + Sync + 'static {
    /// The port kind.
    const KIND: PortKind;
    /// How inputs of this type deliver unless told otherwise: video may drop (latest), audio,
    /// data and events must not (ordered).
    const DEFAULT_DELIVERY: DeliveryMode;
}

const ORDERED_64: DeliveryMode = DeliveryMode::Ordered { capacity: 64 };

impl Message for VideoFrame {
    const KIND: PortKind = PortKind::Video;
    const DEFAULT_DELIVERY: DeliveryMode = DeliveryMode::Latest;
}
impl Message for AudioBuffer {
    const KIND: PortKind = PortKind::Audio;
    const DEFAULT_DELIVERY: DeliveryMode = ORDERED_64;
}
impl Message for DataMessage {
    const KIND: PortKind = PortKind::Data;
    const DEFAULT_DELIVERY: DeliveryMode = ORDERED_64;
}
impl Message for KeyEvent {
    const KIND: PortKind = PortKind::Event;
    const DEFAULT_DELIVERY: DeliveryMode = ORDERED_64;
}
impl Message for MouseEvent {
    const KIND: PortKind = PortKind::Event;
    const DEFAULT_DELIVERY: DeliveryMode = ORDERED_64;
}
