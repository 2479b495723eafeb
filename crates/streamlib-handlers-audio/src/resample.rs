//! `AudioResample` (`audioresample`): sample-rate conversion with rubato, and the drift-following asynchronous mode.
//!
//! The filter is rubato's windowed sinc (its window, and the cutoff it chooses for the
//! length). Where the ratio is rational with a small table (44.1 ↔ 48 kHz: 160 or 147
//! phases) the fixed-ratio handler applies it as a polyphase FIR of our own
//! ([`polyphase`]: exact phases, every channel of a frame in one contiguous dot product,
//! AVX2/FMA where the CPU has it), several times faster than rubato's per-sample loop;
//! otherwise, and for the asynchronous mode, it runs rubato's asynchronous sinc resampler
//! ([`rubato::Async`]), fed each buffer whole (its chunk size set to the buffer's length,
//! so nothing waits in a staging buffer), with cubic interpolation between 128 phases so
//! that any ratio, and any change of it, is as good as any other.

mod polyphase;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, Resizable, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, Field, Follow, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, Ports, ProcessContext, StreamHandler,
};

use self::polyphase::Polyphase;
use crate::error::check_format;
use crate::pools::PoolSet;
use crate::{AudioError, MAX_RATE, MIN_RATE, flush_non_finite, sample_time_ns};

const HANDLER: &str = "audioresample";
/// Most frames handed to rubato in one call; a longer buffer goes in several.
const MAX_CHUNK: usize = 4096;
/// How far [`AsyncResampler::set_relative_ratio`] may move the ratio: ±1 %.
pub const MAX_RELATIVE_RATIO: f64 = 1.01;
/// Most sinc phases held for an exact table (beyond, phases are interpolated).
const MAX_EXACT_PHASES: usize = 1024;
/// Seconds over which the handler's drift mode corrects the timestamp error it measures.
const DRIFT_SECONDS: f64 = 1.0;
/// A jump of the input's timestamps beyond this (ns) from what its sample count predicts is
/// a discontinuity: the resampler restarts there (drift mode follows smaller ones).
const DISCONTINUITY_NS: u64 = 200_000_000;

/// The filter `audioresample` uses: longer sincs cost more and keep more of the top octave.
/// The cutoff (about -4 dB, rubato's automatic choice for the length) is given as a fraction
/// of the lower Nyquist frequency; beyond Nyquist everything is rejected by more than 120 dB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResampleQuality {
    /// 64-tap sinc, Blackman² window: cutoff 0.83 (18.3 kHz at 44.1 kHz).
    Fast,
    /// 128-tap sinc, Blackman-Harris² window: cutoff 0.88 (19.5 kHz at 44.1 kHz).
    #[default]
    Default,
    /// 256-tap sinc, Blackman-Harris²: cutoff 0.94 (20.8 kHz at 44.1 kHz).
    Best,
}

