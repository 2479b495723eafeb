//! PTPv2 wire format: the common header and the five messages an ordinary clock uses.
//!
//! [`parse`] never trusts a length: it checks the datagram against the fixed sizes of the
//! header and body before reading, and against the header's `messageLength`; anything else is
//! a [`PtpError::Malformed`]. [`Message::encode`] writes into a caller's buffer (no
//! allocation), so both directions fit in a hot loop.

use std::fmt;

use crate::PtpError;

/// Size of the common header.
pub const HEADER_LEN: usize = 34;
/// Size of an encoded timestamp (48-bit seconds + 32-bit nanoseconds).
const TIMESTAMP_LEN: usize = 10;
/// Size of an encoded port identity (clock identity + port number).
const PORT_IDENTITY_LEN: usize = 10;
/// The largest message this crate builds (Announce).
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + 30;

/// Flag bits of the header's flagField (octet 0 in the high byte).
pub mod flags {
    /// Octet 0: a Follow_Up carries the precise origin timestamp of this Sync.
    pub const TWO_STEP: u16 = 0x0200;
    /// Octet 0: the message was sent unicast.
    pub const UNICAST: u16 = 0x0400;
    /// Octet 1: the last minute of the day has 61 seconds.
    pub const LEAP61: u16 = 0x0001;
    /// Octet 1: the last minute of the day has 59 seconds.
    pub const LEAP59: u16 = 0x0002;
    /// Octet 1: currentUtcOffset is known.
    pub const UTC_OFFSET_VALID: u16 = 0x0004;
    /// Octet 1: the grandmaster's timescale is PTP (TAI), not arbitrary.
    pub const PTP_TIMESCALE: u16 = 0x0008;
    /// Octet 1: the time is traceable to a primary reference.
    pub const TIME_TRACEABLE: u16 = 0x0010;
    /// Octet 1: the frequency is traceable to a primary reference.
    pub const FREQUENCY_TRACEABLE: u16 = 0x0020;
}

/// An EUI-64 clock identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockIdentity(pub [u8; 8]);

impl ClockIdentity {
    /// The identity as a big-endian integer (what [`streamlib_clock::ClockSourceId`] carries).
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// The identity whose big-endian integer is `value`.
    pub fn from_u64(value: u64) -> Self {
        Self(value.to_be_bytes())
    }

    /// The EUI-64 built from a 48-bit MAC address the IEEE way (`ff:fe` in the middle), as
    /// ptp4l does.
    pub fn from_mac(mac: [u8; 6]) -> Self {
        Self([mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
    }
}

impl fmt::Display for ClockIdentity {
    /// ptp4l's spelling: `001122.fffe.334455`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// A PTP port: its clock's identity and the port number within that clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortIdentity {
    /// The clock the port belongs to.
    pub clock: ClockIdentity,
    /// 1-based port number (an ordinary clock has port 1).
    pub port: u16,
}

impl fmt::Display for PortIdentity {
    /// ptp4l's spelling: `001122.fffe.334455-1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.clock, self.port)
    }
}

/// A PTP timestamp: 48-bit seconds and nanoseconds since the PTP epoch (1970-01-01 TAI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PtpTimestamp {
    /// Seconds; only the low 48 bits travel on the wire.
    pub seconds: u64,
    /// Nanoseconds, below 1e9.
    pub nanoseconds: u32,
}

impl PtpTimestamp {
    /// The timestamp for `ns` TAI nanoseconds since the PTP epoch.
    pub fn from_ns(ns: u64) -> Self {
        Self {
            seconds: ns / 1_000_000_000,
            nanoseconds: (ns % 1_000_000_000) as u32,
        }
    }

    /// TAI nanoseconds since the PTP epoch; saturates beyond `u64::MAX` (year 2554).
    pub fn to_ns(self) -> u64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(self.nanoseconds))
    }
}

