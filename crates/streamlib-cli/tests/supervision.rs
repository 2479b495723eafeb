//! Supervision from the shell, with the real `streamlib` binary: `identity` fails on request,
//! the stream options `restart=` / `max-restarts=` decide what happens next, and `--json`
//! shows each stream's `restarts`. (Aborts and segfaults end the whole process in process:
//! containing them is what `@process` is for; they are not run here.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests; a failure names the output"
)]

mod common;

use std::process::Output;

use common::{stats, stderr, stdout, stream, streamlib};

fn launch(pipeline: &str, extra: &[&str]) -> Output {
    let mut args = vec!["launch", pipeline, "--fps", "200", "--json"];
    args.extend_from_slice(extra);
    streamlib(&args)
}

/// `restart=always max-restarts=3`: three restarts, then the fourth panic leaves it failed;
/// its sink ends, so the run ends, and (a handler failed) exits 1.
#[test]
fn a_capped_restart_policy_restarts_then_gives_up() {
    let out = launch(
        "testpattern size=32x32 ! \
         identity panic-after=10 restart=always max-restarts=3 ! null",
        &["--frames", "400"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stats = stats(&out);
    let identity = stream(&stats, "identity0");
    assert_eq!(identity["restarts"], 3, "{identity}");
    assert_eq!(identity["panics"], 4, "{identity}");
    assert_eq!(identity["state"], "failed", "{identity}");
    assert!(
        identity["error"]
            .as_str()
            .unwrap_or("")
            .contains("panic-after=10"),
        "{identity}"
    );
    // Ten frames per start went on downstream (read by the sink, or dropped at its
    // latest-mode input when it was late).
    assert_eq!(identity["items_out"], 40, "{identity}");
    let sink = stream(&stats, "null0");
    let seen = sink["items_in"].as_u64().unwrap() + sink["drops"].as_u64().unwrap();
    assert_eq!(seen, 40, "{sink}");
    // Given up, identity no longer feeds the only sink: the sink ends, and with it the run,
    // before the 400 frames asked for.
    assert_eq!(stream(&stats, "null0")["state"], "ended", "{stats}");
    assert!(
        stream(&stats, "testpattern0")["items_out"]
            .as_u64()
            .unwrap()
            < 400,
        "{stats}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("error: handler 'identity0' (Identity) failed"),
        "{err}"
    );
}

/// No cap: the stream is restarted after every panic and is still alive at the end.
#[test]
fn an_uncapped_policy_keeps_the_pipeline_going() {
    let out = launch(
        "testpattern size=32x32 ! \
         identity panic-after=15 restart=on-failure max-restarts=-1 ! null",
        // 2 s at 200 fps: room for restarts on a loaded machine (CI saw a 414 ms stall).
        &["--frames", "400"],
    );
    let stats = stats(&out);
    let identity = stream(&stats, "identity0");
    let restarts = identity["restarts"].as_u64().unwrap();
    assert!(restarts >= 2, "{identity}");
    assert_ne!(identity["state"], "failed", "{identity}");
    // Frames kept flowing after the first failure.
    assert!(
        stream(&stats, "null0")["items_in"].as_u64().unwrap() > 30,
        "{stats}"
    );
    // Errors along the way make the run exit 1, even though the stream recovered.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// `restart=never` (also the default): the first panic leaves the stream failed, with no
/// restart; downstream ends with what passed.
#[test]
fn restart_never_leaves_the_stream_failed() {
    for options in ["restart=never", ""] {
        let pipeline = format!("testpattern size=32x32 ! identity panic-after=10 {options} ! null");
        let out = launch(&pipeline, &["--frames", "60"]);
        assert_eq!(out.status.code(), Some(1), "{pipeline}: {}", stderr(&out));
        let stats = stats(&out);
        let identity = stream(&stats, "identity0");
        assert_eq!(identity["restarts"], 0, "{pipeline}: {identity}");
        assert_eq!(identity["state"], "failed", "{pipeline}: {identity}");
        assert_eq!(identity["items_out"], 10, "{pipeline}: {identity}");
    }
}

/// A run without failures shows `restarts: 0` for every stream and exits 0; drops by
/// `identity drop-probability` are no failure.
#[test]
fn restarts_are_in_the_json_of_every_stream() {
    let out = launch(
        "testpattern size=32x32 ! identity drop-probability=0.5 seed=3 ! null",
        &["--frames", "100"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = stats(&out);
    for s in stats["streams"].as_array().unwrap() {
        assert_eq!(s["restarts"], 0, "{s}");
    }
    let identity = stream(&stats, "identity0");
    let passed = identity["items_out"].as_u64().unwrap();
    assert!((20..=80).contains(&passed), "{identity}");
}

/// A bad option value is refused before anything runs: exit 2, naming the element, the option
/// and the words it takes.
#[test]
fn a_bad_option_is_refused_at_build() {
    let out = launch("testpattern ! identity restart=sometimes ! null", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "identity0",
        "restart=sometimes",
        "never, on-failure, always",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
}

/// `inspect` lists the stream options once, after a handler's own properties.
#[test]
fn inspect_shows_the_stream_options() {
    let text = stdout(&streamlib(&["inspect", "identity"]));
    let options = text
        .find("Stream options")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text[..options].contains("panic-after"), "{text}");
    assert!(text[options..].contains("max-restarts"), "{text}");
    assert_eq!(text.matches("max-restarts").count(), 1, "{text}");
    let json = stats(&streamlib(&["inspect", "identity", "--json"]));
    assert_eq!(json["stream_options"][0]["name"], "restart", "{json}");
}
