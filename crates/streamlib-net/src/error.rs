//! The crate's error type.

use std::io;
use std::net::SocketAddr;

use streamlib_buffers::BuffersError;
use streamlib_ports::FrameError;

/// Everything that can go wrong setting up or running a network stream. Malformed, late or
/// duplicate datagrams are not errors: they are counted in the receive statistics and dropped.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket could not be created or bound to `addr`.
    #[error("cannot bind a UDP socket to {addr}: {source}")]
    Bind {
        /// The local address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A socket option or call failed on the socket of `addr`.
    #[error("UDP socket {addr}: {op} failed: {source}")]
    Socket {
        /// The socket's local or destination address.
        addr: SocketAddr,
        /// The call that failed (`connect`, `SO_RCVBUF`, …).
        op: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// Joining multicast group `group` on `interface` failed.
    #[error("cannot join multicast group {group} on interface {interface}: {source}")]
    Multicast {
        /// The group.
        group: std::net::IpAddr,
        /// The interface (an address for IPv4, an index for IPv6; `any` for the default).
        interface: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("{handler}: invalid {field} = {value}: {reason}")]
    Config {
        /// The handler or component (`NetworkSend`, `Packetizer`, `JitterBuffer`, …).
        handler: &'static str,
        /// The field at fault.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A frame does not match the stream's declared format.
    #[error(
        "{handler}: frame {got_width}x{got_height} {got_format} does not match the stream's {width}x{height} {sampling}"
    )]
    FrameMismatch {
        /// The handler.
        handler: &'static str,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Declared sampling, as SDP spells it.
        sampling: String,
        /// The frame's width.
        got_width: u32,
        /// The frame's height.
        got_height: u32,
        /// The frame's pixel format (or `gpu` for a GPU frame).
        got_format: String,
    },
    /// A frame layout could not be built.
    #[error("{handler}: {source}")]
    Frame {
        /// The handler.
        handler: &'static str,
        /// The layout error.
        source: FrameError,
    },
    /// The frame pool could not be created.
    #[error("{handler}: frame pool: {source}")]
    Pool {
        /// The handler.
        handler: &'static str,
        /// The pool error.
        source: BuffersError,
    },
    /// An SDP line could not be understood.
    #[error("SDP line {line} `{text}`: {reason}")]
    Sdp {
        /// 1-based line number (0 when a required line is missing).
        line: usize,
        /// The line's text (or the missing line's kind).
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sender could not write its SDP file.
    #[error("{handler}: cannot write the SDP to {}: {source}", path.display())]
    SdpWrite {
        /// The handler.
        handler: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A handler's worker thread could not be started.
    #[error("{handler}: cannot start its {what} thread: {source}")]
    Thread {
        /// The handler.
        handler: &'static str,
        /// Which thread.
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// A handler's worker thread panicked.
    #[error("{handler}: its {what} thread panicked")]
    ThreadPanicked {
        /// The handler.
        handler: &'static str,
        /// Which thread.
        what: &'static str,
    },
}

impl NetError {
    /// A [`NetError::Config`]: `handler`'s `field` is `value`, which breaks `reason`.
    pub(crate) fn config(
        handler: &'static str,
        field: &'static str,
        value: &dyn std::fmt::Display,
        reason: &'static str,
    ) -> Self {
        NetError::Config {
            handler,
            field,
            value: value.to_string(),
            reason,
        }
    }
}
