//! The server's bounds, against real sockets: what a slow, greedy or hostile client gets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use streamlib_http::{HttpServer, Limits};

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

fn start(limits: Limits) -> HttpServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    HttpServer::start(addr, router(), limits).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `raw` and reads the whole answer (the request says `Connection: close`).
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(raw)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn serves_on_loopback_and_stops() {
    let server = start(Limits::default());
    assert!(server.local_addr().ip().is_loopback());
    let addr = server.local_addr();
    let answer = exchange(addr, &get_request("/"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    server.stop();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the listener is still open after stop"
    );
}

#[test]
fn an_address_in_use_is_an_error_naming_it() {
    let first = start(Limits::default());
    let error = HttpServer::start(first.local_addr(), router(), Limits::default())
        .err()
        .unwrap_or_else(|| panic!("bound the same port twice"));
    assert!(
        error.to_string().contains(&first.local_addr().to_string()),
        "{error}"
    );
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let server = start(Limits {
        max_body: 1000,
        ..Limits::default()
    });
    let small = exchange(
        server.local_addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789",
    );
    assert!(small.ends_with("10"), "{small}");
    let mut big =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n"
            .to_vec();
    big.extend(std::iter::repeat_n(b'a', 5000));
    let answer = exchange(server.local_addr(), &big);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[test]
fn a_client_too_slow_to_send_its_head_is_disconnected() {
    let server = start(Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut slow = TcpStream::connect(server.local_addr()).unwrap_or_else(|e| panic!("{e}"));
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    slow.write_all(b"GET / HTTP/1.1\r\nHost:")
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "a slow client held its connection for {waited:?}"
    );
    // Others are served meanwhile and after.
    let answer = exchange(server.local_addr(), &get_request("/"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_route_that_does_not_answer_in_time_gets_503() {
    let server = start(Limits {
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    });
    let answer = exchange(server.local_addr(), &get_request("/slow"));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("/slow"), "{answer}");
}

#[test]
fn connections_over_the_limit_wait_for_a_free_slot() {
    let server = start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    // Two idle keep-alive connections hold both slots.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(server.local_addr()).unwrap_or_else(|e| panic!("{e}"));
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap_or_else(|e| panic!("{e}"));
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s
        })
        .collect();
    let mut third = TcpStream::connect(server.local_addr()).unwrap_or_else(|e| panic!("{e}"));
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap_or_else(|e| panic!("{e}"));
    third
        .write_all(&get_request("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 256];
    assert!(
        third.read(&mut buf).is_err(),
        "a third connection was served while two held every slot"
    );
    drop(held);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
