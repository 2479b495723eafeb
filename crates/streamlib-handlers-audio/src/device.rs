//! `audiosink` ([`AudioSink`]) and `audiosrc` ([`AudioSrc`]): real sound devices through
//! cpal (ALSA on Linux; PulseAudio and PipeWire through ALSA's `pulse` plugin).
//!
//! Between the pipeline and the device's callback sits a wait-free single-producer
//! single-consumer ring of samples: the callback takes no lock and allocates nothing. The
//! sink counts under-runs (the callback found too little and played silence) and over-runs
//! (the ring was full and samples were dropped), and follows the device's crystal: a slow
//! PI loop on the ring's fill level steers an [`AsyncResampler`](crate::AsyncResampler) by
//! parts per million, so the latency stays at its target however far the pipeline's clock
//! and the device's drift apart (up to ±0.5 %). The source stamps its buffers from the
//! pipeline clock at capture time and counts over-runs. Both report through an
//! [`AudioDeviceStatsHandle`].
//!
//! A device is chosen by name: its ALSA PCM id (`pulse`, `default`, `hw:CARD=0,DEV=0`) or a
//! part of its description, case-insensitive; a name that matches none is an error listing
//! those there are. A device that fails or stops calling back mid-run makes `process` fail
//! with [`DeviceError::Lost`] naming it, so the runtime restarts the handler by its policy
//! (`on_start` opens the device again) while the rest of the pipeline runs on.

mod drift;
mod ring;
mod select;
mod sink;
mod src;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use drift::MAX_DRIFT_CORRECTION;
pub use sink::{AudioSink, AudioSinkConfig, SinkPull};
pub use src::{AudioSrc, AudioSrcConfig, SrcPush};

/// How long a running device may go without calling back before the handler fails.
pub const DEVICE_STALL_SECONDS: f64 = 3.0;
/// The same in the first seconds after opening, which are this long: a sound server may take
/// a while to start a new stream (PulseAudio's null sink up to two seconds, more when busy).
pub const DEVICE_START_SECONDS: f64 = 10.0;

/// A sound device that could not be opened or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device (found by name when the handler was made) could not be opened.
    #[error("{handler}: cannot open device `{device}`: {reason}")]
    Open {
        /// The handler's pipeline name (`audiosink`, `audiosrc`).
        handler: &'static str,
        /// The device, as `id (description)`.
        device: String,
        /// What the host said (and, where it no longer lists it, the devices there are).
        reason: String,
    },
    /// The device failed, went away or stopped calling back while running.
    #[error("{handler}: device `{device}` failed: {reason}")]
    Lost {
        /// The handler's pipeline name.
        handler: &'static str,
        /// The device, as `id (description)`.
        device: String,
        /// What happened.
        reason: String,
    },
}

/// What a device handler has counted (a snapshot of an [`AudioDeviceStatsHandle`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AudioDeviceStats {
    /// Times the device's callback found the ring short and played silence (sink).
    pub underruns: u64,
    /// Times samples were dropped because the ring was full (the pipeline fell behind the
    /// capture device, or ran ahead of the playback device).
    pub overruns: u64,
    /// Samples dropped by over-runs.
    pub dropped_samples: u64,
    /// Frames played (sink) or captured (source) by the device.
    pub frames: u64,
    /// Device callbacks so far.
    pub callbacks: u64,
    /// Frames queued in the ring when last measured (sink: smoothed).
    pub fill_frames: u64,
    /// The fill level the sink steers to (`latency-ms` at the device's rate).
    pub target_frames: u64,
    /// The drift correction in force, parts per million (sink; positive: more output).
    pub drift_ppm: f64,
    /// Times the source re-anchored its timestamps on the pipeline clock.
    pub resyncs: u64,
    /// Times the device was opened (1, plus one per restart).
    pub opens: u64,
    /// The device's sample rate, Hz (0 until opened).
    pub rate: u64,
    /// The device's channel count (0 until opened).
    pub channels: u64,
}

#[derive(Default)]
struct Counters {
    underruns: AtomicU64,
    overruns: AtomicU64,
    dropped_samples: AtomicU64,
    frames: AtomicU64,
    callbacks: AtomicU64,
    fill_frames: AtomicU64,
    target_frames: AtomicU64,
    drift_ppm_bits: AtomicU64,
    resyncs: AtomicU64,
    opens: AtomicU64,
    rate: AtomicU64,
    channels: AtomicU64,
}

/// Adds `n` to a counter (relaxed: counters are read as a snapshot, nothing is ordered by
/// them).
fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn set(counter: &AtomicU64, value: u64) {
    counter.store(value, Ordering::Relaxed);
}

