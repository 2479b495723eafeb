//! Format negotiation over the whole graph: fixation, inserted converters and their order,
//! the errors that name both sides, transforms that follow their input, and laws checked by
//! property tests (deterministic; every inserted converter changes what it must).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_ports::*;
use streamlib_runtime::{
    Conversion, ConverterRegistry, RuntimeError, Stream, StreamRuntime, TransferHandler,
};

/// A source declaring fixed caps.
struct Source {
    out: OutputPort<VideoFrame>,
}

impl Source {
    fn new(caps: Caps) -> Self {
        Self {
            out: OutputPort::new("video", MemoryCaps::CPU).with_format(caps),
        }
    }
}

impl StreamHandler for Source {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A transform whose output follows its input in the fields `follow` names.
struct Transform {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
}

impl Transform {
    fn new(accepts: Caps, produces: Caps, follow: Follow) -> Self {
        let input = InputPort::new("video", MemoryCaps::CPU).with_format(accepts);
        let out = OutputPort::new("video", MemoryCaps::CPU).with_format(produces);
        out.follows(&input, follow);
        Self { input, out }
    }
}

impl StreamHandler for Transform {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A sink that records, at start, the caps it was told.
struct Sink {
    input: InputPort<VideoFrame>,
    told: Arc<Mutex<Option<Caps>>>,
}

impl Sink {
    fn new(accepts: Caps) -> (Self, Arc<Mutex<Option<Caps>>>) {
        let told = Arc::new(Mutex::new(None));
        let sink = Self {
            input: InputPort::new("video", MemoryCaps::CPU).with_format(accepts),
            told: Arc::clone(&told),
        };
        (sink, told)
    }
}

impl StreamHandler for Sink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn on_start(&mut self, _: &StartContext<'_>) -> Result<(), HandlerError> {
        *self.told.lock().unwrap() = self.input.negotiated_format();
        Ok(())
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn video(formats: &[PixelFormat]) -> Caps {
    Caps::Video(VideoCaps::any().with_formats(formats))
}

/// Converters for the tests: a format converter from anything, a scaler that takes only
/// RGBA and gray (so a UYVY frame to be scaled is converted first), a rate adapter.
fn converters() -> ConverterRegistry {
    let mut registry = ConverterRegistry::new();
    let factory = |accepts: Caps, follow: Follow| {
        Arc::new(move |target: &Caps| {
            let t = Transform::new(accepts.clone(), target.clone(), follow);
            let (input, output) = (t.input.handle().erased(), t.out.handle().erased());
            Ok(TransferHandler {
                handler: Box::new(t),
                input,
                output,
                dispatcher: None,
            })
        })
    };
    let scalable = video(&[PixelFormat::Rgba8, PixelFormat::Gray8]);
    registry.register(
        Conversion::Format,
        "convert",
        Caps::video(),
        Caps::video(),
        factory(Caps::video(), Follow::SIZE_RATE),
    );
    registry.register(
        Conversion::Size,
        "scale",
        scalable.clone(),
        Caps::video(),
        factory(scalable, Follow::FORMAT_RATE),
    );
    registry.register(
        Conversion::Rate,
        "videorate",
        Caps::video(),
        Caps::video(),
        factory(Caps::video(), Follow::FORMAT_SIZE),
    );
    registry
}

fn runtime() -> StreamRuntime {
    let mut rt = StreamRuntime::new(ManualClock::new(Rational::fps(25)).0);
    *rt.converters_mut() = converters();
    rt
}

/// `source ! sink`, negotiated: the converters inserted and what the sink was told.
fn pair(produces: Caps, accepts: Caps) -> Result<(Vec<String>, Caps), RuntimeError> {
    let mut rt = runtime();
    let src = Source::new(produces);
    let (sink, _) = Sink::new(accepts);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src))?;
    rt.add_stream(Stream::new("sink", sink))?;
    rt.connect(&o, &i)?;
    let connections = rt.negotiate()?;
    let inserted = connections[0].converters.clone();
    let caps = connections[0].caps.clone().unwrap();
    Ok((inserted, caps))
}

#[test]
fn intersecting_caps_fix_one_value_and_the_clock_rate() {
    let produced = Caps::Video(VideoCaps::fixed(PixelFormat::I420, 640, 480));
    let (inserted, caps) = pair(produced, video(&[PixelFormat::Rgba8, PixelFormat::I420])).unwrap();
    assert!(inserted.is_empty());
    assert_eq!(caps.to_string(), "video i420 640x480 25");
}

#[test]
fn a_sink_learns_its_format_at_start() {
    let mut rt = runtime();
    let src = Source::new(Caps::Video(
        VideoCaps::fixed(PixelFormat::Uyvy, 322, 182).with_rate(Rational::FPS_29_97),
    ));
    let (sink, told) = Sink::new(Caps::video());
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();
    rt.stop().unwrap();
    let told = told.lock().unwrap().clone().unwrap().video_info().unwrap();
    assert_eq!(
        (told.format, told.width, told.height),
        (PixelFormat::Uyvy, 322, 182)
    );
    assert_eq!(told.rate, Some(Rational::FPS_29_97));
}

#[test]
fn a_format_mismatch_inserts_a_converter() {
    let produced = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 640, 480));
    let (inserted, caps) = pair(produced, video(&[PixelFormat::Uyvy])).unwrap();
    assert_eq!(inserted, ["convert-src-video"]);
    assert_eq!(caps.to_string(), "video uyvy 640x480 25");
}

