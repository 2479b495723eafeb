//! webrtcsink against bad and hostile clients: malformed and mutated offers, bodies too
//! large, unknown sessions, wrong media types, and 100 viewers at once. Every one gets a
//! clear refusal, memory stays bounded, the pipeline keeps its rate and a real viewer still
//! gets in afterwards.
#![allow(clippy::print_stderr, reason = "tests print the figures they measured")]

mod whep_common;

use std::time::{Duration, Instant};

use streamlib_webrtc::WebRtcSinkConfig;
use whep_common::{
    assert_bars, loopback, raw_exchange, raw_request, rss_kib, serve, str0m_offer, view, wait_for,
};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

#[test]
fn malformed_offers_get_400_with_a_message_and_never_hurt_the_sink() {
    // Mutations that still parse are answered: room for all of them (they never connect).
    let config = WebRtcSinkConfig {
        max_viewers: 1000,
        connect_timeout: Duration::from_secs(2),
        ..loopback()
    };
    let served = serve(320, 240, 30, config, false);
    let url = &served.url;
    for (body, says) in [
        ("hello", "v=0"),
        ("v=0\r\n", "no media section"),
        (
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "ICE credentials",
        ),
    ] {
        let (status, text) = raw_request(url, "POST", "/whep", &[SDP], body.as_bytes());
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains(says), "{body:?}: {text}");
    }
    // A str0m offer, then many broken variants of it: cut short, lines dropped, lines
    // repeated, bytes replaced. Each is answered (201) or refused (400), never anything else.
    let offer = str0m_offer();
    let lines: Vec<&str> = offer.split("\r\n").collect();
    let mut seed = 0x2545_f491_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut answered = 0;
    for i in 0..120 {
        let mutated: String = match i % 4 {
            0 => offer[..(next() as usize % offer.len())].to_owned(),
            1 => {
                let skip = next() as usize % lines.len();
                lines
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| *n != skip)
                    .map(|(_, l)| *l)
                    .collect::<Vec<_>>()
                    .join("\r\n")
            }
            2 => {
                let twice = next() as usize % lines.len();
                let mut out = lines.clone();
                for _ in 0..(next() % 50) {
                    out.insert(twice, lines[twice]);
                }
                out.join("\r\n")
            }
            _ => {
                let mut bytes = offer.clone().into_bytes();
                for _ in 0..4 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = b"x:= 0\n\r9a"[next() as usize % 9];
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        let (status, text) = raw_request(url, "POST", "/whep", &[SDP], mutated.as_bytes());
        assert!(
            status == 201 || status == 400,
            "mutation {i}: {status} {text}\n{mutated}"
        );
        if status == 400 {
            assert!(!text.trim().is_empty(), "mutation {i}: a 400 says why");
        } else {
            answered += 1;
        }
    }
    let s = served.stats.snapshot();
    assert!(s.offers_refused > 0, "{s:?}");
    eprintln!("120 mutated offers: {answered} answered, the rest refused; {s:?}");
    // Binary junk that is not UTF-8.
    let (status, _) = raw_request(url, "POST", "/whep", &[SDP], &[0xff, 0xfe, 0x00, 0x80]);
    assert_eq!(status, 400);
    // Still serving a real viewer.
    let result = view(url, &["--frames", "20", "--no-audio"]);
    assert!(result["frames"].as_u64() >= Some(20), "{result}");
    assert_bars(&result, 24);
}

