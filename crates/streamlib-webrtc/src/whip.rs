//! `webrtcsrc`: a WHIP endpoint (RFC 9725) that takes one publisher's camera and microphone
//! (VP8 or H.264 video, Opus audio) into a pipeline as RGBA frames and `f32` audio.
//!
//! `POST http://ADDR/whip` with an `application/sdp` offer answers `201 Created`, the SDP
//! answer and the `Location` of the session (`/whip/<id>`); `DELETE` on that location ends
//! it. One publisher at a time: another offer while one is live gets `409 Conflict`. Every
//! answer carries CORS headers, so a page from any origin can publish. `GET http://ADDR/`
//! serves a small page that publishes the visitor's camera and microphone
//! (`http://ADDR/?start` begins at once).
//!
//! The HTTP server (streamlib-http) only parses and forwards: offers, deletions and the
//! WebRTC session itself (str0m, one UDP socket, the decoders) live on the source's session
//! thread, and decoded frames reach the handler's `process` over bounded queues.

mod page;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use streamlib_http::HttpServer;
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, FrameLimits, HandlerError, MemoryCaps, OutputPort, OutputRef,
    PixelFormat, Ports, ProcessContext, StartContext, StreamHandler, VideoCaps, VideoFrame,
};

use crate::rtc::net::{UdpSockets, host_addresses};
use crate::rtc::signal::{SignalRequest, Submit};
use session::{Inbox, SessionThread};

/// The address `webrtcsrc` listens on unless told otherwise (`webrtcsink` takes 8889).
pub const DEFAULT_WHIP_ADDRESS: &str = "127.0.0.1:8890";

/// Why a [`WebRtcSrc`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    /// The HTTP server could not listen.
    #[error("webrtcsrc: {0}")]
    Http(#[from] streamlib_http::HttpError),
    /// A thread or socket could not be created.
    #[error("webrtcsrc: {what}: {source}")]
    Io {
        /// What was being created.
        what: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("webrtcsrc: {0}")]
    Config(String),
}

/// How a [`WebRtcSrc`] listens and what it outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcSrcConfig {
    /// Where the WHIP endpoint listens (`http://ADDR/whip`); port 0 picks a free port (see
    /// [`WebRtcSrc::whip_url`]). The media sockets bind the same IP (every host address
    /// for an unspecified one), on free ports.
    pub whip_address: SocketAddr,
    /// Scale every picture to this size; `None`: the first publisher's first picture fixes it
    /// for the source's lifetime (later publishers and resolution changes are scaled to it).
    pub size: Option<(u32, u32)>,
    /// Output audio channels (1 or 2; the browser's Opus is decoded to this many).
    pub audio_channels: u16,
    /// Largest picture a publisher may send.
    pub limits: FrameLimits,
    /// Time a publisher has from its offer to a connected session before it is dropped
    /// (and the endpoint is free again).
    pub connect_timeout: std::time::Duration,
}

impl WebRtcSrcConfig {
    /// Listening on `whip_address`, first picture's size, stereo, default limits, 15 s to
    /// connect.
    pub fn new(whip_address: SocketAddr) -> Self {
        Self {
            whip_address,
            size: None,
            audio_channels: 2,
            limits: FrameLimits::DEFAULT,
            connect_timeout: std::time::Duration::from_secs(15),
        }
    }

    /// Parses a `whip-address`: `HOST:PORT`, `:PORT` or `PORT` (loopback), see
    /// [`streamlib_http::parse_listen_addr`].
    pub fn parse_address(text: &str) -> Result<SocketAddr, WhipError> {
        Ok(streamlib_http::parse_listen_addr(text)?)
    }
}

impl Default for WebRtcSrcConfig {
    /// On [`DEFAULT_WHIP_ADDRESS`].
    fn default() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 8890)))
    }
}

/// What the source counted, from any thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhipStats {
    /// `http://ADDR/whip` once listening (empty before start).
    pub whip_url: String,
    /// Whether a publisher is connected or connecting now.
    pub live: bool,
    /// Offers accepted (sessions started).
    pub sessions: u64,
    /// Sessions that ended (DELETE, ICE timeout, never connected).
    pub sessions_ended: u64,
    /// Offers refused with 409 because a publisher was live.
    pub refused_busy: u64,
    /// Offers refused with 400 (malformed SDP, no codec we decode, too many media).
    pub refused_bad: u64,
    /// Video frames decoded.
    pub video_frames: u64,
    /// Video frames written to the output.
    pub frames_published: u64,
    /// Decoded frames replaced by a newer one before a tick published them.
    pub frames_superseded: u64,
    /// Audio buffers written to the output.
    pub audio_buffers: u64,
    /// Audio buffers dropped because the hand-over queue was full.
    pub audio_dropped: u64,
    /// Packets a decoder refused.
    pub decode_errors: u64,
    /// Keyframe requests (PLI) sent to publishers.
    pub keyframe_requests: u64,
    /// Decoded pictures dropped because every pooled frame was still held downstream.
    pub pool_exhausted: u64,
    /// Datagrams or requests dropped because the session thread's inbox was full.
    pub inbox_full: u64,
    /// The current (or last) publisher's video codec (`vp8`, `h264`; empty before one).
    pub video_codec: String,
    /// The output's picture size once fixed, `WxH`.
    pub video_size: String,
}

