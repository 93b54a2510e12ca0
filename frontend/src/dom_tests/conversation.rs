//! The conversation in the DOM: "(edited)", "message deleted", reaction chips (who
//! reacted, ours highlighted), a reply's quote, and the keyboard: Up in the empty
//! composer edits our last message in place, Enter saves, Esc cancels. An entry wakes
//! its own row and leaves the others' nodes alone.

use common::{Deleted, Edited, Reacted, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Element, HtmlElement, HtmlTextAreaElement, KeyboardEvent, KeyboardEventInit};

use super::{chat_message, flush, mount, next_frame, text, Page, ME, T0};
use crate::components::{Composer, MessageList};

const THUMBS: &str = "\u{1f44d}";

/// The list and the composer, welcomed as [`ME`] (`u:alice`) in `lobby`, which holds
/// bob's messages 1 and 2, ours (3), and bob's reply to 1 (4).
fn mount_room() -> Page {
    let page = mount(&["lobby"], || {
        view! {
            <MessageList />
            <Composer />
        }
    });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    let mut reply = chat_message("lobby", 4, "bob", "yes, see above", T0 + 4000);
    reply.reply_to = Some(1);
    page.apply([ServerMsg::History {
        room: "lobby".to_owned(),
        messages: vec![
            chat_message("lobby", 1, "bob", "shall we ship on friday?", T0),
            chat_message("lobby", 2, "bob", "second", T0 + 1000),
            chat_message("lobby", 3, ME, "my typo", T0 + 2000),
            reply,
        ],
        has_more: false,
        nicks: Default::default(),
    }]);
    page
}

fn row(page: &Page, offset: u64) -> Element {
    page.one(&format!("li.msg[data-offset=\"{offset}\"]"))
}

/// Presses `key` on `el`; returns whether the app prevented the default action.
fn press(el: &Element, key: &str) -> bool {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let ev = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).expect("a keydown");
    el.dispatch_event(&ev).expect("dispatch keydown");
    ev.default_prevented()
}

/// Marks a node, to tell later whether it is still the same node (not re-rendered).
fn mark(el: &Element) {
    js_sys::Reflect::set(el, &JsValue::from_str("__mark"), &JsValue::TRUE).expect("set");
}

fn marked(el: &Element) -> bool {
    js_sys::Reflect::get(el, &JsValue::from_str("__mark")).is_ok_and(|v| v.is_truthy())
}

fn click(el: &Element) {
    el.dyn_ref::<HtmlElement>().expect("an element").click();
}

#[wasm_bindgen_test]
async fn entries_show_in_place_and_wake_only_their_row() {
    let page = mount_room();
    flush().await;
    // The reply quotes its original: author and the start of its text; clicking it
    // highlights the original.
    let quote = super::one(&row(&page, 4), ".reply-quote");
    assert_eq!(text(&super::one(&quote, ".quote-nick")), "bob");
    assert_eq!(
        text(&super::one(&quote, ".quote-text")),
        "shall we ship on friday?"
    );
    let one_text = super::one(&row(&page, 1), "p.text");
    let two_text = super::one(&row(&page, 2), "p.text");
    mark(&one_text);
    mark(&two_text);
    mark(&row(&page, 2));

    page.apply([ServerMsg::Reacted(Reacted {
        room: "lobby".to_owned(),
        offset: 5,
        target: 1,
        emoji: THUMBS.to_owned(),
        user: "u:carol".to_owned(),
        on: true,
        ts: T0 + 5000,
        nick: "carol".to_owned(),
    })]);
    flush().await;
    let chip = super::one(&row(&page, 1), "button.reaction");
    assert_eq!(text(&chip), format!("{THUMBS}1"));
    assert_eq!(chip.get_attribute("title").as_deref(), Some("carol"));
    assert_eq!(
        chip.get_attribute("aria-label"),
        Some(format!("{THUMBS} 1: carol"))
    );
    assert_eq!(chip.get_attribute("aria-pressed").as_deref(), Some("false"));
    assert!(
        marked(&super::one(&row(&page, 1), "p.text")),
        "a reaction leaves the text alone"
    );

    // Clicking the chip adds ours, highlighted, at once.
    click(&chip);
    flush().await;
    let chip = super::one(&row(&page, 1), "button.reaction");
    assert_eq!(text(&chip), format!("{THUMBS}2"));
    assert!(chip.class_list().contains("mine"));
    assert_eq!(chip.get_attribute("title").as_deref(), Some("carol, alice"));

    page.apply([
        ServerMsg::Edited(Edited {
            room: "lobby".to_owned(),
            offset: 6,
            target: 1,
            text: "shall we ship on monday?".to_owned(),
            user: "u:bob".to_owned(),
            ts: T0 + 6000,
        }),
        ServerMsg::Deleted(Deleted {
            room: "lobby".to_owned(),
            offset: 7,
            target: 3,
            user: ME.to_owned(),
            ts: T0 + 7000,
        }),
    ]);
    flush().await;
    assert_eq!(
        text(&super::one(&row(&page, 1), "p.text")),
        "shall we ship on monday?"
    );
    assert_eq!(text(&super::one(&row(&page, 1), ".edited")), "(edited)");
    assert_eq!(
        text(&super::one(&quote, ".quote-text")),
        "shall we ship on monday?",
        "the quote follows the edit"
    );
    let three = row(&page, 3);
    assert!(three.class_list().contains("deleted"));
    assert_eq!(text(&super::one(&three, ".tombstone")), "message deleted");
    assert!(three.query_selector("p.text").unwrap().is_none());
    // Its actions stay in the row, hidden by the style sheet (`.msg.deleted`).
    // Rows the entries did not name are the very same nodes.
    assert!(marked(&row(&page, 2)) && marked(&super::one(&row(&page, 2), "p.text")));
    assert_eq!(page.all("li.msg").len(), 4, "entries make no rows");
}

