//! What a pipeline may reach: which folders it may read and write, whether it may leave the
//! loopback interface, which FFmpeg protocols its file handlers may open.
//!
//! A [`Policy`] is checked when a pipeline is validated and again when it is built, before a
//! handler opens anything. `streamlib launch` confines files to the current folder (and the
//! `--allow-read` / `--allow-write` folders); `streamlib mcp` starts from nothing at all and
//! keeps the network on loopback unless `--allow-network` is given. The library's own
//! [`build`](crate::build) uses [`Policy::default`]: files anywhere, any address, but still
//! regular files only and FFmpeg's `file` protocol only.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// What a property gives a handler access to, so that the policy can check it before the
/// handler runs (see [`PropertySpec::access`](crate::PropertySpec)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Nothing outside the process.
    #[default]
    None,
    /// A file the handler reads (checked against the read allow-list).
    Read,
    /// A file the handler creates or replaces (checked against the write allow-list).
    Write,
    /// A number that, when set (not negative), makes the handler end the whole process: a
    /// crash test such as `identity abort-after=` or `segfault-after=`. Allowed by a policy
    /// with crash tests ([`Policy::allow_crash_tests`]), or on an element that runs
    /// `@process`, where only a child process ends.
    Crash,
}

impl Access {
    /// Whether it is [`Access::None`].
    pub fn is_none(&self) -> bool {
        *self == Access::None
    }
}

/// Folders a pipeline may use: anywhere, or inside these (canonical) folders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Folders {
    Anywhere,
    Inside(Vec<PathBuf>),
}

impl Folders {
    fn contains(&self, path: &Path) -> bool {
        match self {
            Folders::Anywhere => true,
            Folders::Inside(dirs) => dirs.iter().any(|dir| path.starts_with(dir)),
        }
    }

    fn add(&mut self, dir: PathBuf) {
        if let Folders::Inside(dirs) = self
            && !dirs.contains(&dir)
        {
            dirs.push(dir);
        }
    }
}

/// Pseudo-filesystems whose "files" are devices, process state or kernel knobs: never
/// opened, whatever the allow-lists say.
const SPECIAL_ROOTS: &[&str] = &["/proc", "/sys", "/dev"];

/// Why the policy refused a path or an address. Each message names the rule and the flag
/// that relaxes it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file is outside every folder the pipeline may read.
    #[error("`{path}` is outside the read allow-list (--allow-read DIR)")]
    OutsideRead {
        /// The path as given.
        path: String,
    },
    /// The file is outside every folder the pipeline may write.
    #[error("`{path}` is outside the write allow-list (--allow-write DIR)")]
    OutsideWrite {
        /// The path as given.
        path: String,
    },
    /// A device, FIFO, socket, folder or a file under `/proc`, `/sys` or `/dev`.
    #[error(
        "`{path}` is not a regular file (devices, FIFOs, sockets, folders and anything under /proc, /sys or /dev are refused)"
    )]
    NotRegular {
        /// The path as given.
        path: String,
    },
    /// A URL (`udp://…`, `tcp:…`, `pipe:1`) where a file was expected.
    #[error(
        "`{location}` names FFmpeg's `{scheme}:` protocol; only plain files are allowed (protocols allowed: {allowed})"
    )]
    Protocol {
        /// The location as given.
        location: String,
        /// The protocol it names.
        scheme: String,
        /// The protocols the policy allows.
        allowed: String,
    },
    /// A location naming an allowed protocol while the network is not allowed: FFmpeg's
    /// protocols reach past the policy (see [`Policy::allow_protocol`]).
    #[error(
        "`{location}` names FFmpeg's `{scheme}:` protocol, which reaches the network; it is allowed only with --allow-network"
    )]
    NeedsNetwork {
        /// The location as given.
        location: String,
        /// The protocol it names.
        scheme: String,
    },
    /// An allowed file that cannot be opened, or a file to create whose folder is missing.
    #[error("`{path}` cannot be used: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// A folder given to `--allow-read` / `--allow-write` that is not one.
    #[error("{flag} `{path}`: not a folder ({source})")]
    BadFolder {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// A crash test outside a child process, while the policy does not allow them.
    #[error(
        "`{value}` would end the whole process (a crash test); run the element @process, where only its child ends, or allow crash tests (--allow-crash-tests)"
    )]
    CrashTest {
        /// The value as given.
        value: String,
    },
    /// A negative `nice=` (a child above the parent's priority) under a policy that does not
    /// allow it.
    #[error(
        "nice={nice} would run the child above normal priority; this policy allows 0 to 19 (a lower priority) only"
    )]
    RaisedPriority {
        /// The value as given.
        nice: i32,
    },
    /// A non-loopback address while the network is confined to loopback.
    #[error("{what} {address} is not a loopback address (--allow-network allows other addresses)")]
    NotLoopback {
        /// `destination`, `bind address`, `multicast group`.
        what: &'static str,
        /// The address.
        address: String,
    },
}

