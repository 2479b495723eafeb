//! `cargo xtask loom`: the loom model checks of the lock-free code: streamlib-buffers' ring,
//! pool and queue (`tests/loom.rs`), streamlib-process's shared-memory slot states
//! (`tests/loom.rs`) and streamlib-dispatch's run gate (`gate.rs`'s `loom_models`).
//!
//! `--cfg loom` swaps every atomic in the crate for loom's, which changes what every dependency
//! is built with, so the models build in their own target directory (`target/loom`) and leave
//! the normal build's cache alone. Release mode: loom explores thousands of interleavings and
//! the debug build is about ten times slower. `cargo xtask test` runs this after the tests.

use anyhow::Result;

use crate::command::Command;

/// Each model: the `cargo test` arguments after `test -p`.
const MODELS: &[&[&str]] = &[
    &["streamlib-buffers", "--release", "--test", "loom"],
    &["streamlib-process", "--release", "--test", "loom"],
    // Without default features: the tokio dispatcher has loom paths of its own that would need
    // loom as tokio's dependency, and the model covers the gate every dispatcher shares.
    &[
        "streamlib-dispatch",
        "--no-default-features",
        "--release",
        "--lib",
        "loom_models",
    ],
];

/// Builds and runs every loom model.
pub fn run() -> Result<()> {
    let target_dir = crate::workspace::root()?.join("target").join("loom");
    let target_dir = target_dir.to_string_lossy();
    for model in MODELS {
        Command::cargo()
            .args(["test", "-p"])
            .args(model.iter().copied())
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", &target_dir)
            .run()?;
    }
    Ok(())
}
