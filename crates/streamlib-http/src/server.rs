//! The server: a hyper accept loop on its own thread, with every limit in [`Limits`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, oneshot};

/// The host every server binds when its address names only a port: loopback.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What one server accepts before it refuses or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; the next waits in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time a client has to send a whole request head; slower clients are disconnected.
    pub header_timeout: Duration,
    /// Time a route has to produce its response head; `503 Service Unavailable` after it.
    pub request_timeout: Duration,
    /// Largest request body a route reads (`413 Payload Too Large` above it).
    pub max_body: usize,
    /// Largest request head (request line and headers) hyper buffers.
    pub max_head: usize,
}

impl Default for Limits {
    /// 256 connections, 10 s for a request head of at most 64 KiB, 30 s to answer, 1 MiB
    /// bodies: more than an SDP offer (a few KiB) or a property change needs.
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body: 1024 * 1024,
            max_head: 64 * 1024,
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address is not `HOST:PORT`, `:PORT` or `PORT`.
    #[error("'{text}' is not a listen address (HOST:PORT, :PORT or PORT): {reason}")]
    Address {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address could not be bound (in use, not local, no permission).
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server's thread or runtime could not be created.
    #[error("could not start the HTTP server for {addr}: {source}")]
    Start {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses a listen address: `HOST:PORT` (`0.0.0.0:8889` to listen everywhere, `[::1]:8889`),
/// `localhost:PORT`, `:PORT` or `PORT` (both on [`DEFAULT_HOST`]). Host names other than
/// `localhost` are refused: a server binds an address, not a name to resolve.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, HttpError> {
    let bad = |reason: &str| HttpError::Address {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = text.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port_text = trimmed
        .strip_prefix("localhost:")
        .or_else(|| trimmed.strip_prefix(':'))
        .unwrap_or(trimmed);
    if port_text.is_empty() {
        return Err(bad("no port"));
    }
    match port_text.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::new(DEFAULT_HOST, port)),
        Err(_) if trimmed.contains(':') => Err(bad("the host is not an IP address")),
        Err(_) => Err(bad("the port is not a number from 0 to 65535")),
    }
}

/// A running server. Dropping it (or [`stop`](Self::stop)) closes the listener and every
/// open connection, and joins its thread.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free one: see [`local_addr`](Self::local_addr)) and serves
    /// `router` under `limits`, on a thread of its own. Binding happens before this returns,
    /// so an address in use is an error here, not a log line later.
    pub fn start(addr: SocketAddr, router: Router, limits: Limits) -> Result<Self, HttpError> {
        let listener =
            StdListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Start { addr, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("streamlib-http")
            .build()
            .map_err(|source| HttpError::Start { addr, source })?;
        let router = router.layer(DefaultBodyLimit::max(limits.max_body)).layer(
            middleware::from_fn_with_state(limits.request_timeout, answer_within),
        );
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("streamlib-http {local}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, router, limits, stopped).await,
                        Err(e) => tracing::error!("HTTP server on {local} could not start: {e}"),
                    }
                });
                // Open connections are tasks of this runtime: they end with it.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|source| HttpError::Start { addr, source })?;
        tracing::info!("HTTP server listening on http://{local}/");
        Ok(Self {
            addr: local,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Closes the listener and every connection, and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free connection slot first: over the limit, clients wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = &mut stopped => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_head.max(8192));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
}

/// Answers `503` when a route takes longer than the limit to produce its response head.
async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{path}: no answer within {} ms", limit.as_millis()),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            parse_listen_addr("8889").ok(),
            Some(SocketAddr::new(DEFAULT_HOST, 8889))
        );
        assert_eq!(
            parse_listen_addr(":8889").ok(),
            Some(SocketAddr::new(DEFAULT_HOST, 8889))
        );
        assert_eq!(
            parse_listen_addr("localhost:80").ok(),
            Some(SocketAddr::new(DEFAULT_HOST, 80))
        );
        assert_eq!(
            parse_listen_addr("0.0.0.0:1").ok(),
            "0.0.0.0:1".parse::<SocketAddr>().ok()
        );
        for bad in ["", "example.com:80", "99999", "host"] {
            assert!(parse_listen_addr(bad).is_err(), "{bad} was accepted");
        }
    }
}
