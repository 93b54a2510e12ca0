//! `MessageList`: the rows of the room on screen, driven by protocol frames.

use common::{NotificationKind, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::Element;

use super::{chat_message, joined, local_hhmm, message, mount, text, Page, ME, T0};
use crate::components::MessageList;
use crate::state::room::WINDOW;
use crate::state::Parts;
use crate::state::TYPING_SHOWN_MS;

fn mount_list(rooms: &[&str]) -> Page {
    mount(rooms, || view! { <MessageList /> })
}

fn notification(kind: NotificationKind, nick: Option<&str>, text: &str, ts: u64) -> ServerMsg {
    ServerMsg::Notification {
        room: "lobby".to_owned(),
        kind,
        text: text.to_owned(),
        nick: nick.map(str::to_owned),
        ts,
        offset: None,
    }
}

/// The element's classes, sorted.
fn classes(el: &Element) -> Vec<String> {
    let list = el.class_list();
    let mut classes: Vec<String> = (0..list.length()).filter_map(|i| list.item(i)).collect();
    classes.sort();
    classes
}

/// The `data-offset` of every message row, in document order.
fn offsets(page: &Page) -> Vec<u64> {
    page.all("li.msg[data-offset]")
        .iter()
        .map(|li| {
            li.get_attribute("data-offset")
                .and_then(|o| o.parse().ok())
                .expect("a numeric data-offset")
        })
        .collect()
}

/// Asserts one message row: its classes, nick, time and text.
fn assert_message(li: &Element, offset: u64, class: &[&str], nick: &str, ts: u64, body: &str) {
    assert_eq!(li.tag_name(), "LI");
    let mut expected = class.to_vec();
    expected.sort_unstable();
    assert_eq!(classes(li), expected, "classes of message {offset}");
    assert_eq!(
        li.get_attribute("data-offset"),
        Some(offset.to_string()),
        "row order"
    );
    assert_eq!(li.get_attribute("data-key"), Some(format!("m{offset}")));
    assert_eq!(text(&super::one(li, ".meta .nick")), nick);
    assert_eq!(text(&super::one(li, ".meta time")), local_hhmm(ts));
    assert_eq!(text(&super::one(li, "p.text")), body);
    let sent_state = li.query_selector(".sent-state").expect("selector");
    if class.contains(&"mine") {
        assert_eq!(sent_state.map(|s| text(&s)).as_deref(), Some("✓ sent"));
    } else {
        assert!(sent_state.is_none(), "message {offset} is not ours");
    }
}

fn assert_notice(li: &Element, kind: &str, body: &str, ts: u64) {
    let mut expected = vec!["notice", kind];
    expected.sort_unstable();
    assert_eq!(classes(li), expected);
    assert_eq!(text(&super::one(li, ".notice-text")), body);
    assert_eq!(text(&super::one(li, "time")), local_hhmm(ts));
    assert!(li
        .get_attribute("data-key")
        .is_some_and(|k| k.starts_with('n')));
}

#[wasm_bindgen_test]
async fn messages_and_notices_render_grouped_in_order() {
    let page = mount_list(&["lobby"]);
    page.welcome_and_join("lobby", &[ME, "carol"]);
    super::flush().await;
    assert_eq!(
        page.text("ol.messages li.empty"),
        "No messages yet. Say hi!"
    );

    // What a join brings: `joined` (head 3), then the page of history.
    page.apply([
        joined("lobby", 3, &[ME, "carol"]),
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".to_owned(),
            messages: vec![
                chat_message("lobby", 1, ME, "first", T0),
                chat_message("lobby", 2, ME, "second", T0 + 60_000),
                chat_message("lobby", 3, "carol", "hi @alice", T0 + 120_000),
            ],
            has_more: false,
        },
    ]);
    // Then live frames.
    page.apply([
        notification(NotificationKind::Joined, Some("bob"), "", T0 + 180_000),
        message("lobby", 4, "bob", "hello all", T0 + 200_000),
        message("lobby", 5, "bob", "again <b>not bold</b>", T0 + 210_000),
        notification(NotificationKind::Left, Some("carol"), "", T0 + 220_000),
        notification(
            NotificationKind::Info,
            None,
            "Maintenance at noon",
            T0 + 230_000,
        ),
        message("lobby", 6, ME, "see https://example.com/x", T0 + 240_000),
    ]);
    super::flush().await;

    let rows = page.all("ol.messages > li");
    assert_eq!(rows.len(), 9, "6 messages and 3 notices, no empty row");
    assert_message(&rows[0], 1, &["msg", "mine"], ME, T0, "first");
    assert_message(
        &rows[1],
        2,
        &["msg", "mine", "continued"],
        ME,
        T0 + 60_000,
        "second",
    );
    // It names us: it stands out.
    assert_message(
        &rows[2],
        3,
        &["msg", "mentions-me"],
        "carol",
        T0 + 120_000,
        "hi @alice",
    );
    assert_notice(&rows[3], "joined", "bob joined", T0 + 180_000);
    // After a notice a new group starts.
    assert_message(&rows[4], 4, &["msg"], "bob", T0 + 200_000, "hello all");
    assert_message(
        &rows[5],
        5,
        &["msg", "continued"],
        "bob",
        T0 + 210_000,
        "again <b>not bold</b>",
    );
    assert!(rows[5].query_selector("b").expect("selector").is_none());
    assert_notice(&rows[6], "left", "carol left", T0 + 220_000);
    assert_notice(&rows[7], "info", "Maintenance at noon", T0 + 230_000);
    assert_message(
        &rows[8],
        6,
        &["msg", "mine"],
        ME,
        T0 + 240_000,
        "see https://example.com/x",
    );
    let link = super::one(&rows[8], "p.text a");
    assert_eq!(
        link.get_attribute("href").as_deref(),
        Some("https://example.com/x")
    );
}

