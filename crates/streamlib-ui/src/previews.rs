//! Preview taps: a `webrtcsink` (WHEP, loopback, a free port) on each video output, added to
//! the description before it is launched, so the page can watch any video port over WebRTC.

use streamlib_launch::{Direction, ElementDesc, LinkDesc, PipelineDesc, PortRef, Registry};

use crate::PreviewTap;

/// The handler a preview tap is.
pub const PREVIEW_HANDLER: &str = "webrtcsink";

/// Adds a preview tap on every video output of `desc`: a `webrtcsink
/// whep-address=127.0.0.1:0` named `preview_<element>_<port>`, linked from that output (an
/// output feeds any number of inputs, so the pipeline's own links are untouched). The sink
/// encodes only while a viewer is connected and reports its bound `whep_url`.
///
/// Returns the taps added; none when this build has no `webrtcsink` (feature `webrtc`).
/// Numbered outputs (`out<N>`) are not tapped.
pub fn add_previews(desc: &mut PipelineDesc, registry: &Registry) -> Vec<PreviewTap> {
    if registry.get(PREVIEW_HANDLER).is_none() {
        return Vec::new();
    }
    let mut taps = Vec::new();
    let mut added = Vec::new();
    for element in &desc.elements {
        let Some(spec) = registry.get(&element.handler) else {
            continue;
        };
        if spec.name == PREVIEW_HANDLER {
            continue;
        }
        let outputs = spec.ports.iter().filter(|p| {
            p.direction == Direction::Output
                && p.kind.to_string() == "video"
                && !p.name.contains('<')
        });
        for port in outputs {
            let mut name = format!("preview_{}_{}", element.name, port.name);
            while desc.element(&name).is_some()
                || added.iter().any(|e: &ElementDesc| e.name == name)
            {
                name.push('_');
            }
            added.push(ElementDesc {
                name: name.clone(),
                handler: PREVIEW_HANDLER.to_owned(),
                properties: [("whep-address".to_owned(), "127.0.0.1:0".to_owned())].into(),
                dispatcher: None,
            });
            taps.push(PreviewTap {
                element: name,
                source: format!("{}.{}", element.name, port.name),
            });
        }
    }
    for (element, tap) in added.into_iter().zip(&taps) {
        desc.links.push(LinkDesc {
            from: PortRef::parse(&tap.source),
            to: PortRef {
                element: element.name.clone(),
                port: None,
            },
        });
        desc.elements.push(element);
    }
    taps
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlib_launch::{HandlerSpec, parse};

    /// The builtin registry plus a `webrtcsink` spec (the real one is registered with the
    /// `webrtc` feature; only its name and ports matter to the rewrite).
    fn registry_with_sink() -> Registry {
        let mut registry = Registry::builtin();
        let null = registry.get("null").cloned();
        let Some(null) = null else {
            panic!("no null handler");
        };
        registry.register(HandlerSpec {
            name: PREVIEW_HANDLER,
            ..null
        });
        registry
    }

    #[test]
    fn every_video_output_gets_one_tap_and_the_links_stay() {
        let Ok(mut desc) = parse("testpattern ! blur sigma=2 ! null") else {
            panic!("parse");
        };
        let links = desc.links.clone();
        let taps = add_previews(&mut desc, &registry_with_sink());
        let sources: Vec<&str> = taps.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(sources, ["testpattern0.video", "blur0.video"]);
        assert_eq!(desc.elements.len(), 5);
        assert_eq!(&desc.links[..links.len()], &links[..]);
        let text = desc.to_text();
        assert!(text.contains("whep-address=127.0.0.1:0"), "{text}");
        assert!(
            parse(&text).is_ok_and(|d| d.normalized() == desc.normalized()),
            "{text}"
        );
    }

    #[test]
    fn no_webrtcsink_no_taps() {
        let Ok(mut desc) = parse("testpattern ! null") else {
            panic!("parse");
        };
        let before = desc.clone();
        assert!(add_previews(&mut desc, &Registry::new()).is_empty());
        assert_eq!(desc, before);
    }
}
