//! Fuzz targets: whatever pipeline text or JSON a person or an agent hands over, parsing,
//! validating and building never panic, and what parses converts both ways unchanged.
//!
//! Each target runs as an ordinary test on a bounded number of random inputs (plus the seed
//! corpus in `tests/__fuzz__/<target>/corpus/`), and for as long as asked under
//! libFuzzer or AFL with `cargo xtask fuzz <target>`. `BOLERO_RANDOM_ITERATIONS` overrides
//! the count here.
//!
//! Inputs are either raw bytes or, chosen by the first byte, a pipeline assembled from the
//! registry's own handler, property and port names with values at and beyond their ranges:
//! random bytes alone never get past the first element name.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::panic::AssertUnwindSafe;

use bolero::check;
use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{PipelineDesc, PropType, Registry, build, parse, validate};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::FuzzInput as Input;

/// Random inputs per target in an ordinary test run (CI).
const ITERATIONS: usize = 1_000;

/// Handlers whose validation and build touch nothing outside the process (no file, socket,
/// window or device), so the targets may build them.
const CONTAINED: [&str; 6] = [
    "testpattern",
    "blur",
    "compositor",
    "drawing",
    "convert",
    "null",
];

/// Values for a property of type `ty`: inside, at and beyond its range, and nonsense.
fn value(input: &mut Input<'_>, ty: &PropType, small: bool) -> String {
    let nasty = [
        "", "\"", "'", "!", "=", "x", "-0", "1e309", "NaN", "inf", "é", "a b", "\\",
    ];
    match ty {
        PropType::Int { min, max } => {
            let choices = [
                *min,
                *max,
                min.saturating_sub(1),
                max.saturating_add(1),
                0,
                1,
            ];
            input.pick(&choices).to_string()
        }
        PropType::Float { min, max } => {
            let choices = [*min, *max, min - 1.0, max + 1.0, (min + max) / 2.0];
            input.pick(&choices).to_string()
        }
        PropType::Size { max } if small => {
            format!("{}x{}", 1 + input.u8() % 32, 1 + input.u8() % 32)
        }
        PropType::Size { max } => {
            let sides = [
                1,
                2,
                3,
                16,
                1920,
                16_384,
                16_385,
                *max,
                max.saturating_add(1),
                0,
            ];
            format!("{}x{}", input.pick(&sides), input.pick(&sides))
        }
        PropType::Enum(words) if !input.u8().is_multiple_of(4) => (*input.pick(words)).to_owned(),
        PropType::Bool => (*input.pick(&["true", "false", "yes", "2"])).to_owned(),
        PropType::Color => (*input.pick(&["ff0000", "#00ff0080", "zzzzzz", "1234"])).to_owned(),
        _ => (*input.pick(&nasty)).to_owned(),
    }
}

/// A pipeline in text form, from the registry's names. `contained` keeps to [`CONTAINED`]
/// handlers, small sizes and no file paths, so that building it is safe and quick.
fn pipeline_text(input: &mut Input<'_>, registry: &Registry, contained: bool) -> String {
    let names: Vec<&str> = if contained {
        CONTAINED.to_vec()
    } else {
        registry
            .names()
            .chain(["testpatern", "", "blur0"])
            .collect()
    };
    let mut text = String::new();
    let elements = 1 + input.u8() % 5;
    for n in 0..elements {
        if n > 0 {
            text.push_str(input.pick::<&str>(&[" ! ", " ! ", "  ", " !", "!! ", " ! blur0. ! "]));
        }
        let handler = *input.pick(&names);
        text.push_str(handler);
        if input.u8().is_multiple_of(4) {
            text.push_str(&format!(" name=e{n}"));
        }
        let Some(spec) = registry.get(handler) else {
            continue;
        };
        for _ in 0..input.u8() % 4 {
            let Some(prop) = spec
                .properties
                .get(usize::from(input.u8()) % spec.properties.len().max(1))
            else {
                break;
            };
            if contained && matches!(prop.ty, PropType::Path) {
                continue;
            }
            let name = prop.name.replace('N', &(input.u8() % 3).to_string());
            let value = value(input, &prop.ty, contained);
            let quoted = if value.contains([' ', '"', '!']) || value.is_empty() {
                format!("\"{}\"", value.replace('"', "\\\""))
            } else {
                value
            };
            text.push_str(&format!(" {name}={quoted}"));
        }
        if contained {
            // Every size small: the defaults (1920x1080) would make each build slow.
            if spec.property("size").is_some() && !text.ends_with("x") {
                text.push_str(&format!(
                    " size={}x{}",
                    2 + input.u8() % 30,
                    2 + input.u8() % 30
                ));
            }
        } else if input.u8().is_multiple_of(8) {
            text.push_str(input.pick::<&str>(&[" @inline", " @threadpool", " @nope", " @"]));
        }
    }
    text
}