/// A grandmaster's quality, as compared by the best master clock algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockQuality {
    /// clockClass: 6 = locked to a primary reference, 248 = default, 255 = slave-only.
    pub class: u8,
    /// clockAccuracy enumeration: 0x20 = 25 ns … 0x31 = > 10 s, 0xfe = unknown.
    pub accuracy: u8,
    /// offsetScaledLogVariance: the clock's stability, smaller is better.
    pub variance: u16,
}

impl Default for ClockQuality {
    /// A free-running ordinary clock: class 248, accuracy unknown, variance 0xffff.
    fn default() -> Self {
        Self {
            class: 248,
            accuracy: 0xfe,
            variance: 0xffff,
        }
    }
}

/// The PTP message types this crate understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Event message from master: the time it was sent.
    Sync = 0x0,
    /// Event message from slave: asks for the time it arrived.
    DelayReq = 0x1,
    /// General message: the precise send time of a two-step Sync.
    FollowUp = 0x8,
    /// General message: when a Delay_Req arrived at the master.
    DelayResp = 0x9,
    /// General message: a master's dataset, for the best master clock algorithm.
    Announce = 0xb,
}

impl MessageType {
    fn control_field(self) -> u8 {
        match self {
            MessageType::Sync => 0,
            MessageType::DelayReq => 1,
            MessageType::FollowUp => 2,
            MessageType::DelayResp => 3,
            MessageType::Announce => 5,
        }
    }

    fn body_len(self) -> usize {
        match self {
            MessageType::Sync | MessageType::DelayReq | MessageType::FollowUp => TIMESTAMP_LEN,
            MessageType::DelayResp => TIMESTAMP_LEN + PORT_IDENTITY_LEN,
            MessageType::Announce => 30,
        }
    }
}

/// The common header of every PTP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type (the body follows it).
    pub message_type: MessageType,
    /// transportSpecific / majorSdoId nibble (0 for the default profiles).
    pub transport_specific: u8,
    /// PTP domain; clocks only talk within one.
    pub domain: u8,
    /// flagField, see [`flags`].
    pub flags: u16,
    /// correctionField in ns × 2¹⁶ (residence and path corrections added by the network).
    pub correction: i64,
    /// The sending port.
    pub source: PortIdentity,
    /// Sequence number, per message type and sender.
    pub sequence_id: u16,
    /// logMessageInterval: log2 of the interval between such messages, in seconds.
    pub log_interval: i8,
}

impl Header {
    /// A header with no flags, no correction and interval 0 (1 s).
    pub fn new(message_type: MessageType, source: PortIdentity, sequence_id: u16) -> Self {
        Self {
            message_type,
            transport_specific: 0,
            domain: 0,
            flags: 0,
            correction: 0,
            source,
            sequence_id,
            log_interval: 0,
        }
    }

    /// The correction field in whole nanoseconds (rounded towards −∞).
    pub fn correction_ns(&self) -> i64 {
        self.correction >> 16
    }

    /// True when `flag` (one of [`flags`]) is set.
    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// The body of an Announce message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Approximate send time (not used for synchronisation).
    pub origin: PtpTimestamp,
    /// TAI − UTC in seconds, as the grandmaster knows it (37 since 2017).
    pub current_utc_offset: i16,
    /// grandmasterPriority1: lower wins, compared first.
    pub priority1: u8,
    /// grandmasterClockQuality.
    pub quality: ClockQuality,
    /// grandmasterPriority2: lower wins, compared after the quality.
    pub priority2: u8,
    /// The grandmaster's identity.
    pub grandmaster: ClockIdentity,
    /// Boundary clocks between the grandmaster and the sender.
    pub steps_removed: u16,
    /// timeSource enumeration (0x20 GPS, 0x40 PTP, 0xa0 internal oscillator, …).
    pub time_source: u8,
}

