//! [`WebRtcSink`]: the pipeline's video (and audio) served to WebRTC viewers by WHEP.
//!
//! Threads: the pipeline calls [`process`](StreamHandler::process), which only queues
//! (a one-slot video queue, a bounded audio queue); an encoder thread encodes once for every
//! viewer; a session thread drives every viewer's str0m peer; the HTTP server's thread turns
//! WHEP requests into messages for the session thread and waits for its answer; one reader
//! thread per UDP socket passes datagrams on.
//!
//! One shared encoder, not one per viewer: ten viewers of 720p30 on two cores leave no room
//! for ten encoders (one libvpx realtime 720p30 encode takes a good part of a core), while
//! packetizing and encrypting a shared bitstream per viewer is cheap. The price: one
//! bitrate for all (the lowest viewer estimate, within `min-bitrate`..`max-bitrate`) and a
//! keyframe for all when any viewer asks (rate-limited to one per 500 ms).

mod encoder;
mod session;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamlib_clock::Rational;
use streamlib_codec::encode::VideoCodec;
use streamlib_http::axum::Router;
use streamlib_http::axum::http::header;
use streamlib_http::axum::routing;
use streamlib_http::{CacheClass, HttpServer, Limits, cache_control};
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, DeliveryMode, Field, HandlerError, InputPort, InputRef,
    MemoryCaps, Ports, ProcessContext, StartContext, StreamHandler, VideoCaps, VideoFrame,
};

use crate::rtc::net::{UdpSockets, host_addresses};
use crate::rtc::signal::{self, SignalRequest};
use encoder::{EncoderSettings, Encoders, Work};
use session::{Inbox, SessionSettings, Sessions};
use stats::{Shared, add, get};

pub use stats::{WebRtcSinkSnapshot, WebRtcSinkStats};

/// The WHEP client the sink serves at `/whep.js`: `whepPlay(url, videoElement)` (see
/// docs/WEBRTC.md).
pub const WHEP_JS: &str = include_str!("../assets/whep.js");

