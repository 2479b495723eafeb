//! The crate's one error type.

use std::io;
use std::net::SocketAddrV4;

/// Everything that can go wrong while configuring or running PTP.
#[derive(Debug, thiserror::Error)]
pub enum PtpError {
    /// A UDP socket could not be bound to its address and port.
    #[error("PTP {role} socket: cannot bind {addr}: {source}{hint}")]
    Bind {
        /// `event` (Sync, Delay_Req; port 319) or `general` (Announce, Follow_Up,
        /// Delay_Resp; port 320).
        role: &'static str,
        /// The address and port that were asked for.
        addr: SocketAddrV4,
        /// What to do about it, e.g. stop ptp4l or run as root; empty when there is no advice.
        hint: &'static str,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },

    /// The network interface named in the configuration is unusable.
    #[error("PTP interface `{interface}`: {reason}")]
    Interface {
        /// The interface name or address as configured.
        interface: String,
        /// Why it cannot be used (no such interface, no IPv4 address, …).
        reason: String,
    },

    /// A socket option (multicast membership, timestamping, …) was refused.
    #[error("PTP {role} socket on {addr}: setting {option} failed: {source}")]
    SocketOption {
        /// `event` or `general`.
        role: &'static str,
        /// The socket's local address.
        addr: SocketAddrV4,
        /// The option, e.g. `IP_ADD_MEMBERSHIP 224.0.1.129 on eth0`.
        option: String,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },

    /// The protocol thread could not be started.
    #[error("could not start the PTP protocol thread `{name}`: {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },

    /// A configuration value that cannot work.
    #[error("invalid PTP configuration: {what}")]
    InvalidConfig {
        /// Which setting was wrong, with its value and the accepted range.
        what: String,
    },

    /// A datagram that is not a well-formed PTPv2 message; it is counted and dropped.
    #[error("malformed PTP message ({len} bytes): {reason}")]
    Malformed {
        /// Size of the datagram.
        len: usize,
        /// The first check that failed.
        reason: &'static str,
    },

    /// A well-formed PTPv2 message of a type this ordinary clock does not use (peer delay,
    /// signaling, management); it is counted and ignored.
    #[error("unsupported PTP message type {message_type:#x}")]
    UnsupportedMessage {
        /// The header's messageType nibble.
        message_type: u8,
    },

    /// An output buffer too small for the message being built.
    #[error("buffer of {have} bytes is too small for a {need}-byte PTP message")]
    BufferTooSmall {
        /// Bytes the message needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

/// Advice for a failed bind: ports 319/320 are privileged and usually held by ptp4l.
pub(crate) fn bind_hint(addr: SocketAddrV4, err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::AddrInUse if addr.port() < 1024 => {
            " (the port is in use: stop ptp4l or another PTP daemon on this host, or use other ports)"
        }
        io::ErrorKind::AddrInUse => " (the port is in use by another process)",
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE: run as root or grant the capability)"
        }
        io::ErrorKind::AddrNotAvailable => " (no interface on this host has that address)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn bind_errors_name_the_port_and_suggest_a_fix() {
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 319);
        let source = io::Error::from(io::ErrorKind::AddrInUse);
        let hint = bind_hint(addr, &source);
        let err = PtpError::Bind {
            role: "event",
            addr,
            hint,
            source,
        };
        let text = err.to_string();
        assert!(text.contains("0.0.0.0:319"), "{text}");
        assert!(text.contains("ptp4l"), "{text}");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_hint(addr, &denied).contains("root"));
    }
}
