//! [`HlsSink`]: the handler, and the encoder thread that encodes, segments and writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use streamlib_clock::Rational;
use streamlib_codec::encode::{
    AudioCodec, AudioEncoder, AudioEncoderConfig, VideoCodec, VideoEncoder, VideoEncoderConfig,
};
use streamlib_http::{HttpServer, Limits};
use streamlib_ports::{
    AudioBuffer, Caps, DeliveryMode, HandlerError, InputPort, InputRef, MemoryCaps, PixelFormat,
    Ports, ProcessContext, StartContext, StreamHandler, VideoCaps, VideoFrame,
};
use tokio::sync::watch;

use crate::muxer::{Muxer, StreamSpec};
use crate::segmenter::Segmenter;
use crate::server::{Published, ServeSettings, router};
use crate::{HlsCodec, HlsConfig, HlsError, PLAYLIST_NAME, SegmentFormat};

/// The formats the input takes (the encoder's converter reads them all).
const ACCEPTED_FORMATS: [PixelFormat; 4] = [
    PixelFormat::Rgba8,
    PixelFormat::Bgra8,
    PixelFormat::I420,
    PixelFormat::Nv12,
];

/// Jobs queued for the encoder thread.
const QUEUE: usize = 8;

/// The rate used before `on_start` (a sink driven by hand).
const FALLBACK_FPS: Rational = Rational::fps(30);

/// Audio and video stamps further apart than this are taken for two clocks: the audio
/// then starts with the first frame.
const MAX_ALIGNMENT_NS: u64 = 10_000_000_000;

