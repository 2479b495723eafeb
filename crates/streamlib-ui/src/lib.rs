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

mod previews;
mod room;
mod routes;

use std::net::SocketAddr;

use streamlib_launch::{PipelineDesc, Registry, Session};

pub use previews::{PREVIEW_HANDLER, add_previews};
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
    room: routes::Shared,
    previews: Vec<PreviewTap>,
}

impl ControlRoom {
    /// Serves the control room of `session` at `addr` (`PORT`, `:PORT` — both on loopback —
    /// or `HOST:PORT`; port 0 picks a free one, see [`url`](Self::url)).
    pub fn start(addr: &str, session: &Session) -> Result<Self, UiError> {
        let room = Self::bind(addr)?;
        room.attach(session);
        Ok(room)
    }

    /// Binds `addr` and serves the page before the pipeline exists: its API answers `503`
    /// until [`attach`](Self::attach). So a bad or busy address fails before a pipeline
    /// starts (and writes files) for nothing.
    pub fn bind(addr: &str) -> Result<Self, UiError> {
        let addr = streamlib_http::parse_listen_addr(addr)?;
        let room = routes::Shared::default();
        let limits = streamlib_http::Limits {
            max_body: MAX_BODY,
            ..Default::default()
        };
        let server = streamlib_http::HttpServer::start(addr, routes::router(room.clone()), limits)?;
        Ok(Self {
            server,
            room,
            previews: Vec::new(),
        })
    }

    /// Before launch: adds a preview tap on each video output of `desc` ([`add_previews`]),
    /// which [`attach`](Self::attach) then marks in the graph and the page offers to play.
    pub fn add_previews(&mut self, desc: &mut PipelineDesc, registry: &Registry) -> &[PreviewTap] {
        self.previews.extend(add_previews(desc, registry));
        &self.previews
    }

    /// The same room, showing `previews`: taps [`add_previews`] put in the description the
    /// session was started from (for a caller that added them itself, before it had a room).
    pub fn with_previews(mut self, previews: Vec<PreviewTap>) -> Self {
        self.previews.extend(previews);
        self
    }

    /// Shows `session` (started from the description given to
    /// [`add_previews`](Self::add_previews), if any). Only the first call counts: a room
    /// shows one pipeline.
    pub fn attach(&self, session: &Session) {
        let _ = self
            .room
            .set(room::Room::new(session, self.previews.clone()));
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
