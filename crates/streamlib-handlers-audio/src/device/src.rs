//! `AudioSrc` (`audiosrc`): captures audio from a sound device, stamped by the pipeline clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SampleFormat, SizedSample};
use streamlib_buffers::BufferPool;
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, HandlerError, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StartContext, StreamHandler,
};

use super::ring::SampleRing;
use super::select::{self, Chosen, Direction};
use super::stream::DeviceStream;
use super::{AudioDeviceStatsHandle, Counters, DeviceError, Health, bump, set};
use crate::AudioError;
use crate::error::{check_format, check_range};

const HANDLER: &str = "audiosrc";
/// The smoothed distance between the stamps counted from the samples and those measured
/// from the callbacks past which the timeline restarts (the device's crystal drifted off the
/// pipeline's clock, or samples were lost).
const RESYNC_NS: f64 = 20e6;
/// A single measurement this far off restarts the timeline at once (a gap, a stall).
const JUMP_NS: f64 = 250e6;
/// Weight of each measurement in the smoothed distance: callbacks deliver in bursts (a
/// server period at a time), so one measurement jitters by a period.
const SMOOTHING: f64 = 0.05;

/// How an [`AudioSrc`] captures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AudioSrcConfig {
    /// The device's name or a part of it (`pulse`, `hw:CARD=0`); `None`: the host's default.
    pub device: Option<String>,
    /// Sample rate, Hz (`0`: the device's default).
    pub rate: u32,
    /// Channel count (`0`: the device's default).
    pub channels: u16,
    /// Frames per output buffer (`0`: 10 ms).
    pub buffer_frames: u32,
    /// How much capture the ring holds while the pipeline is busy, ms (`0`: 500).
    pub latency_ms: f64,
}

impl AudioSrcConfig {
    /// Checks every field; the error names the property.
    pub fn validate(&self) -> Result<(), AudioError> {
        check_range(HANDLER, "latency-ms", self.latency_ms, 0.0, 10_000.0)?;
        check_range(
            HANDLER,
            "buffer-frames",
            f64::from(self.buffer_frames),
            0.0,
            480_000.0,
        )?;
        if self.rate != 0 || self.channels != 0 {
            check_format(HANDLER, self.rate.max(1_000), self.channels.max(1))?;
        }
        Ok(())
    }
}

/// What the capture callback and the source share while a stream is open.
struct Capture {
    ring: SampleRing,
    channels: usize,
    health: Health,
    counters: Arc<Counters>,
    /// Where the timeline stands after the last callback: frames pushed into the ring so far
    /// and when (ns after `health.epoch`), under a sequence count (odd while writing).
    seq: AtomicU64,
    anchor_frames: AtomicU64,
    anchor_ns: AtomicU64,
    pushed_frames: AtomicU64,
}

impl Capture {
    fn new(rate: u32, channels: u16, latency_ms: f64, counters: Arc<Counters>) -> Self {
        let ms = if latency_ms > 0.0 { latency_ms } else { 500.0 };
        let channels = usize::from(channels.max(1));
        let frames = (ms * f64::from(rate) / 1000.0).ceil().max(1.0) as usize;
        Self {
            ring: SampleRing::new(frames * channels),
            channels,
            health: Health::new(),
            counters,
            seq: AtomicU64::new(0),
            anchor_frames: AtomicU64::new(0),
            anchor_ns: AtomicU64::new(0),
            pushed_frames: AtomicU64::new(0),
        }
    }

