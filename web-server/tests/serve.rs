//! chat-web over real TCP: what it answers to well-formed, hostile and odd requests.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves the repository's `web/` folder; returns the address and a stop handle.
async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let site = chat_web::Site::new(&root, "ws://127.0.0.1:4567").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chat_web::serve(listener, site, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// Sends `request` as is and returns the whole answer.
async fn raw(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    // A reset after the answer (the server closing with the rest of a huge request
    // unread) still leaves the answer read so far in `answer`.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    raw(
        address,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn serves_the_page_with_its_types_and_policy() {
    let (address, _stop) = start().await;
    let page = get(address, "/").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains(
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; \
         img-src 'self'; connect-src 'self' ws://127.0.0.1:4567;"
    ));
    assert!(page.contains("X-Content-Type-Options: nosniff\r\n"));
    assert!(page.contains("name=\"message\""));
    let script = get(address, "/app.js?v=1").await;
    assert!(script.contains("Content-Type: text/javascript; charset=utf-8\r\n"));
    let bundle = get(address, "/vendor/nats.js").await;
    assert!(bundle.starts_with("HTTP/1.1 200 OK\r\n"));
    let style = get(address, "/style.css").await;
    assert!(style.contains("Content-Type: text/css; charset=utf-8\r\n"));
    let config = get(address, "/config.json").await;
    assert!(
        config.ends_with("{\"nats\":\"ws://127.0.0.1:4567\"}"),
        "{config}"
    );
    let head = raw(address, b"HEAD /style.css HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
}

#[tokio::test]
async fn refuses_what_is_not_the_page() {
    let (address, _stop) = start().await;
    for path in [
        "/../Cargo.toml",
        "/vendor/../../README.md",
        "/%2e%2e/README.md",
        "/package.json",
        "/package-lock.json",
        "/tests/browser.mjs",
        "/node_modules/puppeteer-core/package.json",
        "/.gitignore",
        "/missing.js",
    ] {
        let answer = get(address, path).await;
        assert!(
            answer.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{path}: {answer}"
        );
    }
    let post = raw(address, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let nonsense = raw(address, b"hello\r\n\r\n").await;
    assert!(nonsense.starts_with("HTTP/1.1 400 "), "{nonsense}");
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9_000));
    huge.extend(b"\r\n\r\n");
    let too_large = raw(address, &huge).await;
    assert!(too_large.starts_with("HTTP/1.1 431 "), "{too_large}");
}

#[test]
fn refuses_a_nats_url_that_could_break_the_policy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    for url in [
        "http://127.0.0.1:8080",
        "ws://x; script-src *",
        "ws://",
        "ws://a\r\nX: y",
    ] {
        let error = chat_web::Site::new(&root, url).unwrap_err();
        assert!(
            error.to_string().contains("ws://HOST[:PORT]"),
            "{url}: {error}"
        );
    }
    assert!(chat_web::Site::new(&root.join("nope"), "ws://127.0.0.1:1").is_err());
}
