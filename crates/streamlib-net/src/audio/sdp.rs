//! SDP (RFC 8866) for one ST 2110-30 / AES67 audio stream: the session lines are
//! [`crate::sdp`]'s; this adds `a=rtpmap` (L16 / L24, rate, channels) and `a=ptime`.
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

use std::net::{IpAddr, SocketAddr};

use super::packetizer::{AudioEncoding, AudioFormat, PacketTime};
use crate::NetError;
use crate::sdp::{Medium, RefClock, Session, media_session, missing};

const AUDIO: Medium = Medium {
    name: "audio",
    only_one: false,
};

media_session! {
    /// Everything a receiver needs to know about one ST 2110-30 stream.
    pub struct AudioSdpSession {
        /// Encoding, channels, rate and packet time.
        pub format: AudioFormat,
    }
}

impl AudioSdpSession {
    /// `format` sent from `origin` to `destination`, as streamlib sends it unless told
    /// otherwise: session `streamlib`, payload type 97, TTL 16, timestamps traceable to PTP.
    pub fn new(origin: IpAddr, destination: SocketAddr, format: AudioFormat) -> Self {
        Self {
            name: "streamlib".into(),
            origin,
            destination,
            ttl: 16,
            payload_type: 97,
            format,
            ref_clock: RefClock::Ptp { grandmaster: None },
        }
    }

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
        let (pt, f) = (self.payload_type, &self.format);
        self.session().to_sdp(
            AUDIO.name,
            &[
                format!(
                    "a=rtpmap:{pt} {}/{}/{}",
                    f.encoding.sdp_name(),
                    f.sample_rate,
                    f.channels
                ),
                format!("a=ptime:{}", f.packet_time.sdp_value()),
            ],
        )
    }

    /// Parses an SDP with one ST 2110-30 audio media section (the first `m=audio`; video
    /// sections are skipped). Errors name the offending line; lines streamlib does not need
    /// are ignored. Without `a=ptime` the packet time is 1 ms; without a channel count in
    /// `rtpmap`, one channel (RFC 4566).
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let mut rtpmap = None;
        let mut packet_time = PacketTime::Ms1;
        let session = Session::parse(text, AUDIO, |line, value| {
            if let Some(rest) = value.strip_prefix("rtpmap:") {
                let encoding = rest.split_whitespace().nth(1).unwrap_or_default();
                let mut fields = encoding.split('/');
                let bad = || line.error("expected `<pt> L24|L16/<rate>[/<channels>]`");
                let enc = fields
                    .next()
                    .and_then(AudioEncoding::from_sdp)
                    .ok_or_else(bad)?;
                let rate: u32 = fields.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
                let channels: u16 = match fields.next() {
                    Some(c) => c.parse().map_err(|_| bad())?,
                    None => 1,
                };
                let format = AudioFormat {
                    encoding: enc,
                    channels,
                    sample_rate: rate,
                    packet_time: PacketTime::Ms1,
                };
                format.check().map_err(|e| line.error(&e.to_string()))?;
                rtpmap = Some((line, format));
            } else if let Some(rest) = value.strip_prefix("ptime:") {
                packet_time = PacketTime::from_sdp(rest)
                    .ok_or_else(|| line.error("packet time must be 1 or 0.125 (ms)"))?;
            }
            Ok(())
        })?;
        let (line, format) =
            rtpmap.ok_or_else(|| missing("a=rtpmap:<pt> L24|L16/48000/<channels>"))?;
        let format = format.with_packet_time(packet_time);
        if format.frames_per_packet() == 0 {
            return Err(line.error("no whole sample fits the packet time"));
        }
        Ok(Self::from_session(session, format))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn session() -> AudioSdpSession {
        let f = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
        let gm = [0x39, 0xa7, 0x94, 0xff, 0xfe, 0x07, 0xcb, 0xd0];
        AudioSdpSession {
            name: "streamlib audio".into(),
            ref_clock: RefClock::Ptp {
                grandmaster: Some((gm, 127)),
            },
            ..AudioSdpSession::new([192, 168, 1, 2].into(), ([239, 100, 9, 11], 5004).into(), f)
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
        let (sampling, fps) = (
            crate::Sampling::YCbCr422Depth10,
            streamlib_clock::Rational::fps(25),
        );
        let format = crate::VideoFormat::new(sampling, 1920, 1080, fps).unwrap();
        let video = crate::SdpSession {
            name: "x".into(),
            ttl: 8,
            ..crate::SdpSession::new([10, 0, 0, 1].into(), ([239, 1, 1, 1], 5000).into(), format)
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
        let cases = [
            (
                "L24/48000/2",
                "L24/44100/2",
                "SDP line 7 `a=rtpmap:97 L24/44100/2`",
                "sample_rate = 44100",
            ),
            ("L24/48000/2", "L20/48000/2", "SDP line 7", ""),
            ("/48000/2", "/48000/9", "SDP line 7", "channels = 9"),
            ("ptime:1", "ptime:4", "SDP line 8 `a=ptime:4`", ""),
            ("RTP/AVP 97", "RTP/AVP 10", "SDP line 5", ""),
            (
                "a=rtpmap:97 L24/48000/2\r\n",
                "",
                "SDP line 0 `a=rtpmap",
                "",
            ),
            ("m=audio", "m=video", "SDP line 0 `m=audio`: missing", ""),
        ];
        crate::sdp::assert_refusals(&session().to_sdp(), AudioSdpSession::parse, &cases);
    }
}
