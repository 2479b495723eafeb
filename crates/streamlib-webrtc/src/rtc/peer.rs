//! One str0m peer: built from an SDP offer (checked, bounded, never trusted), then driven
//! sans-IO: datagrams and timeouts in, datagrams and events out.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig, RtcError};

use super::net::{Datagram, UdpSockets};

/// The most media sections an offer may have: a WHEP or WHIP offer has one video and one
/// audio section, a browser's a few more at most; thousands would only cost memory.
pub(crate) const MAX_MEDIA_SECTIONS: usize = 16;
/// The most lines an offer may have (a browser's has 100-200).
pub(crate) const MAX_SDP_LINES: usize = 2_000;
/// The most candidates one trickle fragment may carry.
pub(crate) const MAX_TRICKLED: usize = 64;

/// What every peer of one endpoint shares: the crypto provider and one DTLS certificate
/// (made once: generating a key per viewer would make 100 simultaneous offers slow).
#[derive(Clone)]
pub(crate) struct PeerFactory {
    provider: Arc<CryptoProvider>,
    certificate: Option<DtlsCert>,
}

impl std::fmt::Debug for PeerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerFactory").finish_non_exhaustive()
    }
}

impl PeerFactory {
    /// The provider str0m's features select (OpenSSL here) and a fresh certificate.
    pub fn new() -> Self {
        let provider = str0m::crypto::from_feature_flags();
        let certificate = provider.dtls_provider.generate_certificate();
        Self {
            provider: Arc::new(provider),
            certificate,
        }
    }

    /// A configuration with this factory's crypto, to which the endpoint adds its codecs.
    pub fn config(&self) -> RtcConfig {
        let config = RtcConfig::new().set_crypto_provider(Arc::clone(&self.provider));
        match &self.certificate {
            Some(cert) => config.set_dtls_cert(cert.clone()),
            None => config,
        }
    }

    /// Checks `offer` against the bounds above, builds a peer from `config` with `candidates`
    /// as its local (host) candidates and answers the offer. The error is a message for the
    /// offering client (its `400` body).
    pub fn answer(
        config: RtcConfig,
        offer: &str,
        candidates: &[Candidate],
    ) -> Result<(Peer, String), String> {
        check_offer(offer)?;
        let parsed = SdpOffer::from_sdp_string(offer)
            .map_err(|e| format!("the offer is not valid SDP: {}", clip(&e.to_string())))?;
        // str0m is not expected to panic on any offer, but an offer is hostile input and a
        // panic here would fail the whole endpoint: it becomes a refusal instead.
        let built = catch_unwind(AssertUnwindSafe(move || {
            let mut rtc = config.build(Instant::now());
            for candidate in candidates {
                rtc.add_local_candidate(candidate.clone());
            }
            let answer = rtc.sdp_api().accept_offer(parsed);
            answer.map(|answer| (rtc, answer.to_sdp_string()))
        }));
        match built {
            Ok(Ok((rtc, answer))) => Ok((Peer::new(rtc), answer)),
            Ok(Err(e)) => Err(format!(
                "the offer cannot be answered: {}",
                clip(&e.to_string())
            )),
            Err(_) => {
                Err("the offer could not be processed (the WebRTC stack failed on it)".into())
            }
        }
    }
}

/// Refuses what is not an offer before the parser sees it: no `v=0` start, too many lines or
/// media sections, no media at all, or ICE credentials missing.
pub(crate) fn check_offer(offer: &str) -> Result<(), String> {
    let offer = offer.trim_start_matches('\u{feff}');
    if !offer.trim_start().starts_with("v=0") {
        return Err("the body is not an SDP offer: it must start with `v=0`".into());
    }
    let lines = offer.lines().count();
    if lines > MAX_SDP_LINES {
        return Err(format!(
            "the offer has {lines} lines; at most {MAX_SDP_LINES} are accepted"
        ));
    }
    let sections = offer.lines().filter(|l| l.starts_with("m=")).count();
    if sections == 0 {
        return Err("the offer has no media section (m=video or m=audio)".into());
    }
    if sections > MAX_MEDIA_SECTIONS {
        return Err(format!(
            "the offer has {sections} media sections; at most {MAX_MEDIA_SECTIONS} are accepted"
        ));
    }
    if !offer.lines().any(|l| l.starts_with("a=ice-ufrag:")) {
        return Err("the offer has no ICE credentials (a=ice-ufrag / a=ice-pwd)".into());
    }
    if !offer.lines().any(|l| l.starts_with("a=fingerprint:")) {
        return Err("the offer has no DTLS fingerprint (a=fingerprint)".into());
    }
    Ok(())
}