impl ResampleQuality {
    /// The names pipeline text uses, in order.
    pub const NAMES: &'static [&'static str] = &["fast", "default", "best"];

    /// The quality named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "fast" => Some(Self::Fast),
            "default" => Some(Self::Default),
            "best" => Some(Self::Best),
            _ => None,
        }
    }

    /// Its name in pipeline text.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn sinc(self) -> (usize, WindowFunction) {
        match self {
            Self::Fast => (64, WindowFunction::Blackman2),
            Self::Default => (128, WindowFunction::BlackmanHarris2),
            Self::Best => (256, WindowFunction::BlackmanHarris2),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn rubato_error(property: &'static str, value: String, e: impl std::fmt::Display) -> AudioError {
    AudioError::InvalidProperty {
        handler: HANDLER,
        property,
        value,
        expected: format!("what rubato accepts ({e})"),
    }
}

/// The resampler both modes share: interleaved f32 in, interleaved f32 out.
struct Core {
    handler: &'static str,
    channels: usize,
    /// Nominal output/input ratio.
    ratio: f64,
    relative: f64,
    resampler: Async<f32>,
    /// The chunk size rubato is set to now.
    chunk: usize,
    /// Taps of the sinc filter.
    taps: usize,
}

impl Core {
    fn new(
        handler: &'static str,
        channels: u16,
        in_rate: u32,
        out_rate: u32,
        quality: ResampleQuality,
        adjustable: bool,
    ) -> Result<Self, AudioError> {
        check_format(handler, in_rate, channels)?;
        check_format(handler, out_rate, channels)?;
        let ratio = f64::from(out_rate) / f64::from(in_rate);
        let (taps, window) = quality.sinc();
        // Output k samples the input at k·in/out: its phase is a multiple of 1/(out/g).
        let phases = (out_rate / gcd(in_rate, out_rate)) as usize;
        let params = if !adjustable && phases <= MAX_EXACT_PHASES {
            SincInterpolationParameters::new(taps, window)
                .oversampling_factor(phases)
                .interpolation(SincInterpolationType::Nearest)
        } else {
            SincInterpolationParameters::new(taps, window)
                .oversampling_factor(128)
                .interpolation(SincInterpolationType::Cubic)
        };
        let max_relative = if adjustable {
            // A hair beyond ±1 %, so that 1/1.01 .. 1.01 and 0.99 are both in bounds.
            MAX_RELATIVE_RATIO + 0.0002
        } else {
            1.0
        };
        let resampler = Async::<f32>::new_sinc(
            ratio,
            max_relative,
            &params,
            MAX_CHUNK,
            usize::from(channels),
            FixedAsync::Input,
        )
        .map_err(|e| rubato_error("rate", format!("{in_rate} -> {out_rate} Hz"), e))?;
        Ok(Self {
            handler,
            channels: usize::from(channels),
            ratio,
            relative: 1.0,
            resampler,
            chunk: MAX_CHUNK,
            taps,
        })
    }

    /// Output frames the filter's delay puts before the first input sample: `taps/2 · out/in
    /// − 1` (rubato's indexing; measured by this crate's tests to within 0.05 sample).
    fn delay_frames(&self) -> f64 {
        (self.taps / 2) as f64 * self.ratio - 1.0
    }

    /// Most output frames one call of `frames` input frames makes (one frame of slack for
    /// the phase carried over, and the ratio at its largest).
    fn call_bound(&self, frames: usize) -> usize {
        let most = self.ratio
            * if self.resampler.is_adjustable() {
                MAX_RELATIVE_RATIO + 0.0002
            } else {
                1.0
            };
        ((frames + 1) as f64 * most).ceil() as usize + 2
    }

    fn max_output_len(&self, input_samples: usize) -> usize {
        let frames = input_samples / self.channels.max(1);
        let calls = frames.div_ceil(MAX_CHUNK);
        let whole = frames / MAX_CHUNK;
        let rest = frames % MAX_CHUNK;
        let mut out = whole * self.call_bound(MAX_CHUNK);
        if calls > whole {
            out += self.call_bound(rest);
        }
        out * self.channels
    }

    fn set_relative(&mut self, relative: f64) {
        if !relative.is_finite() {
            return;
        }
        let relative = relative.clamp(2.0 - MAX_RELATIVE_RATIO, MAX_RELATIVE_RATIO);
        // Ramped over the next call: no step in the ratio, so no click.
        if self
            .resampler
            .set_resample_ratio_relative(relative, true)
            .is_ok()
        {
            self.relative = relative;
        }
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, AudioError> {
        let ch = self.channels;
        if !input.len().is_multiple_of(ch) {
            return Err(AudioError::InvalidProperty {
                handler: self.handler,
                property: "input",
                value: format!("{} samples", input.len()),
                expected: format!("whole frames of {ch} channels"),
            });
        }
        let mut written = 0;
        for piece in input.chunks(MAX_CHUNK * ch) {
            let frames = piece.len() / ch;
            if frames != self.chunk {
                self.resampler
                    .set_chunk_size(frames)
                    .map_err(|e| rubato_error("input", format!("{frames} frames"), e))?;
                self.chunk = frames;
            }
            let want = self.resampler.output_frames_next();
            let room = (output.len() - written) / ch;
            if want > room {
                return Err(AudioError::InvalidProperty {
                    handler: self.handler,
                    property: "output",
                    value: format!("room for {room} frames"),
                    expected: format!("{want} frames (size it with max_output_len)"),
                });
            }
            let src = InterleavedSlice::new(piece, ch, frames)
                .map_err(|e| rubato_error("input", format!("{frames} frames"), e))?;
            let mut dst = InterleavedSlice::new_mut(&mut output[written..], ch, room)
                .map_err(|e| rubato_error("output", format!("{room} frames"), e))?;
            let (_, made) = self
                .resampler
                .process_into_buffer(&src, &mut dst, None)
                .map_err(|e| rubato_error("input", format!("{frames} frames"), e))?;
            written += made * ch;
        }
        Ok(written)
    }

    fn reset(&mut self) {
        self.resampler.reset();
        self.chunk = MAX_CHUNK;
        self.relative = 1.0;
    }
}

/// What an [`AudioResample`] runs: the polyphase FIR where the ratio allows, else rubato.
enum Engine {
    Poly(Polyphase, f64),
    Sinc(Core),
}

impl Engine {
    fn new(
        channels: u16,
        in_rate: u32,
        out_rate: u32,
        quality: ResampleQuality,
        drift: bool,
    ) -> Result<Self, AudioError> {
        check_format(HANDLER, in_rate, channels)?;
        check_format(HANDLER, out_rate, channels)?;
        let (taps, window) = quality.sinc();
        if !drift
            && let Some(p) = Polyphase::new(usize::from(channels), in_rate, out_rate, taps, window)
        {
            return Ok(Self::Poly(p, f64::from(out_rate) / f64::from(in_rate)));
        }
        Core::new(HANDLER, channels, in_rate, out_rate, quality, drift).map(Self::Sinc)
    }

    fn ratio(&self) -> f64 {
        match self {
            Self::Poly(_, ratio) => *ratio,
            Self::Sinc(core) => core.ratio,
        }
    }

    /// Output frames to drop at the start (the polyphase FIR is centred already).
    fn delay_frames(&self) -> f64 {
        match self {
            Self::Poly(..) => 0.0,
            Self::Sinc(core) => core.delay_frames(),
        }
    }

    fn max_output_len(&self, input_samples: usize) -> usize {
        match self {
            Self::Poly(p, _) => p.max_output_len(input_samples),
            Self::Sinc(core) => core.max_output_len(input_samples),
        }
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, AudioError> {
        match self {
            Self::Poly(p, _) => {
                p.process(input, output)
                    .ok_or_else(|| AudioError::InvalidProperty {
                        handler: HANDLER,
                        property: "output",
                        value: format!("room for {} samples", output.len()),
                        expected: "max_output_len samples".to_owned(),
                    })
            }
            Self::Sinc(core) => core.process(input, output),
        }
    }

    fn reset(&mut self) {
        match self {
            Self::Poly(p, _) => p.reset(),
            Self::Sinc(core) => core.reset(),
        }
    }

    fn set_relative(&mut self, relative: f64) -> f64 {
        match self {
            Self::Poly(..) => 1.0,
            Self::Sinc(core) => {
                core.set_relative(relative);
                core.relative
            }
        }
    }
}

/// The drift-following resampler on its own, for a sound device's clock against the
/// pipeline's: interleaved f32, a nominal ratio, and a relative correction of up to ±1 %
/// applied smoothly (rubato ramps the ratio across the next call). Windowed sinc, 128 taps,
/// cubic interpolation between 128 phases (any ratio, no click on a change).
pub struct AsyncResampler {
    core: Core,
}

impl std::fmt::Debug for AsyncResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResampler")
            .field("channels", &self.core.channels)
            .field("ratio", &self.core.ratio)
            .field("relative", &self.core.relative)
            .finish()
    }
}

impl AsyncResampler {
    /// Interleaved f32, `channels` channels, nominal in_rate -> out_rate; the error names
    /// `handler` and the property (`rate`, `channels`) out of range.
    pub fn new(
        handler: &'static str,
        channels: u16,
        in_rate: u32,
        out_rate: u32,
    ) -> Result<Self, AudioError> {
        let core = Core::new(
            handler,
            channels,
            in_rate,
            out_rate,
            ResampleQuality::Default,
            true,
        )?;
        Ok(Self { core })
    }

    /// Scales the nominal out/in ratio by `relative` (1.0001 = 100 ppm more output samples
    /// per input), clamped to ±1 %; takes effect smoothly, no click. NaN is ignored.
    pub fn set_relative_ratio(&mut self, relative: f64) {
        self.core.set_relative(relative);
    }

    /// The relative ratio in force (1.0 until set).
    pub fn relative_ratio(&self) -> f64 {
        self.core.relative
    }

    /// The most output samples (interleaved, i.e. frames·channels) `process` can write for
    /// `input_samples` input samples, whatever the ratio within ±1 %.
    pub fn max_output_len(&self, input_samples: usize) -> usize {
        self.core.max_output_len(input_samples)
    }

    /// Output frames between an input sample going in and coming out (the filter's delay).
    pub fn delay_frames(&self) -> f64 {
        self.core.delay_frames()
    }

    /// Resamples all of `input` (whole frames; the filter's history stays inside), writing
    /// into `output` (at least [`max_output_len`](Self::max_output_len)) and returning the
    /// samples written. Nothing is allocated. Non-finite input goes through as it is: flush
    /// it first ([`flush_non_finite`]) where it may occur.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, AudioError> {
        self.core.process(input, output)
    }

    /// Forgets the history (after a gap), keeping the relative ratio at 1.
    pub fn reset(&mut self) {
        self.core.reset();
    }
}

