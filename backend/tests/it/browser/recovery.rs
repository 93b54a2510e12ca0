//! Nothing lost, nothing twice: after a graceful restart, a `kill -9` mid-conversation, and a page frozen until the server closes it with 4008.

use super::*;

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn the_app_reconnects_after_a_server_restart_without_losing_messages() {
    require();
    let mut server = TestServer::start().await;
    let addr = server.addr;
    let db = server.db.clone();
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    say(&alice, "before restart").await;
    wait_message(&alice, "before restart").await;

    // A graceful stop: every socket is closed with 1001.
    server.stop().await.unwrap();
    wait_css(
        &alice,
        ".status-reconnecting, .status-offline, .status-connecting",
    )
    .await;
    // A message sent while offline is kept and delivered after the reconnect.
    say(&alice, "while offline").await;
    let mut restarted = None;
    for _ in 0..100 {
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            drop(listener);
            restarted = Some(TestServer::on_db(db.clone(), |c| c.addr = addr).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted = restarted.expect("port not free again");
    alice
        .wait()
        .at_most(Duration::from_secs(40))
        .for_element(Locator::Css(".status-connected"))
        .await
        .expect("app did not reconnect");
    say(&alice, "after restart").await;
    wait_message(&alice, "after restart").await;
    wait_all_acked(&alice).await;
    assert_eq!(
        message_texts(&alice).await,
        ["before restart", "while offline", "after restart"]
    );
    // The server stored each exactly once, in the order they were written.
    let mut probe = restarted.login("probe").await;
    let stored = probe.history_texts("lobby").await;
    assert_eq!(stored, ["before restart", "while offline", "after restart"]);
    alice.close().await.unwrap();
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_server_killed_with_sigkill_mid_conversation_loses_and_repeats_nothing() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("huddle.db");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut server = Huddle::start(&db, addr, &[]).await;
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(900, 700).await;
    let (bob, _p2) = driver.browser(900, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;

    // Alice keeps talking, one message every ~100 ms, through the crash.
    let (expected, sender) = keep_talking(&alice, 40);
    wait_message(&bob, "m8").await;
    server.kill9().await;
    // Messages typed while the server is down wait in alice's page.
    wait_for(
        &alice,
        "messages queued while the server is down",
        WAIT,
        "return document.querySelectorAll('li.msg.pending').length >= 3",
        vec![],
    )
    .await;
    let server = Huddle::start(&db, addr, &[]).await;
    sender.await.unwrap();
    wait_all_acked(&alice).await;

    for (who, b) in [("alice", &alice), ("bob", &bob)] {
        wait_for_all(b, who, &expected).await;
        assert!(welcomes(b).await >= 2, "{who} never reconnected");
    }
    let mut probe = Client::connect(&server.ws_url()).await;
    assert_eq!(probe.hello("probe").await["type"], "welcome");
    let texts: Vec<String> = probe
        .whole_history("lobby")
        .await
        .into_iter()
        .map(|(_, _, _, text)| text)
        .collect();
    assert_eq!(texts, expected);
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_slow_consumer_closed_with_4008_resumes_without_gaps_or_duplicates() {
    require();
    // A small outbox (and commit batches that fit in it), and no rate limit for the
    // flooder, which keeps no more in flight than a batch so that it is never the slow
    // one itself.
    let server = TestServer::with(|c| {
        c.outbox = 16;
        c.max_batch = 8;
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    alice.goto(&base).await.unwrap();
    wait_css(&alice, "#nick").await;
    record_close_codes(&alice).await;
    let field = alice.find(Locator::Css("#nick")).await.unwrap();
    field.send_keys(&format!("alice{ENTER}")).await.unwrap();
    wait_css(&alice, ".status-connected").await;
    assert_eq!(welcomes(&alice).await, 1);

    // Alice's page stops reading: its main thread is busy until the test opens the
    // gate, so the browser stops taking frames off the socket and the server's queue
    // for her fills.
    let gate = Gate::start().await;
    let freeze = {
        let (alice, url) = (alice.clone(), gate.url.clone());
        tokio::spawn(async move {
            alice
                .execute(
                    "const until = Date.now() + 25000; \
                     while (Date.now() < until) { \
                         const x = new XMLHttpRequest(); \
                         x.open('GET', arguments[0], false); \
                         x.send(); \
                         if (x.responseText === 'open') { return true; } \
                         const t = Date.now(); while (Date.now() - t < 20) {} \
                     } \
                     return false;",
                    vec![json!(url)],
                )
                .await
                .unwrap()
        })
    };
    // Each message is 4000 control characters, which JSON sends as 6 bytes each: about
    // 24 KB per frame, so a few hundred frames fill the socket buffers in between. The
    // flood stops as soon as the server has dropped alice (her "left" notification),
    // and her page wakes up then, while the server is still trying to say why.
    let opened = gate.open.clone();
    let acked = flood(
        &server.ws_url(),
        "flooder",
        "lobby",
        2000,
        8,
        |i| format!("flood {i} {}", "\u{1}".repeat(3980)),
        move |v| {
            let left = v["type"] == "notification" && v["kind"] == "left" && v["nick"] == "alice";
            if left {
                opened.store(true, Ordering::SeqCst);
            }
            left
        },
    )
    .await;
    gate.open.store(true, Ordering::SeqCst);
    assert_eq!(
        freeze.await.unwrap(),
        json!(true),
        "the page was frozen until the gate opened"
    );
    let head = acked as u64;
    eprintln!("4008 test: {acked} messages of ~24 KB flooded");

    // Alice was closed with 4008, came back by herself, and resumed.
    wait_for(
        &alice,
        "alice to reconnect (a second welcome)",
        Duration::from_secs(30),
        "const s = document.querySelector('.status-connected'); \
         return !!s && Number(s.dataset.welcomes) >= 2",
        vec![],
    )
    .await;
    // The page usually reads the server's 4008. The close frame queues behind the
    // megabytes already in the socket, though, and the server waits only a second for
    // it to go out; when the page drains more slowly than that (a busy machine), the
    // connection just ends and the page sees 1006. Both lead to the same resume.
    let closes: Vec<u16> = js(&alice, "return window.__closes", vec![]).await;
    assert!(
        matches!(closes.first(), Some(4008 | 1006)),
        "close codes seen by the page: {closes:?}"
    );
    eprintln!("4008 test: the page saw close codes {closes:?}");
    wait_for(
        &alice,
        &format!("the newest message (offset {head}) rendered"),
        Duration::from_secs(30),
        "return document.querySelector(`li.msg[data-offset=\"${arguments[0]}\"]`) !== null",
        vec![json!(head)],
    )
    .await;
    // Every message is there exactly once, ending at the head: walk up to the oldest.
    let seen = scroll_to_oldest(&alice, 350).await;
    assert_eq!(
        seen,
        (1..=head).collect::<BTreeSet<_>>(),
        "offsets alice can see"
    );
}
