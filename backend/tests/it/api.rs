//! The notifications API, `POST /api/rooms/{room}/notifications`: an authorized request
//! reaches every member of the room as an `info` notification over their WebSockets;
//! every refusal has its status code and a JSON body; no token means no API.
//!
//! Requests are written by hand over a TCP stream (HTTP/1.1, `Connection: close`), so the
//! tests see exactly the status line, headers and body the server sent.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{free_port, TestServer, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "deploy-T0ken.with_symbols~+/=-0123456789";

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The header block, lowercased.
    pub(crate) head: String,
    pub(crate) body: Value,
}

/// Sends one request and reads the whole response.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Reply {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = s.split();
        let mut buf = Vec::new();
        // Write and read at once: the server may answer (413) before reading the body,
        // and then stop reading, so a write error is expected in that case.
        let write = async {
            let _ = wr.write_all(req.as_bytes()).await;
            let _ = wr.write_all(body).await;
        };
        let read = async {
            // A reset after the response (unread body) ends the read; keep what arrived.
            let _ = rd.read_to_end(&mut buf).await;
        };
        tokio::join!(write, read);
        buf
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP request timed out");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let body = if body.is_empty() {
        Value::Null
    } else {
        // Not JSON (the web app's own 405): kept as text for the assertions to show.
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    Reply {
        status,
        head: head.to_lowercase(),
        body,
    }
}

/// `POST /api/rooms/{room}/notifications` with a JSON body and these extra headers.
async fn post(addr: SocketAddr, room: &str, headers: &[&str], body: &str) -> Reply {
    let path = format!("/api/rooms/{room}/notifications");
    let mut all = vec!["Content-Type: application/json"];
    all.extend_from_slice(headers);
    request(addr, "POST", &path, &all, body.as_bytes()).await
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

/// Asserts a refusal: status, JSON content type, and `{"error": code, "message": …}`.
#[track_caller]
fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert!(
        reply.head.contains("content-type: application/json"),
        "{reply:?}"
    );
    assert_eq!(reply.body["error"], code, "{reply:?}");
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{reply:?}"
    );
}

async fn server_with_token() -> TestServer {
    TestServer::with(|c| c.api_token = Some(TOKEN.parse().unwrap())).await
}

#[tokio::test]
async fn a_post_reaches_every_member_of_the_room_as_an_info_notification() {
    let server = server_with_token().await;
    let mut alice = server.member("alice", "deploys").await;
    let mut bob = server.member("bob", "deploys").await;
    let mut carol = server.member("carol", "lobby").await;
    // Alice first hears that bob joined.
    assert_eq!(alice.expect("notification").await["kind"], "joined");
    alice.expect("presence").await;

    let reply = post(
        server.addr,
        "deploys",
        &[&bearer()],
        r#"{"text": "  v1.2.3 is live <b>now</b>  ", "extra": true}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert!(
        reply.head.contains("content-type: application/json"),
        "{reply:?}"
    );
    assert_eq!(reply.body, json!({"room": "deploys", "delivered_to": 2}));

    for member in [&mut alice, &mut bob] {
        let note = member.expect("notification").await;
        assert_eq!(note["room"], "deploys", "{note}");
        assert_eq!(note["kind"], "info", "{note}");
        // Trimmed like chat text, and otherwise passed on as it is: text is data.
        assert_eq!(note["text"], "v1.2.3 is live <b>now</b>", "{note}");
        assert!(
            note.get("nick").is_none(),
            "an info notice has no nick: {note}"
        );
        assert!(note["ts"].as_u64().is_some_and(|ts| ts > 0), "{note}");
    }
    // Other rooms hear nothing.
    carol.expect_nothing_queued().await;
}

