//! SMPTE ST 2110-20 (RFC 4175) uncompressed video and ST 2110-30 (AES67) audio over RTP for
//! streamlib.
//!
//! - [`Packetizer`]: frames → RTP datagrams (general packing mode, marker on the last packet
//!   of a frame, 90 kHz timestamps, 32-bit extended sequence numbers), packets kept under a
//!   configurable MTU.
//! - [`JitterBuffer`]: datagrams → frames, reordering within a 1–10 ms window, duplicates
//!   dropped, losses counted per frame, an [`IncompletePolicy`] for frames that do not fully
//!   arrive; every malformed datagram is counted and dropped, never trusted.
//! - [`SdpSession`]: the SDP (ST 2110-20 `fmtp`, `ts-refclk`, `mediaclk`) a receiver needs,
//!   written and parsed back.
//! - [`NetworkSend`] / [`NetworkReceive`]: handlers that send and receive one video stream
//!   over UDP (unicast or multicast, IPv4 or IPv6) with ST 2110-21 pacing ([`Pacer`]:
//!   bursts no larger than the standard's `CMAX`), `sendmmsg` / `recvmmsg` batching, and UDP
//!   GSO / GRO on Linux: each burst crosses the kernel as one message ([`SendBatch`],
//!   [`RecvBatch::with_gro`]). With both ends on PTP, received frames can carry the sender's
//!   media time ([`FrameTimestamps::Media`]).
//!
//! Formats and how they map to frames are in [`Sampling`].
//!
//! The handlers declare format caps, so a graph negotiates them before the first frame: a
//! receiver's output is fixed to its stream (from the SDP: format, size, rate; audio: rate
//! and channels); [`NetworkSend`]'s input takes its sampling's frame format at any size and
//! rate ([`NetworkSendConfig::following_input`]) unless the configuration fixes them, and at
//! start it sends, and writes into its SDP file, what was negotiated.
//!
//! Receivers accept only their stream: bound to the multicast group (or to the SDP's unicast
//! address when it is this host's), optionally filtered on the sender's address
//! (`source`, a source-specific membership for IPv4 groups; [`SdpStreamFilter`] reads an
//! SDP's `a=source-filter` and `a=ssrc`), locked to one SSRC. Packets from anyone else are
//! counted (`foreign_packets`), never delivered and never a reason to resync. A sender that
//! restarts its numbering under the same SSRC is followed; one that restarts with a new SSRC
//! takes over after 500 ms of silence, unless the SSRC was given.
//!
//! SMPTE ST 2110-30 (AES67) audio travels beside it:
//!
//! - [`AudioPacketizer`]: interleaved f32 → L16 / L24 big-endian packets of 1 ms (or 125 µs),
//!   RTP timestamps at 48 kHz from the buffers' time.
//! - [`AudioJitterBuffer`]: datagrams → contiguous samples, reordered within a window,
//!   duplicates dropped, losses counted and concealed with silence of the right length.
//! - [`AudioSdpSession`]: `m=audio`, `a=rtpmap:97 L24/48000/2`, `a=ptime`, written and parsed.
//! - [`NetworkAudioSend`] / [`NetworkAudioReceive`]: handlers for one audio stream, each with
//!   its own thread, ordered delivery of [`AudioBuffer`](streamlib_ports::AudioBuffer)s.
//!
//! ```
//! use streamlib_clock::Rational;
//! use streamlib_net::*;
//! use streamlib_ports::FramePool;
//!
//! let format = VideoFormat::new(Sampling::YCbCr422Depth8, 64, 8, Rational::fps(30))?;
//! let mut packetizer = Packetizer::new(format, PacketizerConfig::default())?;
//! let pool = FramePool::new("rx", format.layout()?, 4, 4)?;
//! let mut jitter = JitterBuffer::new(format, pool, JitterConfig::default())?;
//!
//! let pixels: Vec<u8> = (0..64 * 2 * 8).map(|i| i as u8).collect();
//! let mut packets = packetizer.frame(&pixels, 64 * 2, rtp_timestamp_90k(0))?;
//! let mut datagram = vec![0; packetizer_len(&format)];
//! let mut received = None;
//! while let Some(len) = packets.next_into(&mut datagram) {
//!     jitter.push(&datagram[..len], 0, &mut |d: Delivered<'_>| received = Some(d.frame));
//! }
//! assert_eq!(received.unwrap().cpu_bytes().unwrap(), &pixels[..]);
//! # fn packetizer_len(_: &VideoFormat) -> usize { 1472 }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audio;
mod error;
mod jitter;
mod pacing;
mod receive;
mod rtp;
mod sdp;
mod socket;
mod stats;
mod video;
mod worker;

pub use audio::{
    AUDIO_CLOCK_RATE, AudioChunk, AudioEncoding, AudioFormat, AudioJitterBuffer, AudioJitterConfig,
    AudioPacketizer, AudioPacketizerConfig, AudioReceiveCounters, AudioReceiveStats,
    AudioReceiveStatsHandle, AudioSdpSession, AudioSendStats, AudioSendStatsHandle,
    MAX_AUDIO_CHANNELS, NetworkAudioReceive, NetworkAudioReceiveConfig, NetworkAudioSend,
    NetworkAudioSendConfig, PacketTime, rtp_timestamp_audio,
};
pub use error::NetError;
pub use pacing::{Pacer, PacketPacing};
pub use receive::ReceiveEndpoint;
pub use rtp::{
    Malformed, RTP_HEADER_LEN, RtpHeader, SeqVerdict, SequenceWindow, VIDEO_CLOCK_RATE,
    extended_sequence, rtp_time_ns, rtp_timestamp_90k,
};
pub use sdp::{RefClock, SdpStreamFilter};
pub use socket::{
    MAX_BATCH, RECV_SLOT, RecvBatch, SendBatch, SocketConfig, enable_gro, receiver_socket,
    sender_socket, source_receiver_socket,
};
pub use stats::StatsHandle;
/// The histogram the handlers' latency and pacing figures come from.
pub use streamlib_clock::LatencyHistogram;
pub use video::{
    Delivered, FramePackets, FrameTimestamps, IncompletePolicy, JitterBuffer, JitterConfig,
    LineSpan, MAX_ROWS, NetworkReceive, NetworkReceiveConfig, NetworkSend, NetworkSendConfig,
    Packetizer, PacketizerConfig, ReceiveCounters, ReceiveStats, ReceiveStatsHandle, RowList,
    SampleRow, Sampling, SdpSession, SendStats, SendStatsHandle, VideoFormat, parse_payload,
    sdp_origin, udp_payload_for_mtu,
};

/// The network handlers and their configurations, for `use streamlib_net::prelude::*`.
pub mod prelude {
    pub use crate::{
        NetworkAudioReceive, NetworkAudioReceiveConfig, NetworkAudioSend, NetworkAudioSendConfig,
        NetworkReceive, NetworkReceiveConfig, NetworkSend, NetworkSendConfig, ReceiveEndpoint,
    };
}