/// Whether validating `desc` stays inside the process: contained handlers, no file paths.
fn contained(registry: &Registry, desc: &PipelineDesc) -> bool {
    desc.elements.iter().all(|e| {
        CONTAINED.contains(&e.handler.as_str())
            && registry.get(&e.handler).is_some_and(|spec| {
                e.properties.keys().all(|k| {
                    spec.property(k)
                        .is_some_and(|p| !matches!(p.ty, PropType::Path))
                })
            })
    })
}

/// Text and JSON convert both ways unchanged.
fn round_trips(desc: &PipelineDesc) {
    let text = desc.to_text();
    let again = parse(&text).unwrap_or_else(|e| panic!("own text refused: {e}\n{text}"));
    assert_eq!(again.normalized(), desc.normalized(), "{text}");
    let json = desc.to_json();
    let again = PipelineDesc::from_json(&json).unwrap_or_else(|e| panic!("own JSON: {e}\n{json}"));
    assert_eq!(again.normalized(), desc.normalized(), "{json}");
}

#[test]
fn pipeline_text_parse() {
    let owned = Registry::builtin();
    // Shared by the inputs; a panic fails the test, nothing is reused after one.
    let shared = AssertUnwindSafe(&owned);
    check!()
        .with_iterations(ITERATIONS)
        .for_each(|data: &[u8]| {
            let registry: &Registry = *shared;
            let mut input = Input(data);
            let text = if input.u8() & 1 == 0 {
                String::from_utf8_lossy(input.rest()).into_owned()
            } else {
                pipeline_text(&mut input, registry, false)
            };
            let Ok(desc) = parse(&text) else { return };
            round_trips(&desc);
            if contained(registry, &desc) {
                let _ = validate(registry, &desc);
            }
        });
}

#[test]
fn pipeline_json() {
    let owned = Registry::builtin();
    // Shared by the inputs; a panic fails the test, nothing is reused after one.
    let shared = AssertUnwindSafe(&owned);
    check!()
        .with_iterations(ITERATIONS)
        .for_each(|data: &[u8]| {
            let registry: &Registry = *shared;
            let mut input = Input(data);
            let json = if input.u8() & 1 == 0 {
                String::from_utf8_lossy(input.rest()).into_owned()
            } else {
                // A real description's JSON with one byte range replaced.
                let text = pipeline_text(&mut input, registry, false);
                let Ok(desc) = parse(&text) else { return };
                let mut json = desc.to_json().into_bytes();
                if !json.is_empty() {
                    let at = usize::from(input.u8()) * 7 % json.len();
                    let len = usize::from(input.u8() % 4);
                    let with = input.rest();
                    let end = (at + len).min(json.len());
                    json.splice(at..end, with.iter().copied().take(8));
                }
                String::from_utf8_lossy(&json).into_owned()
            };
            let Ok(desc) = PipelineDesc::from_json(&json) else {
                return;
            };
            let again = PipelineDesc::from_json(&desc.to_json()).unwrap();
            assert_eq!(again, desc);
            if contained(registry, &desc) {
                let _ = validate(registry, &desc);
            }
        });
}

/// Contained pipelines from the input are validated and built (a wiring error is an error,
/// not a panic), and what builds runs for two ticks.
#[test]
fn pipeline_build() {
    let owned = Registry::builtin();
    // Shared by the inputs; a panic fails the test, nothing is reused after one.
    let shared = AssertUnwindSafe(&owned);
    check!().with_iterations(150).for_each(|data: &[u8]| {
        let registry: &Registry = *shared;
        let mut input = Input(data);
        if input.is_empty() {
            return;
        }
        let text = pipeline_text(&mut input, registry, true);
        let Ok(desc) = parse(&text) else { return };
        if !contained(registry, &desc) || validate(registry, &desc).is_err() {
            return;
        }
        let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(2);
        let Ok(mut built) = build(registry, &desc, StreamRuntime::new(clock)) else {
            return;
        };
        // A handler may fail on what it is given (named in the error); it must not panic.
        let _ = built.runtime.run();
    });
}
