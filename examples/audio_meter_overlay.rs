//! Audio shown over video: a test pattern with a `spectrum` (bars of a logarithmic sweep)
//! along its bottom half and an `audioscope style=meter` (stereo meters with peak hold) at
//! its right edge, laid on through `compositor`. Both scopes draw on a transparent
//! background, so the picture shows around their bars. Ten seconds as fast as the machine
//! goes, then what each scope drew.
//!
//! The same from the command line:
//! `streamlib launch "<the PIPELINE below>" --clock free --frames 300 --json`.
//!
//! Run: `cargo run --example audio_meter_overlay --features launch,audio`
#![allow(clippy::print_stdout, reason = "an example prints its results")]

use streamlib::launch::{Registry, build, parse};
use streamlib::prelude::*;

/// A 1280 × 720 picture; the spectrum over its lower half, the meters at its right edge.
const PIPELINE: &str = "compositor name=c size=1280x720 layers=3 layer1.y=360 layer2.x=1152 ! null  \
     testpattern size=1280x720 ! c.layer0  \
     audiotestsrc wave=sweep volume=0.5 ! spectrum size=1280x360 bands=64 ! c.layer1  \
     audiotestsrc wave=sine freq=1000 volume=0.5 ! audioscope style=meter size=128x360 ! c.layer2";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let desc = parse(PIPELINE)?;
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(300);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))?;
    let run = built.runtime.run()?;
    println!("{} ticks in {:.2} s", 300, run.elapsed.as_secs_f64());
    for scope in ["spectrum0", "audioscope0"] {
        if let Some(report) = built.controls.report(scope) {
            println!("{scope}: {report}");
        }
    }
    Ok(())
}
