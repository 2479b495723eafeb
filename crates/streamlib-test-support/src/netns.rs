//! Several test hosts on one machine: network namespaces, commands run in them, child
//! processes that do not outlive the test, and loud skips where the machine cannot do it.
//!
//! ```no_run
//! use streamlib_test_support::netns::{Namespaces, skip_or_fail, unavailable};
//!
//! if let Some(reason) = unavailable(&["/usr/sbin/ptp4l"]) {
//!     return skip_or_fail("my test", "STREAMLIB_REQUIRE_PTP", &reason);
//! }
//! let Some(ns) = Namespaces::create(&["slx-a-1", "slx-b-1"]) else {
//!     return skip_or_fail("my test", "STREAMLIB_REQUIRE_PTP", "ip netns add failed");
//! };
//! assert!(ns.exec("slx-a-1", &["ip", "link", "set", "lo", "up"]));
//! // the namespaces (and the interfaces in them) are deleted when `ns` drops
//! ```

#![allow(
    clippy::print_stderr,
    clippy::panic,
    reason = "test helpers: skips are announced on stderr, required tests fail by panicking"
)]

use std::process::{Child, Command, Stdio};

/// Runs `args[0]` with the rest as arguments, output discarded; whether it succeeded.
pub fn run(args: &[&str]) -> bool {
    let Some((program, rest)) = args.split_first() else {
        return false;
    };
    Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Network namespaces, deleted on drop (with every interface and qdisc in them).
#[derive(Debug)]
pub struct Namespaces(Vec<String>);

impl Namespaces {
    /// Adds a namespace per name, each with its loopback up; `None` (and nothing left behind)
    /// if any step fails.
    pub fn create(names: &[&str]) -> Option<Self> {
        let mut created = Self(Vec::new());
        for name in names {
            if !run(&["ip", "netns", "add", name]) {
                return None;
            }
            created.0.push((*name).to_owned());
            if !created.exec(name, &["ip", "link", "set", "lo", "up"]) {
                return None;
            }
        }
        Some(created)
    }

    /// Runs `args` inside namespace `ns` (`ip netns exec`); whether it succeeded.
    pub fn exec(&self, ns: &str, args: &[&str]) -> bool {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            if !run(&["ip", "netns", "del", ns]) {
                eprintln!("warning: could not delete network namespace {ns}");
            }
        }
    }
}

/// A child process killed and reaped on drop, so a failing test leaves none behind.
#[derive(Debug)]
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why namespace tests cannot run here: not root, no `ip`, or one of `programs` missing.
pub fn unavailable(programs: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces need it)".into());
    }
    if !run(&["ip", "-V"]) {
        return Some("`ip` not installed (package iproute2)".into());
    }
    programs
        .iter()
        .find(|p| !std::path::Path::new(p).exists())
        .map(|p| format!("{p} not installed"))
}

/// Skips `test` with a banner naming `reason`, or panics if the environment variable
/// `require` is `1` (CI sets it where the test must run).
pub fn skip_or_fail(test: &str, require: &str, reason: &str) {
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{test} required ({require}=1) but {reason}");
    }
    eprintln!("\n################################################################");
    eprintln!("## SKIPPED: {test}: {reason}");
    eprintln!("## set {require}=1 to make this a failure");
    eprintln!("################################################################\n");
}
