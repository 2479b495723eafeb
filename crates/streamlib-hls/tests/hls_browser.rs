//! A real browser plays what `hlssink` serves: Debian's Chromium (headless) with hls.js from
//! npm, on a page served from another origin, plays the live stream of a running pipeline
//! (`TestPattern` → `HlsSink` on a real-time clock) into a `<video>`; the SMPTE bars are
//! checked in a canvas the video is drawn into and in a screenshot, and the frame stamp
//! gives the glass-to-glass latency.
#![allow(
    clippy::print_stderr,
    reason = "the tests print the latency they measured"
)]

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use streamlib_clock::{Rational, SoftwareClock};
use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig};
use streamlib_hls::{HlsConfig, HlsSink};
use streamlib_http::axum::Router;
use streamlib_http::axum::http::header;
use streamlib_http::axum::response::{Html, IntoResponse};
use streamlib_http::axum::routing::get;
use streamlib_http::{HttpServer, Limits};
use streamlib_runtime::{Stream, StreamRuntime};
use streamlib_test_support::browser::{self, Browser};
use streamlib_test_support::media::temp_dir;
use streamlib_test_support::stamp;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

/// The 75 % bars of `pattern=smpte`, left to right.
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The test page; `hls_config` is hls.js's configuration (a JS object literal).
fn page(src: &str, hls_config: &str) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline width="{WIDTH}" height="{HEIGHT}"
  style="position:absolute;left:0;top:0;width:{WIDTH}px;height:{HEIGHT}px"></video>
<script src="/hls.min.js"></script>
<script>
window.support = {{
  h264: MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"'),
  h264high: MediaSource.isTypeSupported('video/mp4; codecs="avc1.640028"'),
  hevc: MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'),
  vp9: MediaSource.isTypeSupported('video/mp4; codecs="vp09.00.10.08"'),
  hlsjs: typeof Hls !== 'undefined' && Hls.isSupported(),
}};
window.hlsErrors = [];
const v = document.getElementById('v');
const hls = new Hls({hls_config});
hls.on(Hls.Events.ERROR, (_, d) => window.hlsErrors.push(d.type + ':' + d.details + (d.fatal ? ':fatal' : '')));
hls.loadSource('{src}');
hls.attachMedia(v);
v.play().catch(e => window.hlsErrors.push('play:' + e));
window.bars = function () {{
  const c = document.createElement('canvas');
  c.width = {WIDTH}; c.height = {HEIGHT};
  const ctx = c.getContext('2d', {{ willReadFrequently: true }});
  ctx.drawImage(v, 0, 0, {WIDTH}, {HEIGHT});
  const out = [];
  for (let i = 0; i < 7; i++) {{
    const x = Math.floor((i + 0.5) * {WIDTH} / 7);
    out.push(Array.from(ctx.getImageData(x, Math.floor({HEIGHT} / 3), 1, 1).data.slice(0, 3)));
  }}
  return out;
}};
</script></body></html>"#
    )
}

fn close(actual: [u8; 3], expected: [u8; 3]) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= 40)
}

fn rgb(value: &Value) -> [u8; 3] {
    let c = |i: usize| {
        value
            .get(i)
            .and_then(Value::as_u64)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(0)
    };
    [c(0), c(1), c(2)]
}

