//! Two people talking: messages, blue join and leave notices, text that stays text, and typing.

use super::*;

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn two_people_chat_in_the_browser_with_blue_join_and_leave_notices() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;

    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;

    // Alice sees bob arrive, as a blue system notification.
    assert_blue_notice(&alice, "bob joined").await;

    // Messages flow both ways, and are acknowledged.
    say(&alice, "hello bob").await;
    wait_message(&bob, "hello bob").await;
    let markup = "hi alice, <b>not bold</b> <img src=x onerror=\"window.__pwned=1\">";
    say(&bob, markup).await;
    wait_message(&alice, markup).await;

    // Markup in a nick is text too (the nick rules allow it: no control characters).
    let mut eve = server.member("<b>eve</b>", "lobby").await;
    assert_blue_notice(&alice, "<b>eve</b> joined").await;
    eve.say_acked("lobby", "<img src=x onerror=\"window.__pwned=2\">")
        .await;
    wait_message(&alice, "<img src=x onerror=\"window.__pwned=2\">").await;
    let shown: (Vec<String>, Vec<String>) = js(
        &alice,
        "return [Array.from(document.querySelectorAll('li.msg .nick'), n => n.textContent), \
                 Array.from(document.querySelectorAll('.presence li'), n => n.textContent)]",
        vec![],
    )
    .await;
    assert!(shown.0.contains(&"<b>eve</b>".to_owned()), "{shown:?}");
    assert!(shown.1.contains(&"<b>eve</b>".to_owned()), "{shown:?}");
    let injected: bool = js(
        &alice,
        "return document.querySelector('.app img, .app b') !== null || window.__pwned !== undefined",
        vec![],
    )
    .await;
    assert!(!injected, "text from the network was rendered as HTML");

    // Web addresses become safe links; other schemes stay text.
    let linked = "docs at https://example.com/a?b=1 and javascript:alert(1)";
    say(&bob, linked).await;
    wait_message(&alice, linked).await;
    let links: Vec<(String, String, String)> = js(
        &alice,
        "const p = Array.from(document.querySelectorAll('li.msg .text'))\
             .find(p => p.textContent === arguments[0]); \
         return Array.from(p.querySelectorAll('a'), a => \
             [a.getAttribute('href'), a.getAttribute('rel') || '', a.getAttribute('target') || ''])",
        vec![json!(linked)],
    )
    .await;
    assert_eq!(links.len(), 1, "exactly one link expected: {links:?}");
    let (href, rel, target) = &links[0];
    assert_eq!(href, "https://example.com/a?b=1");
    assert!(rel.split(' ').any(|r| r == "noopener"), "rel {rel:?}");
    assert_eq!(target, "_blank");
    let script_links: usize = js(
        &alice,
        "return Array.from(document.querySelectorAll('a'))\
             .filter(a => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length",
        vec![],
    )
    .await;
    assert_eq!(script_links, 0, "a javascript: link was rendered");
    wait_all_acked(&alice).await;
    wait_all_acked(&bob).await;

    // The server has them, in order.
    let mut probe = server.login("probe").await;
    let texts = probe.history_texts("lobby").await;
    assert_eq!(
        texts,
        [
            "hello bob",
            markup,
            "<img src=x onerror=\"window.__pwned=2\">",
            linked
        ]
    );

    screenshot(&alice, "alice.png").await;
    screenshot(&bob, "bob.png").await;

    // Bob leaves; alice is told, in blue.
    bob.close().await.unwrap();
    assert_blue_notice(&alice, "bob left").await;
    alice.close().await.unwrap();
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn typing_shows_for_the_others_and_goes_away() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    sign_in(&bob, &base, "bob").await;
    assert_blue_notice(&alice, "bob joined").await;

    let typing_is = "const t = document.querySelector('.typing'); \
                     return !!t && t.textContent.trim() === arguments[0]";
    let field = bob
        .find(Locator::Css("textarea[name=message]"))
        .await
        .unwrap();
    field.send_keys("hel").await.unwrap();
    let stopped = Instant::now();
    wait_for(
        &alice,
        "bob is typing",
        Duration::from_secs(5),
        typing_is,
        vec![json!("bob is typing…")],
    )
    .await;
    // Bob typed nothing more: it goes away by itself, a few seconds later.
    wait_for(
        &alice,
        "the typing line to clear",
        Duration::from_secs(8),
        typing_is,
        vec![json!("")],
    )
    .await;
    let shown_for = stopped.elapsed();
    assert!(
        shown_for >= Duration::from_secs(2) && shown_for <= Duration::from_secs(8),
        "typing shown for {shown_for:?}"
    );
    // Bob never sees himself typing.
    assert!(js::<bool>(&bob, typing_is, vec![json!("")]).await);

    // Typing again, then sending: the message clears it at once.
    field.send_keys("lo").await.unwrap();
    wait_for(
        &alice,
        "bob is typing again",
        Duration::from_secs(5),
        typing_is,
        vec![json!("bob is typing…")],
    )
    .await;
    field.send_keys(ENTER).await.unwrap();
    wait_message(&alice, "hello").await;
    wait_for(
        &alice,
        "the typing line to clear when bob's message arrives",
        Duration::from_secs(2),
        typing_is,
        vec![json!("")],
    )
    .await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_link_shows_the_host_it_opens_whatever_direction_controls_it_carries() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    // A right-to-left override would make the rest of the address read backwards, as
    // "https://good-example.com" while the link opens evil.example.
    let url = "https://evil.example/\u{202e}moc.elpmaxe-doog//:sptth";
    let mut eve = server.member("eve", "lobby").await;
    eve.say_acked("lobby", &format!("log in at {url}")).await;
    wait_for(
        &alice,
        "the link",
        Duration::from_secs(10),
        "return document.querySelector('li.msg .text a') !== null",
        vec![],
    )
    .await;
    let (href, text, title): (String, String, String) = js(
        &alice,
        "const a = document.querySelector('li.msg .text a'); \
         return [a.getAttribute('href'), a.textContent, a.getAttribute('title') || ''];",
        vec![],
    )
    .await;
    assert_eq!(href, url, "the link opens what was sent");
    assert!(
        !text.contains('\u{202e}'),
        "the override is shown raw: {text:?}"
    );
    assert_eq!(text, url.replace('\u{202e}', "\u{fffd}"));
    assert_eq!(title, "evil.example", "the tooltip names the real host");
    screenshot(&alice, "bidi-link.png").await;
}