/// The handler's name in messages.
const HANDLER: &str = "webrtcsink";
/// Messages the session thread may have queued (datagrams, packets, requests).
const INBOX: usize = 4096;
/// The largest offer body accepted (`413` above it): a browser's offer is a few KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Why a [`WebRtcSink`] could not be made or started.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// A setting is out of range.
    #[error("{HANDLER}: {field} = {value}: {reason}")]
    Config {
        /// The setting (the launch property's name).
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The WHEP HTTP server could not start.
    #[error("{HANDLER}: whep-address: {0}")]
    Http(#[from] streamlib_http::HttpError),
    /// The UDP sockets or a thread could not be made.
    #[error("{HANDLER}: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How a [`WebRtcSink`] serves.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcSinkConfig {
    /// Where the WHEP endpoint listens (`http://ADDR/whep`); port 0 picks a free one. The
    /// media (UDP) sockets bind the same IP: loopback for a loopback address, every host
    /// address for `0.0.0.0`.
    pub whep_address: SocketAddr,
    /// `Vp8` (libvpx) or `H264` (libx264, constrained baseline).
    pub codec: VideoCodec,
    /// Sessions at once; the next offer gets `503`.
    pub max_viewers: usize,
    /// The video bitrate a viewer starts at (clamped to `min..=max`).
    pub start_bitrate_bps: u64,
    /// Congestion control never sets the encoder below this…
    pub min_bitrate_bps: u64,
    /// …nor above this.
    pub max_bitrate_bps: u64,
    /// The Opus bitrate.
    pub audio_bitrate_bps: u64,
    /// At most this long between keyframes.
    pub keyframe_interval: Duration,
    /// A viewer whose media path is not up this long after its answer is dropped.
    pub connect_timeout: Duration,
}

impl Default for WebRtcSinkConfig {
    /// `127.0.0.1:8889`, VP8, 16 viewers, 2 Mbit/s (0.3 to 6), Opus 64 kbit/s, a keyframe
    /// every 2 s, 15 s to connect.
    fn default() -> Self {
        Self {
            whep_address: SocketAddr::from(([127, 0, 0, 1], 8889)),
            codec: VideoCodec::Vp8,
            max_viewers: 16,
            start_bitrate_bps: 2_000_000,
            min_bitrate_bps: 300_000,
            max_bitrate_bps: 6_000_000,
            audio_bitrate_bps: 64_000,
            keyframe_interval: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

impl WebRtcSinkConfig {
    /// Parses a `whep-address`: `HOST:PORT`, `:PORT` or `PORT` (loopback), as every
    /// streamlib server does.
    pub fn parse_address(text: &str) -> Result<SocketAddr, WebRtcError> {
        Ok(streamlib_http::parse_listen_addr(text)?)
    }

    /// Checks ranges: a codec WebRTC carries here, at least one viewer, bitrate bounds
    /// ordered.
    pub fn check(&self) -> Result<(), WebRtcError> {
        let bad = |field, value: String, reason| {
            Err(WebRtcError::Config {
                field,
                value,
                reason,
            })
        };
        if !matches!(self.codec, VideoCodec::Vp8 | VideoCodec::H264) {
            return bad("codec", self.codec.to_string(), "must be vp8 or h264");
        }
        if self.max_viewers == 0 {
            return bad("max-viewers", "0".into(), "must be at least 1");
        }
        if self.min_bitrate_bps == 0 || self.min_bitrate_bps > self.max_bitrate_bps {
            return bad(
                "min-bitrate",
                self.min_bitrate_bps.to_string(),
                "must be at least 1 and at most max-bitrate",
            );
        }
        Ok(())
    }
}

/// What runs while the sink is started.
struct Running {
    server: Option<HttpServer>,
    inbox: SyncSender<Inbox>,
    session: Option<JoinHandle<()>>,
    encoder: Option<JoinHandle<()>>,
    work: Arc<Work>,
}

impl Running {
    fn stop(&mut self) {
        // The server first: no request may wait on a session thread that is gone.
        if let Some(server) = self.server.take() {
            server.stop();
        }
        self.work.stop.store(true, Ordering::Relaxed);
        if let Some(encoder) = self.encoder.take() {
            encoder.thread().unpark();
            let _ = encoder.join();
        }
        let _ = self.inbox.send(Inbox::Stop);
        if let Some(session) = self.session.take() {
            let _ = session.join();
        }
    }
}

/// Serves its `video` input (and its optional `audio` input, 48 kHz) to WebRTC viewers by
/// WHEP at `http://ADDR/whep`: encoded once (VP8 or H.264, Opus) for every viewer, each
/// viewer's congestion control bounding the shared encoder's bitrate. Encodes nothing while
/// no viewer is connected. `GET /whep.js` serves a small WHEP client for pages.
///
/// ```no_run
/// use streamlib_webrtc::{WebRtcSink, WebRtcSinkConfig};
///
/// let config = WebRtcSinkConfig {
///     whep_address: "127.0.0.1:0".parse().unwrap(),
///     ..WebRtcSinkConfig::default()
/// };
/// let sink = WebRtcSink::new(config).unwrap();
/// // Connect `sink.video()` in a runtime; once started, `sink.whep_url()` names the endpoint.
/// # let _ = sink;
/// ```
pub struct WebRtcSink {
    config: WebRtcSinkConfig,
    video: InputPort<VideoFrame>,
    audio: InputPort<AudioBuffer>,
    shared: Arc<Shared>,
    running: Option<Running>,
}

impl std::fmt::Debug for WebRtcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcSink")
            .field("config", &self.config)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl WebRtcSink {
    /// A sink for `config` (checked). Binds nothing until started.
    pub fn new(config: WebRtcSinkConfig) -> Result<Self, WebRtcError> {
        config.check()?;
        let video = InputPort::new("video", MemoryCaps::CPU)
            .with_format(Caps::Video(VideoCaps::any()))
            // One frame in hand, one in the encoder's queue, one being encoded.
            .holding(3);
        let audio = InputPort::new("audio", MemoryCaps::CPU)
            .with_delivery(DeliveryMode::Ordered { capacity: 64 })
            .with_format(Caps::Audio(AudioCaps {
                rate: Field::Fixed(48_000),
                channels: Field::Range(1, 2),
            }))
            .optional();
        Ok(Self {
            config,
            video,
            audio,
            shared: Arc::new(Shared::default()),
            running: None,
        })
        .inspect(WebRtcSink::store_bounds)
    }

    /// The video input (`"video"`): frames of any CPU format and size (converted by the
    /// encoder; the first frame's size is the stream's).
    pub fn video(&self) -> InputRef<VideoFrame> {
        self.video.handle()
    }

    /// The optional audio input (`"audio"`): 48 kHz, mono or stereo.
    pub fn audio(&self) -> InputRef<AudioBuffer> {
        self.audio.handle()
    }

    /// `http://ADDR/whep` (with the bound port) while started.
    pub fn whep_url(&self) -> Option<String> {
        self.shared.url()
    }

    /// A handle to the counters (and the URL), readable from any thread.
    pub fn stats(&self) -> WebRtcSinkStats {
        WebRtcSinkStats(Arc::clone(&self.shared))
    }

    /// The configuration.
    pub fn config(&self) -> &WebRtcSinkConfig {
        &self.config
    }

    /// Moves the range congestion control sets the encoder's bitrate in (live: the target
    /// follows at once, the encoder within a second — for VP8 at its next keyframe).
    pub fn set_bitrate_range(&mut self, min_bps: u64, max_bps: u64) -> Result<(), WebRtcError> {
        let config = WebRtcSinkConfig {
            min_bitrate_bps: min_bps,
            max_bitrate_bps: max_bps,
            start_bitrate_bps: self
                .config
                .start_bitrate_bps
                .clamp(min_bps, max_bps.max(min_bps)),
            ..self.config.clone()
        };
        config.check()?;
        self.config = config;
        self.store_bounds();
        self.shared.retarget();
        Ok(())
    }

    fn store_bounds(&self) {
        let s = &self.shared;
        s.min_bitrate_bps
            .store(self.config.min_bitrate_bps, Ordering::Relaxed);
        s.max_bitrate_bps
            .store(self.config.max_bitrate_bps, Ordering::Relaxed);
    }

    fn start(&mut self, clock_fps: Rational) -> Result<(), WebRtcError> {
        let c = &self.config;
        let fps = self
            .video
            .negotiated_format()
            .and_then(|caps| caps.as_video().and_then(|v| v.rate.fixed()))
            .map_or(clock_fps, |rate| rate.0);
        let work = Arc::new(Work::new());
        let (inbox, messages) = sync_channel::<Inbox>(INBOX);
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| WebRtcError::Io { what, source }
        };

        let datagrams = inbox.clone();
        let shared = Arc::clone(&self.shared);
        let addresses = host_addresses(c.whep_address.ip());
        let sockets = UdpSockets::bind(&addresses, HANDLER, move |datagram| {
            if datagrams.try_send(Inbox::Datagram(datagram)).is_err() {
                add(&shared.inbox_full, 1);
            }
        })
        .map_err(io("binding the UDP media sockets"))?;
        tracing::info!("{HANDLER}: media on {:?}", sockets.local_addrs());

        let start_bps = c
            .start_bitrate_bps
            .clamp(c.min_bitrate_bps, c.max_bitrate_bps);
        let settings = EncoderSettings {
            codec: c.codec,
            fps,
            start_bitrate_bps: start_bps,
            keyframe_interval: c.keyframe_interval,
            audio_bitrate_bps: c.audio_bitrate_bps,
            epoch: Instant::now(),
        };
        self.shared
            .target_bitrate_bps
            .store(start_bps, Ordering::Relaxed);
        self.shared.lowest_estimate_bps.store(0, Ordering::Relaxed);
        self.store_bounds();
        let encoder = {
            let (work, shared, packets) =
                (Arc::clone(&work), Arc::clone(&self.shared), inbox.clone());
            std::thread::Builder::new()
                .name(format!("{HANDLER} encode"))
                .spawn(move || {
                    let out = |media| {
                        // Blocks only while the session thread's inbox is full.
                        let _ = packets.send(Inbox::Media(media));
                    };
                    Encoders::new(settings).run(&work, &shared, &out);
                })
                .map_err(io("starting the encoder thread"))?
        };
        let wake = encoder.thread().clone();
        let sessions = Sessions::new(
            SessionSettings {
                codec: c.codec,
                max_viewers: c.max_viewers,
                start_bitrate_bps: c.start_bitrate_bps,
                connect_timeout: c.connect_timeout,
            },
            sockets,
            Arc::clone(&self.shared),
            Arc::clone(&work),
            Box::new(move || wake.unpark()),
        );
        let session = std::thread::Builder::new()
            .name(format!("{HANDLER} sessions"))
            .spawn(move || sessions.run(&messages))
            .map_err(io("starting the session thread"))?;
        let mut running = Running {
            server: None,
            inbox: inbox.clone(),
            session: Some(session),
            encoder: Some(encoder),
            work,
        };

        let requests = inbox;
        let shared = Arc::clone(&self.shared);
        let submit: signal::Submit = Arc::new(move |request: SignalRequest| {
            match requests.try_send(Inbox::Signal(request)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    add(&shared.inbox_full, 1);
                    false
                }
            }
        });
        let router = Router::new()
            .route("/whep.js", routing::get(whep_js))
            .merge(signal::router("/whep", submit));
        let limits = Limits {
            max_body: MAX_OFFER_BYTES,
            ..Limits::default()
        };
        match HttpServer::start(c.whep_address, router, limits) {
            Ok(server) => {
                self.shared.set_url(Some(server.url("/whep")));
                tracing::info!("{HANDLER}: WHEP at {}", server.url("/whep"));
                running.server = Some(server);
            }
            Err(e) => {
                running.stop();
                return Err(e.into());
            }
        }
        self.running = Some(running);
        Ok(())
    }
}

async fn whep_js() -> impl streamlib_http::axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, cache_control(CacheClass::Page)),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        WHEP_JS,
    )
}