/// What a pipeline may reach: folders it may read and write, whether it may leave loopback,
/// which FFmpeg protocols its file handlers may open. Checked when a pipeline is validated
/// and again when it is built, before a handler opens anything. `streamlib launch` allows the
/// current folder; `streamlib mcp` starts from [`Policy::confined`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    read: Folders,
    write: Folders,
    network: bool,
    protocols: Vec<String>,
    crash_tests: bool,
    raise_priority: bool,
}

impl Default for Policy {
    /// Files anywhere, any address; regular files only, FFmpeg's `file` protocol only.
    fn default() -> Self {
        Self {
            read: Folders::Anywhere,
            write: Folders::Anywhere,
            network: true,
            protocols: vec!["file".to_owned()],
            crash_tests: true,
            raise_priority: true,
        }
    }
}

impl Policy {
    /// Nothing to read, nothing to write, loopback only, no crash tests outside `@process`:
    /// what `streamlib mcp` starts from.
    pub fn confined() -> Self {
        Self {
            read: Folders::Inside(Vec::new()),
            write: Folders::Inside(Vec::new()),
            network: false,
            protocols: vec!["file".to_owned()],
            crash_tests: false,
            raise_priority: false,
        }
    }

    /// Whether crash tests ([`Access::Crash`]) may end the whole process, or only run on
    /// `@process` elements (the default of [`Policy::confined`]).
    pub fn allow_crash_tests(mut self, allow: bool) -> Self {
        self.crash_tests = allow;
        self
    }

    /// Checks a crash-test property's value `text` for an element that runs `@process`
    /// (`isolated`) or not.
    pub fn check_crash(&self, text: &str, isolated: bool) -> Result<(), PolicyError> {
        let unset = text.trim().parse::<i64>().is_ok_and(|n| n < 0);
        if unset || isolated || self.crash_tests {
            return Ok(());
        }
        Err(PolicyError::CrashTest {
            value: text.to_owned(),
        })
    }

    /// Checks an `@process` element's `nice=`: a negative one (above the parent's priority,
    /// possible with CAP_SYS_NICE) only where the policy allows it; [`Policy::confined`] does
    /// not, so an agent cannot starve the machine with a child it starts.
    pub fn check_nice(&self, nice: i32) -> Result<(), PolicyError> {
        if nice >= 0 || self.raise_priority {
            return Ok(());
        }
        Err(PolicyError::RaisedPriority { nice })
    }

    /// Reading and writing inside the current folder, any address: `streamlib launch`'s
    /// default.
    pub fn current_dir() -> Result<Self, PolicyError> {
        let mut policy = Self {
            network: true,
            raise_priority: true,
            ..Self::confined()
        };
        policy = policy.allow_read(".")?.allow_write(".")?;
        Ok(policy)
    }

    /// Also lets the pipeline read files inside `dir` (and its subfolders).
    pub fn allow_read(mut self, dir: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let dir = folder("--allow-read", dir.as_ref())?;
        self.read.add(dir);
        Ok(self)
    }

    /// Also lets the pipeline create and replace files inside `dir` (and its subfolders).
    pub fn allow_write(mut self, dir: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let dir = folder("--allow-write", dir.as_ref())?;
        self.write.add(dir);
        Ok(self)
    }

    /// Lets network handlers send to, bind and join any address (not only loopback).
    pub fn allow_network(mut self, allow: bool) -> Self {
        self.network = allow;
        self
    }

    /// Also lets file handlers open FFmpeg's `protocol` (e.g. `udp`): locations naming it
    /// reach FFmpeg as they are, unchecked against the folders.
    ///
    /// This grants network reach: FFmpeg's protocols other than `file` open sockets, pipes or
    /// other files by themselves, out of the policy's sight. So they are honoured only while
    /// the network is allowed ([`Policy::allow_network`]); under a policy without network, a
    /// location naming any protocol but `file` is refused ([`PolicyError::NeedsNetwork`])
    /// and [`Policy::protocol_whitelist`] stays `file`.
    pub fn allow_protocol(mut self, protocol: &str) -> Self {
        if !self.protocols.iter().any(|p| p == protocol) {
            self.protocols.push(protocol.to_owned());
        }
        self
    }