#[test]
fn a_size_mismatch_on_a_format_the_scaler_lacks_converts_first() {
    let produced = Caps::Video(VideoCaps::fixed(PixelFormat::Uyvy, 1920, 1080));
    let wanted = Caps::Video(VideoCaps::fixed(PixelFormat::Uyvy, 640, 360));
    let (inserted, caps) = pair(produced, wanted).unwrap();
    assert_eq!(
        inserted,
        [
            "convert-src-video",
            "scale-src-video",
            "convert-src-video-2"
        ]
    );
    assert_eq!(caps.to_string(), "video uyvy 640x360 25");
}

#[test]
fn downscaling_scales_before_converting() {
    // RGBA 1920x1080 to gray 640x360: both orders are valid; scaling the RGBA first touches
    // fewer bytes than converting the full frame first, so it wins.
    let produced = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 1920, 1080));
    let wanted = Caps::Video(VideoCaps::fixed(PixelFormat::Gray8, 640, 360));
    let (inserted, _) = pair(produced, wanted).unwrap();
    assert_eq!(inserted, ["scale-src-video", "convert-src-video"]);
}

#[test]
fn auto_convert_off_names_both_sides_and_the_fix() {
    let mut rt = runtime();
    rt.set_auto_convert(false);
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 640, 480)));
    let (sink, _) = Sink::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 320, 240)));
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    let err = rt.negotiate().unwrap_err();
    assert!(matches!(err, RuntimeError::NotNegotiated { .. }), "{err}");
    let text = err.to_string();
    for part in [
        "src.video",
        "sink.video",
        "video rgba8 640x480 25",
        "video rgba8 320x240",
        "size",
        "auto-convert is off",
        "scale",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // Start refuses too, and nothing was wired.
    assert!(rt.start().is_err());
}

#[test]
fn nothing_registered_is_an_error_not_a_silent_link() {
    let mut rt = StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 64, 64)));
    let (sink, _) = Sink::new(video(&[PixelFormat::Uyvy]));
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    let text = rt.start().unwrap_err().to_string();
    assert!(text.contains("no format converter is registered"), "{text}");
}

#[test]
fn audio_caps_into_video_caps_is_a_kind_error() {
    let produced = Caps::Audio(AudioCaps::fixed(48_000, 2));
    let err = pair(produced, Caps::video()).unwrap_err().to_string();
    assert!(err.contains("differ in kind"), "{err}");
    assert!(err.contains("audio 48000Hz 2ch"), "{err}");
}

#[test]
fn transforms_carry_what_they_follow() {
    let mut rt = runtime();
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Bgra8, 100, 50)));
    let blur = Transform::new(
        video(&[PixelFormat::Rgba8, PixelFormat::Bgra8]),
        video(&[PixelFormat::Rgba8, PixelFormat::Bgra8]),
        Follow::ALL,
    );
    let (sink, told) = Sink::new(Caps::video());
    let (o, bi, bo, i) = (
        src.out.handle(),
        blur.input.handle(),
        blur.out.handle(),
        sink.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("blur", blur)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    // Connected downstream first: negotiation still runs from the source down.
    rt.connect(&bo, &i).unwrap();
    rt.connect(&o, &bi).unwrap();
    rt.start().unwrap();
    rt.stop().unwrap();
    let told = told.lock().unwrap().clone().unwrap();
    assert_eq!(told.to_string(), "video bgra8 100x50 25");
}

