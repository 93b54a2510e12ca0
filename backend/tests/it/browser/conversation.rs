//! The conversation in the browser (issue 14): two people editing, deleting, reacting
//! and replying, each seeing the other live and after a reload; a reply to a message
//! far above the loaded pages jumps to it.

use super::*;

pub(super) const THUMBS: &str = "\u{1f44d}";

/// Up, as WebDriver spells it in `send_keys`.
const ARROW_UP: &str = "\u{E013}";

/// Backspace, as WebDriver spells it.
const BACKSPACE: &str = "\u{E003}";

/// A message row as the page shows it.
#[derive(Debug, PartialEq, serde::Deserialize)]
pub(super) struct RowState {
    /// The text, `None` when deleted.
    text: Option<String>,
    /// "(edited)" is shown.
    edited: bool,
    /// "message deleted" is shown instead of the text.
    deleted: bool,
    /// The quote of the message it answers: "nick: start of text".
    quote: Option<String>,
    /// Each reaction chip: its text (emoji and count), its tooltip, and whether it is
    /// ours (highlighted).
    chips: Vec<(String, String, bool)>,
}

impl RowState {
    fn text(text: &str) -> Self {
        RowState {
            text: Some(text.to_owned()),
            edited: false,
            deleted: false,
            quote: None,
            chips: Vec::new(),
        }
    }
}

/// The row of the message at `offset`, if it is rendered.
pub(super) async fn row_state(b: &Browser, offset: u64) -> Option<RowState> {
    js(
        b,
        "const li = document.querySelector(`li.msg[data-offset='${arguments[0]}']`); \
         if (!li) return null; \
         const q = s => li.querySelector(s); \
         const nick = q('.reply-quote .quote-nick'); \
         const quote = q('.reply-quote') \
             ? (nick ? nick.textContent + ': ' : '') + q('.reply-quote .quote-text').textContent \
             : null; \
         return { \
             text: q('p.text') ? q('p.text').textContent : null, \
             edited: !!q('.edited') && q('.edited').textContent === '(edited)', \
             deleted: li.classList.contains('deleted') && !!q('.tombstone') \
                 && q('.tombstone').textContent === 'message deleted', \
             quote, \
             chips: Array.from(li.querySelectorAll('button.reaction'), \
                 c => [c.textContent, c.title, c.classList.contains('mine')]), \
         };",
        vec![json!(offset)],
    )
    .await
}

/// Waits until `who`'s row of the message at `offset` is `want`.
pub(super) async fn wait_row(b: &Browser, who: &str, offset: u64, want: &RowState) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = row_state(b, offset).await;
        if now.as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who}'s message {offset} is {now:?}, not {want:?}; the page shows:\n{}",
            page_text(b).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The offset of the message whose text is `text`, once it is shown.
pub(super) async fn offset_of(b: &Browser, text: &str) -> u64 {
    wait_message(b, text).await;
    js(
        b,
        "const p = Array.from(document.querySelectorAll('li.msg p.text')) \
             .find(p => p.textContent === arguments[0]); \
         return Number(p.closest('li').dataset.offset)",
        vec![json!(text)],
    )
    .await
}

/// Points the mouse at the message at `offset` (its actions show on hover), then
/// clicks its `action` button (`act-react`, `act-reply`, `act-edit`, `act-delete`).
pub(super) async fn act(b: &Browser, offset: u64, action: &str) {
    let row = wait_css(b, &format!("li.msg[data-offset='{offset}']")).await;
    b.perform_actions(<MouseActions as InputSource>::then(
        MouseActions::new("mouse".to_owned()),
        PointerAction::MoveToElement {
            element: row,
            duration: None,
            x: 0.0,
            y: 0.0,
        },
    ))
    .await
    .unwrap();
    click(b, &format!("li.msg[data-offset='{offset}'] .{action}")).await;
}

