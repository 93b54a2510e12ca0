//! The bundle as served: precompressed, with validators and caching headers.

use super::*;

/// Sends a raw HTTP/1.1 GET and returns the response head (status line and headers).
async fn http_head(addr: std::net::SocketAddr, path: &str, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn the_bundle_is_served_precompressed_with_validators() {
    require();
    let wasm = std::fs::read_dir(workspace().join("dist"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.ends_with(".wasm"))
        .expect("no .wasm in dist/");
    let server = TestServer::start().await;
    let path = format!("/{wasm}");
    let br = http_head(server.addr, &path, "Accept-Encoding: gzip, deflate, br\r\n").await;
    assert!(br.contains("content-encoding: br"), "{br}");
    assert!(br.contains("content-type: application/wasm"), "{br}");
    assert!(
        br.contains("cache-control: public, max-age=31536000, immutable"),
        "{br}"
    );
    let gz = http_head(server.addr, &path, "Accept-Encoding: gzip\r\n").await;
    assert!(gz.contains("content-encoding: gzip"), "{gz}");
    let plain = http_head(server.addr, &path, "").await;
    assert!(
        plain.starts_with("http/1.1 200") && !plain.contains("content-encoding"),
        "{plain}"
    );
    let etag = plain
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("no etag")
        .to_owned();
    let again = http_head(server.addr, &path, &format!("If-None-Match: {etag}\r\n")).await;
    assert!(again.starts_with("http/1.1 304"), "{again}");
    let index = http_head(server.addr, "/r/lobby", "").await;
    assert!(
        index.contains("text/html") && index.contains("cache-control: no-cache"),
        "{index}"
    );
}
