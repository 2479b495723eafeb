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

use std::io;
use std::path::{Path, PathBuf};
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

    /// A veth pair: interface `a.1` in namespace `a.0`, its peer `b.1` in `b.0` (the same
    /// namespace or another); both down until [`up`](Self::up) or
    /// [`address`](Self::address).
    pub fn veth(&self, a: (&str, &str), b: (&str, &str)) -> bool {
        run(&[
            "ip", "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns",
            b.0,
        ])
    }

    /// Brings `iface` in `ns` up.
    pub fn up(&self, ns: &str, iface: &str) -> bool {
        self.exec(ns, &["ip", "link", "set", iface, "up"])
    }

    /// Gives `iface` in `ns` the address `cidr` (`10.0.0.1/24`) and brings it up.
    pub fn address(&self, ns: &str, iface: &str, cidr: &str) -> bool {
        self.exec(ns, &["ip", "addr", "add", cidr, "dev", iface]) && self.up(ns, iface)
    }

    /// Starts `ptp4l` (software timestamps, UDP over IPv4) as the grandmaster on `iface` in
    /// `ns`, with `config` (see [`ptp4l_config`]) and its output discarded.
    pub fn ptp4l_grandmaster(&self, ns: &str, iface: &str, config: &Path) -> io::Result<Reaper> {
        Command::new("ip")
            .args(["netns", "exec", ns, PTP4L, "-S", "-4", "-f"])
            .arg(config)
            .args(["-i", iface])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Reaper)
    }
}

/// Where Debian's linuxptp installs `ptp4l`.
pub const PTP4L: &str = "/usr/sbin/ptp4l";

/// `ptp4l` settings for tests: 8 syncs, 4 announces and up to 8 delay requests a second, and
/// 3 missed announces to time out, so that slaves lock in about 2 s rather than the
/// defaults' tens of seconds.
pub const PTP4L_FAST_CONFIG: &str = "[global]\nlogSyncInterval -3\nlogAnnounceInterval -2\n\
     logMinDelayReqInterval -3\nannounceReceiptTimeout 3\n";

/// Writes [`PTP4L_FAST_CONFIG`] to a file in the temporary directory named after `tag` and
/// this process, plus `extra` lines; returns its path.
pub fn ptp4l_config(tag: &str, extra: &str) -> io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{tag}-{}.cfg", std::process::id()));
    std::fs::write(&path, format!("{PTP4L_FAST_CONFIG}{extra}"))?;
    Ok(path)
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
        .find(|p| !Path::new(p).exists())
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