/// Picks `emoji` for the message at `offset` through its reaction picker.
pub(super) async fn react(b: &Browser, offset: u64, emoji: &str) {
    act(b, offset, "act-react").await;
    click(
        b,
        &format!("li.msg[data-offset='{offset}'] .reaction-picker button[data-emoji='{emoji}']"),
    )
    .await;
}

/// Reloads the page and waits until it is back in `room`.
async fn reload(b: &Browser, room: &str) {
    b.refresh().await.unwrap();
    wait_css(b, ".status-connected").await;
    wait_room_on_screen(b, room).await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn edit_delete_react_and_reply_between_two_people_live_and_after_a_reload() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    join_room(&alice, "talk").await;
    sign_in(&bob, &base, "bob").await;
    join_room(&bob, "talk").await;

    say(&alice, "the plan is ready").await;
    let plan = offset_of(&bob, "the plan is ready").await;
    // Bob answers it: the reply bar says to what, and the reply quotes it.
    act(&bob, plan, "act-reply").await;
    let bar: String = js(
        &bob,
        "const b = document.querySelector('.reply-bar'); return b ? b.textContent : ''",
        vec![],
    )
    .await;
    assert!(
        bar.contains("alice") && bar.contains("the plan is ready"),
        "{bar:?}"
    );
    say(&bob, "looks good to me").await;
    wait_all_acked(&bob).await;
    say(&bob, "a typo from bob").await;
    let reply = offset_of(&alice, "looks good to me").await;
    let typo = offset_of(&alice, "a typo from bob").await;
    let mut reply_row = RowState::text("looks good to me");
    reply_row.quote = Some("alice: the plan is ready".to_owned());
    wait_row(&alice, "alice", reply, &reply_row).await;
    wait_row(&bob, "bob", reply, &reply_row).await;
    wait_row(&alice, "alice", typo, &RowState::text("a typo from bob")).await;

    // Bob reacts through the picker; alice adds hers by clicking his chip.
    react(&bob, plan, THUMBS).await;
    let mut plan_row = RowState::text("the plan is ready");
    plan_row.chips = vec![(format!("{THUMBS}1"), "bob".to_owned(), false)];
    wait_row(&alice, "alice", plan, &plan_row).await;
    click(
        &alice,
        &format!("li.msg[data-offset='{plan}'] button.reaction[data-emoji='{THUMBS}']"),
    )
    .await;
    // Both reacted with it now: each sees the chip as theirs too.
    plan_row.chips = vec![(format!("{THUMBS}2"), "bob, alice".to_owned(), true)];
    wait_row(&bob, "bob", plan, &plan_row).await;
    wait_row(&alice, "alice", plan, &plan_row).await;

    // Alice edits hers: Up in the empty composer, the new text, Enter.
    let field = wait_css(&alice, "textarea[name=message]").await;
    field.send_keys(ARROW_UP).await.unwrap();
    let editor = wait_css(&alice, "textarea.edit-field").await;
    let erase = BACKSPACE.repeat("the plan is ready".chars().count());
    editor
        .send_keys(&format!("{erase}the plan is final{ENTER}"))
        .await
        .unwrap();
    plan_row.text = Some("the plan is final".to_owned());
    plan_row.edited = true;
    wait_row(&alice, "alice", plan, &plan_row).await;
    wait_row(&bob, "bob", plan, &plan_row).await;
    // The reply's quote follows the edit, on both sides.
    reply_row.quote = Some("alice: the plan is final".to_owned());
    wait_row(&bob, "bob", reply, &reply_row).await;
    wait_row(&alice, "alice", reply, &reply_row).await;

    // Bob deletes his typo, after confirming.
    act(&bob, typo, "act-delete").await;
    assert!(
        row_state(&bob, typo).await.is_some_and(|r| !r.deleted),
        "deleted before the confirmation"
    );
    click(&bob, &format!("li.msg[data-offset='{typo}'] .confirm-yes")).await;
    let gone = RowState {
        text: None,
        edited: false,
        deleted: true,
        quote: None,
        chips: Vec::new(),
    };
    wait_row(&alice, "alice", typo, &gone).await;
    wait_row(&bob, "bob", typo, &gone).await;
    wait_all_acked(&bob).await;

    // After a reload (history in its current state) each sees the same, once each.
    reload(&alice, "talk").await;
    reload(&bob, "talk").await;
    for (b, who) in [(&alice, "alice"), (&bob, "bob")] {
        wait_row(b, who, plan, &plan_row).await;
        wait_row(b, who, reply, &reply_row).await;
        wait_row(b, who, typo, &gone).await;
        assert_eq!(
            rendered_offsets(b).await,
            vec![plan, reply, typo],
            "{who}: each message once, and no row for an edit, deletion or reaction"
        );
    }

    // A change after the reload reaches the other live: bob takes his reaction back.
    click(
        &bob,
        &format!("li.msg[data-offset='{plan}'] button.reaction[data-emoji='{THUMBS}']"),
    )
    .await;
    plan_row.chips = vec![(format!("{THUMBS}1"), "alice".to_owned(), true)];
    wait_row(&alice, "alice", plan, &plan_row).await;
    plan_row.chips[0].2 = false;
    wait_row(&bob, "bob", plan, &plan_row).await;
    screenshot(&alice, "conversation-alice.png").await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn a_reply_to_a_message_not_loaded_yet_jumps_to_it() {
    require();
    let server = TestServer::with(|c| {
        c.rate_per_sec = 100_000;
        c.rate_burst = 100_000;
    })
    .await;
    let base = format!("http://{}/", server.addr);
    let mut bob = server.member("bob", "long").await;
    let first = bob.say_acked("long", "the very first message").await;
    let filler = 250;
    let acked = flood(
        &server.ws_url(),
        "filler",
        "long",
        filler,
        100,
        |i| format!("filler {i}"),
        |_| false,
    )
    .await;
    assert_eq!(acked, filler);
    let id = bob.fresh_id();
    bob.send(json!({
        "type": "send", "room": "long", "text": "replying to the very first", "id": id,
        "reply_to": first,
    }))
    .await;
    loop {
        let v = bob.recv().await;
        match v["type"].as_str() {
            Some("ack") if v["id"] == id.as_str() => break,
            Some("error") => panic!("the reply was refused: {v}"),
            _ => {}
        }
    }

    let driver = Driver::start().await;
    let (alice, _p) = driver.browser(1000, 700).await;
    sign_in(&alice, &base, "alice").await;
    join_room(&alice, "long").await;
    let reply = offset_of(&alice, "replying to the very first").await;
    assert!(
        row_state(&alice, first).await.is_none(),
        "the original is not loaded yet"
    );
    let state = row_state(&alice, reply).await.expect("the reply's row");
    assert_eq!(state.quote.as_deref(), Some("an earlier message"));

    click(
        &alice,
        &format!("li.msg[data-offset='{reply}'] .reply-quote"),
    )
    .await;
    wait_for(
        &alice,
        "the original, highlighted and in view",
        Duration::from_secs(30),
        "const s = document.querySelector('.scroller'); \
         const li = document.querySelector(`li.msg[data-offset='${arguments[0]}']`); \
         if (!li || !li.classList.contains('highlight')) return false; \
         const top = li.offsetTop - s.scrollTop; \
         return top >= 0 && top + li.offsetHeight <= s.clientHeight",
        vec![json!(first)],
    )
    .await;
    let original = row_state(&alice, first).await.expect("rendered");
    assert_eq!(original, RowState::text("the very first message"));
    let rows: usize = js(
        &alice,
        "return document.querySelectorAll('ol.messages > li').length",
        vec![],
    )
    .await;
    assert!(rows <= 300, "{rows} rows rendered");
    let shown = rendered_offsets(&alice).await;
    let unique: BTreeSet<u64> = shown.iter().copied().collect();
    assert_eq!(unique.len(), shown.len(), "an offset is rendered twice");
    // Back to the newest: the reply now quotes its original by name.
    click(&alice, ".jump-latest").await;
    let mut want = RowState::text("replying to the very first");
    want.quote = Some("bob: the very first message".to_owned());
    wait_row(&alice, "alice", reply, &want).await;
}

#[ignore = "needs Chromium, chromedriver and the web bundle; `cargo xtask test` runs it"]
#[tokio::test]
async fn changes_made_while_a_page_is_offline_arrive_once_when_it_reconnects() {
    require();
    let server = TestServer::start().await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let (alice, _p1) = driver.browser(1000, 700).await;
    let (bob, _p2) = driver.browser(1000, 700).await;
    // Alice's page gets a socket it can lose, and a switch that keeps it offline: while
    // `__offline` is set, its sockets go to a closed port.
    alice.goto(&base).await.unwrap();
    alice
        .execute(
            "window.__sockets = []; window.__offline = false; \
             const Native = window.WebSocket; \
             window.WebSocket = class extends Native { \
                 constructor(url, protocols) { \
                     super(window.__offline ? 'ws://127.0.0.1:9/' : url, protocols); \
                     window.__sockets.push(this); \
                 } \
             };",
            vec![],
        )
        .await
        .unwrap();
    let field = wait_css(&alice, "#nick").await;
    field.send_keys(&format!("alice{ENTER}")).await.unwrap();
    wait_css(&alice, ".status-connected").await;
    sign_in(&bob, &base, "bob").await;

    say(&bob, "draft one").await;
    say(&alice, "noted").await;
    let draft = offset_of(&alice, "draft one").await;
    let noted = offset_of(&bob, "noted").await;
    wait_message(&alice, "noted").await;

    // Alice's connection drops and stays down.
    alice
        .execute(
            "window.__offline = true; window.__sockets[window.__sockets.length - 1].close();",
            vec![],
        )
        .await
        .unwrap();
    wait_css(&alice, ".status-reconnecting").await;
    // Offline, she reacts (shown at once, sent after the rejoin) ...
    react(&alice, draft, THUMBS).await;
    let mut draft_row = RowState::text("draft one");
    draft_row.chips = vec![(format!("{THUMBS}1"), "alice".to_owned(), true)];
    wait_row(&alice, "alice", draft, &draft_row).await;
    // ... while bob edits his message, reacts to hers and deletes nothing.
    field_edit(&bob, "draft one", "final version").await;
    react(&bob, noted, "\u{1f440}").await;
    let mut noted_row = RowState::text("noted");
    noted_row.chips = vec![("\u{1f440}1".to_owned(), "bob".to_owned(), true)];
    wait_row(&bob, "bob", noted, &noted_row).await;

    alice
        .execute("window.__offline = false;", vec![])
        .await
        .unwrap();
    alice
        .wait()
        .at_most(Duration::from_secs(40))
        .for_element(Locator::Css(".status-connected"))
        .await
        .expect("alice's page did not reconnect");
    // Each sees everything once: bob's edit and reaction replayed to alice, her
    // reaction sent after the rejoin.
    draft_row.text = Some("final version".to_owned());
    draft_row.edited = true;
    wait_row(&alice, "alice", draft, &draft_row).await;
    noted_row.chips[0].2 = false;
    wait_row(&alice, "alice", noted, &noted_row).await;
    draft_row.chips[0].2 = false;
    wait_row(&bob, "bob", draft, &draft_row).await;
    wait_all_acked(&alice).await;
    for (b, who) in [(&alice, "alice"), (&bob, "bob")] {
        assert_eq!(rendered_offsets(b).await, vec![draft, noted], "{who}");
    }
    let welcomes = welcomes(&alice).await;
    assert_eq!(welcomes, 2, "one reconnect");
}

/// Edits our message whose text is `old` through the Edit action.
async fn field_edit(b: &Browser, old: &str, new: &str) {
    let offset = offset_of(b, old).await;
    act(b, offset, "act-edit").await;
    let editor = wait_css(b, "textarea.edit-field").await;
    let erase = BACKSPACE.repeat(old.chars().count());
    editor
        .send_keys(&format!("{erase}{new}{ENTER}"))
        .await
        .unwrap();
}
