//! The session thread: WHIP commands in, one str0m session at a time (its UDP socket, ICE,
//! DTLS, SRTP and depacketizer), the decoders, and decoded media out to the handler.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use streamlib_codec::decode::{AudioDecoder, DecodeStats, VideoDecoder};
use streamlib_codec::encode::VideoCodec;
use streamlib_http::axum::http::StatusCode;
use streamlib_ports::{AudioBuffer, VideoFrame};

use super::reply::ReplySender;
use super::{Shared, WebRtcSrcConfig, add};

/// A request from the HTTP routes (or the handler).
pub(crate) enum Command {
    /// `POST /whip`.
    Offer {
        sdp: String,
        reply: ReplySender<Answer>,
    },
    /// `DELETE /whip/<id>`.
    Delete {
        id: String,
        reply: ReplySender<Answer>,
    },
    /// The source stops.
    Shutdown,
}

/// The session thread's answer to a route.
pub(crate) enum Answer {
    /// A session started: its id (for `Location`) and the SDP answer.
    Created { id: String, sdp: String },
    /// The session was ended.
    Deleted,
    /// Refused, with the status and a message for the publisher.
    Refused { status: StatusCode, message: String },
}

/// The most media sections an offer may carry (a camera and a microphone need two).
const MAX_MEDIA: usize = 8;
/// How long the thread waits on its socket before it looks at commands again.
const COMMAND_POLL: Duration = Duration::from_millis(20);
/// Keyframe requests to one publisher at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(300);
/// A connected publisher silent this long (no packet at all) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// Largest datagram read.
const DATAGRAM: usize = 2048;

