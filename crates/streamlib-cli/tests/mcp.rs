//! `streamlib mcp` driven as an MCP client would: the real binary as a child process, JSON-RPC
//! lines on its stdin, responses read line by line from its stdout (with a timeout, so a hang
//! fails the test instead of blocking it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::needless_pass_by_value,
    reason = "tests; the helpers take `json!` literals by value"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one response may take (a debug build under a loaded machine).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit once stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server process and its stdout as a channel of lines.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
}

impl Server {
    /// Starts `streamlib mcp` and performs the MCP handshake.
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `streamlib mcp ARGS…` (policy flags) and performs the MCP handshake.
    fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_streamlib"))
            .arg("mcp")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start `streamlib mcp`");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            stdin,
            lines,
            next_id: 1,
        };
        let init = server.request(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": { "name": "streamlib-test", "version": "0.0.0" },
            }),
        );
        let result = &init["result"];
        assert_eq!(result["serverInfo"]["name"], "streamlib", "{init}");
        assert!(result["capabilities"]["tools"].is_object(), "{init}");
        assert!(
            result["instructions"].as_str().unwrap().contains(" ! "),
            "the instructions teach the syntax: {init}"
        );
        server.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        server
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request and returns its response, skipping notifications and other messages.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => panic!("no response to {method} (id {id})"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed stdout before answering {method} (id {id})")
                }
            };
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}"));
            if message["id"] == json!(id) {
                assert!(
                    message.get("error").is_none(),
                    "{method}: protocol error {message}"
                );
                return message;
            }
        }
    }

    /// Calls a tool; returns `(is_error, text, structured content)`.
    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String, Value) {
        let response = self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        let result = &response["result"];
        let is_error = result["isError"].as_bool().unwrap_or(false);
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{tool}: no text content in {response}"))
            .to_owned();
        (is_error, text, result["structuredContent"].clone())
    }

    /// A tool call that must succeed; returns its structured content.
    fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let (is_error, text, structured) = self.call(tool, arguments);
        assert!(!is_error, "{tool} failed: {text}");
        assert!(structured.is_object(), "{tool}: {text}");
        structured
    }

    /// A tool call that must fail with a tool error; returns its message.
    fn call_err(&mut self, tool: &str, arguments: Value) -> String {
        let (is_error, text, _) = self.call(tool, arguments);
        assert!(is_error, "{tool} should have failed: {text}");
        text
    }

    /// Closes stdin (the client disconnects) and waits for the process to exit.
    fn disconnect(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`streamlib mcp` still running {EXIT_TIMEOUT:?} after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `pipeline_stats` until the clock ticked, and returns the stats.
fn wait_for_ticks(server: &mut Server, id: &str) -> Value {
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    loop {
        let report = server.call_ok("pipeline_stats", json!({ "id": id }));
        if report["stats"]["clock_ticks"].as_u64().unwrap_or(0) > 0 {
            return report;
        }
        assert!(Instant::now() < deadline, "{id} never ticked: {report}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_agent_session_from_listing_to_stop() {
    let mut server = Server::start();

    let tools = server.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "list_handlers",
        "inspect_handler",
        "validate_pipeline",
        "launch_pipeline",
        "pipeline_stats",
        "set_property",
        "stop_pipeline",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let launch = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "launch_pipeline")
        .unwrap();
    assert!(launch["description"].as_str().unwrap().contains(" ! "));
    assert_eq!(launch["inputSchema"]["required"], json!(["pipeline"]));

    let handlers = server.call_ok("list_handlers", json!({}));
    let handlers = handlers["handlers"].as_array().unwrap();
    for name in ["testpattern", "blur", "null"] {
        let handler = handlers.iter().find(|h| h["name"] == name);
        let summary = handler.and_then(|h| h["summary"].as_str()).unwrap_or("");
        assert!(!summary.is_empty(), "{name} listed with a summary");
    }

    let blur = server.call_ok("inspect_handler", json!({ "name": "blur" }));
    let sigma = blur["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sigma")
        .unwrap();
    assert_eq!(sigma["live"], true, "{blur}");
    let unknown = server.call_err("inspect_handler", json!({ "name": "blurr" }));
    assert!(unknown.contains("did you mean `blur`"), "{unknown}");

    // Bad pipelines: a misspelt handler, and a syntax error with its column.
    let misspelt = server.call_err(
        "validate_pipeline",
        json!({ "pipeline": "testpattern size=160x90 ! blurr sigma=1 ! null", "format": "text" }),
    );
    assert!(misspelt.contains("did you mean `blur`"), "{misspelt}");
    let syntax = server.call_err(
        "validate_pipeline",
        json!({ "pipeline": "testpattern size=160x90 ! ! null" }),
    );
    assert!(syntax.contains("column"), "{syntax}");
    let range = server.call_err(
        "validate_pipeline",
        json!({ "pipeline": "testpattern ! blur sigma=1000 ! null" }),
    );
    assert!(range.contains("out of range"), "{range}");

    // A good one: the negotiated graph and both canonical forms, which round-trip.
    let valid = server.call_ok(
        "validate_pipeline",
        json!({ "pipeline": "testpattern size=160x90 ! blur sigma=1 ! null" }),
    );
    assert_eq!(
        valid["graph"]["nodes"].as_array().unwrap().len(),
        3,
        "{valid}"
    );
    assert_eq!(valid["graph"]["edges"][0]["from"], "testpattern0.video");
    assert!(valid["text"].as_str().unwrap().contains("blur sigma=1"));
    let as_json = valid["json"].to_string();
    let again = server.call_ok(
        "validate_pipeline",
        json!({ "pipeline": as_json, "format": "json" }),
    );
    assert_eq!(again["text"], valid["text"]);

    let launched = server.call_ok(
        "launch_pipeline",
        json!({
            "pipeline": "testpattern size=160x90 ! blur sigma=1 ! null",
            "clock": "software",
            "fps": 30,
        }),
    );
    let id = launched["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "p1");
    assert!(launched["graph"]["nodes"].is_array(), "{launched}");

    let report = wait_for_ticks(&mut server, &id);
    assert_eq!(report["finished"], false, "{report}");
    let blur_stream = report["stats"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "blur0")
        .cloned()
        .unwrap();
    assert_eq!(blur_stream["errors"], 0, "{report}");

    server.call_ok(
        "set_property",
        json!({ "id": id, "element": "blur0", "property": "sigma", "value": "4" }),
    );
    let out_of_range = server.call_err(
        "set_property",
        json!({ "id": id, "element": "blur0", "property": "sigma", "value": 1000 }),
    );
    assert!(out_of_range.contains("out of range"), "{out_of_range}");
    let not_live = server.call_err(
        "set_property",
        json!({ "id": id, "element": "testpattern0", "property": "size", "value": "64x36" }),
    );
    assert!(not_live.contains("live"), "{not_live}");
    let no_element = server.call_err(
        "set_property",
        json!({ "id": id, "element": "blur1", "property": "sigma", "value": 2 }),
    );
    assert!(
        no_element.contains("blur0"),
        "suggests the element: {no_element}"
    );

    let listed = server.call_ok("list_pipelines", json!({}));
    assert_eq!(listed["pipelines"][0]["id"], id.as_str(), "{listed}");

    let stopped = server.call_ok("stop_pipeline", json!({ "id": id }));
    let ticks = stopped["stats"]["clock_ticks"].as_u64().unwrap();
    assert!(ticks > 0, "{stopped}");
    let forgotten = server.call_err("pipeline_stats", json!({ "id": id }));
    assert!(forgotten.contains("no pipeline `p1`"), "{forgotten}");

    let status = server.disconnect();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn disconnecting_stops_running_pipelines() {
    let mut server = Server::start();
    let mut ids = Vec::new();
    for clock in ["software", "free"] {
        let launched = server.call_ok(
            "launch_pipeline",
            json!({
                "pipeline": "testpattern size=64x36 ! blur sigma=1 ! null",
                "clock": clock,
            }),
        );
        ids.push(launched["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids, ["p1", "p2"]);
    for id in &ids {
        wait_for_ticks(&mut server, id);
    }
    let started = Instant::now();
    let status = server.disconnect();
    assert!(status.success(), "exit status {status}");
    eprintln!(
        "exited {:?} after stdin closed, two pipelines running",
        started.elapsed()
    );
}

/// Clients that give up waiting send SIGTERM: the pipelines are still stopped and the
/// process exits 0.
#[cfg(unix)]
#[test]
fn sigterm_stops_running_pipelines() {
    let mut server = Server::start();
    let launched = server.call_ok(
        "launch_pipeline",
        json!({ "pipeline": "testpattern size=64x36 ! blur sigma=1 ! null" }),
    );
    wait_for_ticks(&mut server, launched["id"].as_str().unwrap());
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_frame_limited_pipeline_reports_finished() {
    let mut server = Server::start();
    let launched = server.call_ok(
        "launch_pipeline",
        json!({
            "pipeline": "testpattern size=64x36 ! null",
            "clock": "free",
            "frames": 5,
        }),
    );
    let id = launched["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    let report = loop {
        let report = server.call_ok("pipeline_stats", json!({ "id": id }));
        if report["finished"] == true {
            break report;
        }
        assert!(Instant::now() < deadline, "never finished: {report}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["stats"]["clock_ticks"], 5, "{report}");
    let stopped = server.call_ok("stop_pipeline", json!({ "id": id }));
    assert_eq!(stopped["stats"]["clock_ticks"], 5, "{stopped}");
    assert!(server.disconnect().success());
}

/// A file being written when the client disconnects is finalized: it reads back in full.
#[cfg(feature = "file")]
#[test]
fn disconnecting_finalizes_files() {
    let dir = std::env::temp_dir().join(format!("streamlib-mcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pattern.mkv");
    let location = format!("location={}", file.display());
    let folder = dir.to_str().unwrap();
    let allowed = ["--allow-read", folder, "--allow-write", folder];

    let mut server = Server::start_with(&allowed);
    let launched = server.call_ok(
        "launch_pipeline",
        json!({ "pipeline": format!("testpattern size=96x64 ! filewriter codec=ffv1 {location}") }),
    );
    let id = launched["id"].as_str().unwrap().to_owned();
    let written = loop {
        let report = wait_for_ticks(&mut server, &id);
        let ticks = report["stats"]["clock_ticks"].as_u64().unwrap();
        if ticks >= 5 {
            break ticks;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(server.disconnect().success());

    let mut server = Server::start_with(&allowed);
    let launched = server.call_ok(
        "launch_pipeline",
        json!({ "pipeline": format!("filereader pacing=fast {location} ! null"), "clock": "free" }),
    );
    let id = launched["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    let report = loop {
        let report = server.call_ok("pipeline_stats", json!({ "id": id }));
        if report["finished"] == true {
            break report;
        }
        assert!(Instant::now() < deadline, "the file never ended: {report}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let reader = report["stats"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "filereader0")
        .cloned()
        .unwrap();
    assert_eq!(reader["errors"], 0, "{report}");
    assert!(
        reader["items_out"].as_u64().unwrap() >= written,
        "at least the {written} frames seen before disconnecting: {report}"
    );
    assert!(server.disconnect().success());
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// What an agent must not reach (issue 12, section 4): each attack, tried through the real
// server, is refused.

#[cfg(any(feature = "file", feature = "net"))]
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("streamlib-mcp-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

/// `validate_pipeline` and `launch_pipeline` both refuse `pipeline`; returns the message.
#[cfg(any(feature = "file", feature = "net"))]
fn refused_both(server: &mut Server, pipeline: &str) -> String {
    let validated = server.call_err("validate_pipeline", json!({ "pipeline": pipeline }));
    let launched = server.call_err("launch_pipeline", json!({ "pipeline": pipeline }));
    assert_eq!(validated, launched, "{pipeline}");
    validated
}

/// Validating a sender whose `sdp=` names a file must not write it: validation used to build
/// the sender, which wrote its SDP over whatever the path named.
#[cfg(feature = "net")]
#[test]
fn validating_writes_no_file() {
    let dir = temp_dir("victim");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let folder = dir.to_str().unwrap();
    let mut server = Server::start_with(&["--allow-write", folder]);
    let pipeline = format!(
        "testpattern size=64x36 format=uyvy ! networksend destination=127.0.0.1:9 size=64x36 \
         sampling=ycbcr422-8 sdp={}",
        victim.display()
    );
    let valid = server.call_ok("validate_pipeline", json!({ "pipeline": pipeline }));
    assert_eq!(valid["valid"], true, "{valid}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let fresh = dir.join("fresh.sdp");
    let pipeline = pipeline.replace(victim.to_str().unwrap(), fresh.to_str().unwrap());
    server.call_ok("validate_pipeline", json!({ "pipeline": pipeline }));
    assert!(!fresh.exists(), "validation wrote {}", fresh.display());
    // Without --allow-write, not even a launch may write it.
    let mut confined = Server::start();
    let message = refused_both(&mut confined, &pipeline);
    assert!(
        message.contains("outside the write allow-list (--allow-write DIR)"),
        "{message}"
    );
    assert!(!fresh.exists());
    assert!(confined.disconnect().success());
    assert!(server.disconnect().success());
    std::fs::remove_dir_all(&dir).ok();
}

/// FFmpeg network outputs and pipes through a file location, `/dev/stdin` as a file or a
/// font, paths outside the allow-lists.
#[cfg(feature = "file")]
#[test]
fn files_are_confined_to_the_allowed_folders() {
    let dir = temp_dir("files");
    let folder = dir.to_str().unwrap();
    let mut server = Server::start_with(&["--allow-read", folder, "--allow-write", folder]);
    for location in [
        "udp://127.0.0.1:9/x.mkv",
        "tcp://127.0.0.1:9/x.mkv?listen",
        "pipe:1",
        "pipe:1.mkv",
    ] {
        let message = refused_both(
            &mut server,
            &format!("testpattern ! filewriter name=w0 location={location}"),
        );
        assert!(
            message.starts_with("w0 (filewriter): location"),
            "{message}"
        );
        assert!(message.contains("protocol"), "{message}");
    }
    for pipeline in [
        "filereader location=/dev/stdin ! null",
        "drawing font=/dev/stdin ! null",
    ] {
        let message = refused_both(&mut server, pipeline);
        assert!(
            message.contains("not a regular file"),
            "{pipeline}: {message}"
        );
    }
    let message = refused_both(
        &mut server,
        "testpattern ! filewriter name=w0 location=/etc/x.mkv",
    );
    assert_eq!(
        message,
        "w0 (filewriter): location `/etc/x.mkv` is outside the write allow-list (--allow-write DIR)"
    );
    let message = refused_both(&mut server, "drawing font=/etc/hostname ! null");
    assert!(
        message.contains("outside the read allow-list (--allow-read DIR)"),
        "{message}"
    );
    let escape = format!("{folder}/../x.mkv");
    let message = refused_both(
        &mut server,
        &format!("testpattern ! filewriter location={escape}"),
    );
    assert!(message.contains("write allow-list"), "{message}");
    // The server still answers on its stdout: nothing was written into the protocol channel.
    let inside = format!("testpattern ! filewriter location={folder}/ok.mkv");
    let valid = server.call_ok("validate_pipeline", json!({ "pipeline": inside }));
    assert_eq!(valid["valid"], true, "{valid}");
    assert!(server.disconnect().success());
    std::fs::remove_dir_all(&dir).ok();
}

/// An SDP parse error names the line, never quotes it; a file outside the allow-list is not
/// even opened.
#[cfg(feature = "net")]
#[test]
fn an_sdp_parse_error_reads_no_file_back() {
    let dir = temp_dir("sdp");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "v=0\nhunter2-the-password\n").unwrap();
    let folder = dir.to_str().unwrap();
    let mut server = Server::start_with(&["--allow-read", folder]);
    let message = refused_both(
        &mut server,
        &format!("networkreceive sdp={} ! null", secret.display()),
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    let message = refused_both(&mut server, "networkreceive sdp=/etc/passwd ! null");
    assert!(message.contains("read allow-list"), "{message}");
    assert!(!message.contains("root:"), "{message}");
    assert!(server.disconnect().success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Senders and receivers stay on loopback unless --allow-network.
#[cfg(feature = "net")]
#[test]
fn the_network_is_loopback_unless_allowed() {
    let send = "testpattern size=64x36 format=uyvy ! networksend size=64x36 sampling=ycbcr422-8 \
                destination=";
    let mut server = Server::start();
    let message = refused_both(&mut server, &format!("{send}192.0.2.1:5004"));
    assert!(
        message.contains("destination 192.0.2.1:5004 is not a loopback address (--allow-network"),
        "{message}"
    );
    let message = refused_both(&mut server, "networkreceive size=64x36 ! null");
    assert!(message.contains("bind address 0.0.0.0:5004"), "{message}");
    server.call_ok(
        "validate_pipeline",
        json!({ "pipeline": format!("{send}127.0.0.1:5004") }),
    );
    assert!(server.disconnect().success());
    let mut open = Server::start_with(&["--allow-network"]);
    open.call_ok(
        "validate_pipeline",
        json!({ "pipeline": format!("{send}192.0.2.1:5004") }),
    );
    assert!(open.disconnect().success());
}

/// An agent cannot end the server with a crash test; under `@process` only a child ends,
/// and the server keeps answering.
#[test]
fn an_agent_cannot_crash_the_server() {
    let mut server = Server::start();
    let crash = "testpattern size=64x36 ! identity abort-after=2 ! null";
    let message = server.call_err("launch_pipeline", json!({ "pipeline": crash }));
    assert!(
        message.contains("abort-after `2` would end the whole process"),
        "{message}"
    );
    let contained =
        "testpattern size=64x36 ! identity abort-after=2 restart=always @process ! null";
    server.call_ok("validate_pipeline", json!({ "pipeline": contained }));
    server.call_ok("list_handlers", json!({}));
    assert!(server.disconnect().success());
    let mut allowed = Server::start_with(&["--allow-crash-tests"]);
    allowed.call_ok("validate_pipeline", json!({ "pipeline": crash }));
    assert!(allowed.disconnect().success());
}

/// Limits: pipelines per connection, text length, and a near-miss name in a long text is
/// answered at once (the suggestion used to be quadratic in the names' lengths).
#[test]
fn an_agent_cannot_exhaust_the_server() {
    let mut server = Server::start_with(&["--max-pipelines", "2"]);
    for _ in 0..2 {
        server.call_ok(
            "launch_pipeline",
            json!({ "pipeline": "testpattern size=32x32 ! null" }),
        );
    }
    let message = server.call_err(
        "launch_pipeline",
        json!({ "pipeline": "testpattern ! null" }),
    );
    assert!(message.contains("2 pipelines are running"), "{message}");
    let long = format!("testpattern text=\"{}\" ! null", "x".repeat(70_000));
    let message = server.call_err("validate_pipeline", json!({ "pipeline": long }));
    assert!(message.contains("at most 65536"), "{message}");
    let name = "e".repeat(30_000);
    let pipeline = format!("testpattern name={name} ! null  testpattern ! {name}x.video");
    let started = Instant::now();
    server.call_err("validate_pipeline", json!({ "pipeline": pipeline }));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "a near-miss name took {took:?}"
    );
    assert!(server.disconnect().success());
}

/// A tool call that takes longer than --tool-timeout is answered with an error, and the
/// server goes on answering.
#[test]
fn a_tool_call_has_a_time_limit() {
    let mut server = Server::start_with(&["--tool-timeout", "0"]);
    let message = server.call_err(
        "validate_pipeline",
        json!({ "pipeline": "testpattern ! blur ! null" }),
    );
    assert!(message.contains("longer than 0 s"), "{message}");
    server.call_ok("list_handlers", json!({}));
    assert!(server.disconnect().success());
}

/// Launches sent at once may not build more pipelines than --max-pipelines: each recorder
/// built creates its file, so the files left say how many were built. The limit used to be
/// checked before building and again after, so all of them were built and all but one
/// stopped.
#[cfg(feature = "file")]
#[test]
fn concurrent_launches_build_no_more_than_the_limit() {
    let dir = temp_dir("concurrent");
    let folder = dir.to_str().unwrap();
    let mut server = Server::start_with(&["--max-pipelines", "1", "--allow-write", folder]);
    let first = server.next_id;
    let launches = 4;
    for n in 0..launches {
        let pipeline = format!(
            "testpattern size=32x32 ! filewriter codec=ffv1 location={}",
            dir.join(format!("{n}.mkv")).display()
        );
        server.send(json!({
            "jsonrpc": "2.0",
            "id": first + n,
            "method": "tools/call",
            "params": { "name": "launch_pipeline", "arguments": { "pipeline": pipeline } },
        }));
    }
    server.next_id += launches;
    let mut answered = 0;
    let mut launched = 0;
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    while answered < launches {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server
            .lines
            .recv_timeout(left)
            .expect("every launch answered");
        let message: Value = serde_json::from_str(&line).unwrap();
        let Some(id) = message["id"].as_u64() else {
            continue;
        };
        assert!((first..first + launches).contains(&id), "{message}");
        answered += 1;
        if message["result"]["isError"] != true {
            launched += 1;
        }
    }
    assert_eq!(launched, 1);
    // The recorder creates its file with its first frame: wait for it before disconnecting
    // (which stops the pipeline), or a loaded machine stops it before any frame.
    let files = || std::fs::read_dir(&dir).unwrap().count();
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    while files() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.disconnect().success());
    let built = files();
    assert_eq!(
        built, 1,
        "recorders built by {launches} concurrent launches"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// An agent meters audio: the loudness figures arrive under the stream's `report` with the
/// issue's names, and `target` changes the gain live.
#[test]
fn an_agent_reads_loudness_and_sets_a_target() {
    let mut server = Server::start();
    let meter = server.call_ok("inspect_handler", json!({ "name": "loudness" }));
    assert!(meter.to_string().contains("target-window"), "{meter}");
    let launched = server.call_ok(
        "launch_pipeline",
        json!({
            "pipeline": "audiotestsrc freq=997 volume=0.1 ! loudness name=meter ! null",
            "clock": "free",
        }),
    );
    let id = launched["id"].as_str().unwrap().to_owned();
    let report_of = |server: &mut Server| {
        let report = server.call_ok("pipeline_stats", json!({ "id": id }));
        report["stats"]["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == "meter"))
            .map(|s| s["report"].clone())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    loop {
        let report = report_of(&mut server);
        // A -20 dBFS sine in both channels: -20 LUFS once the 3 s window filled.
        if report["frames"].as_u64().unwrap_or(0) > 4 * 48_000 {
            for name in [
                "momentary_lufs",
                "short_term_lufs",
                "integrated_lufs",
                "lra_lu",
                "true_peak_dbtp",
            ] {
                assert!(report[name].is_number(), "{name}: {report}");
            }
            let short_term = report["short_term_lufs"].as_f64().unwrap();
            assert!((short_term + 20.0).abs() < 0.2, "{report}");
            break;
        }
        assert!(Instant::now() < deadline, "no audio metered: {report}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.call_ok(
        "set_property",
        json!({ "id": id, "element": "meter", "property": "target", "value": -23 }),
    );
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    loop {
        let report = report_of(&mut server);
        if (report["gain_db"].as_f64().unwrap_or(0.0) + 3.0).abs() < 0.05 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gain never reached -3 dB: {report}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.call_ok("stop_pipeline", json!({ "id": id }));
    assert!(server.disconnect().success());
}
