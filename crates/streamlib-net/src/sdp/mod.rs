//! SDP (RFC 8866) as ST 2110 uses it: the session-level lines and one media section,
//! written and parsed once for every medium. What is particular to a medium (video's
//! `a=fmtp`, audio's `a=rtpmap` channels and `a=ptime`) is in its own module, on top.
//!
//! ```text
//! v=0
//! o=- 1 1 IN IP4 192.168.1.2
//! s=streamlib
//! t=0 0
//! m=<medium> 5004 RTP/AVP <payload type>
//! c=IN IP4 239.100.9.10/16
//! a=…                      (the medium's own attributes)
//! a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:127
//! a=mediaclk:direct=0
//! ```

mod filter;

pub use filter::SdpStreamFilter;

/// Declares a medium's public SDP type: the fields every ST 2110 SDP has (name, origin,
/// destination, TTL, payload type, then the medium's own fields, then the reference clock)
/// and its conversions to and from [`Session`], so that the session fields and how they
/// travel to and from the text are written once.
macro_rules! media_session {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            /// Session name (`s=`).
            pub name: String,
            /// The sender's address (`o=`).
            pub origin: std::net::IpAddr,
            /// Where the stream goes (`c=` and the port of `m=`): a multicast group or a
            /// unicast receiver.
            pub destination: std::net::SocketAddr,
            /// Multicast TTL written into `c=` for IPv4 multicast.
            pub ttl: u8,
            /// RTP payload type.
            pub payload_type: u8,
            $($(#[$field_meta])* pub $field: $ty,)+
            /// Timestamp reference clock.
            pub ref_clock: $crate::sdp::RefClock,
        }

        impl $name {
            /// The session-level part, to write.
            fn session(&self) -> $crate::sdp::Session {
                $crate::sdp::Session {
                    name: self.name.clone(),
                    origin: self.origin,
                    destination: self.destination,
                    ttl: self.ttl,
                    payload_type: self.payload_type,
                    ref_clock: self.ref_clock,
                }
            }

            /// A parsed session with the medium's own fields.
            fn from_session(session: $crate::sdp::Session, $($field: $ty),+) -> Self {
                Self {
                    name: session.name,
                    origin: session.origin,
                    destination: session.destination,
                    ttl: session.ttl,
                    payload_type: session.payload_type,
                    $($field,)+
                    ref_clock: session.ref_clock,
                }
            }
        }
    };
}
pub(crate) use media_session;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::NetError;

/// The reference clock of the stream's timestamps (`a=ts-refclk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefClock {
    /// PTP (IEEE 1588-2008): a grandmaster's EUI-64 and domain, or `traceable` (`None`).
    Ptp {
        /// Grandmaster identity and PTP domain.
        grandmaster: Option<([u8; 8], u8)>,
    },
    /// A free-running local clock, named by the sender's MAC address.
    LocalMac([u8; 6]),
}

impl RefClock {
    /// The `a=ts-refclk:` value.
    fn sdp_value(self) -> String {
        match self {
            RefClock::Ptp { grandmaster: None } => "ptp=IEEE1588-2008:traceable".to_string(),
            RefClock::Ptp {
                grandmaster: Some((gm, domain)),
            } => format!("ptp=IEEE1588-2008:{}:{domain}", hex_dashes(&gm)),
            RefClock::LocalMac(mac) => format!("localmac={}", hex_dashes(&mac)),
        }
    }
}

fn hex_dashes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn parse_hex_dashes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut parts = text.split('-');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_ref_clock(text: &str) -> Option<RefClock> {
    if let Some(mac) = text.strip_prefix("localmac=") {
        return parse_hex_dashes::<6>(mac).map(RefClock::LocalMac);
    }
    let ptp = text.strip_prefix("ptp=IEEE1588-2008:")?;
    if ptp == "traceable" {
        return Some(RefClock::Ptp { grandmaster: None });
    }
    let (gm, domain) = ptp.rsplit_once(':')?;
    Some(RefClock::Ptp {
        grandmaster: Some((parse_hex_dashes::<8>(gm)?, domain.parse().ok()?)),
    })
}

/// One line of an SDP being parsed: its 1-based number and its text, for errors that name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SdpLine<'a> {
    pub(crate) number: usize,
    pub(crate) text: &'a str,
}

