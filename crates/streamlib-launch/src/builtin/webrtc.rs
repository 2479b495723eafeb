//! `webrtcsink` (WHEP): browsers and other WebRTC peers watch the pipeline.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps, PortKind};
use streamlib_webrtc::{VideoCodec, WebRtcSink, WebRtcSinkConfig};

use crate::Registry;
use crate::registry::{BuiltHandler, CheckError, Direction, HandlerSpec, Properties, port, prop};
use crate::value::{PropType, Value};

pub(super) fn register(registry: &mut Registry) {
    registry.register(webrtc_sink());
    registry.add_check("webrtcsink", Arc::new(check_sink));
}

/// Bitrates in bit/s: 10 kbit/s to 100 Mbit/s.
const BITRATE: PropType = PropType::Int {
    min: 10_000,
    max: 100_000_000,
};

fn config_of(p: &Properties) -> Result<WebRtcSinkConfig, HandlerError> {
    let whep_address = WebRtcSinkConfig::parse_address(p.text("whep-address"))
        .map_err(|e| HandlerError::msg(format!("whep-address: {e}")))?;
    let codec = match p.text("codec") {
        "h264" => VideoCodec::H264,
        _ => VideoCodec::Vp8,
    };
    let bps = |name: &str| u64::try_from(p.int(name)).unwrap_or(0);
    let config = WebRtcSinkConfig {
        whep_address,
        codec,
        max_viewers: usize::try_from(p.int("max-viewers")).unwrap_or(1),
        start_bitrate_bps: bps("bitrate"),
        min_bitrate_bps: bps("min-bitrate"),
        max_bitrate_bps: bps("max-bitrate"),
        audio_bitrate_bps: bps("audio-bitrate"),
        keyframe_interval: Duration::from_secs_f64(p.float("keyframe-interval")),
        ..WebRtcSinkConfig::default()
    };
    config.check()?;
    Ok(config)
}

/// What the factory would refuse, and the WHEP address against the policy.
fn check_sink(p: &Properties) -> Result<(), CheckError> {
    let config = config_of(p)?;
    p.policy()
        .check_bind(config.whep_address)
        .map_err(|error| CheckError::Refused {
            property: "whep-address".to_owned(),
            error,
        })
}

fn webrtc_sink() -> HandlerSpec {
    HandlerSpec {
        name: "webrtcsink",
        summary: "Serves video (VP8/H.264) and audio (Opus) to WebRTC viewers by WHEP at http://ADDR/whep",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "frames of any CPU format and size (the encoder converts; the first frame's size is the stream's)",
            ),
            port(
                "audio",
                Direction::Input,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "48 kHz mono or stereo, encoded as Opus (negotiation resamples other rates)",
            )
            .optional(),
        ],
        properties: vec![
            prop(
                "whep-address",
                PropType::Text,
                Some("127.0.0.1:8889"),
                false,
                "WHEP endpoint HOST:PORT (http://HOST:PORT/whep; port 0 picks one, reported as whep_url); media binds the same IP",
            ),
            prop(
                "codec",
                PropType::Enum(&["vp8", "h264"]),
                Some("vp8"),
                false,
                "video codec (libvpx VP8 or libx264 constrained baseline)",
            ),
            prop(
                "max-viewers",
                PropType::Int { min: 1, max: 1000 },
                Some("16"),
                false,
                "sessions at once; the next offer gets 503",
            ),
            prop(
                "bitrate",
                BITRATE,
                Some("2000000"),
                false,
                "video bitrate at the start, bit/s (within min-bitrate..max-bitrate)",
            ),
            prop(
                "min-bitrate",
                BITRATE,
                Some("300000"),
                true,
                "congestion control never sets the encoder below this, bit/s",
            ),
            prop(
                "max-bitrate",
                BITRATE,
                Some("6000000"),
                true,
                "congestion control never sets the encoder above this, bit/s",
            ),
            prop(
                "audio-bitrate",
                PropType::Int {
                    min: 6_000,
                    max: 510_000,
                },
                Some("64000"),
                false,
                "Opus bitrate, bit/s",
            ),
            prop(
                "keyframe-interval",
                PropType::Float {
                    min: 0.1,
                    max: 60.0,
                },
                Some("2"),
                false,
                "at most this many seconds between keyframes (also when a VP8 bitrate change applies)",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let config = config_of(p)?;
            p.policy()
                .check_bind(config.whep_address)
                .map_err(|e| HandlerError::msg(format!("whep-address {e}")))?;
            let sink = WebRtcSink::new(config)?;
            let stats = sink.stats();
            let live = BuiltHandler::live(sink, |sink: &mut WebRtcSink, name, value: &Value| {
                let bps = value
                    .as_int()
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0);
                let c = sink.config();
                let (min, max) = match name {
                    "min-bitrate" => (bps, c.max_bitrate_bps),
                    _ => (c.min_bitrate_bps, bps),
                };
                sink.set_bitrate_range(min, max)?;
                Ok(())
            });
            Ok(live.with_report(move || {
                let s = stats.snapshot();
                json!({
                    "whep_url": s.whep_url,
                    "viewers": s.viewers,
                    "viewers_connected": s.viewers_connected,
                    "viewers_total": s.viewers_total,
                    "viewers_dropped": s.viewers_dropped,
                    "offers_refused": s.offers_refused,
                    "offers_over_limit": s.offers_over_limit,
                    "frames_in": s.frames_in,
                    "frames_idle": s.frames_idle,
                    "frames_skipped": s.frames_skipped,
                    "frames_encoded": s.frames_encoded,
                    "frames_rejected": s.frames_rejected,
                    "frames_sent": s.frames_sent,
                    "keyframes": s.keyframes,
                    "keyframe_requests": s.keyframe_requests,
                    "video_bytes": s.video_bytes,
                    "audio_packets": s.audio_packets,
                    "encode_errors": s.encode_errors,
                    "target_bitrate_bps": s.target_bitrate_bps,
                    "encoder_bitrate_bps": s.encoder_bitrate_bps,
                    "bitrate_changes": s.bitrate_changes,
                    "encode_mean_ns": s.encode_mean_ns,
                })
            }))
        }),
    }
}
