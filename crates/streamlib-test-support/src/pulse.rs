//! A private PulseAudio server with a null sink, for tests that play and record through real
//! sound-server plumbing on machines without a sound card.
//!
//! [`PulseServer::start`] runs `pulseaudio -n --daemonize=no` in a fresh runtime directory
//! with `module-null-sink sink_name=test` (so the default sink is [`SINK`] and the default
//! source its monitor, [`MONITOR`]) and the native protocol, waits until `pactl info`
//! answers, and kills it on drop. Clients find it through `PULSE_SERVER`
//! ([`PulseServer::envs`]): set it on a child [`Command`]; for code in the test process itself,
//! [`PulseServer::rerun`] runs the calling test again in a child of the test binary with
//! that environment (setting variables in a running multi-threaded test is unsound), where
//! [`PulseChild::current`] finds it.
//!
//! A test that cannot start the server must fail, unless `STREAMLIB_SKIP_AUDIO_DEVICE=1`
//! allows skipping: [`start_or_skip`] does both, and says so loudly when it skips.
//! [`with_server`] wraps the whole dance for a test body. [`MonitorRecording`] records what
//! was played on the null sink, and [`measure_tone`] reads a sine's frequency, level and
//! duration from a recording.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The null sink's name.
pub const SINK: &str = "test";
/// Its monitor source: what was played on [`SINK`].
pub const MONITOR: &str = "test.monitor";
/// Set to `1` to let device tests skip (loudly) where no sound server can start.
pub const SKIP_ENV: &str = "STREAMLIB_SKIP_AUDIO_DEVICE";
/// Set in a child made by [`PulseServer::rerun`]: the server's pid.
const CHILD_PID_ENV: &str = "STREAMLIB_PULSE_CHILD_PID";
/// Set in a child made by [`PulseServer::rerun`]: the server's runtime directory.
const CHILD_DIR_ENV: &str = "STREAMLIB_PULSE_CHILD_DIR";

/// A running PulseAudio server, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct PulseServer {
    child: Option<Child>,
    dir: PathBuf,
    /// Whether drop removes `dir` (not for a server restarted in another's directory).
    owns_dir: bool,
}

fn fresh_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "streamlib-pulse-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

impl PulseServer {
    /// Starts a server and waits (up to 15 s) until it answers; the error says why not.
    pub fn start() -> Result<Self, String> {
        let dir = fresh_dir().map_err(|e| format!("temporary directory: {e}"))?;
        Self::start_in(dir, true)
    }

