//! `AudioTestSrc` (`audiotestsrc`): test signals stamped by the clock.
//!
//! # Timing
//! Sample `n` (counted from the clock's zero) is due at `floor(n · 1e9 / rate)` ns. Each tick
//! covers the time from its timestamp to the next frame boundary of the clock; the source
//! writes the samples due in that span, counted from the timestamps (never summed from buffer
//! lengths), so an hour of ticks yields exactly an hour of samples. Buffers have a fixed size
//! so they come from pre-allocated pools: with `samples_per_buffer` 0 (the default) one
//! tick's span, `floor` or `ceil` of `rate / fps` frames (two pools at 29.97 fps); otherwise
//! that many frames, as many buffers per tick as are due (the rest waits for the next tick).

use streamlib_buffers::BufferPool;
use streamlib_clock::Rational;
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, HandlerError, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StartContext, StreamHandler,
};

use crate::error::{check_format, check_range};
use crate::wave::Generator;
use crate::{AudioError, Wave};

const HANDLER: &str = "audiotestsrc";
const NS_PER_S: u128 = 1_000_000_000;
/// Largest `samples_per_buffer`: ten seconds at 48 kHz.
pub const MAX_SAMPLES_PER_BUFFER: usize = 480_000;

/// What an [`AudioTestSrc`] generates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioTestSrcConfig {
    /// The waveform. Default [`Wave::Sine`].
    pub wave: Wave,
    /// Frequency in Hz (sine, square, saw, the ticks' beep), `0 ..= rate / 2`. Default 440.
    pub freq: f64,
    /// Linear amplitude, `0 ..= 1`. Default 0.8 (GStreamer's).
    pub volume: f64,
    /// Sample rate in Hz. Default 48 000.
    pub rate: u32,
    /// Channel count (every channel carries the same signal, noise excepted). Default 2.
    pub channels: u16,
    /// Frames per buffer (GStreamer's `samplesperbuffer`); 0, the default, writes one
    /// buffer per tick covering the tick's span.
    pub samples_per_buffer: usize,
}

impl Default for AudioTestSrcConfig {
    fn default() -> Self {
        Self {
            wave: Wave::Sine,
            freq: 440.0,
            volume: 0.8,
            rate: 48_000,
            channels: 2,
            samples_per_buffer: 0,
        }
    }
}

impl AudioTestSrcConfig {
    /// Checks every field; the error names the property.
    pub fn validate(&self) -> Result<(), AudioError> {
        check_format(HANDLER, self.rate, self.channels)?;
        check_range(HANDLER, "freq", self.freq, 0.0, f64::from(self.rate) / 2.0)?;
        check_range(HANDLER, "volume", self.volume, 0.0, 1.0)?;
        if self.samples_per_buffer > MAX_SAMPLES_PER_BUFFER {
            return Err(AudioError::InvalidProperty {
                handler: HANDLER,
                property: "samplesperbuffer",
                value: self.samples_per_buffer.to_string(),
                expected: format!("0 (one buffer per tick) or 1 ..= {MAX_SAMPLES_PER_BUFFER}"),
            });
        }
        Ok(())
    }
}

