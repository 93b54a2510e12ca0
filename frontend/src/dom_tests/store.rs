//! The store wakes only what a change touched: what reads the conversation does not
//! re-run for typing, presence or the directory.

use std::cell::Cell;
use std::rc::Rc;

use common::{RoomInfo, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

use super::{flush, message, mount, ME, T0};
use crate::state::Parts;

#[wasm_bindgen_test]
async fn typing_presence_and_the_directory_do_not_rerun_the_conversation() {
    let page = mount(&["lobby"], || ());
    page.welcome_and_join("lobby", &[ME, "bob"]);
    flush().await;
    // Counts the runs of one reader of each part, as the components read them.
    let runs = |parts: Parts| {
        let count = Rc::new(Cell::new(0u32));
        let seen = Rc::clone(&count);
        let chat = page.chat;
        Effect::new(move |_| {
            chat.with(parts, |s| s.room().map(|r| r.rows().len()));
            seen.set(seen.get() + 1);
        });
        count
    };
    let conversation = runs(Parts::MESSAGES);
    let typing = runs(Parts::TYPING);
    flush().await;
    let (c0, t0) = (conversation.get(), typing.get());

    page.apply([ServerMsg::Typing {
        room: "lobby".to_owned(),
        nick: "bob".to_owned(),
    }]);
    page.apply([ServerMsg::Presence {
        room: "lobby".to_owned(),
        nicks: vec![ME.to_owned(), "bob".to_owned(), "carol".to_owned()],
    }]);
    page.apply([ServerMsg::Rooms {
        rooms: vec![RoomInfo {
            room: "lobby".to_owned(),
            members: 3,
            head: 0,
        }],
        total: 1,
        next: None,
    }]);
    flush().await;
    assert_eq!(conversation.get(), c0, "the conversation re-ran");
    assert_eq!(
        typing.get(),
        t0 + 1,
        "the typing line ran once, for the typing frame"
    );

    // A message is the conversation's business (and ends bob's typing).
    page.apply([message("lobby", 1, "bob", "hi", T0)]);
    flush().await;
    assert_eq!(conversation.get(), c0 + 1);
    assert_eq!(typing.get(), t0 + 2);
}
