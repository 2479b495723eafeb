//! `FileWriter`: encodes the video frames it receives into a file through FFmpeg.

mod session;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ffmpeg_next as ffmpeg;
use streamlib_clock::Rational;
use streamlib_ports::{
    DeliveryMode, HandlerError, InputPort, InputRef, MemoryCaps, Ports, ProcessContext,
    StartContext, StreamHandler, VideoFrame,
};

use crate::FileError;

use session::{Session, SessionSpec};

/// The x264/x265 preset used when [`WriterConfig::preset`] is `None`.
pub const DEFAULT_PRESET: &str = "veryfast";

/// Presets libx264 and libx265 accept.
const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// The rate used when neither the config nor the runtime gave one (a handler driven by hand
/// without `on_start`).
const FALLBACK_FPS: Rational = Rational::fps(30);

/// A video codec the writer can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 through libx264, 4:2:0.
    H264,
    /// H.265 through libx265, 4:2:0.
    H265,
    /// VP9 through libvpx-vp9, 4:2:0, realtime speed.
    Vp9,
    /// FFV1 (lossless), in the input's own colour family: RGBA and BGRA frames are stored
    /// as bgra, so decoding gives back identical pixels.
    Ffv1,
}

impl VideoCodec {
    /// FFmpeg's encoder name (`libx264`, …).
    pub fn encoder_name(self) -> &'static str {
        OutputCodec::from(self).encoder_name()
    }
}

/// A container the writer can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// MP4 (`.mp4`): H.264, H.265, VP9.
    Mp4,
    /// Matroska (`.mkv`): every codec.
    Mkv,
    /// QuickTime (`.mov`): H.264, H.265, FFV1.
    Mov,
    /// WebM (`.webm`): VP9.
    Webm,
    /// YUV4MPEG (`.y4m`): uncompressed yuv420p, no codec choice.
    Y4m,
}

impl Container {
    /// The container for a file extension (case-insensitive), `None` for any other.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" | "m4v" => Some(Self::Mp4),
            "mkv" => Some(Self::Mkv),
            "mov" => Some(Self::Mov),
            "webm" => Some(Self::Webm),
            "y4m" => Some(Self::Y4m),
            _ => None,
        }
    }

    /// FFmpeg's muxer name.
    pub fn muxer(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Mkv => "matroska",
            Self::Mov => "mov",
            Self::Webm => "webm",
            Self::Y4m => "yuv4mpegpipe",
        }
    }

    /// The codec used when [`WriterConfig::codec`] is `None`: H.264, VP9 for WebM, and
    /// `None` for Y4M (uncompressed).
    pub fn default_codec(self) -> Option<VideoCodec> {
        match self {
            Self::Mp4 | Self::Mkv | Self::Mov => Some(VideoCodec::H264),
            Self::Webm => Some(VideoCodec::Vp9),
            Self::Y4m => None,
        }
    }

    /// Whether the container can hold `codec`.
    pub fn supports(self, codec: VideoCodec) -> bool {
        use VideoCodec::*;
        match self {
            Self::Mkv => true,
            Self::Mp4 => matches!(codec, H264 | H265 | Vp9),
            Self::Mov => matches!(codec, H264 | H265 | Ffv1),
            Self::Webm => codec == Vp9,
            Self::Y4m => false,
        }
    }
}

/// The encoder actually used: a [`VideoCodec`] or uncompressed video for Y4M.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputCodec {
    H264,
    H265,
    Vp9,
    Ffv1,
    RawVideo,
}

impl From<VideoCodec> for OutputCodec {
    fn from(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::H264 => Self::H264,
            VideoCodec::H265 => Self::H265,
            VideoCodec::Vp9 => Self::Vp9,
            VideoCodec::Ffv1 => Self::Ffv1,
        }
    }
}

impl OutputCodec {
    fn encoder_name(self) -> &'static str {
        match self {
            Self::H264 => "libx264",
            Self::H265 => "libx265",
            Self::Vp9 => "libvpx-vp9",
            Self::Ffv1 => "ffv1",
            Self::RawVideo => "wrapped_avframe",
        }
    }
}