/// What an [`AudioResample`] does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioResampleConfig {
    /// Output sample rate, Hz; 0: the rate negotiated downstream (else the input's, and
    /// buffers pass through). Default 0.
    pub rate: u32,
    /// The filter. Default [`ResampleQuality::Default`].
    pub quality: ResampleQuality,
    /// Follow the input's timestamps rather than its sample count: where a source's
    /// samples come faster or slower than its timestamps say (a device clock stamped by
    /// the pipeline's), the ratio is corrected (up to ±1 %) so that the output's sample
    /// count keeps to the timestamps. Default false.
    pub drift: bool,
}

impl Default for AudioResampleConfig {
    fn default() -> Self {
        Self {
            rate: 0,
            quality: ResampleQuality::Default,
            drift: false,
        }
    }
}

/// Counters of an [`AudioResample`], readable from any thread.
#[derive(Debug, Default)]
struct Counters {
    non_finite: AtomicU64,
    discontinuities: AtomicU64,
    relative_bits: AtomicU64,
}

/// A shared handle on an [`AudioResample`]'s counters.
#[derive(Debug, Clone)]
pub struct ResampleStatsHandle(Arc<Counters>);

/// An [`AudioResample`]'s counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResampleStats {
    /// Input samples that were NaN or infinite, resampled as 0.
    pub non_finite_samples: u64,
    /// Times the input's timestamps jumped and the resampler restarted.
    pub discontinuities: u64,
    /// The drift correction in force (1.0 without `drift`).
    pub relative_ratio: f64,
}

