//! Opening a file with FFmpeg confined to the configured protocols and container formats.

use std::ffi::CString;
use std::io::Read;
use std::path::Path;

use ffmpeg::format;
use ffmpeg_next as ffmpeg;

use crate::FileError;

/// Bytes of the file read to name a refused format in the error (FFmpeg's own probe starts
/// with 2 KiB and grows; this is only for the message).
const PROBE_BYTES: usize = 64 * 1024;

/// Opens `path` with FFmpeg's `protocol_whitelist` set to `protocols` and its
/// `format_whitelist` to `formats`, so a playlist, manifest, concat script or image
/// pattern cannot make the demuxer open other paths. A file whose probed format is not on
/// `formats` is a [`FileError::FormatRefused`]; any other failure is
/// [`FileError::NotMedia`] with FFmpeg's reason.
pub(crate) fn open_input(
    path: &Path,
    protocols: &str,
    formats: &str,
) -> Result<format::context::Input, FileError> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("protocol_whitelist", protocols);
    options.set("format_whitelist", formats);
    format::input_with_dictionary(&path, options).map_err(|e| match probe_format(path) {
        Some(format) if !matches_list(&format, formats) => FileError::FormatRefused {
            path: path.to_path_buf(),
            format,
            allowed: formats.to_owned(),
        },
        _ => FileError::NotMedia {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// FFmpeg's `av_match_list`: whether any comma-separated name of `names` (a demuxer's
/// `mov,mp4,m4a,…`) is one of `list`'s.
pub(crate) fn matches_list(names: &str, list: &str) -> bool {
    names
        .split(',')
        .any(|name| !name.is_empty() && list.split(',').any(|allowed| allowed == name))
}

/// The demuxer FFmpeg's probe picks for the beginning of the local file `path`, if any:
/// only to name it in an error, never to open anything.
fn probe_format(path: &Path) -> Option<String> {
    let mut buf = Vec::with_capacity(PROBE_BYTES);
    std::fs::File::open(path)
        .ok()?
        .take(PROBE_BYTES as u64)
        .read_to_end(&mut buf)
        .ok()?;
    let size = i32::try_from(buf.len()).ok()?;
    // FFmpeg reads up to AVPROBE_PADDING_SIZE bytes past the data, which must be zero.
    let padding = usize::try_from(ffmpeg::ffi::AVPROBE_PADDING_SIZE).unwrap_or(64);
    buf.resize(buf.len() + padding, 0);
    let filename = CString::new(path.to_string_lossy().into_owned()).ok()?;
    let data = ffmpeg::ffi::AVProbeData {
        filename: filename.as_ptr(),
        buf: buf.as_mut_ptr(),
        buf_size: size,
        mime_type: std::ptr::null(),
    };
    // SAFETY: `data` points at a NUL-terminated filename and `size` bytes followed by the
    // zeroed padding FFmpeg requires, all alive for the call; the probe only reads them and
    // returns a pointer to a static demuxer description (or null).
    let found = unsafe { ffmpeg::ffi::av_probe_input_format(&data, 1) };
    if found.is_null() {
        return None;
    }
    // SAFETY: `found` is a non-null pointer to one of FFmpeg's static AVInputFormats, whose
    // `name` is a static NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr((*found).name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::matches_list;

    #[test]
    fn any_of_a_demuxers_names_matches() {
        assert!(matches_list("mov,mp4,m4a,3gp,3g2,mj2", "matroska,mov"));
        assert!(matches_list("matroska,webm", "webm"));
        assert!(!matches_list("hls", "mov,matroska"));
        assert!(!matches_list("image2", "image2pipe"));
        assert!(!matches_list("concat", ""));
    }
}