/// The IP the media socket binds and announces: the HTTP listener's, or for an unspecified
/// one the address this host reaches the network from (loopback when it has no route).
pub(crate) fn media_ip(http_ip: IpAddr) -> IpAddr {
    if !http_ip.is_unspecified() {
        return http_ip;
    }
    // A UDP "connect" sends nothing; it only asks the kernel for a route and source address.
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Everything the thread owns.
pub(crate) struct SessionThread {
    pub(crate) config: WebRtcSrcConfig,
    pub(crate) media_ip: IpAddr,
    pub(crate) pool_max: usize,
    pub(crate) commands: Receiver<Command>,
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

impl SessionThread {
    pub(crate) fn run(self) {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let ids = RandomState::new();
        let mut serial = 0u64;
        let mut session: Option<Session> = None;
        // The output size, fixed by the configuration or by the first picture.
        let mut size = self.config.size;
        let mut buf = vec![0u8; DATAGRAM];
        loop {
            let command = if session.is_some() {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv_timeout(Duration::from_millis(200)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            match command {
                Some(Command::Shutdown) => {
                    if let Some(s) = session.take() {
                        self.end(s, &Ended::Failed("the source stopped".to_owned()));
                    }
                    return;
                }
                Some(Command::Delete { id, reply }) => match &session {
                    Some(s) if s.id == id => {
                        if let Some(s) = session.take() {
                            self.end(s, &Ended::Deleted);
                        }
                        reply.send(Answer::Deleted);
                    }
                    _ => reply.send(Answer::Refused {
                        status: StatusCode::NOT_FOUND,
                        message: "no such WHIP session (it ended, or never existed)".to_owned(),
                    }),
                },
                Some(Command::Offer { sdp, reply }) => {
                    if session.is_some() {
                        add(&self.shared.refused_busy, 1);
                        reply.send(Answer::Refused {
                            status: StatusCode::CONFLICT,
                            message: "webrtcsrc takes one publisher at a time and one is live; \
                                      try again once it has ended"
                                .to_owned(),
                        });
                    } else {
                        serial += 1;
                        let mut hasher = ids.build_hasher();
                        hasher.write_u64(serial);
                        let id = format!("{:016x}", hasher.finish());
                        let started = catch_unwind(AssertUnwindSafe(|| {
                            Session::start(&self, &crypto, &sdp, id, size)
                        }))
                        .unwrap_or_else(|_| {
                            Err("the offer made the WebRTC stack fail; it is refused".to_owned())
                        });
                        match started {
                            Ok((s, answer)) => {
                                add(&self.shared.sessions, 1);
                                self.shared.live.store(true, Ordering::Relaxed);
                                tracing::info!("webrtcsrc: publisher session {} started", s.id);
                                reply.send(Answer::Created {
                                    id: s.id.clone(),
                                    sdp: answer,
                                });
                                session = Some(s);
                            }
                            Err(message) => {
                                add(&self.shared.refused_bad, 1);
                                tracing::warn!("webrtcsrc: offer refused: {message}");
                                reply.send(Answer::Refused {
                                    status: StatusCode::BAD_REQUEST,
                                    message,
                                });
                            }
                        }
                    }
                }
                None => {}
            }
            if let Some(s) = session.as_mut() {
                let step = catch_unwind(AssertUnwindSafe(|| s.step(&self, &mut buf)))
                    .unwrap_or_else(|_| {
                        Some(Ended::Failed(
                            "the WebRTC stack failed on a packet".to_owned(),
                        ))
                    });
                if size.is_none() {
                    size = s.output_size();
                }
                if let Some(ended) = step
                    && let Some(s) = session.take()
                {
                    self.end(s, &ended);
                }
            }
        }
    }

    fn end(&self, mut session: Session, why: &Ended) {
        session.rtc.disconnect();
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

/// What can be refused before the WebRTC stack sees the offer.
fn precheck(sdp: &str) -> Result<(), String> {
    let media = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if media == 0 {
        return Err("the offer has no media section (m=); is it an SDP offer?".to_owned());
    }
    if media > MAX_MEDIA {
        return Err(format!(
            "the offer has {media} media sections; webrtcsrc takes at most {MAX_MEDIA}"
        ));
    }
    let lower = sdp.to_ascii_lowercase();
    let decodable = lower
        .lines()
        .filter(|l| l.starts_with("a=rtpmap:"))
        .any(|l| RTPMAPS.iter().any(|c| l.contains(c)));
    if !decodable {
        return Err(
            "the offer has no codec webrtcsrc decodes (VP8 or H.264 video, Opus audio)".to_owned(),
        );
    }
    Ok(())
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
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    started: Instant,
    connected: bool,
    last_packet: Instant,
    last_pli: Option<Instant>,
    video: Option<Video>,
    audio: Option<AudioDecoder>,
    audio_stats: DecodeStats,
    /// The size decoders scale to (`None` until the first picture fixes it).
    size: Option<(u32, u32)>,
}

impl Session {
    /// Checks and accepts `sdp`, binding the media socket: the session and its SDP answer.
    fn start(
        thread: &SessionThread,
        crypto: &Arc<str0m::crypto::CryptoProvider>,
        sdp: &str,
        id: String,
        size: Option<(u32, u32)>,
    ) -> Result<(Self, String), String> {
        precheck(sdp)?;
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| format!("the SDP offer is malformed: {e}"))?;
        let now = Instant::now();
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::clone(crypto))
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        let socket = UdpSocket::bind((thread.media_ip, 0))
            .map_err(|e| format!("webrtcsrc could not bind a media socket: {e}"))?;
        let local = socket
            .local_addr()
            .map_err(|e| format!("webrtcsrc could not bind a media socket: {e}"))?;
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| format!("webrtcsrc could not make an ICE candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("the SDP offer cannot be accepted: {e}"))?;
        Ok((
            Self {
                id,
                rtc,
                socket,
                local,
                started: now,
                connected: false,
                last_packet: now,
                last_pli: None,
                video: None,
                audio: None,
                audio_stats: DecodeStats::default(),
                size,
            },
            answer.to_sdp_string(),
        ))
    }

    fn output_size(&self) -> Option<(u32, u32)> {
        self.video.as_ref().and_then(|v| v.decoder.output_size())
    }

    /// Drains the session's output, then waits (at most [`COMMAND_POLL`]) for one datagram
    /// or its next timeout and feeds it. `Some` when the session is over.
    fn step(&mut self, thread: &SessionThread, buf: &mut [u8]) -> Option<Ended> {
        let deadline = loop {
            let output = match self.rtc.poll_output() {
                Ok(output) => output,
                Err(e) => return Some(Ended::Failed(format!("WebRTC failed: {e}"))),
            };
            match output {
                Output::Timeout(at) => break at,
                Output::Transmit(t) => {
                    // A lost datagram is WebRTC's everyday business; nothing to do here.
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(event) => {
                    if let Some(ended) = self.event(event, thread) {
                        return Some(ended);
                    }
                }
            }
        };
        if !self.rtc.is_alive() {
            return Some(Ended::Disconnected);
        }
        let now = Instant::now();
        if !self.connected && now.duration_since(self.started) > thread.config.connect_timeout {
            return Some(Ended::NeverConnected);
        }
        if self.connected && now.duration_since(self.last_packet) > SILENCE_LIMIT {
            return Some(Ended::Silent);
        }
        let wait = deadline
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), COMMAND_POLL);
        if self.socket.set_read_timeout(Some(wait)).is_err() {
            return Some(Ended::Failed("the media socket failed".to_owned()));
        }
        let input = match self.socket.recv_from(buf) {
            Ok((n, source)) => {
                let Ok(contents) = buf[..n].try_into() else {
                    // Not STUN, DTLS or (S)RTP: ignore it.
                    return None;
                };
                self.last_packet = Instant::now();
                Input::Receive(
                    self.last_packet,
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    },
                )
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Input::Timeout(Instant::now())
            }
            // ICMP port unreachable from an earlier send and the like: keep going.
            Err(_) => Input::Timeout(Instant::now()),
        };
        match self.rtc.handle_input(input) {
            Ok(()) => None,
            // A datagram the session refuses (not for it, damaged): ignored.
            Err(e) => {
                tracing::debug!("webrtcsrc: input refused: {e}");
                None
            }
        }
    }

    fn event(&mut self, event: Event, thread: &SessionThread) -> Option<Ended> {
        match event {
            Event::Connected => {
                self.connected = true;
                tracing::info!("webrtcsrc: publisher session {} connected", self.id);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Some(Ended::Disconnected);
            }
            Event::MediaData(data) => match data.params.spec().codec {
                Codec::Vp8 | Codec::H264 => self.video_data(&data, thread),
                Codec::Opus => self.audio_data(&data, thread),
                _ => {}
            },
            _ => {}
        }
        None
    }

    /// Asks the publisher for a keyframe (PLI), at most every [`PLI_INTERVAL`].
    fn request_keyframe(&mut self, mid: Mid, data_rid: Option<str0m::media::Rid>, shared: &Shared) {
        let now = Instant::now();
        if self
            .last_pli
            .is_some_and(|t| now.duration_since(t) < PLI_INTERVAL)
        {
            return;
        }
        if let Some(mut writer) = self.rtc.writer(mid)
            && writer
                .request_keyframe(data_rid, KeyframeRequestKind::Pli)
                .is_ok()
        {
            self.last_pli = Some(now);
            add(&shared.keyframe_requests, 1);
        }
    }

    fn video_data(&mut self, data: &MediaData, thread: &SessionThread) {
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
                    decoder.set_output_size(self.size.or(self.output_size()));
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
            self.request_keyframe(data.mid, data.rid, shared);
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
            self.request_keyframe(data.mid, data.rid, shared);
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
        self.audio_stats = decoder.stats();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_without_media_or_codecs_or_with_too_many_sections_are_refused_by_name() {
        let err = |sdp: &str| precheck(sdp).err().unwrap_or_default();
        assert!(err("hello").contains("no media section"));
        assert!(
            err("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 AV1/90000\r\n")
                .contains("no codec webrtcsrc decodes")
        );
        let many = "m=audio 9 x 111\r\na=rtpmap:111 opus/48000/2\r\n".repeat(9);
        assert!(err(&many).contains("at most 8"));
        assert_eq!(
            precheck("m=video 9 x 96\r\na=rtpmap:96 VP8/90000\r\n"),
            Ok(())
        );
    }

    #[test]
    fn an_unspecified_listen_address_announces_a_real_one() {
        assert!(!media_ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).is_unspecified());
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(media_ip(lo), lo);
    }
}