/// Index of the first sample due at or after `t_ns`: `ceil(t · rate / 1e9)`, the inverse of
/// [`sample_time_ns`].
pub fn sample_at_ns(t_ns: u64, rate: u32) -> u64 {
    let n = (u128::from(t_ns) * u128::from(rate)).div_ceil(NS_PER_S);
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// When sample `n` is due: `floor(n · 1e9 / rate)` ns.
pub fn sample_time_ns(n: u64, rate: u32) -> u64 {
    let t = u128::from(n) * NS_PER_S / u128::from(rate.max(1));
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// A source with one output `"audio"` (`[cpu]`, caps fixed to its rate and channels):
/// sine, square, saw, white and pink noise, silence, a logarithmic sweep, or a sync tick
/// aligned to the clock's seconds, in pooled interleaved f32 [`AudioBuffer`]s.
///
/// Sample `n` (counted from the clock's zero) is due at `floor(n · 1e9 / rate)` ns
/// ([`sample_time_ns`]). Each tick covers the time from its timestamp to the clock's next
/// frame boundary and the source writes the samples due in that span, counted from the
/// timestamps, never summed from buffer lengths: an hour of ticks is exactly an hour of
/// samples. Buffers have a fixed size, from pre-allocated pools: with `samples_per_buffer` 0
/// one tick's span (`floor` or `ceil` of `rate / fps` frames, two pools at 29.97 fps),
/// otherwise that many frames, as many per tick as are due.
pub struct AudioTestSrc {
    config: AudioTestSrcConfig,
    output: OutputPort<AudioBuffer>,
    generator: Generator,
    /// One pool per buffer size (`sizes[i]` frames); made in `on_start`.
    pools: Vec<BufferPool<f32>>,
    sizes: [u64; 2],
    next_sample: Option<u64>,
    resyncs: u64,
}

impl AudioTestSrc {
    /// Checks `config`; pools are allocated in `on_start`, once the clock rate and the
    /// readers are known.
    pub fn new(config: AudioTestSrcConfig) -> Result<Self, AudioError> {
        config.validate()?;
        Ok(Self {
            output: OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::Audio(
                AudioCaps::fixed(config.rate, u32::from(config.channels)),
            )),
            generator: Generator::new(
                config.wave,
                config.freq,
                config.volume,
                config.rate,
                config.channels,
            ),
            pools: Vec::new(),
            sizes: [0; 2],
            next_sample: None,
            resyncs: 0,
            config,
        })
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// The configuration in force.
    pub fn config(&self) -> &AudioTestSrcConfig {
        &self.config
    }

    /// Changes the wave from the next buffer on (phase continuous).
    pub fn set_wave(&mut self, wave: Wave) {
        self.config.wave = wave;
        self.generator.wave = wave;
    }

    /// Changes the frequency from the next buffer on (phase continuous).
    pub fn set_freq(&mut self, freq: f64) -> Result<(), AudioError> {
        check_range(
            HANDLER,
            "freq",
            freq,
            0.0,
            f64::from(self.config.rate) / 2.0,
        )?;
        self.config.freq = freq;
        self.generator.freq = freq;
        Ok(())
    }

    /// Changes the amplitude from the next buffer on (use a `Volume` for click-free ramps).
    pub fn set_volume(&mut self, volume: f64) -> Result<(), AudioError> {
        check_range(HANDLER, "volume", volume, 0.0, 1.0)?;
        self.config.volume = volume;
        self.generator.volume = volume;
        Ok(())
    }

    /// Times the timeline was restarted because a tick was more than a second away from
    /// where the samples had got to (the clock jumped).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Buffer sizes in frames for a clock at `fps`: `[floor, ceil]` of `rate / fps`, or
    /// `samples_per_buffer` twice.
    fn buffer_sizes(&self, fps: Rational) -> Result<[u64; 2], AudioError> {
        if self.config.samples_per_buffer > 0 {
            let n = self.config.samples_per_buffer as u64;
            return Ok([n, n]);
        }
        let rate = u64::from(self.config.rate) * u64::from(fps.den);
        let num = u64::from(fps.num);
        if num == 0 || rate < num {
            return Err(AudioError::InvalidProperty {
                handler: HANDLER,
                property: "rate",
                value: self.config.rate.to_string(),
                expected: format!(
                    "at least one sample per clock tick at {fps} fps, or set samplesperbuffer"
                ),
            });
        }
        Ok([rate / num, rate.div_ceil(num)])
    }

    /// Sizes and allocates the pools for a clock at `fps` and the connected readers.
    fn prepare(&mut self, fps: Rational) -> Result<(), AudioError> {
        self.sizes = self.buffer_sizes(fps)?;
        let buffers = self.output.pool_capacity(8);
        let channels = usize::from(self.config.channels);
        self.pools.clear();
        let distinct = if self.sizes[0] == self.sizes[1] { 1 } else { 2 };
        for &frames in &self.sizes[..distinct] {
            let len = usize::try_from(frames).unwrap_or(usize::MAX) * channels;
            let pool = BufferPool::new(HANDLER, len, buffers, buffers).map_err(|source| {
                AudioError::Pool {
                    handler: HANDLER,
                    source,
                }
            })?;
            self.pools.push(pool);
        }
        self.next_sample = None;
        Ok(())
    }
}

impl StreamHandler for AudioTestSrc {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        Ok(self.prepare(ctx.clock().fps)?)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.pools.is_empty() {
            // Driven by hand without `on_start`: size the pools for the tick's rate.
            self.prepare(ctx.tick().fps)?;
        }
        let tick = *ctx.tick();
        let rate = self.config.rate;
        let boundary = tick
            .fps
            .frame_time_ns(tick.fps.frame_at_ns(tick.timestamp).saturating_add(1));
        let end = sample_at_ns(boundary, rate);
        let here = sample_at_ns(tick.timestamp, rate);
        let mut next = match self.next_sample {
            Some(n) if n.abs_diff(here) <= u64::from(rate) => n,
            Some(_) => {
                self.resyncs += 1;
                here
            }
            None => here,
        };
        let channels = usize::from(self.config.channels);
        let [lo, hi] = self.sizes;
        loop {
            let due = end.saturating_sub(next);
            let (pool, frames) = if due >= hi {
                (self.pools.len() - 1, hi)
            } else if due >= lo {
                (0, lo)
            } else {
                break;
            };
            if let Some(mut buf) = self.output.acquire_or_skip(&self.pools[pool]) {
                self.generator.fill(&mut buf, next, channels);
                crate::pools::publish(
                    HANDLER,
                    &self.output,
                    buf,
                    self.config.channels,
                    rate,
                    sample_time_ns(next, rate),
                )?;
            }
            next += frames;
        }
        self.next_sample = Some(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_index_and_time_are_inverse() {
        for rate in [44_100, 48_000, 96_000, 8_000] {
            for n in [0, 1, 2, 1601, 44_099, 1 << 40] {
                assert_eq!(sample_at_ns(sample_time_ns(n, rate), rate), n, "{rate} {n}");
            }
        }
    }
}
