//! The sink's session thread: answers offers, drives every viewer's str0m peer (datagrams,
//! timeouts, events), writes the shared encoder's packets to each viewer and folds the
//! viewers' bandwidth estimates into the encoder's target bitrate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::{Event, IceConnectionState, Rtc};
use streamlib_codec::encode::VideoCodec;
use streamlib_http::axum::http::StatusCode;

use super::encoder::{Media, Work};
use super::stats::{Shared, add, get};
use crate::rtc::net::{Datagram, UdpSockets};
use crate::rtc::peer::{Peer, PeerFactory, trickled_candidates};
use crate::rtc::session_id::new_session_id;
use crate::rtc::signal::{SignalReply, SignalRequest};

/// What the session thread receives.
#[derive(Debug)]
pub(crate) enum Inbox {
    /// An HTTP signalling request.
    Signal(SignalRequest),
    /// A datagram from one of the sockets.
    Datagram(Datagram),
    /// An encoded packet for every connected viewer.
    Media(Media),
    /// Close every session and return.
    Stop,
}

/// The session thread's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionSettings {
    pub codec: VideoCodec,
    pub max_viewers: usize,
    pub start_bitrate_bps: u64,
    pub connect_timeout: Duration,
}

/// One viewer.
struct Viewer {
    peer: Peer,
    created: Instant,
    connected: bool,
    video: Option<(Mid, Pt)>,
    audio: Option<(Mid, Pt)>,
    /// No frame is sent before a keyframe: a decoder cannot start from a delta frame.
    waiting_keyframe: bool,
    estimate_bps: Option<u64>,
}

/// The thread's state.
pub(crate) struct Sessions {
    settings: SessionSettings,
    sockets: UdpSockets,
    factory: PeerFactory,
    shared: Arc<Shared>,
    work: Arc<Work>,
    wake_encoder: Box<dyn Fn() + Send>,
    viewers: HashMap<String, Viewer>,
}

impl Sessions {
    pub fn new(
        settings: SessionSettings,
        sockets: UdpSockets,
        shared: Arc<Shared>,
        work: Arc<Work>,
        wake_encoder: Box<dyn Fn() + Send>,
    ) -> Self {
        Self {
            settings,
            sockets,
            factory: PeerFactory::new(),
            shared,
            work,
            wake_encoder,
            viewers: HashMap::new(),
        }
    }

