//! Notifications that reach people (issue 13), in the browser: a mention raising the
//! bell in another person's page, an alert read in one tab clearing the bell in the
//! user's other tab, and the service worker showing a pushed alert and closing it when
//! it was read elsewhere.
//!
//! The first two need the server's inbox; the third only the worker and its serving.

use super::*;

/// The bell's unread count (its `data-unread`), `None` before the bell is shown.
async fn bell(b: &Browser) -> Option<u64> {
    js(
        b,
        "const el = document.querySelector('#bell'); \
         return el ? Number(el.dataset.unread) : null",
        vec![],
    )
    .await
}

async fn wait_bell(b: &Browser, want: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = bell(b).await;
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bell shows {now:?}, not {want}; the page shows:\n{}",
            page_text(b).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a Chrome DevTools Protocol command in `b`'s browser, through chromedriver's
/// `goog/cdp/execute` endpoint (a plain HTTP request: fantoccini has no call for it).
async fn cdp(driver: &Driver, b: &Browser, cmd: &str, params: Value) -> Value {
    cdp_try(driver, b, cmd, params)
        .await
        .unwrap_or_else(|e| panic!("CDP {cmd} failed: {e}"))
}

/// Like [`cdp`], with the failure as a value.
async fn cdp_try(driver: &Driver, b: &Browser, cmd: &str, params: Value) -> Result<Value, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let session = b.session_id().await.unwrap().expect("a WebDriver session");
    let addr = driver.url.trim_start_matches("http://");
    let body = json!({ "cmd": cmd, "params": params }).to_string();
    let request = format!(
        "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    // Read by `Content-Length`: chromedriver keeps the connection open.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body) = loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .map_err(|_| format!("no answer to {cmd}"))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed: {}",
                String::from_utf8_lossy(&reply)
            ));
        }
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        if body.len() >= length {
            break (head.to_owned(), body.to_owned());
        }
    };
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{head}\n{body}"));
    }
    let body = body.as_str();
    serde_json::from_str::<Value>(body).map_err(|e| format!("{e}: {body}"))
}

