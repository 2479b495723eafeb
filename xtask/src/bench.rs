//! `cargo xtask bench`: the criterion benches, in the optimised bench profile.

use anyhow::Result;

use crate::command::Command;

/// Runs `cargo bench --workspace` followed by `args` unchanged, so both cargo options and
/// criterion options after `--` (`-- --save-baseline main`) work. When `args` pick packages
/// (`-p streamlib-clock`), `--workspace` is left out, since it would override them.
pub fn run(args: &[String]) -> Result<()> {
    let scope = if picks_packages(args) {
        None
    } else {
        Some("--workspace")
    };
    Command::cargo()
        .arg("bench")
        .args(scope)
        .args(args.iter().cloned())
        .run()
}

/// Whether cargo's own arguments (those before `--`) select packages.
fn picks_packages(args: &[String]) -> bool {
    args.iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg == "--package" || arg.starts_with("--package="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn package_options_replace_the_workspace() {
        assert!(picks_packages(&words("-p streamlib-clock")));
        assert!(picks_packages(&words(
            "-pstreamlib-clock --bench clock_jitter"
        )));
        assert!(picks_packages(&words("--package=streamlib-clock")));
        assert!(picks_packages(&words("--package streamlib-clock")));
    }

    #[test]
    fn criterion_arguments_do_not_pick_packages() {
        assert!(!picks_packages(&[]));
        assert!(!picks_packages(&words("-- --save-baseline main -p")));
        assert!(!picks_packages(&words("--bench clock_jitter")));
    }
}