#[wasm_bindgen_test]
async fn up_in_the_empty_composer_edits_our_last_message_in_place() {
    let page = mount_room();
    flush().await;
    let composer: Element = page.one("form.composer textarea[name=message]");
    assert!(press(&composer, "ArrowUp"), "Up opens the editor");
    flush().await;
    next_frame().await;
    let field: HtmlTextAreaElement = super::one(&row(&page, 3), "textarea.edit-field")
        .dyn_into()
        .expect("a textarea");
    assert_eq!(field.value(), "my typo");
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    assert_eq!(
        active,
        Some(field.clone().unchecked_into()),
        "focus is in it"
    );
    // Esc cancels.
    assert!(press(&field, "Escape"));
    flush().await;
    assert!(page.find("textarea.edit-field").is_none());
    assert_eq!(text(&super::one(&row(&page, 3), "p.text")), "my typo");
    // Again, and Enter saves: shown at once, "(edited)".
    press(&composer, "ArrowUp");
    flush().await;
    let field: HtmlTextAreaElement = page.one("textarea.edit-field").dyn_into().unwrap();
    field.set_value("my text");
    field
        .dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    assert!(press(&field, "Enter"));
    flush().await;
    assert!(page.find("textarea.edit-field").is_none());
    assert_eq!(text(&super::one(&row(&page, 3), "p.text")), "my text");
    assert_eq!(text(&super::one(&row(&page, 3), ".edited")), "(edited)");
    // Bob's messages offer no edit.
    assert!(row(&page, 2).query_selector(".act-edit").unwrap().is_none());
    assert!(row(&page, 3).query_selector(".act-edit").unwrap().is_some());
}

#[wasm_bindgen_test]
async fn the_picker_offers_the_fixed_reactions_and_reply_shows_above_the_composer() {
    let page = mount_room();
    flush().await;
    click(&super::one(&row(&page, 2), ".act-react"));
    flush().await;
    let picks = super::all(&row(&page, 2), ".reaction-picker button.pick");
    let offered: Vec<String> = picks.iter().map(text).collect();
    assert_eq!(offered, common::validate::REACTIONS.map(str::to_owned));
    click(&picks[0]);
    flush().await;
    assert!(
        page.find(".reaction-picker").is_none(),
        "closed after picking"
    );
    let chip = super::one(&row(&page, 2), "button.reaction.mine");
    assert_eq!(chip.get_attribute("aria-pressed").as_deref(), Some("true"));

    click(&super::one(&row(&page, 2), ".act-reply"));
    flush().await;
    let bar = page.one(".reply-bar");
    assert_eq!(text(&super::one(&bar, ".quote-nick")), "bob");
    assert_eq!(text(&super::one(&bar, ".quote-text")), "second");
    click(&super::one(&bar, ".reply-cancel"));
    flush().await;
    assert!(page.find(".reply-bar").is_none());

    // Delete asks first.
    click(&super::one(&row(&page, 3), ".act-delete"));
    flush().await;
    assert!(!row(&page, 3).class_list().contains("deleted"));
    click(&super::one(&row(&page, 3), ".confirm-yes"));
    flush().await;
    assert_eq!(
        text(&super::one(&row(&page, 3), ".tombstone")),
        "message deleted"
    );
}
