//! The built-in server: the playlist from memory (with blocking reload), every other file of
//! the folder from disk, on streamlib's HTTP server.
//!
//! The encoder thread publishes a [`Published`] snapshot (playlist text and position) on a
//! `watch` channel after every part and segment; a request that asks for a position not yet
//! reached (`_HLS_msn` / `_HLS_part`, or the hinted part's file) waits on the channel, so it
//! holds no thread and is answered the moment the position is published.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use streamlib_http::axum::Router;
use streamlib_http::axum::body::Body;
use streamlib_http::axum::extract::{Path as UrlPath, RawQuery, State};
use streamlib_http::axum::http::{StatusCode, header};
use streamlib_http::axum::response::Response;
use streamlib_http::axum::routing::get;
use streamlib_http::{CacheClass, cache_control, content_type};
use tokio::sync::watch;

use crate::PLAYLIST_NAME;

/// What the encoder thread last published.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    /// The playlist text.
    pub playlist: Arc<str>,
    /// The last complete segment's sequence number.
    pub complete: Option<u64>,
    /// The sequence number of the segment being written.
    pub open_msn: u64,
    /// Parts of the open segment written so far.
    pub open_parts: u32,
    /// `EXT-X-ENDLIST` was written: nothing more will come.
    pub ended: bool,
}

impl Published {
    /// Whether the playlist holds segment `msn` (complete), or part `part` of it.
    fn has(&self, msn: u64, part: Option<u32>) -> bool {
        if self.ended || self.complete.is_some_and(|c| c >= msn) {
            return true;
        }
        match part {
            Some(part) => self.open_msn > msn || (self.open_msn == msn && self.open_parts > part),
            None => false,
        }
    }
}

/// The channel a server reads.
pub(crate) type Feed = watch::Receiver<Option<Arc<Published>>>;

/// How the server answers.
#[derive(Debug, Clone)]
pub(crate) struct ServeSettings {
    pub dir: PathBuf,
    /// Segment length, seconds.
    pub target: f64,
    /// Part length, seconds, when LL-HLS is on.
    pub part_target: Option<f64>,
}

impl ServeSettings {
    /// How long a blocking request may wait: three target durations (the spec's bound),
    /// at most 20 s (within the HTTP server's request timeout).
    fn hold(&self) -> Duration {
        Duration::from_secs_f64((self.target * 3.0).clamp(1.0, 20.0))
    }

