//! IEEE 1588-2008 (PTPv2) for streamlib: an ordinary clock in slave mode over UDP/IPv4, and
//! [`PtpClock`], a [`streamlib_clock::Clock`] whose ticks fall on frame boundaries of the
//! master's time (TAI, counted from the PTP epoch).
//!
//! - [`PtpSlave`] runs the protocol on its own thread: best master selection from Announce
//!   messages, Sync / Follow_Up (one- and two-step, correctionField honoured) and the
//!   end-to-end delay request-response mechanism, with kernel software timestamps. A PI
//!   servo steers a *model* of the master's time as a function of the local monotonic clock;
//!   the system clock is never adjusted. [`PtpStatus`] shows offset, path delay, master,
//!   frequency and counters.
//! - [`PtpClock`] ticks on that model: two machines locked to one grandmaster produce the
//!   same frame numbers and timestamps.
//! - [`PtpMaster`] is a small grandmaster for tests without ptp4l.
//! - [`message`] parses and builds the five messages; parsing never trusts a length.
//!
//! ```no_run
//! use std::time::Duration;
//! use streamlib_clock::{Clock, LockState, Rational, TickWait};
//! use streamlib_ptp::{Interface, PtpClock, PtpConfig, Transport};
//!
//! // Ports 319/320 need root (or CAP_NET_BIND_SERVICE) and must not be held by ptp4l.
//! let config = PtpConfig::new(Transport::multicast(Interface::Name("eth0".into())));
//! let mut clock = PtpClock::new(Rational::fps(50), config)?;
//! while clock.lock_state() != LockState::Locked {
//!     std::thread::sleep(Duration::from_millis(100));
//! }
//! clock.start()?;
//! if let TickWait::Tick(tick) = clock.wait_tick(Duration::from_secs(1))? {
//!     // TAI ns of a 20 ms boundary since 1970-01-01 TAI, the same on every locked machine.
//!     assert_eq!(tick.timestamp % 20_000_000, 0);
//!     println!("frame {} from grandmaster {}", tick.frame_number, tick.clock_source_id);
//! }
//! println!("offset {} ns", clock.status().snapshot().offset_ns);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bmca;
mod config;
mod error;
mod master;
pub mod message;
mod ptp_clock;
mod servo;
mod slave;
mod socket;
mod status;
mod time;

pub use config::{
    Destination, EVENT_PORT, GENERAL_PORT, Interface, PTP_PRIMARY_MULTICAST, PtpConfig,
    ServoConfig, Transport,
};
pub use error::PtpError;
pub use master::{MasterConfig, PtpMaster};
pub use message::{
    Announce, Body, ClockIdentity, ClockQuality, Header, Message, MessageType, PortIdentity,
    PtpTimestamp, parse,
};
pub use ptp_clock::{PtpClock, tai_frame_at, tai_frame_time_ns};
pub use slave::PtpSlave;
pub use status::{PtpCounters, PtpSnapshot, PtpStatus};
pub use time::{TAI_UTC_OFFSET_NS, local_monotonic_ns, system_tai_ns};

/// The PTP clock and its configuration, for `use streamlib_ptp::prelude::*`
/// (`streamlib::prelude` includes it with the facade's `ptp` feature).
pub mod prelude {
    pub use crate::{Interface, PtpClock, PtpConfig};
}
