//! `cargo xtask fuzz TARGET [SECONDS]`: runs one fuzz target for a long time.
//!
//! The targets are bolero tests (`tests/fuzz.rs` of streamlib-net and streamlib-launch,
//! `slave::fuzz` in streamlib-ptp). `cargo xtask test` runs each of them as an ordinary test
//! on a bounded number of random inputs plus its seed corpus; this task runs one under
//! libFuzzer through `cargo bolero` (coverage-guided, new inputs saved to the target's
//! `__fuzz__/…/corpus/`), or, where cargo-bolero is not installed, as the same test with
//! random inputs for the time asked (not coverage-guided) after saying how to install it.

use anyhow::{Result, bail};

use crate::command::Command;

/// A fuzz target: where it lives and how its test is selected.
struct Target {
    /// The name `cargo xtask fuzz` takes.
    name: &'static str,
    /// Its package.
    package: &'static str,
    /// `--test NAME`, or `None` for the library's unit tests.
    test: Option<&'static str>,
    /// The test's path inside its binary (what bolero and libtest select by).
    path: &'static str,
    /// Features it needs.
    features: &'static str,
    /// What it feeds and checks.
    summary: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "rtp_video_jitter",
        package: "streamlib-net",
        test: Some("fuzz"),
        path: "rtp_video_jitter",
        features: "",
        summary: "RTP + RFC 4175 packet sequences into the video jitter buffer, counters add up",
    },
    Target {
        name: "rtp_audio_jitter",
        package: "streamlib-net",
        test: Some("fuzz"),
        path: "rtp_audio_jitter",
        features: "",
        summary: "ST 2110-30 packet sequences into the audio jitter buffer, counters add up",
    },
    Target {
        name: "sdp_video",
        package: "streamlib-net",
        test: Some("fuzz"),
        path: "sdp_video",
        features: "",
        summary: "ST 2110-20 SDP: parsed within the frame limits or refused, round trips",
    },
    Target {
        name: "sdp_audio",
        package: "streamlib-net",
        test: Some("fuzz"),
        path: "sdp_audio",
        features: "",
        summary: "ST 2110-30 SDP: parsed or refused, round trips",
    },
    Target {
        name: "ptp_slave",
        package: "streamlib-ptp",
        test: None,
        path: "slave::fuzz::ptp_slave",
        features: "",
        summary: "PTP message sequences through the slave's state machine, counters add up",
    },
    Target {
        name: "pipeline_text",
        package: "streamlib-launch",
        test: Some("fuzz"),
        path: "pipeline_text_parse",
        features: "video",
        summary: "pipeline text: parsed or refused, text and JSON round trips, validation",
    },
    Target {
        name: "pipeline_json",
        package: "streamlib-launch",
        test: Some("fuzz"),
        path: "pipeline_json",
        features: "video",
        summary: "pipeline JSON: parsed or refused, round trips, validation",
    },
    Target {
        name: "pipeline_build",
        package: "streamlib-launch",
        test: Some("fuzz"),
        path: "pipeline_build",
        features: "video",
        summary: "contained pipelines (no file, socket or window) validated, built and run",
    },
];

/// Default run length.
const DEFAULT_SECONDS: u64 = 300;

/// `cargo xtask fuzz TARGET [SECONDS]`.
pub fn run(args: &[String]) -> Result<()> {
    let (name, seconds) = match args {
        [name] => (name, DEFAULT_SECONDS),
        [name, seconds] => match seconds.parse::<u64>() {
            Ok(s) if s > 0 => (name, s),
            _ => bail!("SECONDS must be a positive whole number, got `{seconds}`"),
        },
        _ => {
            print_targets();
            bail!("usage: cargo xtask fuzz TARGET [SECONDS] (default {DEFAULT_SECONDS} s)");
        }
    };
    let Some(target) = TARGETS.iter().find(|t| t.name == name.as_str()) else {
        print_targets();
        bail!("unknown fuzz target `{name}`");
    };
    let bolero = Command::cargo().args(["bolero", "--version"]).probe()?;
    if bolero.is_some() {
        return libfuzzer(target, seconds);
    }
    println!(
        "cargo-bolero is not installed: running `{}` as an ordinary test with random inputs \
         for {seconds} s (no coverage guidance). For libFuzzer:\n  \
         apt-get install binutils-dev libunwind-dev && cargo install -f cargo-bolero \
         (needs a nightly toolchain for the sanitizers: rustup toolchain install nightly)",
        target.name
    );
    random(target, seconds)
}

/// `cargo bolero test`: libFuzzer, coverage-guided, growing the corpus.
fn libfuzzer(target: &Target, seconds: u64) -> Result<()> {
    let mut command = Command::cargo().args([
        "bolero",
        "test",
        "--package",
        target.package,
        "--engine",
        "libfuzzer",
        "--time",
    ]);
    command = command.arg(format!("{seconds}s"));
    if !target.features.is_empty() {
        command = command.args(["--features", target.features]);
    }
    if let Some(test) = target.test {
        command = command.args(["--test", test]);
    }
    command.arg(target.path).run()
}

/// The bolero test itself, random inputs for `seconds` (bolero's own environment knobs).
fn random(target: &Target, seconds: u64) -> Result<()> {
    let mut command = Command::cargo().args(["test", "--release", "-p", target.package]);
    if !target.features.is_empty() {
        command = command.args(["--features", target.features]);
    }
    command = match target.test {
        Some(test) => command.args(["--test", test]),
        None => command.arg("--lib"),
    };
    command
        .args(["--", "--exact", target.path, "--nocapture"])
        .env("BOLERO_RANDOM_TEST_TIME_MS", &(seconds * 1000).to_string())
        // Time, not a count: a huge count so the time limit is what ends the run.
        .env("BOLERO_RANDOM_ITERATIONS", &usize::MAX.to_string())
        .run()
}

fn print_targets() {
    println!("fuzz targets:");
    let width = TARGETS.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in TARGETS {
        println!("  {:width$}  {} ({})", t.name, t.summary, t.package);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_unique() {
        for (i, a) in TARGETS.iter().enumerate() {
            assert!(
                TARGETS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }
}
