//! Cutting the encoded stream into segments (and parts), writing them and the playlist into
//! the folder, and publishing each change to the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use streamlib_clock::Rational;
use tokio::sync::watch;

use crate::muxer::{MuxError, Muxer};
use crate::playlist::{Part, Playlist, Segment};
use crate::server::Published;
use crate::sink::HlsStats;
use crate::{HlsConfig, HlsError, INIT_NAME, PLAYLIST_NAME, PlaylistKind, SegmentFormat};

/// Writes `bytes` to `dir/name` atomically: into a temporary file beside it, renamed over
/// the old one, so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), HlsError> {
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let result = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path));
    result.map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        HlsError::Write { path, source }
    })
}

/// Where the segments go and how they are cut.
pub(crate) struct Segmenter {
    dir: PathBuf,
    kind: PlaylistKind,
    format: SegmentFormat,
    max_segments: usize,
    fps: Rational,
    /// Frames per segment and per part (LL-HLS).
    segment_frames: i64,
    part_frames: Option<i64>,
    muxer: Muxer,
    playlist: Playlist,
    /// The open segment: its first frame, its bytes so far (its parts).
    segment_start: Option<i64>,
    segment_bytes: Vec<u8>,
    part_start: i64,
    part_independent: bool,
    /// The end (exclusive, in frames) of the last video packet written.
    video_end: i64,
    feed: watch::Sender<Option<Arc<Published>>>,
    stats: HlsStats,
    /// `finish` ran: nothing more comes (a live playlist has no ENDLIST to say it).
    finished: bool,
}

fn mux_error(format: SegmentFormat) -> impl Fn(MuxError) -> HlsError {
    move |e| HlsError::Mux {
        format,
        reason: e.0,
    }
}

impl Segmenter {
    /// Writes the init segment (fMP4) and gets ready for the first packet.
    pub(crate) fn new(
        config: &HlsConfig,
        fps: Rational,
        muxer: Muxer,
        feed: watch::Sender<Option<Arc<Published>>>,
        stats: HlsStats,
    ) -> Result<Self, HlsError> {
        let frames = |seconds: f64| {
            ((seconds * f64::from(fps.num) / f64::from(fps.den.max(1))).round() as i64).max(1)
        };
        let segment_frames = frames(config.target_duration);
        let part_frames = (config.part_duration > 0.0).then(|| frames(config.part_duration));
        let seconds = |n: i64| n as f64 * f64::from(fps.den) / f64::from(fps.num.max(1));
        let target = seconds(segment_frames).ceil().max(1.0) as u32;
        let playlist = Playlist::new(
            config.playlist,
            config.segment_format,
            target,
            part_frames.map(seconds),
        );
        if config.segment_format == SegmentFormat::Fmp4 {
            write_atomic(&config.location, INIT_NAME, muxer.header())?;
        }
        Ok(Self {
            dir: config.location.clone(),
            kind: config.playlist,
            format: config.segment_format,
            max_segments: config.max_segments as usize,
            fps,
            segment_frames,
            part_frames,
            muxer,
            playlist,
            segment_start: None,
            segment_bytes: Vec::new(),
            part_start: 0,
            part_independent: false,
            video_end: 0,
            feed,
            stats,
            finished: false,
        })
    }

    /// Whether the frame at `pts` starts a new segment (the encoder must make it a keyframe).
    pub(crate) fn starts_segment(&self, pts: i64) -> bool {
        self.segment_start
            .is_none_or(|start| pts - start >= self.segment_frames)
    }

    fn seconds(&self, frames: i64) -> f64 {
        frames as f64 * f64::from(self.fps.den) / f64::from(self.fps.num.max(1))
    }

    /// Writes one video packet (stream 0), cutting a part or segment before it when it
    /// starts one.
    pub(crate) fn video(
        &mut self,
        data: &[u8],
        pts: i64,
        dts: i64,
        keyframe: bool,
    ) -> Result<(), HlsError> {
        match self.segment_start {
            None => self.open(pts, keyframe),
            Some(start) if keyframe && pts - start >= self.segment_frames => {
                self.close_part(pts, false)?;
                self.close_segment(pts)?;
                self.open(pts, keyframe);
            }
            Some(_) => {
                if let Some(frames) = self.part_frames
                    && pts - self.part_start >= frames
                {
                    self.close_part(pts, true)?;
                    self.part_start = pts;
                    self.part_independent = keyframe;
                }
            }
        }
        self.video_end = self.video_end.max(pts + 1);
        self.muxer
            .write(0, data, pts, dts, 1, keyframe)
            .map_err(mux_error(self.format))
    }

    /// Writes one audio packet (stream 1) into the open fragment; dropped before the first
    /// video packet (the stream starts with a keyframe).
    pub(crate) fn audio(&mut self, data: &[u8], pts: i64, duration: i64) -> Result<(), HlsError> {
        if self.segment_start.is_none() || pts < 0 {
            return Ok(());
        }
        self.muxer
            .write(1, data, pts, pts, duration, true)
            .map_err(mux_error(self.format))
    }

