//! [`FileReader`]: decodes the video of a media file into pooled frames, and its audio
//! into pooled [`AudioBuffer`]s when the audio output is connected.

mod audio;
mod decode;
mod demux;
mod open;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use ffmpeg_next::frame;
use streamlib_clock::Rational;
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, Field, FrameLimits, HandlerError, MemoryCaps, OutputPort,
    OutputRef, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler, VideoCaps,
    VideoFrame,
};

use crate::FileError;
use audio::AudioDecoder;
use decode::{Decoded, VideoDecoder};
pub use stats::ReaderStats;
use stats::{add, bump};
use streamlib_codec::convert::{Converted, FrameConverter, Route};

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
pub enum ReaderPacing {
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
    /// The pixel format to convert to when the decoder's own is not a streamlib
    /// [`PixelFormat`] nor its nearest one is accepted downstream; with
    /// [`force_format`](Self::force_format), the only format produced (swscale converts).
    pub format: PixelFormat,
    /// Produce only [`format`](Self::format). When `false` (the default) the output
    /// declares the decoder's native format first (when streamlib has it, else the nearest
    /// one: I420 for 4:2:0, UYVY for 4:2:2), then `format`, then every other format, and
    /// produces what negotiation picks: a downstream that takes the native format gets the
    /// decoded planes with no conversion.
    pub force_format: bool,
    /// How frames follow ticks.
    pub pacing: ReaderPacing,
    /// Start again from `start_offset` at the end instead of ending the stream.
    pub looping: bool,
    /// Where to start: frames before it are decoded and discarded, so the first frame shown
    /// is the first whose timestamp is at or after it.
    pub start_offset: Duration,
    /// What to do with damaged data.
    pub on_decode_error: DecodeErrorPolicy,
    /// FFmpeg decoder threads (frame and slice threading); 0 lets FFmpeg choose.
    pub threads: usize,
    /// Sample rate of the audio output; the stream's own when `None` (swresample converts).
    pub audio_sample_rate: Option<u32>,
    /// Channel count of the audio output; the stream's own when `None` (swresample mixes
    /// with FFmpeg's default layouts).
    pub audio_channels: Option<u16>,
    /// Samples per channel in each [`AudioBuffer`] (the last one of the file may be shorter).
    pub audio_buffer_frames: usize,
    /// FFmpeg's `protocol_whitelist` when opening the file: `file` when `None`, so a location
    /// like `udp://…` or `pipe:0` is never opened as a network stream or another process's
    /// pipe. Comma-separated protocol names to allow more.
    pub protocol_whitelist: Option<String>,
    /// FFmpeg's `format_whitelist` when opening the file: [`DEFAULT_FORMAT_WHITELIST`] when
    /// `None`, plain container demuxers only, so a file that is (or probes as) an HLS
    /// playlist, a DASH manifest, a concat script or an image sequence is refused with
    /// [`FileError::FormatRefused`] instead of making FFmpeg open the other paths it names.
    /// Comma-separated demuxer names (`ffmpeg -demuxers`); a demuxer is allowed when any of
    /// its names is listed.
    pub format_whitelist: Option<String>,
    /// The largest picture read ([`FrameLimits::DEFAULT`] unless changed): a bigger one in the
    /// header or any decoded frame is a [`FileError::FrameTooLarge`], and FFmpeg's decoder
    /// gets the pixel cap as its `max_pixels`, so it never allocates such a picture.
    pub limits: FrameLimits,
}

/// The protocols FFmpeg may open for `config`'s file (`file` by default).
pub(crate) fn protocol_whitelist(config: &ReaderConfig) -> &str {
    config.protocol_whitelist.as_deref().unwrap_or("file")
}

/// The container demuxers FFmpeg may use for `config`'s file ([`DEFAULT_FORMAT_WHITELIST`]
/// by default).
pub(crate) fn format_whitelist(config: &ReaderConfig) -> &str {
    config
        .format_whitelist
        .as_deref()
        .unwrap_or(DEFAULT_FORMAT_WHITELIST)
}