#[test]
fn wrong_requests_are_refused_by_status() {
    let served = serve(320, 240, 30, loopback(), false);
    let url = &served.url;
    // Too large: streamlib-http refuses it before reading it whole.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let (status, _) = raw_request(url, "POST", "/whep", &[SDP], &big);
    assert_eq!(status, 413);
    // Not SDP.
    let (status, text) = raw_request(
        url,
        "POST",
        "/whep",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("application/sdp"), "{text}");
    // Unknown sessions.
    let (status, text) = raw_request(url, "DELETE", "/whep/0123456789abcdef", &[], b"");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no WHEP session"), "{text}");
    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let candidate = b"a=candidate:1 1 udp 2113929471 127.0.0.1 50000 typ host\r\n";
    let (status, _) = raw_request(url, "PATCH", "/whep/nope", &[frag], candidate);
    assert_eq!(status, 404);
    // A real session: trickle to it (204), a bad fragment (400), then DELETE (200, then 404).
    let offer = str0m_offer();
    let (status, head, _) = raw_exchange(url, "POST", "/whep", &[SDP], offer.as_bytes());
    assert_eq!(status, 201, "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("a Location: {head}"))
        .trim()
        .to_owned();
    assert!(head.contains("content-type: application/sdp"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let (status, _) = raw_request(url, "PATCH", &location, &[frag], candidate);
    assert_eq!(status, 204);
    let (status, text) = raw_request(url, "PATCH", &location, &[frag], b"hello");
    assert_eq!(status, 400, "{text}");
    let (status, _) = raw_request(url, "PATCH", &location, &[SDP], candidate);
    assert_eq!(status, 415);
    let (status, _) = raw_request(url, "DELETE", &location, &[], b"");
    assert_eq!(status, 200);
    let (status, _) = raw_request(url, "DELETE", &location, &[], b"");
    assert_eq!(status, 404);
    // CORS preflight from a page of another origin.
    let (status, head, _) = raw_exchange(
        url,
        "OPTIONS",
        "/whep",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert!(status == 204 || status == 200, "{status} {head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("access-control-allow-methods:"), "{head}");
    assert!(head.contains("accept-post: application/sdp"), "{head}");
    // The client script is served.
    let (status, body) = raw_request(url, "GET", "/whep.js", &[], b"");
    assert_eq!(status, 200);
    assert!(body.contains("function whepPlay"), "{body}");
}

#[test]
fn a_hundred_viewers_at_once_are_bounded() {
    let config = WebRtcSinkConfig {
        max_viewers: 16,
        connect_timeout: Duration::from_secs(3),
        ..loopback()
    };
    let served = serve(640, 360, 30, config, false);
    let offers: Vec<String> = (0..100).map(|_| str0m_offer()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let (before, rss_before) = (served.stats.snapshot(), rss_kib());
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = offers
            .iter()
            .map(|offer| {
                let url = &served.url;
                scope.spawn(move || raw_request(url, "POST", "/whep", &[SDP], offer.as_bytes()).0)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a client thread panicked"))
            })
            .collect()
    });
    let storm = started.elapsed();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let full = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(created, 16, "{statuses:?}");
    assert_eq!(full, 84, "{statuses:?}");
    let (after, rss_after) = (served.stats.snapshot(), rss_kib());
    assert_eq!(after.offers_over_limit, 84, "{after:?}");
    // Memory: sixteen peers and a hundred requests, not unbounded growth (64 MiB is far
    // above what they need and far below what leaking per request would make).
    let grown = rss_after.saturating_sub(rss_before);
    eprintln!("RSS {rss_before} -> {rss_after} KiB");
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    // The pipeline kept its rate through the storm: frames in over the window at ≥ 70 % of 30 fps.
    let window = storm.as_secs_f64().max(0.5);
    std::thread::sleep(Duration::from_secs(1));
    let later = served.stats.snapshot();
    let rate = (later.frames_in - before.frames_in) as f64 / (window + 1.0);
    assert!(rate > 21.0, "{rate:.1} fps during and after the storm");
    // The sixteen never connect (nobody does ICE for them): dropped after the connect
    // timeout, and a real viewer gets in.
    assert!(
        wait_for(Duration::from_secs(20), || served.stats.snapshot().viewers
            == 0),
        "{:?}",
        served.stats.snapshot()
    );
    let result = view(&served.url, &["--frames", "20", "--no-audio"]);
    assert!(result["frames"].as_u64() >= Some(20), "{result}");
    eprintln!(
        "100 offers in {storm:?}: {created} answered, {full} refused with 503; RSS +{grown} KiB; {rate:.1} fps; {:?}",
        served.stats.snapshot()
    );
}
