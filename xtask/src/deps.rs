//! `cargo xtask deps`: heavy backends stay out of the crates that must not carry them.
//!
//! The bottom layers are meant to build in seconds and run anywhere, so an async runtime, a GPU
//! stack or FFmpeg arriving there (directly, through another crate, or through a feature) is a
//! bug even when everything still compiles. `cargo tree` is asked for each crate's whole normal
//! and build tree, with every feature on and for every target, so nothing hides behind a
//! feature flag or a `cfg(target_os)`.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::command::Command;
use crate::workspace;

/// The packages none of the core crates may pull in.
const HEAVY_BACKENDS: &[&str] = &[
    "tokio",
    "wgpu",
    "wgpu-core",
    "wgpu-hal",
    "ffmpeg-next",
    "ffmpeg-sys-next",
];

/// Each guarded crate and the packages its tree must not contain. Add a row when a new crate
/// must stay light.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("streamlib-buffers", HEAVY_BACKENDS),
    ("streamlib-clock", HEAVY_BACKENDS),
    ("streamlib-ports", HEAVY_BACKENDS),
    // A PTP clock and the RTP path are small socket code: no executor, GPU or codec.
    ("streamlib-ptp", HEAVY_BACKENDS),
    ("streamlib-net", HEAVY_BACKENDS),
    // Audio processing is plain DSP on pooled buffers: no executor, GPU or codec.
    ("streamlib-handlers-audio", HEAVY_BACKENDS),
];

/// Checks every guarded crate that exists, failing with each forbidden package found.
pub fn run() -> Result<()> {
    let members = workspace::package_names()?;
    let mut failures = Vec::new();
    for &(krate, forbidden) in FORBIDDEN {
        if !members.iter().any(|member| member == krate) {
            println!("deps: skipping {krate}: it is not in the workspace yet");
            continue;
        }
        let tree = Command::cargo()
            .args(["tree", "-p", krate, "-e", "normal,build"])
            .args(["--prefix", "none", "--format", "{p}"])
            .args(["--all-features", "--target", "all"])
            .output()?;
        let found = find_forbidden(&tree, forbidden);
        if found.is_empty() {
            println!("deps: {krate} carries none of {}", forbidden.join(", "));
        }
        for package in found {
            failures.push(format!("{krate} must not depend on {package}"));
        }
    }
    if !failures.is_empty() {
        eprintln!("dependency check failed:");
        for failure in &failures {
            eprintln!("  {failure}");
        }
        eprintln!(
            "  (see how it gets there: cargo tree -e normal,build --all-features --target all \
             -p <crate> -i <package>)"
        );
        bail!("{} forbidden dependencies", failures.len());
    }
    Ok(())
}

/// Picks out of `cargo tree --prefix none --format {p}` output (one `name vX.Y.Z [...]` per
/// line) the packages whose name is exactly one of `forbidden`, as `name vX.Y.Z`, each once.
pub fn find_forbidden(tree: &str, forbidden: &[&str]) -> BTreeSet<String> {
    tree.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            forbidden.contains(&name).then(|| match words.next() {
                Some(version) => format!("{name} {version}"),
                None => name.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "\
streamlib-ports v0.1.0 (/w/crates/streamlib-ports)
streamlib-buffers v0.1.0 (/w/crates/streamlib-buffers)
crossbeam-queue v0.3.14
tokio-macros v2.5.0 (proc-macro)
wgpu-types v25.0.0
tokio v1.54.0
tokio v1.54.0 (*)

";

    #[test]
    fn finds_exact_package_names_once() {
        let found = find_forbidden(TREE, HEAVY_BACKENDS);
        assert_eq!(found, BTreeSet::from(["tokio v1.54.0".to_owned()]));
    }

    #[test]
    fn ignores_packages_that_only_share_a_prefix() {
        let tree = "tokio-macros v2.5.0 (proc-macro)\nwgpu-types v25.0.0\nffmpeg-sys v4.0.0\n";
        assert!(find_forbidden(tree, HEAVY_BACKENDS).is_empty());
    }

    #[test]
    fn finds_every_forbidden_package() {
        let tree = "a v1.0.0\nwgpu-hal v25.0.0\nffmpeg-sys-next v7.1.0\nwgpu v25.0.0\n";
        assert_eq!(
            find_forbidden(tree, HEAVY_BACKENDS),
            BTreeSet::from([
                "ffmpeg-sys-next v7.1.0".to_owned(),
                "wgpu v25.0.0".to_owned(),
                "wgpu-hal v25.0.0".to_owned(),
            ])
        );
    }

    #[test]
    fn every_guarded_crate_forbids_something() {
        for (krate, forbidden) in FORBIDDEN {
            assert!(!forbidden.is_empty(), "{krate} has an empty forbidden list");
        }
    }
}
