//! What an SDP says about who may send a stream: `a=ssrc:` (RFC 5576) and
//! `a=source-filter: incl` (RFC 4570). Receivers use it to accept only their stream.

use std::net::IpAddr;

/// The sender an SDP names, if any: its address and its SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SdpStreamFilter {
    /// The first source of the first `a=source-filter: incl IN IP4|IP6 <dest> <src> …` line
    /// whose destination is the stream's address (or `*`).
    pub source: Option<IpAddr>,
    /// The first `a=ssrc:<id>` line's id.
    pub ssrc: Option<u32>,
}

impl SdpStreamFilter {
    /// Reads the attributes from an SDP's text, for a stream sent to `destination`. Lines it
    /// does not understand (an `excl` filter, a malformed id) are ignored: the filter is then
    /// only looser, never wrong.
    pub fn parse(text: &str, destination: IpAddr) -> Self {
        let mut filter = Self::default();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("a=ssrc:") {
                if filter.ssrc.is_none() {
                    let id = rest.split_whitespace().next().unwrap_or("");
                    filter.ssrc = id.parse().ok();
                }
            } else if let Some(rest) = line.strip_prefix("a=source-filter:")
                && filter.source.is_none()
            {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                if let ["incl", "IN", "IP4" | "IP6", dest, source, ..] = fields.as_slice()
                    && (*dest == "*" || dest.parse::<IpAddr>().ok() == Some(destination))
                {
                    filter.source = source.parse().ok();
                }
            }
        }
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ssrc_and_source_filter() {
        let group: IpAddr = "239.1.1.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let sdp = "v=0\r\nm=video 5004 RTP/AVP 96\r\nc=IN IP4 239.1.1.1/32\r\n\
                   a=source-filter: incl IN IP4 239.1.1.1 192.168.1.10\r\n\
                   a=ssrc:1234 cname:x\r\na=ssrc:99 cname:y\r\n";
        let f = SdpStreamFilter::parse(sdp, group);
        assert_eq!(f.source, Some(IpAddr::from([192, 168, 1, 10])));
        assert_eq!(f.ssrc, Some(1234));
        let other = SdpStreamFilter::parse(sdp, IpAddr::from([239, 9, 9, 9]));
        assert_eq!(other.source, None);
        let excl = SdpStreamFilter::parse(
            "a=source-filter: excl IN IP4 * 10.0.0.1\r\na=ssrc:x\r\n",
            group,
        );
        assert_eq!(excl, SdpStreamFilter::default());
    }
}
