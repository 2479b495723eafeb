//! `FileWriter`: encodes the video frames (and audio buffers) it receives into a file through
//! FFmpeg.

mod audio;
mod checks;
mod codec;
mod session;
mod worker;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ffmpeg_next as ffmpeg;
use streamlib_clock::{Pacing, Rational};
use streamlib_ports::{
    AudioBuffer, Caps, DeliveryMode, HandlerError, InputPort, InputRef, MemoryCaps, PixelFormat,
    Ports, ProcessContext, StartContext, StreamHandler, VideoCaps, VideoFrame, VideoInfo,
};

use crate::FileError;

pub use audio::{AudioCodec, AudioConfig};
use checks::{check_options, check_writable, quiet_ffmpeg_logs};
use codec::OutputCodec;
pub use codec::{Container, VideoCodec};
use session::{Session, SessionSpec};
use worker::Worker;

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

/// The formats the input accepts, all of which the encoders' converter reads; 4:2:0 first,
/// as the lossy codecs encode it.
const ACCEPTED_FORMATS: [PixelFormat; 6] = [
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Uyvy,
    PixelFormat::Rgba8,
    PixelFormat::Bgra8,
    PixelFormat::Gray8,
];

/// Audio buffers that may wait for the first video frame (the file opens with it): about
/// 10 s of 1024-sample buffers at 48 kHz.
const MAX_PENDING_AUDIO: usize = 512;

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
    /// Frame rate of the file; when `None`, the rate negotiated on the input (a file
    /// reader's own rate), else the runtime clock's.
    pub fps: Option<Rational>,
    /// The audio track, fed by the [`audio_input`](FileWriter::audio_input). `None`: a file
    /// without audio, unless the audio input is connected, in which case the track takes the
    /// container's default codec and the rate and channels negotiated on that input
    /// ([`AudioConfig::negotiated`]); a rate or channel count of 0 is taken from the
    /// negotiation too. Y4M cannot hold audio.
    pub audio: Option<AudioConfig>,
    /// Whether the file is written in a layout a crash cannot ruin: fragmented MP4/MOV
    /// (`empty_moov`, a fragment per keyframe and at least every 0.5 s) and Matroska/WebM in
    /// 0.5 s clusters, flushed as they are muxed. A `kill -9` then loses only the last
    /// fragment and the frames inside the encoder; the classic layout (`Some(false)`) writes
    /// MP4's index at the end and loses the whole recording.
    ///
    /// `None` (auto) decides at `on_start`: fragmented when the runtime clock paces in real
    /// time (a live recording, which cannot be redone), classic when the pipeline paces
    /// itself (`--clock free`, a file read fast: a conversion that can be rerun, and classic
    /// MP4 is what players seek best). A writer driven by hand, without `on_start`, is
    /// classic.
    pub fragmented: Option<bool>,
    /// FFmpeg's `protocol_whitelist` when opening the output: `file` when `None`, so a
    /// location like `udp://…`, `tcp://…?listen` or `pipe:1` is never opened as a network
    /// output or a pipe. Comma-separated protocol names to allow more.
    pub protocol_whitelist: Option<String>,
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
    repeats: AtomicU64,
    packets: AtomicU64,
    audio_samples: AtomicU64,
    audio_packets: AtomicU64,
    audio_unaligned: AtomicBool,
    finalized: AtomicBool,
    files: AtomicU64,
}

impl WriterStats {
    /// Frames handed to the encoder.
    pub fn frames_written(&self) -> u64 {
        self.inner.frames.load(Ordering::Relaxed)
    }

    /// Frames not written because they repeat the previous one (same frame number and
    /// timestamp: a source that repeated its frame on a faster clock).
    pub fn repeats_skipped(&self) -> u64 {
        self.inner.repeats.load(Ordering::Relaxed)
    }

    /// Encoded video packets written to the file.
    pub fn packets_written(&self) -> u64 {
        self.inner.packets.load(Ordering::Relaxed)
    }

    /// Audio samples per channel handed to the audio encoder (as they arrived, before any
    /// rate conversion).
    pub fn audio_samples_written(&self) -> u64 {
        self.inner.audio_samples.load(Ordering::Relaxed)
    }