impl ResampleStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> ResampleStats {
        ResampleStats {
            non_finite_samples: self.0.non_finite.load(Ordering::Relaxed),
            discontinuities: self.0.discontinuities.load(Ordering::Relaxed),
            relative_ratio: f64::from_bits(self.0.relative_bits.load(Ordering::Relaxed)),
        }
    }
}

/// Where the current stream stands: stamps come from its first timestamp and sample counts.
struct Timeline {
    first_ns: u64,
    in_frames: u64,
    out_frames: u64,
    /// Frames rubato made (before trimming), and how many more than nominal it made on
    /// the first buffer (its start-up, not drift).
    raw_frames: u64,
    offset: Option<f64>,
    /// Output frames of the filter's delay still to drop.
    to_trim: usize,
}

/// A transform with input `"audio"` (`[cpu]`, any rate and channels) and output `"audio"`
/// (the rate set, or else the one negotiated downstream; the input's channels): converts the
/// sample rate with rubato's windowed sinc. Output buffers are stamped from the stream's
/// first timestamp plus the samples produced over the rate, so they never drift, and the
/// filter's delay is dropped from the start so output lines up with input to within half an
/// output sample. A jump of the input's timestamps restarts the stream there (counted).
/// Non-finite input samples are resampled as 0 (counted). With
/// [`drift`](AudioResampleConfig::drift), the ratio follows the input's timestamps. Buffers
/// already at the output rate pass through untouched (no copy) when not following drift.
/// Steady state allocates nothing (pooled output, scratch reused).
pub struct AudioResample {
    input: InputPort<AudioBuffer>,
    output: OutputPort<AudioBuffer>,
    pools: PoolSet,
    config: AudioResampleConfig,
    /// The resampler and the `(channels, in, out)` it was built for.
    core: Option<(Engine, (u16, u32, u32))>,
    timeline: Option<Timeline>,
    /// Output of the resampler before trimming, and a flushed copy of non-finite input.
    scratch: Vec<f32>,
    flushed: Vec<f32>,
    counters: Arc<Counters>,
}

