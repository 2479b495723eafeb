//! WHIP / WHEP signalling over HTTP (RFC 9725, RFC 9725's WHEP twin): an SDP offer is
//! `POST`ed to the endpoint and answered `201 Created` with the SDP answer and the session's
//! `Location`; `PATCH` on that resource trickles ICE candidates
//! (`application/trickle-ice-sdpfrag`), `DELETE` ends the session. Every answer carries CORS
//! headers, and `OPTIONS` is answered, so a page from another origin can connect.
//!
//! The routes never block the server's thread: each request becomes a [`SignalRequest`]
//! handed to the endpoint's own thread, whose [`SignalReply`] comes back on a oneshot.

use std::sync::Arc;

use streamlib_http::axum::Router;
use streamlib_http::axum::body::Bytes;
use streamlib_http::axum::extract::{Path, State};
use streamlib_http::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use streamlib_http::axum::middleware;
use streamlib_http::axum::response::{IntoResponse, Response};
use streamlib_http::axum::routing::post;
use tokio::sync::oneshot;

/// The media type of an SDP offer or answer.
pub(crate) const SDP: &str = "application/sdp";
/// The media type of a trickled candidate fragment (RFC 8840).
pub(crate) const SDP_FRAGMENT: &str = "application/trickle-ice-sdpfrag";

/// One signalling request, for the endpoint's thread.
#[derive(Debug)]
pub(crate) enum SignalRequest {
    /// An SDP offer: answer it with a new session, or refuse it.
    Offer {
        /// The offer's text.
        sdp: String,
        /// Where the answer goes.
        reply: oneshot::Sender<SignalReply>,
    },
    /// Candidates trickled for a session.
    Trickle {
        /// The session id (the last segment of its `Location`).
        session: String,
        /// The SDP fragment's text.
        fragment: String,
        /// Where the verdict goes.
        reply: oneshot::Sender<SignalReply>,
    },
    /// The end of a session.
    End {
        /// The session id.
        session: String,
        /// Where the verdict goes.
        reply: oneshot::Sender<SignalReply>,
    },
}

/// The endpoint's verdict on a [`SignalRequest`].
#[derive(Debug)]
pub(crate) enum SignalReply {
    /// A session was made: `201 Created` with the answer.
    Created {
        /// The new session's id.
        session: String,
        /// The SDP answer.
        answer: String,
    },
    /// Done, nothing to say (`204` for a trickle, `200` for an end).
    Done,
    /// Refused with this status and a message naming what is wrong.
    Refused {
        /// The HTTP status (`400` malformed, `404` unknown session, `503` full, …).
        status: StatusCode,
        /// For the client's developer.
        message: String,
    },
}

impl SignalReply {
    /// A refusal with `status` and `message`.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            message: message.into(),
        }
    }
}

/// Hands a request to the endpoint's thread; `false` when its inbox is full or closed.
pub(crate) type Submit = Arc<dyn Fn(SignalRequest) -> bool + Send + Sync>;

#[derive(Clone)]
struct Endpoint {
    path: &'static str,
    submit: Submit,
}

/// The routes of an endpoint at `path` (`/whep`, `/whip`) and its sessions at `path/{id}`.
pub(crate) fn router(path: &'static str, submit: Submit) -> Router {
    let endpoint = Endpoint { path, submit };
    Router::new()
        .route(path, post(offer).options(endpoint_options))
        .route(
            &format!("{path}/{{session}}"),
            post(method_not_allowed)
                .patch(trickle)
                .delete(end)
                .options(session_options),
        )
        .with_state(endpoint)
        .layer(middleware::map_response(with_cors))
}

/// CORS headers on every answer: any origin may signal (the media path is ICE-checked and
/// DTLS-encrypted; a session id in a `Location` is the only capability).
pub(crate) async fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, If-Match, Authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch, Accept-Post"),
    );
    response
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The body as text when the request's content type is `expected`.
fn body_of(headers: &HeaderMap, body: &Bytes, expected: &str) -> Result<String, Response> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(expected) {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be {expected}, not `{}`",
                given.chars().take(80).collect::<String>()
            ),
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            format!("the {expected} body is not UTF-8"),
        )
    })
}

/// Submits a request built around a fresh oneshot and waits for the endpoint's reply.
async fn ask(
    endpoint: &Endpoint,
    make: impl FnOnce(oneshot::Sender<SignalReply>) -> SignalRequest,
) -> Result<SignalReply, Response> {
    let (reply, answer) = oneshot::channel();
    if !(endpoint.submit)(make(reply)) {
        return Err(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the endpoint is busy or stopped; try again",
        ));
    }
    answer
        .await
        .map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "the endpoint stopped"))
}

fn reply_response(endpoint: &Endpoint, reply: SignalReply, done: StatusCode) -> Response {
    match reply {
        SignalReply::Created { session, answer } => {
            let location = format!("{}/{session}", endpoint.path);
            (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, SDP.to_owned()),
                    (header::LOCATION, location),
                    (header::ETAG, format!("\"{session}\"")),
                    (
                        header::HeaderName::from_static("accept-patch"),
                        SDP_FRAGMENT.to_owned(),
                    ),
                ],
                answer,
            )
                .into_response()
        }
        SignalReply::Done => done.into_response(),
        SignalReply::Refused { status, message } => text(status, message),
    }
}

async fn offer(State(endpoint): State<Endpoint>, headers: HeaderMap, body: Bytes) -> Response {
    let sdp = match body_of(&headers, &body, SDP) {
        Ok(sdp) => sdp,
        Err(refused) => return refused,
    };
    match ask(&endpoint, |reply| SignalRequest::Offer { sdp, reply }).await {
        Ok(reply) => reply_response(&endpoint, reply, StatusCode::NO_CONTENT),
        Err(refused) => refused,
    }
}

async fn trickle(
    State(endpoint): State<Endpoint>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fragment = match body_of(&headers, &body, SDP_FRAGMENT) {
        Ok(fragment) => fragment,
        Err(refused) => return refused,
    };
    let request = |reply| SignalRequest::Trickle {
        session,
        fragment,
        reply,
    };
    match ask(&endpoint, request).await {
        Ok(reply) => reply_response(&endpoint, reply, StatusCode::NO_CONTENT),
        Err(refused) => refused,
    }
}

async fn end(State(endpoint): State<Endpoint>, Path(session): Path<String>) -> Response {
    match ask(&endpoint, |reply| SignalRequest::End { session, reply }).await {
        Ok(reply) => reply_response(&endpoint, reply, StatusCode::OK),
        Err(refused) => refused,
    }
}

async fn endpoint_options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "POST, OPTIONS"),
            (header::HeaderName::from_static("accept-post"), SDP),
        ],
    )
        .into_response()
}

async fn session_options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "PATCH, DELETE, OPTIONS"),
            (
                header::HeaderName::from_static("accept-patch"),
                SDP_FRAGMENT,
            ),
        ],
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        "a session resource takes PATCH (trickle ICE) and DELETE",
    )
}
