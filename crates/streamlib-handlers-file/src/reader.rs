//! [`FileReader`]: decodes the video of a media file into pooled frames.

mod convert;
mod decode;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ffmpeg_next::frame;
use streamlib_clock::Rational;
use streamlib_ports::{
    HandlerError, MemoryCaps, OutputPort, OutputRef, PixelFormat, Ports, ProcessContext,
    StreamHandler, VideoFrame,
};

use crate::FileError;
use convert::Converter;
use decode::{Decoded, VideoDecoder};

/// Which video stream of the file to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamSelect {
    /// The stream FFmpeg ranks best (usually the default or largest video stream).
    #[default]
    Best,
    /// The stream at this container index (as `ffprobe` numbers them).
    Index(usize),
}

/// How decoded frames are matched to clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// Follow the runtime clock: each tick shows the frame whose presentation time is due at
    /// the tick's time since the first tick, dropping or repeating frames to match the rate.
    #[default]
    Realtime,
    /// One decoded frame per tick: use with the free-running clock for offline work.
    AsFastAsPossible,
}

/// What to do when FFmpeg reports damaged data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeErrorPolicy {
    /// Count the error ([`ReaderStats::decode_errors`]) and continue with the next packet.
    #[default]
    Skip,
    /// Fail the handler with [`FileError::Decode`].
    Fail,
}

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderConfig {
    /// The file.
    pub path: PathBuf,
    /// Which video stream.
    pub stream: StreamSelect,
    /// Output pixel format (every [`PixelFormat`] is supported; swscale converts).
    pub format: PixelFormat,
    /// How frames follow ticks.
    pub pacing: Pacing,
    /// Start again from `start_offset` at the end instead of ending the stream.
    pub looping: bool,
    /// Where to start: frames before it are decoded and discarded, so the first frame shown
    /// is the first whose timestamp is at or after it.
    pub start_offset: Duration,
    /// What to do with damaged data.
    pub on_decode_error: DecodeErrorPolicy,
    /// FFmpeg decoder threads (frame and slice threading); 0 lets FFmpeg choose.
    pub threads: usize,
}

impl ReaderConfig {
    /// Defaults for `path`: best video stream, RGBA, realtime pacing, no loop, skip errors,
    /// automatic threads.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            stream: StreamSelect::Best,
            format: PixelFormat::Rgba8,
            pacing: Pacing::Realtime,
            looping: false,
            start_offset: Duration::ZERO,
            on_decode_error: DecodeErrorPolicy::Skip,
            threads: 0,
        }
    }
}

/// What the container says about the chosen video stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Coded width in pixels (output frames have the first decoded frame's size).
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Average frame rate, if the container knows it (variable-rate files report the mean).
    pub fps: Option<Rational>,
    /// Duration of the stream (or of the file), if known.
    pub duration: Option<Duration>,
    /// FFmpeg's decoder name (`h264`, `hevc`, `vp9`, `ffv1`, …).
    pub codec: String,
    /// Frame count, if the container states it (MP4 does; Matroska usually does not).
    pub frames: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    frames_decoded: AtomicU64,
    frames_output: AtomicU64,
    frames_dropped: AtomicU64,
    decode_errors: AtomicU64,
    loops: AtomicU64,
}

/// Live counters of a [`FileReader`]; cloneable, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct ReaderStats {
    counters: Arc<Counters>,
}

fn bump(counter: &AtomicU64) {
    // One writer (the reader's own thread): a load and a store suffice.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl ReaderStats {
    /// Frames the decoder produced (including ones discarded before the start offset or
    /// dropped by realtime pacing).
    pub fn frames_decoded(&self) -> u64 {
        self.counters.frames_decoded.load(Ordering::Relaxed)
    }

    /// Frames written to the output (repeats under realtime pacing included).
    pub fn frames_output(&self) -> u64 {
        self.counters.frames_output.load(Ordering::Relaxed)
    }

    /// Decoded frames not shown: realtime pacing skipped them, or every pooled buffer was
    /// still held downstream.
    pub fn frames_dropped(&self) -> u64 {
        self.counters.frames_dropped.load(Ordering::Relaxed)
    }

    /// Damaged packets or frames FFmpeg reported.
    pub fn decode_errors(&self) -> u64 {
        self.counters.decode_errors.load(Ordering::Relaxed)
    }

    /// Times the file wrapped around (looping).
    pub fn loops(&self) -> u64 {
        self.counters.loops.load(Ordering::Relaxed)
    }

    fn add_decoded(&self) {
        bump(&self.counters.frames_decoded);
    }

    fn add_error(&self) {
        bump(&self.counters.decode_errors);
    }
}

