//! ST 2110-20 (RFC 4175) uncompressed video: formats, the packetizer, the jitter buffer that
//! reassembles frames, the SDP `fmtp`, and the `NetworkSend` / `NetworkReceive` handlers.

mod format;
mod jitter;
mod packetizer;
mod payload;
mod receive;
mod sdp;
mod send;

pub use format::{Sampling, VideoFormat};
pub use jitter::{
    Delivered, IncompletePolicy, JitterBuffer, JitterConfig, LineSpan, ReceiveCounters,
};
pub use packetizer::{FramePackets, Packetizer, PacketizerConfig, udp_payload_for_mtu};
pub use payload::{MAX_ROWS, RowList, SampleRow, parse_payload};
pub use receive::{
    FrameTimestamps, NetworkReceive, NetworkReceiveConfig, ReceiveStats, ReceiveStatsHandle,
};
pub use sdp::SdpSession;
pub use send::{NetworkSend, NetworkSendConfig, SendStats, SendStatsHandle, sdp_origin};
