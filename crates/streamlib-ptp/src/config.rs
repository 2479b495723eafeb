//! What a PTP port talks over and how its servo behaves.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::{ClockIdentity, PtpError};

/// The PTP event port (Sync, Delay_Req).
pub const EVENT_PORT: u16 = 319;
/// The PTP general port (Announce, Follow_Up, Delay_Resp).
pub const GENERAL_PORT: u16 = 320;
/// The IPv4 multicast group of the default PTP profiles.
pub const PTP_PRIMARY_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);

/// A network interface, by name (`eth0`) or by one of its IPv4 addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interface {
    /// The interface's name; multicast membership and sending use its index.
    Name(String),
    /// An IPv4 address assigned to the interface.
    Address(Ipv4Addr),
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interface::Name(name) => f.write_str(name),
            Interface::Address(addr) => write!(f, "{addr}"),
        }
    }
}

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A multicast group joined on one interface (the standard PTP-over-UDP setup).
    Multicast {
        /// The group, normally [`PTP_PRIMARY_MULTICAST`].
        group: Ipv4Addr,
        /// The interface to join it on and send from.
        interface: Interface,
    },
    /// One peer, unicast (tests on loopback, networks without multicast).
    Unicast {
        /// The peer's address.
        addr: Ipv4Addr,
        /// The peer's event port.
        event_port: u16,
        /// The peer's general port.
        general_port: u16,
    },
}

/// The UDP/IPv4 transport of one PTP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Local address to bind (0.0.0.0 to receive multicast).
    pub bind: Ipv4Addr,
    /// Local event port; 0 picks a free one.
    pub event_port: u16,
    /// Local general port; 0 picks a free one.
    pub general_port: u16,
    /// Where messages are sent.
    pub destination: Destination,
}

impl Transport {
    /// The standard setup: ports 319/320, group 224.0.1.129 joined on `interface`.
    /// Binding ports below 1024 needs root or `CAP_NET_BIND_SERVICE`.
    pub fn multicast(interface: Interface) -> Self {
        Self {
            bind: Ipv4Addr::UNSPECIFIED,
            event_port: EVENT_PORT,
            general_port: GENERAL_PORT,
            destination: Destination::Multicast {
                group: PTP_PRIMARY_MULTICAST,
                interface,
            },
        }
    }

    /// Unicast between `local` (ports 0 pick free ones) and one `peer`.
    pub fn unicast(
        local: Ipv4Addr,
        local_ports: (u16, u16),
        peer: Ipv4Addr,
        peer_ports: (u16, u16),
    ) -> Self {
        Self {
            bind: local,
            event_port: local_ports.0,
            general_port: local_ports.1,
            destination: Destination::Unicast {
                addr: peer,
                event_port: peer_ports.0,
                general_port: peer_ports.1,
            },
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.destination {
            Destination::Multicast { group, interface } => {
                write!(f, "udp {group} on {interface}")
            }
            Destination::Unicast {
                addr, event_port, ..
            } => {
                write!(
                    f,
                    "udp unicast {}:{} ↔ {addr}:{event_port}",
                    self.bind, self.event_port
                )
            }
        }
    }
}

/// The servo that steers the model of the master's time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServoConfig {
    /// Proportional gain: the fraction of the measured offset removed (by a frequency
    /// change) over the next sync interval. Default 0.7.
    pub kp: f64,
    /// Integral gain: the fraction of the offset added to the long-term frequency estimate at
    /// each sync. Default 0.3.
    pub ki: f64,
    /// Offsets larger than this step the model instead of slewing it (and drop to
    /// `Locking`). Default 1 ms.
    pub step_threshold_ns: u64,
    /// `|offset|` below this for [`lock_after`](Self::lock_after) consecutive syncs means
    /// `Locked`. Default 20 µs (software timestamps jitter by microseconds).
    pub lock_threshold_ns: u64,
    /// Consecutive in-threshold syncs needed to lock. Default 4.
    pub lock_after: u32,
    /// Frequency corrections are clamped to ± this, ppb. Default 500 000 (500 ppm).
    pub max_frequency_ppb: f64,
    /// Path delay is the median of this many latest measurements (1 disables the filter).
    /// Default 9.
    pub delay_filter_len: usize,
}

impl Default for ServoConfig {
    fn default() -> Self {
        Self {
            kp: 0.7,
            ki: 0.3,
            step_threshold_ns: 1_000_000,
            lock_threshold_ns: 20_000,
            lock_after: 4,
            max_frequency_ppb: 500_000.0,
            delay_filter_len: 9,
        }
    }
}

/// Everything a PTP slave needs.
#[derive(Clone, Debug, PartialEq)]
pub struct PtpConfig {
    /// Sockets and destination.
    pub transport: Transport,
    /// PTP domain (0 by default); messages of other domains are ignored.
    pub domain: u8,
    /// This clock's identity; `None` derives a locally administered one from the host, the
    /// process and the time, unique enough that ptp4l on the same interface does not clash.
    pub clock_identity: Option<ClockIdentity>,
    /// A master is dropped after this many of its announce intervals without an Announce.
    /// Default 3.
    pub announce_receipt_timeout: u8,
    /// Smallest interval between Delay_Req messages; `None` follows the master's
    /// logMinDelayReqInterval (from Delay_Resp). Default `None`.
    pub delay_req_interval: Option<Duration>,
    /// The servo.
    pub servo: ServoConfig,
}

impl PtpConfig {
    /// A slave on `transport` with default settings.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            domain: 0,
            clock_identity: None,
            announce_receipt_timeout: 3,
            delay_req_interval: None,
            servo: ServoConfig::default(),
        }
    }

    /// Checks the values that could make the servo or the timers misbehave.
    ///
    /// # Errors
    /// [`PtpError::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<(), PtpError> {
        let s = &self.servo;
        let bad = |what: String| Err(PtpError::InvalidConfig { what });
        if !(s.kp.is_finite() && s.kp > 0.0 && s.kp <= 2.0) {
            return bad(format!("servo kp {} is not in (0, 2]", s.kp));
        }
        if !(s.ki.is_finite() && s.ki >= 0.0 && s.ki <= 1.0) {
            return bad(format!("servo ki {} is not in [0, 1]", s.ki));
        }
        if s.lock_after == 0 {
            return bad("servo lock_after must be at least 1".into());
        }
        if s.delay_filter_len == 0 || s.delay_filter_len > 128 {
            return bad(format!(
                "servo delay_filter_len {} is not in 1..=128",
                s.delay_filter_len
            ));
        }
        if !(s.max_frequency_ppb.is_finite() && s.max_frequency_ppb > 0.0) {
            return bad(format!(
                "servo max_frequency_ppb {} must be positive",
                s.max_frequency_ppb
            ));
        }
        if s.lock_threshold_ns == 0 || s.lock_threshold_ns > s.step_threshold_ns {
            return bad(format!(
                "servo lock_threshold_ns {} must be in 1..=step_threshold_ns ({})",
                s.lock_threshold_ns, s.step_threshold_ns
            ));
        }
        if self.announce_receipt_timeout < 2 {
            return bad(format!(
                "announce_receipt_timeout {} must be at least 2",
                self.announce_receipt_timeout
            ));
        }
        Ok(())
    }
}
