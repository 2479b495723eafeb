//! `Loudness` (`loudness`): EBU R128 / ITU-R BS.1770-4 metering of a passing stream.
//!
//! K-weighting and the 100 ms sub-blocks are the `ebur128` crate's (a port of libebur128).
//! Every 100 ms of audio the momentary and short-term energies go into gates of fixed memory
//! (see `gating.rs`) for integrated loudness and loudness range, as EBU Tech 3341 / 3342 ask
//! and FFmpeg's `ebur128` filter does. The true peak is our own (`true_peak.rs`): 4×
//! oversampling below 96 kHz, 2× below 192 kHz, through the same 32-tap-per-phase
//! interpolator FFmpeg's filter gets from swresample, so the two agree on full-band noise
//! too. Non-finite samples (NaN, ±inf) are replaced by 0 before the meter sees them, and
//! counted; they would otherwise poison the integrator for the rest of the run.
//!
//! With a [`LoudnessTarget`] the handler also normalises: a gain steers the measured input
//! loudness (short-term or integrated) to the target, moving at most
//! [`TARGET_SLEW_DB_PER_S`] and ramped sample by sample, so it neither clicks nor pumps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ebur128::{EbuR128, Mode};
use streamlib_ports::{
    AudioBuffer, Caps, Follow, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort,
    OutputRef, Ports, ProcessContext, StartContext, StreamHandler,
};

use crate::AudioError;
use crate::error::{check_format, check_range};
use crate::gating::{Gate, energy, lufs};
use crate::pools::PoolSet;
use crate::true_peak::TruePeak;

const HANDLER: &str = "loudness";

/// What a loudness meter measured so far. Levels that cannot be measured yet (silence, less
/// than a window of audio) are `-inf`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoudnessStats {
    /// Loudness of the last 400 ms, LUFS.
    pub momentary_lufs: f64,
    /// Loudness of the last 3 s, LUFS.
    pub short_term_lufs: f64,
    /// Gated loudness of everything measured, LUFS.
    pub integrated_lufs: f64,
    /// Loudness range (EBU Tech 3342), LU.
    pub lra_lu: f64,
    /// Highest true peak over all channels, dBTP.
    pub true_peak_dbtp: f64,
    /// Frames (samples per channel) measured.
    pub frames: u64,
    /// Samples that were NaN or infinite, flushed to 0 before metering (and on the output).
    pub non_finite_samples: u64,
    /// Times the stream's rate or channel count changed and the meter restarted.
    pub restarts: u64,
    /// The gain a [`LoudnessTarget`] applies to the output, dB (0 without a target).
    pub gain_db: f64,
}

/// How fast a loudness target's gain may move, dB per second of audio: slow enough not to
/// pump, fast enough to settle on a new programme within a few seconds.
pub const TARGET_SLEW_DB_PER_S: f64 = 3.0;
/// Input below this (BS.1770's absolute gate) holds the gain instead of boosting silence.
const TARGET_GATE_LUFS: f64 = -70.0;

/// Which measurement a [`LoudnessTarget`] steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetWindow {
    /// The last 3 s: a live stream's loudness, which follows programme changes.
    #[default]
    ShortTerm,
    /// Everything so far (gated): a programme's loudness, as R128 delivery specifies it.
    Integrated,
}

impl TargetWindow {
    /// The names pipeline text uses, in order: `short-term`, `integrated`.
    pub const NAMES: &'static [&'static str] = &["short-term", "integrated"];

    /// The window named `name` (one of [`TargetWindow::NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "short-term" => Some(Self::ShortTerm),
            "integrated" => Some(Self::Integrated),
            _ => None,
        }
    }
}

/// A loudness to normalise to: the output gets `target_lufs - measured` dB, within
/// `±max_gain_db`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessTarget {
    /// The loudness wanted, LUFS (EBU R128: -23; streaming services: -14 to -16).
    pub target_lufs: f64,
    /// The measurement steered.
    pub window: TargetWindow,
    /// The most gain or attenuation applied, dB.
    pub max_gain_db: f64,
}