/// [`ReaderConfig::format_whitelist`] unless changed: demuxers that read the one file they
/// are given and never open another (no playlists, manifests, concat scripts or image
/// sequences). MOV/MP4, Matroska/WebM, AVI, MPEG-TS/PS, FLV, IVF, Y4M, NUT, MXF, WAV, MP3,
/// AAC, Ogg, FLAC and raw H.264/HEVC/MPEG-4/MPEG video/AV1 OBU streams.
pub const DEFAULT_FORMAT_WHITELIST: &str = "mov,matroska,avi,mpegts,mpeg,flv,ivf,yuv4mpegpipe,\
nut,mxf,wav,mp3,aac,ogg,flac,h264,hevc,m4v,mpegvideo,obu";

/// [`ReaderConfig::audio_buffer_frames`] unless changed: 21.3 ms at 48 kHz.
pub const DEFAULT_AUDIO_BUFFER_FRAMES: usize = 1024;

impl ReaderConfig {
    /// Defaults for `path`: best video stream, the negotiated pixel format (native first,
    /// RGBA when converting), realtime pacing, no loop, skip errors,
    /// automatic threads, audio at the stream's rate and channels in buffers of
    /// [`DEFAULT_AUDIO_BUFFER_FRAMES`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            stream: StreamSelect::Best,
            format: PixelFormat::Rgba8,
            force_format: false,
            pacing: ReaderPacing::Realtime,
            looping: false,
            start_offset: Duration::ZERO,
            on_decode_error: DecodeErrorPolicy::Skip,
            threads: 0,
            audio_sample_rate: None,
            audio_channels: None,
            audio_buffer_frames: DEFAULT_AUDIO_BUFFER_FRAMES,
            protocol_whitelist: None,
            format_whitelist: None,
            limits: FrameLimits::DEFAULT,
        }
    }
}

/// What the container says about the audio stream the reader would decode (the best one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// Container index of the stream (as `ffprobe` numbers them).
    pub stream_index: usize,
    /// FFmpeg's decoder name (`aac`, `opus`, `mp3`, `pcm_s16le`, …).
    pub codec: String,
    /// Samples per second per channel (0 if the container does not say).
    pub sample_rate: u32,
    /// Channel count (0 if the container does not say).
    pub channels: u16,
    /// Duration of the stream, if the container states it.
    pub duration: Option<Duration>,
}

/// What the container says about the chosen video stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Coded width in pixels (output frames have the first decoded frame's size).
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Frame rate, exact (30000/1001 stays so): the stream's average rate, else its
    /// `r_frame_rate`, if the container knows either (variable-rate files report the mean).
    /// The output's caps fix this rate.
    pub fps: Option<Rational>,
    /// Duration of the stream (or of the file), if known.
    pub duration: Option<Duration>,
    /// FFmpeg's decoder name (`h264`, `hevc`, `vp9`, `ffv1`, …).
    pub codec: String,
    /// The decoder's pixel format as FFmpeg names it (`yuv420p`, `yuv422p10le`, …).
    pub pixel_format: String,
    /// The decoder's pixel format when streamlib has it (yuv420p is I420, nv12, uyvy422,
    /// rgba, bgra, gray8): frames in it need no conversion.
    pub native_format: Option<PixelFormat>,
    /// The native format, or the streamlib format nearest to the decoder's (I420 for
    /// 4:2:0, UYVY for 4:2:2, Gray8 for gray, RGBA otherwise): what the output prefers.
    pub nearest_format: PixelFormat,
    /// Frame count, if the container states it (MP4 does; Matroska usually does not).
    pub frames: Option<u64>,
    /// The best audio stream, if the file has one.
    pub audio: Option<AudioInfo>,
}

/// A decoded frame waiting to be shown, with its media time in ns.
struct Pending {
    frame: frame::Video,
    pts_ns: u64,
}

