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

#[test]
fn registered_ports_are_the_handlers_own() {
    let registry = Registry::builtin();
    let mut described = Vec::new();
    for spec in registry.iter() {
        let Some(ports) = registry.describe(spec.name).unwrap() else {
            continue;
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
    // The handlers that reach nothing with their defaults are all held to it.
    for name in [
        "testpattern",
        "blur",
        "compositor",
        "drawing",
        "null",
        "videorate",
    ] {
        assert!(
            described.contains(&name),
            "{name} was not described: {described:?}"
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