impl LoudnessTarget {
    /// Largest `max_gain_db` accepted.
    pub const MAX_GAIN_DB: f64 = 40.0;

    /// A target of `target_lufs` on the short-term loudness, at most ±20 dB.
    pub fn new(target_lufs: f64) -> Self {
        Self {
            target_lufs,
            window: TargetWindow::ShortTerm,
            max_gain_db: 20.0,
        }
    }

    fn check(&self) -> Result<(), AudioError> {
        check_range(HANDLER, "target", self.target_lufs, -70.0, 0.0)?;
        check_range(
            HANDLER,
            "max-gain",
            self.max_gain_db,
            0.0,
            Self::MAX_GAIN_DB,
        )
    }
}

/// A meter on its own, for use outside a pipeline (and in benches): feed interleaved f32
/// samples, read [`LoudnessStats`].
pub struct LoudnessMeter {
    meter: EbuR128,
    true_peak: TruePeak,
    channels: u16,
    rate: u32,
    /// Frames in 100 ms, and frames still to add before the next 100 ms step.
    step_frames: usize,
    to_step: usize,
    steps: u64,
    integrated: Gate,
    range: Gate,
    /// Energies of the last 30 steps of 100 ms (newest at `newest`): the momentary window is
    /// the last 4, the short-term window all 30, so neither is summed over again.
    blocks: [f64; 30],
    newest: usize,
    /// Figures as of the last step, what [`LoudnessMeter::stats`] returns.
    momentary: f64,
    short_term: f64,
    integrated_lufs: f64,
    lra: f64,
    /// Flushed copy of a buffer that held non-finite samples; its capacity is reused.
    scratch: Vec<f32>,
    frames: u64,
    non_finite: u64,
}

impl std::fmt::Debug for LoudnessMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessMeter")
            .field("channels", &self.channels)
            .field("rate", &self.rate)
            .field("frames", &self.frames)
            .finish()
    }
}

fn meter_error(channels: u16, rate: u32, e: impl std::fmt::Display) -> AudioError {
    AudioError::Meter {
        handler: HANDLER,
        channels: u32::from(channels),
        rate,
        reason: e.to_string(),
    }
}

/// Replaces non-finite samples by 0; returns how many there were.
pub fn flush_non_finite(samples: &mut [f32]) -> u64 {
    let mut count = 0;
    for s in samples {
        if !s.is_finite() {
            *s = 0.0;
            count += 1;
        }
    }
    count
}

