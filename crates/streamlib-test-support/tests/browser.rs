//! The browser harness against real Chromium: a page served over real HTTP (a std TcpListener
//! thread, since test-support stays a leaf crate), scripts, waits and screenshot pixels.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use streamlib_test_support::browser::{self, Browser};

const PAGE: &str = r#"<!doctype html>
<html><head><style>
  html, body { margin: 0; background: #fff; }
  #red { position: absolute; left: 0; top: 0; width: 200px; height: 200px; background: rgb(255,0,0); }
  #blue { position: absolute; left: 300px; top: 100px; width: 200px; height: 200px; background: rgb(0,0,255); }
</style></head>
<body><div id="red"></div><div id="blue"></div>
<script>
  window.ready = false;
  setTimeout(() => { document.title = "late"; window.ready = 42; }, 500);
</script></body></html>"#;

/// Serves `PAGE` to every request on a loopback port until the test ends; returns its URL.
fn serve_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                PAGE.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(PAGE.as_bytes());
        }
    });
    format!("http://{addr}/")
}

#[test]
fn page_scripts_waits_and_screenshot_pixels() {
    if browser::skip("page_scripts_waits_and_screenshot_pixels") {
        return;
    }
    let url = serve_page();
    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto(&url).unwrap_or_else(|e| panic!("{e}"));

    let sum = b.eval("return 1 + 2;").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sum, 3);
    let async_value = b
        .eval_async(
            "const done = arguments[arguments.length - 1]; setTimeout(() => done('later'), 50);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(async_value, "later");

    let ready = b
        .wait_for("window.ready", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready, 42);
    assert_eq!(
        b.eval("return document.title;")
            .unwrap_or_else(|e| panic!("{e}")),
        "late"
    );

    let shot = b.screenshot().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        shot.width >= 600 && shot.height >= 400,
        "{}x{}",
        shot.width,
        shot.height
    );
    let close =
        |p: [u8; 4], want: [u8; 3]| p[..3].iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 8);
    let red = shot.pixel(100, 100);
    let blue = shot.pixel(400, 200);
    let white = shot.pixel(250, 50);
    assert!(close(red, [255, 0, 0]), "red div reads {red:?}");
    assert!(close(blue, [0, 0, 255]), "blue div reads {blue:?}");
    assert!(close(white, [255, 255, 255]), "background reads {white:?}");
}

#[test]
fn errors_carry_the_webdriver_message() {
    if browser::skip("errors_carry_the_webdriver_message") {
        return;
    }
    let b = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    b.goto("data:text/html,<p>x</p>")
        .unwrap_or_else(|e| panic!("{e}"));
    let err = b
        .eval("throw new Error('boom from the page');")
        .err()
        .unwrap_or_else(|| panic!("a throwing script succeeded"));
    assert!(
        err.contains("javascript error") && err.contains("boom from the page"),
        "{err}"
    );

    let err = b
        .wait_for("window.neverSet", Duration::from_millis(500))
        .err()
        .unwrap_or_else(|| panic!("wait_for of an unset value succeeded"));
    assert!(
        err.contains("window.neverSet") && err.contains("not true"),
        "{err}"
    );
}