#[tokio::test]
async fn posting_to_a_room_with_no_members_is_accepted() {
    let server = server_with_token().await;
    let reply = post(
        server.addr,
        "empty-now",
        &[&bearer()],
        r#"{"text": "hello?"}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body, json!({"room": "empty-now", "delivered_to": 0}));
}

#[tokio::test]
async fn every_refusal_has_its_status_and_a_json_body() {
    let server = server_with_token().await;
    let mut watcher = server.member("watcher", "lobby").await;
    let addr = server.addr;
    let ok_body = r#"{"text": "hi"}"#;
    let auth = bearer();

    // 401: no usable bearer token; the answer names the scheme.
    for headers in [
        vec![],
        vec!["Authorization: Basic YWxpY2U6c2VjcmV0"],
        vec!["Authorization: Bearer"],
        vec!["Authorization: Bearer "],
        vec!["Authorization: bearer"],
    ] {
        let reply = post(addr, "lobby", &headers, ok_body).await;
        assert_refused(&reply, 401, "unauthorized");
        assert!(reply.head.contains("www-authenticate: bearer"), "{reply:?}");
    }

    // 403: a token, but not the right one (nor a prefix, nor an extension of it).
    let near_misses = [
        "Authorization: Bearer wrong".to_owned(),
        format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Bearer {TOKEN}x"),
        format!("Authorization: Bearer {}", TOKEN.to_uppercase()),
    ];
    for header in &near_misses {
        let reply = post(addr, "lobby", &[header], ok_body).await;
        assert_refused(&reply, 403, "forbidden");
    }
    // Authentication is checked first: a bad request without the token says only that.
    let reply = post(addr, "Not-A-Room", &["Authorization: Bearer wrong"], "{").await;
    assert_refused(&reply, 403, "forbidden");
    let reply = post(addr, "lobby", &[], "{").await;
    assert_refused(&reply, 401, "unauthorized");

    // The scheme is case-insensitive.
    let reply = post(
        addr,
        "lobby",
        &[&format!("Authorization: bEaReR {TOKEN}")],
        ok_body,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(watcher.expect("notification").await["text"], "hi");

    // 413: the body limit (64 KiB).
    let huge = format!(r#"{{"text": "{}"}}"#, "x".repeat(70 * 1024));
    let reply = post(addr, "lobby", &[&auth], &huge).await;
    assert_refused(&reply, 413, "payload_too_large");

    // 415: not declared as JSON.
    let reply = request(
        addr,
        "POST",
        "/api/rooms/lobby/notifications",
        &[&auth, "Content-Type: text/plain"],
        ok_body.as_bytes(),
    )
    .await;
    assert_refused(&reply, 415, "unsupported_media_type");

    // 422: not a JSON object, no string text, text breaking the text rule, bad room.
    for (room, body, code) in [
        ("lobby", "not json", "invalid_json"),
        ("lobby", r#"{"text": "unterminated"#, "invalid_json"),
        ("lobby", r#"["hi"]"#, "invalid_json"),
        ("lobby", r#""hi""#, "invalid_json"),
        ("lobby", "{}", "invalid_text"),
        ("lobby", r#"{"text": 5}"#, "invalid_text"),
        ("lobby", r#"{"text": null}"#, "invalid_text"),
        ("lobby", r#"{"text": " \n\t "}"#, "invalid_text"),
        ("Lobby", ok_body, "invalid_room"),
        ("lob%20by", ok_body, "invalid_room"),
        ("%FF", ok_body, "invalid_room"),
    ] {
        let reply = post(addr, room, &[&auth], body).await;
        assert_refused(&reply, 422, code);
    }
    let long_text = json!({ "text": "x".repeat(4001) }).to_string();
    assert_refused(
        &post(addr, "lobby", &[&auth], &long_text).await,
        422,
        "invalid_text",
    );
    let long_room = "r".repeat(65);
    assert_refused(
        &post(addr, &long_room, &[&auth], ok_body).await,
        422,
        "invalid_room",
    );

    // None of those reached the room.
    watcher.expect_nothing_queued().await;

    // The longest valid text fits the body limit even with every character escaped.
    let escaped = format!(r#"{{"text": "{}"}}"#, r"\ud83d\ude00".repeat(4000));
    assert!(escaped.len() > 45_000);
    let reply = post(addr, "lobby", &[&auth], &escaped).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let note = watcher.expect("notification").await;
    assert_eq!(note["text"].as_str().unwrap().chars().count(), 4000);

    // Other methods on the route are not allowed.
    let reply = request(addr, "GET", "/api/rooms/lobby/notifications", &[&auth], b"").await;
    assert_eq!(reply.status, 405, "{reply:?}");
}

#[tokio::test]
async fn without_a_token_the_api_is_disabled() {
    let server = TestServer::start().await;
    let mut watcher = server.member("watcher", "lobby").await;
    for headers in [vec![], vec!["Authorization: Bearer anything"]] {
        let reply = post(server.addr, "lobby", &headers, r#"{"text": "hi"}"#).await;
        assert_refused(&reply, 404, "api_disabled");
        let message = reply.body["message"].as_str().unwrap();
        assert!(
            message.contains("HUDDLE_API_TOKEN"),
            "names the fix: {message}"
        );
    }
    watcher.expect_nothing_queued().await;
}

/// The real binary, with the token from `HUDDLE_API_TOKEN`, and a token it refuses.
#[tokio::test]
async fn the_binary_reads_the_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .args(["--addr", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("HUDDLE_API_TOKEN", "has a space")
        .output();
    let refused = tokio::time::timeout(WAIT, refused).await.unwrap().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("API token"), "{stderr}");
    assert!(
        !stderr.contains("has a space"),
        "the token is not echoed: {stderr}"
    );

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--db")
        .arg(&db)
        .env("HUDDLE_API_TOKEN", TOKEN)
        .env("HUDDLE_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "huddle did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = post(addr, "ops", &[&bearer()], r#"{"text": "from env"}"#).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let reply = post(
        addr,
        "ops",
        &["Authorization: Bearer nope"],
        r#"{"text": "x"}"#,
    )
    .await;
    assert_refused(&reply, 403, "forbidden");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn other_api_paths_and_methods_get_json_errors_and_pages_only_get() {
    let server = server_with_token().await;
    let addr = server.addr;
    for path in [
        "/api",
        "/api/anything",
        "/api/rooms/lobby",
        "/api/v2/notifications",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let reply = request(addr, method, path, &[&bearer()], b"").await;
            assert_refused(&reply, 404, "not_found");
        }
    }
    let path = "/api/rooms/lobby/notifications";
    let reply = request(addr, "GET", path, &[&bearer()], b"").await;
    assert_refused(&reply, 405, "method_not_allowed");
    assert!(reply.head.contains("allow: post"), "{reply:?}");
    // Every page of the app tells the browser not to sniff, not to leak the page's
    // address, and not to let another site frame it.
    for path in ["/", "/r/lobby"] {
        let reply = request(addr, "GET", path, &[], b"").await;
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        for header in [
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
            "content-security-policy: frame-ancestors 'none'",
            // No script but the app's own files, its loader and its WebAssembly.
            "script-src 'self' 'wasm-unsafe-eval'",
        ] {
            assert!(
                reply.head.contains(header),
                "GET {path} lacks {header}: {reply:?}"
            );
        }
    }
    // The web app answers GET for any page, but another method there is a mistake.
    for path in ["/", "/r/lobby", "/index.html"] {
        let reply = request(addr, "POST", path, &[], b"x").await;
        assert_eq!(reply.status, 405, "POST {path}: {reply:?}");
        assert!(reply.head.contains("allow: get, head"), "{reply:?}");
    }
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address() {
    let server = server_with_token().await;
    let wrong = format!("Authorization: Bearer {TOKEN}-guess");
    for _ in 0..20 {
        let reply = post(server.addr, "lobby", &[&wrong], r#"{"text": "hi"}"#).await;
        assert_refused(&reply, 403, "forbidden");
    }
    let reply = post(server.addr, "lobby", &[], r#"{"text": "hi"}"#).await;
    assert_refused(&reply, 429, "too_many_attempts");
    // Locked out, the right token is not even looked at: a guess cannot be confirmed.
    let reply = post(server.addr, "lobby", &[&bearer()], r#"{"text": "hi"}"#).await;
    assert_refused(&reply, 429, "too_many_attempts");
}