    /// Encoded audio packets written to the file.
    pub fn audio_packets_written(&self) -> u64 {
        self.inner.audio_packets.load(Ordering::Relaxed)
    }

    /// Whether the audio track's first buffer was stamped more than 10 s from the first
    /// video frame, so that the two were taken for two clocks and the track started with the
    /// first frame instead of by timestamp (and lip sync is not what the stamps say).
    pub fn audio_clock_mismatch(&self) -> bool {
        self.inner.audio_unaligned.load(Ordering::Relaxed)
    }

    /// Whether the file has been completed (encoder flushed, trailer written).
    pub fn is_finalized(&self) -> bool {
        self.inner.finalized.load(Ordering::Acquire)
    }

    /// Files opened: 1 for a run without restarts, one more for each restart that wrote a
    /// frame (see [`FileWriter`]'s restarts).
    pub fn files_opened(&self) -> u64 {
        self.inner.files.load(Ordering::Relaxed)
    }
}

enum State {
    /// No frame yet: the file does not exist.
    Idle,
    /// The file is open; its session runs on the encoder thread.
    Open(Worker),
    /// Finalized (or abandoned after an error): later frames are refused.
    Closed,
}

/// Encodes the frames arriving on its input `"video"` (`[cpu]`, ordered delivery so no frame
/// is dropped) into a file.
///
/// # Caps and timing
/// The input accepts every pixel format (all convert to what the codec encodes). At
/// `on_start` it learns the negotiated format, size and rate: the file's rate is
/// [`WriterConfig::fps`], else the negotiated rate (a [`FileReader`](crate::FileReader)'s is
/// its file's), else the clock's. The file is created at the first frame, which must have
/// the negotiated format and size (without negotiation, its own fix the stream's). A frame's
/// presentation time is its `frame_number` minus the first frame's, in periods of that rate:
/// N frames of an R fps source give an N-frame file at R fps, frames the source skipped leave
/// gaps, and a frame number that does not advance is written right after the previous frame.
/// A frame that repeats the previous one (same frame number and timestamp, as a source on a
/// faster clock sends) is not written again ([`WriterStats::repeats_skipped`]).
///
/// The file is completed (encoder flushed, trailer written) when the
/// inputs end, at `on_stop`, or when the writer is dropped, whichever comes first.
///
/// # Crashes and restarts
/// A live recording is fragmented by default, so a killed process leaves a readable file
/// ([`WriterConfig::fragmented`]). Once completed or failed, a writer refuses frames; when
/// the runtime restarts it (its stream's restart policy: `on_stop`, then `on_start`), it
/// writes the next file, numbered after the configured path: `out.mp4`, then `out-0001.mp4`,
/// `out-0002.mp4`, …, each a complete file starting at its own first frame, of that frame's
/// size. The counters add up across files. A numbered file is always a new one: a number
/// whose name already exists (a file of an earlier run, a symlink, a FIFO, anything) is
/// skipped, never overwritten or followed, and the file is created exclusively before
/// FFmpeg writes into it.
///
/// Converting, encoding and muxing run on the writer's own encoder thread, fed by reference
/// through a queue of four jobs: a frame's encoding overlaps the pipeline's next tick instead
/// of lengthening this one. When the encoder falls behind, the writer waits for it (frames are
/// never dropped); an encoder error is returned by the writer's next call, and the file is
/// still completed up to it. `frames_written` counts frames accepted; packets and audio
/// counts follow the encoder thread.
///
/// # Audio
/// When the input `"audio"` is connected (ordered delivery, so no buffer is lost), the file
/// gets an audio track: [`WriterConfig::audio`]'s, with what it leaves open (all of it when
/// `None`: codec, rate, channels) taken from the container's default codec and the caps
/// negotiated on that input at `on_start`. A configured track whose input is not connected,
/// a container without audio (Y4M) or a rate the codec refuses fail `on_start` (or `new`,
/// when the configuration fixes everything) with [`FileError::AudioTrack`] naming the file.
/// AAC (FFmpeg's native encoder) goes in MP4, MOV and Matroska,
/// Opus (libopus) in WebM and Matroska, 16-bit PCM in MOV and Matroska, FLAC in Matroska;
/// Y4M cannot hold audio. Incoming interleaved f32 is
/// converted by swresample straight into the encoder's frames (1024 samples for AAC, planar
/// float), resampling and remixing buffers whose rate or channel count differ from the
/// track's. The track is placed on the video's timeline by the first buffer's timestamp
/// against the first frame's (file time zero): a sample and a frame stamped with the same
/// clock time play together, samples stamped before the first frame are cut, and a later
/// first buffer starts the track that much into the file (stamps more than 10 s apart are
/// taken for two clocks, and the track starts with the first frame). From there the track runs
/// contiguously, its time counted in samples (gaps in buffer timestamps are not
/// reproduced); buffers that arrive before the first video frame wait for it. The encoder is flushed with the video's when the file is
/// completed.
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
    /// The file being written (or to be written at the next frame).
    path: PathBuf,
    /// The configured path, which numbered files after a restart are named after.
    base_path: PathBuf,
    /// The current file's number (0 for the configured path until the first restart).
    restarts: u32,
    /// The layout, as resolved by `on_start` (classic until then, for auto).
    fragmented: bool,
    container: Container,
    codec: OutputCodec,
    config: WriterConfig,
    fps: Option<Rational>,
    input: InputPort<VideoFrame>,
    /// The audio track's codec and format, once settled: at `new` when the configuration
    /// gives them, at `on_start` when they follow the audio input's negotiated caps.
    audio_track: Option<(AudioCodec, AudioConfig)>,
    audio_input: InputPort<AudioBuffer>,
    /// Audio that arrived before the file was opened.
    pending_audio: VecDeque<AudioBuffer>,
    state: State,
    /// What negotiation fixed on the input, learned at `on_start`.
    negotiated: Option<VideoInfo>,
    first_frame_number: Option<u64>,
    last_pts: Option<i64>,
    /// Frame number and timestamp of the last frame written, to skip repeats.
    last_frame: Option<(u64, u64)>,
    stats: WriterStats,
}

