//! Stream options in pipeline text (`restart=`, `max-restarts=` on any element): every error
//! a user can meet, the round trip through text and JSON, a handler's own property of the same
//! name, and real runs where `identity` fails and the policy restarts it (or not).
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{
    ClockKind, LaunchError, LaunchOptions, PipelineDesc, PropType, Registry, Session, build, parse,
    prop, validate,
};
use streamlib_runtime::{RuntimeStats, StreamRuntime, StreamState};

fn refused(text: &str) -> LaunchError {
    let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    match validate(&Registry::builtin(), &desc) {
        Ok(()) => panic!("{text}: validated, but should be refused"),
        Err(e) => e,
    }
}

#[test]
fn a_bad_value_names_the_element_the_option_and_what_it_takes() {
    let e = refused("testpattern ! identity name=flaky restart=sometimes ! null");
    assert!(matches!(e, LaunchError::BadValue { .. }), "{e:?}");
    let message = e.to_string();
    for part in [
        "flaky",
        "restart=sometimes",
        "never, on-failure, always",
        "stream option",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let message = refused("testpattern ! null max-restarts=many").to_string();
    assert!(
        message.contains("null0") && message.contains("max-restarts=many"),
        "{message}"
    );
    assert!(message.contains("an integer in -1..="), "{message}");
    let e = refused("testpattern max-restarts=-2 ! null");
    assert!(matches!(e, LaunchError::OutOfRange { .. }), "{e:?}");
    assert!(e.to_string().contains("testpattern0"), "{e}");
}

#[test]
fn never_with_a_cap_contradicts_itself() {
    let e = refused("testpattern ! identity restart=never max-restarts=3 ! null");
    assert!(
        matches!(e, LaunchError::ConflictingStreamOptions { .. }),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("identity0") && message.contains("restart=never max-restarts=3"),
        "{message}"
    );
    assert!(message.contains("restart=on-failure"), "{message}");
}

#[test]
fn a_misspelt_option_is_suggested() {
    let message = refused("testpattern ! identity restrat=always ! null").to_string();
    assert!(message.contains("did you mean `restart`"), "{message}");
    assert!(
        message.contains("stream options: restart, max-restarts"),
        "{message}"
    );
    // Other unknown words stay the handler's error, with its own suggestions.
    let message = refused("testpattern ! identity panic-aftr=3 ! null").to_string();
    assert!(message.contains("did you mean `panic-after`"), "{message}");
}

#[test]
fn every_element_and_dispatcher_takes_them() {
    let text = "testpattern restart=always max-restarts=-1 @dedicated ! \
                identity restart=on-failure @threadpool ! null max-restarts=2 @inline";
    validate(&Registry::builtin(), &parse(text).unwrap()).unwrap();
}

#[test]
fn options_round_trip_through_text_and_json() {
    let text = "testpattern size=8x8 ! identity panic-after=2 restart=always max-restarts=3 \
                @threadpool ! null";
    let desc = parse(text).unwrap();
    let identity = desc.element("identity0").unwrap();
    assert_eq!(identity.properties["restart"], "always");
    assert_eq!(identity.properties["max-restarts"], "3");
    let again = parse(&desc.to_text()).unwrap();
    assert_eq!(again.normalized(), desc.normalized());
    let from_json = PipelineDesc::from_json(&desc.to_json()).unwrap();
    assert_eq!(from_json.normalized(), desc.normalized());
    // JSON may give the cap as a number.
    let json = r#"{"elements": [
        {"name": "src", "handler": "testpattern", "properties": {"max-restarts": 4}},
        {"name": "sink", "handler": "null"}],
        "links": [{"from": "src", "to": "sink"}]}"#;
    validate(
        &Registry::builtin(),
        &PipelineDesc::from_json(json).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_registry_describes_them_once() {
    let registry = Registry::builtin();
    let names: Vec<&str> = registry.stream_options().iter().map(|o| o.name).collect();
    assert_eq!(
        names,
        [
            "restart",
            "max-restarts",
            "tick-deadline-ms",
            "memory-limit-mb",
            "cpu-affinity",
            "nice"
        ]
    );
    // Not copied into any handler's own properties.
    for spec in registry.iter() {
        for name in &names {
            assert!(
                spec.property(name).is_none(),
                "{} registers its own `{name}`",
                spec.name
            );
        }
    }
}

#[test]
fn a_handlers_own_property_of_that_name_wins() {
    let mut registry = Registry::builtin();
    let mut spec = registry.get("null").unwrap().clone();
    spec.name = "nullrestart";
    spec.properties.push(prop(
        "restart",
        PropType::Text,
        Some(""),
        false,
        "a word of the handler's own",
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = Arc::clone(&spec.factory);
    let record = Arc::clone(&seen);
    spec.factory = Arc::new(move |p| {
        record.lock().unwrap().push(p.text("restart").to_owned());
        inner(p)
    });
    registry.register(spec);
    // `sometimes` is no restart policy, but it is a fine value for the handler's own text.
    let desc = parse("testpattern ! nullrestart restart=sometimes").unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(2);
    let mut built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
    built.runtime.run().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["sometimes"]);
    // `max-restarts` is still a stream option there.
    validate(
        &registry,
        &parse("testpattern ! nullrestart max-restarts=2").unwrap(),
    )
    .unwrap();
}

/// Runs `text` for `ticks` ticks of a 200 fps real-time clock (backoffs are real time:
/// 10 ms, 20 ms, 40 ms, …), as `streamlib launch --fps 200 --frames N` does.
fn run(text: &str, ticks: u64) -> RuntimeStats {
    let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let options = LaunchOptions {
        fps: Some(200.0),
        auto_convert: true,
        clock: ClockKind::Software,
        frames: Some(ticks),
        ptp_interface: None,
    };
    let mut session = Session::start(&Registry::builtin(), &desc, options)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    session.wait().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn restart_always_restarts_a_panicking_handler_up_to_its_cap() {
    let stats = run(
        "testpattern size=32x32 ! identity panic-after=5 restart=always max-restarts=3 ! null",
        200,
    );
    let identity = stats.stream("identity0").unwrap();
    assert_eq!(identity.restarts, 3, "{identity:?}");
    assert_eq!(identity.panics, 4, "{identity:?}");
    assert_eq!(identity.state, StreamState::Failed, "{identity:?}");
    // Five frames per start went on: 4 starts × 5, each read by the sink or counted as
    // dropped at its latest-mode input.
    assert_eq!(identity.items_out, 20, "{identity:?}");
    let sink = stats.stream("null0").unwrap();
    assert_eq!(sink.items_in + sink.total_drops(), 20, "{sink:?}");
    // Given up, identity no longer feeds the only sink: the sink ends, and with it the run,
    // long before the clock's 200 ticks.
    assert_eq!(sink.state, StreamState::Ended, "{sink:?}");
    assert!(stats.stream("testpattern0").unwrap().items_out < 200);
}

#[test]
fn a_cap_alone_means_on_failure() {
    let stats = run(
        "testpattern size=32x32 ! identity error-after=5 max-restarts=2 ! null",
        200,
    );
    let identity = stats.stream("identity0").unwrap();
    assert_eq!(
        (identity.restarts, identity.state),
        (2, StreamState::Failed),
        "{identity:?}"
    );
}

#[test]
fn without_options_a_failure_is_final() {
    let stats = run("testpattern size=32x32 ! identity panic-after=5 ! null", 40);
    let identity = stats.stream("identity0").unwrap();
    assert_eq!(
        (identity.restarts, identity.panics, identity.state),
        (0, 1, StreamState::Failed),
        "{identity:?}"
    );
    assert_eq!(identity.items_out, 5, "{identity:?}");
}

#[test]
fn an_uncapped_policy_keeps_the_stream_going_to_the_end() {
    let stats = run(
        "testpattern size=32x32 ! \
         identity panic-after=20 restart=on-failure max-restarts=-1 ! null",
        // 2 s at 200 fps: two lives of 20 frames need 0.2 s, the rest is room for a loaded
        // machine (CI saw a 414 ms stall at a restart).
        400,
    );
    let identity = stats.stream("identity0").unwrap();
    assert!(identity.restarts >= 2, "{identity:?}");
    assert_eq!(identity.panics, identity.restarts, "{identity:?}");
    assert_eq!(identity.state, StreamState::Ended, "{identity:?}");
    assert!(stats.stream("null0").unwrap().items_in > 40);
}