    /// FFmpeg's `protocol_whitelist` for file handlers: `file` unless more were allowed
    /// (and the network is allowed: see [`Policy::allow_protocol`]).
    pub fn protocol_whitelist(&self) -> String {
        if self.network {
            self.protocols.join(",")
        } else {
            "file".to_owned()
        }
    }

    /// Whether network handlers may use addresses other than loopback.
    pub fn network_allowed(&self) -> bool {
        self.network
    }

    /// Checks a file to read; returns the canonical path to open (symlinks resolved, so what
    /// is opened is what was checked).
    pub fn check_read(&self, location: &str) -> Result<String, PolicyError> {
        if let Some(url) = self.url(location)? {
            return Ok(url);
        }
        let path = strip_file_scheme(location);
        // The lexical check first, so that nothing about a file outside the allow-list (not
        // even whether it exists) shows in an error.
        let lexical = absolute(path).map_err(|source| io_error(location, source))?;
        refuse_special(location, &lexical)?;
        if !self.read.contains(&lexical) {
            return Err(PolicyError::OutsideRead {
                path: location.to_owned(),
            });
        }
        let canonical = std::fs::canonicalize(&lexical).map_err(|e| io_error(location, e))?;
        refuse_special(location, &canonical)?;
        if !self.read.contains(&canonical) {
            return Err(PolicyError::OutsideRead {
                path: location.to_owned(),
            });
        }
        let metadata = std::fs::metadata(&canonical).map_err(|e| io_error(location, e))?;
        if !metadata.is_file() {
            return Err(PolicyError::NotRegular {
                path: location.to_owned(),
            });
        }
        Ok(canonical.to_string_lossy().into_owned())
    }

    /// Checks a file to create or replace; returns the path to open: its folder canonical,
    /// its name as given. An existing file must be a regular file (not a symlink).
    pub fn check_write(&self, location: &str) -> Result<String, PolicyError> {
        if let Some(url) = self.url(location)? {
            return Ok(url);
        }
        let path = strip_file_scheme(location);
        let lexical = absolute(path).map_err(|source| io_error(location, source))?;
        refuse_special(location, &lexical)?;
        if !self.write.contains(&lexical) {
            return Err(PolicyError::OutsideWrite {
                path: location.to_owned(),
            });
        }
        let (Some(parent), Some(name)) = (lexical.parent(), lexical.file_name()) else {
            return Err(PolicyError::NotRegular {
                path: location.to_owned(),
            });
        };
        let parent = std::fs::canonicalize(parent).map_err(|e| io_error(location, e))?;
        let target = parent.join(name);
        refuse_special(location, &target)?;
        if !self.write.contains(&target) {
            return Err(PolicyError::OutsideWrite {
                path: location.to_owned(),
            });
        }
        match std::fs::symlink_metadata(&target) {
            Ok(metadata) if !metadata.is_file() => Err(PolicyError::NotRegular {
                path: location.to_owned(),
            }),
            Ok(_) => Ok(target.to_string_lossy().into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(target.to_string_lossy().into_owned())
            }
            Err(e) => Err(io_error(location, e)),
        }
    }

    /// Checks an address a handler sends to.
    pub fn check_destination(&self, address: SocketAddr) -> Result<(), PolicyError> {
        self.check_ip("destination", address.ip(), &address.to_string())
    }

    /// Checks a local address a handler binds (the unspecified address binds every interface,
    /// so it is not loopback).
    pub fn check_bind(&self, address: SocketAddr) -> Result<(), PolicyError> {
        self.check_ip("bind address", address.ip(), &address.to_string())
    }

    /// Checks a multicast group a handler joins.
    pub fn check_group(&self, group: IpAddr) -> Result<(), PolicyError> {
        self.check_ip("multicast group", group, &group.to_string())
    }

    fn check_ip(&self, what: &'static str, ip: IpAddr, shown: &str) -> Result<(), PolicyError> {
        if self.network || ip.is_loopback() {
            Ok(())
        } else {
            Err(PolicyError::NotLoopback {
                what,
                address: shown.to_owned(),
            })
        }
    }

    /// `Some(location)` for a URL whose protocol the policy allows, an error for one it does
    /// not, `None` for a plain path.
    fn url(&self, location: &str) -> Result<Option<String>, PolicyError> {
        let Some(scheme) = scheme(location) else {
            return Ok(None);
        };
        if scheme == "file" {
            return Ok(None);
        }
        if self.protocols.iter().any(|p| p == scheme) {
            if !self.network {
                return Err(PolicyError::NeedsNetwork {
                    location: location.to_owned(),
                    scheme: scheme.to_owned(),
                });
            }
            return Ok(Some(location.to_owned()));
        }
        Err(PolicyError::Protocol {
            location: location.to_owned(),
            scheme: scheme.to_owned(),
            allowed: self.protocol_whitelist(),
        })
    }
}