    /// The capture callback: queues `data`, dropping (and counting) what does not fit.
    fn push<T: Copy>(&self, data: &[T])
    where
        f32: FromSample<T>,
    {
        self.health.alive();
        bump(&self.counters.callbacks, 1);
        let n = self.ring.push(
            data.iter()
                .map(|&s| <f32 as FromSample<T>>::from_sample_(s)),
        );
        if n < data.len() {
            bump(&self.counters.overruns, 1);
            bump(&self.counters.dropped_samples, (data.len() - n) as u64);
        }
        let frames = (n / self.channels) as u64;
        bump(&self.counters.frames, (data.len() / self.channels) as u64);
        // Relaxed: only this side writes `pushed_frames`.
        let total = self.pushed_frames.load(Ordering::Relaxed) + frames;
        self.pushed_frames.store(total, Ordering::Relaxed);
        let now = self.health.now_ns();
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.anchor_frames.store(total, Ordering::Relaxed);
        self.anchor_ns.store(now, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// The last anchor: (frames pushed, ns after the epoch when the last was captured).
    fn anchor(&self) -> (u64, u64) {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let frames = self.anchor_frames.load(Ordering::Relaxed);
            let ns = self.anchor_ns.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if before.is_multiple_of(2) && self.seq.load(Ordering::Relaxed) == before {
                return (frames, ns);
            }
            std::hint::spin_loop();
        }
    }
}

/// The device end of an [`AudioSrc`] made with [`AudioSrc::pushed`]: whoever holds it plays
/// the capture callback's role.
pub struct SrcPush(Arc<Capture>);

impl SrcPush {
    /// Queues interleaved `samples` as the capture callback would (what does not fit is an
    /// over-run, counted and dropped).
    pub fn push(&self, samples: &[f32]) {
        self.0.push(samples);
    }
}

/// A source with one output `"audio"` (`[cpu]`, caps fixed to the device's rate and
/// channels) capturing from a sound device through cpal. The capture callback writes into a
/// wait-free ring (a full ring drops and counts an over-run); `process` cuts the ring into
/// pooled buffers of `buffer_frames` and stamps each from the pipeline clock at the time its
/// first sample was captured, following the sample count between stamps (re-anchored,
/// counted as a resync, when the two part by over 20 ms on average, or 250 ms at once).
pub struct AudioSrc {
    config: AudioSrcConfig,
    /// Without a device when made with [`pushed`](Self::pushed).
    device: DeviceStream,
    output: OutputPort<AudioBuffer>,
    counters: Arc<Counters>,
    capture: Option<Arc<Capture>>,
    rate: u32,
    channels: u16,
    frames_per_buffer: usize,
    pool: Option<BufferPool<f32>>,
    /// Frames taken out of the ring so far.
    taken: u64,
    /// Where the next buffer's stamp is, following the count.
    next_ts: Option<u64>,
    /// Smoothed measured-minus-counted stamp, ns.
    offset_ns: f64,
}

impl AudioSrc {
    /// Checks `config`, finds its device (an unknown name is [`AudioError::InvalidProperty`]
    /// on `device`, listing the input devices) and reads its default format for the caps.
    /// The device is opened in `on_start`.
    pub fn new(config: AudioSrcConfig) -> Result<Self, AudioError> {
        config.validate()?;
        let chosen = select::choose(HANDLER, config.device.as_deref(), Direction::Input)?;
        let default = select::reopen(&chosen)
            .and_then(|d| d.default_input_config().ok())
            .map(|c| (c.sample_rate(), c.channels()));
        let (rate, channels) = match (config.rate, config.channels, default) {
            (0, _, None) | (_, 0, None) => (48_000, 2),
            (0, 0, Some(d)) => d,
            (0, c, Some((r, _))) => (r, c),
            (r, 0, Some((_, c))) => (r, c),
            (r, c, _) => (r, c),
        };
        check_format(HANDLER, rate, channels)?;
        Ok(Self::build(config, Some(chosen), rate, channels))
    }

    /// A source without a device at `rate` and `channels`, and the handle that fills it in
    /// the capture callback's place.
    pub fn pushed(
        config: AudioSrcConfig,
        rate: u32,
        channels: u16,
    ) -> Result<(Self, SrcPush), AudioError> {
        config.validate()?;
        check_format(HANDLER, rate, channels)?;
        let mut src = Self::build(config, None, rate, channels);
        let capture = src.open_capture();
        Ok((src, SrcPush(capture)))
    }

