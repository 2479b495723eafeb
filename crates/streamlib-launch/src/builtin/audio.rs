//! `audiotestsrc`, `volume`, `loudness`, `audioconvert`, `audiomixer`
//! (streamlib-handlers-audio).

use std::sync::Arc;

use serde_json::json;
use streamlib_handlers_audio::{
    AudioConvert, AudioMixer, AudioMixerConfig, AudioTestSrc, AudioTestSrcConfig, Loudness,
    LoudnessTarget, MAX_CHANNELS, MAX_MIXER_INPUTS, MAX_RATE, MAX_SAMPLES_PER_BUFFER, MAX_VOLUME,
    MIN_RATE, TargetWindow, Volume, Wave, db_to_linear,
};
use streamlib_ports::{Caps, DeliveryMode, HandlerError, MemoryCaps, PortKind};
use streamlib_runtime::{Conversion, ConverterRegistry, TransferHandler};

use crate::Registry;
use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::{PropType, Value};

/// An audio output, for the audio handlers' specs.
pub(super) const AUDIO_OUT: crate::PortSpec = port(
    "audio",
    Direction::Output,
    PortKind::Audio,
    MemoryCaps::CPU,
    DeliveryMode::Ordered { capacity: 64 },
    "interleaved f32 audio",
);

/// An audio input taking any rate and channel count, for the audio handlers' specs.
pub(super) const AUDIO_IN: crate::PortSpec = port(
    "audio",
    Direction::Input,
    PortKind::Audio,
    MemoryCaps::CPU,
    DeliveryMode::Ordered { capacity: 64 },
    "interleaved f32 audio, any rate and channel count",
);

/// A fixed channel count.
const CHANNELS: PropType = PropType::Int {
    min: 1,
    max: MAX_CHANNELS as i64,
};

/// A fixed sample rate, Hz.
const RATE: PropType = PropType::Int {
    min: MIN_RATE as i64,
    max: MAX_RATE as i64,
};

pub(super) fn register(registry: &mut Registry) {
    registry.register(audio_test_src());
    registry.register(volume());
    registry.register(loudness());
    registry.register(audio_convert());
    registry.register(audio_mixer());
}

fn audio_test_src() -> HandlerSpec {
    HandlerSpec {
        name: "audiotestsrc",
        summary: "Generates test audio: sine, square, saw, noise, silence, sweep, sync ticks on the clock's seconds",
        ports: vec![AUDIO_OUT],
        properties: vec![
            prop(
                "wave",
                PropType::Enum(Wave::NAMES),
                Some("sine"),
                true,
                "waveform; ticks: a 50 ms beep at freq whose first sample is on each second \
                 boundary of the clock (for lip sync); sweep: 20 Hz to 20 kHz logarithmic, 10 s",
            ),
            prop(
                "freq",
                PropType::Float {
                    min: 0.0,
                    max: f64::from(MAX_RATE) / 2.0,
                },
                Some("440"),
                true,
                "frequency in Hz (up to half the rate), phase continuous when changed",
            ),
            prop(
                "volume",
                PropType::Float { min: 0.0, max: 1.0 },
                Some("0.8"),
                true,
                "linear amplitude",
            ),
            prop("rate", RATE, Some("48000"), false, "sample rate in Hz"),
            prop(
                "channels",
                CHANNELS,
                Some("2"),
                false,
                "channel count (all carry the signal; noise is independent per channel)",
            ),
            prop(
                "samplesperbuffer",
                PropType::Int {
                    min: 0,
                    max: MAX_SAMPLES_PER_BUFFER as i64,
                },
                Some("0"),
                false,
                "frames per buffer; 0: one buffer per clock tick covering its span",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let config = AudioTestSrcConfig {
                wave: Wave::from_name(p.text("wave")).unwrap_or(Wave::Sine),
                freq: p.float("freq"),
                volume: p.float("volume"),
                rate: u32::try_from(p.int("rate")).unwrap_or(0),
                channels: u16::try_from(p.int("channels")).unwrap_or(0),
                samples_per_buffer: usize::try_from(p.int("samplesperbuffer")).unwrap_or(0),
            };
            let handler = AudioTestSrc::new(config)?;
            Ok(BuiltHandler::live(
                handler,
                |src: &mut AudioTestSrc, name, value: &Value| {
                    let number = || value.as_float().unwrap_or(0.0);
                    match name {
                        "wave" => {
                            let wave = value.as_text().and_then(Wave::from_name);
                            src.set_wave(wave.ok_or_else(|| {
                                HandlerError::msg(format!("audiotestsrc: unknown wave {value:?}"))
                            })?);
                        }
                        "freq" => src.set_freq(number())?,
                        _ => src.set_volume(number())?,
                    }
                    Ok(())
                },
            ))
        }),
    }
}

