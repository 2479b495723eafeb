//! The control room from the real binary: `streamlib launch … --ui ADDR` in headless Chromium,
//! its listen address, and the MCP `control_room` tool.
#![cfg(feature = "ui")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    reason = "tests: a failed step panics with its context; the helpers take `json!` literals by value"
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamlib_test_support::browser::{self, Browser};

const PIPELINE: &str = "testpattern size=160x90 ! blur sigma=2 ! null";
const TIMEOUT: Duration = Duration::from_secs(60);

/// `streamlib launch PIPELINE --ui ADDR`, killed (SIGINT, then SIGKILL) when dropped.
struct Launch {
    child: Child,
    stderr: Receiver<String>,
}

impl Launch {
    fn start(ui: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamlib"))
            .args(["launch", PIPELINE, "--ui", ui])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the streamlib binary runs");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stderr: lines,
        }
    }

    /// The next stderr lines until one starts with `prefix`; all of them on failure.
    fn wait_line(&self, prefix: &str) -> Result<String, String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            seen.push(line);
        }
        Err(seen.join("\n"))
    }

    /// The control room's URL, from the line the CLI prints.
    fn url(&self) -> String {
        self.wait_line("control room:")
            .unwrap_or_else(|seen| panic!("no `control room:` line; stderr:\n{seen}"))
    }

    /// Ctrl-C, as a user would; the exit status.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.wait_exit()
    }

    /// Waits for it to exit by itself; the exit status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "launch still running after {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `http://HOST:PORT/` → the socket address.
fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// One HTTP/1.1 request over a plain socket; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The value `/api/graph` shows for `element.property`.
fn shown_value(addr: SocketAddr, element: &str, property: &str) -> Value {
    let graph = get_json(addr, "/api/graph");
    graph["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == element))
        .and_then(|n| n["properties"].as_array())
        .and_then(|p| p.iter().find(|p| p["name"] == property))
        .map(|p| p["value"].clone())
        .unwrap_or_else(|| panic!("no {element}.{property} in {graph}"))
}

#[test]
fn launch_ui_page_in_chromium_shows_the_graph_and_tunes_the_blur() {
    if browser::skip("launch_ui_page_in_chromium_shows_the_graph_and_tunes_the_blur") {
        return;
    }
    let mut launch = Launch::start("127.0.0.1:0");
    let url = launch.url();
    let addr = addr_of(&url);
    assert!(addr.ip().is_loopback(), "{url}");

    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&url).unwrap_or_else(|e| panic!("{e}"));
    b.wait_for("window.controlRoom && window.controlRoom.ready", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    for name in ["testpattern0", "blur0", "null0"] {
        let shown = b
            .eval(&format!(
                "return document.body.innerText.includes({name:?}) && \
                 !!document.querySelector('#graph svg [data-element={name:?}]');"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown, true, "{name} is not on the page");
    }
    let caps = b
        .eval("return document.querySelector('#links tbody').innerText;")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        caps.as_str().is_some_and(|c| c.contains("160x90")),
        "links: {caps}"
    );

    // With the `webrtc` feature each video output has a preview tap the page offers.
    let offered = b
        .eval("return [...document.querySelectorAll('#preview-select option')].map(o => o.value);")
        .unwrap_or_else(|e| panic!("{e}"));
    let want = if cfg!(feature = "webrtc") {
        json!(["preview_testpattern0_video", "preview_blur0_video"])
    } else {
        json!([])
    };
    assert_eq!(offered, want);

    // Live statistics: the ticks shown for the test pattern grow.
    let ticks = "Number(document.querySelector('.element[data-element=\"testpattern0\"] \
                 [data-stat=\"ticks\"]').textContent) || 0";
    b.wait_for(&format!("{ticks} > 0"), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = b
        .eval(&format!("return {ticks};"))
        .unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(&format!("{ticks} > {first}"), TIMEOUT)
        .unwrap_or_else(|e| panic!("ticks stayed at {first}: {e}"));

    // The user drags sigma's slider to its end and lets go.
    let set = b
        .eval(
            "const r = document.querySelector('.element[data-element=\"blur0\"] \
             input[type=range][data-range-for=\"sigma\"]');\
             r.value = r.max; r.dispatchEvent(new Event('input', {bubbles: true}));\
             r.dispatchEvent(new Event('change', {bubbles: true})); return r.value;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let max: f64 = set
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("slider value {set}"));
    let deadline = Instant::now() + TIMEOUT;
    while shown_value(addr, "blur0", "sigma")
        .as_str()
        .and_then(|s| s.parse().ok())
        != Some(max)
    {
        assert!(Instant::now() < deadline, "sigma never became {max}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A refused value: the server's reason appears beside the field.
    b.eval(
        "const i = document.querySelector('input[data-element=\"blur0\"][data-property=\"sigma\"]');\
         i.value = '-1'; i.dispatchEvent(new Event('change', {bubbles: true})); return true;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let msg = "document.querySelector('input[data-element=\"blur0\"][data-property=\"sigma\"]')\
               .closest('.prop').querySelector('.msg.error')";
    let shown = b
        .wait_for(&format!("{msg} && {msg}.textContent"), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        shown.as_str().is_some_and(|t| t.contains("sigma")),
        "{shown}"
    );
    assert_eq!(
        shown_value(addr, "blur0", "sigma")
            .as_str()
            .and_then(|s| s.parse::<f64>().ok()),
        Some(max)
    );

    // Ctrl-C ends the pipeline and the server with it.
    let status = launch.interrupt();
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "the control room outlived the pipeline"
    );
}

#[test]
fn ui_listens_on_loopback_unless_a_host_is_named() {
    let launch = Launch::start("0");
    let url = launch.url();
    assert!(addr_of(&url).ip().is_loopback(), "--ui 0 gave {url}");
    let graph = get_json(addr_of(&url), "/api/graph");
    // The pipeline's three elements (and, with the `webrtc` feature, a preview tap on each
    // video output).
    let own = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["preview_of"].is_null())
        .count();
    assert_eq!(own, 3, "{graph}");
    drop(launch);

    let launch = Launch::start("0.0.0.0:0");
    let url = launch.url();
    assert!(addr_of(&url).ip().is_unspecified(), "{url}");
    drop(launch);

    let mut bad = Launch::start("example.com:80");
    let status = bad.wait_exit();
    assert!(!status.success());
    let said = bad.wait_line("never").err().unwrap_or_default();
    assert!(said.contains("example.com"), "stderr: {said}");

    // A busy port fails before the pipeline starts: no room, no pipeline.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let mut taken = Launch::start(&port);
    assert!(!taken.wait_exit().success());
    let said = taken.wait_line("never").err().unwrap_or_default();
    assert!(said.contains(&port), "stderr: {said}");
    assert!(!said.contains("control room: http"), "stderr: {said}");
}

/// A minimal MCP client over the binary's stdio.
struct Mcp {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
}

impl Mcp {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamlib"))
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start `streamlib mcp`");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut mcp = Self {
            child,
            stdin,
            lines,
            next_id: 1,
        };
        mcp.request(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": { "name": "streamlib-ui-test", "version": "0.0.0" },
            }),
        );
        writeln!(
            mcp.stdin,
            "{}",
            json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
        )
        .unwrap();
        mcp
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|e| panic!("no answer to {method}: {e}"));
            let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
            if answer["id"] == json!(id) {
                return answer;
            }
        }
    }

    /// A tool call: `(is_error, text, structured content)`.
    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String, Value) {
        let answer = self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        let result = &answer["result"];
        (
            result["isError"].as_bool().unwrap_or(false),
            result["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            result["structuredContent"].clone(),
        )
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mcp_control_room_returns_the_url_of_a_launched_pipeline() {
    let mut mcp = Mcp::start();
    let tools = mcp.request("tools/list", json!({}));
    let listed = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "control_room");
    assert!(listed, "no control_room tool in {tools}");

    let (is_error, text, launched) = mcp.call("launch_pipeline", json!({ "pipeline": PIPELINE }));
    assert!(!is_error, "{text}");
    let id = launched["id"].as_str().unwrap().to_owned();

    let (is_error, text, room) = mcp.call("control_room", json!({ "id": id }));
    assert!(!is_error, "{text}");
    let url = room["url"].as_str().unwrap().to_owned();
    let addr = addr_of(&url);
    assert!(addr.ip().is_loopback(), "{url}");
    let graph = get_json(addr, "/api/graph");
    let names: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["testpattern0", "blur0", "null0"]);
    let (status, body) = http(addr, "POST", "/api/elements/blur0/properties/sigma", "3.5");
    assert_eq!(status, 200, "{body}");
    assert_eq!(shown_value(addr, "blur0", "sigma"), "3.5");

    // Asked again, the same room.
    let (_, _, again) = mcp.call("control_room", json!({ "id": id }));
    assert_eq!(again["url"], url.as_str());

    let (is_error, text, _) = mcp.call("control_room", json!({ "id": "p99" }));
    assert!(is_error && text.contains("p99"), "{text}");

    // Stopping the pipeline closes its room.
    let (is_error, text, _) = mcp.call("stop_pipeline", json!({ "id": id }));
    assert!(!is_error, "{text}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "the room outlived its pipeline"
    );

    // Launched with previews, its room offers each video output (with the `webrtc` feature).
    let (is_error, text, launched) = mcp.call(
        "launch_pipeline",
        json!({ "pipeline": PIPELINE, "previews": true }),
    );
    assert!(!is_error, "{text}");
    let id = launched["id"].as_str().unwrap().to_owned();
    let (is_error, text, room) = mcp.call("control_room", json!({ "id": id }));
    assert!(!is_error, "{text}");
    let graph = get_json(addr_of(room["url"].as_str().unwrap()), "/api/graph");
    let sources: Vec<&str> = graph["previews"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["source"].as_str())
        .collect();
    let want: &[&str] = if cfg!(feature = "webrtc") {
        &["testpattern0.video", "blur0.video"]
    } else {
        &[]
    };
    assert_eq!(sources, want, "{graph}");
}