impl AudioResample {
    /// A resampler for `config`; the error names the property out of range.
    pub fn new(config: AudioResampleConfig) -> Result<Self, AudioError> {
        if config.rate != 0 && !(MIN_RATE..=MAX_RATE).contains(&config.rate) {
            return Err(AudioError::InvalidProperty {
                handler: HANDLER,
                property: "rate",
                value: config.rate.to_string(),
                expected: format!(
                    "0 (negotiated) or a sample rate in {MIN_RATE} ..= {MAX_RATE} Hz"
                ),
            });
        }
        let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        let out_caps = AudioCaps {
            rate: match config.rate {
                0 => Field::Any,
                r => Field::Fixed(r),
            },
            channels: Field::Any,
        };
        let output = OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::Audio(out_caps));
        output.follows(&input, Follow::FORMAT_SIZE);
        let counters = Arc::new(Counters::default());
        counters
            .relative_bits
            .store(1f64.to_bits(), Ordering::Relaxed);
        Ok(Self {
            input,
            output,
            pools: PoolSet::new(HANDLER),
            config,
            core: None,
            timeline: None,
            scratch: Vec::new(),
            flushed: Vec::new(),
            counters,
        })
    }

    /// A resampler to the rate `target` (fixed caps, as negotiation gives an inserted
    /// converter) fixes.
    pub fn for_caps(target: &Caps) -> Result<Self, AudioError> {
        let rate = target
            .as_audio()
            .and_then(|a| a.rate.fixed())
            .ok_or_else(|| AudioError::InvalidProperty {
                handler: HANDLER,
                property: "rate",
                value: target.to_string(),
                expected: "target caps that fix a sample rate".to_owned(),
            })?;
        Self::new(AudioResampleConfig {
            rate,
            ..AudioResampleConfig::default()
        })
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// A handle to read the counters from another thread.
    pub fn stats(&self) -> ResampleStatsHandle {
        ResampleStatsHandle(Arc::clone(&self.counters))
    }

    /// The output rate for input at `from` Hz.
    fn target(&self, from: u32) -> u32 {
        if self.config.rate != 0 {
            return self.config.rate;
        }
        self.output
            .negotiated_format()
            .as_ref()
            .and_then(Caps::as_audio)
            .and_then(|a| a.rate.fixed())
            .unwrap_or(from)
    }

    /// The resampler for `key`, rebuilt (and the stream restarted) when the format changes.
    fn core_for(&mut self, key: (u16, u32, u32)) -> Result<(), AudioError> {
        if self.core.as_ref().is_some_and(|(_, k)| *k == key) {
            return Ok(());
        }
        let (channels, from, to) = key;
        let core = Engine::new(channels, from, to, self.config.quality, self.config.drift)?;
        self.core = Some((core, key));
        self.timeline = None;
        Ok(())
    }

    fn resample(&mut self, buffer: &AudioBuffer, to: u32) -> Result<(), AudioError> {
        let (channels, from) = (buffer.channels(), buffer.sample_rate());
        self.core_for((channels, from, to))?;
        let Some((core, _)) = self.core.as_mut() else {
            return Ok(());
        };
        let ts = buffer.timestamp_ns();
        // Where this buffer should start: by its sample count, or (following drift) by
        // the output's count, which the correction keeps to the timestamps.
        let expected = self.timeline.as_ref().map(|t| {
            let frames = match t.offset {
                Some(offset) if self.config.drift => {
                    let raw = (t.raw_frames as f64 - offset).max(0.0);
                    return t
                        .first_ns
                        .saturating_add((raw * 1e9 / f64::from(to)) as u64);
                }
                _ => t.in_frames,
            };
            t.first_ns.saturating_add(sample_time_ns(frames, from))
        });
        if let Some(expected) = expected
            && expected.abs_diff(ts) > DISCONTINUITY_NS
        {
            core.reset();
            self.timeline = None;
            self.counters
                .discontinuities
                .fetch_add(1, Ordering::Relaxed);
        }
        let timeline = self.timeline.get_or_insert_with(|| Timeline {
            first_ns: ts,
            in_frames: 0,
            out_frames: 0,
            raw_frames: 0,
            offset: None,
            to_trim: core.delay_frames().round().max(0.0) as usize,
        });
        if self.config.drift
            && let Some(offset) = timeline.offset
        {
            // Output frames the timestamps say are due by now, against those made.
            let due = ts.saturating_sub(timeline.first_ns) as f64 * f64::from(to) / 1e9;
            let behind = due - (timeline.raw_frames as f64 - offset);
            let relative = core.set_relative(1.0 + behind / (f64::from(to) * DRIFT_SECONDS));
            self.counters
                .relative_bits
                .store(relative.to_bits(), Ordering::Relaxed);
        }
        let mut samples = buffer.samples();
        if samples.iter().any(|s| !s.is_finite()) {
            self.flushed.clear();
            self.flushed.extend_from_slice(samples);
            let n = flush_non_finite(&mut self.flushed);
            self.counters.non_finite.fetch_add(n, Ordering::Relaxed);
            samples = &self.flushed;
        }
        let need = core.max_output_len(samples.len());
        if self.scratch.len() < need {
            self.scratch.resize(need, 0.0);
        }
        let made = core.process(samples, &mut self.scratch)?;
        let ch = usize::from(channels);
        timeline.in_frames += buffer.frames() as u64;
        timeline.raw_frames += (made / ch) as u64;
        if timeline.offset.is_none() {
            // What rubato's start-up makes beyond the nominal count: not drift.
            timeline.offset =
                Some(timeline.raw_frames as f64 - timeline.in_frames as f64 * core.ratio());
        }
        let trim = timeline.to_trim.min(made / ch);
        timeline.to_trim -= trim;
        let out_frames = made / ch - trim;
        if out_frames == 0 {
            return Ok(());
        }
        let stamp = timeline
            .first_ns
            .saturating_add(sample_time_ns(timeline.out_frames, to));
        timeline.out_frames += out_frames as u64;
        let Some(mut out) = self.pools.acquire(out_frames * ch, &self.output)? else {
            return Ok(());
        };
        out.copy_from_slice(&self.scratch[trim * ch..made]);
        crate::pools::publish(HANDLER, &self.output, out, channels, to, stamp)
    }
}