/// Counters shared between the HTTP routes, the session thread and the handler.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) url: Mutex<String>,
    pub(crate) live: AtomicBool,
    pub(crate) sessions: AtomicU64,
    pub(crate) sessions_ended: AtomicU64,
    pub(crate) refused_busy: AtomicU64,
    pub(crate) refused_bad: AtomicU64,
    pub(crate) video_frames: AtomicU64,
    pub(crate) frames_published: AtomicU64,
    pub(crate) frames_superseded: AtomicU64,
    pub(crate) audio_buffers: AtomicU64,
    pub(crate) audio_dropped: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
    pub(crate) pool_exhausted: AtomicU64,
    pub(crate) inbox_full: AtomicU64,
    pub(crate) codec: Mutex<String>,
    pub(crate) size: Mutex<String>,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn text(m: &Mutex<String>) -> String {
    m.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Reads a [`WebRtcSrc`]'s counters (and its URL) from any thread.
#[derive(Debug, Clone)]
pub struct WhipStatsHandle(Arc<Shared>);

impl WhipStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> WhipStats {
        let s = &*self.0;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WhipStats {
            whip_url: text(&s.url),
            live: s.live.load(Ordering::Relaxed),
            sessions: load(&s.sessions),
            sessions_ended: load(&s.sessions_ended),
            refused_busy: load(&s.refused_busy),
            refused_bad: load(&s.refused_bad),
            video_frames: load(&s.video_frames),
            frames_published: load(&s.frames_published),
            frames_superseded: load(&s.frames_superseded),
            audio_buffers: load(&s.audio_buffers),
            audio_dropped: load(&s.audio_dropped),
            decode_errors: load(&s.decode_errors),
            keyframe_requests: load(&s.keyframe_requests),
            pool_exhausted: load(&s.pool_exhausted),
            inbox_full: load(&s.inbox_full),
            video_codec: text(&s.codec),
            video_size: text(&s.size),
        }
    }

    /// `http://ADDR/whip` once the source has started (empty before).
    pub fn whip_url(&self) -> String {
        text(&self.0.url)
    }
}

/// Requests and datagrams waiting for the session thread (a second of a publisher's
/// packets at 2 Mbit/s is about 200).
const INBOX: usize = 1024;
/// Decoded frames waiting for a tick: a few, the newest wins.
const VIDEO_QUEUE: usize = 4;
/// Decoded audio waiting for a tick: 64 Opus frames of 20 ms, over a second.
const AUDIO_QUEUE: usize = 64;
/// Audio more than this far from the tick's time is re-anchored to it (a new publisher, a
/// long gap); closer, buffers follow each other sample-exactly.
const AUDIO_REANCHOR_NS: u64 = 200_000_000;

/// A WHIP endpoint as a source: outputs `"video"` (RGBA frames, latest) and `"audio"`
/// (interleaved `f32` at 48 kHz, ordered).
///
/// The HTTP server and the session thread start in `on_start` (building the handler binds
/// nothing) and stop in `on_stop`. Each `process` writes the newest frame decoded since the
/// last tick, stamped with the tick, and every audio buffer decoded since, stamped on one
/// continuous timeline that starts at the tick a publisher's first audio arrived. Before the
/// first publisher and between publishers the source writes nothing: a downstream that
/// wants a picture meanwhile keeps its last one (latest-mode inputs do).
///
/// ```no_run
/// use streamlib_webrtc::{WebRtcSrc, WebRtcSrcConfig};
///
/// let source = WebRtcSrc::new(WebRtcSrcConfig::new("127.0.0.1:0".parse()?))?;
/// let stats = source.stats();
/// // ... add `source` to a runtime and start it; then:
/// println!("publish to {}", stats.whip_url());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WebRtcSrc {
    config: WebRtcSrcConfig,
    video: OutputPort<VideoFrame>,
    audio: OutputPort<AudioBuffer>,
    shared: Arc<Shared>,
    running: Option<Running>,
    /// Where the next audio buffer starts on the clock's timeline.
    audio_next_ns: Option<u64>,
}

/// What `on_start` started.
struct Running {
    server: HttpServer,
    inbox: SyncSender<Inbox>,
    thread: Option<JoinHandle<()>>,
    video: Receiver<VideoFrame>,
    audio: Receiver<AudioBuffer>,
}