/// How a [`FileWriter`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriterConfig {
    /// The file to create (replaced if it exists).
    pub path: PathBuf,
    /// The container; from the path's extension when `None`.
    pub container: Option<Container>,
    /// The codec; the container's [`default_codec`](Container::default_codec) when `None`.
    /// Must be `None` for Y4M.
    pub codec: Option<VideoCodec>,
    /// Constant quality (H.264/H.265 0..=51, VP9 0..=63); takes precedence over `bitrate`.
    /// Ignored by FFV1 and Y4M, which are lossless.
    pub crf: Option<u8>,
    /// Target bit rate in bits per second, used when `crf` is `None`.
    pub bitrate: Option<u64>,
    /// x264/x265 speed preset ([`DEFAULT_PRESET`] when `None`).
    pub preset: Option<String>,
    /// Frame rate of the file; the runtime clock's rate when `None`.
    pub fps: Option<Rational>,
}

impl WriterConfig {
    /// Defaults for `path`: container from the extension, its default codec.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }
}

/// Counters of a [`FileWriter`], readable from any thread while it runs.
#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    frames: AtomicU64,
    packets: AtomicU64,
    finalized: AtomicBool,
}

impl WriterStats {
    /// Frames handed to the encoder.
    pub fn frames_written(&self) -> u64 {
        self.inner.frames.load(Ordering::Relaxed)
    }

    /// Encoded packets written to the file.
    pub fn packets_written(&self) -> u64 {
        self.inner.packets.load(Ordering::Relaxed)
    }

    /// Whether the file has been completed (encoder flushed, trailer written).
    pub fn is_finalized(&self) -> bool {
        self.inner.finalized.load(Ordering::Acquire)
    }
}

enum State {
    /// No frame yet: the file does not exist.
    Idle,
    /// The file is open.
    Open(Box<Session>),
    /// Finalized (or abandoned after an error): later frames are refused.
    Closed,
}

/// Encodes the frames arriving on its input `"video"` (`[cpu]`, ordered delivery so no frame
/// is dropped) into a file.
///
/// The file is created at the first frame, whose size and format fix the stream's. A frame's
/// presentation time is its `frame_number` minus the first frame's, in 1/fps: frames the
/// clock skipped leave gaps, and a frame number that does not advance is written right after
/// the previous frame. The file is completed (encoder flushed, trailer written) when the
/// inputs end, at `on_stop`, or when the writer is dropped, whichever comes first.
///
/// H.264 and H.265 need even sizes in 4:2:0: an odd width or height loses its last column or
/// row. Lossy codecs encode yuv420p (BT.601, limited range); FFV1 encodes bgra for RGBA and
/// BGRA input (lossless, alpha kept), gray for Gray8, yuv420p for NV12/I420 and yuv422p for
/// UYVY; Y4M holds yuv420p.
///
/// ```no_run
/// use streamlib_handlers_file::{FileWriter, WriterConfig};
///
/// let writer = FileWriter::new(WriterConfig::new("/tmp/out.mp4"))?;
/// let stats = writer.stats();
/// // runtime.connect(&source.output(), &writer.input())?; … run …
/// println!("{} frames", stats.frames_written());
/// # Ok::<(), streamlib_handlers_file::FileError>(())
/// ```
pub struct FileWriter {
    path: PathBuf,
    container: Container,
    codec: OutputCodec,
    config: WriterConfig,
    fps: Option<Rational>,
    input: InputPort<VideoFrame>,
    state: State,
    first_frame_number: Option<u64>,
    last_pts: Option<i64>,
    stats: WriterStats,
}

