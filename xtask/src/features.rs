//! `cargo xtask features`: every feature of the crates users combine features of, built on
//! its own, as `cargo hack --each-feature` does it. `check` builds libraries only, so
//! dev-dependencies unify nothing (resolver 3), and no manifest is rewritten (no
//! `--no-dev-deps`), which keeps it safe beside other cargo runs.
//!
//! Built together, crates unify their features, so a feature that forgets to forward to a
//! dependency's feature still compiles in the workspace build (the facade's `file` once gave a
//! registry without `filereader` under `--features launch,file`). Built one feature at a
//! time, with defaults off, it cannot hide.

use anyhow::{Result, bail};

use crate::command::Command;

/// The crates with features that users turn on: the facade, the launch crate and the
/// handler crates.
pub const CRATES: &[&str] = &[
    "streamlib",
    "streamlib-launch",
    "streamlib-handlers-video",
    "streamlib-handlers-file",
    "streamlib-net",
    "streamlib-gpu",
    "streamlib-runtime",
    "streamlib-dispatch",
];

/// Runs `cargo hack check --each-feature` over [`CRATES`].
pub fn run() -> Result<()> {
    if Command::cargo()
        .args(["hack", "--version"])
        .probe()?
        .is_none()
    {
        bail!(
            "cargo-hack is not installed; install it with `cargo install cargo-hack --locked` \
             (.ci/run does)"
        );
    }
    let mut command = Command::cargo()
        .args(["hack", "check", "--each-feature"])
        // Lint already builds every crate with all features (clippy) and with none (check).
        .args(["--exclude-all-features", "--exclude-no-default-features"])
        // The facade's `full` is its every feature: the same build as all features.
        .args(["--skip", "full"]);
    for krate in CRATES {
        command = command.args(["-p", krate]);
    }
    command.run()?;
    // `launch` with each feature that has a launch counterpart: the facade's compile-time
    // checks (`streamlib_launch::compiled`) fail the build if one does not forward.
    for feature in LAUNCH_PAIRS {
        Command::cargo()
            .args([
                "check",
                "-p",
                "streamlib",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("launch,{feature}"))
            .run()?;
    }
    Ok(())
}

/// The facade features that also switch on handlers in `streamlib-launch`.
const LAUNCH_PAIRS: &[&str] = &[
    "video", "file", "net", "ptp", "async", "gpu", "hls", "webrtc", "process",
];
