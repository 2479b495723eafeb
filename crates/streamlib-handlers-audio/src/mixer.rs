//! `AudioMixer` (`audiomixer`): N inputs summed with per-input gains, aligned by timestamps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort,
    OutputRef, Ports, ProcessContext, StreamHandler,
};

use crate::error::{check_format, check_range};
use crate::pools::PoolSet;
use crate::{AudioError, MAX_VOLUME, sample_at_ns, sample_time_ns};

const HANDLER: &str = "audiomixer";
/// Most inputs a mixer takes.
pub const MAX_MIXER_INPUTS: usize = 64;
/// Buffers held per input waiting for their time (beyond, they wait in the port's queue).
const PENDING: usize = 32;

/// What an [`AudioMixer`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioMixerConfig {
    /// Number of inputs, `sink_0 ..`, `1 ..= `[`MAX_MIXER_INPUTS`]. Default 2.
    pub inputs: usize,
    /// Output sample rate in Hz (every input must carry it). Default 48 000.
    pub rate: u32,
    /// Output channel count (every input must carry it). Default 2.
    pub channels: u16,
    /// How far behind the clock the mix runs, ns: inputs have this long to deliver a
    /// span before it is mixed without them. Default 0 (inputs processed before the mixer
    /// in the same tick are on time).
    pub latency_ns: u64,
}

impl Default for AudioMixerConfig {
    fn default() -> Self {
        Self {
            inputs: 2,
            rate: 48_000,
            channels: 2,
            latency_ns: 0,
        }
    }
}

/// Per-input counters, readable from any thread.
#[derive(Debug, Default)]
pub struct MixerInputCounters {
    /// Output buffers this input filled completely.
    pub mixed: AtomicU64,
    /// Output buffers where this input (connected) had some or all samples missing: mixed
    /// as silence there.
    pub silent: AtomicU64,
    /// Input buffers that arrived after their span had been mixed: dropped (in whole or
    /// in part).
    pub late: AtomicU64,
}

/// A shared handle on a mixer's counters, one entry per input.
#[derive(Debug, Clone)]
pub struct MixerStatsHandle(Arc<[MixerInputCounters]>);

/// One input's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MixerInputStats {
    /// See [`MixerInputCounters::mixed`].
    pub mixed: u64,
    /// See [`MixerInputCounters::silent`].
    pub silent: u64,
    /// See [`MixerInputCounters::late`].
    pub late: u64,
}

impl MixerStatsHandle {
    /// Every input's counters now.
    pub fn snapshot(&self) -> Vec<MixerInputStats> {
        self.0
            .iter()
            .map(|c| MixerInputStats {
                mixed: c.mixed.load(Ordering::Relaxed),
                silent: c.silent.load(Ordering::Relaxed),
                late: c.late.load(Ordering::Relaxed),
            })
            .collect()
    }
}

struct MixerInput {
    port: InputPort<AudioBuffer>,
    gain: f32,
    /// Received buffers not yet wholly mixed, oldest first.
    pending: VecDeque<AudioBuffer>,
}

/// A mixer with optional inputs `sink_0 .. sink_{N-1}` and one output `"audio"` (all
/// `[cpu]`, caps fixed to the configured rate and channels). On each clock tick it mixes
/// the span from the tick's timestamp (less the latency) to the clock's next frame
/// boundary, counted in samples from the timestamps as `audiotestsrc` counts them; each
/// input contributes the samples its buffers' timestamps place in that span, times its
/// gain. Samples an input has not delivered by then are silence, counted per input
/// (`silent`), and buffers that come after their span was mixed are dropped and counted
/// (`late`). Output buffers are pooled and pending queues pre-allocated: steady state
/// allocates nothing.
pub struct AudioMixer {
    config: AudioMixerConfig,
    inputs: Vec<MixerInput>,
    output: OutputPort<AudioBuffer>,
    pools: PoolSet,
    stats: MixerStatsHandle,
    next_sample: Option<u64>,
}

impl AudioMixer {
    /// A mixer for `config`; the error names the property out of range.
    pub fn new(config: AudioMixerConfig) -> Result<Self, AudioError> {
        check_format(HANDLER, config.rate, config.channels)?;
        if !(1..=MAX_MIXER_INPUTS).contains(&config.inputs) {
            return Err(AudioError::InvalidProperty {
                handler: HANDLER,
                property: "inputs",
                value: config.inputs.to_string(),
                expected: format!("1 ..= {MAX_MIXER_INPUTS} inputs"),
            });
        }
        let caps = Caps::Audio(AudioCaps::fixed(config.rate, u32::from(config.channels)));
        let inputs = (0..config.inputs)
            .map(|n| MixerInput {
                port: InputPort::new(format!("sink_{n}"), MemoryCaps::CPU)
                    .with_format(caps.clone())
                    .optional(),
                gain: 1.0,
                pending: VecDeque::with_capacity(PENDING),
            })
            .collect();
        let stats = MixerStatsHandle(
            (0..config.inputs)
                .map(|_| MixerInputCounters::default())
                .collect(),
        );
        Ok(Self {
            config,
            inputs,
            output: OutputPort::new("audio", MemoryCaps::CPU).with_format(caps),
            pools: PoolSet::new(HANDLER),
            stats,
            next_sample: None,
        })
    }