#[wasm_bindgen_test]
async fn our_own_messages_are_marked_mine_with_a_sent_state() {
    let page = mount_list(&["lobby"]);
    page.welcome_and_join("lobby", &[ME]);
    page.apply([
        message("lobby", 1, ME, "one", T0),
        message("lobby", 2, "bob", "two", T0 + 1000),
        message("lobby", 3, ME, "three", T0 + 2000),
    ]);
    super::flush().await;
    let mine: Vec<u64> = page
        .all("li.msg.mine")
        .iter()
        .filter_map(|li| li.get_attribute("data-offset")?.parse().ok())
        .collect();
    assert_eq!(mine, [1, 3]);
    assert_eq!(page.all("li.msg.mine .sent-state").len(), 2);
    assert_eq!(page.all("li.msg:not(.mine) .sent-state").len(), 0);
}

#[wasm_bindgen_test]
async fn a_replayed_message_is_rendered_once_and_rows_are_not_rebuilt() {
    let page = mount_list(&["lobby"]);
    page.welcome_and_join("lobby", &[ME, "bob"]);
    page.apply([
        message("lobby", 1, "bob", "one", T0),
        message("lobby", 2, ME, "two", T0 + 1000),
        notification(NotificationKind::Joined, Some("carol"), "", T0 + 1500),
        message("lobby", 3, "bob", "three", T0 + 2000),
    ]);
    super::flush().await;
    let before = page.all("ol.messages > li");
    assert_eq!(before.len(), 4);

    // A resume replays what we may have missed; history pages overlap live messages.
    page.apply([
        message("lobby", 2, ME, "two", T0 + 1000),
        message("lobby", 3, "bob", "three", T0 + 2000),
        ServerMsg::History {
            nicks: Default::default(),
            room: "lobby".to_owned(),
            messages: vec![
                chat_message("lobby", 1, "bob", "one", T0),
                chat_message("lobby", 2, ME, "two", T0 + 1000),
            ],
            has_more: false,
        },
    ]);
    page.apply([message("lobby", 3, "bob", "three", T0 + 2000)]);
    super::flush().await;

    for offset in 1..=3 {
        assert_eq!(
            page.all(&format!("li[data-offset=\"{offset}\"]")).len(),
            1,
            "offset {offset}"
        );
    }
    let after = page.all("ol.messages > li");
    assert_eq!(after.len(), 4);
    for (old, new) in before.iter().zip(&after) {
        assert!(old.is_same_node(Some(new)), "a replay rebuilt a row");
    }
}

