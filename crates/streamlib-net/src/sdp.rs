//! SDP (RFC 8866) for one ST 2110-20 video stream, as ST 2110-20 / -10 / -21 describe it.
//!
//! ```text
//! v=0
//! o=- 1 1 IN IP4 192.168.1.2
//! s=streamlib
//! t=0 0
//! m=video 5004 RTP/AVP 96
//! c=IN IP4 239.100.9.10/16
//! a=rtpmap:96 raw/90000
//! a=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; exactframerate=30000/1001; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP=2110TPN
//! a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:127
//! a=mediaclk:direct=0
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use streamlib_clock::Rational;

use crate::{NetError, PacketPacing, Sampling, VideoFormat};

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

/// Everything a receiver needs to know about one ST 2110-20 stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SdpSession {
    /// Session name (`s=`).
    pub name: String,
    /// The sender's address (`o=`).
    pub origin: IpAddr,
    /// Where the stream goes (`c=` and the port of `m=`): a multicast group or a unicast
    /// receiver.
    pub destination: SocketAddr,
    /// Multicast TTL written into `c=` for IPv4 multicast.
    pub ttl: u8,
    /// RTP payload type.
    pub payload_type: u8,
    /// Sampling, size and rate.
    pub format: VideoFormat,
    /// Sender type (`TP=`).
    pub pacing: PacketPacing,
    /// Timestamp reference clock.
    pub ref_clock: RefClock,
}