impl Counters {
    /// Records that the device was opened (again) at `rate` and `channels`.
    fn opened(&self, rate: u32, channels: u16) {
        set(&self.rate, u64::from(rate));
        set(&self.channels, u64::from(channels));
        bump(&self.opens, 1);
    }
}

/// Reads a device handler's counters from any thread, while it runs.
#[derive(Clone)]
pub struct AudioDeviceStatsHandle(Arc<Counters>);

impl AudioDeviceStatsHandle {
    /// The counters as of now.
    pub fn snapshot(&self) -> AudioDeviceStats {
        let c = &*self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AudioDeviceStats {
            underruns: get(&c.underruns),
            overruns: get(&c.overruns),
            dropped_samples: get(&c.dropped_samples),
            frames: get(&c.frames),
            callbacks: get(&c.callbacks),
            fill_frames: get(&c.fill_frames),
            target_frames: get(&c.target_frames),
            drift_ppm: f64::from_bits(get(&c.drift_ppm_bits)),
            resyncs: get(&c.resyncs),
            opens: get(&c.opens),
            rate: get(&c.rate),
            channels: get(&c.channels),
        }
    }
}

impl std::fmt::Debug for AudioDeviceStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The output devices the host lists, as `id (description)`.
pub fn audio_output_devices() -> Vec<String> {
    select::available(select::Direction::Output)
}

/// The input devices the host lists, as `id (description)`.
pub fn audio_input_devices() -> Vec<String> {
    select::available(select::Direction::Input)
}

/// How long a device may keep reporting errors without a successful callback before the
/// handler gives it up (a transient error, such as an under-run the host recovers from, is
/// only counted).
pub const DEVICE_ERROR_GRACE_SECONDS: f64 = 0.5;

/// What the device callback and the handler share besides the ring: failure and liveness.
struct Health {
    /// When the stream was opened; liveness times count from here.
    epoch: std::time::Instant,
    /// Nanoseconds after `epoch` of the last data callback, 0 before the first.
    last_callback_ns: AtomicU64,
    /// Errors reported since the last data callback (the data callback clears it).
    errors_since_callback: AtomicU64,
    /// The last error's message (written by the error callback, never the data callback).
    last_error: std::sync::Mutex<Option<String>>,
    /// Set when the host says the device is gone: no grace.
    gone: std::sync::atomic::AtomicBool,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: std::time::Instant::now(),
            last_callback_ns: AtomicU64::new(0),
            errors_since_callback: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
            gone: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Called at the top of each data callback.
    fn alive(&self) {
        self.last_callback_ns
            .store(self.now_ns().max(1), Ordering::Relaxed);
        self.errors_since_callback.store(0, Ordering::Relaxed);
    }

    /// The error callback's report; `true` when it was an under- or over-run (an xrun the
    /// host recovers from by itself).
    fn error(&self, error: &cpal::Error) -> bool {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(error.to_string());
        }
        match error.kind() {
            cpal::ErrorKind::Xrun => true,
            cpal::ErrorKind::DeviceNotAvailable => {
                self.gone.store(true, Ordering::Release);
                false
            }
            _ => {
                self.errors_since_callback.fetch_add(1, Ordering::Release);
                false
            }
        }
    }

    /// Why the device is to be given up, if it is: the host says it is gone, it has kept
    /// failing without a callback for [`DEVICE_ERROR_GRACE_SECONDS`], or it has not called
    /// back at all for [`DEVICE_STALL_SECONDS`] ([`DEVICE_START_SECONDS`] just after opening).
    fn check(&self) -> Option<String> {
        let last = self.last_callback_ns.load(Ordering::Relaxed);
        let silent_s = self.now_ns().saturating_sub(last) as f64 / 1e9;
        let reason = || {
            let error = self.last_error.lock().ok().and_then(|s| s.clone());
            error.unwrap_or_else(|| "the stream reported an error".to_owned())
        };
        if self.gone.load(Ordering::Acquire) {
            return Some(reason());
        }
        if self.errors_since_callback.load(Ordering::Acquire) > 0
            && silent_s > DEVICE_ERROR_GRACE_SECONDS
        {
            return Some(format!("{} (no callback for {silent_s:.1} s)", reason()));
        }
        let opened_s = self.now_ns() as f64 / 1e9;
        let limit = if opened_s < DEVICE_START_SECONDS {
            DEVICE_START_SECONDS
        } else {
            DEVICE_STALL_SECONDS
        };
        (silent_s > limit).then(|| {
            if last == 0 {
                format!("no callback in the {silent_s:.1} s since it was opened")
            } else {
                format!("no callback for {silent_s:.1} s")
            }
        })
    }
}
