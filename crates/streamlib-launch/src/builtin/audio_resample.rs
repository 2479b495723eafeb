//! `audioresample` (streamlib-handlers-audio).

use std::sync::Arc;

use serde_json::json;
use streamlib_handlers_audio::{AudioResample, AudioResampleConfig, MAX_RATE, ResampleQuality};
use streamlib_ports::{Caps, DeliveryMode, MemoryCaps, PortKind};
use streamlib_runtime::{Conversion, ConverterRegistry, TransferHandler};

use crate::Registry;
use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::PropType;

pub(super) fn register(registry: &mut Registry) {
    registry.register(audio_resample());
}

/// Registers `audioresample` for the sample rate: negotiation inserts it where a link's
/// rates differ, resampling to the rate the target caps fix.
pub(crate) fn register_converters(converters: &mut ConverterRegistry) {
    converters.register(
        Conversion::SampleRate,
        "audioresample",
        Caps::audio(),
        Caps::audio(),
        Arc::new(|target: &Caps| {
            let resample = AudioResample::for_caps(target)?;
            let (input, output) = (resample.input().erased(), resample.output().erased());
            Ok(TransferHandler::new(resample, input, output))
        }),
    );
}

fn audio_resample() -> HandlerSpec {
    HandlerSpec {
        name: "audioresample",
        summary: "Converts the sample rate (rubato windowed sinc); stamps count samples, the filter's delay trimmed; drift=true follows the input's timestamps",
        ports: vec![
            super::audio::AUDIO_IN,
            port(
                "audio",
                Direction::Output,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "the input's channels at `rate` (buffers already there pass by reference)",
            ),
        ],
        properties: vec![
            prop(
                "rate",
                PropType::Int {
                    min: 0,
                    max: i64::from(MAX_RATE),
                },
                Some("0"),
                false,
                "output sample rate in Hz (1000 ..= 768000); 0: the one negotiated downstream \
                 (else the input's)",
            ),
            prop(
                "quality",
                PropType::Enum(ResampleQuality::NAMES),
                Some("default"),
                false,
                "sinc length: fast 64 taps (cutoff 0.83 of Nyquist), default 128 (0.88), \
                 best 256 (0.94); all reject beyond Nyquist by more than 120 dB",
            ),
            prop(
                "drift",
                PropType::Bool,
                Some("false"),
                false,
                "follow the input's timestamps rather than its sample count (a device clock \
                 stamped by the pipeline's): the ratio is corrected by up to 1 %",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let config = AudioResampleConfig {
                rate: u32::try_from(p.int("rate")).unwrap_or(u32::MAX),
                quality: ResampleQuality::from_name(p.text("quality")).unwrap_or_default(),
                drift: p.bool("drift"),
            };
            let handler = AudioResample::new(config)?;
            let stats = handler.stats();
            Ok(BuiltHandler::fixed(handler).with_report(move || {
                let s = stats.snapshot();
                json!({
                    "non_finite_samples": s.non_finite_samples,
                    "discontinuities": s.discontinuities,
                    "relative_ratio": s.relative_ratio,
                })
            }))
        }),
    }
}