impl SdpLine<'_> {
    /// An error about this line.
    pub(crate) fn error(&self, reason: &str) -> NetError {
        NetError::Sdp {
            line: self.number,
            text: self.text.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The error for a line the SDP lacks (line 0, named by its kind).
pub(crate) fn missing(what: &str) -> NetError {
    SdpLine {
        number: 0,
        text: what,
    }
    .error("missing")
}

/// The medium an SDP is read for, and what a second section of it means.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Medium {
    /// `video` or `audio`, as `m=` names it.
    pub(crate) name: &'static str,
    /// Whether a second section of the medium is an error (else it is skipped, as every
    /// section of another medium is).
    pub(crate) only_one: bool,
}

/// What every ST 2110 SDP carries, whatever its medium.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Session {
    /// Session name (`s=`).
    pub(crate) name: String,
    /// The sender's address (`o=`; unspecified IPv4 when absent).
    pub(crate) origin: IpAddr,
    /// `c=` (the media section's, else the session's) and the port of `m=`.
    pub(crate) destination: SocketAddr,
    /// Multicast TTL of `c=` (0 when absent).
    pub(crate) ttl: u8,
    /// Payload type of `m=`.
    pub(crate) payload_type: u8,
    /// `a=ts-refclk` (PTP, traceable, when absent).
    pub(crate) ref_clock: RefClock,
}

impl Session {
    /// The SDP text (CRLF line ends, as RFC 8866 asks): the session, `m=` and `c=`, then
    /// `media` (the medium's own lines, without line ends), then the clock lines.
    pub(crate) fn to_sdp(&self, medium: &str, media: &[String]) -> String {
        let ip = |a: IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let dest = self.destination.ip();
        let connection = match dest {
            IpAddr::V4(a) if a.is_multicast() => format!("{a}/{}", self.ttl),
            a => a.to_string(),
        };
        let mut text = String::new();
        let mut line = |l: &str| {
            text.push_str(l);
            text.push_str("\r\n");
        };
        line("v=0");
        line(&format!("o=- 1 1 IN {} {}", ip(self.origin), self.origin));
        line(&format!("s={}", self.name));
        line("t=0 0");
        line(&format!(
            "m={medium} {} RTP/AVP {}",
            self.destination.port(),
            self.payload_type
        ));
        line(&format!("c=IN {} {connection}", ip(dest)));
        for l in media {
            line(l);
        }
        line(&format!("a=ts-refclk:{}", self.ref_clock.sdp_value()));
        line("a=mediaclk:direct=0");
        text
    }

    /// Parses the session-level lines and the first `medium` section; every other section is
    /// skipped. Each `a=` line of the session or of that section other than `ts-refclk` goes
    /// to `attribute` (its line, and the value after `a=`), in order, so that errors come
    /// from the first bad line. Lines streamlib does not need are ignored.
    pub(crate) fn parse<'a>(
        text: &'a str,
        medium: Medium,
        mut attribute: impl FnMut(SdpLine<'a>, &'a str) -> Result<(), NetError>,
    ) -> Result<Self, NetError> {
        let mut name = String::new();
        let mut origin = None;
        let mut port_and_type = None;
        let (mut address, mut session_address) = (None, None);
        let mut ttl = 0u8;
        let mut ref_clock = None;
        // Which section the line belongs to: session, ours, or another.
        #[derive(PartialEq)]
        enum Section {
            Session,
            Ours,
            Other,
        }
        let mut section = Section::Session;
        for (n, raw) in text.lines().enumerate() {
            let line = SdpLine {
                number: n + 1,
                text: raw.trim_end_matches('\r'),
            };
            if line.text.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.text.split_once('=') else {
                return Err(line.error("expected `<type>=<value>`"));
            };
            if kind == "m" {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if parts.first() != Some(&medium.name) {
                    section = Section::Other;
                    continue;
                }
                if port_and_type.is_some() {
                    if medium.only_one {
                        let reason = format!("only one {} media section is supported", medium.name);
                        return Err(line.error(&reason));
                    }
                    section = Section::Other;
                    continue;
                }
                section = Section::Ours;
                port_and_type = Some(parse_media(line, &parts, medium.name)?);
                continue;
            }
            if section == Section::Other {
                continue;
            }
            match kind {
                "v" if value != "0" => return Err(line.error("only SDP version 0 exists")),
                "s" => name = value.to_string(),
                "o" => {
                    let addr = value.split_whitespace().nth(5);
                    origin =
                        Some(addr.and_then(|a| a.parse::<IpAddr>().ok()).ok_or_else(|| {
                            line.error("the origin's last field must be an IP address")
                        })?);
                }
                "c" => {
                    let (ip, t) = parse_connection(line, value)?;
                    ttl = t.unwrap_or(ttl);
                    if section == Section::Ours {
                        address = Some(ip);
                    } else {
                        session_address = Some(ip);
                    }
                }
                "a" => {
                    if let Some(rest) = value.strip_prefix("ts-refclk:") {
                        ref_clock = Some(parse_ref_clock(rest).ok_or_else(|| {
                            line.error("expected ptp=IEEE1588-2008:<GMID>:<domain>, ptp=IEEE1588-2008:traceable or localmac=<MAC>")
                        })?);
                    } else {
                        attribute(line, value)?;
                    }
                }
                _ => {}
            }
        }
        let (port, payload_type) =
            port_and_type.ok_or_else(|| missing(&format!("m={}", medium.name)))?;
        let address = address.or(session_address).ok_or_else(|| missing("c="))?;
        Ok(Self {
            name,
            origin: origin.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            destination: SocketAddr::new(address, port),
            ttl,
            payload_type,
            ref_clock: ref_clock.unwrap_or(RefClock::Ptp { grandmaster: None }),
        })
    }
}