impl WebRtcSrc {
    /// Checks the configuration; nothing listens until the pipeline starts.
    pub fn new(config: WebRtcSrcConfig) -> Result<Self, WhipError> {
        if !(1..=2).contains(&config.audio_channels) {
            return Err(WhipError::Config(format!(
                "audio channels must be 1 or 2, not {}",
                config.audio_channels
            )));
        }
        let mut video_caps = VideoCaps::any().with_formats(&[PixelFormat::Rgba8]);
        if let Some((width, height)) = config.size {
            config
                .limits
                .check(width, height)
                .map_err(|e| WhipError::Config(format!("size {width}x{height}: {e}")))?;
            video_caps = video_caps.with_size(width, height);
        }
        let audio_caps = AudioCaps::fixed(
            streamlib_codec::decode::OPUS_SAMPLE_RATE,
            u32::from(config.audio_channels),
        );
        Ok(Self {
            video: OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(video_caps)),
            audio: OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::Audio(audio_caps)),
            config,
            shared: Arc::default(),
            running: None,
            audio_next_ns: None,
        })
    }

    /// The video output (`"video"`).
    pub fn video_output(&self) -> OutputRef<VideoFrame> {
        self.video.handle()
    }

    /// The audio output (`"audio"`).
    pub fn audio_output(&self) -> OutputRef<AudioBuffer> {
        self.audio.handle()
    }

    /// A handle on the counters and the endpoint's URL.
    pub fn stats(&self) -> WhipStatsHandle {
        WhipStatsHandle(Arc::clone(&self.shared))
    }

    /// `http://ADDR/whip` while started (`None` before `on_start`).
    pub fn whip_url(&self) -> Option<String> {
        self.running.as_ref().map(|r| r.server.url("/whip"))
    }

    fn start(&mut self) -> Result<(), WhipError> {
        self.stop();
        let (video_tx, video_rx) = std::sync::mpsc::sync_channel(VIDEO_QUEUE);
        let (audio_tx, audio_rx) = std::sync::mpsc::sync_channel(AUDIO_QUEUE);
        let (inbox, messages) = std::sync::mpsc::sync_channel::<Inbox>(INBOX);
        // Frames held downstream plus the hand-over queue.
        let pool_max = self.video.pool_capacity(VIDEO_QUEUE + 8);
        let datagrams = inbox.clone();
        let shared = Arc::clone(&self.shared);
        let addresses = host_addresses(self.config.whip_address.ip());
        let sockets = UdpSockets::bind(&addresses, "webrtcsrc", move |datagram| {
            if datagrams.try_send(Inbox::Datagram(datagram)).is_err() {
                add(&shared.inbox_full, 1);
            }
        })
        .map_err(|source| WhipError::Io {
            what: "binding the UDP media sockets",
            source,
        })?;
        tracing::info!("webrtcsrc: media on {:?}", sockets.local_addrs());
        let requests = inbox.clone();
        let shared = Arc::clone(&self.shared);
        let submit: Submit = Arc::new(move |request: SignalRequest| {
            let sent = requests.try_send(Inbox::Signal(request)).is_ok();
            if !sent {
                add(&shared.inbox_full, 1);
            }
            sent
        });
        let limits = streamlib_http::Limits {
            // An SDP offer is a few KiB; a megabyte of one is an attack.
            max_body: 128 * 1024,
            max_connections: 64,
            ..streamlib_http::Limits::default()
        };
        let server = HttpServer::start(self.config.whip_address, page::router(submit), limits)?;
        *self
            .shared
            .url
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = server.url("/whip");
        let thread = SessionThread {
            config: self.config.clone(),
            pool_max,
            inbox: messages,
            sockets,
            video: video_tx,
            audio: audio_tx,
            shared: Arc::clone(&self.shared),
        };
        let thread = std::thread::Builder::new()
            .name("webrtcsrc".to_owned())
            .spawn(move || thread.run())
            .map_err(|source| WhipError::Io {
                what: "starting the session thread",
                source,
            })?;
        tracing::info!("webrtcsrc: WHIP endpoint at {}", server.url("/whip"));
        self.running = Some(Running {
            server,
            inbox,
            thread: Some(thread),
            video: video_rx,
            audio: audio_rx,
        });
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.server.stop();
            // Blocks only while the inbox is full; the thread drains it.
            let _ = running.inbox.send(Inbox::Shutdown);
            if let Some(thread) = running.thread.take() {
                let _ = thread.join();
            }
        }
        self.audio_next_ns = None;
    }
}

impl StreamHandler for WebRtcSrc {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.video).output(&self.audio)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.start()?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(running) = &self.running else {
            return Ok(());
        };
        let tick = ctx.tick();
        let mut newest = None;
        while let Ok(frame) = running.video.try_recv() {
            if newest.replace(frame).is_some() {
                add(&self.shared.frames_superseded, 1);
            }
        }
        if let Some(frame) = newest {
            self.video.write(frame.with_tick(tick));
            add(&self.shared.frames_published, 1);
        }
        while let Ok(buffer) = running.audio.try_recv() {
            let now = tick.timestamp;
            let at = match self.audio_next_ns {
                Some(next) if next.abs_diff(now) <= AUDIO_REANCHOR_NS => next,
                _ => now,
            };
            self.audio_next_ns = Some(at + buffer.duration_ns());
            self.audio.write(buffer.with_timestamp(at));
            add(&self.shared.audio_buffers, 1);
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.stop();
        *self
            .shared
            .url
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = String::new();
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        "WebRtcSrc"
    }
}

impl Drop for WebRtcSrc {
    fn drop(&mut self) {
        self.stop();
    }
}
