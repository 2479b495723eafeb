//! webrtcsink in a real browser: headless Chromium loads a page from another origin, which
//! plays the WHEP stream into a `<video>` with the sink's own `/whep.js`; the bar colours are
//! checked from a canvas `drawImage` of the video and from a screenshot, and the frame stamp
//! gives the glass-to-glass latency.
#![allow(clippy::print_stderr, reason = "tests print the figures they measured")]

mod whep_common;

use std::time::Duration;

use streamlib_http::axum::Router;
use streamlib_http::axum::response::Html;
use streamlib_http::axum::routing::get;
use streamlib_http::{HttpServer, Limits};
use streamlib_test_support::browser::{self, Browser};
use whep_common::{BARS, loopback, serve_stamped};

/// A page on its own server (another origin than the sink's): loads `/whep.js` from the sink
/// and plays `whep_url` into a 640x360 `<video>` at the page's top-left corner.
fn page_server(whep_url: &str) -> HttpServer {
    let base = whep_url.trim_end_matches("/whep");
    let html = format!(
        r#"<!doctype html>
<html><head><style>body {{ margin: 0; background: #000; }} video {{ display: block; }}</style></head>
<body>
<video id="v" autoplay muted playsinline width="640" height="360"></video>
<script src="{base}/whep.js"></script>
<script>
window.whepState = {{ state: "starting" }};
whepPlay("{whep_url}", document.getElementById("v"))
  .then((s) => {{ window.whepSession = s; window.whepState = {{ state: "answered" }}; }})
  .catch((e) => {{ window.whepState = {{ state: "error", error: String(e) }}; }});
window.sampleBars = function () {{
  const v = document.getElementById("v");
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(v, 0, 0);
  const y = Math.floor(c.height / 3);
  const bars = [];
  for (let i = 0; i < 7; i++) {{
    const x = Math.floor((2 * i + 1) * c.width / 14);
    const d = ctx.getImageData(x - 2, y - 2, 5, 5).data;
    const sum = [0, 0, 0];
    for (let p = 0; p < 25; p++) {{ for (let k = 0; k < 3; k++) sum[k] += d[p * 4 + k]; }}
    bars.push(sum.map((s) => Math.round(s / 25)));
  }}
  return {{ width: c.width, height: c.height, bars: bars }};
}};
</script>
</body></html>"#
    );
    let router = Router::new().route("/", get(move || async move { Html(html) }));
    HttpServer::start(
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        router,
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn near(got: &serde_json::Value, want: [u8; 3], tolerance: i64) -> bool {
    (0..3).all(|c| (got[c].as_i64().unwrap_or(-1000) - i64::from(want[c])).abs() <= tolerance)
}

/// Opens the page for `url` and waits until the video plays.
fn playing(url: &str) -> Option<(Browser, HttpServer)> {
    if browser::skip("webrtcsink in Chromium") {
        return None;
    }
    let page = page_server(url);
    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&page.url("/")).unwrap_or_else(|e| panic!("{e}"));
    let played = b.wait_for(
        "document.getElementById('v').videoWidth > 0 && document.getElementById('v').currentTime > 1",
        Duration::from_secs(60),
    );
    if let Err(e) = played {
        let state = b.eval("return window.whepState").unwrap_or_default();
        let log = b.console_log().unwrap_or_default();
        panic!("the video did not play: {e}\nstate: {state}\nconsole: {log:?}");
    }
    Some((b, page))
}

#[test]
fn chromium_plays_the_whep_stream_with_the_bars() {
    let served = serve_stamped(640, 360, 30, loopback(), true, false);
    let Some((b, _page)) = playing(&served.url) else {
        return;
    };
    let sampled = b
        .eval("return window.sampleBars()")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sampled["width"], 640, "{sampled}");
    assert_eq!(sampled["height"], 360, "{sampled}");
    for (i, want) in BARS.iter().enumerate() {
        assert!(
            near(&sampled["bars"][i], *want, 24),
            "canvas bar {i}: {sampled}"
        );
    }
    // The screenshot shows the same bars where the video element is.
    let shot = b.screenshot().unwrap_or_else(|e| panic!("{e}"));
    for (i, want) in BARS.iter().enumerate() {
        let x = (2 * i as u32 + 1) * 640 / 14;
        let px = shot.pixel(x, 120);
        let got = serde_json::json!([px[0], px[1], px[2]]);
        assert!(
            near(&got, *want, 28),
            "screenshot bar {i} at ({x}, 120): {px:?}"
        );
    }
    // Stopping the page's session DELETEs it: the sink drops the viewer.
    b.eval_async("const done = arguments[arguments.length - 1]; window.whepSession.stop().then(() => done(true));")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        whep_common::wait_for(Duration::from_secs(10), || served.stats.snapshot().viewers
            == 0),
        "{:?}",
        served.stats.snapshot()
    );
    eprintln!(
        "Chromium played the bars: {sampled}; sink {:?}",
        served.stats.snapshot()
    );
}

#[test]
fn glass_to_glass_latency_in_chromium_at_720p30() {
    // H.264: libvpx's VP8 takes ~50 ms of CPU per 720p frame on this machine (whep_viewers.rs).
    let config = streamlib_webrtc::WebRtcSinkConfig {
        codec: streamlib_webrtc::VideoCodec::H264,
        ..loopback()
    };
    let served = serve_stamped(1280, 720, 30, config, false, true);
    let Some((b, _page)) = playing(&served.url) else {
        return;
    };
    b.eval(&format!(
        "{}; return true;",
        streamlib_test_support::stamp::DECODE_JS
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    // Every presented frame for 8 s: its stamp against the page's clock (same machine).
    let measured = b
        .eval_async(
            r#"
const done = arguments[arguments.length - 1];
const v = document.getElementById("v");
const lat = []; const frames = new Set(); let bad = 0;
const end = performance.now() + 8000;
function tick() {
  const s = window.streamlibStamp(v, v.videoWidth, v.videoHeight);
  if (s) { lat.push(Date.now() - s.ms); frames.add(s.frame); } else { bad++; }
  if (performance.now() < end) { v.requestVideoFrameCallback(tick); }
  else {
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    done({ n: lat.length, distinct: frames.size, bad: bad, p50: q(0.5), p95: q(0.95), max: lat[lat.length - 1] });
  }
}
v.requestVideoFrameCallback(tick);
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "WHEP 720p30 H.264 glass-to-glass in Chromium on loopback: {measured}; sink {:?}",
        served.stats.snapshot()
    );
    // Congestion control: Chromium's transport-wide feedback gave str0m's estimator an
    // estimate that moved the shared encoder's bitrate, within the configured bounds.
    let s = served.stats.snapshot();
    assert!(
        s.bitrate_changes >= 1,
        "the estimate never moved the encoder: {s:?}"
    );
    assert!(
        (300_000..=6_000_000).contains(&s.encoder_bitrate_bps),
        "{s:?}"
    );
    let n = measured["n"].as_u64().unwrap_or(0);
    assert!(n > 60, "stamps read from presented frames: {measured}");
    // A loose bound that still fails on a stream that stalls or buffers for seconds; the
    // figure itself (goal < 150 ms) is reported, not asserted, on a shared 2-core machine.
    let p50 = measured["p50"].as_i64().unwrap_or(i64::MAX);
    assert!((0..1000).contains(&p50), "{measured}");
}