/// The body of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Sync: originTimestamp (exact in one-step mode, approximate in two-step mode).
    Sync {
        /// When the master sent it.
        origin: PtpTimestamp,
    },
    /// Delay_Req: originTimestamp (the slave keeps its own precise send time).
    DelayReq {
        /// Approximate send time.
        origin: PtpTimestamp,
    },
    /// Follow_Up: the precise send time of the Sync with the same sequence id.
    FollowUp {
        /// When the Sync left the master.
        precise_origin: PtpTimestamp,
    },
    /// Delay_Resp: when the Delay_Req from `requesting` arrived at the master.
    DelayResp {
        /// t4, master time.
        receive: PtpTimestamp,
        /// The port that sent the Delay_Req.
        requesting: PortIdentity,
    },
    /// Announce: the sender's grandmaster dataset.
    Announce(Announce),
}

impl Body {
    /// The message type this body belongs to.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Sync { .. } => MessageType::Sync,
            Body::DelayReq { .. } => MessageType::DelayReq,
            Body::FollowUp { .. } => MessageType::FollowUp,
            Body::DelayResp { .. } => MessageType::DelayResp,
            Body::Announce(_) => MessageType::Announce,
        }
    }
}

/// One PTP message: header and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The common header; its `message_type` is taken from the body when encoding.
    pub header: Header,
    /// The type-specific part.
    pub body: Body,
}

impl Message {
    /// Size of the encoded message.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.message_type().body_len()
    }

    /// Writes the message into `out` and returns its length.
    ///
    /// # Errors
    /// [`PtpError::BufferTooSmall`] when `out` is shorter than [`encoded_len`](Self::encoded_len).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, PtpError> {
        let message_type = self.body.message_type();
        let len = self.encoded_len();
        let Some(out) = out.get_mut(..len) else {
            return Err(PtpError::BufferTooSmall {
                need: len,
                have: out.len(),
            });
        };
        out.fill(0);
        let h = &self.header;
        let (head, body) = out.split_at_mut(HEADER_LEN);
        head[0] = (h.transport_specific << 4) | message_type as u8;
        head[1] = 2;
        head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        head[4] = h.domain;
        head[6..8].copy_from_slice(&h.flags.to_be_bytes());
        head[8..16].copy_from_slice(&h.correction.to_be_bytes());
        write_port(&mut head[20..30], h.source);
        head[30..32].copy_from_slice(&h.sequence_id.to_be_bytes());
        head[32] = message_type.control_field();
        head[33] = h.log_interval as u8;
        match &self.body {
            Body::Sync { origin } | Body::DelayReq { origin } => write_timestamp(body, *origin),
            Body::FollowUp { precise_origin } => write_timestamp(body, *precise_origin),
            Body::DelayResp {
                receive,
                requesting,
            } => {
                write_timestamp(&mut body[..TIMESTAMP_LEN], *receive);
                write_port(&mut body[TIMESTAMP_LEN..], *requesting);
            }
            Body::Announce(a) => {
                write_timestamp(&mut body[..TIMESTAMP_LEN], a.origin);
                body[10..12].copy_from_slice(&a.current_utc_offset.to_be_bytes());
                body[13] = a.priority1;
                body[14] = a.quality.class;
                body[15] = a.quality.accuracy;
                body[16..18].copy_from_slice(&a.quality.variance.to_be_bytes());
                body[18] = a.priority2;
                body[19..27].copy_from_slice(&a.grandmaster.0);
                body[27..29].copy_from_slice(&a.steps_removed.to_be_bytes());
                body[29] = a.time_source;
            }
        }
        Ok(len)
    }

    /// The encoded message in a new vector (for tests and tools; the protocol loop uses
    /// [`encode`](Self::encode)).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.encoded_len()];
        // The buffer has exactly the encoded length, so encoding cannot fail.
        let _ = self.encode(&mut out);
        out
    }
}

