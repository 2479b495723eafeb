//! Content types and cache headers for what streamlib serves.

use std::path::Path;

/// How long a response may be cached, by what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// Changes while it is being watched (a live playlist, statistics): never cached.
    Live,
    /// Written once and never changed under its name (a media segment, an init segment).
    Immutable,
    /// A page or script of the server itself: revalidated on every load.
    Page,
}

/// The `Cache-Control` value for a class.
pub fn cache_control(class: CacheClass) -> &'static str {
    match class {
        CacheClass::Live => "no-cache, no-store, must-revalidate",
        CacheClass::Immutable => "public, max-age=31536000, immutable",
        CacheClass::Page => "no-cache",
    }
}

/// The `Content-Type` for a file name, by its extension; `application/octet-stream` for one
/// it does not know.
///
/// HLS types follow RFC 8216 §4 (`.m3u8`), ISO/IEC 23000-19 for CMAF (`.m4s`, `.mp4`) and
/// ISO/IEC 13818-1 (`.ts`).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("m4s") => "video/iso.segment",
        Some("mp4" | "m4v") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("ts") => "video/mp2t",
        Some("aac") => "audio/aac",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("sdp") => "application/sdp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_types_are_the_registered_ones() {
        assert_eq!(
            content_type(Path::new("live/index.m3u8")),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type(Path::new("seg00001.M4S")), "video/iso.segment");
        assert_eq!(content_type(Path::new("init.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("seg1.ts")), "video/mp2t");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn live_content_is_never_cached() {
        assert!(cache_control(CacheClass::Live).contains("no-store"));
        assert!(cache_control(CacheClass::Immutable).contains("immutable"));
    }
}