/// A source handler that decodes one video stream of a file with FFmpeg (frame and slice
/// threaded) into pooled frames of the negotiated format: copied plane by plane when that is
/// the decoder's own format and size, else converted by swscale straight into the pooled
/// frame (no intermediate copy).
///
/// The file is opened and probed by [`new`](Self::new), so a missing file, a file that is not
/// media, a missing stream or an unavailable decoder is reported before the pipeline starts.
///
/// # Caps
/// The output declares fixed caps from the probe: the stream's size, its exact frame rate
/// ([`MediaInfo::fps`]; a pipeline without a chosen rate runs its clock at it) and its
/// formats: the forced one, or the native (else nearest) one first, then the others
/// ([`ReaderConfig::force_format`]). `on_start` reads what was negotiated and produces that
/// format at that size.
///
/// # Timing
/// Output frames carry the stream's presentation timestamp in ns (`pts × time_base`, plus
/// the length of the file for each completed loop so times keep increasing), their media
/// frame number (from the timestamp at the stream's rate, 0 for the first frame shown,
/// always increasing: a frame dropped by realtime pacing leaves a gap) and the tick's clock
/// id. A frame repeated by realtime pacing keeps its timestamp and frame number, so a sink
/// can tell it from a new one (the file writer writes it once).
///
/// With realtime pacing, a tick shows the newest frame due by the tick's time since the
/// first tick, with a quarter-frame tolerance for container timestamp rounding: a clock at
/// the file's rate shows one frame per tick, in both pacings.
///
/// After the last frame (not looping) the handler calls [`ProcessContext::end_of_stream`],
/// so `runtime.run()` returns once the pipeline drains.
///
/// # Audio
/// When the [`audio`](Self::audio) output is connected, the file's best audio stream is
/// decoded too (by a second FFmpeg input on the same file, so the file's interleaving does
/// not matter), converted by swresample to interleaved f32 at the stream's rate and channel
/// count (or [`ReaderConfig::audio_sample_rate`] / [`audio_channels`](ReaderConfig::audio_channels)),
/// and cut into pooled buffers of [`ReaderConfig::audio_buffer_frames`]. Nothing about
/// audio is opened or decoded while the output is unconnected. A file without audio and a
/// connected audio output fail at `on_start` with [`FileError::NoStream`]; check
/// [`MediaInfo::audio`] before connecting.
///
/// - Timing: each tick that shows a frame also sends every audio buffer that begins before
///   that frame ends (its pts plus the frame interval), in both pacings, so audio never lags
///   the picture and leads it by less than one buffer; several buffers per tick are normal.
///   Buffer times are media times on the video's timeline: the first sample's pts, then
///   counted in samples, so consecutive buffers are exactly contiguous. Gaps in the file's
///   audio timestamps become silence and overlaps are trimmed (differences under 10 ms are
///   taken as rounding).
/// - Start offset and looping: audio before the offset is cut sample-accurately; at each
///   loop audio past the video's end is cut and the next pass continues the timeline.
/// - End: when the video ends the reader keeps sending the remaining audio at the video's
///   pace (one frame interval per tick), then a final shorter buffer, then ends the stream.
/// - Buffers come from a pool; when all are held downstream one is allocated instead, so
///   audio is never dropped by the reader (use ordered delivery downstream, the default for
///   audio inputs).
pub struct FileReader {
    config: ReaderConfig,
    info: MediaInfo,
    decoder: VideoDecoder,
    converter: FrameConverter,
    out: OutputPort<VideoFrame>,
    audio_out: OutputPort<AudioBuffer>,
    /// Opened when the audio output is connected.
    audio: Option<AudioDecoder>,
    /// Media time up to which audio has been sent.
    audio_limit_ns: u64,
    /// The video has ended; the audio output is draining.
    video_done: bool,
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
    /// Media time (with loop base) of the first frame shown: media frame number 0.
    index_origin_ns: Option<u64>,
    /// Media frame number of the last frame shown.
    last_index: Option<u64>,
    ended: bool,
}

