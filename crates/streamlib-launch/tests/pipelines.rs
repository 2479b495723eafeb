//! Pipeline descriptions end to end: text ↔ graph ↔ JSON round trips (proptest), every error
//! message a user can meet, real runs of the shipped video handlers, and live property
//! changes reaching a handler between two frames.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streamlib_clock::{FreeRunningClock, ManualClock, Rational};
use streamlib_handlers_video::FrameCapture;
use streamlib_launch::{
    ElementDesc, LaunchError, LinkDesc, PipelineDesc, PortRef, Registry, build, parse, validate,
};
use streamlib_runtime::StreamRuntime;

// ---------------------------------------------------------------------------------------------
// Round trips.

fn element_strategy(index: usize) -> impl Strategy<Value = (String, Option<String>, ElementDesc)> {
    let handlers = prop::sample::select(vec!["testpattern", "blur", "null", "compositor"]);
    let keys = prop::collection::btree_map(
        prop::sample::select(vec!["sigma", "text", "size", "layer0.opacity", "x"]),
        "[a-z0-9 \"!@=.\\\\']{0,8}",
        0..3,
    );
    let dispatcher = prop::option::of(prop::sample::select(vec!["inline", "threadpool"]));
    (handlers, any::<bool>(), keys, dispatcher).prop_map(move |(h, named, props, d)| {
        let explicit = named.then(|| format!("e{index}x"));
        (
            h.to_owned(),
            explicit,
            ElementDesc {
                name: String::new(),
                handler: h.to_owned(),
                properties: props
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<BTreeMap<_, _>>(),
                dispatcher: d.map(str::to_owned),
            },
        )
    })
}

