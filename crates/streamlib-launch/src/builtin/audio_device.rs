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

/// An integer property from 0 to `max`, default 0 (the device's or the handler's choice).
fn zero_default_int(name: &'static str, max: i64, what: &'static str) -> crate::PropertySpec {
    prop(name, PropType::Int { min: 0, max }, Some("0"), false, what)
}

/// An integer property as `u32` (its range is checked against the handler's own).
fn uint(p: &Properties, name: &str) -> u32 {
    u32::try_from(p.int(name)).unwrap_or(u32::MAX)
}

/// `handler` built, reporting its device's stats.
fn with_device_report(
    handler: impl streamlib_ports::StreamHandler,
    stats: AudioDeviceStatsHandle,
    device: Option<String>,
) -> BuiltHandler {
    let name = device.unwrap_or_default();
    BuiltHandler::fixed(handler).with_report(move || report(&stats, &name))
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
            zero_default_int(
                "buffer-frames",
                65_536,
                "the device's period in frames; 0: the device's default",
            ),
            zero_default_int(
                "rate",
                i64::from(MAX_RATE),
                "the device's sample rate in Hz; 0: the device's default",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let sink = AudioSink::new(AudioSinkConfig {
                device: device(p),
                latency_ms: p.float("latency-ms"),
                buffer_frames: uint(p, "buffer-frames"),
                rate: uint(p, "rate"),
            })?;
            let (stats, device) = (sink.stats(), sink.device());
            Ok(with_device_report(sink, stats, device))
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
            zero_default_int(
                "rate",
                i64::from(MAX_RATE),
                "sample rate in Hz; 0: the device's default",
            ),
            zero_default_int(
                "channels",
                MAX_CHANNELS as i64,
                "channel count; 0: the device's default",
            ),
            zero_default_int(
                "buffer-frames",
                480_000,
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
                rate: uint(p, "rate"),
                channels: u16::try_from(p.int("channels")).unwrap_or(u16::MAX),
                buffer_frames: uint(p, "buffer-frames"),
                latency_ms: p.float("latency-ms"),
            })?;
            let (stats, device) = (src.stats(), src.device());
            Ok(with_device_report(src, stats, device))
        }),
    }
}
