//! The Python package (`crates/streamlib-py`): its virtual environment, built by `cargo xtask
//! setup`, and its pytest suite, run by `cargo xtask test`.
//!
//! The extension is built once per test run by `maturin develop` into a venv under the
//! workspace's target folder, with the same target folder and profile as `cargo test`: the
//! dependencies shared with the workspace build are reused, and only the crates whose features
//! differ (the facade, launch, the extension itself) are compiled again.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::command::Command;

/// What the venv holds, pinned. numpy 2.5 needs CPython 3.12; these machines have 3.11, so
/// 2.4, the newest line for 3.10 and 3.11 (the package itself needs only numpy >= 1.23).
pub const PACKAGES: &[&str] = &["maturin==1.16.0", "numpy==2.4.6", "pytest==9.2.0"];

/// The crate maturin builds.
const MANIFEST: &str = "crates/streamlib-py/Cargo.toml";
/// The pytest suite.
const TESTS: &str = "crates/streamlib-py/tests";

/// The target folder cargo uses here (`CARGO_TARGET_DIR`, else `<workspace>/target`).
fn target_dir() -> Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Ok(crate::workspace::root()?.join("target")),
    }
}

/// The venv: `<target>/py-venv`.
pub fn venv() -> Result<PathBuf> {
    Ok(target_dir()?.join("py-venv"))
}

fn venv_bin(name: &str) -> Result<String> {
    Ok(venv()?.join("bin").join(name).display().to_string())
}

/// Creates the venv if missing and installs [`PACKAGES`] into it (a no-op when they are).
pub fn setup() -> Result<()> {
    let venv = venv()?;
    if !venv.join("bin").join("python").is_file() {
        println!("setup: python: creating {}", venv.display());
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv.display().to_string())
            .run()
            .context("creating the Python venv (Debian: apt-get install python3-venv)")?;
    }
    println!(
        "setup: python: {} in {}",
        PACKAGES.join(" "),
        venv.display()
    );
    Command::new(&venv_bin("python")?)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES.iter().copied())
        .run()
}

/// Builds the extension into the venv (`maturin develop`, the test profile's `dev`) and runs
/// the pytest suite.
pub fn test() -> Result<()> {
    setup()?;
    let venv = venv()?.display().to_string();
    let target = target_dir()?.display().to_string();
    Command::new(&venv_bin("maturin")?)
        // With the GPU path (lavapipe where there is no GPU): the workspace build has wgpu
        // already, so it costs little here, and `dispatcher="gpu"` is tested.
        .args([
            "develop",
            "--quiet",
            "--features",
            "gpu",
            "--manifest-path",
            MANIFEST,
        ])
        .env("VIRTUAL_ENV", &venv)
        .env("CARGO_TARGET_DIR", &target)
        .run()?;
    Command::new(&venv_bin("python")?)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS])
        .env("VIRTUAL_ENV", &venv)
        .run()
}
