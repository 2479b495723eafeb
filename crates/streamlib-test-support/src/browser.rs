//! A real browser for tests: Debian's Chromium, headless, driven through chromedriver over
//! WebDriver (W3C, JSON over HTTP with `ureq`).
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port and opens one session of
//! `/usr/bin/chromium` (headless, fake camera and microphone, autoplay allowed, 1280x800).
//! Dropping the [`Browser`] deletes the session and kills chromedriver's whole process group,
//! so no Chromium outlives the test.
//!
//! ```no_run
//! use std::time::Duration;
//! use streamlib_test_support::browser::{self, Browser};
//!
//! if browser::skip("my_page_test") {
//!     return;
//! }
//! let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
//! b.goto("data:text/html,<p id=x>hi</p>").unwrap_or_else(|e| panic!("{e}"));
//! let text = b
//!     .wait_for("document.getElementById('x').textContent", Duration::from_secs(10))
//!     .unwrap_or_else(|e| panic!("{e}"));
//! assert_eq!(text, "hi");
//! ```
//!
//! Missing binaries are an error naming `cargo xtask setup`; a test fails then, unless
//! `STREAMLIB_SKIP_BROWSER=1` lets it skip (see [`skip`]).

use std::io::Cursor;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The environment variable that lets browser tests skip when set to `1`.
pub const SKIP_ENV: &str = "STREAMLIB_SKIP_BROWSER";

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where Debian's `chromium-driver` package installs chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to answer `/status` and to open a session (a loaded machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Upper bound on a WebDriver response body (a 1280x800 PNG screenshot is a few MiB in base64).
const MAX_RESPONSE: u64 = 64 << 20;

/// Chromium's command line for tests.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,800",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

/// chromedriver and one WebDriver session of headless Chromium.
#[derive(Debug)]
pub struct Browser {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and one session: `--headless=new`, `--no-sandbox`,
    /// `--use-fake-device-for-media-stream`, `--use-fake-ui-for-media-stream`,
    /// `--autoplay-policy=no-user-gesture-required`, window 1280x800.
    ///
    /// Errors name what failed (a missing binary names `cargo xtask setup`; a refused session
    /// carries chromedriver's message).
    pub fn start() -> Result<Self, String> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                return Err(format!(
                    "browser: {bin} not found; install Chromium and chromedriver with \
                     `cargo xtask setup` (Debian packages chromium, chromium-driver), \
                     or set {SKIP_ENV}=1 to skip browser tests"
                ));
            }
        }
        let port = free_port()?;
        let profile =
            std::env::temp_dir().join(format!("streamlib-chromium-{}-{port}", std::process::id()));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can kill chromedriver and every Chromium it started.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("browser: cannot run {CHROMEDRIVER}: {e}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        // From here on, Drop cleans up the driver and the profile even on error.
        let mut browser = Self {
            agent,
            session: String::new(),
            driver,
            profile,
        };
        browser.wait_ready(&base)?;
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": { "script": 60_000, "pageLoad": 60_000, "implicit": 0 },
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": CHROMIUM_ARGS
                        .iter()
                        .map(|a| (*a).to_owned())
                        .chain([format!("--user-data-dir={}", browser.profile.display())])
                        .collect::<Vec<_>>(),
                },
                "goog:loggingPrefs": { "browser": "ALL" },
            }}
        });
        let value = browser
            .request("POST", &format!("{base}/session"), Some(&caps))
            .map_err(|e| format!("browser: new session refused: {e}"))?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("browser: new session answer has no sessionId: {value}"))?;
        browser.session = format!("{base}/session/{id}");
        Ok(browser)
    }

    /// Navigates to `url` and waits for its load event.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
            .map_err(|e| format!("browser: goto {url}: {e}"))
    }

    /// Runs `script` as a function body (WebDriver execute/sync: use `return`) and returns its
    /// value as JSON. A thrown exception is an error carrying its message.
    pub fn eval(&self, script: &str) -> Result<Value, String> {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
        .map_err(|e| format!("browser: script failed: {e}\nscript: {}", brief(script)))
    }

    /// Runs `script` asynchronously (WebDriver execute/async): the script calls
    /// `arguments[arguments.length - 1](value)` when done (within the 60 s script timeout).
    pub fn eval_async(&self, script: &str) -> Result<Value, String> {
        self.command(
            "POST",
            "/execute/async",
            Some(&json!({ "script": script, "args": [] })),
        )
        .map_err(|e| {
            format!(
                "browser: async script failed: {e}\nscript: {}",
                brief(script)
            )
        })
    }

    /// Evaluates the expression `condition_js` every 100 ms until it is truthy and returns its
    /// value. A script error counts as "not yet"; the timeout error carries the last value or
    /// error and the page's URL.
    pub fn wait_for(&self, condition_js: &str, timeout: Duration) -> Result<Value, String> {
        let script = format!("return ({condition_js});");
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            match self.eval(&script) {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => last = format!("last value {v}"),
                Err(e) => last = format!("last error {e}"),
            }
            if Instant::now() >= deadline {
                let url = self
                    .command("GET", "/url", None)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|e| format!("(unknown: {e})"));
                return Err(format!(
                    "browser: `{}` not true within {timeout:?} on {url}; {last}",
                    brief(condition_js)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Takes a screenshot of the viewport and decodes it to RGBA.
    pub fn screenshot(&self) -> Result<Screenshot, String> {
        Screenshot::from_png(&self.screenshot_png()?)
    }

    /// Takes a screenshot of the viewport as PNG bytes (to save beside a failed test's log).
    pub fn screenshot_png(&self) -> Result<Vec<u8>, String> {
        let value = self
            .command("GET", "/screenshot", None)
            .map_err(|e| format!("browser: screenshot: {e}"))?;
        let b64 = value.as_str().ok_or_else(|| {
            format!(
                "browser: screenshot answer is not a string: {}",
                brief(&value.to_string())
            )
        })?;
        base64_decode(b64).map_err(|e| format!("browser: screenshot: {e}"))
    }

    /// The browser console's messages since the last call (chromedriver's `browser` log:
    /// `LEVEL message` per line).
    pub fn console_log(&self) -> Result<Vec<String>, String> {
        let value = self
            .command("POST", "/se/log", Some(&json!({ "type": "browser" })))
            .map_err(|e| format!("browser: console log: {e}"))?;
        Ok(value
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e.get("level").and_then(Value::as_str).unwrap_or("?"),
                            e.get("message").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The console messages at level `SEVERE` (uncaught exceptions, failed loads) since the
    /// last [`console_log`](Self::console_log) or `errors` call.
    pub fn errors(&self) -> Result<Vec<String>, String> {
        Ok(self
            .console_log()?
            .into_iter()
            .filter(|l| l.starts_with("SEVERE"))
            .collect())
    }

    fn wait_ready(&mut self, base: &str) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!("browser: chromedriver exited at start ({status})"));
            }
            match self.request("GET", &format!("{base}/status"), None) {
                Ok(v) if v.get("ready").and_then(Value::as_bool) == Some(true) => return Ok(()),
                Ok(v) => last = v.to_string(),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "browser: chromedriver not ready within {STARTUP_TIMEOUT:?}: {last}"
        ))
    }

    /// A command on this session (`path` below `/session/ID`).
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        self.request(method, &format!("{}{path}", self.session), body)
    }

    /// One WebDriver request; returns the answer's `value`, or its error and message.
    fn request(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
        let result = match (method, body) {
            ("GET", _) => self.agent.get(url).call(),
            ("DELETE", _) => self.agent.delete(url).call(),
            (_, Some(body)) => self.agent.post(url).send_json(body),
            (_, None) => self.agent.post(url).send_json(json!({})),
        };
        let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        let mut answer: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {url}: answer is not JSON ({e}): {}", brief(&text)))?;
        let value = answer
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let error = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        Err(format!("{error} (HTTP {}): {message}", status.as_u16()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &self.session, None);
        }
        let pid = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the process group chromedriver leads
        // (it was spawned with process_group(0)); no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A decoded screenshot: `width * height` RGBA pixels, rows top to bottom.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA, 4 bytes per pixel.
    pub rgba: Vec<u8>,
}