impl RefClock {
    /// The `a=ts-refclk:` value (shared with the audio SDP).
    pub(crate) fn sdp_value(self) -> String {
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

fn rate_text(fps: Rational) -> String {
    if fps.den == 1 {
        fps.num.to_string()
    } else {
        format!("{}/{}", fps.num, fps.den)
    }
}

impl SdpSession {
    /// The SDP text (CRLF line ends, as RFC 8866 asks).
    pub fn to_sdp(&self) -> String {
        let ip = |a: IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let dest = self.destination.ip();
        let connection = match dest {
            IpAddr::V4(a) if a.is_multicast() => format!("{a}/{}", self.ttl),
            a => a.to_string(),
        };
        let f = &self.format;
        let ref_clock = self.ref_clock.sdp_value();
        let pt = self.payload_type;
        let lines = [
            "v=0".to_string(),
            format!("o=- 1 1 IN {} {}", ip(self.origin), self.origin),
            format!("s={}", self.name),
            "t=0 0".to_string(),
            format!("m=video {} RTP/AVP {pt}", self.destination.port()),
            format!("c=IN {} {connection}", ip(dest)),
            format!("a=rtpmap:{pt} raw/90000"),
            format!(
                "a=fmtp:{pt} sampling={}; width={}; height={}; exactframerate={}; depth={}; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017; TP={}",
                f.sampling.sdp_name(),
                f.width,
                f.height,
                rate_text(f.fps),
                f.sampling.depth(),
                self.pacing.sdp_name(),
            ),
            format!("a=ts-refclk:{ref_clock}"),
            "a=mediaclk:direct=0".to_string(),
        ];
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        text
    }

    /// Parses an SDP with one ST 2110-20 video media section. Errors name the offending
    /// line; lines streamlib does not need are ignored.
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let err = |line: usize, text: &str, reason: &str| NetError::Sdp {
            line,
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let mut name = String::new();
        let mut origin = None;
        let mut port = None;
        let mut payload_type = None;
        let mut address = None;
        let mut ttl = 0u8;
        let mut fmtp = None;
        let mut ref_clock = None;
        let mut raw_seen = false;
        for (n, raw) in text.lines().enumerate() {
            let n = n + 1;
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(err(n, line, "expected `<type>=<value>`"));
            };
            match kind {
                "v" if value != "0" => return Err(err(n, line, "only SDP version 0 exists")),
                "s" => name = value.to_string(),
                "o" => {
                    let addr = value.split_whitespace().nth(5);
                    origin =
                        Some(addr.and_then(|a| a.parse::<IpAddr>().ok()).ok_or_else(|| {
                            err(n, line, "the origin's last field must be an IP address")
                        })?);
                }
                "m" => {
                    let parts: Vec<&str> = value.split_whitespace().collect();
                    if parts.first() != Some(&"video") {
                        continue;
                    }
                    if port.is_some() {
                        return Err(err(n, line, "only one video media section is supported"));
                    }
                    if parts.len() < 4 || parts[2] != "RTP/AVP" {
                        return Err(err(
                            n,
                            line,
                            "expected `m=video <port> RTP/AVP <payload type>`",
                        ));
                    }
                    port = Some(
                        parts[1]
                            .parse::<u16>()
                            .map_err(|_| err(n, line, "bad port"))?,
                    );
                    payload_type = Some(
                        parts[3]
                            .parse::<u8>()
                            .ok()
                            .filter(|pt| (96..=127).contains(pt))
                            .ok_or_else(|| err(n, line, "payload type must be 96 ..= 127"))?,
                    );
                }
                "c" => {
                    let parts: Vec<&str> = value.split_whitespace().collect();
                    if parts.len() != 3 || parts[0] != "IN" {
                        return Err(err(n, line, "expected `c=IN IP4|IP6 <address>`"));
                    }
                    let mut fields = parts[2].split('/');
                    let ip: IpAddr = fields
                        .next()
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| err(n, line, "bad connection address"))?;
                    if (parts[1] == "IP4") != ip.is_ipv4() {
                        return Err(err(n, line, "address family does not match the address"));
                    }
                    if let Some(t) = fields.next() {
                        ttl = t.parse().map_err(|_| err(n, line, "bad TTL"))?;
                    }
                    address = Some(ip);
                }
                "a" => {
                    if let Some(rest) = value.strip_prefix("rtpmap:") {
                        let enc = rest.split_whitespace().nth(1).unwrap_or_default();
                        if !enc.eq_ignore_ascii_case("raw/90000") {
                            return Err(err(n, line, "expected encoding raw/90000"));
                        }
                        raw_seen = true;
                    } else if let Some(rest) = value.strip_prefix("fmtp:") {
                        fmtp = Some((n, line, rest.split_once(' ').map_or("", |(_, p)| p)));
                    } else if let Some(rest) = value.strip_prefix("ts-refclk:") {
                        ref_clock = Some(parse_ref_clock(rest).ok_or_else(|| {
                            err(n, line, "expected ptp=IEEE1588-2008:<GMID>:<domain>, ptp=IEEE1588-2008:traceable or localmac=<MAC>")
                        })?);
                    }
                }
                _ => {}
            }
        }
        let missing = |what: &str| err(0, what, "missing");
        let port = port.ok_or_else(|| missing("m=video"))?;
        let address = address.ok_or_else(|| missing("c="))?;
        if !raw_seen {
            return Err(missing("a=rtpmap:<pt> raw/90000"));
        }
        let (fmtp_line, fmtp_text, params) = fmtp.ok_or_else(|| missing("a=fmtp"))?;
        let (format, pacing) =
            parse_fmtp(params).map_err(|reason| err(fmtp_line, fmtp_text, &reason))?;
        Ok(Self {
            name,
            origin: origin.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            destination: SocketAddr::new(address, port),
            ttl,
            payload_type: payload_type.unwrap_or(96),
            format,
            pacing,
            ref_clock: ref_clock.unwrap_or(RefClock::Ptp { grandmaster: None }),
        })
    }
}

