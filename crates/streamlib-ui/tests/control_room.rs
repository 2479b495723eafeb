//! The control room of a real pipeline (`testpattern ! blur sigma=2 ! null` on the realtime
//! clock): its JSON API over raw HTTP, its refusals, and its page in real headless Chromium.
//!
//! The registry's `blur` is the real blur wrapped so that the test can see, from the blur's
//! own thread, which sigma it applied: the wrapper's `apply` records the value, then forwards
//! it to the real blur's live handle, which applies it before its next frame. The record is
//! the element's `report`, read back through `/api/stats` like any handler's counters.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use streamlib_launch::{BuiltHandler, LaunchOptions, Registry, Session, parse};
use streamlib_test_support::browser::{self, Browser};
use streamlib_ui::ControlRoom;

const PIPELINE: &str = "testpattern size=160x90 ! blur sigma=2 ! null";

/// The builtin registry with `blur` reporting the sigma its thread last applied.
fn registry() -> Registry {
    let mut registry = Registry::builtin();
    let Some(mut spec) = registry.get("blur").cloned() else {
        panic!("no blur in the builtin registry");
    };
    let inner = Arc::clone(&spec.factory);
    spec.factory = Arc::new(move |props| {
        let built = inner(props)?;
        let Some(real) = built.live else {
            panic!("blur has no live handle");
        };
        let applied = Arc::new(Mutex::new(props.float("sigma")));
        let seen = Arc::clone(&applied);
        let observed = BuiltHandler::live(built.handler, move |_blur, name, value| {
            if name == "sigma" {
                *applied.lock().unwrap_or_else(PoisonError::into_inner) =
                    value.as_float().unwrap_or(f64::NAN);
            }
            real.push(name, value.clone());
            Ok(())
        });
        Ok(observed.with_report(move || {
            json!({ "applied_sigma": *seen.lock().unwrap_or_else(PoisonError::into_inner) })
        }))
    });
    registry.register(spec);
    registry
}

fn start() -> (Session, ControlRoom) {
    let desc = parse(PIPELINE).unwrap_or_else(|e| panic!("{e}"));
    let options = LaunchOptions {
        fps: Some(30.0),
        ..LaunchOptions::default()
    };
    let session =
        Session::start(&registry(), &desc, options).unwrap_or_else(|e| panic!("{PIPELINE}: {e}"));
    let room = ControlRoom::start("127.0.0.1:0", &session).unwrap_or_else(|e| panic!("{e}"));
    (session, room)
}

/// One HTTP/1.1 request over a plain socket; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // A refused body may be answered before it is all sent: a failed write is no failure.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get_json(addr: SocketAddr, path: &str) -> Json {
    let (status, body) = http(addr, "GET", path, b"");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn stream<'a>(stats: &'a Json, id: &str) -> &'a Json {
    stats["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no stream {id} in {stats}"))
}

