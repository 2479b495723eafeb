//! Audio format negotiation: a link whose sample rates differ gets the registered resampler
//! (`Conversion::SampleRate`), one whose channel counts differ too gets the channel mixer
//! and the resampler, and with no resampler registered the build fails naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use streamlib_clock::{ManualClock, Rational};
use streamlib_ports::*;
use streamlib_runtime::{
    Conversion, ConverterRegistry, RuntimeError, Stream, StreamRuntime, TransferHandler,
};

/// A source declaring fixed audio caps.
struct Source {
    out: OutputPort<AudioBuffer>,
}

impl StreamHandler for Source {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A sink accepting `caps`.
struct Sink {
    input: InputPort<AudioBuffer>,
}

impl StreamHandler for Sink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A converter stand-in: its output carries the target caps, following its input in the
/// fields `follow` names.
struct Convert {
    input: InputPort<AudioBuffer>,
    out: OutputPort<AudioBuffer>,
}

impl StreamHandler for Convert {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn register(registry: &mut ConverterRegistry, conversion: Conversion, name: &str, follow: Follow) {
    registry.register(
        conversion,
        name,
        Caps::audio(),
        Caps::audio(),
        Arc::new(move |target: &Caps| {
            let input = InputPort::new("audio", MemoryCaps::CPU).with_format(Caps::audio());
            let out = OutputPort::new("audio", MemoryCaps::CPU).with_format(target.clone());
            out.follows(&input, follow);
            let c = Convert { input, out };
            let (input, output) = (c.input.handle().erased(), c.out.handle().erased());
            Ok(TransferHandler {
                handler: Box::new(c),
                input,
                output,
                dispatcher: None,
            })
        }),
    );
}

fn audio(rate: u32, channels: u32) -> Caps {
    Caps::Audio(AudioCaps::fixed(rate, channels))
}

/// `source ! sink` negotiated with the given converters: those inserted and the caps the
/// sink gets.
fn pair(
    produces: Caps,
    accepts: Caps,
    resampler: bool,
) -> Result<(Vec<String>, Caps), RuntimeError> {
    let mut rt = StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    let registry = rt.converters_mut();
    register(registry, Conversion::Channels, "audioconvert", Follow::RATE);
    if resampler {
        register(
            registry,
            Conversion::SampleRate,
            "audioresample",
            Follow::FORMAT_SIZE,
        );
    }
    let src = Source {
        out: OutputPort::new("audio", MemoryCaps::CPU).with_format(produces),
    };
    let sink = Sink {
        input: InputPort::new("audio", MemoryCaps::CPU).with_format(accepts),
    };
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src))?;
    rt.add_stream(Stream::new("sink", sink))?;
    rt.connect(&o, &i)?;
    let connections = rt.negotiate()?;
    Ok((
        connections[0].converters.clone(),
        connections[0].caps.clone().unwrap(),
    ))
}

#[test]
fn a_sample_rate_mismatch_inserts_the_resampler() {
    let (inserted, caps) = pair(audio(44_100, 2), audio(48_000, 2), true).unwrap();
    assert_eq!(inserted, ["audioresample-src-audio"]);
    assert_eq!(caps, audio(48_000, 2));
    // A sink taking a range gets the nearest rate in it, the input's kept where it fits.
    let range = Caps::Audio(AudioCaps {
        rate: Field::Range(48_000, 96_000),
        channels: Field::Any,
    });
    let (inserted, caps) = pair(audio(44_100, 2), range, true).unwrap();
    assert_eq!(inserted.len(), 1, "{inserted:?}");
    assert_eq!(caps, audio(48_000, 2));
}

#[test]
fn rate_and_channel_mismatches_insert_both_converters() {
    let (inserted, caps) = pair(audio(44_100, 1), audio(48_000, 2), true).unwrap();
    assert_eq!(inserted.len(), 2, "{inserted:?}");
    assert!(inserted.iter().any(|c| c.starts_with("audioconvert")));
    assert!(inserted.iter().any(|c| c.starts_with("audioresample")));
    assert_eq!(caps, audio(48_000, 2));
}

#[test]
fn matching_rates_insert_nothing_and_no_resampler_fails_naming_the_sample_rate() {
    let (inserted, _) = pair(audio(48_000, 2), audio(48_000, 2), true).unwrap();
    assert!(inserted.is_empty());
    let err = pair(audio(44_100, 2), audio(48_000, 2), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sample rate") && err.contains("44100"),
        "{err}"
    );
}
