//! SMPTE ST 2110-20 (RFC 4175) uncompressed video over RTP for streamlib.
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
//!   over UDP (unicast or multicast, IPv4 or IPv6) with `sendmmsg` / `recvmmsg` batching and
//!   ST 2110-21 pacing.
//!
//! Formats and how they map to frames are in [`Sampling`].
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

mod error;
mod format;
mod jitter;
mod pacing;
mod packetizer;
mod payload;
mod receive;
mod rtp;
mod sdp;
mod send;
mod socket;
mod stats;

pub use error::NetError;
pub use format::{Sampling, VideoFormat};
pub use jitter::{
    Delivered, IncompletePolicy, JitterBuffer, JitterConfig, LineSpan, ReceiveCounters,
};
pub use pacing::{Pacer, Pacing};
pub use packetizer::{FramePackets, Packetizer, PacketizerConfig, udp_payload_for_mtu};
pub use payload::{MAX_ROWS, RowList, SampleRow, parse_payload};
pub use receive::{NetworkReceive, NetworkReceiveConfig, ReceiveStats, ReceiveStatsHandle};
pub use rtp::{
    Malformed, RTP_HEADER_LEN, RtpHeader, SeqVerdict, SequenceWindow, VIDEO_CLOCK_RATE,
    extended_sequence, rtp_timestamp_90k,
};
pub use sdp::{RefClock, SdpSession};
pub use send::{NetworkSend, NetworkSendConfig, SendStats, SendStatsHandle};
pub use socket::{
    MAX_BATCH, RECV_SLOT, RecvBatch, SendBatch, SocketConfig, receiver_socket, sender_socket,
};
pub use stats::Histogram;
