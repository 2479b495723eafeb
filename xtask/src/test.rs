//! `cargo xtask test`: every test in the workspace; the README's test command.

use anyhow::{Context, Result};

use crate::command::Command;

/// Extra arguments for every test binary, split on whitespace, e.g. `--nocapture` or a name
/// filter. They reach the criterion benches too, which accept `--nocapture`, `--exact` and
/// filters but reject libtest-only flags such as `--test-threads`.
const EXTRA_ARGS_VAR: &str = "STREAMLIB_TEST_ARGS";

/// Unit, integration and example tests plus benches (built in the test profile; criterion runs
/// each bench once as a smoke test), then the doc tests, which `--all-targets` leaves out, then
/// the loom models of the lock-free buffers (their own build, see `loom.rs`), then the Python
/// package's pytest suite (its extension built once into a venv, see `python.rs`).
pub fn run() -> Result<()> {
    let extra = extra_args()?;
    Command::cargo()
        .args(["test", "--workspace", "--all-targets", "--all-features"])
        .args(extra.clone())
        .run()?;
    Command::cargo()
        .args(["test", "--workspace", "--doc", "--all-features"])
        .args(extra)
        .run()?;
    crate::loom::run()?;
    crate::python::test()
}

/// `-- ARGS` from the environment, or nothing when the variable is unset or blank.
fn extra_args() -> Result<Vec<String>> {
    let value = match std::env::var(EXTRA_ARGS_VAR) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {EXTRA_ARGS_VAR}")),
    };
    Ok(test_binary_args(&value))
}

fn test_binary_args(value: &str) -> Vec<String> {
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return words;
    }
    std::iter::once("--".to_owned()).chain(words).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_extra_args_add_nothing() {
        assert!(test_binary_args("  ").is_empty());
    }

    #[test]
    fn extra_args_follow_a_double_dash() {
        assert_eq!(
            test_binary_args(" --nocapture  --test-threads=1"),
            ["--", "--nocapture", "--test-threads=1"]
        );
    }
}
