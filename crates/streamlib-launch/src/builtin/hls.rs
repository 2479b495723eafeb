//! `hlssink`: HTTP Live Streaming (fMP4 or MPEG-TS segments, live/event/VOD playlists,
//! LL-HLS parts), written to a folder and optionally served.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use streamlib_hls::{HlsCodec, HlsConfig, HlsSink, PlaylistKind, SegmentFormat};
use streamlib_ports::{DeliveryMode, HandlerError, MemoryCaps, PortKind};

use crate::registry::{BuiltHandler, CheckError, Direction, HandlerSpec, Properties, port, prop};
use crate::value::PropType;
use crate::{PolicyError, Registry};

pub(super) fn register(registry: &mut Registry) {
    registry.register(hls_sink());
    registry.add_check("hlssink", Arc::new(check));
}

fn refused(property: &str, error: PolicyError) -> CheckError {
    CheckError::Refused {
        property: property.to_owned(),
        error,
    }
}

/// `serve` as an address, `None` when empty.
fn serve_addr(p: &Properties) -> Result<Option<SocketAddr>, HandlerError> {
    let text = p.text("serve");
    if text.is_empty() {
        return Ok(None);
    }
    streamlib_hls::parse_listen_addr(text)
        .map(Some)
        .map_err(|e| HandlerError::msg(format!("serve: {e}")))
}

/// The folder and the address against the policy: the folder is written like a file
/// (its playlist when it exists, else the folder itself as a new entry of its parent), the
/// address is bound.
fn check_policy(p: &Properties, serve: Option<SocketAddr>) -> Result<(), CheckError> {
    let policy = p.policy();
    let location = p.text("location");
    let dir = Path::new(location);
    let target = if dir.is_dir() {
        dir.join(streamlib_hls::PLAYLIST_NAME)
            .to_string_lossy()
            .into_owned()
    } else {
        location.trim_end_matches('/').to_owned()
    };
    policy
        .check_write(&target)
        .map_err(|e| refused("location", e))?;
    if let Some(addr) = serve {
        policy.check_bind(addr).map_err(|e| refused("serve", e))?;
    }
    Ok(())
}

fn config(p: &Properties) -> Result<HlsConfig, HandlerError> {
    let location = p.text("location");
    if location.is_empty() {
        return Err(HandlerError::msg("location: the folder to write is empty"));
    }
    let mut config = HlsConfig::new(location);
    config.target_duration = p.float("target-duration");
    config.max_segments = u32::try_from(p.int("max-segments")).unwrap_or(u32::MAX);
    config.playlist = PlaylistKind::parse(p.text("playlist")).unwrap_or_default();
    config.segment_format = SegmentFormat::parse(p.text("segment-format")).unwrap_or_default();
    config.part_duration = p.float("part-duration");
    config.codec = match p.text("codec") {
        "h265" => HlsCodec::H265,
        _ => HlsCodec::H264,
    };
    config.bitrate = u64::try_from(p.int("bitrate")).unwrap_or(0);
    config.audio_bitrate = u64::try_from(p.int("audio-bitrate")).unwrap_or(0);
    config.serve = serve_addr(p)?;
    config.serve_path = p.text("serve-path").to_owned();
    config.check().map_err(HandlerError::from)?;
    Ok(config)
}

fn check(p: &Properties) -> Result<(), CheckError> {
    let config = config(p)?;
    check_policy(p, config.serve)
}

fn hls_sink() -> HandlerSpec {
    HandlerSpec {
        name: "hlssink",
        summary: "Streams video (and AAC audio) as HLS: fMP4 or MPEG-TS segments and index.m3u8 in a folder, LL-HLS parts, served over HTTP if asked",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 8 },
                "RGBA, BGRA, I420 or NV12 frames (negotiation converts others); the first fixes the size",
            ),
            port(
                "audio",
                Direction::Input,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 256 },
                "interleaved f32 audio, encoded as AAC (optional)",
            )
            .optional(),
        ],
        properties: vec![
            prop(
                "location",
                PropType::Text,
                None,
                false,
                "folder to write: DIR/index.m3u8, DIR/init.mp4 and the segments (created if missing; an earlier run's files are replaced)",
            ),
            prop(
                "target-duration",
                PropType::Float {
                    min: 0.1,
                    max: 60.0,
                },
                Some("2"),
                false,
                "segment length in seconds (whole frames; each segment starts with a keyframe)",
            ),
            prop(
                "max-segments",
                PropType::Int {
                    min: 2,
                    max: 10_000,
                },
                Some("5"),
                false,
                "segments a live playlist lists and keeps on disk (older ones are deleted)",
            ),
            prop(
                "playlist",
                PropType::Enum(&["live", "event", "vod"]),
                Some("live"),
                false,
                "live: sliding window; event / vod: every segment, EXT-X-ENDLIST at stop",
            ),
            prop(
                "segment-format",
                PropType::Enum(&["fmp4", "ts"]),
                Some("fmp4"),
                false,
                "fmp4: CMAF-style init.mp4 + segN.m4s; ts: MPEG-TS segN.ts",
            ),
            prop(
                "part-duration",
                PropType::Float {
                    min: 0.0,
                    max: 60.0,
                },
                Some("0"),
                false,
                "LL-HLS part length in seconds (e.g. 0.2; fmp4 only); 0: no parts",
            ),
            prop(
                "codec",
                PropType::Enum(&["h264", "h265"]),
                Some("h264"),
                false,
                "video codec: H.264 (libx264) or H.265 (libx265)",
            ),
            prop(
                "bitrate",
                PropType::Int {
                    min: 10_000,
                    max: 200_000_000,
                },
                Some("2000000"),
                false,
                "video bitrate, bits per second",
            ),
            prop(
                "audio-bitrate",
                PropType::Int {
                    min: 8_000,
                    max: 512_000,
                },
                Some("128000"),
                false,
                "AAC bitrate, bits per second",
            ),
            prop(
                "serve",
                PropType::Text,
                Some(""),
                false,
                "serve the folder over HTTP on ADDR (HOST:PORT, :PORT or PORT; loopback unless a host is given): http://ADDR/index.m3u8; empty: not served",
            ),
            prop(
                "serve-path",
                PropType::Text,
                Some(""),
                false,
                "URL prefix the folder is served under (/name); empty: the root",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let config = config(p)?;
            // Checked again here: the folder may have changed since the pipeline was checked.
            check_policy(p, config.serve).map_err(|e| match e {
                CheckError::Refused { property, error } => {
                    HandlerError::msg(format!("{property} {error}"))
                }
                CheckError::Invalid(e) => e,
            })?;
            let sink = HlsSink::new(config)?;
            let stats = sink.stats();
            Ok(BuiltHandler::fixed(sink).with_report(move || {
                json!({
                    "frames": stats.frames_encoded(),
                    "segments": stats.segments_written(),
                    "parts": stats.parts_written(),
                    "bytes": stats.bytes_written(),
                    "audio_packets": stats.audio_packets(),
                    "segments_deleted": stats.segments_deleted(),
                    "write_errors": stats.write_errors(),
                    "last_error": stats.last_error(),
                })
            }))
        }),
    }
}