impl FileWriter {
    /// Checks the configuration: a known container, a codec it can hold and that this FFmpeg
    /// can encode, valid quality options, an audio track the container can hold (opening its
    /// encoder once), and a parent directory where the file can be created. Nothing is
    /// written until the first frame.
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
        let audio_track = match &config.audio {
            Some(audio) => {
                let codec = audio::check(&path, container, audio)?;
                audio.is_complete().then(|| (codec, audio.clone()))
            }
            None => None,
        };
        check_writable(&path)?;
        Ok(Self {
            base_path: path.clone(),
            path,
            restarts: 0,
            fragmented: config.fragmented.unwrap_or(false),
            container,
            codec,
            fps: config.fps,
            config,
            input: InputPort::new("video", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 8 })
                .holding(worker::FRAMES_HELD)
                .with_format(Caps::Video(
                    VideoCaps::any().with_formats(&ACCEPTED_FORMATS),
                )),
            audio_track,
            audio_input: InputPort::new("audio", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 256 })
                .with_format(Caps::audio())
                .optional(),
            pending_audio: VecDeque::with_capacity(64),
            state: State::Idle,
            negotiated: None,
            first_frame_number: None,
            last_pts: None,
            last_frame: None,
            stats: WriterStats::default(),
        })
    }

    /// The input (`"video"`).
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The audio input (`"audio"`, interleaved f32, ordered delivery); connect it when
    /// [`WriterConfig::audio`] is set.
    pub fn audio_input(&self) -> InputRef<AudioBuffer> {
        self.audio_input.handle()
    }

    /// The audio track's codec, if the file has one (known at `new` when the configuration
    /// fixes rate and channels, else from `on_start`).
    pub fn audio_codec(&self) -> Option<AudioCodec> {
        self.audio_track.as_ref().map(|(codec, _)| *codec)
    }

    /// The audio track's format once settled (see [`audio_codec`](Self::audio_codec)).
    pub fn audio_config(&self) -> Option<&AudioConfig> {
        self.audio_track.as_ref().map(|(_, config)| config)
    }

    /// A handle on the counters, usable after the writer moved into a runtime.
    pub fn stats(&self) -> WriterStats {
        self.stats.clone()
    }

    /// Frames handed to the encoder so far.
    pub fn frames_written(&self) -> u64 {
        self.stats.frames_written()
    }

    /// The file being written: the configured path, or after a restart the numbered file
    /// that replaced it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is (or will be) written in the crash-proof layout.
    pub fn is_fragmented(&self) -> bool {
        self.fragmented
    }

    /// Gets ready for the next file after a completed or failed one: the next numbered path,
    /// a fresh timeline. Nothing is created until its first frame.
    fn next_file(&mut self) {
        self.restarts = self.restarts.saturating_add(1);
        self.skip_taken_numbers();
        self.state = State::Idle;
        self.first_frame_number = None;
        self.last_pts = None;
        self.last_frame = None;
        self.pending_audio.clear();
        self.stats.inner.finalized.store(false, Ordering::Release);
        tracing::info!(path = %self.path.display(), "restarted: writing the next file");
    }

    /// Moves `restarts` and `path` to the first numbered file, from the current number on,
    /// whose name does not exist at all (`symlink_metadata`: a dangling symlink exists too).
    fn skip_taken_numbers(&mut self) {
        loop {
            self.path = numbered_path(&self.base_path, self.restarts);
            if self.restarts == u32::MAX || std::fs::symlink_metadata(&self.path).is_err() {
                return;
            }
            self.restarts += 1;
        }
    }

    /// Creates the numbered file of a restart exclusively (`O_CREAT | O_EXCL`, which neither
    /// follows a symlink nor opens a FIFO or device), moving on to the next number if the
    /// name was taken since [`skip_taken_numbers`](Self::skip_taken_numbers) looked, so
    /// FFmpeg only ever writes into a new regular file of this writer's.
    fn reserve_numbered_file(&mut self) -> Result<(), FileError> {
        for _ in 0..MAX_NUMBER_TRIES {
            self.skip_taken_numbers();
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.path)
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.restarts = self.restarts.saturating_add(1);
                }
                Err(e) => {
                    return Err(FileError::Unwritable {
                        path: self.path.clone(),
                        reason: format!("cannot create the restart's file: {e}"),
                    });
                }
            }
        }
        Err(FileError::Unwritable {
            path: self.path.clone(),
            reason: format!(
                "{MAX_NUMBER_TRIES} numbered names in a row were taken while creating them"
            ),
        })
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

    /// The file's frame rate: [`WriterConfig::fps`], else the negotiated rate, else the
    /// clock's (known from `on_start`; 30 fps before it).
    pub fn fps(&self) -> Rational {
        self.fps.unwrap_or(FALLBACK_FPS)
    }

    /// Encodes one frame, opening the file first if it is the first; a repeat of the
    /// previous frame (same frame number and timestamp) is skipped. Used by `process`;
    /// public for driving the writer without a runtime.
    pub fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), FileError> {
        if frame.cpu_bytes().is_none() {
            return Err(self.bad_frame("GPU frames cannot be written; add a transfer to CPU"));
        }
        let timing = (frame.frame_number(), frame.timestamp_ns());
        if matches!(self.state, State::Open(_)) && self.last_frame == Some(timing) {
            self.stats.inner.repeats.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if matches!(self.state, State::Idle) {
            if let Some(info) = self.negotiated
                && (frame.format(), frame.width(), frame.height())
                    != (info.format, info.width, info.height)
            {
                return Err(FileError::BadFrame {
                    path: self.path.clone(),
                    reason: format!(
                        "frame is {}x{} {}, the input negotiated {}x{} {}",
                        frame.width(),
                        frame.height(),
                        frame.format(),
                        info.width,
                        info.height,
                        info.format
                    ),
                });
            }
            if self.restarts > 0
                && let Err(e) = self.reserve_numbered_file()
            {
                self.state = State::Closed;
                return Err(e);
            }
            let spec = SessionSpec {
                path: &self.path,
                container: self.container,
                codec: self.codec,
                config: &self.config,
                fps: self.fps(),
                audio: self
                    .audio_track
                    .as_ref()
                    .map(|(codec, config)| (*codec, config)),
                fragmented: self.fragmented,
                origin_ns: frame.timestamp_ns(),
            };
            match Session::open(&spec, frame.layout())
                .and_then(|session| Worker::spawn(session, self.stats.clone()))
            {
                Ok(worker) => {
                    self.state = State::Open(worker);
                    self.stats.inner.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // A half-written header is useless; leave no stray file behind.
                    self.state = State::Closed;
                    let _ = std::fs::remove_file(&self.path);
                    return Err(e);
                }
            }
            while let Some(buffer) = self.pending_audio.pop_front() {
                self.write_audio(&buffer)?;
            }
        }
        let pts = self.next_pts(frame.frame_number());
        let State::Open(worker) = &mut self.state else {
            return Err(FileError::Encode {
                path: self.path.clone(),
                reason: "the file is already finalized; a restart (or a new FileWriter) \
                         writes the next file"
                    .to_owned(),
            });
        };
        let expected = worker.layout();
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
        worker.video(frame.clone(), pts)?;
        self.last_pts = Some(pts);
        self.last_frame = Some(timing);
        self.stats.inner.frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues one audio buffer on the audio track, encoding each frame it completes; before
    /// the first video frame opened the file it waits (up to about 10 s). Used by `process`;
    /// public for driving the writer without a runtime.
    pub fn write_audio(&mut self, buffer: &AudioBuffer) -> Result<(), FileError> {
        if self.audio_track.is_none() {
            return Err(FileError::AudioTrack {
                path: self.path.clone(),
                reason: "audio arrived but the file has no audio track: set \
                         WriterConfig::audio's sample rate and channels, or run the writer \
                         in a runtime that negotiates its audio input"
                    .to_owned(),
            });
        }
        match &mut self.state {
            State::Idle if self.pending_audio.len() < MAX_PENDING_AUDIO => {
                self.pending_audio.push_back(buffer.clone());
                Ok(())
            }
            State::Idle => Err(FileError::AudioTrack {
                path: self.path.clone(),
                reason: format!(
                    "{MAX_PENDING_AUDIO} audio buffers arrived before any video frame; the \
                     file opens with the first frame"
                ),
            }),
            State::Open(worker) => worker.audio(buffer.clone()),
            State::Closed => Err(FileError::Encode {
                path: self.path.clone(),
                reason: "the file is already finalized; a restart (or a new FileWriter) \
                         writes the next file"
                    .to_owned(),
            }),
        }
    }

    /// Completes the file: flushes the encoders and writes the trailer. Safe to call more
    /// than once; without any frame written there is no file and nothing to do.
    pub fn finish(&mut self) -> Result<(), FileError> {
        if !self.pending_audio.is_empty() && matches!(self.state, State::Idle) {
            tracing::warn!(
                path = %self.path.display(),
                buffers = self.pending_audio.len(),
                "audio without any video frame: no file written"
            );
        }
        self.pending_audio.clear();
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Open(mut worker) = state else {
            self.state = state;
            return Ok(());
        };
        // Encodes what is still queued, flushes, writes the trailer, joins the thread.
        let result = worker.finish();
        if result.is_ok() {
            tracing::debug!(
                path = %self.path.display(),
                frames = self.stats.frames_written(),
                "file finalized"
            );
        }
        result
    }

    /// Fills what `config` leaves to negotiation (a rate or channel count of 0) from the
    /// caps negotiated on the audio input, and checks the track (its encoder opened once).
    fn settle_audio(
        &self,
        mut config: AudioConfig,
    ) -> Result<(AudioCodec, AudioConfig), FileError> {
        let negotiated = self.audio_input.negotiated_format();
        let audio = negotiated.as_ref().and_then(Caps::as_audio);
        let rate = audio.and_then(|a| a.rate.fixed());
        let channels = audio.and_then(|a| a.channels.fixed());
        if config.sample_rate == 0 {
            config.sample_rate = rate.ok_or_else(|| self.unsettled("sample rate", "audio-rate"))?;
        }
        if config.channels == 0 {
            let fixed =
                channels.ok_or_else(|| self.unsettled("channel count", "audio-channels"))?;
            config.channels = u16::try_from(fixed).unwrap_or(u16::MAX);
        }
        let codec = audio::check(&self.path, self.container, &config)?;
        Ok((codec, config))
    }

    fn unsettled(&self, what: &str, property: &str) -> FileError {
        FileError::AudioTrack {
            path: self.path.clone(),
            reason: format!(
                "the audio input's {what} was not fixed by negotiation (its source does not \
                 say); set it (AudioConfig, or `{property}` in pipeline text)"
            ),
        }
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

/// Names found taken one after another while creating a restart's file, after which the
/// writer gives up (something keeps creating them).
const MAX_NUMBER_TRIES: u32 = 1000;

/// `out.mp4` numbered `n`: `out-0001.mp4` (no extension: `out-0001`).
fn numbered_path(base: &Path, n: u32) -> PathBuf {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{n:04}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n:04}"),
    };
    base.with_file_name(name)
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
        Ports::new().input(&self.input).input(&self.audio_input)
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.negotiated = self.input.negotiated_video();
        if self.config.fps.is_none() {
            let negotiated = self.negotiated.and_then(|v| v.rate).or_else(|| {
                // Size or format left open, the rate may still be fixed.
                self.input
                    .negotiated_format()
                    .as_ref()
                    .and_then(Caps::as_video)
                    .and_then(|v| v.rate.fixed())
                    .map(|r| r.0)
            });
            self.fps = Some(negotiated.unwrap_or(ctx.clock().fps));
        }
        self.fragmented = self
            .config
            .fragmented
            .unwrap_or(ctx.clock().pacing == Pacing::Realtime);
        if matches!(self.state, State::Closed) {
            self.next_file();
        }
        match (&self.config.audio, self.audio_input.is_connected()) {
            (Some(_), false) => Err(FileError::AudioTrack {
                path: self.path.clone(),
                reason: "WriterConfig::audio is set but the audio input is not connected"
                    .to_owned(),
            }
            .into()),
            (configured, true) => {
                let config = configured.clone().unwrap_or_else(AudioConfig::negotiated);
                self.audio_track = Some(self.settle_audio(config)?);
                Ok(())
            }
            (None, false) => Ok(()),
        }
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            self.write_frame(&frame)?;
        }
        while let Some(buffer) = self.audio_input.recv() {
            self.write_audio(&buffer)?;
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
        while let Some(buffer) = self.audio_input.recv() {
            if result.is_err() {
                break;
            }
            result = self.write_audio(&buffer);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use streamlib_buffers::PooledBuf;
    use streamlib_ports::{FrameLayout, PixelFormat, VideoFrame};

    use super::*;

    /// A name taken after the restart chose its number (here a symlink made between
    /// `next_file` and the first frame) is not followed: the file is created exclusively,
    /// and the writer moves on to the next number.
    #[test]
    fn a_name_taken_before_the_first_frame_is_skipped() {
        let dir =
            std::env::temp_dir().join(format!("streamlib-writer-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("precious.txt");
        std::fs::write(&target, b"keep").unwrap();
        let mut writer = FileWriter::new(WriterConfig {
            fps: Some(Rational::fps(30)),
            ..WriterConfig::new(dir.join("out.mkv"))
        })
        .unwrap();
        writer.state = State::Closed;
        writer.next_file();
        assert_eq!(writer.path(), dir.join("out-0001.mkv"));
        std::os::unix::fs::symlink(&target, dir.join("out-0001.mkv")).unwrap();

        let layout = FrameLayout::new(64, 48, PixelFormat::Rgba8).unwrap();
        let frame = VideoFrame::cpu(layout, PooledBuf::from_vec(vec![90; layout.buffer_len()]))
            .unwrap()
            .with_timing(0, 0, streamlib_clock::ClockSourceId::SOFTWARE);
        writer.write_frame(&frame).unwrap();
        assert_eq!(writer.path(), dir.join("out-0002.mkv"));
        drop(writer);
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::metadata(dir.join("out-0002.mkv")).unwrap().len() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
