//! What a pipeline may reach: each attack an agent could try through a pipeline description
//! (overwrite a file, open a network output or a pipe through FFmpeg, read stdin or a device,
//! leave the allowed folders, reach past loopback, read a file's line through a parse error,
//! stall the server with a long near-miss name) is tried here and must be refused; and a dry
//! run must leave no trace (no file, no frame pool) while negotiating what a build would.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
#![cfg_attr(
    not(all(feature = "file", feature = "net")),
    allow(
        unused_imports,
        dead_code,
        reason = "the helpers serve the file and net tests"
    )
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use streamlib_clock::{FreeRunningClock, ManualClock, Rational};
use streamlib_launch::{
    LaunchError, Policy, PolicyError, Registry, build, build_with, dry_run, parse, validate_with,
};
use streamlib_runtime::StreamRuntime;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "streamlib-launch-policy-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

/// The error `text` meets when validated under `policy`.
fn refused(text: &str, policy: &Policy) -> LaunchError {
    let desc = parse(text).unwrap();
    match validate_with(&Registry::builtin(), &desc, policy) {
        Ok(()) => panic!("`{text}` was accepted"),
        Err(e) => e,
    }
}

/// A confined policy allowing `dir` for reading and writing.
fn inside(dir: &std::path::Path) -> Policy {
    Policy::confined()
        .allow_read(dir)
        .unwrap()
        .allow_write(dir)
        .unwrap()
}

/// A graph without what only a built handler knows: its format caps and the converters
/// they call for.
fn memory_view(graph: &streamlib_launch::Graph) -> (Vec<String>, Vec<String>) {
    let nodes = graph
        .nodes
        .iter()
        .filter(|n| n.handler == "transfer" || n.inserted.is_none())
        .map(|n| format!("{} {} {:?}", n.name, n.handler, n.dispatcher))
        .collect();
    let edges = graph
        .edges
        .iter()
        .map(|e| format!("{} {} {} {:?}", e.from, e.to, e.memory, e.transfer))
        .collect();
    (nodes, edges)
}

#[test]
fn a_dry_run_negotiates_what_a_build_would() {
    let registry = Registry::builtin();
    for text in [
        "testpattern size=64x36 ! blur sigma=1.5 ! null",
        "compositor name=mix layers=3 ! null  testpattern ! mix.layer0  testpattern ! mix.layer2",
        "testpattern ! compositor ! null",
        "testpattern size=64x36 ! drawing size=64x36 ! convert format=uyvy ! null",
        "drawing ! null",
    ] {
        let desc = parse(text).unwrap();
        let (clock, _never) = ManualClock::new(Rational::fps(30));
        let built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
        let dry = dry_run(&registry, &desc, &Policy::default()).unwrap();
        // Stand-ins carry their ports' memory, not the formats a built handler declares
        // from its properties: a dry run negotiates memory and wiring alike, formats not.
        assert_eq!(memory_view(&dry), memory_view(&built.graph), "{text}");
        assert!(dry.edges.iter().all(|e| e.caps == "any"), "{text}");
    }
    // What a build refuses for the links, a dry run refuses too.
    for text in [
        "compositor name=mix layers=2 ! null  testpattern ! mix.layer2",
        "blur ! null",
        "null name=n  testpattern ! n.nothing",
    ] {
        let desc = parse(text).unwrap();
        assert!(
            dry_run(&registry, &desc, &Policy::default()).is_err(),
            "{text}"
        );
    }
}

#[cfg(all(feature = "net", feature = "file"))]
#[test]
fn a_dry_run_writes_no_file() {
    let dir = temp_dir("victim");
    let victim = dir.join("victim");
    let sdp = dir.join("stream.sdp");
    let recording = dir.join("out.mkv");
    let text = format!(
        "testpattern size=64x36 format=uyvy ! networksend destination=127.0.0.1:9 size=64x36 \
         sampling=ycbcr422-8 sdp={}  testpattern size=64x36 ! filewriter location={}",
        sdp.display(),
        recording.display()
    );
    let desc = parse(&text).unwrap();
    dry_run(&Registry::builtin(), &desc, &inside(&dir)).unwrap();
    assert!(!sdp.exists(), "the dry run wrote the SDP");
    assert!(!recording.exists(), "the dry run created the recording");
    // The attack of issue 12: an SDP written over any file at validation time.
    std::fs::write(&victim, "precious").unwrap();
    let text = format!(
        "testpattern size=64x36 format=uyvy ! networksend destination=127.0.0.1:9 size=64x36 \
         sampling=ycbcr422-8 sdp={}",
        victim.display()
    );
    dry_run(&Registry::builtin(), &parse(&text).unwrap(), &inside(&dir)).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    std::fs::remove_dir_all(&dir).ok();
}

