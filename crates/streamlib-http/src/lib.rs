//! The HTTP server streamlib's delivery and control planes share.
//!
//! HLS playlists and segments (`hlssink serve=`), WHEP and WHIP signalling (`webrtcsink`,
//! `webrtcsrc`) and the control room (`streamlib launch --ui`) are each an [`axum::Router`]
//! handed to [`HttpServer::start`]. The server runs on its own small tokio runtime, so the
//! handler threads that own it stay synchronous, and every bound that protects a pipeline from
//! its viewers lives here, once:
//!
//! - it listens on loopback unless the caller names another address ([`DEFAULT_HOST`]);
//! - at most [`Limits::max_connections`] connections are open at once; the next one waits in
//!   the kernel's backlog, it is not served half-way;
//! - a client has [`Limits::header_timeout`] to send its request head (a slow-loris client is
//!   dropped), and a handler [`Limits::request_timeout`] to answer (`503` after that);
//! - a request body over [`Limits::max_body`] is refused with `413` before it is read whole.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use streamlib_http::{HttpServer, Limits, parse_listen_addr};
//!
//! let router = Router::new().route("/", get(|| async { "hello" }));
//! let server = HttpServer::start(parse_listen_addr("0")?, router, Limits::default())?;
//! println!("serving on http://{}/", server.local_addr());
//! // Dropping the server (or `server.stop()`) closes the listener and every connection.
//! # Ok::<(), streamlib_http::HttpError>(())
//! ```

mod mime;
mod server;

pub use mime::{CacheClass, cache_control, content_type};
pub use server::{DEFAULT_HOST, HttpError, HttpServer, Limits, parse_listen_addr};

/// Re-exported so that users of this crate build routes against the same axum.
pub use axum;
