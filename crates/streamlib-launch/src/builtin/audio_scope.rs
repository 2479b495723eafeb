//! `spectrum` and `audioscope` (streamlib-handlers-audio): audio in, RGBA video out, on a
//! transparent background so `compositor` lays them over a picture.

use std::sync::Arc;

use serde_json::json;
use streamlib_handlers_audio::{
    AudioScope, AudioScopeConfig, MAX_SCOPE_SIDE, ScopeStatsHandle, ScopeStyle, Spectrum,
    SpectrumConfig,
};
use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps, PortKind};

use super::audio::AUDIO_IN;
use crate::Registry;
use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::{PropType, Value};

const VIDEO_OUT: crate::PortSpec = port(
    "video",
    Direction::Output,
    PortKind::Video,
    MemoryCaps::CPU,
    DeliveryMode::Latest,
    "RGBA8 frames at `size`, one per tick, straight alpha",
);

const SIZE: PropType = PropType::Size {
    max: MAX_SCOPE_SIDE,
};

pub(super) fn register(registry: &mut Registry) {
    registry.register(spectrum());
    registry.register(audio_scope());
}

/// The properties both scopes share.
fn size_prop() -> crate::PropertySpec {
    prop("size", SIZE, Some("640x360"), false, "frame size")
}

fn background_prop() -> crate::PropertySpec {
    prop(
        "background",
        PropType::Color,
        Some("00000000"),
        false,
        "frame background, RRGGBBAA; transparent by default, for overlays through compositor",
    )
}

fn threshold_prop(live: bool, what: &'static str) -> crate::PropertySpec {
    prop(
        "threshold",
        PropType::Float {
            min: -200.0,
            max: -0.01,
        },
        Some("-60"),
        live,
        what,
    )
}

/// A scope's report: what it drew and what it flushed.
fn report(stats: &ScopeStatsHandle) -> serde_json::Value {
    let s = stats.snapshot();
    json!({
        "frames": s.frames,
        "audio_frames": s.audio_frames,
        "non_finite_samples": s.non_finite_samples,
        "restarts": s.restarts,
    })
}

fn spectrum() -> HandlerSpec {
    HandlerSpec {
        name: "spectrum",
        summary: "Audio to video: log-spaced frequency bars on a dB scale (Hann-windowed real FFT), transparent background",
        ports: vec![AUDIO_IN, VIDEO_OUT],
        properties: vec![
            size_prop(),
            prop(
                "bands",
                PropType::Int { min: 1, max: 1024 },
                Some("64"),
                false,
                "bars, log-spaced from 20 Hz to half the sample rate",
            ),
            threshold_prop(
                true,
                "level at the bottom of the frame, dBFS (bars start above it)",
            ),
            prop(
                "fft-size",
                PropType::Int {
                    min: 16,
                    max: 65536,
                },
                Some("1024"),
                false,
                "FFT points (a power of two) over the newest audio, channels mixed to mono",
            ),
            background_prop(),
        ],
        factory: Arc::new(|p: &Properties| {
            let (width, height) = p.size("size");
            let handler = Spectrum::new(SpectrumConfig {
                width,
                height,
                bands: u32::try_from(p.int("bands")).unwrap_or(0),
                threshold: p.float("threshold"),
                fft_size: usize::try_from(p.int("fft-size")).unwrap_or(0),
                background: p.color("background"),
            })?;
            let stats = handler.stats();
            Ok(
                BuiltHandler::live(handler, |s: &mut Spectrum, _name, value: &Value| {
                    s.set_threshold(value.as_float().unwrap_or(f64::NAN))?;
                    Ok(())
                })
                .with_report(move || report(&stats)),
            )
        }),
    }
}

fn audio_scope() -> HandlerSpec {
    HandlerSpec {
        name: "audioscope",
        summary: "Audio to video: the waveform per channel (lines, dots) or level meters with peak hold, transparent background",
        ports: vec![AUDIO_IN, VIDEO_OUT],
        properties: vec![
            size_prop(),
            prop(
                "style",
                PropType::Enum(ScopeStyle::NAMES),
                Some("lines"),
                true,
                "lines or dots: the waveform, each channel in its own lane; meter: a sample-peak \
                 meter per channel with a peak-hold marker",
            ),
            prop(
                "window",
                PropType::Float {
                    min: 0.1,
                    max: 10_000.0,
                },
                Some("20"),
                false,
                "ms of the newest audio the waveform spans",
            ),
            prop(
                "color",
                PropType::Color,
                Some("50dcffff"),
                false,
                "the waveform's colour, RRGGBBAA",
            ),
            threshold_prop(false, "the meter's floor, dBFS"),
            prop(
                "peak-hold",
                PropType::Float {
                    min: 0.0,
                    max: 60.0,
                },
                Some("1"),
                false,
                "seconds the meter's peak marker stays before it falls",
            ),
            prop(
                "peak-falloff",
                PropType::Float {
                    min: 0.0,
                    max: 1000.0,
                },
                Some("20"),
                false,
                "dB per second the marker then falls",
            ),
            background_prop(),
        ],
        factory: Arc::new(|p: &Properties| {
            let (width, height) = p.size("size");
            let handler = AudioScope::new(AudioScopeConfig {
                width,
                height,
                style: ScopeStyle::from_name(p.text("style")).unwrap_or_default(),
                window_s: p.float("window") / 1000.0,
                color: p.color("color"),
                threshold: p.float("threshold"),
                peak_hold_s: p.float("peak-hold"),
                peak_falloff_db_s: p.float("peak-falloff"),
                background: p.color("background"),
            })?;
            let stats = handler.stats();
            Ok(
                BuiltHandler::live(handler, |s: &mut AudioScope, _name, value: &Value| {
                    let style = value.as_text().and_then(ScopeStyle::from_name);
                    s.set_style(style.ok_or_else(|| {
                        HandlerError::msg(format!("audioscope: unknown style {value:?}"))
                    })?);
                    Ok(())
                })
                .with_report(move || report(&stats)),
            )
        }),
    }
}
