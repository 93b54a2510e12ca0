//! Long rooms: a reader at the bottom follows a burst, and scrolling up through a long room keeps the page bounded.

use super::*;

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_reader_at_the_bottom_keeps_following_a_burst_of_messages() {
    require();
    let server = TestServer::with(|c| {
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    // More messages than the page renders, faster than it paints.
    let total = 400;
    let acked = flood(
        &server.ws_url(),
        "chatty",
        "lobby",
        total,
        100,
        |i| format!("burst {i}"),
        |_| false,
    )
    .await;
    assert_eq!(acked, total);
    // Alice did not scroll: she sees the newest message, at the bottom, with no
    // "Jump to latest" offered.
    wait_for(
        &alice,
        &format!(
            "'burst {total}' at the bottom of the view, with no 'Jump to latest' \
             (the view must keep following when it was at the bottom)"
        ),
        Duration::from_secs(10),
        "const s = document.querySelector('.scroller'); \
         const last = Array.from(document.querySelectorAll('li.msg .text')).pop(); \
         return !!last && last.textContent === arguments[0] \
             && document.querySelector('.jump-latest') === null \
             && s.scrollTop + s.clientHeight >= s.scrollHeight - 50",
        vec![json!(format!("burst {total}"))],
    )
    .await;
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 300, "{rows} rows rendered");
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_long_room_keeps_the_page_bounded_while_scrolling_up() {
    require();
    let server = TestServer::with(|c| {
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let total = 3000;
    let acked = flood(
        &server.ws_url(),
        "writer",
        "big",
        total,
        200,
        |i| format!("line {i}"),
        |_| false,
    )
    .await;
    assert_eq!(acked, total);
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in_at(&alice, &format!("{base}#/r/big"), "alice").await;
    wait_room_on_screen(&alice, "big").await;
    wait_message(&alice, &format!("line {total}")).await;
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 300, "{rows} rows rendered on opening");
    // The view starts at the bottom, on the newest message.
    let at_bottom: bool = js(
        &alice,
        "const s = document.querySelector('.scroller'); \
         return s.scrollTop + s.clientHeight >= s.scrollHeight - 50",
        vec![],
    )
    .await;
    assert!(at_bottom, "the room did not open at its newest message");

    // Scrolling up all the way pages through everything, never rendering too much.
    let start = Instant::now();
    let seen = scroll_to_oldest(&alice, 350).await;
    assert_eq!(seen, (1..=total as u64).collect::<BTreeSet<_>>());
    eprintln!("scrolled through {total} messages in {:?}", start.elapsed());
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 350, "{rows} rows rendered at the top");
    // Jumping back to the newest works from up there.
    alice
        .find(Locator::Css(".jump-latest"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_message(&alice, &format!("line {total}")).await;
}