/// A decoded frame waiting to be shown, with its media time in ns.
struct Pending {
    frame: frame::Video,
    pts_ns: u64,
}

/// A source handler that decodes one video stream of a file with FFmpeg (frame and slice
/// threaded) and converts it with swscale straight into pooled frames of the configured
/// format: no intermediate copy.
///
/// The file is opened by [`new`](Self::new), so a missing file, a file that is not media, a
/// missing stream or an unavailable decoder is reported before the pipeline starts.
///
/// Output frames carry the stream's presentation timestamp in ns (`pts × time_base`, plus
/// the length of the file for each completed loop so times keep increasing) and the tick's
/// frame number and clock id. After the last frame (not looping) the handler calls
/// [`ProcessContext::end_of_stream`], so `runtime.run()` returns once the pipeline drains.
pub struct FileReader {
    config: ReaderConfig,
    info: MediaInfo,
    decoder: VideoDecoder,
    converter: Converter,
    out: OutputPort<VideoFrame>,
    stats: ReaderStats,
    /// Frame the decoder writes into; swapped with `pending` to avoid allocation.
    scratch: frame::Video,
    pending: Option<Pending>,
    last_output: Option<VideoFrame>,
    /// The start offset in the stream's ns, below which frames are discarded.
    offset_ns: u64,
    /// Added to timestamps: the span of the loops completed so far.
    loop_base_ns: u64,
    /// Media time (with loop base) of the first frame of the run, for realtime pacing.
    origin_ns: Option<u64>,
    /// The first tick's timestamp, for realtime pacing.
    first_tick_ns: Option<u64>,
    /// Last frame's pts and the gap before it, to know where a loop ends.
    last_pts_ns: Option<u64>,
    last_gap_ns: u64,
    /// Frames shown in the current pass (a pass with none ends a loop instead of spinning).
    pass_frames: u64,
    ended: bool,
}

impl FileReader {
    /// Opens the file now, so errors surface at construction: missing →
    /// [`FileError::NotFound`]; not media → [`FileError::NotMedia`] with FFmpeg's reason; no
    /// video stream or a bad index → [`FileError::NoStream`]; no decoder →
    /// [`FileError::UnsupportedCodec`].
    pub fn new(config: ReaderConfig) -> Result<Self, FileError> {
        let (mut decoder, info) = VideoDecoder::open(&config.path, config.stream, config.threads)?;
        let offset_ns = decoder
            .stream_start_ns()
            .saturating_add(u64::try_from(config.start_offset.as_nanos()).unwrap_or(u64::MAX));
        if !config.start_offset.is_zero() {
            decoder.seek(config.start_offset)?;
        }
        let default_gap = info
            .fps
            .map_or(1_000_000_000 / 30, |r| r.period_ns().round() as u64);
        Ok(Self {
            converter: Converter::new(config.format),
            config,
            info,
            decoder,
            out: OutputPort::new("video", MemoryCaps::CPU),
            stats: ReaderStats::default(),
            scratch: frame::Video::empty(),
            pending: None,
            last_output: None,
            offset_ns,
            loop_base_ns: 0,
            origin_ns: None,
            first_tick_ns: None,
            last_pts_ns: None,
            last_gap_ns: default_gap,
            pass_frames: 0,
            ended: false,
        })
    }

