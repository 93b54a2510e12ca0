//! The member list of a crowd: the first page with everyone counted, "Show more" for
//! the next pages, rows kept (keyed by nick) as pages arrive; a small room as before.

use common::ServerMsg;
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::HtmlButtonElement;

use super::{flush, joined, mount, text, welcome, ME};
use crate::components::Presence;

fn names(page: &super::Page) -> Vec<String> {
    page.all(".presence li bdi").iter().map(text).collect()
}

#[wasm_bindgen_test]
async fn a_small_room_lists_everyone_and_offers_no_more() {
    let page = mount(&["lobby"], || view! { <Presence /> });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    flush().await;
    assert_eq!(names(&page), [ME, "bob"]);
    assert_eq!(page.text(".presence .count"), "2");
    assert!(page.find(".more-members").is_none());
}

#[wasm_bindgen_test]
async fn a_crowd_shows_its_first_page_and_everyone_counted_and_pages_in_more() {
    let page = mount(&["hall"], || view! { <Presence /> });
    let ServerMsg::Joined {
        room,
        head,
        epoch,
        nicks,
        recovered,
        ..
    } = joined("hall", 0, &["alice", "amy", "bob"])
    else {
        unreachable!("joined() builds a joined frame")
    };
    let first = ServerMsg::Joined {
        room,
        head,
        epoch,
        nicks,
        recovered,
        members: Some(5),
        next: Some("bob".to_owned()),
    };
    page.apply([welcome(ME), first]);
    flush().await;
    assert_eq!(names(&page), ["alice", "amy", "bob"]);
    assert_eq!(page.text(".presence .count"), "5", "everyone, not the rows");
    let more: HtmlButtonElement = page.one(".more-members").unchecked_into();
    assert_eq!(
        more.text_content().unwrap_or_default(),
        "Show more (3 of 5)"
    );
    let kept = page.all(".presence li").remove(0);
    more.click();
    flush().await;
    let waiting: HtmlButtonElement = page.one(".more-members").unchecked_into();
    assert!(waiting.disabled(), "one page at a time");

    page.apply([ServerMsg::Members {
        room: "hall".to_owned(),
        nicks: vec!["carl".to_owned(), "dora".to_owned()],
        total: 5,
        next: None,
    }]);
    flush().await;
    assert_eq!(names(&page), ["alice", "amy", "bob", "carl", "dora"]);
    assert!(
        page.all(".presence li")[0].is_same_node(Some(&kept)),
        "rows already shown stay (keyed by nick)"
    );
    assert!(page.find(".more-members").is_none(), "the last page");
}