impl FileReader {
    /// Opens the file now, so errors surface at construction: missing →
    /// [`FileError::NotFound`]; not media → [`FileError::NotMedia`] with FFmpeg's reason; no
    /// video stream or a bad index → [`FileError::NoStream`]; a container format outside
    /// [`ReaderConfig::format_whitelist`] → [`FileError::FormatRefused`]; no decoder →
    /// [`FileError::UnsupportedCodec`]; an audio option out of range →
    /// [`FileError::OutOfRange`].
    pub fn new(config: ReaderConfig) -> Result<Self, FileError> {
        check_audio_options(&config)?;
        let (mut decoder, info) = VideoDecoder::open(
            &config.path,
            config.stream,
            config.threads,
            protocol_whitelist(&config),
            format_whitelist(&config),
            config.limits,
        )?;
        let offset_ns = decoder
            .stream_start_ns()
            .saturating_add(u64::try_from(config.start_offset.as_nanos()).unwrap_or(u64::MAX));
        if !config.start_offset.is_zero() {
            decoder.seek(config.start_offset)?;
        }
        let default_gap = info
            .fps
            .map_or(1_000_000_000 / 30, |r| r.period_ns().round() as u64);
        let formats = declared_formats(&config, &info);
        let out =
            OutputPort::new("video", MemoryCaps::CPU).with_format(output_caps(&info, &formats));
        let audio = audio_caps(&config, &info);
        Ok(Self {
            converter: FrameConverter::new(
                format!("file-reader {}", decoder.path().display()),
                formats.first().copied().unwrap_or(config.format),
            ),
            config,
            info,
            decoder,
            out,
            audio_out: OutputPort::new("audio", MemoryCaps::CPU).with_format(audio),
            audio: None,
            audio_limit_ns: 0,
            video_done: false,
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
            index_origin_ns: None,
            last_index: None,
            ended: false,
        })
    }

    /// The pixel format frames come out in: the negotiated one once started, before that
    /// the most preferred of those declared.
    pub fn format(&self) -> PixelFormat {
        self.converter.format()
    }

