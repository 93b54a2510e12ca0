//! The pictures of the app in `docs/` (with `HUDDLE_SCREENSHOTS=1`; otherwise into `target/e2e/`).

use super::*;

/// Sets up the conversation shown in the documentation's screenshots and takes the
/// desktop (1280x800) and phone (360x740) pictures, light or dark.
async fn screenshot_scene(driver: &Driver, dark: bool) {
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    // History from before alice arrives.
    let mut bob = server.member("bob", "lobby").await;
    let mut carol = server.member("carol", "lobby").await;
    bob.say_acked("lobby", "Morning! The new build is up on staging.")
        .await;
    bob.say_acked(
        "lobby",
        "Release notes: https://example.com/huddle/releases/0.4",
    )
    .await;
    carol
        .say_acked(
            "lobby",
            "Nice. Reconnects feel instant now, even on the train.",
        )
        .await;

    let flags: &[&str] = if dark {
        &["--blink-settings=preferredColorScheme=0"]
    } else {
        &[]
    };
    let (alice, _p) = driver.browser_with(1280, 800, flags).await;
    sign_in(&alice, &base, "alice").await;
    let dark_now: bool = js(
        &alice,
        "return matchMedia('(prefers-color-scheme: dark)').matches",
        vec![],
    )
    .await;
    assert_eq!(dark_now, dark, "prefers-color-scheme: dark");
    // A second room, with news in it.
    let field = alice
        .find(Locator::Css(".join-room input[name=room]"))
        .await
        .unwrap();
    field.send_keys(&format!("design{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "design").await;
    alice
        .find(Locator::Css(".room-item[data-room=lobby] .room-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "lobby").await;
    let mut dana = server.member("dana", "design").await;
    dana.say_acked("design", "Mock-ups for the phone layout are in.")
        .await;
    dana.say_acked("design", "Feedback welcome!").await;
    wait_css(&alice, ".room-item[data-room=design] .unread").await;

    // Live: someone joins, alice answers, carol follows up twice, bob starts typing.
    let _erin = server.member("erin", "lobby").await;
    assert_blue_notice(&alice, "erin joined").await;
    say(&alice, "Great, I'll try it after lunch.").await;
    wait_all_acked(&alice).await;
    carol.say_acked("lobby", "Stand-up moved to 10:30.").await;
    carol.say_acked("lobby", "Same link as always.").await;
    wait_message(&alice, "Same link as always.").await;
    let grouped: usize = js(
        &alice,
        "return document.querySelectorAll('li.msg.continued').length",
        vec![],
    )
    .await;
    assert!(grouped >= 2, "no grouped messages");
    wait_css(&alice, "li.msg .text a[href]").await;

    let dir = screenshot_dir(true);
    let suffix = if dark { "-dark" } else { "" };
    for (width, height, name) in [
        (1280, 800, format!("screenshot{suffix}.png")),
        (360, 740, format!("screenshot-phone{suffix}.png")),
    ] {
        set_viewport(&alice, width, height).await;
        // Someone typing (the line lasts 5 s after each typing frame).
        bob.send(json!({"type": "typing", "room": "lobby"})).await;
        wait_for(
            &alice,
            "bob is typing",
            WAIT,
            "return document.querySelector('.typing').textContent.includes('bob is typing')",
            vec![],
        )
        .await;
        // The newest rows in view, and the layout settled after the resize.
        js::<Value>(
            &alice,
            "await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             const s = document.querySelector('.scroller'); s.scrollTop = s.scrollHeight; \
             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             return null",
            vec![],
        )
        .await;
        let (path, w, h) = screenshot_to(&alice, &dir, &name).await;
        assert_eq!((w, h), (width, height), "{}", path.display());
        eprintln!("wrote {}", path.display());
    }
    let [r, g, b] = colour_of(&alice, "li.notice", "erin joined").await;
    assert!(
        b > r + 60 && b > g + 40,
        "notice not blue in this theme: {r},{g},{b}"
    );
    alice.close().await.unwrap();
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn screenshots_of_the_app_light_and_dark_desktop_and_phone() {
    require();
    let driver = Driver::start().await;
    // Boxed: each scene's future holds two browsers and a server, too big for the stack.
    Box::pin(screenshot_scene(&driver, false)).await;
    Box::pin(screenshot_scene(&driver, true)).await;
}

/// The sign-in screen, and a person's sidebar with a private room, direct messages and
/// server-side unread counts (`docs/screenshot-signin.png`, `docs/screenshot-people.png`).
#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn screenshots_of_signing_in_and_of_people() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let dir = screenshot_dir(true);
    let (alice, _p) = driver.browser(1280, 800).await;
    alice.goto(&base).await.unwrap();
    wait_css(&alice, "#tab-login").await.click().await.unwrap();
    wait_css(&alice, "#login-user").await;
    let (path, ..) = screenshot_to(&alice, &dir, "screenshot-signin.png").await;
    eprintln!("wrote {}", path.display());

    // Alice signs in as a guest; bob and carol open DMs with her, she has a private
    // room, and the lobby has news she has not read.
    wait_css(&alice, "#tab-guest").await.click().await.unwrap();
    sign_in(&alice, &base, "alice").await;
    let alice_id: String = js(
        &alice,
        "return document.querySelector('.me').dataset.user",
        vec![],
    )
    .await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    for (c, text) in [
        (&mut bob, "Lunch at 1?"),
        (&mut carol, "Can you review my PR?"),
    ] {
        c.send(json!({"type": "open_dm", "user": alice_id})).await;
        let room = c.expect("dm").await["room"].as_str().unwrap().to_owned();
        c.join(&room).await;
        c.say_acked(&room, text).await;
    }
    wait_css(&alice, "#new-room").await.click().await.unwrap();
    wait_css(&alice, "#new-room-name")
        .await
        .send_keys("launch-plans")
        .await
        .unwrap();
    wait_css(&alice, "#new-room-create")
        .await
        .click()
        .await
        .unwrap();
    wait_room_on_screen(&alice, "launch-plans").await;
    say(
        &alice,
        "Draft timeline is in the doc; invite whoever needs it.",
    )
    .await;
    wait_all_acked(&alice).await;
    bob.join("lobby").await;
    bob.say_acked("lobby", "Staging is green again.").await;
    wait_css(&alice, "#dm-section .room-item.dm").await;
    wait_css(&alice, ".joined-rooms .room-item[data-room=lobby] .unread").await;
    let (path, ..) = screenshot_to(&alice, &dir, "screenshot-people.png").await;
    eprintln!("wrote {}", path.display());
}

/// The bell open on two mentions (`docs/screenshot-inbox.png`).
#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn screenshot_of_the_inbox() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let dir = screenshot_dir(true);
    let (alice, _p) = driver.browser(1280, 800).await;
    let mut bob = server.member("bob", "lobby").await;
    let mut carol = server.member("carol", "lobby").await;
    bob.say_acked("lobby", "Morning! The new build is up on staging.")
        .await;
    sign_in(&alice, &base, "alice").await;
    // Alice reads #design while the lobby names her twice.
    let field = wait_css(&alice, ".join-room input[name=room]").await;
    field.send_keys(&format!("design{ENTER}")).await.unwrap();
    wait_room_on_screen(&alice, "design").await;
    say(&alice, "Mock-ups for the phone layout are in.").await;
    wait_all_acked(&alice).await;
    bob.say_acked("lobby", "@alice can you check the release notes before 3?")
        .await;
    carol
        .say_acked("lobby", "@alice stand-up moved to 10:30, same link.")
        .await;
    wait_for(
        &alice,
        "two unread alerts on the bell",
        WAIT,
        "const b = document.querySelector('#bell'); return !!b && b.dataset.unread === '2'",
        vec![],
    )
    .await;
    wait_css(&alice, "#bell").await.click().await.unwrap();
    wait_css(&alice, "#inbox .alert-item.not-read").await;
    let (path, ..) = screenshot_to(&alice, &dir, "screenshot-inbox.png").await;
    eprintln!("wrote {}", path.display());
}

/// Sends a frame that writes to a room's log (`send`, `edit`, `delete`, `react`) with
/// the id `id`, and waits for its ack; returns the offset of the entry.
async fn logged(c: &mut Client, mut frame: Value, id: &str) -> u64 {
    frame["id"] = json!(id);
    c.send(frame).await;
    loop {
        let v = c.recv().await;
        match v["type"].as_str() {
            Some("ack") if v["id"] == id => return v["offset"].as_u64().unwrap(),
            Some("error") => panic!("refused: {v}"),
            _ => {}
        }
    }
}

/// Edits, a deletion, reactions (ours highlighted), a reply's quote, the reply bar
/// and a message's actions on hover (`docs/screenshot-conversation.png`).
#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn screenshot_of_the_conversation() {
    use super::conversation::{act, offset_of, react, THUMBS};
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let dir = screenshot_dir(true);
    let (alice, _p) = driver.browser(1280, 800).await;
    set_viewport(&alice, 1280, 800).await;
    let mut bob = server.member("bob", "lobby").await;
    let mut carol = server.member("carol", "lobby").await;
    let checklist = bob
        .say_acked(
            "lobby",
            "Release checklist is in the doc, anything missing?",
        )
        .await;
    carol
        .say_acked("lobby", "Looks complete to me. Nice work!")
        .await;
    sign_in(&alice, &base, "alice").await;
    say(&alice, "I'll tag the build after lunch.").await;
    let tag = offset_of(&alice, "I'll tag the build after lunch.").await;
    let room = "lobby";
    logged(
        &mut bob,
        json!({"type": "edit", "room": room, "offset": checklist,
               "text": "Release checklist is in the doc: anything missing before we tag?"}),
        "e1",
    )
    .await;
    let changelog = logged(
        &mut carol,
        json!({"type": "send", "room": room, "text": "Add the changelog link, please.",
               "reply_to": checklist}),
        "c1",
    )
    .await;
    let oops = logged(
        &mut carol,
        json!({"type": "send", "room": room, "text": "wrong room, sorry"}),
        "c2",
    )
    .await;
    logged(
        &mut carol,
        json!({"type": "delete", "room": room, "offset": oops}),
        "c3",
    )
    .await;
    for (bobs, id, offset, emoji) in [
        (true, "b1", tag, "\u{1f389}"),
        (false, "c4", tag, "\u{1f389}"),
        (false, "c5", checklist, THUMBS),
        (true, "b2", changelog, "\u{2705}"),
    ] {
        let c = if bobs { &mut bob } else { &mut carol };
        logged(
            c,
            json!({"type": "react", "room": room, "offset": offset, "emoji": emoji, "on": true}),
            id,
        )
        .await;
    }
    wait_for(
        &alice,
        "the conversation as set up",
        WAIT,
        "const rows = document.querySelectorAll('li.msg'); \
         return rows.length === 5 && document.querySelectorAll('button.reaction').length === 3 \
             && document.querySelector('li.msg.deleted .tombstone') !== null \
             && document.querySelector('.edited') !== null \
             && document.querySelector('.reply-quote') !== null",
        vec![],
    )
    .await;
    // Alice adds her thumbs up to the checklist and starts a reply to carol.
    react(&alice, checklist, THUMBS).await;
    wait_css(&alice, "button.reaction.mine").await;
    act(&alice, changelog, "act-reply").await;
    wait_css(&alice, ".reply-bar").await;
    let field = wait_css(&alice, "textarea[name=message]").await;
    field.send_keys("Adding it now").await.unwrap();
    // The mouse rests on her own message: its actions show.
    let mine = wait_css(&alice, &format!("li.msg[data-offset='{tag}']")).await;
    alice
        .perform_actions(<MouseActions as InputSource>::then(
            MouseActions::new("mouse".to_owned()),
            PointerAction::MoveToElement {
                element: mine,
                duration: None,
                x: 0.0,
                y: 0.0,
            },
        ))
        .await
        .unwrap();
    wait_for(
        &alice,
        "the actions of the hovered message",
        WAIT,
        "const a = document.querySelector(`li.msg[data-offset='${arguments[0]}'] .actions`); \
         return !!a && getComputedStyle(a).opacity === '1'",
        vec![json!(tag)],
    )
    .await;
    let (path, ..) = screenshot_to(&alice, &dir, "screenshot-conversation.png").await;
    eprintln!("wrote {}", path.display());
    // The same on a phone (into target/e2e only): the actions and chips fit.
    set_viewport(&alice, 360, 740).await;
    // A long press (a touch held half a second) opens a message's actions, under it.
    wait_for(
        &alice,
        "a long press to open the actions of bob's message",
        WAIT,
        "const li = document.querySelector(`li.msg[data-offset='${arguments[0]}']`);          li.dispatchEvent(new TouchEvent('touchstart', {bubbles: true}));          await new Promise(r => setTimeout(r, 700));          const bar = li.querySelector('.actions');          return li.classList.contains('actions-open')              && getComputedStyle(bar).position === 'static'              && getComputedStyle(bar).opacity === '1'",
        vec![json!(checklist)],
    )
    .await;
    screenshot(&alice, "conversation-phone-long-press.png").await;
    act(&alice, tag, "act-react").await;
    wait_css(&alice, ".reaction-picker").await;
    screenshot(&alice, "conversation-phone.png").await;
}