/// Parses one datagram.
///
/// Trailing bytes after `messageLength` (padding) and after the body (TLVs) are ignored.
///
/// # Errors
/// [`PtpError::Malformed`] for anything that is not a well-formed PTPv2 message (too short,
/// wrong version, inconsistent length, nanoseconds ≥ 1e9);
/// [`PtpError::UnsupportedMessage`] for peer-delay, signaling and management messages.
pub fn parse(datagram: &[u8]) -> Result<Message, PtpError> {
    let malformed = |reason| PtpError::Malformed {
        len: datagram.len(),
        reason,
    };
    let Some(head) = datagram.get(..HEADER_LEN) else {
        return Err(malformed("shorter than the 34-byte header"));
    };
    if head[1] & 0x0f != 2 {
        return Err(malformed("versionPTP is not 2"));
    }
    let declared = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if declared > datagram.len() {
        return Err(malformed("messageLength exceeds the datagram"));
    }
    let message_type = match head[0] & 0x0f {
        0x0 => MessageType::Sync,
        0x1 => MessageType::DelayReq,
        0x8 => MessageType::FollowUp,
        0x9 => MessageType::DelayResp,
        0xb => MessageType::Announce,
        other => {
            return Err(PtpError::UnsupportedMessage {
                message_type: other,
            });
        }
    };
    let need = HEADER_LEN + message_type.body_len();
    if declared < need {
        return Err(malformed("messageLength too short for the message type"));
    }
    let Some(body) = datagram.get(HEADER_LEN..need) else {
        return Err(malformed("datagram too short for the message type"));
    };
    let header = Header {
        message_type,
        transport_specific: head[0] >> 4,
        domain: head[4],
        flags: u16::from_be_bytes([head[6], head[7]]),
        correction: i64::from_be_bytes(array(&head[8..16])),
        source: read_port(&head[20..30]),
        sequence_id: u16::from_be_bytes([head[30], head[31]]),
        log_interval: head[33] as i8,
    };
    let timestamp =
        |bytes: &[u8]| read_timestamp(bytes).ok_or_else(|| malformed("nanoseconds ≥ 1e9"));
    let body = match message_type {
        MessageType::Sync => Body::Sync {
            origin: timestamp(body)?,
        },
        MessageType::DelayReq => Body::DelayReq {
            origin: timestamp(body)?,
        },
        MessageType::FollowUp => Body::FollowUp {
            precise_origin: timestamp(body)?,
        },
        MessageType::DelayResp => Body::DelayResp {
            receive: timestamp(&body[..TIMESTAMP_LEN])?,
            requesting: read_port(&body[TIMESTAMP_LEN..]),
        },
        MessageType::Announce => Body::Announce(Announce {
            origin: timestamp(&body[..TIMESTAMP_LEN])?,
            current_utc_offset: i16::from_be_bytes([body[10], body[11]]),
            priority1: body[13],
            quality: ClockQuality {
                class: body[14],
                accuracy: body[15],
                variance: u16::from_be_bytes([body[16], body[17]]),
            },
            priority2: body[18],
            grandmaster: ClockIdentity(array(&body[19..27])),
            steps_removed: u16::from_be_bytes([body[27], body[28]]),
            time_source: body[29],
        }),
    };
    Ok(Message { header, body })
}

/// Overwrites the first body timestamp (originTimestamp of Sync / Delay_Req / Announce) of
/// an encoded message; does nothing to a buffer too short to hold one.
pub(crate) fn patch_origin(encoded: &mut [u8], origin: PtpTimestamp) {
    if let Some(slot) = encoded.get_mut(HEADER_LEN..HEADER_LEN + TIMESTAMP_LEN) {
        write_timestamp(slot, origin);
    }
}

/// Copies a slice whose length the caller has fixed into an array (zero-filled otherwise).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn read_port(bytes: &[u8]) -> PortIdentity {
    PortIdentity {
        clock: ClockIdentity(array(&bytes[..8])),
        port: u16::from_be_bytes(array(&bytes[8..10])),
    }
}

fn write_port(out: &mut [u8], port: PortIdentity) {
    out[..8].copy_from_slice(&port.clock.0);
    out[8..10].copy_from_slice(&port.port.to_be_bytes());
}

/// `None` when the nanoseconds are out of range.
fn read_timestamp(bytes: &[u8]) -> Option<PtpTimestamp> {
    let seconds: [u8; 6] = array(&bytes[..6]);
    let mut wide = [0u8; 8];
    wide[2..].copy_from_slice(&seconds);
    let nanoseconds = u32::from_be_bytes(array(&bytes[6..10]));
    (nanoseconds < 1_000_000_000).then_some(PtpTimestamp {
        seconds: u64::from_be_bytes(wide),
        nanoseconds,
    })
}