impl StreamHandler for WebRtcSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.video).input(&self.audio)
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.on_stop()?;
        self.start(ctx.clock().fps)?;
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(running) = &self.running else {
            return Ok(());
        };
        let watched = get(&self.shared.viewers_connected) > 0;
        let mut woke = false;
        while let Some(buffer) = self.audio.recv() {
            add(&self.shared.audio_buffers_in, 1);
            if watched {
                // Full means the encoder is stalled: the oldest is dropped, the newest kept.
                let _ = running.work.audio.force_push((buffer, Instant::now()));
                woke = true;
            }
        }
        if let Some(frame) = self.video.recv() {
            add(&self.shared.frames_in, 1);
            if !watched {
                add(&self.shared.frames_idle, 1);
            } else if frame.cpu_bytes().is_none() {
                add(&self.shared.frames_rejected, 1);
                self.video.reject();
            } else {
                if running
                    .work
                    .video
                    .force_push((frame, Instant::now()))
                    .is_some()
                {
                    add(&self.shared.frames_skipped, 1);
                }
                woke = true;
            }
        }
        if woke && let Some(encoder) = &running.encoder {
            encoder.thread().unpark();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
        self.shared.set_url(None);
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        "WebRtcSink"
    }
}

impl Drop for WebRtcSink {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop();
        }
    }
}
