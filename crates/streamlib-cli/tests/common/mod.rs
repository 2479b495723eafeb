//! What the shell tests share: running the real `streamlib` binary and reading its `--json`.
#![allow(dead_code, reason = "each test binary uses some of these")]

use std::process::{Command, Output};

/// Runs `streamlib ARGS` in the temporary folder (`launch` reads and writes only inside its
/// current folder).
pub fn streamlib(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamlib"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the streamlib binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON on stdout, whatever the exit status (a failed run prints its stats too).
pub fn stats(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

/// One stream's entry in `--json` stats.
pub fn stream<'a>(stats: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    stats["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stream {id} in {stats}"))
}
