//! Rooms: the form, links, the `/r/` path, the back button, unread badges and leaving; and a reload keeping the nick and the rooms.

use super::*;

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn rooms_links_unread_badges_back_button_and_leaving() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    assert_eq!(room_on_screen(&alice).await.as_deref(), Some("lobby"));

    // Alice creates #dev with the join form: it is on screen, in the URL and the sidebar.
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("dev{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    assert_eq!(
        alice.current_url().await.unwrap().fragment(),
        Some("/r/dev")
    );
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    wait_css(
        &alice,
        ".room-item.current[data-room=dev] [aria-current=page]",
    )
    .await;

    // Bob follows a link straight into #dev.
    sign_in_at(&bob, &format!("{base}#/r/dev"), "bob").await;
    wait_room_on_screen(&bob, "dev").await;
    say(&bob, "in dev").await;
    wait_message(&alice, "in dev").await;

    // Back in the lobby, #dev's message is not there.
    alice
        .find(Locator::Css(".room-item[data-room=lobby] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    assert!(!message_texts(&alice).await.contains(&"in dev".to_owned()));

    // A message in #dev while alice reads the lobby raises its badge ...
    say(&bob, "ping dev").await;
    let badge = wait_css(&alice, ".room-item[data-room=dev] .unread").await;
    assert_eq!(badge.text().await.unwrap(), "1");
    assert!(message_texts(&alice).await.is_empty());
    // ... and opening #dev clears it.
    alice
        .find(Locator::Css(".room-item[data-room=dev] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "dev").await;
    wait_message(&alice, "ping dev").await;
    assert!(alice
        .find_all(Locator::Css(".room-item[data-room=dev] .unread"))
        .await
        .unwrap()
        .is_empty());

    // The browser's back button returns to the room before.
    alice.back().await.unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    assert_eq!(
        alice.current_url().await.unwrap().fragment(),
        Some("/r/lobby")
    );

    // The room directory lists #dev after a refresh.
    alice
        .find(Locator::Css(".refresh-rooms"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&alice, ".all-rooms .open-room[data-room=dev]").await;

    // Leaving #dev takes it out of the sidebar; bob sees alice go, in blue.
    let leave = alice
        .find(Locator::Css(".room-item[data-room=dev] .leave-room"))
        .await
        .unwrap();
    // The button shows on hover (or focus), as for a person with a mouse.
    alice
        .perform_actions(<MouseActions as InputSource>::then(
            MouseActions::new("mouse".to_owned()),
            PointerAction::MoveToElement {
                element: leave.clone(),
                duration: None,
                x: 0.0,
                y: 0.0,
            },
        ))
        .await
        .unwrap();
    leave.click().await.unwrap();
    wait_for(
        &alice,
        "#dev to leave the sidebar",
        WAIT,
        "return document.querySelector('.room-item[data-room=dev]') === null",
        vec![],
    )
    .await;
    assert_eq!(sidebar_rooms(&alice).await, ["lobby"]);
    assert_blue_notice(&bob, "alice left").await;

    // A /r/<room> path works too, and is rewritten to the hash form.
    alice.goto(&format!("{base}r/dev")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    wait_css(&alice, ".status-connected").await;
    wait_message(&alice, "ping dev").await;
    let url = alice.current_url().await.unwrap();
    assert_eq!((url.path(), url.fragment()), ("/", Some("/r/dev")));
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    assert_blue_notice(&bob, "alice joined").await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_reload_keeps_the_nick_and_the_rooms() {
    require();
    let server = TestServer::start().await;
    // Through a proxy that makes the WebSocket take a second to open, so whatever
    // the page shows while it reconnects stays on screen long enough to be seen.
    let proxy = slow_websocket_proxy(server.addr, Duration::from_secs(1)).await;
    let base = format!("http://{proxy}/");
    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("dev{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "dev").await;
    say(&alice, "before reload").await;
    wait_all_acked(&alice).await;
    // A second client, to ask the server who is where after the reload.
    let mut watcher = server.member("watcher", "lobby").await;

    alice.refresh().await.unwrap();
    // Straight back in, as alice, in the same rooms: the page never asks for the nick
    // (the saved session reclaims it), not even while its socket is on the way.
    let first: String = {
        let start = Instant::now();
        loop {
            let seen: Option<String> = js(
                &alice,
                "return document.querySelector('.nick-form') ? 'the nick form' \
                     : document.querySelector('main.room') ? 'the room' : null",
                vec![],
            )
            .await;
            if let Some(seen) = seen {
                break seen;
            }
            assert!(
                start.elapsed() < WAIT,
                "the page showed nothing after the reload"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!(
        first, "the room",
        "after a reload the page showed the nick form first"
    );
    wait_css(&alice, ".status-connected").await;
    wait_room_on_screen(&alice, "dev").await;
    assert!(
        alice
            .find_all(Locator::Css("#nick, .nick-form"))
            .await
            .unwrap()
            .is_empty(),
        "the nick form is shown after a reload"
    );
    assert_eq!(
        welcomes(&alice).await,
        1,
        "a fresh page counts its welcomes from 0"
    );
    assert_eq!(sidebar_rooms(&alice).await, ["dev", "lobby"]);
    wait_message(&alice, "before reload").await;
    wait_css(&alice, "li.msg.mine").await;
    let members: Vec<String> = js(
        &alice,
        "return Array.from(document.querySelectorAll('.presence li'), li => li.textContent)",
        vec![],
    )
    .await;
    assert_eq!(members, ["alice"]);
    // The server agrees it is alice (the session reclaimed the nick): she is in the
    // lobby as alice, and "alice" cannot be taken by someone else.
    let mut other = server.client().await;
    let refused = other.hello("alice").await;
    assert_eq!(refused["code"], "nick_taken", "{refused}");
    watcher.send(json!({"type": "list_rooms"})).await;
    let rooms = watcher.next_of("rooms").await;
    let dev = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "dev")
        .cloned()
        .expect("no #dev on the server");
    assert_eq!(dev["members"], 1, "{rooms}");
}
