//! `cargo xtask lint`: the static half of the CI gate, stopping at the first failure.

use anyhow::Result;

use crate::command::Command;
use crate::{changelog, deps, layers, msrv, workspace};

/// Formatting, clippy, rustdoc, each crate on its own, then the layer and dependency rules,
/// the minimum Rust version and the changelog's shape.
pub fn run() -> Result<()> {
    Command::cargo().args(["fmt", "--all", "--check"]).run()?;
    Command::cargo()
        .args(["clippy", "--workspace", "--all-targets", "--all-features"])
        .args(["--", "-D", "warnings"])
        .run()?;
    Command::cargo()
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .run()?;
    // Built together, crates unify their features: one crate forgetting to enable a feature of a
    // dependency compiles because a sibling enabled it. Built alone, with defaults off, it cannot.
    for krate in workspace::package_names()? {
        Command::cargo()
            .args(["check", "-p", &krate, "--no-default-features"])
            .run()?;
    }
    layers::run()?;
    deps::run()?;
    msrv::run()?;
    changelog::run()
}