/// Counters of an [`HlsSink`], readable from any thread while it runs.
#[derive(Debug, Clone, Default)]
pub struct HlsStats {
    pub(crate) inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    pub frames: AtomicU64,
    pub segments: AtomicU64,
    pub parts: AtomicU64,
    pub bytes: AtomicU64,
    pub write_errors: AtomicU64,
    pub deleted: AtomicU64,
    pub audio_packets: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl HlsStats {
    /// Frames handed to the encoder.
    pub fn frames_encoded(&self) -> u64 {
        self.inner.frames.load(Ordering::Relaxed)
    }

    /// Segments written (and listed).
    pub fn segments_written(&self) -> u64 {
        self.inner.segments.load(Ordering::Relaxed)
    }

    /// LL-HLS parts written.
    pub fn parts_written(&self) -> u64 {
        self.inner.parts.load(Ordering::Relaxed)
    }

    /// Bytes of segments and parts written.
    pub fn bytes_written(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Files that could not be written (disk full, folder removed): counted and logged, the
    /// stream goes on.
    pub fn write_errors(&self) -> u64 {
        self.inner.write_errors.load(Ordering::Relaxed)
    }

    /// Segments that slid out of a live window and were deleted.
    pub fn segments_deleted(&self) -> u64 {
        self.inner.deleted.load(Ordering::Relaxed)
    }

    /// AAC packets muxed.
    pub fn audio_packets(&self) -> u64 {
        self.inner.audio_packets.load(Ordering::Relaxed)
    }

    /// The last error (a write that failed, an encoder error), if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_error(&self, error: String) {
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

enum Job {
    Video(VideoFrame, i64),
    Audio(AudioBuffer),
    Finish(SyncSender<Result<(), HlsError>>),
}

/// The encoder thread's state.
struct Encoding {
    config: HlsConfig,
    fps: Rational,
    /// Rate and channels of the AAC track, if there is one.
    audio: Option<(u32, u16)>,
    video_encoder: Option<VideoEncoder>,
    audio_encoder: Option<AudioEncoder>,
    segmenter: Option<Segmenter>,
    feed: watch::Sender<Option<Arc<Published>>>,
    stats: HlsStats,
    /// The first frame's timestamp: stream time zero.
    origin_ns: Option<u64>,
    /// Samples the audio track starts after stream time zero (set by its first buffer).
    audio_offset: Option<i64>,
}

impl Encoding {
    fn open(&mut self, frame: &VideoFrame) -> Result<(), HlsError> {
        let codec = match self.config.codec {
            HlsCodec::H264 => VideoCodec::H264,
            HlsCodec::H265 => VideoCodec::H265,
        };
        let mut video = VideoEncoderConfig::new(codec, frame.width(), frame.height(), self.fps);
        video.bitrate_bps = self.config.bitrate;
        // Keyframes only where segments start (requested per frame below).
        video.keyframe_interval = 0;
        // No B-frames: packets leave the encoder with their frame, parts close on time.
        video.low_latency = true;
        video.global_header = self.config.segment_format == SegmentFormat::Fmp4;
        let video_encoder = VideoEncoder::new(&video, frame.layout())?;
        let mut streams = vec![StreamSpec {
            parameters: video_encoder.parameters(),
            time_base: video_encoder.time_base(),
        }];
        let audio_encoder = match self.audio {
            Some((sample_rate, channels)) => {
                let encoder = AudioEncoder::new(&AudioEncoderConfig {
                    codec: AudioCodec::Aac,
                    sample_rate,
                    channels,
                    bitrate_bps: self.config.audio_bitrate,
                })?;
                streams.push(StreamSpec {
                    parameters: encoder.parameters(),
                    time_base: encoder.time_base(),
                });
                Some(encoder)
            }
            None => None,
        };
        let format = self.config.segment_format;
        let muxer = Muxer::new(format, &streams).map_err(|e| HlsError::Mux {
            format,
            reason: e.0,
        })?;
        self.segmenter = Some(Segmenter::new(
            &self.config,
            self.fps,
            muxer,
            self.feed.clone(),
            self.stats.clone(),
        )?);
        self.video_encoder = Some(video_encoder);
        self.audio_encoder = audio_encoder;
        self.origin_ns = Some(frame.timestamp_ns());
        Ok(())
    }

    fn video(&mut self, frame: &VideoFrame, pts: i64) -> Result<(), HlsError> {
        if self.video_encoder.is_none() {
            self.open(frame)?;
        }
        let (Some(encoder), Some(segmenter)) = (&mut self.video_encoder, &mut self.segmenter)
        else {
            return Ok(());
        };
        let keyframe = segmenter.starts_segment(pts);
        let mut failed = None;
        encoder.encode(frame, pts, keyframe, &mut |p| {
            if failed.is_none()
                && let Err(e) = segmenter.video(p.data, p.pts, p.dts, p.keyframe)
            {
                failed = Some(e);
            }
        })?;
        self.stats.inner.frames.fetch_add(1, Ordering::Relaxed);
        failed.map_or(Ok(()), Err)
    }

    fn audio(&mut self, buffer: &AudioBuffer) -> Result<(), HlsError> {
        let (Some(encoder), Some(segmenter), Some(origin)) =
            (&mut self.audio_encoder, &mut self.segmenter, self.origin_ns)
        else {
            // Before the first frame there is no stream to place it in.
            return Ok(());
        };
        let rate = encoder.config().sample_rate;
        let offset = *self.audio_offset.get_or_insert_with(|| {
            let ts = buffer.timestamp_ns();
            if ts.abs_diff(origin) > MAX_ALIGNMENT_NS || ts < origin {
                0
            } else {
                let samples = u128::from(ts - origin) * u128::from(rate) / 1_000_000_000;
                i64::try_from(samples).unwrap_or(0)
            }
        });
        // AAC's priming samples are stamped before zero: shift them into the stream (the
        // audio plays that ~21 ms late rather than being cut by players).
        let shift = offset + encoder.initial_padding();
        let stats = &self.stats;
        let mut failed = None;
        encoder.encode(buffer, &mut |p| {
            if failed.is_none() {
                match segmenter.audio(p.data, p.pts + shift, p.duration) {
                    Ok(()) => {
                        stats.inner.audio_packets.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    fn finish(&mut self) -> Result<(), HlsError> {
        let Some(segmenter) = &mut self.segmenter else {
            return Ok(());
        };
        let mut failed = None;
        if let Some(encoder) = &mut self.video_encoder {
            encoder.flush(&mut |p| {
                if failed.is_none()
                    && let Err(e) = segmenter.video(p.data, p.pts, p.dts, p.keyframe)
                {
                    failed = Some(e);
                }
            })?;
        }
        if let Some(encoder) = &mut self.audio_encoder {
            let shift = self.audio_offset.unwrap_or(0) + encoder.initial_padding();
            encoder.flush(&mut |p| {
                if failed.is_none()
                    && let Err(e) = segmenter.audio(p.data, p.pts + shift, p.duration)
                {
                    failed = Some(e);
                }
            })?;
        }
        let finished = segmenter.finish();
        self.segmenter = None;
        self.video_encoder = None;
        self.audio_encoder = None;
        failed.map_or(finished, Err)
    }
}

fn run(mut state: Encoding, jobs: &Receiver<Job>, errors: &Mutex<Option<HlsError>>) {
    let report = |e: HlsError| {
        state_error(&e);
        let mut slot = errors.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Video(frame, pts) => {
                if let Err(e) = state.video(&frame, pts) {
                    state.stats.set_error(e.to_string());
                    report(e);
                }
            }
            Job::Audio(buffer) => {
                if let Err(e) = state.audio(&buffer) {
                    state.stats.set_error(e.to_string());
                    report(e);
                }
            }
            Job::Finish(reply) => {
                let _ = reply.send(state.finish());
            }
        }
    }
}

fn state_error(e: &HlsError) {
    tracing::error!("{e}");
}

/// The encoder thread.
struct Worker {
    jobs: SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
    errors: Arc<Mutex<Option<HlsError>>>,
}

impl Worker {
    fn spawn(state: Encoding) -> Result<Self, HlsError> {
        let (jobs, queue) = sync_channel(QUEUE);
        let errors = Arc::new(Mutex::new(None));
        let shared = Arc::clone(&errors);
        let thread = std::thread::Builder::new()
            .name("streamlib-hls".into())
            .spawn(move || run(state, &queue, &shared))
            .map_err(|e| HlsError::Worker(format!("cannot start the encoder thread: {e}")))?;
        Ok(Self {
            jobs,
            thread: Some(thread),
            errors,
        })
    }

    fn take_error(&self) -> Option<HlsError> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn send(&self, job: Job) -> Result<(), HlsError> {
        self.jobs
            .send(job)
            .map_err(|_| HlsError::Worker("it exited".to_owned()))
    }

    /// Flushes the encoders, writes the last segment and the ending playlist.
    fn finish(mut self) -> Result<(), HlsError> {
        let (reply, done) = sync_channel(1);
        let result = self
            .send(Job::Finish(reply))
            .and_then(|()| {
                done.recv()
                    .map_err(|_| HlsError::Worker("it exited before finishing".to_owned()))
            })
            .and_then(|r| r);
        drop(self.jobs);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        result
    }
}

/// Streams the frames arriving on its input `"video"` (and the audio on `"audio"`, when
/// connected) as HLS into [`HlsConfig::location`], optionally serving it.
///
/// # Input
/// `"video"` takes CPU frames in RGBA, BGRA, I420 or NV12 (negotiation converts others),
/// ordered delivery; the first frame fixes the encoded size, later frames of another size
/// are scaled to it. A frame's presentation time is its frame number minus the first's, at
/// the negotiated rate (else the clock's): frames a source skipped leave gaps. `"audio"`
/// (optional, interleaved `f32`) becomes AAC at the rate and channel count negotiated on it
/// (48 kHz stereo when negotiation leaves them open), placed by its first buffer's timestamp
/// against the first frame's.
///
/// # Output
/// See the [crate docs](crate). Encoding, muxing and writing run on the sink's own thread,
/// fed through a queue of 8 jobs; a failed file write is counted
/// ([`HlsStats::write_errors`]) and logged and the stream goes on, an encoder error is
/// returned by the next `process`. The last segment is completed (and the playlist ended,
/// for event and VOD) when the inputs end or at `on_stop`. The server keeps serving the
/// folder until the sink is dropped, so a finished VOD stays watchable.
///
/// At creation the folder is created if missing, and files of an earlier run of a sink
/// (`index.m3u8`, `init.mp4`, `segN.m4s`, `segN.M.m4s`, `segN.ts`) are removed from it;
/// nothing else in it is touched.
pub struct HlsSink {
    config: HlsConfig,
    input: InputPort<VideoFrame>,
    audio_input: InputPort<AudioBuffer>,
    fps: Option<Rational>,
    audio: Option<(u32, u16)>,
    worker: Option<Worker>,
    server: Option<HttpServer>,
    feed: watch::Sender<Option<Arc<Published>>>,
    stats: HlsStats,
    first_frame_number: Option<u64>,
    last_pts: Option<i64>,
}

impl std::fmt::Debug for HlsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsSink")
            .field("config", &self.config)
            .field("serving", &self.server.as_ref().map(HttpServer::local_addr))
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a file an HLS sink writes.
fn is_ours(name: &str) -> bool {
    let segment = |rest: &str| {
        rest.split('.')
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    name == PLAYLIST_NAME
        || name == crate::INIT_NAME
        || (name.starts_with("seg")
            && (name.ends_with(".m4s") || name.ends_with(".ts"))
            && segment(&name[3..]))
        || (name.starts_with('.') && name.ends_with(".tmp"))
}

impl HlsSink {
    /// Checks the configuration, creates the folder and clears an earlier run's files from
    /// it. Nothing is encoded before the first frame; the server starts at `on_start` (or
    /// [`HlsSink::serve`]).
    pub fn new(config: HlsConfig) -> Result<Self, HlsError> {
        config.check()?;
        // FFmpeg logs every encoder's settings at its default level: errors only, unless
        // someone chose a level already.
        if matches!(
            ffmpeg_next::log::get_level(),
            Ok(ffmpeg_next::log::Level::Info)
        ) {
            ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
        }
        if config.codec == HlsCodec::H265 && !VideoCodec::H265.encoder_available() {
            return Err(HlsError::Config {
                property: "codec",
                value: "h265".to_owned(),
                reason: "this FFmpeg build has no libx265".to_owned(),
            });
        }
        let dir = &config.location;
        std::fs::create_dir_all(dir).map_err(|source| HlsError::Write {
            path: dir.clone(),
            source,
        })?;
        let entries = std::fs::read_dir(dir).map_err(|source| HlsError::Write {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_str().is_some_and(is_ours) && entry.path().is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // Can files be created there?
        crate::segmenter::write_atomic(dir, ".probe.tmp", b"")?;
        let _ = std::fs::remove_file(dir.join(".probe.tmp"));
        let (feed, _) = watch::channel(None);
        Ok(Self {
            config,
            input: InputPort::new("video", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 8 })
                .holding(QUEUE + 2)
                .with_format(Caps::Video(
                    VideoCaps::any().with_formats(&ACCEPTED_FORMATS),
                )),
            audio_input: InputPort::new("audio", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 256 })
                .with_format(Caps::audio())
                .optional(),
            fps: None,
            audio: None,
            worker: None,
            server: None,
            feed,
            stats: HlsStats::default(),
            first_frame_number: None,
            last_pts: None,
        })
    }

    /// The video input (`"video"`).
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The audio input (`"audio"`, optional).
    pub fn audio_input(&self) -> InputRef<AudioBuffer> {
        self.audio_input.handle()
    }

    /// A handle on the counters.
    pub fn stats(&self) -> HlsStats {
        self.stats.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// Sets the frame rate (what `on_start` takes from negotiation or the clock) and the
    /// audio track's rate and channels (`None`: no audio), for driving the sink by hand.
    pub fn set_format(&mut self, fps: Rational, audio: Option<(u32, u16)>) {
        self.fps = Some(fps);
        self.audio = audio;
    }

    /// Starts the HTTP server if [`HlsConfig::serve`] is set and it is not running; returns
    /// the playlist's URL.
    pub fn serve(&mut self) -> Result<Option<String>, HlsError> {
        let Some(addr) = self.config.serve else {
            return Ok(None);
        };
        if self.server.is_none() {
            let fps = self.fps.unwrap_or(FALLBACK_FPS);
            let seconds = |s: f64| {
                let frames = (s * f64::from(fps.num) / f64::from(fps.den.max(1)))
                    .round()
                    .max(1.0);
                frames * f64::from(fps.den) / f64::from(fps.num.max(1))
            };
            let settings = ServeSettings {
                dir: self.config.location.clone(),
                target: seconds(self.config.target_duration),
                part_target: (self.config.part_duration > 0.0)
                    .then(|| seconds(self.config.part_duration)),
            };
            let routes = router(settings, self.feed.subscribe(), &self.config.serve_path);
            self.server = Some(HttpServer::start(addr, routes, Limits::default())?);
        }
        Ok(self.url())
    }

    /// `http://ADDR{serve-path}/index.m3u8` while serving.
    pub fn url(&self) -> Option<String> {
        self.server
            .as_ref()
            .map(|s| s.url(&format!("{}/{PLAYLIST_NAME}", self.config.serve_path)))
    }

    /// Queues one frame for encoding (starting the encoder thread at the first). Used by
    /// `process`; public for driving the sink without a runtime.
    pub fn push_frame(&mut self, frame: &VideoFrame) -> Result<(), HlsError> {
        if frame.cpu_bytes().is_none() {
            return Err(HlsError::BadFrame(
                "GPU frames cannot be encoded; add a transfer to CPU".to_owned(),
            ));
        }
        if let Some(e) = self.worker.as_ref().and_then(Worker::take_error) {
            return Err(e);
        }
        if self.worker.is_none() {
            let state = Encoding {
                config: self.config.clone(),
                fps: self.fps.unwrap_or(FALLBACK_FPS),
                audio: self.audio,
                video_encoder: None,
                audio_encoder: None,
                segmenter: None,
                feed: self.feed.clone(),
                stats: self.stats.clone(),
                origin_ns: None,
                audio_offset: None,
            };
            self.worker = Some(Worker::spawn(state)?);
            self.first_frame_number = None;
            self.last_pts = None;
        }
        let first = *self.first_frame_number.get_or_insert(frame.frame_number());
        let mut pts = i64::try_from(frame.frame_number().saturating_sub(first)).unwrap_or(0);
        if let Some(last) = self.last_pts
            && pts <= last
        {
            pts = last + 1;
        }
        self.last_pts = Some(pts);
        match &self.worker {
            Some(worker) => worker.send(Job::Video(frame.clone(), pts)),
            None => Ok(()),
        }
    }

    /// Queues one audio buffer (dropped before the first frame, or without an audio track).
    pub fn push_audio(&mut self, buffer: &AudioBuffer) -> Result<(), HlsError> {
        match &self.worker {
            Some(worker) if self.audio.is_some() => worker.send(Job::Audio(buffer.clone())),
            _ => Ok(()),
        }
    }

    /// Completes the stream: the encoders flushed, the last segment written, the playlist
    /// ended (event, VOD). The next frame starts a new stream (sequence numbers from 0).
    pub fn finish(&mut self) -> Result<(), HlsError> {
        match self.worker.take() {
            Some(worker) => {
                let pending = worker.take_error();
                let finished = worker.finish();
                pending.map_or(finished, Err)
            }
            None => Ok(()),
        }
    }
}

impl StreamHandler for HlsSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).input(&self.audio_input)
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        let negotiated = self
            .input
            .negotiated_video()
            .and_then(|v| v.rate)
            .or_else(|| {
                self.input
                    .negotiated_format()
                    .as_ref()
                    .and_then(Caps::as_video)
                    .and_then(|v| v.rate.fixed())
                    .map(|r| r.0)
            });
        self.fps = Some(negotiated.unwrap_or(ctx.clock().fps));
        self.audio = if self.audio_input.is_connected() {
            let caps = self.audio_input.negotiated_format();
            let audio = caps.as_ref().and_then(Caps::as_audio);
            let rate = audio.and_then(|a| a.rate.fixed()).unwrap_or(48_000);
            let channels = audio
                .and_then(|a| a.channels.fixed())
                .map_or(2, |c| u16::try_from(c).unwrap_or(2).clamp(1, 2));
            Some((rate, channels))
        } else {
            None
        };
        if let Some(url) = self.serve()? {
            tracing::info!("hlssink: serving {url}");
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            self.push_frame(&frame)?;
        }
        while let Some(buffer) = self.audio_input.recv() {
            self.push_audio(&buffer)?;
        }
        if ctx.inputs_ended() {
            self.finish()?;
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        // What is still queued was produced before the stop: keep it.
        let mut result = Ok(());
        while let Some(frame) = self.input.recv() {
            if let Err(e) = self.push_frame(&frame) {
                result = Err(e);
                break;
            }
        }
        while let Some(buffer) = self.audio_input.recv() {
            if result.is_err() {
                break;
            }
            result = self.push_audio(&buffer);
        }
        let finished = self.finish();
        result.and(finished).map_err(HandlerError::from)
    }
}

impl Drop for HlsSink {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_files_are_cleared() {
        for ours in [
            "index.m3u8",
            "init.mp4",
            "seg0.m4s",
            "seg12.3.m4s",
            "seg4.ts",
            ".x.tmp",
        ] {
            assert!(is_ours(ours), "{ours}");
        }
        for theirs in [
            "index.html",
            "segment.m4s",
            "seg.ts",
            "seg1a.ts",
            "video.mp4",
        ] {
            assert!(!is_ours(theirs), "{theirs}");
        }
    }
}