impl LoudnessMeter {
    /// A meter for `channels` (1 ..= 64; the first five are L, R, C, Ls, Rs as BS.1770
    /// weights them, others unused) at `rate` Hz.
    pub fn new(channels: u16, rate: u32) -> Result<Self, AudioError> {
        check_format(HANDLER, rate, channels)?;
        // The crate filters and keeps 100 ms sub-blocks; the windows and gates are summed
        // here from those sub-blocks, the true peak measured by `TruePeak` (module docs).
        let meter = EbuR128::new(u32::from(channels), rate, Mode::M)
            .map_err(|e| meter_error(channels, rate, format!("{e:?}")))?;
        Ok(Self {
            meter,
            true_peak: TruePeak::new(channels, rate),
            channels,
            rate,
            step_frames: (rate / 10) as usize,
            to_step: (rate / 10) as usize,
            steps: 0,
            integrated: Gate::new(),
            range: Gate::new(),
            blocks: [0.0; 30],
            newest: 0,
            momentary: f64::NEG_INFINITY,
            short_term: f64::NEG_INFINITY,
            integrated_lufs: f64::NEG_INFINITY,
            lra: 0.0,
            scratch: Vec::new(),
            frames: 0,
            non_finite: 0,
        })
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Sample rate, Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Measures interleaved `samples` (a whole number of frames). Returns the samples fed to
    /// the meter: `samples` itself, or a copy with non-finite samples replaced by 0 (counted).
    pub fn add<'a>(&'a mut self, samples: &'a [f32]) -> Result<&'a [f32], AudioError> {
        if samples.iter().all(|s| s.is_finite()) {
            self.feed(samples)?;
            return Ok(samples);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(samples);
        self.non_finite += flush_non_finite(&mut scratch);
        let fed = self.feed(&scratch);
        self.scratch = scratch;
        fed?;
        Ok(&self.scratch)
    }

    /// Feeds finite samples, stepping at every 100 ms of audio.
    fn feed(&mut self, clean: &[f32]) -> Result<(), AudioError> {
        let channels = usize::from(self.channels);
        self.true_peak.add(clean);
        let mut rest = clean;
        while !rest.is_empty() {
            // Up to the next 100 ms step, where the windows and gates take a block.
            let take = (rest.len() / channels).min(self.to_step);
            let (now, later) = rest.split_at(take * channels);
            rest = later;
            self.meter
                .add_frames_f32(now)
                .map_err(|e| meter_error(self.channels, self.rate, format!("{e:?}")))?;
            self.to_step -= take;
            if self.to_step == 0 {
                self.to_step = self.step_frames;
                self.step()?;
            }
            if take == 0 {
                break;
            }
        }
        self.frames += (clean.len() / channels) as u64;
        Ok(())
    }

    /// A 100 ms step: the newest sub-block's energy, the windows, the gates.
    fn step(&mut self) -> Result<(), AudioError> {
        self.steps += 1;
        let sub_block = self
            .meter
            .loudness_window(100)
            .map_err(|e| meter_error(self.channels, self.rate, format!("{e:?}")))?;
        self.newest = (self.newest + 1) % self.blocks.len();
        self.blocks[self.newest] = if sub_block.is_finite() {
            energy(sub_block)
        } else {
            0.0
        };
        let window = |n: usize| {
            let n = n.min(self.steps as usize);
            let sum: f64 = (0..n)
                .map(|k| self.blocks[(self.newest + self.blocks.len() - k) % self.blocks.len()])
                .sum();
            sum / n as f64
        };
        let (momentary, short_term) = (window(4), window(30));
        if self.steps >= 4 {
            self.integrated.add(momentary);
        }
        if self.steps >= 30 {
            self.range.add(short_term);
        }
        self.momentary = lufs(momentary);
        self.short_term = lufs(short_term);
        self.integrated_lufs = self.integrated.integrated();
        self.lra = self.range.range();
        Ok(())
    }

    /// What was measured so far (loudness figures as of the last 100 ms step).
    pub fn stats(&self) -> LoudnessStats {
        LoudnessStats {
            momentary_lufs: self.momentary,
            short_term_lufs: self.short_term,
            integrated_lufs: self.integrated_lufs,
            lra_lu: self.lra,
            true_peak_dbtp: self.true_peak.dbtp(),
            frames: self.frames,
            non_finite_samples: self.non_finite,
            restarts: 0,
            gain_db: 0.0,
        }
    }
}

/// The figures behind a [`LoudnessStatsHandle`], as f64 bits.
#[derive(Debug)]
struct Shared {
    cells: [AtomicU64; 9],
}

impl Shared {
    fn new() -> Self {
        let inf = f64::NEG_INFINITY.to_bits();
        Self {
            cells: [
                AtomicU64::new(inf),
                AtomicU64::new(inf),
                AtomicU64::new(inf),
                AtomicU64::new(0f64.to_bits()),
                AtomicU64::new(inf),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0f64.to_bits()),
            ],
        }
    }

    fn store(&self, s: &LoudnessStats) {
        let values = [
            s.momentary_lufs.to_bits(),
            s.short_term_lufs.to_bits(),
            s.integrated_lufs.to_bits(),
            s.lra_lu.to_bits(),
            s.true_peak_dbtp.to_bits(),
            s.frames,
            s.non_finite_samples,
            s.restarts,
            s.gain_db.to_bits(),
        ];
        for (cell, v) in self.cells.iter().zip(values) {
            cell.store(v, Ordering::Relaxed);
        }
    }
}

/// Reads a [`Loudness`] handler's figures from any thread while it runs.
#[derive(Debug, Clone)]
pub struct LoudnessStatsHandle(Arc<Shared>);

impl LoudnessStatsHandle {
    /// The latest figures (updated after every buffer).
    pub fn snapshot(&self) -> LoudnessStats {
        let c = |i: usize| self.0.cells[i].load(Ordering::Relaxed);
        let f = |i: usize| f64::from_bits(c(i));
        LoudnessStats {
            momentary_lufs: f(0),
            short_term_lufs: f(1),
            integrated_lufs: f(2),
            lra_lu: f(3),
            true_peak_dbtp: f(4),
            frames: c(5),
            non_finite_samples: c(6),
            restarts: c(7),
            gain_db: f(8),
        }
    }
}

/// A pass-through with input `"audio"` and output `"audio"` (`[cpu]`, any rate and
/// channels; the output follows the input) that meters what passes: momentary, short-term
/// and integrated loudness, loudness range and true peak, read through [`Loudness::stats`].
/// Buffers pass untouched (no copy) unless they hold non-finite samples, which leave as 0.
/// The meter is made for the negotiated format in `on_start` (or the first buffer's) and
/// restarts, counted, if the format changes. With a [`LoudnessTarget`]
/// ([`Loudness::with_target`], live through [`Loudness::set_target`]) every buffer leaves
/// through a pooled copy carrying the normalising gain.
pub struct Loudness {
    input: InputPort<AudioBuffer>,
    output: OutputPort<AudioBuffer>,
    meter: Option<LoudnessMeter>,
    pools: PoolSet,
    shared: Arc<Shared>,
    restarts: u64,
    target: Option<LoudnessTarget>,
    /// The gain applied at the end of the last buffer, dB.
    gain_db: f64,
}

impl Loudness {
    /// A meter; nothing is allocated for measuring until the format is known.
    pub fn new() -> Self {
        let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        let output = OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
        output.follows(&input, Follow::ALL);
        Self {
            input,
            output,
            meter: None,
            pools: PoolSet::new(HANDLER),
            shared: Arc::new(Shared::new()),
            restarts: 0,
            target: None,
            gain_db: 0.0,
        }
    }