/// Polls `/api/stats` until `blur0`'s report shows `sigma` applied.
fn wait_applied(addr: SocketAddr, sigma: f64) -> Json {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = get_json(addr, "/api/stats");
        if stream(&stats, "blur0")["report"]["applied_sigma"].as_f64() == Some(sigma) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "blur0 never applied sigma {sigma}: {}",
            stream(&stats, "blur0")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn api_serves_graph_stats_and_property_changes() {
    let (session, room) = start();
    let addr = room.local_addr();
    assert!(addr.ip().is_loopback());

    let graph = get_json(addr, "/api/graph");
    assert_eq!(graph["pipeline"], session.desc().to_text());
    let names: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{graph}"))
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["testpattern0", "blur0", "null0"], "{graph}");
    let blur = &graph["nodes"][1];
    let sigma = blur["properties"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "sigma"))
        .unwrap_or_else(|| panic!("no sigma in {blur}"));
    assert_eq!(sigma["live"], true);
    assert_eq!(sigma["value"], "2");
    assert_eq!(sigma["type"]["type"], "float", "{sigma}");
    let edges = graph["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{graph}"));
    assert_eq!(edges.len(), 2);
    assert!(
        edges[0]["caps"]
            .as_str()
            .is_some_and(|c| c.contains("160x90")),
        "{}",
        edges[0]
    );

    // The statistics move on: a window, not an instant.
    let first = get_json(addr, "/api/stats");
    std::thread::sleep(Duration::from_millis(700));
    let second = get_json(addr, "/api/stats");
    assert_eq!(second["running"], true);
    let ticks = |s: &Json| stream(s, "blur0")["ticks"].as_u64().unwrap_or(0);
    assert!(
        ticks(&second) > ticks(&first),
        "{} then {}",
        ticks(&first),
        ticks(&second)
    );

    let (status, body) = http(addr, "POST", "/api/elements/blur0/properties/sigma", b"4.5");
    assert_eq!(status, 200, "{body}");
    wait_applied(addr, 4.5);
    let props = session
        .controls()
        .properties("blur0")
        .unwrap_or_else(|| panic!("no blur0"));
    assert_eq!(props.float("sigma"), 4.5);

    // The page and its scripts are served, with their types.
    let (status, page) = http(addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(page.contains("/assets/app.js"), "{page}");
    let (status, _) = http(addr, "GET", "/assets/app.js", b"");
    assert_eq!(status, 200);
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let (_session, room) = start();
    let addr = room.local_addr();
    let cases: [(&str, &[u8], u16, &str); 6] = [
        ("/api/elements/nosuch/properties/sigma", b"3", 404, "nosuch"),
        ("/api/elements/blur0/properties/nosuch", b"3", 404, "nosuch"),
        ("/api/elements/blur0/properties/sigma", b"-7", 400, "sigma"),
        (
            "/api/elements/blur0/properties/sigma",
            b"lots",
            400,
            "sigma",
        ),
        (
            "/api/elements/testpattern0/properties/size",
            b"64x64",
            400,
            "live",
        ),
        (
            "/api/elements/blur0/properties/sigma",
            &[0xff, 0xfe],
            400,
            "",
        ),
    ];
    for (path, body, want, names) in cases {
        let (status, answer) = http(addr, "POST", path, body);
        assert_eq!(status, want, "POST {path} {body:?}: {answer}");
        assert!(answer.contains(names), "POST {path}: {answer}");
        if want == 404 || names == "sigma" {
            let error: Json = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}"));
            assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    let huge = vec![b'1'; streamlib_ui::MAX_BODY + 1];
    let (status, _) = http(addr, "POST", "/api/elements/blur0/properties/sigma", &huge);
    assert_eq!(status, 413);
    let (status, answer) = http(addr, "GET", "/assets/../../etc/passwd", b"");
    assert_eq!(status, 404, "{answer}");
    // Nothing refused reached the blur.
    let stats = get_json(addr, "/api/stats");
    assert_eq!(stream(&stats, "blur0")["report"]["applied_sigma"], 2.0);
}

#[test]
fn a_port_alone_listens_on_loopback_only() {
    let desc = parse(PIPELINE).unwrap_or_else(|e| panic!("{e}"));
    let session = Session::start(&registry(), &desc, LaunchOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    for addr in ["0", ":0"] {
        let room = ControlRoom::start(addr, &session).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            room.local_addr().ip().is_loopback(),
            "{addr}: {}",
            room.url()
        );
    }
    let named = ControlRoom::start("0.0.0.0:0", &session).unwrap_or_else(|e| panic!("{e}"));
    assert!(named.local_addr().ip().is_unspecified());
    let err = ControlRoom::start("example.com:80", &session)
        .err()
        .unwrap_or_else(|| panic!("a host name was bound"));
    assert!(err.to_string().contains("example.com"), "{err}");
}

#[test]
fn page_in_chromium_names_every_element_and_changes_reach_the_handler() {
    if browser::skip("page_in_chromium_names_every_element_and_changes_reach_the_handler") {
        return;
    }
    let (session, room) = start();
    let addr = room.local_addr();
    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&room.url()).unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(
        "window.controlRoom && window.controlRoom.ready",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Every element is named on the page, in the drawn graph and in its card.
    for name in session.controls().elements() {
        let script = format!(
            "return document.body.innerText.includes({n:?}) \
             && !!document.querySelector('#graph svg [data-element={n:?}]') \
             && !!document.querySelector('#elements .element[data-element={n:?}]');",
            n = name
        );
        let shown = b.eval(&script).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown, true, "{name} is not on the page");
    }

    // The statistics update: ticks shown for blur0 grow between two reads.
    let read_ticks = "return Number(document.querySelector(\
        '#elements .element[data-element=\"blur0\"] [data-stat=\"ticks\"]').textContent) || 0;";
    b.wait_for(
        "window.controlRoom.statsUpdates >= 2",
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let first = b.eval(read_ticks).unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(
        &format!(
            "Number(document.querySelector('#elements .element[data-element=\"blur0\"] \
             [data-stat=\"ticks\"]').textContent) > {first}"
        ),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("ticks on the page stayed at {first}: {e}"));

    // A user types a new sigma and leaves the field: the blur's thread applies it.
    let type_value = |value: &str| {
        b.eval(&format!(
            "const i = document.querySelector('input[data-element=\"blur0\"][data-property=\"sigma\"]');\
             i.focus(); i.value = {value:?}; i.dispatchEvent(new Event('change', {{bubbles: true}})); return true;"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    type_value("6");
    wait_applied(addr, 6.0);
    let msg = "document.querySelector('input[data-element=\"blur0\"][data-property=\"sigma\"]')\
               .closest('.prop').querySelector('.msg')";
    b.wait_for(
        &format!("{msg}.textContent.includes('applied')"),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // A refused value shows the server's reason beside the control; the blur keeps 6.
    type_value("-3");
    let shown = b
        .wait_for(
            &format!("{msg}.classList.contains('error') && {msg}.textContent"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        shown.as_str().is_some_and(|t| t.contains("sigma")),
        "error shown: {shown}"
    );
    let stats = get_json(addr, "/api/stats");
    assert_eq!(stream(&stats, "blur0")["report"]["applied_sigma"], 6.0);

    let errors = b.errors().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        errors.iter().all(|e| e.contains("400")),
        "console errors other than the refused POST: {errors:?}"
    );
}

#[test]
fn a_bound_room_answers_503_until_the_pipeline_is_attached() {
    let room = ControlRoom::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = room.local_addr();
    let (status, page) = http(addr, "GET", "/", b"");
    assert_eq!(status, 200, "the page is served at once");
    assert!(page.contains("control room"));
    for path in ["/api/graph", "/api/stats"] {
        let (status, body) = http(addr, "GET", path, b"");
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("starting"), "{body}");
    }
    let (status, _) = http(addr, "POST", "/api/elements/blur0/properties/sigma", b"3");
    assert_eq!(status, 503);
    let desc = parse(PIPELINE).unwrap_or_else(|e| panic!("{e}"));
    let session = Session::start(&registry(), &desc, LaunchOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    room.attach(&session);
    assert_eq!(
        get_json(addr, "/api/graph")["nodes"][0]["name"],
        "testpattern0"
    );
}

#[test]
fn per_port_properties_get_a_control_for_each_port() {
    let text = "compositor name=mix size=160x90 layers=2 layer1.opacity=0.5 ! null  \
                testpattern size=160x90 ! mix.layer0  testpattern size=160x90 ! mix.layer1";
    let desc = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let session = Session::start(&Registry::builtin(), &desc, LaunchOptions::default())
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let room = ControlRoom::start("127.0.0.1:0", &session).unwrap_or_else(|e| panic!("{e}"));
    let graph = get_json(room.local_addr(), "/api/graph");
    let mix = graph["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "mix"))
        .unwrap_or_else(|| panic!("no mix in {graph}"));
    let value = |name: &str| {
        mix["properties"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == name && p["live"] == true))
            .map(|p| p["value"].clone())
            .unwrap_or_else(|| panic!("no live {name} in {mix}"))
    };
    // Not given: no value, the handler's own default applies.
    assert_eq!(value("layer0.opacity"), Json::Null);
    assert_eq!(value("layer1.opacity"), "0.5");
    let names: Vec<&str> = mix["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("layer2")), "{names:?}");
    let (status, body) = http(
        room.local_addr(),
        "POST",
        "/api/elements/mix/properties/layer0.opacity",
        b"0.25",
    );
    assert_eq!(status, 200, "{body}");
}
