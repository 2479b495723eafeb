//! `filereader`, `filewriter`.

use std::sync::Arc;
use std::time::Duration;

use streamlib_handlers_file::{
    AudioCodec, AudioConfig, FileReader, FileWriter, ReaderConfig, ReaderPacing, VideoCodec,
    WriterConfig,
};
use streamlib_ports::{DeliveryMode, MemoryCaps, PixelFormat, PortKind};

use crate::registry::{BuiltHandler, Direction, HandlerSpec, Properties, port, prop};
use crate::value::PropType;
use crate::{Access, Registry};

/// `auto` (negotiated) or a forced format.
const FORMATS: &[&str] = &["auto", "rgba8", "bgra8", "gray8", "nv12", "i420", "uyvy"];

pub(super) fn register(registry: &mut Registry) {
    registry.register(file_reader());
    registry.register(file_writer());
}

/// The forced format `format=` names; `None` for `auto`.
fn pixel_format(name: &str) -> Option<PixelFormat> {
    PixelFormat::ALL
        .iter()
        .copied()
        .find(|f| f.as_str() == name)
}

fn file_reader() -> HandlerSpec {
    HandlerSpec {
        name: "filereader",
        summary: "Decodes a media file's video (and audio) through FFmpeg (MP4, MKV, MOV, WebM, AVI, Y4M, …)",
        ports: vec![
            port(
                "video",
                Direction::Output,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Latest,
                "decoded frames: the file's size and exact rate, its native format when \
                 downstream takes it",
            ),
            port(
                "audio",
                Direction::Output,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 64 },
                "the file's best audio stream, interleaved f32 at its own rate and channels \
                 (decoded only when connected)",
            ),
        ],
        properties: vec![
            prop("location", PropType::Path, None, false, "the file to read").access(Access::Read),
            prop(
                "format",
                PropType::Enum(FORMATS),
                Some("auto"),
                false,
                "pixel format of the frames: auto negotiates (the decoder's own first, no \
                 conversion), a format forces it (swscale converts)",
            ),
            prop(
                "pacing",
                PropType::Enum(&["realtime", "fast"]),
                Some("realtime"),
                false,
                "follow the clock (drop or repeat frames), or one frame per tick (offline work); \
                 at the file's rate both show one frame per tick",
            ),
            prop(
                "loop",
                PropType::Bool,
                Some("false"),
                false,
                "start again at the end instead of ending the stream",
            ),
            prop(
                "start",
                PropType::Float {
                    min: 0.0,
                    max: 1.0e7,
                },
                Some("0"),
                false,
                "start offset in seconds",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let format = pixel_format(p.text("format"));
            let config = ReaderConfig {
                format: format.unwrap_or(PixelFormat::Rgba8),
                force_format: format.is_some(),
                pacing: if p.text("pacing") == "fast" {
                    ReaderPacing::AsFastAsPossible
                } else {
                    ReaderPacing::Realtime
                },
                looping: p.bool("loop"),
                start_offset: Duration::from_secs_f64(p.float("start")),
                protocol_whitelist: Some(p.policy().protocol_whitelist()),
                ..ReaderConfig::new(p.text("location"))
            };
            Ok(BuiltHandler::fixed(FileReader::new(config)?))
        }),
    }
}

