//! SDP (RFC 8866) for one ST 2110-30 / AES67 audio stream.
//!
//! ```text
//! v=0
//! o=- 1 1 IN IP4 192.168.1.2
//! s=streamlib
//! t=0 0
//! m=audio 5004 RTP/AVP 97
//! c=IN IP4 239.100.9.11/16
//! a=rtpmap:97 L24/48000/2
//! a=ptime:1
//! a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:127
//! a=mediaclk:direct=0
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::NetError;
use crate::audio::{AudioEncoding, AudioFormat, PacketTime};
use crate::sdp::{RefClock, parse_ref_clock};

/// Everything a receiver needs to know about one ST 2110-30 stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSdpSession {
    /// Session name (`s=`).
    pub name: String,
    /// The sender's address (`o=`).
    pub origin: IpAddr,
    /// Where the stream goes (`c=` and the port of `m=`).
    pub destination: SocketAddr,
    /// Multicast TTL written into `c=` for IPv4 multicast.
    pub ttl: u8,
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding, channels, rate and packet time.
    pub format: AudioFormat,
    /// Timestamp reference clock.
    pub ref_clock: RefClock,
}

impl AudioSdpSession {
    /// The SDP text (CRLF line ends).
    ///
    /// ```
    /// use streamlib_net::*;
    /// let sdp = AudioSdpSession {
    ///     name: "streamlib".into(),
    ///     origin: "127.0.0.1".parse()?,
    ///     destination: "127.0.0.1:5004".parse()?,
    ///     ttl: 0,
    ///     payload_type: 97,
    ///     format: AudioFormat::new(AudioEncoding::L24, 2)?,
    ///     ref_clock: RefClock::Ptp { grandmaster: None },
    /// };
    /// let text = sdp.to_sdp();
    /// assert!(text.contains("m=audio 5004 RTP/AVP 97\r\n"));
    /// assert!(text.contains("a=rtpmap:97 L24/48000/2\r\na=ptime:1\r\n"));
    /// assert_eq!(AudioSdpSession::parse(&text)?, sdp);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_sdp(&self) -> String {
        let ip = |a: IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let dest = self.destination.ip();
        let connection = match dest {
            IpAddr::V4(a) if a.is_multicast() => format!("{a}/{}", self.ttl),
            a => a.to_string(),
        };
        let (pt, f) = (self.payload_type, &self.format);
        let lines = [
            "v=0".to_string(),
            format!("o=- 1 1 IN {} {}", ip(self.origin), self.origin),
            format!("s={}", self.name),
            "t=0 0".to_string(),
            format!("m=audio {} RTP/AVP {pt}", self.destination.port()),
            format!("c=IN {} {connection}", ip(dest)),
            format!(
                "a=rtpmap:{pt} {}/{}/{}",
                f.encoding.sdp_name(),
                f.sample_rate,
                f.channels
            ),
            format!("a=ptime:{}", f.packet_time.sdp_value()),
            format!("a=ts-refclk:{}", self.ref_clock.sdp_value()),
            "a=mediaclk:direct=0".to_string(),
        ];
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        text
    }

    /// Parses an SDP with one ST 2110-30 audio media section (the first `m=audio`; video
    /// sections are skipped). Errors name the offending line; lines streamlib does not need
    /// are ignored. Without `a=ptime` the packet time is 1 ms; without a channel count in
    /// `rtpmap`, one channel (RFC 4566).
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
        let mut session_address = None;
        let mut ttl = 0u8;
        let mut rtpmap = None;
        let mut packet_time = PacketTime::Ms1;
        let mut ref_clock = None;
        // Which section the line belongs to: session, our audio, or another medium.
        #[derive(PartialEq)]
        enum Section {
            Session,
            Audio,
            Other,
        }
        let mut section = Section::Session;
        for (n, raw) in text.lines().enumerate() {
            let n = n + 1;
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(err(n, line, "expected `<type>=<value>`"));
            };
            if kind == "m" {
                let parts: Vec<&str> = value.split_whitespace().collect();
                if parts.first() != Some(&"audio") || port.is_some() {
                    section = Section::Other;
                    continue;
                }
                section = Section::Audio;
                if parts.len() < 4 || parts[2] != "RTP/AVP" {
                    return Err(err(
                        n,
                        line,
                        "expected `m=audio <port> RTP/AVP <payload type>`",
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
                continue;
            }
            if section == Section::Other {
                continue;
            }
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
                    if section == Section::Audio {
                        address = Some(ip);
                    } else {
                        session_address = Some(ip);
                    }
                }
                "a" => {
                    if let Some(rest) = value.strip_prefix("rtpmap:") {
                        let encoding = rest.split_whitespace().nth(1).unwrap_or_default();
                        let mut fields = encoding.split('/');
                        let bad = "expected `<pt> L24|L16/<rate>[/<channels>]`";
                        let enc = fields
                            .next()
                            .and_then(AudioEncoding::from_sdp)
                            .ok_or_else(|| err(n, line, bad))?;
                        let rate: u32 = fields
                            .next()
                            .and_then(|r| r.parse().ok())
                            .ok_or_else(|| err(n, line, bad))?;
                        let channels: u16 = match fields.next() {
                            Some(c) => c.parse().map_err(|_| err(n, line, bad))?,
                            None => 1,
                        };
                        let format = AudioFormat {
                            encoding: enc,
                            channels,
                            sample_rate: rate,
                            packet_time: PacketTime::Ms1,
                        };
                        format.check().map_err(|e| err(n, line, &e.to_string()))?;
                        rtpmap = Some((n, line, format));
                    } else if let Some(rest) = value.strip_prefix("ptime:") {
                        packet_time = PacketTime::from_sdp(rest)
                            .ok_or_else(|| err(n, line, "packet time must be 1 or 0.125 (ms)"))?;
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
        let port = port.ok_or_else(|| missing("m=audio"))?;
        let address = address.or(session_address).ok_or_else(|| missing("c="))?;
        let (map_line, map_text, format) =
            rtpmap.ok_or_else(|| missing("a=rtpmap:<pt> L24|L16/48000/<channels>"))?;
        let format = format.with_packet_time(packet_time);
        if format.frames_per_packet() == 0 {
            return Err(err(
                map_line,
                map_text,
                "no whole sample fits the packet time",
            ));
        }
        Ok(Self {
            name,
            origin: origin.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            destination: SocketAddr::new(address, port),
            ttl,
            payload_type: payload_type.unwrap_or(97),
            format,
            ref_clock: ref_clock.unwrap_or(RefClock::Ptp { grandmaster: None }),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn session() -> AudioSdpSession {
        AudioSdpSession {
            name: "streamlib audio".into(),
            origin: "192.168.1.2".parse().unwrap(),
            destination: "239.100.9.11:5004".parse().unwrap(),
            ttl: 16,
            payload_type: 97,
            format: AudioFormat::new(AudioEncoding::L24, 2).unwrap(),
            ref_clock: RefClock::Ptp {
                grandmaster: Some(([0x39, 0xa7, 0x94, 0xff, 0xfe, 0x07, 0xcb, 0xd0], 127)),
            },
        }
    }

    #[test]
    fn round_trips() {
        let s = session();
        let text = s.to_sdp();
        for line in [
            "m=audio 5004 RTP/AVP 97",
            "c=IN IP4 239.100.9.11/16",
            "a=rtpmap:97 L24/48000/2",
            "a=ptime:1",
            "a=ts-refclk:ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:127",
            "a=mediaclk:direct=0",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "{line} in {text}");
        }
        assert_eq!(AudioSdpSession::parse(&text).unwrap(), s);

        let v6 = AudioSdpSession {
            destination: "[ff15::a]:6000".parse().unwrap(),
            ttl: 0,
            payload_type: 110,
            format: AudioFormat::new(AudioEncoding::L16, 8)
                .unwrap()
                .with_packet_time(PacketTime::Us125),
            ref_clock: RefClock::LocalMac([0xca, 0xfe, 1, 2, 3, 4]),
            ..session()
        };
        let text = v6.to_sdp();
        assert!(text.contains("a=rtpmap:110 L16/48000/8\r\na=ptime:0.125\r\n"));
        assert_eq!(AudioSdpSession::parse(&text).unwrap(), v6);
    }

    #[test]
    fn session_level_connection_and_a_video_section_first() {
        let video = crate::SdpSession {
            name: "x".into(),
            origin: "10.0.0.1".parse().unwrap(),
            destination: "239.1.1.1:5000".parse().unwrap(),
            ttl: 8,
            payload_type: 96,
            format: crate::VideoFormat::new(
                crate::Sampling::YCbCr422Depth10,
                1920,
                1080,
                streamlib_clock::Rational::fps(25),
            )
            .unwrap(),
            pacing: crate::PacketPacing::Narrow,
            ref_clock: RefClock::Ptp { grandmaster: None },
        }
        .to_sdp();
        let text = format!(
            "{video}m=audio 5006 RTP/AVP 98\r\nc=IN IP4 239.1.1.2/8\r\na=rtpmap:98 L24/48000\r\n"
        );
        let a = AudioSdpSession::parse(&text).unwrap();
        assert_eq!(a.destination, "239.1.1.2:5006".parse().unwrap());
        assert_eq!((a.payload_type, a.format.channels), (98, 1));
        assert_eq!(a.format.packet_time, PacketTime::Ms1);
    }

    #[test]
    fn errors_name_the_line() {
        let text = session().to_sdp().replace("L24/48000/2", "L24/44100/2");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("SDP line 7 `a=rtpmap:97 L24/44100/2`"),
            "{err}"
        );
        assert!(err.contains("sample_rate = 44100"), "{err}");

        let text = session().to_sdp().replace("L24/48000/2", "L20/48000/2");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 7"), "{err}");

        let text = session().to_sdp().replace("/48000/2", "/48000/9");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.contains("channels = 9"), "{err}");

        let text = session().to_sdp().replace("ptime:1", "ptime:4");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 8 `a=ptime:4`"), "{err}");

        let text = session().to_sdp().replace("RTP/AVP 97", "RTP/AVP 10");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 5"), "{err}");

        let text = session()
            .to_sdp()
            .replace("a=rtpmap:97 L24/48000/2\r\n", "");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("SDP line 0 `a=rtpmap"), "{err}");

        let text = session().to_sdp().replace("m=audio", "m=video");
        let err = AudioSdpSession::parse(&text).unwrap_err().to_string();
        assert_eq!(err, "SDP line 0 `m=audio`: missing");
    }
}
