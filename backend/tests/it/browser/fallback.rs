//! The SSE fallback (issue 16) through a real nginx that breaks WebSockets, in the two
//! ways proxies do: refusing the upgrade (403), and letting the socket open but never
//! forwarding a frame. The page must notice by itself, chat over SSE, say so in its
//! badge, and lose and repeat nothing across server restarts.

use std::net::SocketAddr;

use super::*;
use crate::support::nginx::{Nginx, TEMPLATE};

/// `deploy/nginx-cluster.conf`'s `location / { … }` block, as written.
fn location_block() -> &'static str {
    let start = TEMPLATE
        .find("        location / {\n")
        .expect("the deployed config has a `location /`");
    let end = TEMPLATE[start..]
        .find("\n        }\n")
        .expect("its block ends")
        + start
        + "\n        }\n".len();
    &TEMPLATE[start..end]
}

/// The deployed configuration, with responses never buffered (what SSE needs of a
/// proxy; the server also asks with `X-Accel-Buffering: no`).
fn unbuffered() -> String {
    let conf = TEMPLATE.replacen("http {\n", "http {\n    proxy_buffering off;\n", 1);
    assert_ne!(conf, TEMPLATE, "the deployed config has an `http` block");
    conf
}

/// The deployed configuration, except that every WebSocket upgrade is refused with
/// 403, as some corporate proxies do.
fn refusing_websockets() -> String {
    let block = location_block();
    let refusing = block.replacen(
        "location / {\n",
        "location / {\n            # This proxy does not do WebSockets.\n            \
         if ($http_upgrade) { return 403; }\n",
        1,
    );
    unbuffered().replacen(block, &refusing, 1)
}

/// The deployed configuration, except that `/ws` goes to `hole`, which completes the
/// handshake and then forwards nothing, with the same proxy settings otherwise.
fn muting_websockets(hole: SocketAddr) -> String {
    let block = location_block();
    let ws = block
        .replacen("location / {", "location /ws {", 1)
        .replacen("proxy_pass http://huddle;", "proxy_pass http://hole;", 1);
    assert_ne!(ws, block);
    unbuffered()
        .replacen(block, &format!("{ws}\n{block}"), 1)
        .replacen(
            "    upstream huddle {",
            &format!(
                "    upstream hole {{\n        server {hole};\n    }}\n\n    upstream huddle {{"
            ),
            1,
        )
}

/// A WebSocket server that accepts every handshake and then neither reads nor writes.
async fn black_hole() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _held = tokio_tungstenite::accept_async(tcp).await;
                std::future::pending::<()>().await;
            });
        }
    });
    addr
}