impl StreamHandler for AudioResample {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(buffer) = self.input.recv() {
            let (from, channels) = (buffer.sample_rate(), buffer.channels());
            check_format(HANDLER, from, channels)?;
            let to = self.target(from);
            if to == from && !self.config.drift {
                self.output.write(buffer);
                continue;
            }
            self.resample(&buffer, to)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn bad_rates_and_channels_name_handler_and_property() {
        for (channels, from, to, property) in [
            (2, 0, 48_000, "`rate`"),
            (2, 44_100, 10_000_000, "`rate`"),
            (0, 44_100, 48_000, "`channels`"),
            (1000, 44_100, 48_000, "`channels`"),
        ] {
            let err = AsyncResampler::new("audiosink", channels, from, to)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("audiosink") && err.contains(property), "{err}");
        }
        let err = AudioResample::new(AudioResampleConfig {
            rate: 5,
            ..AudioResampleConfig::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("audioresample") && err.contains("`rate`"),
            "{err}"
        );
        let err = AudioResample::for_caps(&Caps::audio())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fix a sample rate"), "{err}");
    }

    #[test]
    fn relative_ratio_is_clamped_and_nan_ignored() {
        let mut r = AsyncResampler::new("t", 2, 48_000, 48_000).unwrap();
        r.set_relative_ratio(1.5);
        assert_eq!(r.relative_ratio(), MAX_RELATIVE_RATIO);
        r.set_relative_ratio(0.5);
        assert!((r.relative_ratio() - 0.99).abs() < 1e-12);
        r.set_relative_ratio(f64::NAN);
        assert!((r.relative_ratio() - 0.99).abs() < 1e-12);
    }

    #[test]
    fn output_never_exceeds_max_output_len_and_odd_input_is_refused() {
        let mut r = AsyncResampler::new("t", 2, 44_100, 48_000).unwrap();
        let input = vec![0.25f32; 2 * 9000];
        let mut output = vec![0f32; r.max_output_len(input.len())];
        for (i, frames) in [1usize, 7, 480, 1024, 4096, 4097, 9000, 3]
            .iter()
            .enumerate()
        {
            r.set_relative_ratio(if i % 2 == 0 { 1.01 } else { 0.99 });
            let n = &input[..frames * 2];
            let made = r
                .process(n, &mut output[..r.max_output_len(n.len())])
                .unwrap();
            assert!(made <= r.max_output_len(n.len()));
        }
        let err = r.process(&input[..3], &mut output).unwrap_err().to_string();
        assert!(err.contains("whole frames"), "{err}");
    }
}