/// FFmpeg's protocol names (and a few it had or may add): `name:` before a location is read as
/// one of these, never as a file name. Erring on the side of refusing, this lists more than
/// any one build of FFmpeg has.
const FFMPEG_PROTOCOLS: &[&str] = &[
    "async",
    "bluray",
    "cache",
    "concat",
    "concatf",
    "crypto",
    "data",
    "dtls",
    "fd",
    "ffrtmpcrypt",
    "ffrtmphttp",
    "file",
    "ftp",
    "gopher",
    "gophers",
    "hls",
    "http",
    "httpproxy",
    "https",
    "icecast",
    "ipfs",
    "ipns",
    "librist",
    "libsmbclient",
    "libsrt",
    "libssh",
    "libzmq",
    "md5",
    "mmsh",
    "mmst",
    "pipe",
    "prompeg",
    "rist",
    "rtmp",
    "rtmpe",
    "rtmps",
    "rtmpt",
    "rtmpte",
    "rtmpts",
    "rtp",
    "rtsp",
    "rtsps",
    "sctp",
    "sftp",
    "smb",
    "srt",
    "srtp",
    "subfile",
    "tcp",
    "tee",
    "tls",
    "udp",
    "udplite",
    "unix",
    "ws",
    "wss",
    "zmq",
];

/// The protocol a location names the way FFmpeg reads it (`udp://…`, `tcp:…`, `pipe:1`,
/// `file:x.mp4`, `subfile,,0,9,:x`): FFmpeg takes the letters, digits, `+`, `-`, `.` before a
/// `:` as a protocol name. Any `name://` counts, and `name:` when `name` is one of FFmpeg's
/// protocols (`rtmp…` and `name+name` combinations of them included); anything else
/// (`rec-12:30.mp4`) is a relative file name, which the policy hands to FFmpeg as an absolute
/// path so that FFmpeg reads it as a file too.
fn scheme(location: &str) -> Option<&str> {
    if location
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("subfile,"))
        && location.contains(':')
    {
        return Some("subfile");
    }
    let (scheme, rest) = location.split_once(':')?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return None;
    }
    let lower = scheme.to_ascii_lowercase();
    let known = |name: &str| name.starts_with("rtmp") || FFMPEG_PROTOCOLS.contains(&name);
    let protocol = rest.starts_with("//") && scheme.len() >= 2 || lower.split('+').any(known);
    protocol.then_some(scheme)
}

fn strip_file_scheme(location: &str) -> &str {
    match scheme(location) {
        Some("file") => location.split_once(':').map_or(location, |(_, rest)| {
            rest.strip_prefix("//").unwrap_or(rest)
        }),
        _ => location,
    }
}