    /// Runs until [`Inbox::Stop`] or until every sender is gone.
    pub fn run(mut self, inbox: &Receiver<Inbox>) {
        loop {
            let now = Instant::now();
            let next = self
                .viewers
                .values()
                .map(|v| v.peer.next_timeout)
                .min()
                .unwrap_or(now + Duration::from_millis(500))
                .min(now + Duration::from_millis(500));
            match inbox.recv_timeout(next.saturating_duration_since(now)) {
                Ok(Inbox::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Whatever else queued meanwhile, before the timeouts.
            while let Ok(message) = inbox.try_recv() {
                if matches!(message, Inbox::Stop) {
                    self.close_all();
                    return;
                }
                self.handle(message);
            }
            let now = Instant::now();
            let ids: Vec<String> = self
                .viewers
                .iter()
                .filter(|(_, v)| v.peer.next_timeout <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                self.with_viewer(&id, |peer| peer.advance(now));
            }
            self.reap(now);
        }
        self.close_all();
    }

    fn handle(&mut self, message: Inbox) {
        match message {
            Inbox::Signal(request) => self.signal(request),
            Inbox::Datagram(datagram) => self.datagram(&datagram),
            Inbox::Media(media) => self.media(&media),
            Inbox::Stop => {}
        }
    }

    fn signal(&mut self, request: SignalRequest) {
        match request {
            SignalRequest::Offer { sdp, reply } => {
                let _ = reply.send(self.offer(&sdp));
            }
            SignalRequest::Trickle {
                session,
                fragment,
                reply,
            } => {
                let verdict = match trickled_candidates(&fragment) {
                    Err(message) => SignalReply::refused(StatusCode::BAD_REQUEST, message),
                    Ok(candidates) => match self.viewers.get_mut(&session) {
                        None => unknown(&session),
                        Some(viewer) => {
                            for candidate in candidates {
                                viewer.peer.rtc.add_remote_candidate(candidate);
                            }
                            self.with_viewer(&session, |_| Ok(()));
                            SignalReply::Done
                        }
                    },
                };
                let _ = reply.send(verdict);
            }
            SignalRequest::End { session, reply } => {
                let verdict = match self.viewers.get_mut(&session) {
                    None => unknown(&session),
                    Some(viewer) => {
                        viewer.peer.rtc.disconnect();
                        SignalReply::Done
                    }
                };
                self.reap(Instant::now());
                let _ = reply.send(verdict);
            }
        }
    }

    fn offer(&mut self, sdp: &str) -> SignalReply {
        let s = &self.settings;
        if self.viewers.len() >= s.max_viewers {
            add(&self.shared.offers_over_limit, 1);
            return SignalReply::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "webrtcsink: {} viewers already watch (max-viewers={}); try again later",
                    self.viewers.len(),
                    s.max_viewers
                ),
            );
        }
        let config = self
            .factory
            .config()
            .clear_codecs()
            .enable_opus(true, false);
        let config = match s.codec {
            VideoCodec::H264 => config.enable_h264(true),
            _ => config.enable_vp8(true),
        };
        let config = config.enable_bwe(Some(Bitrate::bps(s.start_bitrate_bps)));
        let (mut peer, answer) = match PeerFactory::answer(config, sdp, self.sockets.candidates()) {
            Ok(answered) => answered,
            Err(message) => {
                add(&self.shared.offers_refused, 1);
                return SignalReply::refused(StatusCode::BAD_REQUEST, message);
            }
        };
        if !answer
            .lines()
            .any(|l| l.starts_with("a=sendonly") || l.starts_with("a=sendrecv"))
        {
            add(&self.shared.offers_refused, 1);
            let codec = match s.codec {
                VideoCodec::H264 => "H.264",
                _ => "VP8",
            };
            return SignalReply::refused(
                StatusCode::BAD_REQUEST,
                format!(
                    "webrtcsink sends {codec} video and Opus audio: the offer receives neither \
                     (a WHEP offer has recvonly m=video / m=audio sections with those codecs)"
                ),
            );
        }
        peer.rtc
            .bwe()
            .set_desired_bitrate(Bitrate::bps(get(&self.shared.max_bitrate_bps)));
        let id = new_session_id();
        self.viewers.insert(
            id.clone(),
            Viewer {
                peer,
                created: Instant::now(),
                connected: false,
                video: None,
                audio: None,
                waiting_keyframe: true,
                estimate_bps: None,
            },
        );
        add(&self.shared.viewers_total, 1);
        self.shared
            .viewers
            .store(self.viewers.len() as u64, Ordering::Relaxed);
        self.with_viewer(&id, |_| Ok(()));
        SignalReply::Created {
            session: id,
            answer,
        }
    }

    fn datagram(&mut self, datagram: &Datagram) {
        let found = self.viewers.iter_mut().find_map(|(id, viewer)| {
            viewer
                .peer
                .receive(datagram)
                .map(|result| (id.clone(), result))
        });
        if let Some((id, result)) = found {
            self.with_viewer(&id, |_| result);
        }
    }