#[test]
fn a_template_narrower_than_the_input_is_refused_by_name() {
    let mut rt = runtime();
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Gray8, 8, 8)));
    // Accepts anything but can only produce RGBA while following the format: a bug in the
    // handler's declaration, reported as such.
    let t = Transform::new(Caps::video(), video(&[PixelFormat::Rgba8]), Follow::ALL);
    let (sink, _) = Sink::new(Caps::video());
    let (o, ti, to, i) = (
        src.out.handle(),
        t.input.handle(),
        t.out.handle(),
        sink.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("t", t)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &ti).unwrap();
    rt.connect(&to, &i).unwrap();
    let err = rt.negotiate().unwrap_err();
    assert!(
        matches!(err, RuntimeError::TransformRefused { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("t.video"), "{err}");
}

#[test]
fn a_rate_the_input_fixes_gets_a_rate_adapter_to_the_clock() {
    let produced =
        Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 64, 64).with_rate(Rational::fps(50)));
    let wanted = Caps::Video(VideoCaps::any().with_rate(Rational::fps(25)));
    let (inserted, caps) = pair(produced.clone(), wanted).unwrap();
    assert_eq!(inserted, ["videorate-src-video"]);
    assert_eq!(caps.to_string(), "video rgba8 64x64 25");
    // A rate other than the clock's cannot be made by repeating or dropping on its ticks.
    let wanted = Caps::Video(VideoCaps::any().with_rate(Rational::fps(60)));
    let err = pair(produced, wanted).unwrap_err().to_string();
    assert!(err.contains("--fps"), "{err}");
}

#[test]
fn sources_report_the_rates_they_fix() {
    let mut rt = runtime();
    let a = Source::new(Caps::Video(
        VideoCaps::fixed(PixelFormat::Rgba8, 8, 8).with_rate(Rational::FPS_29_97),
    ));
    let b = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 8, 8)));
    rt.add_stream(Stream::new("a", a)).unwrap();
    rt.add_stream(Stream::new("b", b)).unwrap();
    assert_eq!(
        rt.source_rates(),
        [("a.video".to_owned(), Rational::FPS_29_97)]
    );
}

const FORMATS: [PixelFormat; 4] = [
    PixelFormat::Rgba8,
    PixelFormat::Gray8,
    PixelFormat::Uyvy,
    PixelFormat::I420,
];

/// One link's outcome: the input, the converters inserted, the caps it carries.
type Decision = (String, Vec<String>, Option<Caps>);

fn chain(
    source: (PixelFormat, u32),
    stages: &[(Vec<PixelFormat>, Option<u32>)],
) -> Result<Vec<Decision>, RuntimeError> {
    let mut rt = runtime();
    let size = |s: u32| (s * 16, s * 9);
    let (w, h) = size(source.1);
    let src = Source::new(Caps::Video(VideoCaps::fixed(source.0, w, h)));
    let mut previous = src.out.handle();
    rt.add_stream(Stream::new("s0", src))?;
    for (n, (formats, fixed)) in stages.iter().enumerate() {
        let mut accepts = VideoCaps::any().with_formats(formats);
        if let Some(s) = fixed {
            let (w, h) = size(*s);
            accepts = accepts.with_size(w, h);
        }
        let t = Transform::new(
            Caps::Video(accepts.clone()),
            Caps::Video(VideoCaps::any().with_formats(formats)),
            Follow::ALL,
        );
        let (i, o) = (t.input.handle(), t.out.handle());
        rt.add_stream(Stream::new(format!("t{n}"), t))?;
        rt.connect(&previous, &i)?;
        previous = o;
    }
    Ok(rt
        .negotiate()?
        .iter()
        .map(|c| (c.input.clone(), c.converters.clone(), c.caps.clone()))
        .collect())
}

