//! The control room of a running streamlib pipeline (being written by issue 16's work).

use streamlib_launch::Session;

/// Why the control room did not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The HTTP server did not start.
    #[error(transparent)]
    Http(#[from] streamlib_http::HttpError),
}

/// A control room being served; dropping it stops the server.
#[derive(Debug)]
pub struct ControlRoom {
    server: streamlib_http::HttpServer,
}

impl ControlRoom {
    /// Serves the control room of `session` at `addr` (`PORT`, `:PORT`, `HOST:PORT`).
    pub fn start(addr: &str, session: &Session) -> Result<Self, UiError> {
        let _ = session;
        let addr = streamlib_http::parse_listen_addr(addr)?;
        let router = streamlib_http::axum::Router::new();
        let server = streamlib_http::HttpServer::start(addr, router, Default::default())?;
        Ok(Self { server })
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        self.server.url("/")
    }
}
