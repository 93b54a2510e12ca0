//! `Sidebar`: the joined rooms with their unread counts, and the room directory.

use common::{RoomInfo, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::HtmlElement;

use super::{flush, joined, message, mount, text, Page, ME, T0};
use crate::components::Sidebar;
use crate::state::Parts;

/// The sidebar with `lobby` on screen and `dev` joined as well, both opened the way the
/// app opens rooms.
fn mount_two_rooms() -> Page {
    let page = mount(&["lobby"], || view! { <Sidebar /> });
    page.welcome_and_join("lobby", &[ME]);
    page.chat.update(Parts::ALL, |s| {
        s.open_room("dev").expect("a valid room");
    });
    page.apply([joined("dev", 0, &[ME, "bob"])]);
    page.chat.update(Parts::ALL, |s| {
        s.open_room("lobby").expect("a valid room");
    });
    page
}

#[wasm_bindgen_test]
async fn unread_messages_of_a_room_not_on_screen_are_counted() {
    let page = mount_two_rooms();
    flush().await;
    // Rows are keyed by room name: a changing count updates the row it is in.
    let dev_row = page.one(".room-item[data-room=dev]");
    let names: Vec<_> = page
        .all("ul.joined-rooms > li.room-item")
        .iter()
        .map(|li| li.get_attribute("data-room").unwrap_or_default())
        .collect();
    assert_eq!(names, ["dev", "lobby"]);
    assert!(page.find(".unread").is_none());

    page.apply([
        message("dev", 1, "bob", "one", T0),
        message("dev", 2, "bob", "two", T0 + 1000),
        // Replayed: counted once.
        message("dev", 2, "bob", "two", T0 + 1000),
        // Ours (from another tab): not unread.
        message("dev", 3, ME, "three", T0 + 2000),
        // On screen: not unread.
        message("lobby", 1, "bob", "here", T0 + 3000),
    ]);
    flush().await;

    let badge = page.one(".room-item[data-room=dev] .unread");
    assert_eq!(text(&badge), "2");
    assert!(
        dev_row.is_same_node(Some(&page.one(".room-item[data-room=dev]"))),
        "the row was remounted for a new unread count"
    );
    assert_eq!(
        badge.get_attribute("aria-label").as_deref(),
        Some("2 unread")
    );
    assert!(page.find(".room-item[data-room=lobby] .unread").is_none());
    let lobby = page.one(".room-item[data-room=lobby]");
    assert!(lobby.class_list().contains("current"));
    assert_eq!(
        page.one(".room-item[data-room=lobby] a.room-link")
            .get_attribute("aria-current")
            .as_deref(),
        Some("page")
    );
    let dev_link = page.one(".room-item[data-room=dev] a.room-link");
    assert_eq!(dev_link.get_attribute("aria-current"), None);
    assert_eq!(dev_link.get_attribute("href").as_deref(), Some("#/r/dev"));
    assert!(!page
        .one(".room-item[data-room=dev]")
        .class_list()
        .contains("current"));

    // Opening the room reads it.
    page.chat.update(Parts::ALL, |s| {
        s.open_room("dev").expect("a valid room");
    });
    flush().await;
    assert!(page.find(".unread").is_none());
    assert!(page
        .one(".room-item[data-room=dev]")
        .class_list()
        .contains("current"));
}

#[wasm_bindgen_test]
async fn the_leave_button_removes_the_room() {
    let page = mount_two_rooms();
    flush().await;
    page.one(".room-item[data-room=dev] button.leave-room")
        .unchecked_into::<HtmlElement>()
        .click();
    flush().await;
    assert!(page.find(".room-item[data-room=dev]").is_none());
    assert_eq!(page.all(".room-item").len(), 1);
    assert!(page.chat.with_untracked(|s| !s.rooms.contains_key("dev")));
}

#[wasm_bindgen_test]
async fn all_rooms_lists_the_rooms_frame() {
    let page = mount_two_rooms();
    let info = |room: &str, members: u64| RoomInfo {
        room: room.to_owned(),
        members,
        head: 0,
    };
    page.apply([ServerMsg::Rooms {
        rooms: vec![info("dev", 2), info("lobby", 5), info("rust & wasm", 1)],
        total: 3,
        next: None,
    }]);
    flush().await;

    let entries: Vec<(String, String)> = page
        .all("ul.all-rooms > li > button.open-room")
        .iter()
        .map(|b| {
            (
                b.get_attribute("data-room").unwrap_or_default(),
                text(&super::one(b, ".members")),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("dev".to_owned(), "2".to_owned()),
            ("lobby".to_owned(), "5".to_owned()),
            ("rust & wasm".to_owned(), "1".to_owned()),
        ]
    );
    assert_eq!(
        text(&page.one("button.open-room[data-room=lobby]")),
        "#lobby5"
    );

    assert!(
        page.all("button.more-rooms").is_empty(),
        "one page holds them all"
    );

    // A later frame replaces the list; when the server has more, a button says so.
    page.apply([ServerMsg::Rooms {
        rooms: vec![info("lobby", 6)],
        total: 120,
        next: Some("1".to_owned()),
    }]);
    flush().await;
    assert_eq!(page.all("ul.all-rooms > li").len(), 1);
    assert_eq!(page.text("button.open-room[data-room=lobby] .members"), "6");
    assert_eq!(page.text("button.more-rooms"), "More rooms (119)");
}