/// `volume`'s gain: its linear `volume` times its `db`.
fn gain(volume: f64, db: f64) -> f64 {
    volume * db_to_linear(db)
}

fn volume() -> HandlerSpec {
    HandlerSpec {
        name: "volume",
        summary: "Gain (linear and/or dB) and mute; live changes ramp over 5 ms without clicks",
        ports: vec![AUDIO_IN, AUDIO_OUT],
        properties: vec![
            prop(
                "volume",
                PropType::Float {
                    min: 0.0,
                    max: MAX_VOLUME,
                },
                Some("1"),
                true,
                "linear gain (multiplied with db's)",
            ),
            prop(
                "db",
                PropType::Float {
                    min: -200.0,
                    max: 20.0,
                },
                Some("0"),
                true,
                "gain in dB (multiplied with volume's; the product is at most +20 dB)",
            ),
            prop(
                "mute",
                PropType::Bool,
                Some("false"),
                true,
                "silence, ramped",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let (mut linear, mut db) = (p.float("volume"), p.float("db"));
            let handler = Volume::new(gain(linear, db), p.bool("mute"))?;
            Ok(BuiltHandler::live(
                handler,
                move |v: &mut Volume, name, value: &Value| {
                    match name {
                        "mute" => v.set_mute(value.as_bool().unwrap_or(false)),
                        "db" => {
                            let next = value.as_float().unwrap_or(0.0);
                            v.set_volume(gain(linear, next))?;
                            db = next;
                        }
                        _ => {
                            let next = value.as_float().unwrap_or(1.0);
                            v.set_volume(gain(next, db))?;
                            linear = next;
                        }
                    }
                    Ok(())
                },
            ))
        }),
    }
}

/// A level for JSON: `null` where nothing is measurable yet (`-inf`).
fn level(value: f64) -> serde_json::Value {
    if value.is_finite() {
        json!((value * 100.0).round() / 100.0)
    } else {
        serde_json::Value::Null
    }
}

fn loudness() -> HandlerSpec {
    HandlerSpec {
        name: "loudness",
        summary: "EBU R128 / BS.1770-4 meter: momentary, short-term, integrated, LRA, true peak; with target= it normalises",
        ports: vec![AUDIO_IN, AUDIO_OUT],
        properties: vec![
            prop(
                "target",
                PropType::Float {
                    min: -70.0,
                    max: 0.0,
                },
                Some("0"),
                true,
                "normalise to this loudness, LUFS (e.g. -23 for EBU R128): a gain moving at most \
                 3 dB/s steers the measured input there; 0 (the default) is off, and audio \
                 passes untouched",
            ),
            prop(
                "target-window",
                PropType::Enum(TargetWindow::NAMES),
                Some("short-term"),
                true,
                "what target= steers: short-term (last 3 s, for live streams) or integrated (the \
                 whole programme)",
            ),
            prop(
                "max-gain",
                PropType::Float {
                    min: 0.0,
                    max: LoudnessTarget::MAX_GAIN_DB,
                },
                Some("20"),
                true,
                "the most gain or attenuation target= applies, dB",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let mut target = LoudnessTarget::new(p.float("target"));
            target.window = TargetWindow::from_name(p.text("target-window")).unwrap_or_default();
            target.max_gain_db = p.float("max-gain");
            let mut handler = Loudness::new();
            handler.set_target(target_of(target))?;
            let stats = handler.stats();
            Ok(
                BuiltHandler::live(handler, move |l: &mut Loudness, name, value: &Value| {
                    match name {
                        "target" => {
                            target.target_lufs = value.as_float().unwrap_or(target.target_lufs);
                        }
                        "target-window" => {
                            target.window = value
                                .as_text()
                                .and_then(TargetWindow::from_name)
                                .unwrap_or(target.window);
                        }
                        _ => target.max_gain_db = value.as_float().unwrap_or(target.max_gain_db),
                    }
                    l.set_target(target_of(target))?;
                    Ok(())
                })
                .with_report(move || {
                    let s = stats.snapshot();
                    json!({
                        "momentary_lufs": level(s.momentary_lufs),
                        "short_term_lufs": level(s.short_term_lufs),
                        "integrated_lufs": level(s.integrated_lufs),
                        "lra_lu": level(s.lra_lu),
                        "true_peak_dbtp": level(s.true_peak_dbtp),
                        "gain_db": s.gain_db,
                        "frames": s.frames,
                        "non_finite_samples": s.non_finite_samples,
                        "restarts": s.restarts,
                    })
                }),
            )
        }),
    }
}

