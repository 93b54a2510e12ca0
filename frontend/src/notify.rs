//! The browser around the page: the tab's visibility and title, and desktop
//! notifications for mentions (the Notification API, asked for only when the person
//! clicks "Enable notifications", never on load).

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

use crate::state::{Alert, ChatState, Parts};
use crate::store::Store;

/// Whether the browser has the Notification API at all (it is missing in some
/// embedded browsers and on insecure origins in others).
fn supported() -> bool {
    js_sys::Reflect::has(&window(), &JsValue::from_str("Notification")).unwrap_or(false)
}

/// Whether to offer the "Enable notifications" button: supported and not decided yet.
pub(crate) fn can_ask() -> bool {
    supported() && Notification::permission() == NotificationPermission::Default
}

/// Asks for permission (must run in a click handler); `done` runs with the answer.
pub(crate) fn ask(done: impl FnOnce() + 'static) {
    if !supported() {
        return;
    }
    if let Ok(promise) = Notification::request_permission() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            done();
        });
    }
}

/// Shows a desktop notification for a mention, if the person allowed them.
pub(crate) fn mention(alert: &Alert) {
    if !supported() || Notification::permission() != NotificationPermission::Granted {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&alert.text);
    // One notification per room: a busy room replaces rather than stacks them.
    options.set_tag(&format!("huddle-{}", alert.room));
    let title = format!("{} in #{}", alert.nick, alert.room);
    if let Ok(n) = Notification::new_with_options(&title, &options) {
        let room = alert.room.clone();
        let onclick = Closure::<dyn FnMut()>::new(move || {
            let _ = window().focus();
            let _ = window().location().set_hash(&crate::route::hash_for(&room));
        });
        n.set_onclick(Some(onclick.as_ref().unchecked_ref()));
        // The notification owns its handler for as long as the browser shows it.
        onclick.forget();
    }
}

/// Keeps the store told whether the tab is hidden, and the title in step with it.
pub(crate) fn watch_page(chat: Store) {
    let document = document();
    let hidden_now = document.hidden();
    // Showing the tab reads the room on screen: its unread count and the title follow.
    let parts = Parts::PAGE | Parts::ROOMS;
    chat.update(parts, |s| s.set_hidden(hidden_now));
    let doc = document.clone();
    let on_change = Closure::<dyn FnMut()>::new(move || {
        let hidden = doc.hidden();
        chat.update(parts, |s| s.set_hidden(hidden));
    });
    let _ = document
        .add_event_listener_with_callback("visibilitychange", on_change.as_ref().unchecked_ref());
    // Listens for the life of the page.
    on_change.forget();
    Effect::new(move |_| {
        let title = chat.with(Parts::PAGE | Parts::ROOMS, ChatState::title);
        document.set_title(&title);
    });
}