    /// This meter, normalising its output to `target`.
    pub fn with_target(mut self, target: LoudnessTarget) -> Result<Self, AudioError> {
        self.set_target(Some(target))?;
        Ok(self)
    }

    /// Sets or clears the target (live); without one the gain returns to 0 dB at the slew
    /// rate and buffers pass by reference once it is there.
    pub fn set_target(&mut self, target: Option<LoudnessTarget>) -> Result<(), AudioError> {
        if let Some(t) = &target {
            t.check()?;
        }
        self.target = target;
        Ok(())
    }

    /// The target, if any.
    pub fn target(&self) -> Option<LoudnessTarget> {
        self.target
    }

    /// The gain the target wants now, dB, given what was measured (held through silence).
    fn wanted_gain_db(&self, stats: &LoudnessStats) -> f64 {
        let Some(t) = self.target else {
            return 0.0;
        };
        let measured = match t.window {
            TargetWindow::ShortTerm => stats.short_term_lufs,
            TargetWindow::Integrated => stats.integrated_lufs,
        };
        if !measured.is_finite() || measured < TARGET_GATE_LUFS {
            return self.gain_db;
        }
        (t.target_lufs - measured).clamp(-t.max_gain_db, t.max_gain_db)
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// A handle to read the figures from another thread.
    pub fn stats(&self) -> LoudnessStatsHandle {
        LoudnessStatsHandle(Arc::clone(&self.shared))
    }

    fn meter_for(&mut self, channels: u16, rate: u32) -> Result<&mut LoudnessMeter, AudioError> {
        let fits = self
            .meter
            .as_ref()
            .is_some_and(|m| m.channels == channels && m.rate == rate);
        if !fits {
            if self.meter.is_some() {
                self.restarts += 1;
                tracing::warn!(
                    channels,
                    rate,
                    "loudness: the stream's format changed; the meter restarts"
                );
            }
            self.meter = Some(LoudnessMeter::new(channels, rate)?);
        }
        self.meter
            .as_mut()
            .ok_or_else(|| meter_error(channels, rate, "no meter"))
    }
}

impl Default for Loudness {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHandler for Loudness {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        let negotiated = self.input.negotiated_format();
        if let Some(a) = negotiated.as_ref().and_then(Caps::as_audio)
            && let (Some(rate), Some(channels)) = (a.rate.fixed(), a.channels.fixed())
        {
            let channels = u16::try_from(channels).unwrap_or(u16::MAX);
            self.meter_for(channels, rate)?;
        }
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(buffer) = self.input.recv() {
            let channels = buffer.channels();
            let meter = self.meter_for(channels, buffer.sample_rate())?;
            let before = meter.non_finite;
            meter.add(buffer.samples())?;
            let flushed = meter.non_finite != before;
            let mut stats = meter.stats();
            stats.restarts = self.restarts;
            let frames = buffer.samples().len() / usize::from(channels.max(1));
            let wanted = self.wanted_gain_db(&stats);
            let from = self.gain_db;
            let slew = TARGET_SLEW_DB_PER_S * frames as f64 / f64::from(buffer.sample_rate());
            self.gain_db = from + (wanted - from).clamp(-slew, slew);
            stats.gain_db = self.gain_db;
            self.shared.store(&stats);
            if self.gain_db != 0.0 || from != 0.0 {
                let Some(meter) = self.meter.as_ref() else {
                    continue;
                };
                // The flushed copy when there was one, else the input, through the gain.
                let clean = if flushed {
                    &meter.scratch[..]
                } else {
                    buffer.samples()
                };
                let Some(mut out) = self.pools.acquire(clean.len(), &self.output)? else {
                    continue;
                };
                apply_ramp(clean, &mut out, usize::from(channels), from, self.gain_db);
                crate::pools::publish(
                    HANDLER,
                    &self.output,
                    out,
                    channels,
                    buffer.sample_rate(),
                    buffer.timestamp_ns(),
                )?;
                continue;
            }
            if !flushed {
                self.output.write(buffer);
                continue;
            }
            // Rare: the flushed copy leaves instead of the input.
            let Some(meter) = self.meter.as_ref() else {
                continue;
            };
            let Some(mut copy) = self.pools.acquire(meter.scratch.len(), &self.output)? else {
                continue;
            };
            copy.copy_from_slice(&meter.scratch);
            crate::pools::publish(
                HANDLER,
                &self.output,
                copy,
                channels,
                buffer.sample_rate(),
                buffer.timestamp_ns(),
            )?;
        }
        Ok(())
    }
}

/// `src` times a gain moving linearly (in linear terms) from `from_db` to `to_db` across its
/// frames, into `dst`.
fn apply_ramp(src: &[f32], dst: &mut [f32], channels: usize, from_db: f64, to_db: f64) {
    let (g0, g1) = (
        crate::db_to_linear(from_db) as f32,
        crate::db_to_linear(to_db) as f32,
    );
    let frames = src.len() / channels.max(1);
    let step = if frames > 0 {
        (g1 - g0) / frames as f32
    } else {
        0.0
    };
    let pairs = src
        .chunks_exact(channels.max(1))
        .zip(dst.chunks_exact_mut(channels.max(1)));
    for (k, (i, o)) in pairs.enumerate() {
        let g = g0 + step * (k + 1) as f32;
        for (x, y) in i.iter().zip(o.iter_mut()) {
            *y = x * g;
        }
    }
}