/// Runs `TestPattern` → `HlsSink` (`part_duration` 0: plain HLS) in real time, plays it in
/// Chromium, checks the bars and returns the mean glass-to-glass latency in ms.
fn plays_in_chromium(name: &str, part_duration: f64) -> Option<f64> {
    if browser::skip(name) {
        return None;
    }
    let script = browser::web_module("hls.js/dist/hls.min.js")
        .unwrap_or_else(|| panic!("hls.js is missing: run `cargo xtask setup`"));
    let script = std::fs::read(&script).unwrap_or_else(|e| panic!("{}: {e}", script.display()));

    let port = free_port();
    let mut config = HlsConfig::new(temp_dir("hls-browser", name));
    config.target_duration = 1.0;
    config.part_duration = part_duration;
    config.bitrate = 1_000_000;
    config.serve = Some(
        format!("127.0.0.1:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let sink = HlsSink::new(config).unwrap_or_else(|e| panic!("{e}"));
    let sink_input = sink.input();
    let source = TestPattern::new(TestPatternConfig {
        moving_box: false,
        ..TestPatternConfig::new(WIDTH, HEIGHT, Pattern::SmpteBars)
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .with_stamp(true);
    let source_output = source.output();
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(30)));
    runtime
        .add_stream(Stream::new("source", source))
        .unwrap_or_else(|e| panic!("{e}"));
    runtime
        .add_stream(Stream::new("hls", sink))
        .unwrap_or_else(|e| panic!("{e}"));
    runtime
        .connect(&source_output, &sink_input)
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.start().unwrap_or_else(|e| panic!("{e}"));

    // The page comes from another origin than the stream: the sink's CORS header is tested.
    let src = format!("http://127.0.0.1:{port}/index.m3u8");
    // LL-HLS: hls.js holds back PART-HOLD-BACK (3 parts) from the live edge; plain HLS:
    // two segments.
    let hls_config = if part_duration > 0.0 {
        "{ lowLatencyMode: true }"
    } else {
        "{ lowLatencyMode: false, liveSyncDurationCount: 2 }"
    };
    let html = page(&src, hls_config);
    let router = Router::new()
        .route("/", get(move || async move { Html(html) }))
        .route(
            "/hls.min.js",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    script,
                )
                    .into_response()
            }),
        );
    let pages = HttpServer::start(
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        router,
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&pages.url("/")).unwrap_or_else(|e| panic!("{e}"));
    let support = b
        .wait_for("window.support", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: Chromium MSE support: {support}");
    assert_eq!(support["hlsjs"], true, "hls.js runs: {support}");
    assert_eq!(
        support["h264"], true,
        "this Chromium cannot decode H.264 in MSE ({support}); the stream is H.264"
    );
    let playing = b.wait_for(
        "(() => { const v = document.getElementById('v'); \
         return v.readyState >= 2 && v.currentTime > 1.5 && !v.paused; })()",
        Duration::from_secs(90),
    );
    let errors = b.eval("return window.hlsErrors").unwrap_or(Value::Null);
    playing.unwrap_or_else(|e| panic!("{e}; hls.js errors: {errors}"));

    let bars = b
        .eval("return window.bars()")
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, expected) in BARS.iter().enumerate() {
        let actual = rgb(&bars[i]);
        assert!(
            close(actual, *expected),
            "bar {i}: canvas shows {actual:?}, the pattern is {expected:?} (all: {bars})"
        );
    }
    let shot = b.screenshot().unwrap_or_else(|e| panic!("{e}"));
    for (i, expected) in BARS.iter().enumerate() {
        let x = (i as u32 * 2 + 1) * WIDTH / 14;
        let [r, g, bl, _] = shot.pixel(x, HEIGHT / 3);
        assert!(
            close([r, g, bl], *expected),
            "bar {i}: the screenshot shows {:?} at ({x}, {}), the pattern is {expected:?}",
            [r, g, bl],
            HEIGHT / 3
        );
    }

    // Glass to glass: the stamp's wall-clock time against the page's, over 20 samples.
    b.eval(&format!("{}; return true;", stamp::DECODE_JS))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let value = b
            .eval(&format!(
                "const s = streamlibStamp(document.getElementById('v'), {WIDTH}, {HEIGHT}); \
                 return s ? Date.now() - s.ms : null;"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(ms) = value.as_f64() {
            latencies.push(ms);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(latencies.len() >= 10, "stamps read: {latencies:?}");
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    let errors = b.eval("return window.hlsErrors").unwrap_or(Value::Null);
    eprintln!(
        "{name}: glass-to-glass latency mean {mean:.0} ms over {} samples (min {:.0}, max {:.0}); hls.js errors: {errors}",
        latencies.len(),
        latencies.iter().copied().fold(f64::INFINITY, f64::min),
        latencies.iter().copied().fold(0.0, f64::max),
    );
    drop(b);
    runtime.stop().unwrap_or_else(|e| panic!("{e}"));
    Some(mean)
}

#[test]
fn chromium_plays_the_live_stream_with_hls_js() {
    if let Some(mean) = plays_in_chromium("hls", 0.0) {
        // Two 1 s segments behind the live edge, plus the one being written.
        assert!(mean < 10_000.0, "HLS latency {mean:.0} ms");
    }
}

#[test]
fn chromium_plays_low_latency_hls_under_two_seconds() {
    if let Some(mean) = plays_in_chromium("ll-hls", 0.2) {
        assert!(
            mean < 2_000.0,
            "LL-HLS latency {mean:.0} ms, the goal is < 2 s"
        );
    }
}