impl FileWriter {
    /// Checks the configuration: a known container, a codec it can hold and that this FFmpeg
    /// can encode, valid quality options, and a parent directory where the file can be
    /// created. Nothing is written until the first frame.
    pub fn new(config: WriterConfig) -> Result<Self, FileError> {
        let path = config.path.clone();
        let container = match config.container {
            Some(c) => c,
            None => Container::from_path(&path).ok_or_else(|| FileError::UnsupportedContainer {
                path: path.clone(),
                container: path
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "(no extension)".to_owned()),
            })?,
        };
        let codec = match (container, config.codec) {
            (Container::Y4m, None) => OutputCodec::RawVideo,
            (Container::Y4m, Some(codec)) => {
                return Err(FileError::UnsupportedCodec {
                    path,
                    codec: codec.encoder_name().to_owned(),
                    reason: "y4m holds uncompressed video only; leave the codec unset".to_owned(),
                });
            }
            (c, requested) => {
                let codec = requested.or(c.default_codec()).unwrap_or(VideoCodec::H264);
                if !c.supports(codec) {
                    return Err(FileError::UnsupportedCodec {
                        path,
                        codec: codec.encoder_name().to_owned(),
                        reason: format!("the {} container cannot hold it", c.muxer()),
                    });
                }
                OutputCodec::from(codec)
            }
        };
        check_options(&config, codec)?;
        ffmpeg::init().map_err(|e| FileError::UnsupportedCodec {
            path: path.clone(),
            codec: codec.encoder_name().to_owned(),
            reason: format!("FFmpeg failed to initialise: {e}"),
        })?;
        quiet_ffmpeg_logs();
        if ffmpeg::encoder::find_by_name(codec.encoder_name()).is_none() {
            return Err(FileError::UnsupportedCodec {
                path,
                codec: codec.encoder_name().to_owned(),
                reason: "this FFmpeg build has no such encoder".to_owned(),
            });
        }
        check_writable(&path)?;
        Ok(Self {
            path,
            container,
            codec,
            fps: config.fps,
            config,
            input: InputPort::new("video", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 8 }),
            state: State::Idle,
            first_frame_number: None,
            last_pts: None,
            stats: WriterStats::default(),
        })
    }

    /// The input (`"video"`).
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// A handle on the counters, usable after the writer moved into a runtime.
    pub fn stats(&self) -> WriterStats {
        self.stats.clone()
    }

    /// Frames handed to the encoder so far.
    pub fn frames_written(&self) -> u64 {
        self.stats.frames_written()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container.
    pub fn container(&self) -> Container {
        self.container
    }

    /// The codec (`None` for Y4M's uncompressed video).
    pub fn codec(&self) -> Option<VideoCodec> {
        match self.codec {
            OutputCodec::H264 => Some(VideoCodec::H264),
            OutputCodec::H265 => Some(VideoCodec::H265),
            OutputCodec::Vp9 => Some(VideoCodec::Vp9),
            OutputCodec::Ffv1 => Some(VideoCodec::Ffv1),
            OutputCodec::RawVideo => None,
        }
    }

    /// Encodes one frame, opening the file first if it is the first. Used by `process`;
    /// public for driving the writer without a runtime.
    pub fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), FileError> {
        let Some(bytes) = frame.cpu_bytes() else {
            return Err(self.bad_frame("GPU frames cannot be written; add a transfer to CPU"));
        };
        if matches!(self.state, State::Idle) {
            let spec = SessionSpec {
                path: &self.path,
                container: self.container,
                codec: self.codec,
                config: &self.config,
                fps: self.fps.unwrap_or(FALLBACK_FPS),
            };
            match Session::open(&spec, frame.layout()) {
                Ok(session) => self.state = State::Open(Box::new(session)),
                Err(e) => {
                    // A half-written header is useless; leave no stray file behind.
                    self.state = State::Closed;
                    let _ = std::fs::remove_file(&self.path);
                    return Err(e);
                }
            }
        }
        let pts = self.next_pts(frame.frame_number());
        let State::Open(session) = &mut self.state else {
            return Err(FileError::Encode {
                path: self.path.clone(),
                reason: "the file is already finalized; create a new FileWriter".to_owned(),
            });
        };
        let expected = session.input_layout();
        if frame.layout() != expected {
            return Err(FileError::BadFrame {
                path: self.path.clone(),
                reason: format!(
                    "frame is {}x{} {} (stride {}), the stream was started with {}x{} {} (stride {})",
                    frame.width(),
                    frame.height(),
                    frame.format(),
                    frame.stride(),
                    expected.width(),
                    expected.height(),
                    expected.format(),
                    expected.stride()
                ),
            });
        }
        session.write(bytes, pts)?;
        self.last_pts = Some(pts);
        self.stats.inner.frames.fetch_add(1, Ordering::Relaxed);
        self.stats
            .inner
            .packets
            .store(session.packets(), Ordering::Relaxed);
        Ok(())
    }

    /// Completes the file: flushes the encoder and writes the trailer. Safe to call more
    /// than once; without any frame written there is no file and nothing to do.
    pub fn finish(&mut self) -> Result<(), FileError> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Open(mut session) = state else {
            self.state = state;
            return Ok(());
        };
        let result = session.finish();
        self.stats
            .inner
            .packets
            .store(session.packets(), Ordering::Relaxed);
        if result.is_ok() {
            self.stats.inner.finalized.store(true, Ordering::Release);
            tracing::debug!(
                path = %self.path.display(),
                frames = self.stats.frames_written(),
                "file finalized"
            );
        }
        result
    }

    /// The presentation time of the frame numbered `frame_number`, in frames.
    fn next_pts(&mut self, frame_number: u64) -> i64 {
        let first = *self.first_frame_number.get_or_insert(frame_number);
        let pts = i64::try_from(frame_number.saturating_sub(first)).unwrap_or(i64::MAX);
        match self.last_pts {
            Some(last) if pts <= last => last + 1,
            _ => pts,
        }
    }

    fn bad_frame(&self, reason: &str) -> FileError {
        FileError::BadFrame {
            path: self.path.clone(),
            reason: reason.to_owned(),
        }
    }
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("path", &self.path)
            .field("container", &self.container)
            .field("codec", &self.codec)
            .field("frames_written", &self.stats.frames_written())
            .finish_non_exhaustive()
    }
}

