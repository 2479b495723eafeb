//! ST 2110-30 (AES67) audio: formats and the packetizer, the jitter buffer that reorders and
//! conceals, the SDP `rtpmap` / `ptime`, and the `NetworkAudioSend` / `NetworkAudioReceive`
//! handlers.

mod jitter;
mod packetizer;
mod receive;
mod sdp;
mod send;

pub use jitter::{AudioChunk, AudioJitterBuffer, AudioJitterConfig, AudioReceiveCounters};
pub use packetizer::{
    AUDIO_CLOCK_RATE, AudioEncoding, AudioFormat, AudioPacketizer, AudioPacketizerConfig,
    MAX_AUDIO_CHANNELS, PacketTime, rtp_timestamp_audio,
};
pub use receive::{
    AudioReceiveStats, AudioReceiveStatsHandle, NetworkAudioReceive, NetworkAudioReceiveConfig,
};
pub use sdp::AudioSdpSession;
pub use send::{AudioSendStats, AudioSendStatsHandle, NetworkAudioSend, NetworkAudioSendConfig};