fn file_writer() -> HandlerSpec {
    HandlerSpec {
        name: "filewriter",
        summary: "Encodes frames (and audio) to a file through FFmpeg (mp4, mkv, mov, webm, y4m); finalized on stop",
        ports: vec![
            port(
                "video",
                Direction::Input,
                PortKind::Video,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 8 },
                "frames to encode, any format; written at the negotiated rate (the source's), \
                 repeated frames once",
            ),
            port(
                "audio",
                Direction::Input,
                PortKind::Audio,
                MemoryCaps::CPU,
                DeliveryMode::Ordered { capacity: 256 },
                "interleaved f32 audio to encode alongside (optional); the track takes the \
                 negotiated rate and channels unless audio-rate / audio-channels say otherwise",
            )
            .optional(),
        ],
        properties: vec![
            prop(
                "location",
                PropType::Path,
                None,
                false,
                "the file to write (container from the extension)",
            )
            .access(Access::Write),
            prop(
                "codec",
                PropType::Enum(&["auto", "h264", "h265", "vp9", "ffv1"]),
                Some("auto"),
                false,
                "video codec; auto picks the container's default",
            ),
            prop(
                "crf",
                PropType::Int { min: -1, max: 63 },
                Some("-1"),
                false,
                "constant quality (H.264/H.265 0..=51, VP9 0..=63); -1 for the codec default",
            ),
            prop(
                "preset",
                PropType::Text,
                Some("veryfast"),
                false,
                "x264/x265 speed preset",
            ),
            prop(
                "fragmented",
                PropType::Enum(&["auto", "true", "false"]),
                Some("auto"),
                false,
                "crash-proof layout (fragmented MP4, 0.5 s Matroska clusters); auto: on for a \
                 realtime clock, off for --clock free",
            ),
            prop(
                "audio-codec",
                PropType::Enum(&["auto", "aac", "opus", "flac", "pcm"]),
                Some("auto"),
                false,
                "audio codec of the track; auto: AAC (Opus in WebM). mp4: aac; mov: aac, pcm; \
                 webm: opus; mkv: all",
            ),
            prop(
                "audio-rate",
                PropType::Int {
                    min: 0,
                    max: 768_000,
                },
                Some("0"),
                false,
                "sample rate of the audio track in Hz; 0: the audio input's negotiated rate \
                 (swresample converts otherwise)",
            ),
            prop(
                "audio-channels",
                PropType::Int { min: 0, max: 8 },
                Some("0"),
                false,
                "channels of the audio track; 0: the audio input's negotiated count",
            ),
        ],
        factory: Arc::new(|p: &Properties| {
            let audio_codec = match p.text("audio-codec") {
                "aac" => Some(AudioCodec::Aac),
                "opus" => Some(AudioCodec::Opus),
                "flac" => Some(AudioCodec::Flac),
                "pcm" => Some(AudioCodec::Pcm),
                _ => None,
            };
            let audio_rate = u32::try_from(p.int("audio-rate")).unwrap_or(0);
            let audio_channels = u16::try_from(p.int("audio-channels")).unwrap_or(0);
            // Nothing forced: the track (if the audio input is connected) follows negotiation.
            let audio =
                (audio_codec.is_some() || audio_rate != 0 || audio_channels != 0).then(|| {
                    AudioConfig {
                        codec: audio_codec,
                        ..AudioConfig::new(audio_rate, audio_channels)
                    }
                });
            let codec = match p.text("codec") {
                "h264" => Some(VideoCodec::H264),
                "h265" => Some(VideoCodec::H265),
                "vp9" => Some(VideoCodec::Vp9),
                "ffv1" => Some(VideoCodec::Ffv1),
                _ => None,
            };
            let config = WriterConfig {
                codec,
                crf: u8::try_from(p.int("crf")).ok(),
                preset: Some(p.text("preset").to_owned()),
                fragmented: match p.text("fragmented") {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
                audio,
                protocol_whitelist: Some(p.policy().protocol_whitelist()),
                ..WriterConfig::new(p.text("location"))
            };
            let writer = FileWriter::new(config)?;
            let stats = writer.stats();
            Ok(BuiltHandler::fixed(writer).with_report(move || {
                serde_json::json!({
                    "frames_written": stats.frames_written(),
                    "repeats_skipped": stats.repeats_skipped(),
                    "packets_written": stats.packets_written(),
                    "audio_samples_written": stats.audio_samples_written(),
                    "audio_packets_written": stats.audio_packets_written(),
                    "audio_clock_mismatch": stats.audio_clock_mismatch(),
                    "finalized": stats.is_finalized(),
                })
            }))
        }),
    }
}