    /// Whether a request for (`msn`, `part`) is so far ahead of `now` that the spec says to
    /// refuse it (400): a sequence number beyond the last listed plus two, or a part more
    /// than three seconds (and a segment) of parts ahead.
    fn too_far(&self, now: &Published, msn: u64, part: Option<u32>) -> bool {
        if msn > now.open_msn + 2 {
            return true;
        }
        match (part, self.part_target) {
            (Some(part), Some(target)) => {
                let per_segment = (self.target / target).ceil().max(1.0);
                let ahead = (msn as f64 - now.open_msn as f64) * per_segment + f64::from(part)
                    - f64::from(now.open_parts);
                ahead * target > 3.0_f64.max(self.target) + target
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
struct Shared {
    settings: Arc<ServeSettings>,
    feed: Feed,
}

/// The routes: `{prefix}/{file}`.
pub(crate) fn router(settings: ServeSettings, feed: Feed, prefix: &str) -> Router {
    let shared = Shared {
        settings: Arc::new(settings),
        feed,
    };
    Router::new()
        .route(&format!("{prefix}/{{file}}"), get(serve))
        .with_state(shared)
}

fn respond(status: StatusCode, body: impl Into<Body>, kind: &str, cache: CacheClass) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = kind.parse() {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = cache_control(cache).parse() {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) = "*".parse() {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    response
}

fn error(status: StatusCode, text: &str) -> Response {
    respond(
        status,
        format!("{text}\n"),
        "text/plain; charset=utf-8",
        CacheClass::Live,
    )
}

/// A name the folder may hold: letters, digits, `.`, `_`, `-`, not starting with a dot (so
/// never `..`), no separators, short.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `segN.M.m4s` → (N, M).
fn part_of(name: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix("seg")?.strip_suffix(".m4s")?;
    let (msn, part) = rest.split_once('.')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

/// `_HLS_msn` and `_HLS_part` of a query; `Err` for values that are not numbers, or a part
/// without a sequence number.
fn blocking_query(query: Option<&str>) -> Result<Option<(u64, Option<u32>)>, ()> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("_HLS_msn", v)) => msn = Some(v.parse::<u64>().map_err(|_| ())?),
            Some(("_HLS_part", v)) => part = Some(v.parse::<u32>().map_err(|_| ())?),
            _ => {}
        }
    }
    match (msn, part) {
        (None, Some(_)) => Err(()),
        (None, None) => Ok(None),
        (Some(msn), part) => Ok(Some((msn, part))),
    }
}

/// Waits until `ready` holds for the published state (at most `hold`); the state then, or
/// the last one if it did not come in time (`None` before the first publication).
async fn wait(
    feed: &mut Feed,
    hold: Duration,
    ready: impl Fn(&Published) -> bool,
) -> (Option<Arc<Published>>, bool) {
    let reached = match tokio::time::timeout(
        hold,
        feed.wait_for(|p| p.as_ref().is_some_and(|p| ready(p))),
    )
    .await
    {
        Ok(Ok(state)) => Some(state.clone()),
        _ => None,
    };
    match reached {
        Some(state) => (state, true),
        None => (feed.borrow().clone(), false),
    }
}

async fn serve(
    State(shared): State<Shared>,
    UrlPath(file): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if !valid_name(&file) {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let settings = &shared.settings;
    let mut feed = shared.feed.clone();
    if file == PLAYLIST_NAME {
        return playlist(settings, &mut feed, query.as_deref()).await;
    }
    let path = settings.dir.join(&file);
    if let Some((msn, part)) = part_of(&file) {
        // The hinted part (or one a little ahead): hold until it is written.
        let now = feed.borrow().clone().unwrap_or_default();
        if !now.has(msn, Some(part)) && !settings.too_far(&now, msn, Some(part)) {
            let _ = wait(&mut feed, settings.hold(), |p| p.has(msn, Some(part))).await;
        }
    }
    read_file(path).await
}

async fn playlist(settings: &ServeSettings, feed: &mut Feed, query: Option<&str>) -> Response {
    let Ok(request) = blocking_query(query) else {
        return error(
            StatusCode::BAD_REQUEST,
            "_HLS_msn and _HLS_part must be numbers (and _HLS_part needs _HLS_msn)",
        );
    };
    let state = match request {
        None => wait(feed, settings.hold(), |_| true).await.0,
        Some((msn, part)) => {
            let now = feed.borrow().clone();
            if let Some(now) = &now
                && settings.too_far(now, msn, part)
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn/_HLS_part is too far beyond the playlist's last segment",
                );
            }
            let (state, ready) = wait(feed, settings.hold(), |p| p.has(msn, part)).await;
            if !ready {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested segment or part did not appear in time",
                );
            }
            state
        }
    };
    match state {
        Some(state) => respond(
            StatusCode::OK,
            state.playlist.to_string(),
            content_type(Path::new(PLAYLIST_NAME)),
            CacheClass::Live,
        ),
        None => error(StatusCode::NOT_FOUND, "no segment written yet"),
    }
}

async fn read_file(path: PathBuf) -> Response {
    let kind = content_type(&path);
    let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
    match read {
        Ok(Ok(bytes)) => respond(StatusCode::OK, bytes, kind, CacheClass::Immutable),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "not found")
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_folder_are_refused() {
        for bad in [
            "..",
            "../x",
            ".hidden",
            "a/b",
            "",
            "x%2f..",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        for good in ["index.m3u8", "seg12.3.m4s", "init.mp4", "seg7.ts"] {
            assert!(valid_name(good), "{good}");
        }
    }

    #[test]
    fn queries_and_positions() {
        assert_eq!(blocking_query(None), Ok(None));
        assert_eq!(blocking_query(Some("_HLS_msn=4")), Ok(Some((4, None))));
        assert_eq!(
            blocking_query(Some("_HLS_msn=4&_HLS_part=2")),
            Ok(Some((4, Some(2))))
        );
        assert_eq!(blocking_query(Some("_HLS_part=2")), Err(()));
        assert_eq!(blocking_query(Some("_HLS_msn=x")), Err(()));
        assert_eq!(part_of("seg12.3.m4s"), Some((12, 3)));
        assert_eq!(part_of("seg12.m4s"), None);
        let now = Published {
            complete: Some(3),
            open_msn: 4,
            open_parts: 2,
            ..Published::default()
        };
        assert!(now.has(3, None) && !now.has(4, None));
        assert!(now.has(4, Some(1)) && !now.has(4, Some(2)));
        let settings = ServeSettings {
            dir: PathBuf::new(),
            target: 1.0,
            part_target: Some(0.2),
        };
        assert!(!settings.too_far(&now, 5, None));
        assert!(settings.too_far(&now, 7, None));
        assert!(!settings.too_far(&now, 4, Some(3)));
        assert!(settings.too_far(&now, 6, Some(10)));
    }
}