    /// The output ("video", CPU frames).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.out.handle()
    }

    /// What the container says about the stream.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// The configuration.
    pub fn config(&self) -> &ReaderConfig {
        &self.config
    }

    /// Live counters.
    pub fn stats(&self) -> ReaderStats {
        self.stats.clone()
    }

    /// The decoded frames' pool, once the first frame fixed the size (for its counters).
    pub fn pool(&self) -> Option<&streamlib_ports::FramePool> {
        self.converter.pool()
    }

    /// Decodes the next frame at or after the start offset into `pending`. `false` at the
    /// end of the file (after wrapping around when looping, unless a pass had no frames).
    fn decode_next(&mut self) -> Result<bool, FileError> {
        loop {
            let decoded = self.decoder.next_frame(
                &mut self.scratch,
                self.config.on_decode_error,
                &self.stats,
            )?;
            match decoded {
                Decoded::Frame => {
                    let pts = self.scratch.timestamp().or(self.scratch.pts());
                    let pts_ns = match pts {
                        Some(ts) => self.decoder.to_ns(ts),
                        // No timestamp at all: continue from the previous frame.
                        None => self
                            .last_pts_ns
                            .map_or(self.offset_ns, |p| p + self.last_gap_ns),
                    };
                    if pts_ns < self.offset_ns {
                        continue;
                    }
                    if let Some(prev) = self.last_pts_ns.filter(|&p| pts_ns > p) {
                        self.last_gap_ns = pts_ns - prev;
                    }
                    self.last_pts_ns = Some(pts_ns);
                    self.pass_frames += 1;
                    let frame = std::mem::replace(&mut self.scratch, frame::Video::empty());
                    self.pending = Some(Pending {
                        frame,
                        pts_ns: pts_ns + self.loop_base_ns,
                    });
                    return Ok(true);
                }
                Decoded::End => {
                    if !self.config.looping || self.pass_frames == 0 {
                        return Ok(false);
                    }
                    let end = self.last_pts_ns.unwrap_or(self.offset_ns) + self.last_gap_ns;
                    self.loop_base_ns += end.saturating_sub(self.offset_ns);
                    self.last_pts_ns = None;
                    self.pass_frames = 0;
                    bump(&self.stats.counters.loops);
                    self.decoder.seek(self.config.start_offset)?;
                }
            }
        }
    }

    /// Converts and writes `pending` for this tick.
    fn show(&mut self, pending: Pending, ctx: &ProcessContext<'_>) -> Result<(), FileError> {
        let path = self.decoder.path();
        match self.converter.convert(&pending.frame, path)? {
            Some(frame) => {
                let tick = ctx.tick();
                let frame =
                    frame.with_timing(pending.pts_ns, tick.frame_number, tick.clock_source_id);
                self.last_output = Some(frame.clone());
                self.out.write(frame);
                bump(&self.stats.counters.frames_output);
            }
            None => bump(&self.stats.counters.frames_dropped),
        }
        // Hand the AVFrame back for the decoder to reuse.
        self.scratch = pending.frame;
        Ok(())
    }

    fn process_as_fast_as_possible(
        &mut self,
        ctx: &mut ProcessContext<'_>,
    ) -> Result<(), FileError> {
        if self.pending.is_none() && !self.decode_next()? {
            self.end(ctx);
            return Ok(());
        }
        if let Some(pending) = self.pending.take() {
            self.show(pending, ctx)?;
        }
        Ok(())
    }

    fn process_realtime(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), FileError> {
        let now = ctx.tick().timestamp;
        let first_tick = *self.first_tick_ns.get_or_insert(now);
        if self.pending.is_none() && !self.decode_next()? {
            self.end(ctx);
            return Ok(());
        }
        let origin = match (self.origin_ns, &self.pending) {
            (Some(origin), _) => origin,
            (None, Some(p)) => *self.origin_ns.insert(p.pts_ns),
            (None, None) => return Ok(()),
        };
        let due = origin.saturating_add(now.saturating_sub(first_tick));
        // The newest frame that is due; older due ones are dropped.
        let mut show: Option<Pending> = None;
        while let Some(p) = self.pending.take_if(|p| p.pts_ns <= due) {
            if let Some(skipped) = show.replace(p) {
                bump(&self.stats.counters.frames_dropped);
                self.scratch = skipped.frame;
            }
            if !self.decode_next()? {
                break;
            }
        }
        match show {
            Some(p) => self.show(p, ctx)?,
            None => {
                // Nothing new is due: repeat the frame on screen (a reference, no copy).
                if let Some(last) = &self.last_output {
                    let tick = ctx.tick();
                    let again = last.clone().with_timing(
                        last.timestamp_ns(),
                        tick.frame_number,
                        tick.clock_source_id,
                    );
                    self.out.write(again);
                    bump(&self.stats.counters.frames_output);
                }
            }
        }
        if self.pending.is_none() && !self.config.looping {
            // The file ended while catching up: the last frame went out above.
            self.end(ctx);
        }
        Ok(())
    }

    fn end(&mut self, ctx: &mut ProcessContext<'_>) {
        if !self.ended {
            tracing::debug!(path = %self.config.path.display(), "end of file");
        }
        self.ended = true;
        ctx.end_of_stream();
    }
}

impl StreamHandler for FileReader {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.ended {
            ctx.end_of_stream();
            return Ok(());
        }
        match self.config.pacing {
            Pacing::AsFastAsPossible => self.process_as_fast_as_possible(ctx)?,
            Pacing::Realtime => self.process_realtime(ctx)?,
        }
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        "FileReader"
    }
}