/// `m=<medium> <port> RTP/AVP <payload type>`: the port and the (dynamic) payload type.
fn parse_media(line: SdpLine<'_>, parts: &[&str], medium: &str) -> Result<(u16, u8), NetError> {
    if parts.len() < 4 || parts[2] != "RTP/AVP" {
        let expected = format!("expected `m={medium} <port> RTP/AVP <payload type>`");
        return Err(line.error(&expected));
    }
    let port = parts[1]
        .parse::<u16>()
        .map_err(|_| line.error("bad port"))?;
    let payload_type = parts[3]
        .parse::<u8>()
        .ok()
        .filter(|pt| (96..=127).contains(pt))
        .ok_or_else(|| line.error("payload type must be 96 ..= 127"))?;
    Ok((port, payload_type))
}

/// `c=IN IP4|IP6 <address>[/<ttl>]`: the address and the TTL, if given.
fn parse_connection(line: SdpLine<'_>, value: &str) -> Result<(IpAddr, Option<u8>), NetError> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() != 3 || parts[0] != "IN" {
        return Err(line.error("expected `c=IN IP4|IP6 <address>`"));
    }
    let mut fields = parts[2].split('/');
    let ip: IpAddr = fields
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| line.error("bad connection address"))?;
    if (parts[1] == "IP4") != ip.is_ipv4() {
        return Err(line.error("address family does not match the address"));
    }
    let ttl = fields
        .next()
        .map(|t| t.parse().map_err(|_| line.error("bad TTL")))
        .transpose()?;
    Ok((ip, ttl))
}

/// For tests: each `(from, to, start, says)` replaces `from` by `to` in `sdp` and checks
/// that `parse` refuses the result with an error that starts with `start` and says `says`.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
pub(crate) fn assert_refusals<S: std::fmt::Debug>(
    sdp: &str,
    parse: fn(&str) -> Result<S, NetError>,
    cases: &[(&str, &str, &str, &str)],
) {
    for &(from, to, start, says) in cases {
        let err = parse(&sdp.replace(from, to)).unwrap_err().to_string();
        assert!(
            err.starts_with(start) && err.contains(says),
            "{from} → {to}: {err}"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const VIDEO: Medium = Medium {
        name: "video",
        only_one: true,
    };

    fn session() -> Session {
        Session {
            name: "s".into(),
            origin: "10.0.0.1".parse().unwrap(),
            destination: "239.1.1.1:5000".parse().unwrap(),
            ttl: 8,
            payload_type: 96,
            ref_clock: RefClock::Ptp { grandmaster: None },
        }
    }

    #[test]
    fn session_lines_round_trip_with_the_media_lines_between() {
        let text = session().to_sdp("video", &["a=x:1".into()]);
        assert!(
            text.ends_with("c=IN IP4 239.1.1.1/8\r\na=x:1\r\na=ts-refclk:ptp=IEEE1588-2008:traceable\r\na=mediaclk:direct=0\r\n"),
            "{text}"
        );
        let mut seen = Vec::new();
        let back = Session::parse(&text, VIDEO, |line, value| {
            seen.push((line.number, value));
            Ok(())
        })
        .unwrap();
        assert_eq!(back, session());
        // mediaclk is the medium's to read (or ignore).
        assert_eq!(seen, [(7, "x:1"), (9, "mediaclk:direct=0")]);
    }

    #[test]
    fn other_sections_are_skipped_and_a_second_one_of_ours_refused() {
        let audio = session().to_sdp("audio", &["a=rtpmap:97 L24/48000".into()]);
        let text = format!("{audio}m=video 6000 RTP/AVP 98\r\nc=IN IP4 239.1.1.9\r\na=y\r\n");
        let mut seen = Vec::new();
        let back = Session::parse(&text, VIDEO, |_, value| {
            seen.push(value);
            Ok(())
        })
        .unwrap();
        assert_eq!(back.destination, "239.1.1.9:6000".parse().unwrap());
        assert_eq!(seen, ["y"]);
        let twice = format!("{text}m=video 6002 RTP/AVP 98\r\n");
        let err = Session::parse(&twice, VIDEO, |_, _| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("only one video media section"),
            "{err}"
        );
        let skipping = Medium {
            only_one: false,
            ..VIDEO
        };
        assert!(Session::parse(&twice, skipping, |_, _| Ok(())).is_ok());
    }
}
