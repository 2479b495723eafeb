//! `AudioSink` (`audiosink`): plays audio on a sound device, following its clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cpal::traits::DeviceTrait;
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use streamlib_ports::{
    AudioBuffer, Caps, HandlerError, InputPort, InputRef, MemoryCaps, Ports, ProcessContext,
    StartContext, StreamHandler,
};

use super::drift::DriftController;
use super::ring::SampleRing;
use super::select::{self, Chosen, Direction};
use super::stream::DeviceStream;
use super::{AudioDeviceStatsHandle, Counters, DeviceError, Health, bump, set};
use crate::AudioError;
use crate::error::{check_format, check_range};
use crate::resample::AsyncResampler;

const HANDLER: &str = "audiosink";

/// How an [`AudioSink`] plays.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSinkConfig {
    /// The device's name or a part of it (`pulse`, `hw:CARD=0`); `None`: the host's default.
    pub device: Option<String>,
    /// The fill level the sink keeps queued ahead of the device, ms (`1 ..= 2000`).
    /// Default 50.
    pub latency_ms: f64,
    /// The device's period in frames (`0`: the device's default).
    pub buffer_frames: u32,
    /// The device's rate, Hz (`0`: the device's default; the sink resamples to it).
    pub rate: u32,
}

impl Default for AudioSinkConfig {
    fn default() -> Self {
        Self {
            device: None,
            latency_ms: 50.0,
            buffer_frames: 0,
            rate: 0,
        }
    }
}

impl AudioSinkConfig {
    /// Checks every field; the error names the property.
    pub fn validate(&self) -> Result<(), AudioError> {
        check_range(HANDLER, "latency-ms", self.latency_ms, 1.0, 2000.0)?;
        check_range(
            HANDLER,
            "buffer-frames",
            f64::from(self.buffer_frames),
            0.0,
            65_536.0,
        )?;
        if self.rate != 0 {
            check_format(HANDLER, self.rate, 1)?;
        }
        Ok(())
    }
}

/// What the device's callback and the sink share while a stream is open.
struct Playback {
    ring: SampleRing,
    channels: usize,
    /// Samples the ring must hold before playing starts (again): the latency target. Once
    /// playing it is filled to three times this at most (past that is an over-run).
    target_samples: usize,
    primed: AtomicBool,
    health: Health,
    counters: Arc<Counters>,
}

impl Playback {
    fn new(rate: u32, channels: u16, latency_ms: f64, counters: Arc<Counters>) -> Self {
        let target_frames = (latency_ms * f64::from(rate) / 1000.0).round().max(1.0) as usize;
        let channels = usize::from(channels.max(1));
        // The producer fills to three times the target at most; a period of slack beyond.
        let capacity = (3 * target_frames + rate as usize / 10) * channels;
        set(&counters.target_frames, target_frames as u64);
        Self {
            ring: SampleRing::new(capacity),
            channels,
            target_samples: target_frames * channels,
            primed: AtomicBool::new(false),
            health: Health::new(),
            counters,
        }
    }

    /// The device callback: fills `out` from the ring; silence while priming or short.
    fn pull<T: Sample + FromSample<f32>>(&self, out: &mut [T]) {
        self.health.alive();
        bump(&self.counters.callbacks, 1);
        // Relaxed: `primed` orders nothing; the ring's positions carry the data.
        if !self.primed.load(Ordering::Relaxed) {
            if self.ring.len() < self.target_samples {
                out.fill(T::EQUILIBRIUM);
                return;
            }
            self.primed.store(true, Ordering::Relaxed);
        }
        let n = self
            .ring
            .pop_each(out.len(), |i, s| out[i] = T::from_sample(s));
        bump(&self.counters.frames, (n / self.channels) as u64);
        if n < out.len() {
            out[n..].fill(T::EQUILIBRIUM);
            bump(&self.counters.underruns, 1);
            self.primed.store(false, Ordering::Relaxed);
        }
    }
}

/// The device end of an [`AudioSink`] made with [`AudioSink::pulled`]: whoever holds it
/// plays the role of the device's callback (a test with a simulated crystal, or another
/// audio engine's callback).
pub struct SinkPull(Arc<Playback>);

impl SinkPull {
    /// Fills `out` (interleaved, the sink's channels) as the device callback would: from the
    /// ring, silence while priming, silence and an under-run when short.
    pub fn pull(&self, out: &mut [f32]) {
        self.0.pull(out);
    }

    /// Samples queued.
    pub fn queued(&self) -> usize {
        self.0.ring.len()
    }
}

/// The resampler for one input format.
struct Resampling {
    resampler: AsyncResampler,
    in_rate: u32,
}