/// `path` made absolute against the current folder, `.` and `..` resolved by name (nothing is
/// looked up on disk).
fn absolute(path: &str) -> io::Result<PathBuf> {
    if path.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    }
    let path = Path::new(path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn refuse_special(location: &str, path: &Path) -> Result<(), PolicyError> {
    if SPECIAL_ROOTS.iter().any(|root| path.starts_with(root)) {
        Err(PolicyError::NotRegular {
            path: location.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn folder(flag: &'static str, dir: &Path) -> Result<PathBuf, PolicyError> {
    let bad = |source| PolicyError::BadFolder {
        flag,
        path: dir.display().to_string(),
        source,
    };
    let canonical = std::fs::canonicalize(dir).map_err(bad)?;
    if canonical.is_dir() {
        Ok(canonical)
    } else {
        Err(bad(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )))
    }
}

fn io_error(location: &str, source: io::Error) -> PolicyError {
    PolicyError::Io {
        path: location.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("streamlib-policy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        std::fs::canonicalize(&dir).unwrap_or(dir)
    }

    #[test]
    fn urls_are_refused_unless_their_protocol_is_allowed() {
        let policy = Policy::default();
        for url in [
            "udp://127.0.0.1:9",
            "tcp://0.0.0.0:9?listen",
            "pipe:1",
            "http://x/y",
        ] {
            let err = policy.check_write(url).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("protocol")),
                "{url}: {err:?}"
            );
        }
        assert!(
            policy
                .clone()
                .allow_protocol("udp")
                .check_write("udp://1.2.3.4:9")
                .is_ok()
        );
        assert_eq!(Policy::default().protocol_whitelist(), "file");
    }

    #[test]
    fn allowed_protocols_need_the_network() {
        let confined = Policy::confined().allow_protocol("udp");
        for url in ["udp://127.0.0.1:9", "udp://10.0.0.1:9"] {
            assert!(
                matches!(
                    confined.check_write(url),
                    Err(PolicyError::NeedsNetwork { .. })
                ),
                "{url}"
            );
        }
        assert_eq!(confined.protocol_whitelist(), "file");
        let open = confined.allow_network(true);
        assert!(open.check_write("udp://10.0.0.1:9").is_ok());
        assert_eq!(open.protocol_whitelist(), "file,udp");
    }

    #[test]
    fn only_ffmpeg_protocols_count_as_protocols() {
        for (location, protocol) in [
            ("rec-12:30.mp4", None),
            ("a:b", None),
            ("udp:127.0.0.1:9", Some("udp")),
            ("subfile,,0,9,:x", Some("subfile")),
            ("concat:a|b", Some("concat")),
            ("crypto+udp:x", Some("crypto+udp")),
            ("rtmpx:x", Some("rtmpx")),
            ("Pipe:1", Some("Pipe")),
            ("weird://x", Some("weird")),
            ("file:x", Some("file")),
        ] {
            assert_eq!(scheme(location), protocol, "{location}");
        }
        // A relative name with a colon is a file of the current folder, handed to FFmpeg as
        // an absolute path (which FFmpeg cannot read as a protocol).
        let here = Policy::current_dir().expect("the current folder");
        let path = here.check_write("rec-12:30.mp4").expect("a file name");
        assert!(
            path.starts_with('/') && path.ends_with("/rec-12:30.mp4"),
            "{path}"
        );
    }

    #[test]
    fn special_files_are_refused_even_anywhere() {
        let policy = Policy::default();
        for path in [
            "/dev/stdin",
            "/proc/self/environ",
            "/dev/../dev/null",
            "/sys/kernel",
        ] {
            assert!(
                matches!(policy.check_read(path), Err(PolicyError::NotRegular { .. })),
                "{path}"
            );
        }
        assert!(matches!(
            policy.check_write("/dev/stdout"),
            Err(PolicyError::NotRegular { .. })
        ));
        let dir = temp("dir");
        assert!(matches!(
            policy.check_read(&dir.display().to_string()),
            Err(PolicyError::NotRegular { .. })
        ));
    }

    #[test]
    fn dot_dot_and_symlinks_cannot_leave_the_allow_list() {
        let inside = temp("inside");
        let outside = temp("outside");
        std::fs::write(outside.join("secret"), "x").ok();
        std::fs::write(inside.join("ok"), "x").ok();
        let link = inside.join("link");
        std::fs::remove_file(&link).ok();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("secret"), &link).ok();
        let policy = Policy::confined()
            .allow_read(&inside)
            .and_then(|p| p.allow_write(&inside))
            .expect("the folder exists");
        let escape = format!(
            "{}/../{}/secret",
            inside.display(),
            outside
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        assert!(matches!(
            policy.check_read(&escape),
            Err(PolicyError::OutsideRead { .. })
        ));
        assert!(matches!(
            policy.check_write(&escape),
            Err(PolicyError::OutsideWrite { .. })
        ));
        #[cfg(unix)]
        {
            assert!(matches!(
                policy.check_read(&link.display().to_string()),
                Err(PolicyError::OutsideRead { .. })
            ));
            assert!(matches!(
                policy.check_write(&link.display().to_string()),
                Err(PolicyError::NotRegular { .. })
            ));
        }
        assert!(
            policy
                .check_read(&inside.join("ok").display().to_string())
                .is_ok()
        );
        assert!(
            policy
                .check_write(&inside.join("new.mkv").display().to_string())
                .is_ok()
        );
        std::fs::remove_dir_all(&inside).ok();
        std::fs::remove_dir_all(&outside).ok();
    }

    #[test]
    fn confined_networks_stay_on_loopback() {
        let policy = Policy::confined();
        let addr = |s: &str| s.parse::<SocketAddr>().expect("an address");
        assert!(policy.check_destination(addr("127.0.0.1:5004")).is_ok());
        assert!(policy.check_destination(addr("[::1]:5004")).is_ok());
        assert!(policy.check_destination(addr("10.0.0.1:5004")).is_err());
        assert!(policy.check_bind(addr("0.0.0.0:5004")).is_err());
        assert!(
            policy
                .check_group("239.1.1.1".parse().expect("an IP"))
                .is_err()
        );
        assert!(
            policy
                .allow_network(true)
                .check_destination(addr("10.0.0.1:5004"))
                .is_ok()
        );
    }
}
