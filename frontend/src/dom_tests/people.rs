//! People (v2) on the page: the sign-in tabs, private rooms and direct messages in the
//! sidebar, and the sender menu that opens a direct message. The selectors here are
//! the ones the end-to-end browser tests use.

use common::{ErrorCode, Limits, MemberRoom, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{HtmlButtonElement, HtmlElement};

use super::{flush, message, mount, text, ME, T0};
use crate::components::{MessageList, Sidebar, SignIn};

fn click(el: &web_sys::Element) {
    el.unchecked_ref::<HtmlElement>().click();
}

#[wasm_bindgen_test]
async fn the_sign_in_screen_has_three_tabs_and_the_guest_one_can_be_turned_off() {
    let page = mount(&["lobby"], || view! { <SignIn /> });
    flush().await;
    for id in ["#tab-guest", "#tab-login", "#tab-register"] {
        page.one(id);
    }
    assert_eq!(
        page.one("#tab-guest")
            .get_attribute("aria-selected")
            .as_deref(),
        Some("true")
    );
    page.one("#nick");

    click(&page.one("#tab-login"));
    flush().await;
    assert!(page.find("#nick").is_none());
    for id in [
        "#login-form",
        "#login-user",
        "#login-password",
        "#login-submit",
        "#login-error",
    ] {
        page.one(id);
    }
    // A name that cannot be an account is refused before anything is sent.
    let field = page.one("#login-user");
    field
        .unchecked_ref::<web_sys::HtmlInputElement>()
        .set_value("Not Valid!");
    field
        .dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    click(&page.one("#login-submit"));
    flush().await;
    assert!(page
        .text("#login-error")
        .contains("cannot be in a user name"));

    click(&page.one("#tab-register"));
    flush().await;
    page.one("#register-password");

    page.apply([ServerMsg::error(
        ErrorCode::GuestsDisabled,
        "guests are disabled",
        Some("hello".to_owned()),
    )]);
    flush().await;
    let guest = page.one("#tab-guest");
    assert!(guest.unchecked_ref::<HtmlButtonElement>().disabled());
    page.one("#guests-disabled");

    page.apply([ServerMsg::error(
        ErrorCode::InvalidToken,
        "expired",
        Some("hello".to_owned()),
    )]);
    flush().await;
    assert_eq!(
        page.text("#sign-in-notice"),
        "Your sign-in expired, sign in again."
    );
}

#[wasm_bindgen_test]
async fn private_rooms_and_direct_messages_are_listed_with_their_badges() {
    let page = mount(&["lobby"], || view! { <Sidebar /> });
    let room = |name: &str, unread, mentions| MemberRoom {
        owner: None,
        room: name.to_owned(),
        head: 10,
        epoch: "epoch-1".to_owned(),
        read: 10 - unread,
        unread,
        mentions,
        private: false,
        dm: None,
        dm_nick: None,
        notify: Default::default(),
    };
    let mut secret = room("secret", 3, 1);
    secret.private = true;
    let mut dm = room("dm-1", 2, 0);
    dm.private = true;
    dm.dm = Some("u:bob".to_owned());
    dm.dm_nick = Some("bob".to_owned());
    page.apply([ServerMsg::Welcome {
        nick: ME.to_owned(),
        session: "s".to_owned(),
        server: "test".to_owned(),
        limits: Limits::default(),
        user: format!("u:{ME}"),
        rooms: vec![secret, dm],
        inbox: Default::default(),
        quiet: None,
    }]);
    flush().await;
    let row = page.one(".joined-rooms .room-item[data-room=secret]");
    assert_eq!(row.get_attribute("data-unread").as_deref(), Some("3"));
    assert_eq!(row.get_attribute("data-mentions").as_deref(), Some("1"));
    page.one(".room-item[data-room=secret] .lock");
    assert_eq!(page.text(".room-item[data-room=secret] .unread"), "3");
    assert_eq!(page.text(".room-item[data-room=secret] .mention"), "@1");
    assert!(page
        .find(".joined-rooms .room-item[data-room=dm-1]")
        .is_none());
    let dm_row = page.one("#dm-section .dm-rooms .room-item.dm[data-room=dm-1]");
    assert_eq!(dm_row.get_attribute("data-user").as_deref(), Some("u:bob"));
    assert!(text(&dm_row).contains("bob"));

    // Read in another tab: the badge goes, in place.
    page.apply([ServerMsg::Read {
        room: "secret".to_owned(),
        offset: 10,
    }]);
    flush().await;
    assert!(page.find(".room-item[data-room=secret] .unread").is_none());
    assert!(page.find(".room-item[data-room=secret] .mention").is_none());
    page.one("#new-room");
}

#[wasm_bindgen_test]
async fn a_senders_name_offers_a_direct_message() {
    let page = mount(&["lobby"], || view! { <MessageList /> });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    page.apply([
        message("lobby", 1, "bob", "hi", T0),
        message("lobby", 2, ME, "hello", T0 + 1),
    ]);
    flush().await;
    // Our own name is no button.
    assert_eq!(page.all("li.msg .sender").len(), 1);
    let sender = page.one("li.msg[data-offset=\"1\"] .sender");
    assert_eq!(sender.get_attribute("data-user").as_deref(), Some("u:bob"));
    assert_eq!(page.text("li.msg[data-offset=\"1\"] .nick"), "bob");
    let avatar = page.one("li.msg[data-offset=\"1\"] .avatar");
    assert_eq!(avatar.get_attribute("data-letter").as_deref(), Some("B"));
    assert_eq!(text(&avatar), "", "the avatar adds no text");
    click(&sender);
    flush().await;
    assert_eq!(page.text(".message-user"), "Message bob");
}