/// A TCP proxy in front of `upstream` that answers every WebSocket upgrade (`GET /ws`)
/// with 403 while `refuse` is set, and passes everything else through.
async fn gatekeeper(upstream: SocketAddr, refuse: Arc<AtomicBool>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let refuse = refuse.clone();
            tokio::spawn(async move {
                let mut first = vec![0u8; 8192];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                if first[..n].starts_with(b"GET /ws") && refuse.load(Ordering::SeqCst) {
                    let _ = client
                        .write_all(
                            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\
                              Connection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&first[..n]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    addr
}

/// The transport the status badge names (`data-transport`).
async fn transport(b: &Browser) -> Option<String> {
    js(
        b,
        "const s = document.querySelector('.status'); return s && s.dataset.transport",
        vec![],
    )
    .await
}

/// Has `b` say `texts`, one every ~100 ms, in a task of its own.
fn talk(b: &Browser, texts: &[String]) -> tokio::task::JoinHandle<()> {
    let (b, texts) = (b.clone(), texts.to_vec());
    tokio::spawn(async move {
        for text in &texts {
            say(&b, text).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Waits until `b` holds at least `count` messages typed while the server is away.
async fn wait_pending(b: &Browser, count: usize) {
    wait_for(
        b,
        &format!("{count} messages waiting for the server"),
        WAIT,
        "return document.querySelectorAll('li.msg.pending').length >= arguments[0]",
        vec![json!(count)],
    )
    .await;
}

fn texts(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i}")).collect()
}

/// Restarts the server on its database and address.
async fn restart(db: &std::path::Path, addr: SocketAddr) -> Huddle {
    Huddle::start(db, addr, &[]).await
}

/// What the server stored in `room`, in order, read directly (not through nginx).
async fn stored(server: &Huddle, room: &str) -> Vec<String> {
    let mut probe = Client::connect(&server.ws_url()).await;
    assert_eq!(probe.hello("probe").await["type"], "welcome");
    probe
        .whole_history(room)
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect()
}

#[ignore = "needs Chromium, chromedriver, the web bundle and nginx; `cargo xtask test` runs it"]
#[tokio::test]
async fn behind_a_proxy_refusing_websockets_the_chat_runs_over_sse_through_restarts() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let addr: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut server = Huddle::start(&db, addr, &[]).await;
    let nginx = Nginx::start_with(&refusing_websockets(), &[addr]).await;
    let base = format!("http://{}/", nginx.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        assert_eq!(
            transport(b).await.as_deref(),
            Some("sse"),
            "{who}'s transport"
        );
        let name: String = js(b, "return document.querySelector('.status').title", vec![]).await;
        assert_eq!(name, "Connected (fallback: SSE)");
    }
    screenshot(&alice, "fallback-sse.png").await;

    // Alice talks through a graceful restart: the streams end with a `close` event
    // (1001), and what she types meanwhile waits in her page.
    let hers = texts("a", 20);
    let sender = talk(&alice, &hers);
    wait_message(&bob, "a6").await;
    server.terminate().await;
    wait_css(&alice, ".status-reconnecting, .status-connecting").await;
    wait_pending(&alice, 3).await;
    let mut server = restart(&db, addr).await;
    sender.await.unwrap();
    wait_all_acked(&alice).await;
    wait_message(&bob, "a20").await;

    // Bob talks through a crash: the streams just break.
    let his = texts("b", 20);
    let sender = talk(&bob, &his);
    wait_message(&alice, "b6").await;
    server.kill9().await;
    wait_pending(&bob, 3).await;
    let server = restart(&db, addr).await;
    sender.await.unwrap();
    wait_all_acked(&bob).await;

    let expected: Vec<String> = hers.iter().chain(&his).cloned().collect();
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
        wait_css(b, ".status-connected[data-transport=sse]").await;
        assert!(welcomes(b).await >= 3, "{who} did not reconnect twice");
    }
    assert_eq!(stored(&server, "lobby").await, expected);
}

#[ignore = "needs Chromium, chromedriver, the web bundle and nginx; `cargo xtask test` runs it"]
#[tokio::test]
async fn when_websockets_open_but_carry_nothing_the_page_falls_back_to_sse_by_itself() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let addr: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let server = Huddle::start(&db, addr, &[]).await;
    let hole = black_hole().await;
    let nginx = Nginx::start_with(&muting_websockets(hole), &[addr]).await;
    let base = format!("http://{}/", nginx.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    // Two mute sockets of 4 s each, then the stream: well within the sign-in's wait.
    let start = Instant::now();
    sign_in(&alice, &base, "alice").await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(8),
        "connected after {took:?}: through the black hole?"
    );
    sign_in(&bob, &base, "bob").await;
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        assert_eq!(
            transport(b).await.as_deref(),
            Some("sse"),
            "{who}'s transport"
        );
        // The mute sockets never welcomed anyone.
        assert_eq!(welcomes(b).await, 1, "{who}'s welcomes");
    }

    say(&alice, "anyone there?").await;
    wait_message(&bob, "anyone there?").await;
    say(&bob, "over SSE, yes").await;
    wait_message(&alice, "over SSE, yes").await;
    let expected = ["anyone there?", "over SSE, yes"];
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_all_acked(b).await;
        assert_eq!(message_texts(b).await, expected, "what {who} sees");
    }
    assert_eq!(stored(&server, "lobby").await, expected);
    // The picture in the README (with `HUDDLE_SCREENSHOTS=1`): the badge says SSE.
    let (path, _, _) = screenshot_to(&bob, &screenshot_dir(true), "screenshot-fallback.png").await;
    assert!(path.exists());
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn once_websockets_work_again_the_page_moves_back_to_them_losing_nothing() {
    require();
    let server = TestServer::start().await;
    let refuse = Arc::new(AtomicBool::new(true));
    let proxy = gatekeeper(server.addr, refuse.clone()).await;
    let base = format!("http://{proxy}/");
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;
    assert_eq!(transport(&alice).await.as_deref(), Some("sse"));

    // The network heals while alice talks; her next probe (every 30 s after her
    // stream opened) finds the WebSocket working, and her page moves over
    // mid-conversation: she keeps talking until a few messages after it did.
    refuse.store(false, Ordering::SeqCst);
    let mut hers = Vec::new();
    let mut moved_at = None;
    for i in 1..=600 {
        let text = format!("m{i}");
        say(&alice, &text).await;
        hers.push(text);
        if moved_at.is_none() && transport(&alice).await.as_deref() == Some("ws") {
            moved_at = Some(i);
        }
        if moved_at.is_some_and(|at| i >= at + 5) {
            break;
        }
        // Slowly enough that all of them fit the page's window of rows.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        moved_at.is_some(),
        "the page never moved back to the WebSocket"
    );
    wait_css(&alice, ".status-connected[data-transport=ws]").await;
    wait_all_acked(&alice).await;
    say(&bob, "welcome back").await;
    let mut expected = hers.clone();
    expected.push("welcome back".to_owned());
    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
    }
    assert!(welcomes(&alice).await >= 2, "alice never reconnected");
    let mut probe = server.login("probe").await;
    let stored: Vec<String> = probe
        .whole_history("lobby")
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect();
    assert_eq!(stored, expected);
}