impl StreamHandler for FileWriter {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        if self.config.fps.is_none() {
            self.fps = Some(ctx.clock().fps);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            self.write_frame(&frame)?;
        }
        if ctx.inputs_ended() {
            self.finish()?;
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        // Frames still queued were produced before the stop: keep them.
        let mut result = Ok(());
        while let Some(frame) = self.input.recv() {
            if let Err(e) = self.write_frame(&frame) {
                result = Err(e);
                break;
            }
        }
        let finished = self.finish();
        result.and(finished).map_err(HandlerError::from)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }
}

/// Validates crf, bitrate and preset for the codec.
fn check_options(config: &WriterConfig, codec: OutputCodec) -> Result<(), FileError> {
    if let Some(crf) = config.crf {
        let (max, range) = match codec {
            OutputCodec::Vp9 => (63, "0..=63"),
            _ => (51, "0..=51"),
        };
        if crf > max {
            return Err(FileError::OutOfRange {
                what: "crf",
                value: crf.to_string(),
                range,
            });
        }
    }
    if config.bitrate == Some(0) {
        return Err(FileError::OutOfRange {
            what: "bitrate",
            value: "0".to_owned(),
            range: "1..",
        });
    }
    if let Some(preset) = &config.preset
        && !PRESETS.contains(&preset.as_str())
    {
        return Err(FileError::OutOfRange {
            what: "preset",
            value: preset.clone(),
            range: "ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo",
        });
    }
    if let Some(fps) = config.fps
        && (fps.num == 0 || fps.den == 0 || fps.num > i32::MAX as u32 || fps.den > i32::MAX as u32)
    {
        return Err(FileError::OutOfRange {
            what: "fps",
            value: format!("{}/{}", fps.num, fps.den),
            range: "1/1..2^31",
        });
    }
    Ok(())
}

/// Fails unless the file can be created: the parent directory exists and allows writing.
/// Probes by creating the file, and removes it again if it did not exist before.
fn check_writable(path: &Path) -> Result<(), FileError> {
    let unwritable = |reason: String| FileError::Unwritable {
        path: path.to_path_buf(),
        reason,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(unwritable(format!(
                "{} is not a directory",
                parent.display()
            )));
        }
        Err(e) => {
            return Err(unwritable(format!(
                "directory {} is not usable: {e}",
                parent.display()
            )));
        }
    }
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| unwritable(e.to_string()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Keeps encoders' statistics (x264 prints them at info level) off stderr, unless the
/// application already chose a quieter or louder level than FFmpeg's default.
fn quiet_ffmpeg_logs() {
    if matches!(ffmpeg::log::get_level(), Ok(ffmpeg::log::Level::Info)) {
        ffmpeg::log::set_level(ffmpeg::log::Level::Error);
    }
}
