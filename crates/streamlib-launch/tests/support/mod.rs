//! What several launch test files check the same way.
#![allow(dead_code, reason = "each test binary uses part of it")]

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

/// Each pipeline `text` is refused when built, its error naming `property`.
pub fn assert_refused_naming(cases: &[(&str, &str)]) {
    for (text, property) in cases {
        let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(1);
        let err = match build(&Registry::builtin(), &desc, StreamRuntime::new(clock)) {
            Ok(_) => panic!("{text}: built, but should be refused naming `{property}`"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(property), "{text}: {err}");
    }
}
