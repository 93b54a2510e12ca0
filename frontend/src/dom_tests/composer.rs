//! `Composer`: Enter sends, Shift+Enter is a new line, Esc clears; a sent message
//! shows as pending until its `ack`.

use common::ServerMsg;
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{HtmlTextAreaElement, InputEvent, InputEventInit, KeyboardEvent, KeyboardEventInit};

use super::{flush, mount, text, Page, ME};
use crate::components::{Composer, MessageList};

/// The list and the composer, as in the room's `<main>`, welcomed and in `lobby`.
fn mount_room() -> Page {
    let page = mount(&["lobby"], || {
        view! {
            <MessageList />
            <Composer />
        }
    });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    page
}

fn field(page: &Page) -> HtmlTextAreaElement {
    page.one("form.composer textarea[name=message]")
        .dyn_into()
        .expect("a textarea")
}

/// Types `value` into the field: sets it and fires `input`, as the browser does.
fn type_text(page: &Page, value: &str) {
    let field = field(page);
    field.set_value(value);
    let init = InputEventInit::new();
    init.set_bubbles(true);
    init.set_input_type("insertText");
    init.set_data(Some(value));
    let ev = InputEvent::new_with_event_init_dict("input", &init).expect("an input event");
    field.dispatch_event(&ev).expect("dispatch input");
}

/// Presses `key` in the field; returns whether the app prevented the default action.
fn press(page: &Page, key: &str, shift: bool, composing: bool) -> bool {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_is_composing(composing);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let ev = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).expect("a keydown");
    field(page).dispatch_event(&ev).expect("dispatch keydown");
    ev.default_prevented()
}

fn pending_ids(page: &Page) -> Vec<String> {
    page.chat.with_untracked(|s| {
        s.room()
            .expect("a room on screen")
            .pending
            .keys()
            .cloned()
            .collect()
    })
}

#[wasm_bindgen_test]
async fn enter_sends_and_the_ack_turns_the_pending_row_into_a_sent_one() {
    let page = mount_room();
    flush().await;
    assert!(page.find("li.empty").is_some());

    type_text(&page, "hello there");
    flush().await;
    assert!(
        press(&page, "Enter", false, false),
        "Enter must not add a newline"
    );
    flush().await;

    // No socket is open, so it stays pending.
    let ids = pending_ids(&page);
    assert_eq!(ids.len(), 1);
    let row = page.one("li.pending");
    let class = row.class_name();
    assert!(class.contains("msg") && class.contains("mine"), "{class}");
    assert_eq!(row.get_attribute("data-id"), Some(ids[0].clone()));
    assert_eq!(text(&super::one(&row, ".nick")), ME);
    assert_eq!(text(&super::one(&row, ".send-state")), "sending…");
    assert_eq!(text(&super::one(&row, "p.text")), "hello there");
    assert!(page.find("li.empty").is_none());
    assert_eq!(
        field(&page).value(),
        "",
        "the field is cleared after sending"
    );

    page.apply([ServerMsg::Ack {
        id: ids[0].clone(),
        room: "lobby".to_owned(),
        offset: 7,
    }]);
    flush().await;
    assert!(page.find("li.pending").is_none(), "the pending row is gone");
    assert!(pending_ids(&page).is_empty());
    let sent = page.one("li.msg.mine[data-offset=\"7\"]");
    assert_eq!(text(&super::one(&sent, ".sent-state")), "✓ sent");
    assert_eq!(text(&super::one(&sent, "p.text")), "hello there");
    assert_eq!(text(&super::one(&sent, ".nick")), ME);

    // The echo of our own message arrives after the ack: still one row.
    page.apply([ServerMsg::Message(common::ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: "lobby".to_owned(),
        offset: 7,
        id: ids[0].clone(),
        nick: ME.to_owned(),
        text: "hello there".to_owned(),
        ts: super::T0,
        user: Some(format!("u:{ME}")),
    })]);
    flush().await;
    assert_eq!(page.all("ol.messages > li").len(), 1);
    assert_eq!(page.all("li[data-offset=\"7\"]").len(), 1);
}

#[wasm_bindgen_test]
async fn shift_enter_composition_enter_and_blank_text_do_not_send() {
    let page = mount_room();
    type_text(&page, "line one");
    flush().await;

    assert!(
        !press(&page, "Enter", true, false),
        "Shift+Enter keeps its default: a newline"
    );
    // An input method confirming a word with Enter.
    assert!(!press(&page, "Enter", false, true));
    flush().await;
    assert!(pending_ids(&page).is_empty());
    assert!(page.find("li.pending").is_none());
    assert_eq!(field(&page).value(), "line one");

    // The browser inserts the newline; the field grows with the lines.
    type_text(&page, "line one\nline two");
    flush().await;
    assert_eq!(field(&page).get_attribute("rows").as_deref(), Some("2"));

    type_text(&page, "   \n ");
    flush().await;
    press(&page, "Enter", false, false);
    flush().await;
    assert!(pending_ids(&page).is_empty(), "blank text is not sent");
    assert!(page.find("li.pending").is_none());
}

#[wasm_bindgen_test]
async fn escape_clears_the_draft() {
    let page = mount_room();
    type_text(&page, "never mind");
    flush().await;
    press(&page, "Escape", false, false);
    flush().await;
    assert_eq!(field(&page).value(), "");
    assert_eq!(field(&page).get_attribute("rows").as_deref(), Some("1"));

    // Cleared means cleared: Enter now sends nothing.
    press(&page, "Enter", false, false);
    flush().await;
    assert!(pending_ids(&page).is_empty());
    assert!(page.find("li.pending").is_none());
}
