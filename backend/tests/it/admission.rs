//! Who may open a WebSocket and for how long without saying hello: the Host check (421
//! for a host this server does not answer for), the Origin check (403 before the
//! upgrade), connections per address (1008), the hello timeout (1008),
//! and the per-address `hello`/`join` rate (`rate_limited`).

use std::time::{Duration, Instant};

use crate::support::{get_as, Client, TestServer, WAIT};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Opens a WebSocket with extra request headers; `Err(status)` if the handshake got an
/// HTTP answer other than 101.
async fn connect_with(server: &TestServer, headers: &[(&str, &str)]) -> Result<Client, u16> {
    let mut request = server.ws_url().into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(WAIT, connecting)
        .await
        .expect("handshake timed out")
    {
        Ok((ws, response)) => {
            assert_eq!(response.status(), 101);
            Ok(Client::from_stream(ws))
        }
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let status = response.status().as_u16();
            if status == 403 {
                assert_eq!(String::from_utf8_lossy(&body), "origin not allowed\n");
            }
            Err(status)
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn connect_from(server: &TestServer, origin: &str) -> Result<Client, u16> {
    connect_with(server, &[("Origin", origin)]).await
}

/// Reads until the server's close frame; returns its code and reason.
async fn close_frame(client: &mut Client) -> (u16, String) {
    loop {
        let next = tokio::time::timeout(WAIT, client.ws().next())
            .await
            .expect("timed out waiting for close");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.as_str().to_owned())
            }
            Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed before a close frame: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

#[tokio::test]
async fn a_handshake_from_a_foreign_origin_gets_403_before_the_upgrade() {
    let server = TestServer::start().await;
    assert_eq!(
        connect_from(&server, "https://evil.example").await.err(),
        Some(403)
    );
    // A look-alike of the server's own host is another origin.
    let port = server.addr.port();
    let lookalike = format!("http://127.0.0.1.evil.example:{port}");
    assert_eq!(connect_from(&server, &lookalike).await.err(), Some(403));

    // The server's own page (Origin = Host), a local dev server, and programs that send
    // no Origin at all are let in and can chat.
    let own = format!("http://127.0.0.1:{port}");
    for (i, origin) in [
        own.as_str(),
        "http://localhost:8080",
        "http://127.0.0.1:5173",
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = connect_from(&server, origin)
            .await
            .unwrap_or_else(|s| panic!("{origin} refused with {s}"));
        let nick = format!("alice{i}");
        assert_eq!(c.hello(&nick).await["type"], "welcome", "{origin}");
    }
    let mut plain = connect_with(&server, &[]).await.expect("no Origin");
    assert_eq!(plain.hello("bob").await["type"], "welcome");
}

#[tokio::test]
async fn allowed_origins_replace_the_development_defaults() {
    let server = TestServer::with(|c| {
        c.allowed_origins = vec![
            "https://app.example.com".parse().unwrap(),
            "http://10.1.2.3:*".parse().unwrap(),
        ];
    })
    .await;
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    for allowed in [
        "https://app.example.com",
        "http://10.1.2.3:8000",
        own.as_str(),
    ] {
        assert!(connect_from(&server, allowed).await.is_ok(), "{allowed}");
    }
    for refused in [
        "http://localhost:8080",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
    ] {
        assert_eq!(
            connect_from(&server, refused).await.err(),
            Some(403),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed_with_1008() {
    let server = TestServer::with(|c| c.max_connections_per_ip = 2).await;
    let mut a = server.login("a").await;
    let _b = server.login("b").await;
    let mut c = server.client().await;
    assert_eq!(
        close_frame(&mut c).await,
        (1008, "too many connections from this address".to_owned())
    );
    // Closing one frees its place.
    a.ws().close(None).await.unwrap();
    a.expect_close().await;
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = server.client().await;
        d.send(json!({"type": "hello", "nick": "d"})).await;
        match tokio::time::timeout(WAIT, d.ws().next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.as_str().contains("welcome") => {
                admitted = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(admitted, "a freed place was never reusable");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_counted_apart() {
    let server = TestServer::with(|c| c.max_connections_per_ip = 1).await;
    // 127.0.0.1 is a trusted proxy by default: X-Forwarded-For names the client.
    let xff = |ip: &'static str| [("X-Forwarded-For", ip)];
    let mut one = connect_with(&server, &xff("198.51.100.1")).await.unwrap();
    let mut two = connect_with(&server, &xff("198.51.100.2")).await.unwrap();
    assert_eq!(one.hello("one").await["type"], "welcome");
    assert_eq!(two.hello("two").await["type"], "welcome");
    // A forged entry on the left does not help: the proxy's (rightmost) entry counts.
    let forged = [("X-Forwarded-For", "203.0.113.50, 198.51.100.1")];
    let mut again = connect_with(&server, &forged).await.unwrap();
    assert_eq!(close_frame(&mut again).await.0, 1008);

    // Without trusted proxies the header is ignored: everyone is 127.0.0.1.
    let direct = TestServer::with(|c| {
        c.max_connections_per_ip = 1;
        c.trusted_proxies = Vec::new();
    })
    .await;
    let mut first = connect_with(&direct, &xff("198.51.100.1")).await.unwrap();
    assert_eq!(first.hello("first").await["type"], "welcome");
    let mut second = connect_with(&direct, &xff("198.51.100.2")).await.unwrap();
    assert_eq!(close_frame(&mut second).await.0, 1008);
}

#[tokio::test]
async fn a_socket_without_hello_is_closed_after_the_hello_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let server = TestServer::with(|c| c.hello_timeout = TIMEOUT).await;
    let mut greeted = server.login("alice").await;

    let started = Instant::now();
    let mut silent = server.client().await;
    assert_eq!(
        close_frame(&mut silent).await,
        (1008, "hello timeout".to_owned())
    );
    assert!(
        started.elapsed() >= TIMEOUT,
        "closed after {:?}",
        started.elapsed()
    );

    // Frames that are not a successful hello do not count.
    let mut wrong = server.client().await;
    wrong.send(json!({"type": "hello", "nick": ""})).await;
    wrong.expect_error("invalid_nick").await;
    wrong.send(json!({"type": "join", "room": "lobby"})).await;
    wrong.expect_error("hello_required").await;
    assert_eq!(close_frame(&mut wrong).await.0, 1008);

    // A connection that said hello in time stays.
    greeted.expect_silence(TIMEOUT * 2).await;
    assert_eq!(greeted.join("lobby").await["type"], "joined");
}

#[tokio::test]
async fn hello_and_join_beyond_the_per_address_rate_are_refused_and_not_executed() {
    // A burst of 3 and about one token a minute: no refill while the test runs.
    let server = TestServer::with(|c| {
        c.ip_join_rate = 1;
        c.ip_join_burst = 3;
    })
    .await;
    let mut a = server.member("alice", "one").await; // hello + join: 2 tokens
    assert_eq!(a.join("two").await["type"], "joined"); // 3
    a.send(json!({"type": "join", "room": "three"})).await;
    let e = a.expect_error("rate_limited").await;
    assert_eq!(e["ref"], "join");
    // The refused join was not executed: alice is not in "three".
    a.say("three", "hi").await;
    a.expect_error("not_joined").await;

    // Another connection from the same address shares the empty bucket.
    let mut b = server.client().await;
    b.send(json!({"type": "hello", "nick": "bob"})).await;
    let e = b.expect_error("rate_limited").await;
    assert_eq!(e["ref"], "hello");
    // Still open, and still without a nick.
    b.send(json!({"type": "list_rooms"})).await;
    b.expect_error("hello_required").await;

    // Other frames are not limited by it.
    assert_eq!(a.say_acked("one", "still here").await, 1);
}

#[tokio::test]
async fn a_dns_rebinding_page_is_misdirected() {
    // A page on evil.example whose name now points at 127.0.0.1: its Origin equals the
    // Host it sends, which the Origin check alone accepts.
    let server = TestServer::start().await;
    let port = server.addr.port();
    let host = format!("evil.example:{port}");
    let origin = format!("http://{host}");
    let refused = connect_with(&server, &[("Host", &host), ("Origin", &origin)]).await;
    assert_eq!(refused.err(), Some(421));
    let (status, _) = get_as(server.addr, "/metrics", &host).await;
    assert_eq!(status, 421);
    let (status, _) = get_as(server.addr, "/api/rooms/lobby/notifications", &host).await;
    assert_eq!(status, 421);
    // Probes and the page itself do not depend on the name.
    assert_eq!(get_as(server.addr, "/healthz", &host).await.0, 200);
    // Loopback names are this server's own.
    let local = format!("localhost:{port}");
    let origin = format!("http://{local}");
    let mut ok = connect_with(&server, &[("Host", &local), ("Origin", &origin)])
        .await
        .unwrap();
    assert_eq!(ok.hello("alice").await["type"], "welcome");
}

#[tokio::test]
async fn a_proxy_on_this_machine_chooses_the_host() {
    // nginx on the same machine forwards `Host: chat.example.com` with X-Forwarded-For;
    // without --public-host that is served, since the proxy picked the name.
    let server = TestServer::start().await;
    let via_proxy = [
        ("Host", "chat.example.com"),
        ("Origin", "https://chat.example.com"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    let mut ok = connect_with(&server, &via_proxy).await.unwrap();
    assert_eq!(ok.hello("alice").await["type"], "welcome");
    // The same request without the proxy's header is a rebinding page's.
    let direct = [
        ("Host", "chat.example.com"),
        ("Origin", "https://chat.example.com"),
    ];
    assert_eq!(connect_with(&server, &direct).await.err(), Some(421));
}

#[tokio::test]
async fn public_hosts_replace_the_loopback_names() {
    let server = TestServer::with(|c| {
        c.public_host = vec!["chat.example.com".parse().unwrap()];
    })
    .await;
    let ours = [
        ("Host", "chat.example.com"),
        ("Origin", "https://chat.example.com"),
    ];
    let mut ok = connect_with(&server, &ours).await.unwrap();
    assert_eq!(ok.hello("alice").await["type"], "welcome");
    let local = format!("127.0.0.1:{}", server.addr.port());
    assert_eq!(
        connect_with(&server, &[("Host", &local)]).await.err(),
        Some(421)
    );
}
