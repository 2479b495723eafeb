//! The WHIP routes (RFC 9725 §4): they check what HTTP can check (method, content type,
//! UTF-8, size) and hand everything else to the session thread, awaiting its answer.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};

use streamlib_http::axum::Router;
use streamlib_http::axum::body::Bytes;
use streamlib_http::axum::extract::{Path, State};
use streamlib_http::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use streamlib_http::axum::response::{IntoResponse, Response};
use streamlib_http::axum::routing::{get, post};

use super::session::{Answer, Command};
use super::{Shared, add, reply};

/// What every route shares.
#[derive(Clone)]
struct Routes {
    commands: SyncSender<Command>,
    shared: Arc<Shared>,
}

pub(super) fn router(commands: SyncSender<Command>, shared: Arc<Shared>) -> Router {
    let state = Routes { commands, shared };
    Router::new()
        .route("/", get(page))
        .route("/whip", post(offer).options(preflight))
        .route(
            "/whip/{id}",
            post(not_allowed)
                .delete(delete)
                .patch(patch)
                .options(preflight),
        )
        .with_state(state)
}

/// CORS for pages of any origin: the offer's `application/sdp` makes a browser ask first
/// (preflight), and it must be allowed to read `Location`.
fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Post"),
    );
    response
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    cors(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, DELETE, PATCH, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, If-Match"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert("Accept-Post", HeaderValue::from_static("application/sdp"));
    cors(response)
}

/// A page that publishes the visitor's camera and microphone to this endpoint
/// (`http://ADDR/`, `?start` to begin at once).
const PUBLISH_PAGE: &str = include_str!("publish.html");

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

async fn not_allowed() -> Response {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "a WHIP session resource takes DELETE (and OPTIONS)",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    response
}

/// Trickle ICE and ICE restarts are not supported: the answer holds every candidate.
async fn patch() -> Response {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "webrtcsrc does not take trickle ICE or ICE restarts: the answer carries all candidates",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    response
}

/// Sends `command` to the session thread and awaits its answer.
async fn ask(
    routes: &Routes,
    make: impl FnOnce(reply::ReplySender<Answer>) -> Command,
) -> Result<Answer, Response> {
    let (tx, rx) = reply::channel();
    match routes.commands.try_send(make(tx)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "webrtcsrc is busy with other requests; try again",
            ));
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "webrtcsrc is stopping",
            ));
        }
    }
    rx.await.ok_or_else(|| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "webrtcsrc's session thread ended without answering",
        )
    })
}

async fn offer(State(routes): State<Routes>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/sdp") {
        add(&routes.shared.refused_bad, 1);
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a WHIP offer is Content-Type: application/sdp, not '{}'",
                content_type.chars().take(64).collect::<String>()
            ),
        );
    }
    let Ok(sdp) = String::from_utf8(body.to_vec()) else {
        add(&routes.shared.refused_bad, 1);
        return text(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
    };
    match ask(&routes, |reply| Command::Offer { sdp, reply }).await {
        Ok(Answer::Created { id, sdp }) => {
            let location = format!("/whip/{id}");
            let mut response = (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/sdp")],
                sdp,
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            if let Ok(value) = HeaderValue::from_str(&format!("\"{id}\"")) {
                response.headers_mut().insert(header::ETAG, value);
            }
            cors(response)
        }
        Ok(Answer::Refused { status, message }) => text(status, message),
        Ok(Answer::Deleted) => text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer"),
        Err(response) => response,
    }
}

async fn delete(State(routes): State<Routes>, Path(id): Path<String>) -> Response {
    match ask(&routes, |reply| Command::Delete { id, reply }).await {
        Ok(Answer::Deleted) => text(StatusCode::OK, "session ended"),
        Ok(Answer::Refused { status, message }) => text(status, message),
        Ok(Answer::Created { .. }) => text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer"),
        Err(response) => response,
    }
}
