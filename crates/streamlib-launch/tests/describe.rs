//! The registry's description of each handler is held to the handler itself: every handler
//! that can be built with its defaults is built, and its real ports (names, direction, kind,
//! memory, delivery) must be the registered ones. A port renamed or a capability changed in
//! a handler without its description fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_launch::{Direction, PortSpec, Registry};

fn matches(spec: &PortSpec, name: &str) -> bool {
    match spec.name.split_once("<N>") {
        None => spec.name == name,
        Some((prefix, suffix)) => name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// Properties to build the handlers that need some (or reach something with their
/// defaults): every registered handler is built and checked.
fn sample_properties(name: &str, dir: &std::path::Path) -> Option<Vec<(&'static str, String)>> {
    Some(match name {
        "convert" => vec![("format", "uyvy".to_owned())],
        "scale" => vec![("size", "32x24".to_owned())],
        "filereader" => {
            let clip = dir.join("clip.mov");
            let out = std::process::Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=64x48:rate=25",
                ])
                .args(["-frames:v", "2", "-pix_fmt", "yuv420p"])
                .arg(&clip)
                .output()
                .unwrap();
            assert!(out.status.success(), "ffmpeg: {out:?}");
            vec![("location", clip.display().to_string())]
        }
        "filewriter" => vec![("location", dir.join("out.mkv").display().to_string())],
        "networksend" | "networkaudiosend" => vec![("destination", "127.0.0.1:9".to_owned())],
        "networkreceive" | "networkaudioreceive" => vec![("bind", "127.0.0.1:0".to_owned())],
        "hlssink" => vec![("location", dir.join("hls").display().to_string())],
        "webrtcsink" => vec![("whep-address", "127.0.0.1:0".to_owned())],
        "webrtcsrc" => vec![("whip-address", "127.0.0.1:0".to_owned())],
        _ => return None,
    })
}

#[test]
fn registered_ports_are_the_handlers_own() {
    let registry = Registry::builtin();
    let dir = std::env::temp_dir().join(format!("streamlib-describe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut described = Vec::new();
    for spec in registry.iter() {
        let ports = match registry.describe(spec.name).unwrap() {
            Some(ports) => ports,
            None => {
                let props = sample_properties(spec.name, &dir).unwrap_or_else(|| {
                    panic!("{}: give the test properties to build it with", spec.name)
                });
                let props: Vec<(&str, &str)> =
                    props.iter().map(|(k, v)| (*k, v.as_str())).collect();
                registry.describe_with(spec.name, &props).unwrap()
            }
        };
        described.push(spec.name);
        for port in &ports {
            let registered = spec
                .ports
                .iter()
                .find(|p| p.direction == port.direction && matches(p, &port.name))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: port {} is not in its registered description",
                        spec.name, port.name
                    )
                });
            assert_eq!(
                registered.kind.to_string(),
                port.kind,
                "{}.{}",
                spec.name,
                port.name
            );
            assert_eq!(
                registered.caps.to_string(),
                port.memory,
                "{}.{}",
                spec.name,
                port.name
            );
            if port.direction == Direction::Input {
                assert_eq!(
                    Some(registered.delivery.to_string()),
                    port.delivery,
                    "{}.{}",
                    spec.name,
                    port.name
                );
            }
        }
        for registered in spec.ports.iter().filter(|p| p.count.is_none()) {
            assert!(
                ports
                    .iter()
                    .any(|p| p.direction == registered.direction && p.name == registered.name),
                "{}: registered port {} is not on the handler",
                spec.name,
                registered.name
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(described.len(), registry.iter().count());
    // The handlers that reach nothing with their defaults are built by `describe` itself.
    for name in [
        "testpattern",
        "blur",
        "compositor",
        "drawing",
        "null",
        "videorate",
    ] {
        assert!(
            registry.describe(name).unwrap().is_some(),
            "{name} was not described with its defaults"
        );
    }
}

#[test]
fn built_ports_carry_their_caps() {
    let registry = Registry::builtin();
    let pattern = registry.describe("testpattern").unwrap().unwrap();
    let out = pattern.iter().find(|p| p.name == "video").unwrap();
    assert_eq!(out.caps, "video rgba8 1280x720");
    // A handler whose caps come from a file is not built to be described.
    #[cfg(feature = "file")]
    assert_eq!(registry.describe("filereader").unwrap(), None);
}