    /// Input `n` (`sink_<n>`), if there is one.
    pub fn input(&self, n: usize) -> Option<InputRef<AudioBuffer>> {
        self.inputs.get(n).map(|i| i.port.handle())
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// The counters, one entry per input.
    pub fn stats(&self) -> MixerStatsHandle {
        self.stats.clone()
    }

    /// Sets input `n`'s linear gain (`0 ..= `[`MAX_VOLUME`]), from the next buffer on.
    pub fn set_gain(&mut self, n: usize, gain: f64) -> Result<(), AudioError> {
        check_range(HANDLER, "sink_<N>.volume", gain, 0.0, MAX_VOLUME)?;
        let count = self.inputs.len();
        let input = self
            .inputs
            .get_mut(n)
            .ok_or_else(|| AudioError::InvalidProperty {
                handler: HANDLER,
                property: "sink_<N>.volume",
                value: format!("sink_{n}"),
                expected: format!("an input in sink_0 ..= sink_{}", count - 1),
            })?;
        input.gain = gain as f32;
        Ok(())
    }

    /// Checks that `buffer` (arrived on `sink_<n>`) has the mixer's format.
    fn check(&self, n: usize, buffer: &AudioBuffer) -> Result<(), AudioError> {
        if buffer.sample_rate() == self.config.rate && buffer.channels() == self.config.channels {
            return Ok(());
        }
        Err(AudioError::InvalidProperty {
            handler: HANDLER,
            property: "rate/channels",
            value: format!(
                "sink_{n} carries {} Hz {} ch",
                buffer.sample_rate(),
                buffer.channels()
            ),
            expected: format!(
                "{} Hz {} ch on every input (put an audioconvert before it)",
                self.config.rate, self.config.channels
            ),
        })
    }
}

impl StreamHandler for AudioMixer {
    fn ports(&self) -> Ports {
        self.inputs
            .iter()
            .fold(Ports::new(), |p, i| p.input(&i.port))
            .output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let tick = *ctx.tick();
        let rate = self.config.rate;
        let latency = self.config.latency_ns;
        let boundary = tick
            .fps
            .frame_time_ns(tick.fps.frame_at_ns(tick.timestamp).saturating_add(1));
        let end = sample_at_ns(boundary.saturating_sub(latency), rate);
        let here = sample_at_ns(tick.timestamp.saturating_sub(latency), rate);
        let start = match self.next_sample {
            Some(n) if n.abs_diff(here) <= u64::from(rate) => n,
            _ => here,
        };
        // Take in what has arrived, dropping what is wholly in the past.
        for n in 0..self.inputs.len() {
            while self.inputs[n].pending.len() < PENDING {
                let Some(buffer) = self.inputs[n].port.recv() else {
                    break;
                };
                self.check(n, &buffer)?;
                let first = sample_at_ns(buffer.timestamp_ns(), rate);
                if first + buffer.frames() as u64 <= start {
                    self.stats.0[n].late.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if first < start && self.next_sample.is_some() {
                    // Partly in a span already mixed: that part is lost.
                    self.stats.0[n].late.fetch_add(1, Ordering::Relaxed);
                }
                self.inputs[n].pending.push_back(buffer);
            }
        }
        if end <= start {
            return Ok(());
        }
        let frames = usize::try_from(end - start).unwrap_or(usize::MAX);
        let channels = usize::from(self.config.channels);
        self.next_sample = Some(end);
        let Some(mut out) = self.pools.acquire(frames * channels, &self.output)? else {
            return Ok(());
        };
        out.fill(0.0);
        for (n, input) in self.inputs.iter_mut().enumerate() {
            let mut covered = 0u64;
            for buffer in &input.pending {
                let first = sample_at_ns(buffer.timestamp_ns(), rate);
                let last = first + buffer.frames() as u64;
                let (from, to) = (first.max(start), last.min(end));
                if from >= to {
                    continue;
                }
                covered += to - from;
                let src = &buffer.samples()[(from - first) as usize * channels..]
                    [..(to - from) as usize * channels];
                let dst = &mut out[(from - start) as usize * channels..];
                let g = input.gain;
                for (o, i) in dst.iter_mut().zip(src) {
                    *o += i * g;
                }
            }
            while input
                .pending
                .front()
                .is_some_and(|b| sample_at_ns(b.timestamp_ns(), rate) + b.frames() as u64 <= end)
            {
                input.pending.pop_front();
            }
            let counters = &self.stats.0[n];
            if covered >= end - start {
                counters.mixed.fetch_add(1, Ordering::Relaxed);
            } else if input.port.is_connected() {
                counters.silent.fetch_add(1, Ordering::Relaxed);
            }
        }
        crate::pools::publish(
            HANDLER,
            &self.output,
            out,
            self.config.channels,
            rate,
            sample_time_ns(start, rate),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn bad_configs_name_the_property() {
        for (config, property) in [
            (
                AudioMixerConfig {
                    inputs: 0,
                    ..AudioMixerConfig::default()
                },
                "`inputs`",
            ),
            (
                AudioMixerConfig {
                    channels: 0,
                    ..AudioMixerConfig::default()
                },
                "`channels`",
            ),
            (
                AudioMixerConfig {
                    channels: 1000,
                    ..AudioMixerConfig::default()
                },
                "`channels`",
            ),
        ] {
            let err = AudioMixer::new(config).err().unwrap().to_string();
            assert!(
                err.contains("audiomixer") && err.contains(property),
                "{err}"
            );
        }
        let mut m = AudioMixer::new(AudioMixerConfig::default()).unwrap();
        assert!(m.set_gain(5, 1.0).is_err());
        assert!(m.set_gain(1, 11.0).is_err());
    }
}
