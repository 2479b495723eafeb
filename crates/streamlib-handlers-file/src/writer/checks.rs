//! Checks a [`FileWriter`](super::FileWriter) makes before anything is written: option
//! ranges and a place where the file can be created.

use std::fs::OpenOptions;
use std::path::Path;

use ffmpeg_next as ffmpeg;

use super::{OutputCodec, PRESETS, WriterConfig};
use crate::FileError;

/// Validates crf, bitrate and preset for the codec.
pub(super) fn check_options(config: &WriterConfig, codec: OutputCodec) -> Result<(), FileError> {
    if let Some(crf) = config.crf {
        let (max, range) = match codec {
            OutputCodec::Vp9 => (63, "0..=63"),
            _ => (51, "0..=51"),
        };
        if crf > max {
            return Err(FileError::OutOfRange {
                what: "crf",
                value: crf.to_string(),
                range,
            });
        }
    }
    if config.bitrate == Some(0) {
        return Err(FileError::OutOfRange {
            what: "bitrate",
            value: "0".to_owned(),
            range: "1..",
        });
    }
    if let Some(preset) = &config.preset
        && !PRESETS.contains(&preset.as_str())
    {
        return Err(FileError::OutOfRange {
            what: "preset",
            value: preset.clone(),
            range: "ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo",
        });
    }
    if let Some(fps) = config.fps
        && (fps.num == 0 || fps.den == 0 || fps.num > i32::MAX as u32 || fps.den > i32::MAX as u32)
    {
        return Err(FileError::OutOfRange {
            what: "fps",
            value: format!("{}/{}", fps.num, fps.den),
            range: "1/1..2^31",
        });
    }
    Ok(())
}

/// Fails unless the file can be created: the parent directory exists and allows writing.
/// Probes by creating the file, and removes it again if it did not exist before.
pub(super) fn check_writable(path: &Path) -> Result<(), FileError> {
    let unwritable = |reason: String| FileError::Unwritable {
        path: path.to_path_buf(),
        reason,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(unwritable(format!(
                "{} is not a directory",
                parent.display()
            )));
        }
        Err(e) => {
            return Err(unwritable(format!(
                "directory {} is not usable: {e}",
                parent.display()
            )));
        }
    }
    let existed = path.exists();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| unwritable(e.to_string()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Keeps encoders' statistics (x264 prints them at info level) off stderr, unless the
/// application already chose a quieter or louder level than FFmpeg's default.
pub(super) fn quiet_ffmpeg_logs() {
    if matches!(ffmpeg::log::get_level(), Ok(ffmpeg::log::Level::Info)) {
        ffmpeg::log::set_level(ffmpeg::log::Level::Error);
    }
}
