//! The routes `webrtcsrc` serves: the WHIP signalling of [`crate::rtc::signal`] at `/whip`,
//! and at `/` a page that publishes the visitor's camera and microphone to it.

use streamlib_http::axum::Router;
use streamlib_http::axum::http::header;
use streamlib_http::axum::response::{IntoResponse, Response};
use streamlib_http::axum::routing::get;

use crate::rtc::signal::{self, Submit};

/// getUserMedia, a sendonly peer connection, the offer POSTed to `whip` once ICE gathering
/// is done; `?start` begins at once; `window.streamlibWhip` tells its state.
const PUBLISH_PAGE: &str = include_str!("publish.html");

pub(super) fn router(submit: Submit) -> Router {
    Router::new()
        .route("/", get(page))
        .merge(signal::router("/whip", submit))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PUBLISH_PAGE,
    )
        .into_response()
}