/// The target `loudness` runs with: none for `target=0`.
fn target_of(target: LoudnessTarget) -> Option<LoudnessTarget> {
    (target.target_lufs != 0.0).then_some(target)
}

/// Registers `audioconvert` for the channel count: negotiation inserts it where a link's
/// channel counts differ, mixing to the count the target caps fix.
pub(crate) fn register_converters(converters: &mut ConverterRegistry) {
    converters.register(
        Conversion::Channels,
        "audioconvert",
        Caps::audio(),
        Caps::audio(),
        Arc::new(|target: &Caps| {
            let convert = AudioConvert::for_caps(target)?;
            let (input, output) = (convert.input().erased(), convert.output().erased());
            Ok(TransferHandler::new(convert, input, output))
        }),
    );
}

fn audio_convert() -> HandlerSpec {
    HandlerSpec {
        name: "audioconvert",
        summary: "Up- and down-mixes channels: mono<->stereo, 5.1 and quad to stereo (ITU-R BS.775, LFE dropped)",
        ports: vec![
            AUDIO_IN,
            port(
                "audio",
                Direction::Output,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "the input's rate at `channels` (buffers already there pass by reference)",
            ),
        ],
        properties: vec![prop(
            "channels",
            PropType::Int {
                min: 0,
                max: MAX_CHANNELS as i64,
            },
            Some("0"),
            false,
            "output channel count; 0: the one negotiated downstream (else the input's)",
        )],
        factory: Arc::new(|p: &Properties| {
            let channels = u32::try_from(p.int("channels")).unwrap_or(u32::MAX);
            Ok(BuiltHandler::fixed(AudioConvert::new(channels)?))
        }),
    }
}

fn audio_mixer() -> HandlerSpec {
    HandlerSpec {
        name: "audiomixer",
        summary: "Mixes N inputs aligned by timestamps, each with its gain; a late or missing input is silence, counted",
        ports: vec![
            port(
                "sink_<N>",
                Direction::Input,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "input N (0 ..= inputs-1) at the mixer's rate and channels, optional",
            )
            .numbered_by("inputs")
            .optional(),
            AUDIO_OUT,
        ],
        properties: vec![
            prop(
                "inputs",
                PropType::Int {
                    min: 1,
                    max: MAX_MIXER_INPUTS as i64,
                },
                Some("2"),
                false,
                "number of inputs",
            ),
            prop(
                "rate",
                RATE,
                Some("48000"),
                false,
                "output (and every input's) sample rate in Hz",
            ),
            prop(
                "channels",
                CHANNELS,
                Some("2"),
                false,
                "output (and every input's) channel count",
            ),
            prop(
                "latency",
                PropType::Float {
                    min: 0.0,
                    max: 10_000.0,
                },
                Some("0"),
                false,
                "ms the mix runs behind the clock, the time inputs have to deliver",
            ),
            prop(
                "sink_<N>.volume",
                PropType::Float {
                    min: 0.0,
                    max: MAX_VOLUME,
                },
                Some("1"),
                true,
                "input N's linear gain",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let mut mixer = AudioMixer::new(AudioMixerConfig {
                inputs: usize::try_from(p.int("inputs")).unwrap_or(0),
                rate: u32::try_from(p.int("rate")).unwrap_or(0),
                channels: u16::try_from(p.int("channels")).unwrap_or(0),
                latency_ns: (p.float("latency") * 1e6) as u64,
            })?;
            for (name, value) in p.iter().filter(|(n, _)| n.starts_with("sink_")) {
                set_input_gain(&mut mixer, name, value)?;
            }
            let stats = mixer.stats();
            Ok(
                BuiltHandler::live(mixer, set_input_gain).with_report(move || {
                    let inputs: Vec<_> = stats
                        .snapshot()
                        .iter()
                        .map(|s| json!({"mixed": s.mixed, "silent": s.silent, "late": s.late}))
                        .collect();
                    json!({ "inputs": inputs })
                }),
            )
        }),
    }
}

/// Applies `sink_<N>.volume`.
fn set_input_gain(mixer: &mut AudioMixer, name: &str, value: &Value) -> Result<(), HandlerError> {
    let index = name
        .strip_prefix("sink_")
        .and_then(|rest| rest.strip_suffix(".volume"))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| {
            HandlerError::msg(format!("audiomixer: `{name}` is not `sink_<N>.volume`"))
        })?;
    mixer.set_gain(index, value.as_float().unwrap_or(1.0))?;
    Ok(())
}
