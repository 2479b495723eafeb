//! `audiosink` and `audiosrc` (streamlib-handlers-audio, feature `device`).

use std::sync::Arc;

use serde_json::json;
use streamlib_handlers_audio::{
    AudioDeviceStatsHandle, AudioSink, AudioSinkConfig, AudioSrc, AudioSrcConfig, MAX_CHANNELS,
    MAX_RATE,
};
use streamlib_ports::{DeliveryMode, MemoryCaps, PortKind};

use crate::Registry;
use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::PropType;

pub(super) fn register(registry: &mut Registry) {
    registry.register(audio_sink());
    registry.register(audio_src());
}

/// The `device` property: empty for the host's default.
fn device(p: &Properties) -> Option<String> {
    Some(p.text("device").to_owned()).filter(|d| !d.is_empty())
}

/// A device handler's report for stats and `--json`.
fn report(stats: &AudioDeviceStatsHandle, device: &str) -> serde_json::Value {
    let s = stats.snapshot();
    json!({
        "device": device,
        "rate": s.rate,
        "channels": s.channels,
        "underruns": s.underruns,
        "overruns": s.overruns,
        "dropped_samples": s.dropped_samples,
        "frames": s.frames,
        "callbacks": s.callbacks,
        "fill_frames": s.fill_frames,
        "target_frames": s.target_frames,
        "drift_ppm": (s.drift_ppm * 10.0).round() / 10.0,
        "resyncs": s.resyncs,
        "opens": s.opens,
    })
}

fn device_prop(what: &'static str) -> crate::PropertySpec {
    prop("device", PropType::Text, Some(""), false, what)
}

fn audio_sink() -> HandlerSpec {
    HandlerSpec {
        name: "audiosink",
        summary: "Plays audio on a sound device (cpal: ALSA, PulseAudio/PipeWire through ALSA), following its clock; counts under- and over-runs",
        ports: vec![port(
            "audio",
            Direction::Input,
            PortKind::Audio,
            MemoryCaps::CPU,
            DeliveryMode::Ordered { capacity: 64 },
            "interleaved f32 audio, any rate and channel count (resampled and mapped to the device's)",
        )],
        properties: vec![
            device_prop(
                "output device: its ALSA name (pulse, default, hw:CARD=0,DEV=0) or part of its description; empty: the default",
            ),
            prop(
                "latency-ms",
                PropType::Float {
                    min: 1.0,
                    max: 2000.0,
                },
                Some("50"),
                false,
                "audio kept queued ahead of the device; the drift loop holds the queue here",
            ),
            prop(
                "buffer-frames",
                PropType::Int {
                    min: 0,
                    max: 65_536,
                },
                Some("0"),
                false,
                "the device's period in frames; 0: the device's default",
            ),
            prop(
                "rate",
                PropType::Int {
                    min: 0,
                    max: i64::from(MAX_RATE),
                },
                Some("0"),
                false,
                "the device's sample rate in Hz; 0: the device's default",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let sink = AudioSink::new(AudioSinkConfig {
                device: device(p),
                latency_ms: p.float("latency-ms"),
                buffer_frames: u32::try_from(p.int("buffer-frames")).unwrap_or(u32::MAX),
                rate: u32::try_from(p.int("rate")).unwrap_or(u32::MAX),
            })?;
            let stats = sink.stats();
            let name = sink.device().unwrap_or_default();
            Ok(BuiltHandler::fixed(sink).with_report(move || report(&stats, &name)))
        }),
    }
}

fn audio_src() -> HandlerSpec {
    HandlerSpec {
        name: "audiosrc",
        summary: "Captures audio from a sound device (cpal), stamped by the pipeline clock at capture; counts over-runs",
        ports: vec![port(
            "audio",
            Direction::Output,
            PortKind::Audio,
            MemoryCaps::CPU,
            DeliveryMode::Ordered { capacity: 64 },
            "interleaved f32 audio at the device's rate and channels",
        )],
        properties: vec![
            device_prop(
                "input device: its ALSA name (pulse, default, hw:CARD=0,DEV=0) or part of its description; empty: the default",
            ),
            prop(
                "rate",
                PropType::Int {
                    min: 0,
                    max: i64::from(MAX_RATE),
                },
                Some("0"),
                false,
                "sample rate in Hz; 0: the device's default",
            ),
            prop(
                "channels",
                PropType::Int {
                    min: 0,
                    max: MAX_CHANNELS as i64,
                },
                Some("0"),
                false,
                "channel count; 0: the device's default",
            ),
            prop(
                "buffer-frames",
                PropType::Int {
                    min: 0,
                    max: 480_000,
                },
                Some("0"),
                false,
                "frames per output buffer; 0: 10 ms",
            ),
            prop(
                "latency-ms",
                PropType::Float {
                    min: 0.0,
                    max: 10_000.0,
                },
                Some("0"),
                false,
                "capture the ring holds while the pipeline is busy before over-running; 0: 500",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let src = AudioSrc::new(AudioSrcConfig {
                device: device(p),
                rate: u32::try_from(p.int("rate")).unwrap_or(u32::MAX),
                channels: u16::try_from(p.int("channels")).unwrap_or(u16::MAX),
                buffer_frames: u32::try_from(p.int("buffer-frames")).unwrap_or(u32::MAX),
                latency_ms: p.float("latency-ms"),
            })?;
            let stats = src.stats();
            let name = src.device().unwrap_or_default();
            Ok(BuiltHandler::fixed(src).with_report(move || report(&stats, &name)))
        }),
    }
}
