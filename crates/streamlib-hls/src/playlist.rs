//! The media playlist (RFC 8216 and its low-latency extension, draft-pantos-hls-rfc8216bis):
//! what is listed, rendered to text on every change.

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::{PlaylistKind, SegmentFormat};

/// A partial segment (LL-HLS `EXT-X-PART`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    pub duration: f64,
    pub uri: String,
    /// Starts with a keyframe.
    pub independent: bool,
}

/// A complete media segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub msn: u64,
    pub duration: f64,
    pub uri: String,
    pub parts: Vec<Part>,
}

/// The playlist's state.
#[derive(Debug, Clone)]
pub(crate) struct Playlist {
    pub kind: PlaylistKind,
    pub format: SegmentFormat,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub target_duration: u32,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds; `None` without LL-HLS.
    pub part_target: Option<f64>,
    pub segments: VecDeque<Segment>,
    /// The parts of the segment being written (LL-HLS).
    pub open_parts: Vec<Part>,
    /// The URI of the next part (`EXT-X-PRELOAD-HINT`).
    pub preload_hint: Option<String>,
    pub ended: bool,
}

/// How many of the last complete segments keep their parts listed: the spec wants parts
/// within three target durations of the end; two segments plus the open one cover that
/// for the usual 1–4 s segments.
const SEGMENTS_WITH_PARTS: usize = 2;

impl Playlist {
    pub(crate) fn new(
        kind: PlaylistKind,
        format: SegmentFormat,
        target_duration: u32,
        part_target: Option<f64>,
    ) -> Self {
        Self {
            kind,
            format,
            target_duration,
            part_target,
            segments: VecDeque::new(),
            open_parts: Vec::new(),
            preload_hint: None,
            ended: false,
        }
    }

    /// The sequence number of the first listed segment.
    pub(crate) fn first_msn(&self) -> u64 {
        self.segments.front().map_or(self.next_msn(), |s| s.msn)
    }

    /// The sequence number of the segment being written (one past the last complete one).
    pub(crate) fn next_msn(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.msn + 1)
    }

    /// `#EXTM3U` text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 64);
        let version = match (self.format, self.part_target) {
            (_, Some(_)) => 9,
            (SegmentFormat::Fmp4, None) => 7,
            (SegmentFormat::Ts, None) => 3,
        };
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.first_msn());
        match self.kind {
            PlaylistKind::Live => {}
            PlaylistKind::Event => {
                let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:EVENT");
            }
            PlaylistKind::Vod => {
                let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
            }
        }
        let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
        if let Some(part) = self.part_target {
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
                part * 3.0
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part:.3}");
        } else if self.kind != PlaylistKind::Vod {
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES");
        }
        if self.format == SegmentFormat::Fmp4 {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", crate::INIT_NAME);
        }
        let with_parts = self.segments.len().saturating_sub(SEGMENTS_WITH_PARTS);
        for (i, segment) in self.segments.iter().enumerate() {
            if i >= with_parts && !self.ended {
                write_parts(&mut out, &segment.parts);
            }
            let _ = writeln!(out, "#EXTINF:{:.5},", segment.duration);
            let _ = writeln!(out, "{}", segment.uri);
        }
        if self.ended {
            let _ = writeln!(out, "#EXT-X-ENDLIST");
        } else {
            write_parts(&mut out, &self.open_parts);
            if let Some(hint) = &self.preload_hint {
                let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
            }
        }
        out
    }
}

fn write_parts(out: &mut String, parts: &[Part]) {
    for part in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
            part.duration, part.uri
        );
        if part.independent {
            let _ = write!(out, ",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(msn: u64, parts: usize) -> Segment {
        Segment {
            msn,
            duration: 1.0,
            uri: format!("seg{msn}.m4s"),
            parts: (0..parts)
                .map(|i| Part {
                    duration: 0.2,
                    uri: format!("seg{msn}.{i}.m4s"),
                    independent: i == 0,
                })
                .collect(),
        }
    }

    #[test]
    fn live_playlist_lists_the_window() {
        let mut p = Playlist::new(PlaylistKind::Live, SegmentFormat::Fmp4, 2, None);
        p.segments.push_back(segment(3, 0));
        p.segments.push_back(segment(4, 0));
        let text = p.render();
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
        assert!(text.contains("#EXTINF:1.00000,\nseg3.m4s\n#EXTINF:1.00000,\nseg4.m4s\n"));
        assert!(!text.contains("PLAYLIST-TYPE"));
        assert!(!text.contains("ENDLIST"));
    }

    #[test]
    fn ll_hls_lists_parts_and_a_preload_hint_until_the_end() {
        let mut p = Playlist::new(PlaylistKind::Event, SegmentFormat::Fmp4, 1, Some(0.2));
        for msn in 0..4 {
            p.segments.push_back(segment(msn, 5));
        }
        p.open_parts = segment(4, 2).parts;
        p.preload_hint = Some("seg4.2.m4s".to_owned());
        let text = p.render();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"));
        // Parts of the last two complete segments and of the open one, not older.
        assert!(!text.contains("seg1.0.m4s"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"seg2.0.m4s\",INDEPENDENT=YES\n"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.20000,URI=\"seg4.1.m4s\"\n"));
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg4.2.m4s\"\n"));
        p.ended = true;
        let text = p.render();
        assert!(text.ends_with("seg3.m4s\n#EXT-X-ENDLIST\n"));
        assert!(!text.contains("EXT-X-PART:"));
    }

    #[test]
    fn ts_playlists_have_no_map() {
        let mut p = Playlist::new(PlaylistKind::Vod, SegmentFormat::Ts, 6, None);
        p.segments.push_back(Segment {
            msn: 0,
            duration: 6.0,
            uri: "seg0.ts".to_owned(),
            parts: Vec::new(),
        });
        p.ended = true;
        let text = p.render();
        assert!(text.contains("#EXT-X-VERSION:3\n"));
        assert!(!text.contains("EXT-X-MAP"));
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }
}