#[wasm_bindgen_test]
async fn a_burst_of_1000_messages_renders_only_the_newest_window() {
    let page = mount_list(&["lobby"]);
    page.welcome_and_join("lobby", &[ME, "bob", "carol"]);
    super::flush().await;

    // All in one tick, each frame its own store update, like 1000 socket events
    // handled before the browser gets to render.
    let burst = |page: &Page| {
        for offset in 1..=1000u64 {
            let nick = if offset % 3 == 0 { "carol" } else { "bob" };
            page.apply([message(
                "lobby",
                offset,
                nick,
                &format!("message {offset}"),
                T0 + offset * 100,
            )]);
        }
    };
    let start = js_sys::Date::now();
    burst(&page);
    super::flush().await;
    let took = js_sys::Date::now() - start;

    let shown = offsets(&page);
    assert!(shown.len() <= WINDOW, "{} rows rendered", shown.len());
    assert_eq!(shown.last(), Some(&1000));
    let first = 1000 - WINDOW as u64 + 1;
    assert_eq!(shown, (first..=1000).collect::<Vec<_>>());
    assert_eq!(
        page.all("ol.messages > li").len(),
        WINDOW,
        "nothing but the window's message rows"
    );
    let last = page.one("li.msg[data-offset=\"1000\"]");
    assert_eq!(text(&super::one(&last, "p.text")), "message 1000");
    assert!(page.find(".jump-latest").is_none(), "we follow the newest");
    assert_eq!(
        page.chat
            .with_untracked(|s| s.room().map(|r| r.messages.len())),
        Some(1000)
    );
    leptos::logging::log!("1000-message burst applied and rendered in {took} ms");

    // The same burst replayed (a resume after a reconnect) changes nothing on screen.
    burst(&page);
    super::flush().await;
    let again = page.all("li.msg");
    assert_eq!(offsets(&page), (first..=1000).collect::<Vec<_>>());
    assert!(last.is_same_node(again.last().map(AsRef::as_ref)));
}

#[wasm_bindgen_test]
async fn the_typing_line_follows_typing_frames() {
    let page = mount_list(&["lobby", "dev"]);
    page.welcome_and_join("lobby", &[ME, "bob", "carol"]);
    super::flush().await;
    assert_eq!(page.text("p.typing"), "");

    // Frames arrive at a time, as the socket handler applies them; the typing line
    // expires by the connection's clock.
    let now = js_sys::Date::now() as u64;
    let typing = |room: &str, nick: &str| ServerMsg::Typing {
        room: room.to_owned(),
        nick: nick.to_owned(),
    };
    let apply_at = |at: u64, frame: ServerMsg| {
        page.chat.apply(frame, at);
    };
    apply_at(now, typing("lobby", "bob"));
    super::flush().await;
    assert_eq!(page.text("p.typing"), "bob is typing…");
    assert_eq!(
        page.one("p.typing").get_attribute("aria-live").as_deref(),
        Some("off")
    );

    // Our own typing (another tab of ours) and other rooms do not show.
    apply_at(now, typing("lobby", ME));
    apply_at(now, typing("dev", "dave"));
    super::flush().await;
    assert_eq!(page.text("p.typing"), "bob is typing…");

    apply_at(now + 100, typing("lobby", "carol"));
    super::flush().await;
    assert_eq!(page.text("p.typing"), "bob and carol are typing…");

    // A message from bob ends his typing.
    apply_at(now + 200, message("lobby", 1, "bob", "done", T0));
    super::flush().await;
    assert_eq!(page.text("p.typing"), "carol is typing…");

    // Without a new frame the line expires.
    page.conn.clock.set(now + 100 + TYPING_SHOWN_MS);
    super::flush().await;
    assert_eq!(page.text("p.typing"), "");
}

#[wasm_bindgen_test]
async fn switching_rooms_shows_the_other_rooms_messages() {
    let page = mount_list(&["lobby", "dev"]);
    page.apply([
        super::welcome(ME),
        joined("lobby", 0, &[ME]),
        joined("dev", 0, &[ME]),
    ]);
    // Both rooms have offsets 1..=3: offsets are per room.
    for offset in 1..=3 {
        page.apply([
            message(
                "lobby",
                offset,
                "bob",
                &format!("lobby {offset}"),
                T0 + offset,
            ),
            message("dev", offset, "bob", &format!("dev {offset}"), T0 + offset),
        ]);
    }
    super::flush().await;
    let texts =
        |page: &Page| -> Vec<String> { page.all("li.msg p.text").iter().map(text).collect() };
    assert_eq!(texts(&page), ["lobby 1", "lobby 2", "lobby 3"]);

    page.chat.update(Parts::ALL, |s| {
        s.open_room("dev").expect("a valid room");
    });
    super::flush().await;
    assert_eq!(
        texts(&page),
        ["dev 1", "dev 2", "dev 3"],
        "the list shows the room on screen"
    );
}
