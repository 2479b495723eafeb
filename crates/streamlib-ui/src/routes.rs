//! The control room's HTTP routes: the page and its scripts (embedded, no build step), the
//! JSON API the page polls, and property changes.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use streamlib_http::axum::Router;
use streamlib_http::axum::extract::{Path as UrlPath, State};
use streamlib_http::axum::http::{StatusCode, header};
use streamlib_http::axum::response::{IntoResponse, Response};
use streamlib_http::axum::routing::{get, post};
use streamlib_http::{CacheClass, cache_control, content_type};

use crate::room::{Refusal, Room};

/// The page's files, embedded at compile time.
const ASSETS: &[(&str, &str)] = &[
    ("index.html", include_str!("../assets/index.html")),
    ("app.js", include_str!("../assets/app.js")),
    ("graph.js", include_str!("../assets/graph.js")),
    ("style.css", include_str!("../assets/style.css")),
];

/// What the routes read: the room, once the pipeline it shows has started.
pub(crate) type Shared = Arc<OnceLock<Room>>;

/// Every route of the control room over `room` (`503` from the API until it is set).
pub(crate) fn router(room: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/assets/{file}",
            get(|UrlPath(file): UrlPath<String>| async move { asset(&file) }),
        )
        .route("/api/graph", get(graph))
        .route("/api/stats", get(stats))
        .route(
            "/api/elements/{element}/properties/{property}",
            post(set_property),
        )
        .with_state(room)
}

/// An embedded file with its MIME type; `404` for any other name.
fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _)| *n == name) {
        Some((name, text)) => (
            [
                (header::CONTENT_TYPE, content_type(Path::new(name))),
                (header::CACHE_CONTROL, cache_control(CacheClass::Page)),
            ],
            *text,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no file `{name}` in the control room\n"),
        )
            .into_response(),
    }
}

/// A JSON answer that is never cached (it changes every moment).
fn live_json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache_control(CacheClass::Live)),
        ],
        value.to_string(),
    )
        .into_response()
}

/// The room, or `503` while the pipeline is still starting.
fn started(room: &Shared) -> Result<&Room, Response> {
    room.get().ok_or_else(|| {
        live_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": "the pipeline is still starting" }),
        )
    })
}

async fn graph(State(room): State<Shared>) -> Response {
    match started(&room) {
        Ok(room) => live_json(StatusCode::OK, &room.graph_json()),
        Err(starting) => starting,
    }
}

async fn stats(State(room): State<Shared>) -> Response {
    match started(&room) {
        Ok(room) => live_json(StatusCode::OK, &room.stats_json()),
        Err(starting) => starting,
    }
}

/// `POST /api/elements/{element}/properties/{property}` with the value as the body's text:
/// `200` once queued, `404` for an unknown element or property, `400` for a value or change
/// refused; each error body says why.
async fn set_property(
    State(room): State<Shared>,
    UrlPath((element, property)): UrlPath<(String, String)>,
    body: String,
) -> Response {
    let room = match started(&room) {
        Ok(room) => room,
        Err(starting) => return starting,
    };
    let value = body.trim();
    match room.set_property(&element, &property, value) {
        Ok(()) => live_json(
            StatusCode::OK,
            &json!({ "element": element, "property": property, "value": value }),
        ),
        Err(Refusal::NotFound(error)) => {
            live_json(StatusCode::NOT_FOUND, &json!({ "error": error }))
        }
        Err(Refusal::Refused(error)) => {
            live_json(StatusCode::BAD_REQUEST, &json!({ "error": error }))
        }
    }
}
