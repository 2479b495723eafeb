//! `cargo xtask loom`: the loom model checks of streamlib-buffers' lock-free code.
//!
//! `--cfg loom` swaps every atomic in the crate for loom's, which changes what every dependency
//! is built with, so the models build in their own target directory (`target/loom`) and leave
//! the normal build's cache alone. Release mode: loom explores thousands of interleavings and
//! the debug build is about ten times slower. `cargo xtask test` runs this after the tests.

use anyhow::Result;

use crate::command::Command;

/// Builds and runs `crates/streamlib-buffers/tests/loom.rs` under loom.
pub fn run() -> Result<()> {
    let target_dir = crate::workspace::root()?.join("target").join("loom");
    Command::cargo()
        .args([
            "test",
            "-p",
            "streamlib-buffers",
            "--release",
            "--test",
            "loom",
        ])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", &target_dir.to_string_lossy())
        .run()
}