/// Resident memory of this process in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_dry_run_allocates_no_frame_pool() {
    // Four elements at the largest size: building them allocates (and draws) gigabytes.
    let text = "testpattern size=16384x16384 ! compositor size=16384x16384 ! null  \
                drawing size=16384x16384 ! null  testpattern size=16384x16384 ! null";
    let desc = parse(text).unwrap();
    let before = resident_bytes();
    dry_run(&Registry::builtin(), &desc, &Policy::default()).unwrap();
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < 64 << 20,
            "a dry run grew the process by {} MiB",
            grown >> 20
        );
    }
}

#[cfg(feature = "file")]
#[test]
fn file_locations_that_are_urls_are_refused() {
    let dir = temp_dir("urls");
    let policy = inside(&dir);
    for location in [
        "udp://127.0.0.1:9/x.mkv",
        "tcp://127.0.0.1:9/x.mkv?listen",
        "pipe:1",
        "pipe:1.mkv",
        "http://example.com/x.mp4",
    ] {
        for text in [
            format!("testpattern ! filewriter location={location}"),
            format!("filereader location={location} ! null"),
        ] {
            let got = refused(&text, &policy);
            assert!(
                matches!(
                    &got,
                    LaunchError::Refused {
                        source: PolicyError::Protocol { .. },
                        ..
                    }
                ),
                "{text}: {got}"
            );
            assert!(got.to_string().contains("protocol"), "{got}");
        }
    }
    // Even the library's permissive default refuses them.
    let got = refused(
        "testpattern ! filewriter location=udp://127.0.0.1:9/x.mkv",
        &Policy::default(),
    );
    assert!(got.to_string().contains("`udp:` protocol"), "{got}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A writer built around the policy's check (as a user crate might register one): FFmpeg's
/// protocol whitelist must still keep it off pipes and the network (`pipe:1.mkv` is the
/// process's stdout to FFmpeg, the MCP server's protocol channel).
#[cfg(feature = "file")]
#[test]
fn ffmpeg_opens_only_files_whatever_the_location() {
    use std::sync::Arc;
    use streamlib_handlers_file::{FileWriter, VideoCodec, WriterConfig};
    use streamlib_launch::{BuiltHandler, Direction, HandlerSpec, PropType, port, prop};
    use streamlib_ports::{DeliveryMode, MemoryCaps, PortKind};

    let mut registry = Registry::builtin();
    registry.register(HandlerSpec {
        name: "rawwriter",
        summary: "a FileWriter without the launch crate's path check",
        ports: vec![port(
            "video",
            Direction::Input,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Ordered { capacity: 8 },
            "frames",
        )],
        properties: vec![prop("location", PropType::Text, None, false, "anything")],
        factory: Arc::new(|p| {
            Ok(BuiltHandler::fixed(FileWriter::new(WriterConfig {
                codec: Some(VideoCodec::Ffv1),
                ..WriterConfig::new(p.text("location"))
            })?))
        }),
    });
    let desc = parse("testpattern size=64x36 ! rawwriter location=pipe:1.mkv").unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(3);
    let mut built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
    let outcome = built.runtime.run();
    let errors = match &outcome {
        Ok(stats) => stats.stream("rawwriter0").map_or(0, |s| s.errors),
        Err(_) => 1,
    };
    assert!(errors > 0, "FFmpeg opened a pipe to stdout: {outcome:?}");
}

#[cfg(feature = "file")]
#[test]
fn stdin_devices_and_proc_are_not_files() {
    let dir = temp_dir("devices");
    for policy in [Policy::default(), inside(&dir)] {
        for text in [
            "filereader location=/dev/stdin ! null",
            "filereader location=/proc/self/environ ! null",
            "drawing font=/dev/stdin ! null",
            "drawing font=/dev/zero ! null",
            "testpattern ! filewriter location=/dev/stdout",
        ] {
            let got = refused(text, &policy);
            assert!(matches!(&got, LaunchError::Refused { .. }), "{text}: {got}");
        }
    }
    let got = refused("filereader location=/dev/stdin ! null", &Policy::default());
    assert!(got.to_string().contains("not a regular file"), "{got}");
    // A FIFO inside an allowed folder is no file either.
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let text = format!("filereader location={} ! null", fifo.display());
        let got = refused(&text, &inside(&dir));
        assert!(got.to_string().contains("not a regular file"), "{got}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(feature = "file")]
#[test]
fn files_outside_the_allow_lists_are_refused() {
    let dir = temp_dir("allowed");
    let other = temp_dir("other");
    let policy = inside(&dir);
    let got = refused(
        &format!(
            "testpattern ! filewriter name=w0 location={}/x.mkv",
            other.display()
        ),
        &policy,
    );
    assert_eq!(
        got.to_string(),
        format!(
            "w0 (filewriter): location `{}/x.mkv` is outside the write allow-list (--allow-write DIR)",
            other.display()
        )
    );
    let got = refused("testpattern ! filewriter location=/etc/x.mkv", &policy);
    assert!(got.to_string().contains("write allow-list"), "{got}");
    // `..` and a symlink out of the folder.
    let escape = format!(
        "{}/../{}/x.mkv",
        dir.display(),
        other.file_name().unwrap().to_string_lossy()
    );
    let got = refused(
        &format!("testpattern ! filewriter location={escape}"),
        &policy,
    );
    assert!(got.to_string().contains("write allow-list"), "{got}");
    std::fs::write(other.join("secret.mkv"), "x").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(other.join("secret.mkv"), dir.join("link.mkv")).unwrap();
        let link = dir.join("link.mkv");
        let got = refused(
            &format!("filereader location={} ! null", link.display()),
            &policy,
        );
        assert!(got.to_string().contains("read allow-list"), "{got}");
        let got = refused(
            &format!("testpattern ! filewriter location={}", link.display()),
            &policy,
        );
        assert!(got.to_string().contains("not a regular file"), "{got}");
    }
    // Nothing at all under the agent's default.
    let got = refused(
        &format!("testpattern ! filewriter location={}/x.mkv", dir.display()),
        &Policy::confined(),
    );
    assert!(got.to_string().contains("write allow-list"), "{got}");
    let got = refused("drawing font=/etc/hostname ! null", &Policy::confined());
    assert!(got.to_string().contains("read allow-list"), "{got}");
    // Inside the folder is fine.
    let ok = format!("testpattern ! filewriter location={}/x.mkv", dir.display());
    validate_with(&Registry::builtin(), &parse(&ok).unwrap(), &policy).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&other).ok();
}

#[cfg(feature = "net")]
#[test]
fn a_confined_network_stays_on_loopback() {
    let confined = Policy::confined();
    let send = "testpattern size=64x36 format=uyvy ! networksend size=64x36 sampling=ycbcr422-8 destination=";
    let got = refused(&format!("{send}10.1.2.3:5004"), &confined);
    assert!(
        got.to_string()
            .contains("destination 10.1.2.3:5004 is not a loopback address"),
        "{got}"
    );
    let got = refused(&format!("{send}239.1.2.3:5004"), &confined);
    assert!(got.to_string().contains("--allow-network"), "{got}");
    let got = refused("networkreceive size=64x36 ! null", &confined);
    assert!(
        got.to_string().contains("bind address 0.0.0.0:5004"),
        "{got}"
    );
    let got = refused(
        "networkreceive size=64x36 bind=127.0.0.1:5004 multicast=239.1.1.1 ! null",
        &confined,
    );
    assert!(
        got.to_string().contains("multicast group 239.1.1.1"),
        "{got}"
    );
    let got = refused("networkaudioreceive bind=0.0.0.0:5004 ! null", &confined);
    assert!(got.to_string().contains("not a loopback address"), "{got}");
    // Loopback is fine; --allow-network allows the rest.
    let registry = Registry::builtin();
    for text in [
        format!("{send}127.0.0.1:5004"),
        "networkreceive size=64x36 bind=127.0.0.1:5004 ! null".to_owned(),
    ] {
        validate_with(&registry, &parse(&text).unwrap(), &confined).unwrap();
    }
    let open = Policy::confined().allow_network(true);
    validate_with(
        &registry,
        &parse(&format!("{send}10.1.2.3:5004")).unwrap(),
        &open,
    )
    .unwrap();
    // A build checks too (the library path, not only validation).
    let desc = parse(&format!("{send}10.1.2.3:5004")).unwrap();
    let (clock, _never) = ManualClock::new(Rational::fps(30));
    let err = build_with(&registry, &desc, StreamRuntime::new(clock), &confined).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

#[cfg(feature = "net")]
#[test]
fn an_sdp_parse_error_quotes_no_line_of_the_file() {
    let dir = temp_dir("sdp");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "v=0\nhunter2-the-password\n").unwrap();
    for handler in ["networkreceive", "networkaudioreceive"] {
        let text = format!("{handler} sdp={} ! null", secret.display());
        let got = refused(&text, &inside(&dir)).to_string();
        assert!(!got.contains("hunter2"), "{got}");
        assert!(got.contains("line 2"), "{got}");
    }
    // Outside the allow-list the file is not even opened.
    let got = refused("networkreceive sdp=/etc/passwd ! null", &inside(&dir)).to_string();
    assert!(got.contains("read allow-list"), "{got}");
    assert!(!got.contains("root"), "{got}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_long_near_miss_name_is_answered_quickly() {
    let name = "e".repeat(30_000);
    let near = format!("{name}x");
    // A link to an element that is not there, one letter from a 30 000-letter name: the
    // suggestion used to compare the two in 900 million steps.
    let text = format!("testpattern name={name} ! null  testpattern ! {near}.video");
    let started = Instant::now();
    let refused = parse(&text).map_err(LaunchError::from).and_then(|desc| {
        validate_with(&Registry::builtin(), &desc, &Policy::default())?;
        dry_run(&Registry::builtin(), &desc, &Policy::default()).map(|_| ())
    });
    let took = started.elapsed();
    assert!(refused.is_err());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // An unknown handler one letter from a long name.
    let started = Instant::now();
    let got = parse(&format!("{near} ! null"))
        .map(|d| validate_with(&Registry::builtin(), &d, &Policy::default()));
    assert!(matches!(got, Ok(Err(LaunchError::UnknownHandler { .. }))));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A handler that does nothing, with file and address properties as a user registration
/// might declare them: `location` (a recording, live), `layer<N>.image` (numbered reads),
/// `log` (a write whose default is a file in the current folder) and `destination` (live,
/// checked by the registry's [`Check`](streamlib_launch::Check)).
mod custom {
    use std::sync::Arc;

    use streamlib_launch::{Access, CheckError, HandlerSpec, PropType, Registry, prop};
    use streamlib_ports::{HandlerError, Ports, ProcessContext, StreamHandler};

    pub struct Idle;

    impl StreamHandler for Idle {
        fn ports(&self) -> Ports {
            Ports::new()
        }
        fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    pub fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.register(HandlerSpec {
            name: "recorder",
            summary: "records nothing",
            ports: Vec::new(),
            properties: vec![
                prop("location", PropType::Text, Some(""), true, "recording")
                    .access(Access::Write)
                    .no_file(""),
                prop("layer<N>.image", PropType::Path, None, false, "an image")
                    .access(Access::Read),
                prop("log", PropType::Path, Some("out.log"), false, "log").access(Access::Write),
                prop(
                    "destination",
                    PropType::Text,
                    Some("127.0.0.1:9"),
                    true,
                    "where to",
                ),
            ],
            factory: Arc::new(|_| Ok(streamlib_launch::BuiltHandler::live(Idle, |_, _, _| Ok(())))),
        });
        registry.add_check(
            "recorder",
            Arc::new(|p| {
                let address = p
                    .text("destination")
                    .parse()
                    .map_err(|_| CheckError::Invalid(HandlerError::msg("not an address")))?;
                p.policy()
                    .check_destination(address)
                    .map_err(|error| CheckError::Refused {
                        property: "destination".to_owned(),
                        error,
                    })
            }),
        );
        registry
    }
}

/// A confined policy for `dir` that may also write the current folder (for `log`'s default).
fn inside_and_here(dir: &std::path::Path) -> Policy {
    inside(dir).allow_write(".").unwrap()
}

#[test]
fn live_changes_are_checked_like_launch_time_values() {
    let dir = temp_dir("live");
    let registry = custom::registry();
    let desc = parse("recorder name=r").unwrap();
    let (clock, _never) = ManualClock::new(Rational::fps(30));
    let built = build_with(
        &registry,
        &desc,
        StreamRuntime::new(clock),
        &inside_and_here(&dir),
    )
    .unwrap();
    let controls = &built.controls;
    let refusal = |property: &str, value: &str| match controls.set("r", property, value) {
        Err(LaunchError::Refused { property: p, .. }) => assert_eq!(p, property),
        other => panic!("{property}={value}: {other:?}"),
    };
    refusal("location", "/etc/streamlib-live.mkv");
    refusal("location", "udp://127.0.0.1:9");
    refusal("destination", "10.0.0.1:9");
    controls
        .set("r", "location", &dir.join("ok.mkv").display().to_string())
        .unwrap();
    controls.set("r", "destination", "127.0.0.1:10").unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn numbered_file_properties_are_checked() {
    let dir = temp_dir("numbered");
    std::fs::write(dir.join("ok.png"), "x").unwrap();
    let policy = inside_and_here(&dir);
    let desc = parse("recorder layer3.image=/etc/passwd").unwrap();
    match validate_with(&custom::registry(), &desc, &policy) {
        Err(LaunchError::Refused {
            property,
            source: PolicyError::OutsideRead { .. },
            ..
        }) => assert_eq!(property, "layer3.image"),
        other => panic!("{other:?}"),
    }
    let text = format!("recorder layer0.image={}", dir.join("ok.png").display());
    validate_with(&custom::registry(), &parse(&text).unwrap(), &policy).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn defaults_and_values_equal_to_them_are_checked() {
    let dir = temp_dir("defaults");
    // `log` defaults to `out.log` in the current folder, which `inside` does not allow:
    // refused whether it is left out or given as its default.
    for text in ["recorder", "recorder log=out.log"] {
        match validate_with(&custom::registry(), &parse(text).unwrap(), &inside(&dir)) {
            Err(LaunchError::Refused {
                property,
                source: PolicyError::OutsideWrite { .. },
                ..
            }) => assert_eq!(property, "log"),
            other => panic!("{text}: {other:?}"),
        }
    }
    // The value that names no file stays unchecked.
    let text = format!("recorder location=\"\" log={}", dir.join("x.log").display());
    validate_with(&custom::registry(), &parse(&text).unwrap(), &inside(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(feature = "file")]
#[test]
fn ffmpeg_protocols_are_refused_and_colons_in_file_names_are_not() {
    let dir = temp_dir("colons");
    let policy = inside(&dir);
    let location = dir.join("rec-12:30.mkv").display().to_string();
    let text = format!("testpattern size=64x36 ! filewriter location={location}");
    validate_with(&Registry::builtin(), &parse(&text).unwrap(), &policy).unwrap();
    for location in [
        "udp:127.0.0.1:9",
        "subfile,,0,99,:/etc/passwd",
        "concat:a.mkv|b.mkv",
        "crypto+udp:x",
        "rtmpq:x",
        "weird://x",
    ] {
        let text = format!("testpattern size=64x36 ! filewriter location=\"{location}\"");
        match validate_with(&Registry::builtin(), &parse(&text).unwrap(), &policy) {
            Err(LaunchError::Refused {
                source: PolicyError::Protocol { .. },
                ..
            }) => {}
            other => panic!("{location}: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn crash_tests_end_only_a_child_process_under_a_confined_policy() {
    // An agent's pipeline must not be able to end the server it talks to.
    for text in [
        "testpattern ! identity abort-after=0 ! null",
        "testpattern ! identity segfault-after=30 ! null",
    ] {
        let got = refused(text, &Policy::confined());
        let message = got.to_string();
        assert!(message.contains("would end the whole process"), "{message}");
        assert!(message.contains("@process"), "{message}");
        assert!(message.contains("identity"), "names the element: {message}");
    }
    let allowed = |text: &str, policy: &Policy| {
        validate_with(&Registry::builtin(), &parse(text).unwrap(), policy)
            .unwrap_or_else(|e| panic!("`{text}`: {e}"));
    };
    // Unset (-1), a contained panic, and a user who asked for crash tests are fine.
    allowed("testpattern ! identity ! null", &Policy::confined());
    allowed(
        "testpattern ! identity abort-after=-1 panic-after=3 ! null",
        &Policy::confined(),
    );
    allowed(
        "testpattern ! identity abort-after=0 ! null",
        &Policy::confined().allow_crash_tests(true),
    );
    allowed(
        "testpattern ! identity segfault-after=0 ! null",
        &Policy::default(),
    );
}

#[cfg(feature = "process")]
#[test]
fn crash_tests_are_allowed_at_process() {
    validate_with(
        &Registry::builtin(),
        &parse("testpattern ! identity abort-after=0 @process ! null").unwrap(),
        &Policy::confined(),
    )
    .unwrap();
}

/// An agent may lower a child's priority, never raise it: a negative `nice=` is refused
/// under a confined policy, naming it, and allowed where the user runs the pipeline.
#[cfg(feature = "process")]
#[test]
fn a_confined_policy_refuses_a_raised_child_priority() {
    let text = "testpattern ! identity nice=-10 @process ! null";
    let message = refused(text, &Policy::confined()).to_string();
    assert!(
        message.contains("nice=-10") && message.contains("identity"),
        "{message}"
    );
    let check = |text: &str, policy: &Policy| {
        validate_with(&Registry::builtin(), &parse(text).unwrap(), policy)
    };
    check(
        "testpattern ! identity nice=5 @process ! null",
        &Policy::confined(),
    )
    .unwrap();
    check(text, &Policy::default()).unwrap();
    check(text, &Policy::current_dir().unwrap()).unwrap();
}