    fn open(&mut self, pts: i64, keyframe: bool) {
        self.segment_start = Some(pts);
        self.part_start = pts;
        self.part_independent = keyframe;
        self.muxer.resend_headers();
    }

    fn part_name(msn: u64, part: usize) -> String {
        format!("seg{msn}.{part}.m4s")
    }

    /// Ends the open part at `end` (frames): its fragment is cut, written as a part file
    /// (LL-HLS; a failed write is counted, not fatal) and kept for the segment; `publish`: the segment goes on (else the segment's
    /// close publishes).
    fn close_part(&mut self, end: i64, publish: bool) -> Result<(), HlsError> {
        let bytes = self.muxer.cut().map_err(mux_error(self.format))?;
        if bytes.is_empty() {
            return Ok(());
        }
        if self.format == SegmentFormat::Ts
            && self.segment_bytes.is_empty()
            && self.playlist.segments.is_empty()
        {
            // MPEG-TS: what the header wrote belongs before the first packets.
            self.segment_bytes.extend_from_slice(self.muxer.header());
        }
        self.segment_bytes.extend_from_slice(&bytes);
        if self.part_frames.is_none() {
            return Ok(());
        }
        let msn = self.playlist.next_msn();
        let index = self.playlist.open_parts.len();
        let name = Self::part_name(msn, index);
        let written = write_atomic(&self.dir, &name, &bytes);
        self.count_write(&written, bytes.len());
        self.playlist.open_parts.push(Part {
            duration: self.seconds(end - self.part_start),
            uri: name,
            independent: self.part_independent,
        });
        self.stats.inner.parts.fetch_add(1, Ordering::Relaxed);
        self.playlist.preload_hint = Some(Self::part_name(msn, index + 1));
        if publish {
            self.publish();
        }
        Ok(())
    }

    fn count_write(&self, result: &Result<(), HlsError>, bytes: usize) {
        match result {
            Ok(()) => {
                self.stats
                    .inner
                    .bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .inner
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.stats.set_error(e.to_string());
                tracing::warn!("{e}");
            }
        }
    }

    /// Ends the open segment at `end` (frames): written whole, listed, the window slid.
    fn close_segment(&mut self, end: i64) -> Result<(), HlsError> {
        let Some(start) = self.segment_start.take() else {
            return Ok(());
        };
        if self.segment_bytes.is_empty() {
            return Ok(());
        }
        let msn = self.playlist.next_msn();
        let name = format!("seg{msn}.{}", self.format.extension());
        let bytes = std::mem::take(&mut self.segment_bytes);
        let written = write_atomic(&self.dir, &name, &bytes);
        self.count_write(&written, bytes.len());
        self.playlist.segments.push_back(Segment {
            msn,
            duration: self.seconds(end - start),
            uri: name,
            parts: std::mem::take(&mut self.playlist.open_parts),
        });
        self.stats.inner.segments.fetch_add(1, Ordering::Relaxed);
        if self.part_frames.is_some() {
            self.playlist.preload_hint = Some(Self::part_name(msn + 1, 0));
            // Parts older than the ones listed are not needed any more.
            let listed = self.playlist.segments.len();
            if listed > 3
                && let Some(old) = self.playlist.segments.get(listed - 4)
            {
                for part in &old.parts {
                    let _ = std::fs::remove_file(self.dir.join(&part.uri));
                }
            }
        }
        if self.kind == PlaylistKind::Live {
            while self.playlist.segments.len() > self.max_segments {
                if let Some(old) = self.playlist.segments.pop_front() {
                    self.delete(&old);
                }
            }
        }
        self.publish();
        Ok(())
    }

    fn delete(&self, segment: &Segment) {
        let _ = std::fs::remove_file(self.dir.join(&segment.uri));
        for part in &segment.parts {
            let _ = std::fs::remove_file(self.dir.join(&part.uri));
        }
        self.stats.inner.deleted.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the playlist and tells the server (a failed write is counted and logged: the
    /// next one may succeed, and the server has the playlist anyway).
    fn publish(&mut self) {
        let text: Arc<str> = self.playlist.render().into();
        let written = write_atomic(&self.dir, PLAYLIST_NAME, text.as_bytes());
        self.count_write(&written, 0);
        let published = Published {
            playlist: text,
            complete: self.playlist.segments.back().map(|s| s.msn),
            open_msn: self.playlist.next_msn(),
            open_parts: u32::try_from(self.playlist.open_parts.len()).unwrap_or(u32::MAX),
            ended: self.playlist.ended || self.finished,
        };
        self.feed.send_replace(Some(Arc::new(published)));
    }

    /// Ends the stream: the last part and segment are written, and for event and VOD
    /// playlists `EXT-X-ENDLIST`.
    pub(crate) fn finish(&mut self) -> Result<(), HlsError> {
        let end = self.video_end;
        let cut = self.close_part(end, false);
        let closed = self.close_segment(end);
        let trailer = self
            .muxer
            .finish()
            .map(|_| ())
            .map_err(mux_error(self.format));
        self.playlist.preload_hint = None;
        if self.kind != PlaylistKind::Live {
            self.playlist.ended = true;
        }
        self.finished = true;
        self.publish();
        cut.and(closed).and(trailer)
    }
}
