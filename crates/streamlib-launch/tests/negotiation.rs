//! Formats negotiated from pipeline text, as a user types it: nothing repeated, converters
//! inserted and shown in the graph dumps, and the errors at build that name the link, both
//! caps and the fix.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_launch::{LaunchError, LaunchOptions, Policy, Registry, Session, parse};

fn graph(text: &str, options: &LaunchOptions) -> Result<streamlib_launch::Graph, LaunchError> {
    let desc = parse(text)?;
    Session::negotiated_graph(&Registry::builtin(), &desc, options, &Policy::default())
}

#[test]
fn uyvy_into_blur_and_compositor_gets_a_converter_and_runs() {
    let text = "testpattern size=64x48 format=uyvy ! blur ! compositor size=64x48 ! null";
    let g = graph(text, &LaunchOptions::default()).unwrap();
    let first = &g.edges[0];
    assert_eq!(first.from, "testpattern0.video");
    assert_eq!(first.converters.len(), 1, "{g:?}");
    assert!(first.converters[0].starts_with("convert-"), "{g:?}");
    assert!(
        first.caps.starts_with("video rgba8 64x48"),
        "{}",
        first.caps
    );
    assert!(
        g.nodes
            .iter()
            .any(|n| n.name == first.converters[0] && n.inserted.is_some()),
        "{g:?}"
    );
    // The dumps say it too.
    let dot = g.to_dot();
    assert!(dot.contains(&first.converters[0]), "{dot}");
    assert!(dot.contains("video rgba8 64x48 30"), "{dot}");
    assert!(g.to_json().contains("\"caps\": \"video rgba8 64x48 30\""));
    // And it runs: every frame reaches the sink.
    let desc = parse(text).unwrap();
    let options = LaunchOptions {
        frames: Some(10),
        clock: streamlib_launch::ClockKind::Free,
        ..LaunchOptions::default()
    };
    let mut session = Session::start(&Registry::builtin(), &desc, options).unwrap();
    let stats = session.wait().unwrap();
    let sink = stats.streams.iter().find(|s| s.id == "null0").unwrap();
    assert_eq!(sink.items_in, 10, "{stats}");
    assert!(stats.streams.iter().all(|s| s.rejected() == 0), "{stats}");
}

#[test]
fn nothing_inserted_where_formats_meet() {
    let g = graph(
        "testpattern size=32x32 ! blur ! null",
        &LaunchOptions::default(),
    )
    .unwrap();
    assert!(g.edges.iter().all(|e| e.converters.is_empty()), "{g:?}");
    assert!(g.nodes.iter().all(|n| n.inserted.is_none()), "{g:?}");
    assert_eq!(g.edges[0].caps, "video rgba8 32x32 30");
}

#[test]
fn the_rate_chosen_is_on_every_link() {
    let options = LaunchOptions {
        fps: Some(29.97),
        ..LaunchOptions::default()
    };
    let g = graph("testpattern size=32x32 ! null", &options).unwrap();
    assert_eq!(g.edges[0].caps, "video rgba8 32x32 30000/1001");
}

#[test]
fn auto_convert_off_is_an_error_naming_both_sides() {
    let options = LaunchOptions {
        auto_convert: false,
        ..LaunchOptions::default()
    };
    let err = graph("testpattern size=64x48 format=uyvy ! blur ! null", &options)
        .unwrap_err()
        .to_string();
    for part in [
        "testpattern0.video",
        "blur0.video",
        "video uyvy 64x48",
        "format",
        "auto-convert is off",
        "convert",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
fn video_into_an_audio_input_is_refused_by_name() {
    #[cfg(feature = "net")]
    {
        let err = graph(
            "testpattern ! networkaudiosend destination=127.0.0.1:5999",
            &LaunchOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("networkaudiosend0"), "{err}");
        assert!(err.contains("video"), "{err}");
    }
}

/// `streamlib graph` builds the handlers to show their caps, and must write nothing: the
/// senders write their SDP files when the pipeline starts.
#[cfg(feature = "net")]
#[test]
fn building_for_the_graph_writes_no_sdp() {
    let dir = std::env::temp_dir().join(format!("streamlib-graph-sdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (video, audio) = (dir.join("video.sdp"), dir.join("audio.sdp"));
    let text = format!(
        "testpattern size=64x48 ! networksend destination=127.0.0.1:9 sdp={}",
        video.display()
    );
    graph(&text, &LaunchOptions::default()).unwrap();
    assert!(!video.exists(), "the video SDP was written at build");
    let desc = parse(&format!(
        "networkaudioreceive bind=127.0.0.1:0 ! networkaudiosend destination=127.0.0.1:9 sdp={}",
        audio.display()
    ))
    .unwrap();
    let policy = Policy::default();
    Session::negotiated_graph(
        &Registry::builtin(),
        &desc,
        &LaunchOptions::default(),
        &policy,
    )
    .unwrap();
    assert!(!audio.exists(), "the audio SDP was written at build");
    std::fs::remove_dir_all(&dir).ok();
}
