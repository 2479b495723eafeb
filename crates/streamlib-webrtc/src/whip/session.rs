//! The session thread: WHIP requests and datagrams in (one inbox), one str0m peer at a time
//! (on the shared plumbing of [`crate::rtc`]: the source's UDP sockets, the peer factory,
//! signalling), the decoders, and decoded media out to the handler.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, Mid, Rid};
use str0m::{Event, IceConnectionState, Rtc};
use streamlib_codec::decode::{AudioDecoder, DecodeStats, VideoDecoder};
use streamlib_codec::encode::VideoCodec;
use streamlib_http::axum::http::StatusCode;
use streamlib_ports::{AudioBuffer, VideoFrame};

use super::{Shared, WebRtcSrcConfig, add};
use crate::rtc::net::{Datagram, UdpSockets};
use crate::rtc::peer::{Peer, PeerFactory, check_offer, trickled_candidates};
use crate::rtc::session_id::new_session_id;
use crate::rtc::signal::{SignalReply, SignalRequest};

/// What reaches the session thread.
pub(crate) enum Inbox {
    /// A WHIP request from the HTTP routes.
    Signal(SignalRequest),
    /// A datagram from one of the source's UDP sockets.
    Datagram(Datagram),
    /// The source stops.
    Shutdown,
}

/// Keyframe requests to one publisher at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(300);
/// A connected publisher silent this long (no packet at all) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// Everything the thread owns.
pub(crate) struct SessionThread {
    pub(crate) config: WebRtcSrcConfig,
    pub(crate) pool_max: usize,
    pub(crate) inbox: Receiver<Inbox>,
    pub(crate) sockets: UdpSockets,
    pub(crate) video: SyncSender<VideoFrame>,
    pub(crate) audio: SyncSender<AudioBuffer>,
    pub(crate) shared: Arc<Shared>,
}

/// Why a session ended.
enum Ended {
    Deleted,
    Disconnected,
    NeverConnected,
    Silent,
    Failed(String),
}

impl Ended {
    fn describe(&self) -> String {
        match self {
            Ended::Deleted => "the publisher ended it (DELETE)".to_owned(),
            Ended::Disconnected => "ICE disconnected (the publisher went away)".to_owned(),
            Ended::NeverConnected => "the publisher never connected".to_owned(),
            Ended::Silent => format!("no packet for {} s", SILENCE_LIMIT.as_secs()),
            Ended::Failed(reason) => reason.clone(),
        }
    }
}

/// How long the thread sleeps with no session (it wakes for any request anyway).
const IDLE_WAIT: Duration = Duration::from_secs(1);