/// The candidates of a trickle fragment (RFC 8840: `a=candidate:` lines; `a=end-of-candidates`,
/// `a=ice-ufrag`, `a=mid` and the like are allowed and ignored).
pub(crate) fn trickled_candidates(fragment: &str) -> Result<Vec<Candidate>, String> {
    let mut found = Vec::new();
    for line in fragment.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some(attribute) = line.strip_prefix("a=") else {
            if line.starts_with("m=") {
                continue;
            }
            return Err(format!(
                "`{}` is not an SDP attribute line of a trickle fragment",
                clip(line)
            ));
        };
        if !attribute.starts_with("candidate:") {
            continue;
        }
        // A browser's host candidates hide behind mDNS names (`<uuid>.local`) nothing here
        // resolves; its checks reach the host candidates in the answer anyway (the peer is
        // learned from them), so such a candidate is skipped, not refused.
        if attribute
            .split_whitespace()
            .nth(4)
            .is_some_and(|address| address.ends_with(".local"))
        {
            continue;
        }
        if found.len() == MAX_TRICKLED {
            return Err(format!(
                "the fragment has more than {MAX_TRICKLED} candidates"
            ));
        }
        let candidate = Candidate::from_sdp_string(attribute)
            .map_err(|e| format!("`{}` is not a candidate: {e}", clip(line)))?;
        found.push(candidate);
    }
    Ok(found)
}

/// At most 160 characters of `text` (error messages quote input; they must stay small).
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 160;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// A str0m peer and when it next wants a timeout.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The sans-IO state machine.
    pub rtc: Rtc,
    /// When [`Peer::drive`] must run again even if nothing arrives.
    pub next_timeout: Instant,
}

impl Peer {
    fn new(rtc: Rtc) -> Self {
        Self {
            rtc,
            next_timeout: Instant::now(),
        }
    }

    /// Feeds `datagram` if it belongs to this peer (its ICE credentials or its path).
    /// `Some(result)` when it did.
    pub fn receive(&mut self, datagram: &Datagram) -> Option<Result<(), RtcError>> {
        let input = datagram.input()?;
        if !self.rtc.accepts(&input) {
            return None;
        }
        Some(self.rtc.handle_input(input))
    }

    /// Moves time on to `now` when a timeout is due.
    pub fn advance(&mut self, now: Instant) -> Result<(), RtcError> {
        if now >= self.next_timeout {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        Ok(())
    }

    /// Polls until str0m asks for a timeout: sends what it transmits, passes each event on.
    /// A send error is logged, not fatal (the peer's ICE notices a dead path).
    pub fn drive(
        &mut self,
        sockets: &UdpSockets,
        mut on_event: impl FnMut(&mut Rtc, Event),
    ) -> Result<(), RtcError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(());
            }
            match self.rtc.poll_output()? {
                Output::Timeout(at) => {
                    self.next_timeout = at;
                    return Ok(());
                }
                Output::Transmit(transmit) => {
                    if let Err(e) = sockets.send(&transmit) {
                        tracing::debug!("sending to {}: {e}", transmit.destination);
                    }
                }
                Output::Event(event) => on_event(&mut self.rtc, event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_an_offer_is_refused_by_name() {
        for (offer, says) in [
            ("", "v=0"),
            ("hello", "v=0"),
            ("v=0\r\n", "no media"),
            (
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                "ICE credentials",
            ),
            (
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:x\r\n",
                "fingerprint",
            ),
        ] {
            let err = check_offer(offer).err().unwrap_or_default();
            assert!(err.contains(says), "{offer:?}: {err}");
        }
        let many = format!("v=0\r\n{}", "m=audio 9 RTP/AVP 0\r\n".repeat(17));
        let err = check_offer(&many).err().unwrap_or_default();
        assert!(err.contains("17 media sections"), "{err}");
    }

    #[test]
    fn trickled_candidates_are_read_and_bounded() {
        let fragment = "a=ice-ufrag:abcd\r\na=mid:0\r\n\
            a=candidate:1 1 udp 2113929471 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n";
        let found = trickled_candidates(fragment).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].addr().port(), 50000);
        assert!(trickled_candidates("a=candidate:nonsense").is_err());
        assert!(trickled_candidates("hello").is_err());
        let mdns = "a=candidate:1 1 udp 2113929471 0b4d-7f.local 50000 typ host\r\n";
        assert_eq!(trickled_candidates(mdns).map(|c| c.len()), Ok(0));
        let many = "a=candidate:1 1 udp 2113929471 127.0.0.1 50000 typ host\n".repeat(65);
        assert!(trickled_candidates(&many).is_err());
    }
}