/// A sink with one input `"audio"` (`[cpu]`, any rate and channel count) that plays on a
/// sound device through cpal. Buffers go through a channel map (mono spread, surplus
/// channels dropped) and an [`AsyncResampler`] to the device's rate into a wait-free ring
/// the device callback drains; under-runs and over-runs are counted in [`stats`](Self::stats).
/// A PI loop on the ring's fill level steers the resampler by parts per million so the
/// latency stays at `latency_ms` however the pipeline's clock and the device's crystal drift.
///
/// The device is found by name in [`new`](Self::new) (an unknown name is an error listing
/// the devices) and opened in `on_start`; an error from the device or a device that stops
/// calling back makes `process` fail with [`DeviceError::Lost`], for the runtime's restart
/// policy. Steady state allocates nothing.
pub struct AudioSink {
    config: AudioSinkConfig,
    /// Without a device when made with [`pulled`](Self::pulled).
    device: DeviceStream,
    input: InputPort<AudioBuffer>,
    counters: Arc<Counters>,
    playback: Option<Arc<Playback>>,
    rate: u32,
    channels: u16,
    resampling: Option<Resampling>,
    mapped: Vec<f32>,
    resampled: Vec<f32>,
    controller: DriftController,
}

impl AudioSink {
    /// Checks `config` and finds its device (an unknown name is
    /// [`AudioError::InvalidProperty`] on `device`, listing the output devices). The device
    /// is opened in `on_start`.
    pub fn new(config: AudioSinkConfig) -> Result<Self, AudioError> {
        config.validate()?;
        let chosen = select::choose(HANDLER, config.device.as_deref(), Direction::Output)?;
        Ok(Self::build(config, Some(chosen), 0, 0))
    }

    /// A sink without a device at `rate` and `channels`, and the handle that drains it in
    /// the device's place.
    pub fn pulled(
        config: AudioSinkConfig,
        rate: u32,
        channels: u16,
    ) -> Result<(Self, SinkPull), AudioError> {
        config.validate()?;
        check_format(HANDLER, rate, channels)?;
        let mut sink = Self::build(config, None, rate, channels);
        let playback = sink.open_playback(rate, channels);
        Ok((sink, SinkPull(playback)))
    }

    fn build(config: AudioSinkConfig, chosen: Option<Chosen>, rate: u32, channels: u16) -> Self {
        let target_s = config.latency_ms / 1000.0;
        Self {
            config,
            device: DeviceStream::new(HANDLER, Direction::Output, chosen),
            input: InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio()),
            counters: Arc::new(Counters::default()),
            playback: None,
            rate,
            channels,
            resampling: None,
            mapped: Vec::new(),
            resampled: Vec::new(),
            controller: DriftController::new(target_s),
        }
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// Under-runs, over-runs, fill level and drift correction, readable while it runs.
    pub fn stats(&self) -> AudioDeviceStatsHandle {
        AudioDeviceStatsHandle(Arc::clone(&self.counters))
    }

    /// The device chosen, as `id (description)` (`None` for a pulled sink).
    pub fn device(&self) -> Option<String> {
        self.device.chosen()
    }

    /// The configuration in force.
    pub fn config(&self) -> &AudioSinkConfig {
        &self.config
    }

    /// The relative resampling ratio the drift loop asks for (1: none).
    pub fn drift_ratio(&self) -> f64 {
        self.controller.ratio()
    }

    fn open_playback(&mut self, rate: u32, channels: u16) -> Arc<Playback> {
        let playback = Arc::new(Playback::new(
            rate,
            channels,
            self.config.latency_ms,
            Arc::clone(&self.counters),
        ));
        self.rate = rate;
        self.channels = channels;
        self.counters.opened(rate, channels);
        self.playback = Some(Arc::clone(&playback));
        self.resampling = None;
        let keep = self.controller.ratio();
        self.controller.reset(keep);
        playback
    }

