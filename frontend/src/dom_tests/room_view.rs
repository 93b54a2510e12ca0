//! The room view as `App` lays it out: the sidebar, the list and the composer side by
//! side, shown only while we are welcomed. What is tested here is what happens between
//! them: where the keyboard focus goes, and unmounting the view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use common::{ErrorCode, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Element, HtmlElement};

use super::{flush, message, mount, next_frame, Page, ME, T0};
use crate::components::{Composer, MessageList, NickForm, Sidebar};
use crate::state::Parts;
use crate::store::Store;

/// The element that has the keyboard focus.
fn focused() -> Option<Element> {
    web_sys::window()?.document()?.active_element()
}

fn is_focused(el: &Element) -> bool {
    focused().is_some_and(|f| f.is_same_node(Some(el)))
}

/// Waits until the frame callbacks of the changes so far have run.
async fn settle() {
    flush().await;
    next_frame().await;
    next_frame().await;
}

#[wasm_bindgen_test]
async fn new_messages_do_not_pull_the_focus_into_the_composer() {
    let page = mount(&["lobby"], || {
        view! {
            <Sidebar />
            <MessageList />
            <Composer />
        }
    });
    page.welcome_and_join("lobby", &[ME, "bob"]);
    settle().await;
    let composer = page.one("form.composer textarea");
    assert!(is_focused(&composer), "the composer has the focus at first");

    // The person starts typing a room name into the sidebar's field…
    let room_field = page.one("form.join-room input[name=room]");
    room_field
        .unchecked_ref::<HtmlElement>()
        .focus()
        .expect("focus the room field");
    assert!(is_focused(&room_field));

    // …while the conversation goes on.
    page.apply([
        message("lobby", 1, "bob", "anyone here?", T0),
        message("lobby", 2, "bob", "hello?", T0 + 1000),
    ]);
    settle().await;
    assert!(
        is_focused(&room_field),
        "a new message moved the focus to {:?}",
        focused().map(|f| f.outer_html())
    );

    // A new room on screen is where the focus is meant to jump to the composer.
    page.chat.update(Parts::ALL, |s| {
        s.open_room("dev").expect("a valid room");
    });
    settle().await;
    assert!(
        is_focused(&composer),
        "opening a room focuses the composer, not {:?}",
        focused().map(|f| f.outer_html())
    );
}

/// Whether anything panicked since [`watch_panics`] was last called.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Starts recording panics (in addition to reporting them as before). A panic in a
/// browser callback is not one of a test's own, so a test cannot fail by it directly.
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
    });
    PANICKED.store(false, Ordering::SeqCst);
}

/// Like `App`: the nick form until we are welcomed, then the room.
fn mount_app_like() -> Page {
    mount(&["lobby"], || {
        let chat = expect_context::<Store>();
        view! {
            <Show when=move || chat.with(Parts::SESSION, |s| s.me.is_some()) fallback=|| view! { <NickForm /> }>
                <MessageList />
                <Composer />
            </Show>
        }
    })
}

/// After a reconnect the server may refuse our nick (the session expired and someone
/// else took the nick): the room view is replaced by the nick form. If the store changed
/// shortly before, the list's scroll fix-up and the composer's focus are still waiting
/// for the next frame. In a hidden tab frames do not run at all, so they wait until the
/// person comes back, however long the view has been gone.
#[wasm_bindgen_test]
async fn the_room_view_can_go_away_with_frame_work_pending() {
    let page = mount_app_like();
    page.welcome_and_join("lobby", &[ME, "bob"]);
    settle().await;
    assert!(page.find("ol.messages").is_some());

    page.apply([message("lobby", 1, "bob", "hi", T0)]);
    flush().await;
    page.apply([ServerMsg::Error {
        code: ErrorCode::NickTaken,
        message: "That nick is taken".to_owned(),
        reference: Some("hello".to_owned()),
    }]);
    flush().await;
    assert!(page.find("ol.messages").is_none(), "the room view is gone");
    assert!(page.find("form.nick-form").is_some());

    watch_panics();
    next_frame().await;
    next_frame().await;
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a frame callback of the unmounted room view panicked (see the log above)"
    );
}