fn desc_strategy() -> impl Strategy<Value = PipelineDesc> {
    (1usize..6)
        .prop_flat_map(|n| {
            let elements: Vec<_> = (0..n).map(element_strategy).collect();
            let links = prop::collection::vec(
                (
                    0..n,
                    0..n,
                    prop::option::of(prop::sample::select(vec!["video", "layer1"])),
                    prop::option::of(prop::sample::select(vec!["video", "layer0"])),
                ),
                0..6,
            );
            (elements, links)
        })
        .prop_map(|(elements, links)| {
            // Auto names as the parser assigns them: handler + count of earlier same handlers.
            let mut counts = BTreeMap::<String, usize>::new();
            let elements: Vec<ElementDesc> = elements
                .into_iter()
                .map(|(handler, explicit, mut e)| {
                    let n = counts.entry(handler.clone()).or_default();
                    e.name = explicit.unwrap_or_else(|| format!("{handler}{n}"));
                    *n += 1;
                    e
                })
                .collect();
            let links = links
                .into_iter()
                .map(|(a, b, pa, pb)| LinkDesc {
                    from: PortRef {
                        element: elements[a].name.clone(),
                        port: pa.map(str::to_owned),
                    },
                    to: PortRef {
                        element: elements[b].name.clone(),
                        port: pb.map(str::to_owned),
                    },
                })
                .collect();
            PipelineDesc { elements, links }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_and_json_round_trip(desc in desc_strategy()) {
        let text = desc.to_text();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{desc:?}")))?;
        prop_assert_eq!(parsed.normalized(), desc.normalized(), "text: {}", text);
        let json = desc.to_json();
        prop_assert_eq!(PipelineDesc::from_json(&json).unwrap(), desc.clone());
        // And back to the same text.
        prop_assert_eq!(parsed.to_text(), text);
    }

    #[test]
    fn the_parser_never_panics(text in "[a-z0-9 !@=.\"\\\\]{0,40}") {
        let _ = parse(&text);
    }
}

#[test]
fn json_takes_numbers_and_booleans() {
    let desc = PipelineDesc::from_json(
        r#"{"elements":[{"name":"p","handler":"testpattern","properties":{"size":"64x36","moving-box":false}},
                        {"name":"b","handler":"blur","properties":{"sigma":2.5},"dispatcher":"inline"},
                        {"name":"n","handler":"null"}],
            "links":[{"from":"p","to":"b.video"},{"from":"b.video","to":"n"}]}"#,
    )
    .unwrap();
    assert_eq!(desc.elements[0].properties["moving-box"], "false");
    assert_eq!(desc.elements[1].properties["sigma"], "2.5");
    assert_eq!(
        desc.to_text(),
        "testpattern name=p moving-box=false size=64x36  blur name=b sigma=2.5 @inline  \
         null name=n  p. ! b.video  b.video ! n."
    );
    let err = PipelineDesc::from_json(
        r#"{"elements":[{"name":"p","handler":"x","properties":{"a":[1]}}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("property `a`: expected a string, number or boolean"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors a user meets.

fn error_of(text: &str) -> String {
    let desc = parse(text).unwrap();
    validate(&Registry::builtin(), &desc)
        .and_then(|()| {
            build(
                &Registry::builtin(),
                &desc,
                StreamRuntime::new(ManualClock::new(Rational::fps(30)).0),
            )
            .map(|_| ())
        })
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_the_element_and_suggest() {
    let cases = [
        (
            "testpatern ! null",
            "unknown handler `testpatern` (did you mean `testpattern`?)",
        ),
        (
            "testpattern ! blur sigmaa=2 ! null",
            "blur0 (blur): unknown property `sigmaa` (did you mean `sigma`?); its properties: sigma, radius",
        ),
        (
            "testpattern ! blur sigma=500 ! null",
            "blur0 (blur): `sigma=500` is out of range: a number in 0.01..=21",
        ),
        (
            "testpattern size=big ! null",
            "testpattern0 (testpattern): `size=big` is not a size WIDTHxHEIGHT, each side in 1..=16384, at most 268435456 pixels",
        ),
        (
            "testpattern pattern=smtpe ! null",
            "`pattern=smtpe` is not one of smpte, gradient, black, white, checkerboard",
        ),
        (
            "testpattern ! blur @threadpol ! null",
            "blur0: unknown dispatcher `@threadpol` (did you mean `threadpool`?)",
        ),
        (
            "testpattern ! compositor layers=2 name=mix ! null  testpattern ! mix.layr1",
            "has no input `layr1` (did you mean `layer1`?); its inputs: layer0, layer1",
        ),
        (
            "testpattern ! null  testpattern ! null0.",
            "null0 (null) has no free input for video (its inputs: video, audio, data)",
        ),
        (
            "testpattern ! compositor layers=2 layer5.opacity=0.5 ! null",
            "compositor0 (compositor): compositor: layer 5 does not exist (it has 2 layers: 0..=1)",
        ),
    ];
    for (text, want) in cases {
        let got = error_of(text);
        assert!(got.contains(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[cfg(feature = "file")]
#[test]
fn required_properties_and_bad_files_are_named() {
    let got = error_of("filereader ! null");
    assert!(
        got.contains("filereader0 (filereader): property `location` is required"),
        "{got}"
    );
    let got = error_of("filereader location=/nonexistent/a.mp4 ! null");
    assert!(got.contains("/nonexistent/a.mp4"), "{got}");
}

// ---------------------------------------------------------------------------------------------
// Real runs.

/// `capture`: a user handler registered beside the built-ins, keeping every 1st..4th frame.
fn with_capture() -> (Registry, support::Captures) {
    support::with_capture("keeps frames 0..8 for the test", || FrameCapture::new(0..8))
}

#[test]
fn every_shipped_video_handler_runs() {
    let text = "compositor name=mix size=96x64 layers=2 layer1.opacity=0.5 ! blur sigma=1 ! capture  \
                testpattern size=96x64 ! mix.layer0  \
                drawing size=96x64 text=\"{frame}\" font-size=20 ! mix.layer1  \
                testpattern size=32x32 pattern=checkerboard cell=4 ! null";
    let (registry, handles) = with_capture();
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(6);
    let mut built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let capture = handles.lock().unwrap()[0].clone();
    // Six ticks, plus the compositor's flush when its inputs end.
    assert!(capture.received() >= 6, "{}", capture.received());
    let frame = &capture.frames()[5].1;
    assert_eq!((frame.width(), frame.height()), (96, 64));
    assert_eq!(stats.stream("null0").unwrap().total_drops(), 0);
    assert_eq!(stats.stream("testpattern1").unwrap().items_out, 6);
    assert_eq!(built.graph.edges.len(), 5);
}

#[test]
fn a_live_change_reaches_the_next_frame_only() {
    let (registry, handles) = with_capture();
    let desc = parse("testpattern size=64x48 pattern=checkerboard cell=8 moving-box=false ! blur sigma=0.3 ! capture").unwrap();
    let (clock, ticker) = ManualClock::new(Rational::fps(30));
    let mut built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
    let controls = built.controls.clone();
    built.runtime.start().unwrap();
    let capture = handles.lock().unwrap()[0].clone();
    let wait_for = |n: u64| {
        for _ in 0..500 {
            if capture.received() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("frame {n} never arrived");
    };
    ticker.tick();
    wait_for(1);
    controls.set("blur0", "sigma", "4").unwrap();
    ticker.tick();
    wait_for(2);
    // Radius 0 is inside the declared range and derives the radius like -1 (a kernel cannot
    // have zero taps); a live change never fails the stream it tunes.
    controls.set("blur0", "radius", "0").unwrap();
    ticker.tick();
    wait_for(3);
    ticker.end();
    let stats = built.runtime.stop().unwrap();
    assert_eq!(stats.stream("blur0").unwrap().errors, 0);
    let frames = capture.frames();
    // A checkerboard barely touched by σ=0.3 has pure black and white; σ=4 leaves neither.
    let extremes = |i: usize| {
        let bytes = frames[i].1.cpu_bytes().unwrap();
        bytes.chunks(4).filter(|p| p[0] == 0 || p[0] == 255).count()
    };
    assert!(extremes(0) > 64 * 48 / 2, "frame 0 should be sharp");
    assert_eq!(extremes(1), 0, "frame 1 should be blurred with σ=4");

    // Validated like launch-time values, and only live properties.
    let err = controls
        .set("blur0", "sigma", "-1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    let err = controls.set("testpattern0", "size", "10x10").unwrap_err();
    assert!(matches!(err, LaunchError::NotLive { .. }), "{err}");
    let err = controls.set("blr0", "sigma", "1").unwrap_err().to_string();
    assert!(err.contains("did you mean `blur0`"), "{err}");
}
