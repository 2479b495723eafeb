//! SDP (RFC 8866) for one ST 2110-20 video stream, as ST 2110-20 / -10 / -21 describe it:
//! the session lines are [`crate::sdp`]'s; this adds `a=rtpmap` (`raw/90000`) and the
//! `a=fmtp` of RFC 4175 / ST 2110-20.
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

use std::net::{IpAddr, SocketAddr};

use streamlib_clock::Rational;

use crate::sdp::{Medium, RefClock, SdpLine, Session, media_session, missing};
use crate::{NetError, PacketPacing, Sampling, VideoFormat};

const VIDEO: Medium = Medium {
    name: "video",
    only_one: true,
};

media_session! {
    /// Everything a receiver needs to know about one ST 2110-20 stream.
    pub struct SdpSession {
        /// Sampling, size and rate.
        pub format: VideoFormat,
        /// Sender type (`TP=`).
        pub pacing: PacketPacing,
    }
}

fn rate_text(fps: Rational) -> String {
    if fps.den == 1 {
        fps.num.to_string()
    } else {
        format!("{}/{}", fps.num, fps.den)
    }
}

impl SdpSession {
    /// `format` sent from `origin` to `destination`, as streamlib sends it unless told
    /// otherwise: session `streamlib`, payload type 96, TTL 16, narrow pacing, timestamps
    /// traceable to PTP.
    pub fn new(origin: IpAddr, destination: SocketAddr, format: VideoFormat) -> Self {
        Self {
            name: "streamlib".into(),
            origin,
            destination,
            ttl: 16,
            payload_type: 96,
            format,
            pacing: PacketPacing::Narrow,
            ref_clock: RefClock::Ptp { grandmaster: None },
        }
    }

    /// The SDP text (CRLF line ends, as RFC 8866 asks).
    pub fn to_sdp(&self) -> String {
        let (pt, f) = (self.payload_type, &self.format);
        self.session().to_sdp(
            VIDEO.name,
            &[
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
            ],
        )
    }

    /// Parses an SDP with one ST 2110-20 video media section (other media are skipped).
    /// Errors name the offending line; lines streamlib does not need are ignored.
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let mut raw_seen = false;
        let mut fmtp = None;
        let session = Session::parse(text, VIDEO, |line, value| {
            if let Some(rest) = value.strip_prefix("rtpmap:") {
                let enc = rest.split_whitespace().nth(1).unwrap_or_default();
                if !enc.eq_ignore_ascii_case("raw/90000") {
                    return Err(line.error("expected encoding raw/90000"));
                }
                raw_seen = true;
            } else if let Some(rest) = value.strip_prefix("fmtp:") {
                fmtp = Some((line, rest.split_once(' ').map_or("", |(_, p)| p)));
            }
            Ok(())
        })?;
        if !raw_seen {
            return Err(missing("a=rtpmap:<pt> raw/90000"));
        }
        let (line, params): (SdpLine<'_>, &str) = fmtp.ok_or_else(|| missing("a=fmtp"))?;
        let (format, pacing) = parse_fmtp(params).map_err(|reason| line.error(&reason))?;
        Ok(Self::from_session(session, format, pacing))
    }
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
        let f = VideoFormat::new(Sampling::YCbCr422Depth10, 1920, 1080, Rational::FPS_29_97);
        let gm = [0x39, 0xa7, 0x94, 0xff, 0xfe, 0x07, 0xcb, 0xd0];
        SdpSession {
            ref_clock: RefClock::Ptp {
                grandmaster: Some((gm, 127)),
            },
            ..SdpSession::new(
                [192, 168, 1, 2].into(),
                ([239, 100, 9, 10], 5004).into(),
                f.unwrap(),
            )
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
        let cases = [
            (
                "depth=10",
                "depth=12",
                "SDP line 8 `a=fmtp:96",
                "depth=12 is not supported",
            ),
            (
                "RTP/AVP 96",
                "RTP/AVP 33",
                "SDP line 5 `m=video 5004 RTP/AVP 33`",
                "",
            ),
            (
                "c=IN IP4 239.100.9.10/16\r\n",
                "",
                "SDP line 0 `c=`: missing",
                "",
            ),
            // A peer's SDP cannot make the receiver allocate 4 GiB frames.
            (
                "width=1920; height=1080",
                "width=32766; height=32767",
                "SDP line 8 `a=fmtp:96",
                "over the frame limits",
            ),
            (":127", ":x", "SDP line 9 `a=ts-refclk", ""),
        ];
        crate::sdp::assert_refusals(&session().to_sdp(), SdpSession::parse, &cases);
    }
}