pub(crate) fn parse_ref_clock(text: &str) -> Option<RefClock> {
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

fn parse_fmtp(params: &str) -> Result<(VideoFormat, PacketPacing), String> {
    let mut sampling = None;
    let (mut width, mut height, mut depth, mut rate) = (None, None, None, None);
    let mut pacing = PacketPacing::Narrow;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("{key}={v} is not a number"))
        };
        match key {
            "sampling" => sampling = Some(value.to_string()),
            "width" => width = Some(number(value)?),
            "height" => height = Some(number(value)?),
            "depth" => depth = Some(number(value)?),
            "exactframerate" => {
                let (num, den) = match value.split_once('/') {
                    Some((a, b)) => (number(a)?, number(b)?),
                    None => (number(value)?, 1),
                };
                rate = Some(Rational::new(num, den).map_err(|e| e.to_string())?);
            }
            "PM" if value != "2110GPM" => {
                return Err(format!(
                    "PM={value}: only general packing mode (2110GPM) is supported"
                ));
            }
            "TP" => {
                pacing = match value {
                    "2110TPN" => PacketPacing::Narrow,
                    "2110TPNL" | "2110TPW" => PacketPacing::Wide,
                    _ => return Err(format!("TP={value}: expected 2110TPN, 2110TPNL or 2110TPW")),
                }
            }
            "interlace" | "segmented" => {
                return Err(format!("{key}: only progressive video is supported"));
            }
            _ => {}
        }
    }
    let need = |v: Option<u32>, what: &str| v.ok_or_else(|| format!("{what}= is missing"));
    let sampling_name = sampling.ok_or("sampling= is missing")?;
    let depth = need(depth, "depth")?;
    let s = u8::try_from(depth)
        .ok()
        .and_then(|d| Sampling::from_sdp(&sampling_name, d))
        .ok_or_else(|| {
            format!("sampling={sampling_name} depth={depth} is not supported (YCbCr-4:2:2 8 or 10, RGB 8)")
        })?;
    let format = VideoFormat::new(
        s,
        need(width, "width")?,
        need(height, "height")?,
        rate.ok_or("exactframerate= is missing")?,
    )
    .map_err(|e| e.to_string())?;
    Ok((format, pacing))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn session() -> SdpSession {
        SdpSession {
            name: "streamlib".into(),
            origin: "192.168.1.2".parse().unwrap(),
            destination: "239.100.9.10:5004".parse().unwrap(),
            ttl: 16,
            payload_type: 96,
            format: VideoFormat::new(Sampling::YCbCr422Depth10, 1920, 1080, Rational::FPS_29_97)
                .unwrap(),
            pacing: PacketPacing::Narrow,
            ref_clock: RefClock::Ptp {
                grandmaster: Some(([0x39, 0xa7, 0x94, 0xff, 0xfe, 0x07, 0xcb, 0xd0], 127)),
            },
        }
    }

    #[test]
    fn round_trips() {
        let s = session();
        let text = s.to_sdp();
        assert!(text.contains("c=IN IP4 239.100.9.10/16\r\n"), "{text}");
        assert!(
            text.contains("exactframerate=30000/1001; depth=10;"),
            "{text}"
        );
        assert!(
            text.contains("a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:127"),
            "{text}"
        );
        assert!(text.contains("a=mediaclk:direct=0"), "{text}");
        assert_eq!(SdpSession::parse(&text).unwrap(), s);

        let v6 = SdpSession {
            destination: "[ff15::9]:6000".parse().unwrap(),
            ttl: 0,
            format: VideoFormat::new(Sampling::RgbDepth8, 640, 480, Rational::fps(30)).unwrap(),
            pacing: PacketPacing::Wide,
            ref_clock: RefClock::LocalMac([0xca, 0xfe, 1, 2, 3, 4]),
            ..session()
        };
        let text = v6.to_sdp();
        assert!(text.contains("exactframerate=30;"), "{text}");
        assert!(text.contains("localmac=CA-FE-01-02-03-04"), "{text}");
        assert_eq!(SdpSession::parse(&text).unwrap(), v6);
    }

    #[test]
    fn errors_name_the_line() {
        let text = session().to_sdp().replace("depth=10", "depth=12");
        let err = SdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 8 `a=fmtp:96"), "{err}");
        assert!(err.contains("depth=12 is not supported"), "{err}");

        let text = session().to_sdp().replace("RTP/AVP 96", "RTP/AVP 33");
        let err = SdpSession::parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("SDP line 5 `m=video 5004 RTP/AVP 33`"),
            "{err}"
        );

        let text = session()
            .to_sdp()
            .replace("c=IN IP4 239.100.9.10/16\r\n", "");
        let err = SdpSession::parse(&text).unwrap_err().to_string();
        assert_eq!(err, "SDP line 0 `c=`: missing");

        // A peer's SDP cannot make the receiver allocate 4 GiB frames.
        let text = session()
            .to_sdp()
            .replace("width=1920; height=1080", "width=32766; height=32767");
        let err = SdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 8 `a=fmtp:96"), "{err}");
        assert!(err.contains("over the frame limits"), "{err}");

        let text = session().to_sdp().replace(":127", ":x");
        let err = SdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 9 `a=ts-refclk"), "{err}");
    }
}