/// Delivers a Web Push `payload` to the app's service worker, as the push service
/// would. The registration's id is the browser's own and the page cannot see it; a
/// fresh profile numbers its registrations from 0, and the app registers one worker,
/// so the first few ids are tried (a wrong one is refused or reaches nothing; the
/// notification's tag keeps a repeat from showing twice).
async fn push(driver: &Driver, b: &Browser, origin: &str, payload: &Value) {
    let mut delivered = false;
    for id in 0..4 {
        let params = json!({
            "origin": origin,
            "registrationId": id.to_string(),
            "data": payload.to_string(),
        });
        delivered |= cdp_try(driver, b, "ServiceWorker.deliverPushMessage", params)
            .await
            .is_ok();
    }
    assert!(delivered, "no service worker registration took {payload}");
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_mention_rings_the_bell_in_another_persons_page_and_opens_its_message() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;
    // Alice looks at another room, so the lobby's mention waits for her.
    join_room(&alice, "dev").await;
    wait_bell(&alice, 0).await;

    say(&bob, "lunch, @alice?").await;
    wait_all_acked(&bob).await;
    wait_bell(&alice, 1).await;
    screenshot(&alice, "notifications-bell").await;

    // The bell lists it, unread; clicking it opens the lobby at the message.
    click(&alice, "#bell").await;
    wait_css(&alice, "#inbox .alert-item.not-read").await;
    click(&alice, "#inbox .alert-item.not-read .alert-open").await;
    wait_room_on_screen(&alice, "lobby").await;
    wait_css(&alice, "li.msg.highlight.mentions-me").await;
    wait_bell(&alice, 0).await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn reading_the_alerts_in_one_tab_clears_the_bell_in_the_other() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    join_room(&alice, "dev").await;
    // A second tab of alice's (the same profile, so the same saved session), on #dev.
    let first = alice.window().await.unwrap();
    let opened = alice.new_window(true).await.unwrap();
    alice.switch_to_window(opened.handle.clone()).await.unwrap();
    alice.goto(&format!("{base}#/r/dev")).await.unwrap();
    wait_css(&alice, ".status-connected").await;
    wait_room_on_screen(&alice, "dev").await;

    let mut bob = server.member("bob", "lobby").await;
    bob.say_acked("lobby", "@alice the deploy is yours").await;
    wait_bell(&alice, 1).await;
    alice.switch_to_window(first.clone()).await.unwrap();
    wait_bell(&alice, 1).await;

    // "Mark all read" in the second tab (the lobby itself stays unread).
    alice.switch_to_window(opened.handle).await.unwrap();
    click(&alice, "#bell").await;
    click(&alice, "#mark-all-read").await;
    wait_bell(&alice, 0).await;
    alice.switch_to_window(first).await.unwrap();
    wait_bell(&alice, 0).await;
    wait_room_on_screen(&alice, "dev").await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn the_service_worker_shows_a_pushed_alert_and_closes_it_when_read_elsewhere() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let origin = base.trim_end_matches('/').to_owned();
    let driver = Driver::start().await;
    let (b, _p) = driver.browser(1000, 700).await;

    // The worker is a script at the site root, with a JavaScript type.
    let (status, body) = crate::support::get(server.addr, "/sw.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("notificationclick"), "{body}");

    // Notifications allowed (as if the person had said yes): the app registers the
    // worker when it connects.
    b.goto(&base).await.unwrap();
    cdp(
        &driver,
        &b,
        "Browser.grantPermissions",
        json!({ "permissions": ["notifications"], "origin": origin }),
    )
    .await;
    sign_in(&b, &base, "alice").await;
    wait_for(
        &b,
        "the service worker to be active",
        WAIT,
        "const r = await navigator.serviceWorker.getRegistration(); \
         return !!r && !!r.active && r.active.scriptURL.endsWith('/sw.js')",
        vec![],
    )
    .await;

    // A push as the server sends it.
    let alert = json!({
        "kind": "alert", "seq": 7, "title": "bob in #lobby", "body": "@alice look",
        "room": "lobby", "offset": 12, "url": null, "tag": "huddle-alert-7"
    });
    // The domain must be on for `deliverPushMessage`.
    cdp(&driver, &b, "ServiceWorker.enable", json!({})).await;
    let shown = "const r = await navigator.serviceWorker.getRegistration(); \
         const n = await r.getNotifications(); \
         return n.map(x => ({tag: x.tag, title: x.title, body: x.body, data: x.data}))";
    // Delivered again until it shows: right after `enable` the browser may still be
    // loading what it knows of the registrations. The tag makes a repeat replace it.
    let deadline = Instant::now() + WAIT;
    let mut found: Vec<Value> = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        push(&driver, &b, &origin, &alert).await;
        let settle = Instant::now() + Duration::from_secs(2);
        while found.is_empty() && Instant::now() < settle {
            found = js(&b, shown, vec![]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(found.len(), 1, "notifications shown: {found:?}");
    let n = &found[0];
    assert_eq!(n["tag"], "huddle-alert-7");
    assert_eq!(n["title"], "bob in #lobby");
    assert_eq!(n["body"], "@alice look");
    assert_eq!(n["data"]["seq"], 7);
    assert_eq!(n["data"]["room"], "lobby");
    assert_eq!(n["data"]["offset"], 12);
    screenshot(&b, "notifications-pushed").await;

    // An older alert read elsewhere closes nothing newer; this one read closes it.
    push(&driver, &b, &origin, &json!({"kind": "read", "seq": 6})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still: Vec<Value> = js(&b, shown, vec![]).await;
    assert_eq!(still.len(), 1, "closed too early: {still:?}");
    push(&driver, &b, &origin, &json!({"kind": "read", "seq": 7})).await;
    wait_for(
        &b,
        "the read alert's notification to close",
        WAIT,
        "const r = await navigator.serviceWorker.getRegistration(); \
         return (await r.getNotifications()).length === 0",
        vec![],
    )
    .await;
}
