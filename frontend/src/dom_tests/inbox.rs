//! Notifications on the page (issue 13): the bell's count, its inbox list, reads from
//! another tab, "Mark all read", the room's level select, and messages that name us.
//! The selectors here are the ones the end-to-end browser tests use.

use common::{Alert, AlertKind, InboxState, Limits, MemberRoom, NotifyLevel, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::HtmlElement;

use super::{flush, message, mount, text, ME, T0};
use crate::components::{Bell, MessageList, RoomNotify};

fn click(el: &web_sys::Element) {
    el.unchecked_ref::<HtmlElement>().click();
}

fn alert(seq: u64, room: &str, offset: u64) -> Alert {
    Alert {
        seq,
        kind: AlertKind::Mention,
        title: format!("bob in #{room}"),
        body: format!("@{ME} number {seq}"),
        room: Some(room.to_owned()),
        offset: Some(offset),
        url: None,
        ts: T0 + seq,
        read: false,
    }
}

fn welcome(unread: u64, rooms: Vec<MemberRoom>) -> ServerMsg {
    ServerMsg::Welcome {
        nick: ME.to_owned(),
        session: "session-token".to_owned(),
        server: "test".to_owned(),
        limits: Limits::default(),
        user: format!("u:{ME}"),
        rooms,
        inbox: InboxState { head: 2, unread },
        quiet: None,
    }
}

#[wasm_bindgen_test]
async fn the_bell_counts_unread_alerts_and_lists_them_newest_first() {
    let page = mount(&["lobby"], || view! { <Bell /> });
    page.apply([welcome(2, Vec::new())]);
    flush().await;
    assert_eq!(
        page.one("#bell").get_attribute("data-unread").as_deref(),
        Some("2")
    );
    assert_eq!(page.text("#bell .bell-count"), "2");
    assert!(page.find("#inbox").is_none());

    page.apply([ServerMsg::Inbox {
        alerts: vec![alert(1, "dev", 3), alert(2, "lobby", 8)],
        head: 2,
        unread: 2,
    }]);
    click(&page.one("#bell"));
    flush().await;
    let items = page.all("#inbox .alert-item");
    let seqs: Vec<_> = items
        .iter()
        .map(|li| li.get_attribute("data-seq").unwrap_or_default())
        .collect();
    assert_eq!(seqs, ["2", "1"]);
    assert_eq!(page.all("#inbox .alert-item.not-read").len(), 2);
    assert!(text(&items[0]).contains("bob in #lobby"));

    // Read up to 1 in another tab.
    page.apply([ServerMsg::AlertRead { seq: 1 }]);
    flush().await;
    assert_eq!(page.all("#inbox .alert-item.not-read").len(), 1);
    assert_eq!(page.text("#bell .bell-count"), "1");

    click(&page.one("#mark-all-read"));
    flush().await;
    assert!(page.find("#inbox .alert-item.not-read").is_none());
    assert!(page.find("#bell .bell-count").is_none());
    assert_eq!(
        page.one("#bell").get_attribute("data-unread").as_deref(),
        Some("0")
    );
}

#[wasm_bindgen_test]
async fn the_room_level_select_shows_and_follows_the_rooms_setting() {
    let page = mount(&["dev"], || view! { <RoomNotify /> });
    let dev = MemberRoom {
        owner: None,
        room: "dev".to_owned(),
        head: 0,
        epoch: "epoch-1".to_owned(),
        read: 0,
        unread: 0,
        mentions: 0,
        private: false,
        dm: None,
        dm_nick: None,
        notify: NotifyLevel::All,
    };
    page.apply([welcome(0, vec![dev])]);
    flush().await;
    let select = page.one("select.room-notify");
    let value = || select.unchecked_ref::<web_sys::HtmlSelectElement>().value();
    assert_eq!(value(), "all");
    page.apply([ServerMsg::RoomNotify {
        room: "dev".to_owned(),
        level: NotifyLevel::Nothing,
    }]);
    flush().await;
    assert_eq!(value(), "nothing");
}

#[wasm_bindgen_test]
async fn a_message_that_names_us_stands_out() {
    let page = mount(&["lobby"], || view! { <MessageList /> });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    page.apply([
        message("lobby", 1, "bob", "hello everyone", T0),
        message("lobby", 2, "bob", "@alice can you look?", T0 + 1),
        message("lobby", 3, ME, "looking, alice here", T0 + 2),
    ]);
    flush().await;
    let named: Vec<_> = page
        .all("li.msg.mentions-me")
        .iter()
        .map(|li| li.get_attribute("data-offset").unwrap_or_default())
        .collect();
    // Our own message naming ourselves is not a mention.
    assert_eq!(named, ["2"]);
}
