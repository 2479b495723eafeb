//! Preview taps for real: `webrtcsink` on each video output, and the control room page playing
//! one over WHEP in headless Chromium, its picture checked bar by bar.

use std::time::Duration;

use serde_json::Value as Json;
use streamlib_launch::{LaunchOptions, Registry, Session, parse};
use streamlib_test_support::browser::{self, Browser};
use streamlib_ui::ControlRoom;

/// The 75 % SMPTE top bars, left to right (streamlib-handlers-video's test pattern).
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

const TAP: &str = "preview_testpattern0_video";

fn report_of(stats: &Json, id: &str) -> Json {
    stats["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .map(|s| s["report"].clone())
        .unwrap_or(Json::Null)
}

#[test]
fn the_page_plays_a_preview_tap_of_the_test_pattern() {
    if browser::skip("the_page_plays_a_preview_tap_of_the_test_pattern") {
        return;
    }
    let registry = Registry::builtin();
    let mut desc =
        parse("testpattern size=320x180 ! blur sigma=1 ! null").unwrap_or_else(|e| panic!("{e}"));
    let mut room = ControlRoom::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let taps = room.add_previews(&mut desc, &registry).to_vec();
    let sources: Vec<&str> = taps.iter().map(|t| t.source.as_str()).collect();
    assert_eq!(sources, ["testpattern0.video", "blur0.video"]);
    let options = LaunchOptions {
        fps: Some(30.0),
        ..LaunchOptions::default()
    };
    let session = Session::start(&registry, &desc, options).unwrap_or_else(|e| panic!("{e}"));
    room.attach(&session);

    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&room.url()).unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(
        "window.controlRoom && window.controlRoom.ready",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The graph marks the taps as such.
    let marked = b
        .eval(&format!(
            "return !!document.querySelector('#graph svg .node.preview[data-element=\"{TAP}\"]');"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(marked, true);
    let stats = b
        .wait_for(
            &format!(
                "(() => {{ const s = window.controlRoom.lastStats; if (!s) return null; \
                 const t = s.streams.find(s => s.id === '{TAP}'); \
                 return t && t.report && t.report.whep_url ? s : null; }})()"
            ),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // Nobody watches yet: nothing encoded.
    assert_eq!(report_of(&stats, TAP)["frames_encoded"], 0, "{stats}");

    b.eval(&format!(
        "document.querySelector('#preview-select').value = '{TAP}';\
         document.querySelector('#preview-play').click(); return true;"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    b.wait_for(
        "(() => { const v = document.querySelector('#preview'); \
         return v.videoWidth > 0 && v.currentTime > 1; })()",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| {
        let status = b.eval("return document.querySelector('#preview-status').textContent;");
        panic!("{e}; preview status {status:?}")
    });
    let pixels = b
        .eval(
            "const v = document.querySelector('#preview');\
             const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;\
             const ctx = c.getContext('2d'); ctx.drawImage(v, 0, 0);\
             const out = [];\
             for (let i = 0; i < 7; i++) {\
               const d = ctx.getImageData(Math.floor((i + 0.5) * c.width / 7), Math.floor(c.height / 4), 1, 1).data;\
               out.push([d[0], d[1], d[2]]);\
             }\
             return {width: c.width, height: c.height, bars: out};",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pixels["width"], 320, "{pixels}");
    assert_eq!(pixels["height"], 180, "{pixels}");
    for (i, want) in BARS.iter().enumerate() {
        let got: Vec<i64> = pixels["bars"][i]
            .as_array()
            .map(|p| p.iter().filter_map(Json::as_i64).collect())
            .unwrap_or_default();
        let close = got.len() == 3
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| (g - i64::from(*w)).abs() <= 40);
        assert!(close, "bar {i}: {got:?}, want {want:?} ({pixels})");
    }
    let stats = b
        .eval("return window.controlRoom.lastStats;")
        .unwrap_or_else(|e| panic!("{e}"));
    let report = report_of(&stats, TAP);
    assert!(
        report["frames_encoded"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    // The other tap has no viewer, so it encodes nothing.
    let other = report_of(&stats, "preview_blur0_video");
    assert_eq!(other["frames_encoded"], 0, "{other}");
}