    fn media(&mut self, media: &Media) {
        let ids: Vec<String> = self.viewers.keys().cloned().collect();
        for id in ids {
            let Some(viewer) = self.viewers.get_mut(&id) else {
                continue;
            };
            if !viewer.connected {
                continue;
            }
            let Some((mid, pt)) = (if media.video {
                viewer.video
            } else {
                viewer.audio
            }) else {
                continue;
            };
            if media.video && viewer.waiting_keyframe {
                if !media.keyframe {
                    add(&self.shared.frames_held_for_keyframe, 1);
                    continue;
                }
                viewer.waiting_keyframe = false;
            }
            let written = match viewer.peer.rtc.writer(mid) {
                Some(writer) => writer
                    .write(pt, media.wallclock, media.rtp_time, Arc::clone(&media.data))
                    .map_err(|e| e.to_string()),
                None => Err(format!("no writer for mid {mid}")),
            };
            match written {
                Ok(()) if media.video => add(&self.shared.frames_sent, 1),
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!("webrtcsink: viewer {id}: {e}; dropping it");
                    viewer.peer.rtc.disconnect();
                }
            }
            self.with_viewer(&id, |_| Ok(()));
        }
    }

    /// Runs `step` on a viewer's peer, then drives it (transmits, events); a viewer whose
    /// peer fails is disconnected (and reaped).
    fn with_viewer(
        &mut self,
        id: &str,
        step: impl FnOnce(&mut Peer) -> Result<(), str0m::RtcError>,
    ) {
        let Some(viewer) = self.viewers.get_mut(id) else {
            return;
        };
        let mut events = Vec::new();
        let result = step(&mut viewer.peer).and_then(|()| {
            viewer
                .peer
                .drive(&self.sockets, |_, event| events.push(event))
        });
        if let Err(e) = result {
            tracing::info!("webrtcsink: viewer {id}: {e}; dropping it");
            viewer.peer.rtc.disconnect();
        }
        let mut bitrate_changed = false;
        for event in events {
            bitrate_changed |= self.event(id, event);
        }
        if bitrate_changed {
            self.retarget();
        }
    }

    /// Applies one event of viewer `id`; `true` when its bandwidth estimate changed.
    fn event(&mut self, id: &str, event: Event) -> bool {
        let Some(viewer) = self.viewers.get_mut(id) else {
            return false;
        };
        match event {
            Event::Connected if !viewer.connected => {
                viewer.connected = true;
                add(&self.shared.viewers_connected, 1);
                self.request_keyframe();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                viewer.peer.rtc.disconnect();
            }
            Event::MediaAdded(added) => {
                let rtc = &mut viewer.peer.rtc;
                match added.kind {
                    MediaKind::Video => {
                        viewer.video =
                            pick_pt(rtc, added.mid, self.settings.codec).map(|pt| (added.mid, pt));
                    }
                    MediaKind::Audio => {
                        viewer.audio = pick_audio_pt(rtc, added.mid).map(|pt| (added.mid, pt));
                    }
                }
            }
            Event::KeyframeRequest(_) => self.request_keyframe(),
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => {
                viewer.estimate_bps = Some(estimate.as_u64());
                return true;
            }
            _ => {}
        }
        false
    }

    fn request_keyframe(&self) {
        add(&self.shared.keyframe_requests, 1);
        self.work.keyframe_wanted.store(true, Ordering::Relaxed);
        (self.wake_encoder)();
    }

    /// The encoder's target: the lowest estimate of the connected viewers (one encoder
    /// serves all, and a viewer sent more than its path carries loses packets), within the
    /// configured bounds.
    fn retarget(&self) {
        let lowest = self
            .viewers
            .values()
            .filter(|v| v.connected)
            .filter_map(|v| v.estimate_bps)
            .min();
        self.shared
            .lowest_estimate_bps
            .store(lowest.unwrap_or(0), Ordering::Relaxed);
        if lowest.is_some() {
            self.shared.retarget();
        }
    }

    /// Drops viewers that are gone: disconnected, or never connected within the timeout.
    fn reap(&mut self, now: Instant) {
        let timeout = self.settings.connect_timeout;
        let before = self.viewers.len();
        let shared = &self.shared;
        self.viewers.retain(|id, viewer| {
            let stale = !viewer.connected && now.duration_since(viewer.created) > timeout;
            let keep = viewer.peer.rtc.is_alive() && !stale;
            if !keep {
                tracing::info!("webrtcsink: viewer {id} left");
                add(&shared.viewers_dropped, 1);
                if viewer.connected {
                    shared.viewers_connected.fetch_sub(1, Ordering::Relaxed);
                }
            }
            keep
        });
        if self.viewers.len() != before {
            self.shared
                .viewers
                .store(self.viewers.len() as u64, Ordering::Relaxed);
            self.retarget();
        }
    }

    fn close_all(&mut self) {
        for viewer in self.viewers.values_mut() {
            viewer.peer.rtc.disconnect();
            // The DTLS close and RTCP BYE go out before the sockets close.
            let _ = viewer.peer.drive(&self.sockets, |_, _| {});
        }
        let n = self.viewers.len() as u64;
        let connected = self.viewers.values().filter(|v| v.connected).count() as u64;
        self.viewers.clear();
        add(&self.shared.viewers_dropped, n);
        self.shared.viewers_connected.fetch_sub(
            connected.min(self.shared.viewers_connected.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        self.shared.viewers.store(0, Ordering::Relaxed);
        self.sockets.stop();
    }
}

fn unknown(session: &str) -> SignalReply {
    SignalReply::refused(
        StatusCode::NOT_FOUND,
        format!(
            "no WHEP session `{}` (it ended, or never existed)",
            crate::rtc::peer::clip(session)
        ),
    )
}

/// The payload type to send `codec` with on `mid`: among the offer's, for H.264 the
/// packetization-mode 1 ones first and constrained baseline (what a low-latency x264 makes)
/// before the rest.
fn pick_pt(rtc: &mut Rtc, mid: Mid, codec: VideoCodec) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    let wanted = match codec {
        VideoCodec::H264 => Codec::H264,
        _ => Codec::Vp8,
    };
    writer
        .payload_params()
        .filter(|p| p.spec().codec == wanted)
        .max_by_key(|p| {
            let f = p.spec().format;
            let mode = f.packetization_mode == Some(1);
            let baseline = f.profile_level_id.is_some_and(|id| id >> 8 == 0x42e0);
            (mode, baseline)
        })
        .map(|p| p.pt())
}

fn pick_audio_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let writer = rtc.writer(mid)?;
    writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .map(|p| p.pt())
}