    fn build(config: AudioSrcConfig, chosen: Option<Chosen>, rate: u32, channels: u16) -> Self {
        let frames_per_buffer = match config.buffer_frames {
            0 => (rate as usize / 100).max(1),
            n => n as usize,
        };
        Self {
            output: OutputPort::new("audio", MemoryCaps::CPU)
                .with_format(Caps::Audio(AudioCaps::fixed(rate, u32::from(channels)))),
            config,
            device: DeviceStream::new(HANDLER, Direction::Input, chosen),
            counters: Arc::new(Counters::default()),
            capture: None,
            rate,
            channels,
            frames_per_buffer,
            pool: None,
            taken: 0,
            next_ts: None,
            offset_ns: 0.0,
        }
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// Over-runs, frames captured and resyncs, readable while it runs.
    pub fn stats(&self) -> AudioDeviceStatsHandle {
        AudioDeviceStatsHandle(Arc::clone(&self.counters))
    }

    /// The device chosen, as `id (description)` (`None` for a pushed source).
    pub fn device(&self) -> Option<String> {
        self.device.chosen()
    }

    /// The rate and channel count it captures at.
    pub fn format(&self) -> (u32, u16) {
        (self.rate, self.channels)
    }

    fn open_capture(&mut self) -> Arc<Capture> {
        let capture = Arc::new(Capture::new(
            self.rate,
            self.channels,
            self.config.latency_ms,
            Arc::clone(&self.counters),
        ));
        self.counters.opened(self.rate, self.channels);
        self.capture = Some(Arc::clone(&capture));
        self.taken = 0;
        self.next_ts = None;
        self.offset_ns = 0.0;
        capture
    }

    fn prepare_pool(&mut self) -> Result<(), AudioError> {
        let buffers = self.output.pool_capacity(8);
        let len = self.frames_per_buffer * usize::from(self.channels);
        let pool =
            BufferPool::new(HANDLER, len, buffers, buffers).map_err(|source| AudioError::Pool {
                handler: HANDLER,
                source,
            })?;
        self.pool = Some(pool);
        Ok(())
    }

    fn open(&mut self) -> Result<(), DeviceError> {
        let Some((device, chosen)) = self.device.find()? else {
            return Ok(());
        };
        let format = device
            .default_input_config()
            .map(|c| c.sample_format())
            .map_err(|e| self.device.open_error(e))?;
        let config = cpal::StreamConfig {
            channels: self.channels,
            sample_rate: self.rate,
            buffer_size: cpal::BufferSize::Default,
        };
        let capture = self.open_capture();
        let stream = match format {
            SampleFormat::I16 => build::<i16>(&device, &config, &capture),
            SampleFormat::I32 => build::<i32>(&device, &config, &capture),
            _ => build::<f32>(&device, &config, &capture),
        };
        self.device.start(stream)?;
        tracing::info!(device = %chosen, rate = self.rate, channels = self.channels, "audiosrc: capturing");
        Ok(())
    }

    fn check_device(&self) -> Result<(), DeviceError> {
        self.device
            .check(self.capture.as_deref().map(|c| &c.health))
    }

    /// The pipeline time at which frame `n` (counted since the stream opened) was captured,
    /// given that the tick stamped `tick_ns` is now (`now_ns` after the capture's epoch).
    fn capture_time(&self, capture: &Capture, n: u64, tick_ns: u64, now_ns: u64) -> u64 {
        let (frames, at_ns) = capture.anchor();
        let rate = i128::from(self.rate.max(1));
        // Frame `frames - 1` was captured about when the callback ran.
        let back = (i128::from(frames) - i128::from(n)) * 1_000_000_000 / rate;
        let captured = i128::from(at_ns) - back;
        let t = i128::from(tick_ns) - (i128::from(now_ns) - captured);
        u64::try_from(t.max(0)).unwrap_or(0)
    }
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    capture: &Arc<Capture>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let data = Arc::clone(capture);
    let errors = Arc::clone(capture);
    device.build_input_stream::<T, _, _>(
        *config,
        move |input: &[T], _| data.push(input),
        move |e| {
            if errors.health.error(&e) {
                bump(&errors.counters.overruns, 1);
            }
        },
        Some(std::time::Duration::from_secs(2)),
    )
}

impl StreamHandler for AudioSrc {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.prepare_pool()?;
        Ok(self.open()?)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.check_device()?;
        if self.pool.is_none() {
            // Driven by hand without `on_start`.
            self.prepare_pool()?;
        }
        let (Some(capture), Some(pool)) = (self.capture.clone(), self.pool.as_ref()) else {
            return Ok(());
        };
        let tick_ns = ctx.tick().timestamp;
        let now_ns = capture.health.now_ns();
        let len = self.frames_per_buffer * usize::from(self.channels);
        let frames = self.frames_per_buffer as u64;
        while capture.ring.len() >= len {
            let measured = self.capture_time(&capture, self.taken, tick_ns, now_ns);
            let ts = match self.next_ts {
                Some(next) => {
                    let diff = measured as f64 - next as f64;
                    self.offset_ns += (diff - self.offset_ns) * SMOOTHING;
                    if self.offset_ns.abs() > RESYNC_NS || diff.abs() > JUMP_NS {
                        bump(&self.counters.resyncs, 1);
                        self.offset_ns = 0.0;
                        measured
                    } else {
                        next
                    }
                }
                None => measured,
            };
            self.taken += frames;
            self.next_ts = Some(ts + frames * 1_000_000_000 / u64::from(self.rate.max(1)));
            match self.output.acquire_or_skip(pool) {
                Some(mut buf) => {
                    capture.ring.pop_each(len, |i, s| buf[i] = s);
                    crate::pools::publish(
                        HANDLER,
                        &self.output,
                        buf,
                        self.channels,
                        self.rate,
                        ts,
                    )?;
                }
                None => {
                    capture.ring.pop_each(len, |_, _| {});
                }
            }
        }
        set(
            &self.counters.fill_frames,
            (capture.ring.len() / usize::from(self.channels.max(1))) as u64,
        );
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        if self.device.has_device() {
            self.device.close();
            self.capture = None;
        }
        Ok(())
    }
}