    fn start_in(dir: PathBuf, owns_dir: bool) -> Result<Self, String> {
        let log = std::fs::File::create(dir.join("pulseaudio.log"))
            .map_err(|e| format!("log file in {}: {e}", dir.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "-L",
                &format!("module-null-sink sink_name={SINK}"),
                "-L",
                "module-native-protocol-unix",
            ])
            .env("XDG_RUNTIME_DIR", &dir)
            .env("HOME", &dir)
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| {
                format!("cannot run `pulseaudio` ({e}); install pulseaudio pulseaudio-utils")
            })?;
        let mut server = Self {
            child: Some(child),
            dir,
            owns_dir,
        };
        server.wait_ready(Duration::from_secs(15))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "pulseaudio exited ({status}) before it was ready: {}",
                    self.log()
                ));
            }
            let answered = Command::new("pactl")
                .arg("info")
                .envs(self.envs())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run `pactl` ({e}); install pulseaudio-utils"))?;
            if answered.success() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "pulseaudio did not answer within {limit:?}: {}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pulseaudio.log")).unwrap_or_default()
    }

    /// Its runtime directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address clients use (`unix:<dir>/pulse/native`).
    pub fn address(&self) -> String {
        format!("unix:{}", self.dir.join("pulse").join("native").display())
    }

    /// The environment a client needs: `PULSE_SERVER` (and `PULSE_SINK`, `PULSE_SOURCE`
    /// naming the null sink and its monitor, which are the defaults anyway).
    pub fn envs(&self) -> [(&'static str, String); 3] {
        [
            ("PULSE_SERVER", self.address()),
            ("PULSE_SINK", SINK.to_owned()),
            ("PULSE_SOURCE", MONITOR.to_owned()),
        ]
    }

    /// `program` set up to talk to this server.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.envs());
        command
    }

    /// Its process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the server now (a device that disappears) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs test `test` (its full name, as `cargo test -- --exact` takes it) again in a child
    /// of this test binary with this server's environment; returns its output after checking
    /// that exactly that test ran and passed there (the error carries the child's output).
    pub fn rerun(&self, test: &str) -> Result<String, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let output = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads", "1"])
            .envs(self.envs())
            .env(CHILD_PID_ENV, self.pid().to_string())
            .env(CHILD_DIR_ENV, &self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("rerunning {test}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() && text.contains("1 passed") {
            Ok(text)
        } else {
            Err(format!(
                "{test} failed in its child ({}):\n{text}\n--- pulseaudio log ---\n{}",
                output.status,
                self.log()
            ))
        }
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Inside a child made by [`PulseServer::rerun`]: the server it talks to.
#[derive(Debug, Clone)]
pub struct PulseChild {
    pid: u32,
    dir: PathBuf,
}

impl PulseChild {
    /// `Some` in a child made by [`PulseServer::rerun`].
    pub fn current() -> Option<Self> {
        let pid = std::env::var(CHILD_PID_ENV).ok()?.parse().ok()?;
        let dir = std::env::var_os(CHILD_DIR_ENV)?.into();
        Some(Self { pid, dir })
    }

    /// Starts a server again at the address the killed one had (the device comes back);
    /// it is killed when the returned value drops.
    pub fn restart_server(&self) -> Result<PulseServer, String> {
        // The old socket and pid file would be taken as a running server's.
        let _ = std::fs::remove_dir_all(self.dir.join("pulse"));
        PulseServer::start_in(self.dir.clone(), false)
    }

    /// Kills the server (SIGKILL): the sound device disappears under the running test.
    pub fn kill_server(&self) {
        if self.pid > 0 {
            // SAFETY: plain syscall on a pid the parent test started and still owns.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Whether `STREAMLIB_SKIP_AUDIO_DEVICE=1` allows device tests to skip.
pub fn skip_allowed() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Starts a server for `test`; where none can start, panics (the test fails) unless
/// [`skip_allowed`], and then prints loudly that `test` skipped and returns `None`.
#[allow(clippy::print_stderr, reason = "a skipped test says so loudly")]
pub fn start_or_skip(test: &str) -> Option<PulseServer> {
    match PulseServer::start() {
        Ok(server) => Some(server),
        Err(why) if skip_allowed() => {
            eprintln!(
                "\n!!!!!!!! SKIPPED {test}: no sound server ({why}); {SKIP_ENV}=1 allowed it !!!!!!!!\n"
            );
            None
        }
        Err(why) => panic!(
            "{test}: cannot start a PulseAudio server: {why}\n(set {SKIP_ENV}=1 to skip device tests)"
        ),
    }
}

/// Runs `body` where the server is: in a child made by [`PulseServer::rerun`], at once;
/// otherwise starts a server ([`start_or_skip`]) and reruns `test` (its full name) in a child
/// of this test binary, printing the child's output and panicking (the test fails) with it
/// when the child fails.
#[allow(
    clippy::print_stdout,
    reason = "the child's output is the test's report"
)]
pub fn with_server(test: &str, body: impl FnOnce(&PulseChild)) {
    if let Some(child) = PulseChild::current() {
        body(&child);
        return;
    }
    let Some(server) = start_or_skip(test) else {
        return;
    };
    match server.rerun(test) {
        Ok(out) => println!("{out}"),
        Err(e) => panic!("{e}"),
    }
}

/// The rate a [`MonitorRecording`] records at, Hz (mono).
pub const RECORD_RATE: u32 = 48_000;

/// What is played on [`SINK`], recorded from [`MONITOR`] by `parec` (s16 mono at
/// [`RECORD_RATE`]) until [`stop`](Self::stop).
#[derive(Debug)]
pub struct MonitorRecording {
    parec: Child,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl MonitorRecording {
    /// Starts `parec` on the monitor (of the server in `PULSE_SERVER`, as in a child made by
    /// [`PulseServer::rerun`]).
    pub fn start() -> Result<Self, String> {
        let mut parec = Command::new("parec")
            .args([
                "-d",
                MONITOR,
                "--format=s16le",
                &format!("--rate={RECORD_RATE}"),
                "--channels=1",
                "--raw",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `parec` ({e}); install pulseaudio-utils"))?;
        let mut out = parec.stdout.take().ok_or("parec has no stdout")?;
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut bytes);
            bytes
        });
        Ok(Self { parec, reader })
    }

    /// Lets what was played last reach the monitor (300 ms), stops `parec` and returns the
    /// recording as samples in `-1.0 ..= 1.0`.
    pub fn stop(mut self) -> Vec<f32> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.parec.kill();
        let _ = self.parec.wait();
        let bytes = self.reader.join().unwrap_or_default();
        bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect()
    }
}

/// What a recording holds in its loud stretch ([`measure_tone`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    /// Frequency, Hz.
    pub freq: f64,
    /// Peak level, dBFS (of a sine: its RMS level plus 3 dB).
    pub dbfs: f64,
    /// The loud stretch's duration, seconds.
    pub seconds: f64,
}

/// Finds the stretch of `samples` (mono, `rate`) louder than half the loudest 10 ms window
/// and measures it: frequency from the median distance between rising zero crossings, peak
/// level from the median window RMS (both robust to a short gap, should a loaded machine
/// starve the player), duration from the stretch's ends. Panics (the test fails) on a silent
/// recording or one too short to measure.
pub fn measure_tone(samples: &[f32], rate: u32) -> Tone {
    let win = rate as usize / 100;
    let rms: Vec<f64> = samples
        .chunks(win)
        .map(|w| (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .collect();
    let loudest = rms.iter().copied().fold(0.0, f64::max);
    assert!(loudest > 1e-3, "the recording is silent");
    let loud = |r: &f64| *r > loudest / 2.0;
    let (Some(first), Some(last)) = (rms.iter().position(loud), rms.iter().rposition(loud)) else {
        panic!("the recording is silent");
    };
    let seconds = (last + 1 - first) as f64 * 0.01;
    // Measure well inside the stretch, away from its edges.
    let (from, to) = (first + 5, last.saturating_sub(5).max(first + 6));
    let inner = &samples[from * win..to * win];
    // Rising crossings, interpolated between samples.
    let crossings: Vec<f64> = inner
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(w[0] / (w[0] - w[1])))
        .collect();
    let mut periods: Vec<f64> = crossings.windows(2).map(|c| c[1] - c[0]).collect();
    periods.sort_by(f64::total_cmp);
    // Average the middle half of the sorted periods: the median, less noisy.
    let middle = &periods[periods.len() / 4..periods.len() * 3 / 4];
    let period = middle.iter().sum::<f64>() / middle.len() as f64;
    let freq = f64::from(rate) / period;
    let mut levels = rms[from..to].to_vec();
    levels.sort_by(f64::total_cmp);
    let dbfs = 20.0 * (levels[levels.len() / 2] * std::f64::consts::SQRT_2).log10();
    Tone {
        freq,
        dbfs,
        seconds,
    }
}
