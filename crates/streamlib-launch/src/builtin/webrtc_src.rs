//! `webrtcsrc` (WHIP): a browser publishes its camera and microphone into a pipeline.

use std::sync::Arc;

use serde_json::json;
use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps, PortKind};
use streamlib_webrtc::{WebRtcSrc, WebRtcSrcConfig};

use crate::Registry;
use crate::registry::{BuiltHandler, CheckError, Direction, HandlerSpec, Properties, port, prop};
use crate::value::PropType;

pub(super) fn register(registry: &mut Registry) {
    registry.register(webrtc_src());
    registry.add_check("webrtcsrc", Arc::new(check_src));
}

/// `size` as text: empty (the first picture's) or `WxH`.
const SIZE: PropType = PropType::Size { max: 16_384 };

fn config_of(p: &Properties) -> Result<WebRtcSrcConfig, HandlerError> {
    let whip_address = WebRtcSrcConfig::parse_address(p.text("whip-address"))
        .map_err(|e| HandlerError::msg(format!("whip-address: {e}")))?;
    let mut config = WebRtcSrcConfig::new(whip_address);
    let size = p.text("size");
    if !size.is_empty() {
        config.size = Some(
            SIZE.parse(size)
                .ok()
                .and_then(|v| v.as_size())
                .ok_or_else(|| {
                    HandlerError::msg(format!("size `{size}` is not {}", SIZE.describe()))
                })?,
        );
    }
    config.audio_channels = u16::try_from(p.int("audio-channels")).unwrap_or(2);
    Ok(config)
}

/// What the factory would refuse, and the WHIP address against the policy.
fn check_src(p: &Properties) -> Result<(), CheckError> {
    let config = config_of(p)?;
    p.policy()
        .check_bind(config.whip_address)
        .map_err(|error| CheckError::Refused {
            property: "whip-address".to_owned(),
            error,
        })
}

fn webrtc_src() -> HandlerSpec {
    HandlerSpec {
        name: "webrtcsrc",
        summary: "A WHIP endpoint (RFC 9725) at http://ADDR/whip: one browser or WebRTC peer at a time publishes VP8/H.264 video and Opus audio, decoded to RGBA frames and f32 audio",
        ports: vec![
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "RGBA frames of the publisher's camera at the first picture's size (or size=), the newest per tick; nothing before the first publisher and between publishers",
            ),
            port(
                "audio",
                Direction::Output,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "interleaved f32 at 48 kHz (audio-channels), on one continuous timeline per publisher",
            ),
        ],
        properties: vec![
            prop(
                "whip-address",
                PropType::Text,
                Some(streamlib_webrtc::DEFAULT_WHIP_ADDRESS),
                false,
                "listen address of the WHIP endpoint, HOST:PORT, :PORT or PORT (loopback); port 0 picks a free one (reported as whip_url); media uses the same IP",
            ),
            prop(
                "size",
                PropType::Text,
                Some(""),
                false,
                "scale pictures to WxH; empty: the first picture's size, kept for later publishers",
            ),
            prop(
                "audio-channels",
                PropType::Int { min: 1, max: 2 },
                Some("2"),
                false,
                "audio output channels (the publisher's Opus is decoded to this many)",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let config = config_of(p)?;
            p.policy()
                .check_bind(config.whip_address)
                .map_err(|e| HandlerError::msg(format!("whip-address {e}")))?;
            let source = WebRtcSrc::new(config)?;
            let stats = source.stats();
            Ok(BuiltHandler::fixed(source).with_report(move || {
                let s = stats.snapshot();
                json!({
                    "whip_url": s.whip_url,
                    "live": s.live,
                    "sessions": s.sessions,
                    "sessions_ended": s.sessions_ended,
                    "refused_busy": s.refused_busy,
                    "refused_bad": s.refused_bad,
                    "video_codec": s.video_codec,
                    "video_size": s.video_size,
                    "video_frames": s.video_frames,
                    "frames_published": s.frames_published,
                    "frames_superseded": s.frames_superseded,
                    "audio_buffers": s.audio_buffers,
                    "audio_dropped": s.audio_dropped,
                    "decode_errors": s.decode_errors,
                    "keyframe_requests": s.keyframe_requests,
                    "pool_exhausted": s.pool_exhausted,
                })
            }))
        }),
    }
}