    /// The output ("video", CPU frames).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.out.handle()
    }

    /// The audio output ("audio", interleaved f32): decoded only while connected.
    pub fn audio(&self) -> OutputRef<AudioBuffer> {
        self.audio_out.handle()
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

    /// The decoded frames' pool, once the first frame was output (for its counters).
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
                    let pass_end = self.loop_base_ns + end;
                    self.loop_base_ns += end.saturating_sub(self.offset_ns);
                    if let Some(audio) = &mut self.audio {
                        audio.next_pass(pass_end, self.loop_base_ns, self.config.start_offset)?;
                    }
                    self.last_pts_ns = None;
                    self.pass_frames = 0;
                    bump(&self.stats.counters.loops);
                    self.decoder.seek(self.config.start_offset)?;
                }
            }
        }
    }

    /// Converts and writes `pending` for this tick, with the audio up to the frame's end.
    fn show(&mut self, pending: Pending, ctx: &ProcessContext<'_>) -> Result<(), FileError> {
        self.send_audio(pending.pts_ns.saturating_add(self.last_gap_ns))?;
        let path = self.decoder.path();
        let converted = self
            .converter
            .convert(&pending.frame, Some(&self.out))
            .map_err(|e| FileError::BadFrame {
                path: path.to_path_buf(),
                reason: e.0,
            })?;
        match converted {
            Some(Converted { frame, route, .. }) => {
                let tick = ctx.tick();
                let index = self.media_index(pending.pts_ns);
                let frame = frame.with_timing(pending.pts_ns, index, tick.clock_source_id);
                self.last_output = Some(frame.clone());
                self.out.write(frame);
                bump(&self.stats.counters.frames_output);
                bump(match route {
                    Route::Copied => &self.stats.counters.frames_copied,
                    Route::Scaled => &self.stats.counters.frames_converted,
                });
            }
            None => bump(&self.stats.counters.frames_dropped),
        }
        // Hand the AVFrame back for the decoder to reuse.
        self.scratch = pending.frame;
        Ok(())
    }

    /// The media frame number of a frame shown at `pts_ns`: its distance from the first
    /// frame shown in frame periods of the stream's rate (rounded), or one more than the
    /// previous where that does not advance (no rate known, variable-rate jitter).
    fn media_index(&mut self, pts_ns: u64) -> u64 {
        let origin = *self.index_origin_ns.get_or_insert(pts_ns);
        let by_pts = self.info.fps.map_or(0, |rate| {
            let elapsed = u128::from(pts_ns.saturating_sub(origin));
            let per = u128::from(rate.den) * 1_000_000_000;
            let n = (elapsed * u128::from(rate.num) + per / 2) / per.max(1);
            u64::try_from(n).unwrap_or(u64::MAX)
        });
        let index = match self.last_index {
            Some(last) if by_pts <= last => last.saturating_add(1),
            _ => by_pts,
        };
        self.last_index = Some(index);
        index
    }

    fn process_as_fast_as_possible(
        &mut self,
        ctx: &mut ProcessContext<'_>,
    ) -> Result<(), FileError> {
        if self.pending.is_none() && !self.decode_next()? {
            return self.end(ctx);
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
            return self.end(ctx);
        }
        let origin = match (self.origin_ns, &self.pending) {
            (Some(origin), _) => origin,
            (None, Some(p)) => *self.origin_ns.insert(p.pts_ns),
            (None, None) => return Ok(()),
        };
        // A quarter frame of slack: containers round timestamps (Matroska to the
        // millisecond), which must not push a frame past the tick meant for it.
        let due = origin
            .saturating_add(now.saturating_sub(first_tick))
            .saturating_add(self.last_gap_ns / 4);
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
                // Nothing new is due: repeat the frame on screen (a reference, no copy), with
                // its own timestamp and frame number: it is the same frame.
                if let Some(last) = &self.last_output {
                    let tick = ctx.tick();
                    let again = last.clone().with_timing(
                        last.timestamp_ns(),
                        last.frame_number(),
                        tick.clock_source_id,
                    );
                    self.out.write(again);
                    bump(&self.stats.counters.frames_output);
                }
            }
        }
        if self.pending.is_none() && !self.config.looping {
            // The file ended while catching up: the last frame went out above.
            return self.end(ctx);
        }
        Ok(())
    }

    /// Opens the audio stream if the audio output is connected and it is not open yet.
    fn open_audio(&mut self) -> Result<(), FileError> {
        if self.audio.is_none() && self.audio_out.is_connected() {
            // Audio starts where the video does: at the offset, or the file's beginning.
            let floor = if self.config.start_offset.is_zero() {
                0
            } else {
                self.offset_ns
            };
            self.audio = Some(AudioDecoder::open(&self.config, floor, self.loop_base_ns)?);
        }
        Ok(())
    }

    /// Sends the audio that begins before media time `limit_ns`.
    fn send_audio(&mut self, limit_ns: u64) -> Result<(), FileError> {
        if let Some(audio) = &mut self.audio {
            audio.emit_until(
                limit_ns,
                &self.audio_out,
                self.config.on_decode_error,
                &self.stats,
            )?;
            self.audio_limit_ns = self.audio_limit_ns.max(limit_ns);
        }
        Ok(())
    }

    /// After the last frame: sends the remaining audio one frame interval per tick (or as
    /// realtime pacing makes it due), then the last short buffer, then ends the stream.
    fn process_audio_tail(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), FileError> {
        let step = self.last_gap_ns.max(1);
        let mut limit = self.audio_limit_ns.saturating_add(step);
        if self.config.pacing == ReaderPacing::Realtime
            && let (Some(origin), Some(first)) = (self.origin_ns, self.first_tick_ns)
        {
            let due = origin.saturating_add(ctx.tick().timestamp.saturating_sub(first));
            limit = due.saturating_add(step).max(self.audio_limit_ns);
        }
        self.send_audio(limit)?;
        if let Some(audio) = &mut self.audio {
            if !audio.is_exhausted() {
                return Ok(());
            }
            audio.emit_rest(&self.audio_out, &self.stats)?;
        }
        self.finish_stream(ctx);
        Ok(())
    }

    /// The video has ended: drains the audio first if there is any.
    fn end(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), FileError> {
        if self.audio.is_some() && !self.video_done {
            self.video_done = true;
            return self.process_audio_tail(ctx);
        }
        self.finish_stream(ctx);
        Ok(())
    }

    fn finish_stream(&mut self, ctx: &mut ProcessContext<'_>) {
        if !self.ended {
            tracing::debug!(path = %self.config.path.display(), "end of file");
        }
        self.ended = true;
        ctx.end_of_stream();
    }
}

