//! Audio handlers for streamlib, with GStreamer's names and properties: [`AudioTestSrc`]
//! (`audiotestsrc`), [`Volume`] (`volume`), the EBU R128 meter and normaliser [`Loudness`]
//! (`loudness`), the channel mixer [`AudioConvert`] (`audioconvert`), [`AudioMixer`]
//! (`audiomixer`), the rubato resampler [`AudioResample`] (`audioresample`, and the
//! drift-following [`AsyncResampler`]), the overlays [`Spectrum`] (`spectrum`) and
//! [`AudioScope`] (`audioscope`: waveform, level meters), and with the `device` feature real
//! sound devices through cpal, `AudioSink` (`audiosink`) and `AudioSrc` (`audiosrc`).
//!
//! Audio travels as interleaved f32 [`AudioBuffer`](streamlib_ports::AudioBuffer)s from
//! pre-allocated pools: at steady state no handler here allocates. The test source counts
//! its samples from the clock's timestamps, so it never drifts and its sync tick lands on the
//! clock's second boundaries; the meter agrees with FFmpeg's `ebur128=peak=true` within
//! 0.1 LU on every figure and 0.1 dB on the true peak of sines, sweeps, pink and white noise
//! (checked by this crate's tests; the true peak is our own 4×/2× polyphase oversampler,
//! the interpolator FFmpeg's filter uses).
//!
//! ```
//! use streamlib_clock::{ClockSourceId, Rational, TimedTick};
//! use streamlib_handlers_audio::{AudioTestSrc, AudioTestSrcConfig, Loudness, Wave};
//! use streamlib_ports::{AudioBuffer, InputPort, MemoryCaps, ProcessContext, StreamHandler};
//!
//! let mut source = AudioTestSrc::new(AudioTestSrcConfig {
//!     wave: Wave::Sine,
//!     freq: 1000.0,
//!     volume: 0.5,
//!     ..AudioTestSrcConfig::default()
//! })?;
//! let mut meter = Loudness::new();
//! let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
//! // Wire by hand, as a runtime would.
//! source.output().erased().connect_to(&*meter.input().erased())?;
//! meter.output().erased().connect_to(&*sink.handle().erased())?;
//! let fps = Rational::fps(30);
//! for n in 0..60 {
//!     let tick = TimedTick {
//!         timestamp: fps.frame_time_ns(n),
//!         frame_number: n,
//!         clock_source_id: ClockSourceId::MANUAL,
//!         fps,
//!     };
//!     source.process(&mut ProcessContext::new("src", tick)).map_err(|e| e.to_string())?;
//!     meter.process(&mut ProcessContext::new("meter", tick)).map_err(|e| e.to_string())?;
//!     while sink.recv().is_some() {}
//! }
//! // Two seconds of a 1 kHz sine at -6 dBFS in both channels: -6 LUFS (BS.1770 reads a
//! // full-scale sine in one channel as -3 LUFS; the second channel adds 3 dB).
//! let stats = meter.stats().snapshot();
//! assert!((stats.integrated_lufs + 6.0).abs() < 0.1, "{stats:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod convert;
#[cfg(feature = "device")]
mod device;
mod error;
mod gating;
mod loudness;
mod mixer;
mod pools;
mod resample;
mod scope;
mod testsrc;
mod true_peak;
mod volume;
mod wave;

pub use convert::{AudioConvert, MINUS_3DB, mix_matrix};
#[cfg(feature = "device")]
#[cfg_attr(docsrs, doc(cfg(feature = "device")))]
pub use device::{
    AudioDeviceStats, AudioDeviceStatsHandle, AudioSink, AudioSinkConfig, AudioSrc, AudioSrcConfig,
    DEVICE_ERROR_GRACE_SECONDS, DEVICE_STALL_SECONDS, DEVICE_START_SECONDS, DeviceError,
    MAX_DRIFT_CORRECTION, SinkPull, SrcPush, audio_input_devices, audio_output_devices,
};
pub use error::{AudioError, MAX_CHANNELS, MAX_RATE, MIN_RATE};
pub use loudness::{
    Loudness, LoudnessMeter, LoudnessStats, LoudnessStatsHandle, LoudnessTarget,
    TARGET_SLEW_DB_PER_S, TargetWindow, flush_non_finite,
};
pub use mixer::{
    AudioMixer, AudioMixerConfig, MAX_MIXER_INPUTS, MixerInputCounters, MixerInputStats,
    MixerStatsHandle,
};
pub use resample::{
    AsyncResampler, AudioResample, AudioResampleConfig, MAX_RELATIVE_RATIO, ResampleQuality,
    ResampleStats, ResampleStatsHandle,
};
pub use scope::{
    AudioScope, AudioScopeConfig, MAX_SCOPE_SIDE, ScopeStats, ScopeStatsHandle, ScopeStyle,
    Spectrum, SpectrumConfig, level_row,
};
pub use testsrc::{
    AudioTestSrc, AudioTestSrcConfig, MAX_SAMPLES_PER_BUFFER, sample_at_ns, sample_time_ns,
};
pub use volume::{MAX_VOLUME, RAMP_SECONDS, Volume, db_to_linear, linear_to_db};
pub use wave::{SWEEP_END_HZ, SWEEP_SECONDS, SWEEP_START_HZ, TICK_SECONDS, Wave};

/// The names a pipeline author needs, for `use streamlib_handlers_audio::prelude::*`.
pub mod prelude {
    pub use crate::{
        AudioConvert, AudioError, AudioMixer, AudioMixerConfig, AudioResample, AudioResampleConfig,
        AudioScope, AudioScopeConfig, AudioTestSrc, AudioTestSrcConfig, Loudness, LoudnessStats,
        LoudnessStatsHandle, LoudnessTarget, MixerStatsHandle, ScopeStyle, Spectrum,
        SpectrumConfig, TargetWindow, Volume, Wave,
    };
    #[cfg(feature = "device")]
    pub use crate::{AudioSink, AudioSinkConfig, AudioSrc, AudioSrcConfig};
}