    /// Opens the device and starts its stream.
    fn open(&mut self) -> Result<(), DeviceError> {
        let Some((device, chosen)) = self.device.find()? else {
            return Ok(());
        };
        let default = device
            .default_output_config()
            .map_err(|e| self.device.open_error(e))?;
        let rate = if self.config.rate == 0 {
            default.sample_rate()
        } else {
            self.config.rate
        };
        let channels = default.channels();
        check_format(HANDLER, rate, channels).map_err(|e| self.device.open_error(e))?;
        let stream_config = cpal::StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size: match self.config.buffer_frames {
                0 => cpal::BufferSize::Default,
                n => cpal::BufferSize::Fixed(n),
            },
        };
        let playback = self.open_playback(rate, channels);
        let stream = match default.sample_format() {
            SampleFormat::I16 => build::<i16>(&device, &stream_config, &playback),
            SampleFormat::I32 => build::<i32>(&device, &stream_config, &playback),
            _ => build::<f32>(&device, &stream_config, &playback),
        };
        self.device.start(stream)?;
        tracing::info!(device = %chosen, rate, channels, "audiosink: playing");
        Ok(())
    }

    /// Fails if the device reported an error or stopped calling back.
    fn check_device(&self) -> Result<(), DeviceError> {
        self.device
            .check(self.playback.as_deref().map(|p| &p.health))
    }

    /// Maps, resamples and queues one buffer; runs the drift loop.
    fn play(&mut self, buffer: &AudioBuffer) -> Result<(), AudioError> {
        let Some(playback) = self.playback.as_ref() else {
            return Ok(());
        };
        let in_rate = buffer.sample_rate();
        let in_channels = usize::from(buffer.channels());
        let out_channels = usize::from(self.channels);
        if self.resampling.as_ref().map(|r| r.in_rate) != Some(in_rate) {
            let mut resampler = AsyncResampler::new(HANDLER, self.channels, in_rate, self.rate)?;
            resampler.set_relative_ratio(self.controller.ratio());
            self.resampling = Some(Resampling { resampler, in_rate });
        }
        let Some(resampling) = self.resampling.as_mut() else {
            return Ok(());
        };
        map_channels(
            buffer.samples(),
            in_channels,
            &mut self.mapped,
            out_channels,
        );
        let room = resampling.resampler.max_output_len(self.mapped.len());
        if self.resampled.len() < room {
            self.resampled.resize(room, 0.0);
        }
        let n = resampling
            .resampler
            .process(&self.mapped, &mut self.resampled)?;
        let out = &self.resampled[..n.min(self.resampled.len())];
        // While the device is not playing (opening, or after an under-run) the ring fills to
        // the target and no further; while it plays, to three times the target: past that
        // the device has stalled or the pipeline runs far ahead, and latency must not grow
        // without bound while the slow loop catches up.
        let primed = playback.primed.load(Ordering::Relaxed);
        let limit = playback.target_samples * if primed { 3 } else { 1 };
        let room = limit.saturating_sub(playback.ring.len()).min(out.len());
        let pushed = playback.ring.push(out[..room].iter().copied());
        if pushed < out.len() {
            if primed {
                bump(&self.counters.overruns, 1);
            }
            bump(&self.counters.dropped_samples, (out.len() - pushed) as u64);
        }
        // The loop runs only while playing: priming fills without draining.
        if playback.primed.load(Ordering::Relaxed) {
            let fill_frames = playback.ring.len() / out_channels.max(1);
            let fill_s = fill_frames as f64 / f64::from(self.rate);
            let dt_s = buffer.frames() as f64 / f64::from(in_rate);
            let ratio = self.controller.update(fill_s, dt_s);
            resampling.resampler.set_relative_ratio(ratio);
            let level = self.controller.level_s() * f64::from(self.rate);
            set(&self.counters.fill_frames, level.round() as u64);
            set(
                &self.counters.drift_ppm_bits,
                ((ratio - 1.0) * 1e6).to_bits(),
            );
        } else {
            let fill_frames = playback.ring.len() / out_channels.max(1);
            set(&self.counters.fill_frames, fill_frames as u64);
        }
        Ok(())
    }
}

/// Builds the output stream in sample type `T`.
fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    playback: &Arc<Playback>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let data = Arc::clone(playback);
    let errors = Arc::clone(playback);
    device.build_output_stream::<T, _, _>(
        *config,
        move |out: &mut [T], _| data.pull(out),
        move |e| {
            if errors.health.error(&e) {
                bump(&errors.counters.underruns, 1);
            }
        },
        Some(std::time::Duration::from_secs(2)),
    )
}

/// Copies interleaved `src` (`from` channels) into `dst` with `to` channels: the same count
/// as is, mono spread to all, otherwise the first channels kept and any extra left silent.
pub(crate) fn map_channels(src: &[f32], from: usize, dst: &mut Vec<f32>, to: usize) {
    let (from, to) = (from.max(1), to.max(1));
    let frames = src.len() / from;
    dst.clear();
    if from == to {
        dst.extend_from_slice(&src[..frames * from]);
        return;
    }
    dst.resize(frames * to, 0.0);
    for (i, o) in src.chunks_exact(from).zip(dst.chunks_exact_mut(to)) {
        if from == 1 {
            o.fill(i[0]);
        } else {
            let n = from.min(to);
            o[..n].copy_from_slice(&i[..n]);
        }
    }
}

impl StreamHandler for AudioSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        Ok(self.open()?)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.check_device()?;
        while let Some(buffer) = self.input.recv() {
            self.play(&buffer)?;
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        if self.device.has_device() {
            self.device.close();
            self.playback = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_map_mono_spread_and_surplus_dropped() {
        let mut dst = Vec::new();
        map_channels(&[0.5, -0.5], 1, &mut dst, 2);
        assert_eq!(dst, [0.5, 0.5, -0.5, -0.5]);
        map_channels(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, &mut dst, 2);
        assert_eq!(dst, [1.0, 2.0, 4.0, 5.0]);
        map_channels(&[1.0, 2.0], 2, &mut dst, 3);
        assert_eq!(dst, [1.0, 2.0, 0.0]);
    }
}