impl Screenshot {
    /// Decodes a PNG (any bit depth, palette or grey) to 8-bit RGBA.
    pub fn from_png(png: &[u8]) -> Result<Self, String> {
        let mut decoder = png::Decoder::new(Cursor::new(png));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|e| format!("screenshot: bad PNG: {e}"))?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| "screenshot: PNG too large".to_owned())?;
        let mut buf = vec![0; size];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| format!("screenshot: bad PNG: {e}"))?;
        buf.truncate(info.buffer_size());
        let pixels = info.width as usize * info.height as usize;
        let rgba = match info.color_type {
            png::ColorType::Rgba => buf,
            png::ColorType::Rgb => buf
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            png::ColorType::GrayscaleAlpha => buf
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect(),
            png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
            png::ColorType::Indexed => {
                return Err("screenshot: palette PNG was not expanded".to_owned());
            }
        };
        if rgba.len() != pixels * 4 {
            return Err(format!(
                "screenshot: {} bytes for {}x{} pixels",
                rgba.len(),
                info.width,
                info.height
            ));
        }
        Ok(Self {
            width: info.width,
            height: info.height,
            rgba,
        })
    }

    /// The RGBA pixel at (`x`, `y`); `[0; 4]` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        if x >= self.width || y >= self.height {
            return [0; 4];
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

/// Whether a browser test should skip: true only when `STREAMLIB_SKIP_BROWSER=1`, and then it
/// says so loudly on stderr. Without it a test runs, and fails when there is no browser.
pub fn skip(test: &str) -> bool {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        #[allow(
            clippy::print_stderr,
            reason = "a skipped test must say so in the test output"
        )]
        {
            eprintln!("\n################################################################");
            eprintln!("## SKIPPED: {test}: {SKIP_ENV}=1 (no real browser run)");
            eprintln!("################################################################\n");
        }
        return true;
    }
    false
}

/// `<workspace>/target/web/node_modules/<rel>` (installed by `cargo xtask setup`, e.g.
/// `"hls.js/dist/hls.min.js"`), when that file exists.
pub fn web_module(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/web/node_modules")
        .join(rel);
    path.is_file().then_some(path)
}

/// A TCP port free on loopback right now (chromedriver binds it a moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("browser: no free loopback port: {e}"))
}

/// JavaScript truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The first 300 characters of a script or answer, for error messages.
fn brief(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Standard base64 (WebDriver screenshots), whitespace ignored.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_of_known_text() {
        assert_eq!(
            base64_decode("aGVsbG8gd29ybGQ=").as_deref(),
            Ok(&b"hello world"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Ok(&b"a"[..]));
        assert!(base64_decode("a*b").is_err());
    }

    #[test]
    fn truthiness_follows_javascript() {
        assert!(!truthy(&json!(null)));
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!([])));
        assert!(truthy(&json!("x")));
    }
}