impl SessionThread {
    pub(crate) fn run(self) {
        let factory = PeerFactory::new();
        let mut session: Option<Session> = None;
        // The output size, fixed by the configuration or by the first picture.
        let mut size = self.config.size;
        loop {
            let wait = session.as_ref().map_or(IDLE_WAIT, |s| {
                s.peer
                    .next_timeout
                    .saturating_duration_since(Instant::now())
                    .min(IDLE_WAIT)
            });
            match self.inbox.recv_timeout(wait) {
                Ok(Inbox::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    if let Some(s) = session.take() {
                        self.end(s, &Ended::Failed("the source stopped".to_owned()));
                    }
                    return;
                }
                Ok(Inbox::Signal(request)) => {
                    self.signal(request, &mut session, &factory, size);
                }
                Ok(Inbox::Datagram(datagram)) => {
                    // Datagrams of no session (a publisher gone, a stray sender) are dropped.
                    if let Some(s) = session.as_mut() {
                        // A datagram is hostile input: a panic in the stack on one ends that
                        // session, not the endpoint.
                        match catch_unwind(AssertUnwindSafe(|| s.peer.receive(&datagram))) {
                            Ok(Some(Ok(()))) => s.last_packet = datagram.at,
                            Ok(Some(Err(e))) => {
                                s.last_packet = datagram.at;
                                tracing::debug!("webrtcsrc: datagram refused: {e}");
                            }
                            Ok(None) => {}
                            Err(_) => {
                                if let Some(s) = session.take() {
                                    let why = "the WebRTC stack failed on a datagram";
                                    self.end(s, &Ended::Failed(why.to_owned()));
                                }
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(s) = session.as_mut() {
                let ended =
                    catch_unwind(AssertUnwindSafe(|| s.drive(&self))).unwrap_or_else(|_| {
                        Some(Ended::Failed(
                            "the WebRTC stack or a decoder failed".to_owned(),
                        ))
                    });
                if size.is_none() {
                    size = s.media.size;
                }
                if let Some(ended) = ended
                    && let Some(s) = session.take()
                {
                    self.end(s, &ended);
                }
            }
        }
    }

    /// Answers one WHIP request.
    fn signal(
        &self,
        request: SignalRequest,
        session: &mut Option<Session>,
        factory: &PeerFactory,
        size: Option<(u32, u32)>,
    ) {
        let not_found = || {
            SignalReply::refused(
                StatusCode::NOT_FOUND,
                "no such WHIP session (it ended, or never existed)",
            )
        };
        match request {
            SignalRequest::Offer { sdp, reply } => {
                let answer = if session.is_some() {
                    add(&self.shared.refused_busy, 1);
                    SignalReply::refused(
                        StatusCode::CONFLICT,
                        "webrtcsrc takes one publisher at a time and one is live; \
                         try again once it has ended",
                    )
                } else {
                    match self.accept(&sdp, factory, size) {
                        Ok((s, answer)) => {
                            add(&self.shared.sessions, 1);
                            self.shared.live.store(true, Ordering::Relaxed);
                            tracing::info!("webrtcsrc: publisher session {} started", s.id);
                            let created = SignalReply::Created {
                                session: s.id.clone(),
                                answer,
                            };
                            *session = Some(s);
                            created
                        }
                        Err(message) => {
                            add(&self.shared.refused_bad, 1);
                            tracing::warn!("webrtcsrc: offer refused: {message}");
                            SignalReply::refused(StatusCode::BAD_REQUEST, message)
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            SignalRequest::Trickle {
                session: id,
                fragment,
                reply,
            } => {
                let answer = match session.as_mut() {
                    Some(s) if s.id == id => match trickled_candidates(&fragment) {
                        Ok(candidates) => {
                            for candidate in candidates {
                                s.peer.rtc.add_remote_candidate(candidate);
                            }
                            SignalReply::Done
                        }
                        Err(message) => SignalReply::refused(StatusCode::BAD_REQUEST, message),
                    },
                    _ => not_found(),
                };
                let _ = reply.send(answer);
            }
            SignalRequest::End { session: id, reply } => {
                let answer = match session.take() {
                    Some(s) if s.id == id => {
                        self.end(s, &Ended::Deleted);
                        SignalReply::Done
                    }
                    other => {
                        *session = other;
                        not_found()
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// Checks and accepts an offer: the session and its SDP answer, or the reason it is
    /// refused.
    fn accept(
        &self,
        sdp: &str,
        factory: &PeerFactory,
        size: Option<(u32, u32)>,
    ) -> Result<(Session, String), String> {
        check_offer(sdp)?;
        check_codecs(sdp)?;
        let config = factory
            .config()
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            .enable_opus(true, false);
        let (peer, answer) = PeerFactory::answer(config, sdp, self.sockets.candidates())?;
        let now = Instant::now();
        Ok((
            Session {
                id: new_session_id(),
                peer,
                started: now,
                connected: false,
                last_packet: now,
                media: Media {
                    last_pli: None,
                    video: None,
                    audio: None,
                    size,
                },
            },
            answer,
        ))
    }

    fn end(&self, mut session: Session, why: &Ended) {
        session.peer.rtc.disconnect();
        tracing::info!(
            "webrtcsrc: publisher session {} ended: {}",
            session.id,
            why.describe()
        );
        add(&self.shared.sessions_ended, 1);
        self.shared.live.store(false, Ordering::Relaxed);
    }
}

/// Codecs webrtcsrc decodes, as they appear in `a=rtpmap` lines.
const RTPMAPS: [&str; 3] = [" vp8/90000", " h264/90000", " opus/48000"];

/// Refuses an offer with nothing webrtcsrc can decode before a peer is built for it.
fn check_codecs(sdp: &str) -> Result<(), String> {
    let decodable = sdp.lines().filter(|l| l.starts_with("a=rtpmap:")).any(|l| {
        let l = l.to_ascii_lowercase();
        RTPMAPS.iter().any(|c| l.contains(c))
    });
    if decodable {
        Ok(())
    } else {
        Err("the offer has no codec webrtcsrc decodes (VP8 or H.264 video, Opus audio)".to_owned())
    }
}

/// A decoder for one incoming video codec.
struct Video {
    codec: Codec,
    decoder: VideoDecoder,
    /// Decoding waits for a keyframe (at start, after a loss or a decode error).
    need_keyframe: bool,
    last_stats: DecodeStats,
}

/// One publisher's session.
struct Session {
    id: String,
    peer: Peer,
    started: Instant,
    connected: bool,
    last_packet: Instant,
    media: Media,
}

/// A session's decoders, apart from its peer so that events can reach them while the peer
/// is being driven.
struct Media {
    last_pli: Option<Instant>,
    video: Option<Video>,
    audio: Option<AudioDecoder>,
    /// The size decoders scale to (`None` until the first picture fixes it).
    size: Option<(u32, u32)>,
}

impl Session {
    /// Moves the peer's time on, drains its output (events to the decoders) and checks the
    /// session's deadlines. `Some` when the session is over.
    fn drive(&mut self, thread: &SessionThread) -> Option<Ended> {
        let now = Instant::now();
        if let Err(e) = self.peer.advance(now) {
            return Some(Ended::Failed(format!("WebRTC failed: {e}")));
        }
        let (media, connected) = (&mut self.media, &mut self.connected);
        let mut ended = None;
        let id = &self.id;
        let driven = self.peer.drive(&thread.sockets, |rtc, event| match event {
            Event::Connected => {
                *connected = true;
                tracing::info!("webrtcsrc: publisher session {id} connected");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                ended = Some(Ended::Disconnected);
            }
            Event::MediaData(data) => media.data(rtc, &data, thread),
            _ => {}
        });
        if let Err(e) = driven {
            return Some(Ended::Failed(format!("WebRTC failed: {e}")));
        }
        if ended.is_some() {
            return ended;
        }
        if !self.peer.rtc.is_alive() {
            return Some(Ended::Disconnected);
        }
        if !self.connected && now.duration_since(self.started) > thread.config.connect_timeout {
            return Some(Ended::NeverConnected);
        }
        if self.connected && now.saturating_duration_since(self.last_packet) > SILENCE_LIMIT {
            return Some(Ended::Silent);
        }
        None
    }
}

impl Media {
    fn data(&mut self, rtc: &mut Rtc, data: &MediaData, thread: &SessionThread) {
        match data.params.spec().codec {
            Codec::Vp8 | Codec::H264 => self.video_data(rtc, data, thread),
            Codec::Opus => self.audio_data(data, thread),
            _ => {}
        }
    }

    /// Asks the publisher for a keyframe (PLI), at most every [`PLI_INTERVAL`].
    fn request_keyframe(&mut self, rtc: &mut Rtc, mid: Mid, rid: Option<Rid>, shared: &Shared) {
        let now = Instant::now();
        if self
            .last_pli
            .is_some_and(|t| now.duration_since(t) < PLI_INTERVAL)
        {
            return;
        }
        if let Some(mut writer) = rtc.writer(mid)
            && writer
                .request_keyframe(rid, KeyframeRequestKind::Pli)
                .is_ok()
        {
            self.last_pli = Some(now);
            add(&shared.keyframe_requests, 1);
        }
    }

    fn video_data(&mut self, rtc: &mut Rtc, data: &MediaData, thread: &SessionThread) {
        let shared = &*thread.shared;
        let codec = data.params.spec().codec;
        if self.video.as_ref().is_none_or(|v| v.codec != codec) {
            let ours = if codec == Codec::H264 {
                VideoCodec::H264
            } else {
                VideoCodec::Vp8
            };
            match VideoDecoder::with_limits(ours, thread.config.limits) {
                Ok(mut decoder) => {
                    decoder.set_output_size(self.size);
                    decoder.set_pool_max(thread.pool_max);
                    *shared.codec.lock().unwrap_or_else(PoisonError::into_inner) =
                        if ours == VideoCodec::H264 {
                            "h264"
                        } else {
                            "vp8"
                        }
                        .to_owned();
                    self.video = Some(Video {
                        codec,
                        decoder,
                        need_keyframe: true,
                        last_stats: DecodeStats::default(),
                    });
                }
                Err(e) => {
                    tracing::warn!("webrtcsrc: {e}");
                    return;
                }
            }
        }
        let Some(video) = self.video.as_mut() else {
            return;
        };
        if !data.contiguous {
            video.need_keyframe = true;
        }
        let keyframe = data.is_keyframe();
        if video.need_keyframe && !keyframe {
            self.request_keyframe(rtc, data.mid, data.rid, shared);
            return;
        }
        video.need_keyframe = false;
        let pts = i64::try_from(data.time.numer()).unwrap_or(0);
        let sender = &thread.video;
        let result =
            video
                .decoder
                .decode(&data.data, pts, &mut |frame| match sender.try_send(frame) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => add(&shared.frames_superseded, 1),
                });
        let stats = video.decoder.stats();
        let before = std::mem::replace(&mut video.last_stats, stats);
        add(&shared.video_frames, stats.decoded - before.decoded);
        add(
            &shared.pool_exhausted,
            stats.pool_exhausted - before.pool_exhausted,
        );
        if let Some((w, h)) = video.decoder.output_size() {
            self.size = Some((w, h));
            let mut text = shared.size.lock().unwrap_or_else(PoisonError::into_inner);
            if text.is_empty() {
                *text = format!("{w}x{h}");
            }
        }
        if let Err(e) = result {
            add(&shared.decode_errors, 1);
            tracing::debug!("webrtcsrc: {e}; asking for a keyframe");
            if let Some(video) = self.video.as_mut() {
                video.need_keyframe = true;
            }
            self.request_keyframe(rtc, data.mid, data.rid, shared);
        }
    }

    fn audio_data(&mut self, data: &MediaData, thread: &SessionThread) {
        let shared = &*thread.shared;
        if self.audio.is_none() {
            match AudioDecoder::new(thread.config.audio_channels) {
                Ok(decoder) => self.audio = Some(decoder),
                Err(e) => {
                    tracing::warn!("webrtcsrc: {e}");
                    return;
                }
            }
        }
        let Some(decoder) = self.audio.as_mut() else {
            return;
        };
        let sender = &thread.audio;
        let result = decoder.decode(&data.data, 0, &mut |buffer| match sender.try_send(buffer) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => add(&shared.audio_dropped, 1),
        });
        if result.is_err() {
            add(&shared.decode_errors, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_without_a_codec_webrtcsrc_decodes_are_refused_by_name() {
        let err = check_codecs("m=video 9 x 96\r\na=rtpmap:96 AV1/90000\r\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("no codec webrtcsrc decodes"), "{err}");
        for ok in [
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:102 H264/90000",
            "a=rtpmap:111 opus/48000/2",
        ] {
            assert_eq!(check_codecs(ok), Ok(()), "{ok}");
        }
    }
}