fn stage() -> impl Strategy<Value = (Vec<PixelFormat>, Option<u32>)> {
    (
        proptest::sample::subsequence(FORMATS.to_vec(), 1..=4).prop_shuffle(),
        proptest::option::of(1u32..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn negotiation_is_deterministic_and_each_converter_is_needed(
        format in proptest::sample::select(FORMATS.to_vec()),
        size in 1u32..4,
        stages in proptest::collection::vec(stage(), 1..5),
    ) {
        let first = chain((format, size), &stages).unwrap();
        let second = chain((format, size), &stages).unwrap();
        prop_assert_eq!(&first, &second);
        // Walk the chain: what each stage receives, and whether it needed a converter.
        let mut carried = (format, size);
        for ((formats, fixed), (_, converters, caps)) in stages.iter().zip(&first) {
            let needs_format = !formats.contains(&carried.0);
            let needs_size = fixed.is_some_and(|s| s != carried.1);
            let scalable = [PixelFormat::Rgba8, PixelFormat::Gray8];
            let has = |name: &str| converters.iter().filter(|c| c.starts_with(name)).count();
            prop_assert_eq!(has("scale") > 0, needs_size, "{:?}", converters);
            prop_assert!(has("scale") <= 1);
            if !needs_size {
                prop_assert_eq!(has("convert"), usize::from(needs_format), "{:?}", converters);
            } else if scalable.contains(&carried.0) {
                prop_assert_eq!(has("convert"), usize::from(needs_format), "{:?}", converters);
            } else {
                // Into a format the scaler takes, and out again only if the stage needs it.
                prop_assert!(has("convert") >= 1 && has("convert") <= 2, "{:?}", converters);
            }
            let caps = caps.clone().unwrap().video_info().unwrap();
            prop_assert!(formats.contains(&caps.format));
            if let Some(s) = fixed {
                prop_assert_eq!((caps.width, caps.height), (s * 16, s * 9));
            }
            carried = (caps.format, caps.width / 16);
        }
    }
}

#[test]
fn a_limited_converter_goes_through_an_intermediate() {
    // A converter that takes YUV only to RGB: UYVY to I420 goes through RGBA, in two steps.
    let mut rt = runtime();
    rt.converters_mut().limit(
        Conversion::Format,
        Arc::new(|from: &Caps, to: &Caps| {
            let (Some(from), Some(to)) = (from.video_info(), to.video_info()) else {
                return false;
            };
            let rgb = |f: PixelFormat| matches!(f, PixelFormat::Rgba8 | PixelFormat::Bgra8);
            rgb(from.format) || rgb(to.format)
        }),
    );
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Uyvy, 64, 32)));
    let (sink, told) = Sink::new(video(&[PixelFormat::I420]));
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    let inserted = rt.negotiate().unwrap()[0].converters.clone();
    assert_eq!(inserted, ["convert-src-video", "convert-src-video-2"]);
    rt.start().unwrap();
    rt.stop().unwrap();
    let told = told.lock().unwrap().clone().unwrap();
    assert_eq!(told.to_string(), "video i420 64x32 25");
}

#[test]
fn a_negotiated_graph_takes_no_new_link() {
    let mut rt = runtime();
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 8, 8)));
    let (sink, _) = Sink::new(Caps::video());
    let (late, _) = Sink::new(Caps::video());
    let (o, i, j) = (src.out.handle(), sink.input.handle(), late.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.negotiate().unwrap();
    let err = rt.add_stream(Stream::new("late", late)).unwrap_err();
    assert!(err.to_string().contains("negotiated"), "{err}");
    let err = rt.connect(&o, &j).unwrap_err();
    assert!(err.to_string().contains("negotiated"), "{err}");
}

#[test]
fn a_failed_negotiation_is_final() {
    let mut rt = StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    let src = Source::new(Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 8, 8)));
    let (sink, _) = Sink::new(video(&[PixelFormat::Uyvy]));
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    assert!(matches!(
        rt.negotiate(),
        Err(RuntimeError::NotNegotiated { .. })
    ));
    // Registering a converter now does not make the half-negotiated graph valid.
    *rt.converters_mut() = converters();
    let err = rt.start().unwrap_err().to_string();
    assert!(err.contains("after a failed negotiation"), "{err}");
}

#[test]
fn a_source_at_the_clock_rate_does_not_take_a_sinks_rate() {
    // The source makes a frame per tick (25 here): a sink fixed at 30 gets no silent 30.
    let produced = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 64, 64));
    let wanted = Caps::Video(VideoCaps::any().with_rate(Rational::fps(30)));
    let err = pair(produced, wanted).unwrap_err().to_string();
    assert!(err.contains("rate") && err.contains("--fps"), "{err}");
}

#[test]
fn nothing_declared_upstream_tells_the_sink_nothing() {
    let mut rt = runtime();
    let src = Source::new(Caps::Any);
    let (sink, told) = Sink::new(Caps::Video(VideoCaps::fixed(PixelFormat::Uyvy, 640, 480)));
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();
    rt.stop().unwrap();
    assert_eq!(told.lock().unwrap().clone(), Some(Caps::Any));
}

#[test]
fn what_agrees_is_kept_before_bridging_what_does_not() {
    // A source that can make I420 or RGBA, into an RGBA input at another size: RGBA is
    // chosen, so only a scaler goes in (not a scaler and a converter).
    let produced = Caps::Video(
        VideoCaps::any()
            .with_formats(&[PixelFormat::I420, PixelFormat::Rgba8])
            .with_size(1920, 1080),
    );
    let wanted = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 640, 360));
    let (inserted, caps) = pair(produced, wanted).unwrap();
    assert_eq!(inserted, ["scale-src-video"]);
    assert_eq!(caps.to_string(), "video rgba8 640x360 25");
}
