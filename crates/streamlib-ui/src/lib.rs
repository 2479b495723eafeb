//! The control room of a running streamlib pipeline: `streamlib launch … --ui ADDR` serves a
//! live page at `http://ADDR/`.
//!
//! The page (plain HTML and JavaScript embedded in this crate, no build step) shows
//!
//! - the negotiated graph: every element, the links with their memory space and format caps,
//!   and what negotiation inserted (memory transfers, format converters), drawn as SVG;
//! - per-element statistics updating twice a second, with small plots of process time
//!   (p50/p99), drops and latency;
//! - every live property as a control; a change goes through [`Controls::set`] (checked like a
//!   launch-time value) and a refusal is shown beside the control.
//!
//! Behind the page is a small JSON API, which scripts may use too:
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /api/graph` | the graph: nodes with their properties (value, type, range, `live`), edges |
//! | `GET /api/stats` | the statistics `streamlib launch --stats --json` prints, handlers' reports included |
//! | `POST /api/elements/{element}/properties/{property}` | body: the value as text; `200`, `404` (unknown element or property) or `400` (refused), with the reason |
//!
//! The server is [`streamlib_http`]'s: loopback unless an address names another host, bounded
//! connections, bodies of at most [`MAX_BODY`] bytes (`413` above). It runs on its own thread
//! and stops when the [`ControlRoom`] is dropped.
//!
//! ```no_run
//! use streamlib_launch::{LaunchOptions, Registry, Session, parse};
//! use streamlib_ui::ControlRoom;
//!
//! let desc = parse("testpattern ! blur sigma=2 ! null")?;
//! let session = Session::start(&Registry::builtin(), &desc, LaunchOptions::default())?;
//! let room = ControlRoom::start("127.0.0.1:0", &session)?;
//! println!("control room: {}", room.url());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Controls::set`]: streamlib_launch::Controls::set

mod room;
mod routes;

use std::net::SocketAddr;

use streamlib_launch::Session;

pub use room::PreviewTap;

/// The largest request body the control room reads (a property value is a few bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Why the control room did not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The address is not a listen address, or the HTTP server could not bind or start.
    #[error("control room: {0}")]
    Http(#[from] streamlib_http::HttpError),
}

/// A control room being served; dropping it stops the server.
#[derive(Debug)]
pub struct ControlRoom {
    server: streamlib_http::HttpServer,
}

impl ControlRoom {
    /// Serves the control room of `session` at `addr` (`PORT`, `:PORT` — both on loopback —
    /// or `HOST:PORT`; port 0 picks a free one, see [`url`](Self::url)).
    pub fn start(addr: &str, session: &Session) -> Result<Self, UiError> {
        Self::start_with_previews(addr, session, Vec::new())
    }

    /// [`start`](Self::start), with the preview taps inserted on the session's video outputs,
    /// which the graph marks and the page offers to play.
    pub fn start_with_previews(
        addr: &str,
        session: &Session,
        previews: Vec<PreviewTap>,
    ) -> Result<Self, UiError> {
        let addr = streamlib_http::parse_listen_addr(addr)?;
        let router = routes::router(room::Room::new(session, previews));
        let limits = streamlib_http::Limits {
            max_body: MAX_BODY,
            ..Default::default()
        };
        let server = streamlib_http::HttpServer::start(addr, router, limits)?;
        Ok(Self { server })
    }

    /// `http://ADDR/`, the page.
    pub fn url(&self) -> String {
        self.server.url("/")
    }

    /// The bound address (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}