fn write_timestamp(out: &mut [u8], ts: PtpTimestamp) {
    out[..6].copy_from_slice(&ts.seconds.to_be_bytes()[2..]);
    out[6..10].copy_from_slice(&ts.nanoseconds.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn port(n: u8) -> PortIdentity {
        PortIdentity {
            clock: ClockIdentity([n, 1, 2, 0xff, 0xfe, 3, 4, 5]),
            port: 1,
        }
    }

    #[test]
    fn timestamps_convert_both_ways() {
        let ns = 1_700_000_037_123_456_789;
        let ts = PtpTimestamp::from_ns(ns);
        assert_eq!(ts.seconds, 1_700_000_037);
        assert_eq!(ts.nanoseconds, 123_456_789);
        assert_eq!(ts.to_ns(), ns);
        let huge = PtpTimestamp {
            seconds: (1 << 48) - 1,
            nanoseconds: 999_999_999,
        };
        assert_eq!(huge.to_ns(), u64::MAX);
    }

    #[test]
    fn identities_print_like_ptp4l() {
        let id = ClockIdentity::from_mac([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(id.to_string(), "001122.fffe.334455");
        assert_eq!(id.to_u64(), 0x0011_22ff_fe33_4455);
        assert_eq!(ClockIdentity::from_u64(id.to_u64()), id);
        assert_eq!(
            PortIdentity { clock: id, port: 1 }.to_string(),
            "001122.fffe.334455-1"
        );
    }

    #[test]
    fn a_known_two_step_sync_parses() -> Result<(), PtpError> {
        // A ptp4l-style two-step Sync, correction 1.5 ns, sequence 7, interval 2^-3 s.
        let mut bytes = [0u8; 44];
        bytes[0] = 0x00;
        bytes[1] = 0x02;
        bytes[2..4].copy_from_slice(&44u16.to_be_bytes());
        bytes[6] = 0x02;
        bytes[8..16].copy_from_slice(&(3i64 << 15).to_be_bytes());
        bytes[20..28].copy_from_slice(&[0, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);
        bytes[29] = 1;
        bytes[31] = 7;
        bytes[33] = 0xfd;
        bytes[34..40].copy_from_slice(&[0, 0, 0, 0, 0, 5]);
        bytes[40..44].copy_from_slice(&6u32.to_be_bytes());
        let msg = parse(&bytes)?;
        assert_eq!(msg.header.message_type, MessageType::Sync);
        assert!(msg.header.has_flag(flags::TWO_STEP));
        assert_eq!(msg.header.correction_ns(), 1);
        assert_eq!(msg.header.sequence_id, 7);
        assert_eq!(msg.header.log_interval, -3);
        assert_eq!(msg.header.source.clock.to_u64(), 0x0011_22ff_fe33_4455);
        assert_eq!(
            msg.body,
            Body::Sync {
                origin: PtpTimestamp {
                    seconds: 5,
                    nanoseconds: 6
                }
            }
        );
        Ok(())
    }

    #[test]
    fn bad_datagrams_are_rejected() {
        assert!(matches!(parse(&[]), Err(PtpError::Malformed { .. })));
        let mut sync = Message {
            header: Header::new(MessageType::Sync, port(1), 1),
            body: Body::Sync {
                origin: PtpTimestamp::default(),
            },
        }
        .to_vec();
        // messageLength beyond the datagram.
        let mut long = sync.clone();
        long[3] = 200;
        assert!(matches!(parse(&long), Err(PtpError::Malformed { .. })));
        // Truncated body.
        assert!(matches!(
            parse(&sync[..40]),
            Err(PtpError::Malformed { .. })
        ));
        // Version 1.
        let mut v1 = sync.clone();
        v1[1] = 1;
        assert!(matches!(parse(&v1), Err(PtpError::Malformed { .. })));
        // Nanoseconds out of range.
        sync[40..44].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(matches!(parse(&sync), Err(PtpError::Malformed { .. })));
        // Peer delay request: understood as unsupported, not malformed.
        let mut pdelay = vec![0u8; 54];
        pdelay[0] = 0x2;
        pdelay[1] = 2;
        pdelay[3] = 54;
        assert!(matches!(
            parse(&pdelay),
            Err(PtpError::UnsupportedMessage { message_type: 2 })
        ));
    }

    #[test]
    fn encoding_into_a_short_buffer_fails() {
        let msg = Message {
            header: Header::new(MessageType::DelayReq, port(2), 3),
            body: Body::DelayReq {
                origin: PtpTimestamp::default(),
            },
        };
        let mut short = [0u8; 43];
        assert!(matches!(
            msg.encode(&mut short),
            Err(PtpError::BufferTooSmall { need: 44, have: 43 })
        ));
    }

    fn arb_port() -> impl Strategy<Value = PortIdentity> {
        (any::<[u8; 8]>(), any::<u16>()).prop_map(|(c, port)| PortIdentity {
            clock: ClockIdentity(c),
            port,
        })
    }

    fn arb_timestamp() -> impl Strategy<Value = PtpTimestamp> {
        (0u64..(1 << 48), 0u32..1_000_000_000).prop_map(|(seconds, nanoseconds)| PtpTimestamp {
            seconds,
            nanoseconds,
        })
    }

    fn arb_body() -> impl Strategy<Value = Body> {
        prop_oneof![
            arb_timestamp().prop_map(|origin| Body::Sync { origin }),
            arb_timestamp().prop_map(|origin| Body::DelayReq { origin }),
            arb_timestamp().prop_map(|precise_origin| Body::FollowUp { precise_origin }),
            (arb_timestamp(), arb_port()).prop_map(|(receive, requesting)| Body::DelayResp {
                receive,
                requesting
            }),
            (
                arb_timestamp(),
                any::<i16>(),
                any::<[u8; 5]>(),
                any::<u16>(),
                any::<[u8; 8]>(),
                any::<u16>()
            )
                .prop_map(|(origin, utc, b, variance, gm, steps)| {
                    Body::Announce(Announce {
                        origin,
                        current_utc_offset: utc,
                        priority1: b[0],
                        quality: ClockQuality {
                            class: b[1],
                            accuracy: b[2],
                            variance,
                        },
                        priority2: b[3],
                        grandmaster: ClockIdentity(gm),
                        steps_removed: steps,
                        time_source: b[4],
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            match parse(&bytes) {
                Ok(msg) => prop_assert!(msg.encoded_len() <= bytes.len()),
                Err(PtpError::Malformed { len, .. }) => prop_assert_eq!(len, bytes.len()),
                Err(PtpError::UnsupportedMessage { message_type }) => prop_assert!(message_type < 16),
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn plausible_headers_with_random_bodies_never_panic(
            kind in prop::sample::select(vec![0u8, 1, 8, 9, 0xb]),
            declared in 0u16..100,
            tail in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut bytes = vec![0u8; HEADER_LEN];
            bytes[0] = kind;
            bytes[1] = 2;
            bytes[2..4].copy_from_slice(&declared.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = parse(&bytes);
        }

        #[test]
        fn build_then_parse_round_trips(
            body in arb_body(),
            source in arb_port(),
            sequence_id in any::<u16>(),
            domain in any::<u8>(),
            flags_field in any::<u16>(),
            correction in any::<i64>(),
            log_interval in any::<i8>(),
            transport_specific in 0u8..16,
        ) {
            let msg = Message {
                header: Header {
                    message_type: body.message_type(),
                    transport_specific,
                    domain,
                    flags: flags_field,
                    correction,
                    source,
                    sequence_id,
                    log_interval,
                },
                body,
            };
            let mut buf = [0u8; MAX_MESSAGE_LEN];
            let len = msg.encode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(len, msg.encoded_len());
            let parsed = parse(&buf[..len]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed, msg);
        }
    }
}