/// The formats the output offers, most preferred first: only the forced one, or the native
/// (else nearest) format, then the configured one, then every other.
fn declared_formats(config: &ReaderConfig, info: &MediaInfo) -> Vec<PixelFormat> {
    if config.force_format {
        return vec![config.format];
    }
    let mut formats = Vec::with_capacity(PixelFormat::ALL.len());
    for format in [info.nearest_format, config.format]
        .into_iter()
        .chain(PixelFormat::ALL)
    {
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    formats
}

/// The output's caps: `formats` at the stream's size and exact rate, as far as the header
/// says (an open size is the first frame's; an open rate the clock's).
/// What the audio output produces: the rate and channels it decodes to (the configured ones,
/// else the stream's), fixed when known, so a writer downstream can size its track.
fn audio_caps(config: &ReaderConfig, info: &MediaInfo) -> Caps {
    let stream = info.audio.as_ref();
    let rate = config
        .audio_sample_rate
        .or(stream.map(|a| a.sample_rate))
        .filter(|&r| r > 0);
    let channels = config
        .audio_channels
        .or(stream.map(|a| a.channels))
        .filter(|&c| c > 0);
    let mut caps = AudioCaps::any();
    if let Some(rate) = rate {
        caps.rate = Field::Fixed(rate);
    }
    if let Some(channels) = channels {
        caps.channels = Field::Fixed(u32::from(channels));
    }
    Caps::Audio(caps)
}

fn output_caps(info: &MediaInfo, formats: &[PixelFormat]) -> Caps {
    let mut caps = VideoCaps::any().with_formats(formats);
    if info.width > 0 && info.height > 0 {
        caps = caps.with_size(info.width, info.height);
    }
    if let Some(rate) = info.fps {
        caps = caps.with_rate(rate);
    }
    Caps::Video(caps)
}

/// Checks the audio options (the rest are checked by FFmpeg when the file opens).
fn check_audio_options(config: &ReaderConfig) -> Result<(), FileError> {
    if let Some(rate) = config.audio_sample_rate
        && !(1..=768_000).contains(&rate)
    {
        return Err(FileError::OutOfRange {
            what: "audio_sample_rate",
            value: rate.to_string(),
            range: "1..=768000",
        });
    }
    if let Some(channels) = config.audio_channels
        && !(1..=64).contains(&channels)
    {
        return Err(FileError::OutOfRange {
            what: "audio_channels",
            value: channels.to_string(),
            range: "1..=64",
        });
    }
    if !(1..=1 << 20).contains(&config.audio_buffer_frames) {
        return Err(FileError::OutOfRange {
            what: "audio_buffer_frames",
            value: config.audio_buffer_frames.to_string(),
            range: "1..=1048576",
        });
    }
    Ok(())
}

impl StreamHandler for FileReader {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out).output(&self.audio_out)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // Negotiation is done by now: produce what the link agreed on.
        match self.out.negotiated_video() {
            Some(video) => self
                .converter
                .set_target(video.format, Some((video.width, video.height))),
            None => {
                // Size left open (a header without one): the first frame's.
                let format = self
                    .out
                    .negotiated_format()
                    .as_ref()
                    .and_then(Caps::as_video)
                    .and_then(|v| v.formats.preferred())
                    .unwrap_or(self.converter.format());
                self.converter.set_target(format, None);
            }
        }
        // Wiring is done by now: a connected audio output on a file without audio fails here.
        self.open_audio()?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.ended {
            ctx.end_of_stream();
            return Ok(());
        }
        self.open_audio()?;
        if self.video_done {
            self.process_audio_tail(ctx)?;
            return Ok(());
        }
        match self.config.pacing {
            ReaderPacing::AsFastAsPossible => self.process_as_fast_as_possible(ctx)?,
            ReaderPacing::Realtime => self.process_realtime(ctx)?,
        }
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        "FileReader"
    }
}
