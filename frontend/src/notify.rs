//! The browser around the page: the tab's visibility and title, and desktop
//! notifications for the user's alerts (the Notification API, asked for only when the
//! person clicks "Enable notifications", never on load).
//!
//! An alert arriving while this tab is hidden shows as a notification tagged
//! `huddle-alert-<seq>`, the tag the service worker (`frontend/sw.js`) gives the Web
//! Push of the same alert: whichever comes second replaces the first, so a person never
//! sees one alert twice.

use common::Alert;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

use crate::state::{ChatState, Parts};
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

/// Whether the person allowed notifications.
pub(crate) fn granted() -> bool {
    supported() && Notification::permission() == NotificationPermission::Granted
}

/// The tag of an alert's notification, shared with the service worker's.
pub(crate) fn tag(seq: u64) -> String {
    format!("huddle-alert-{seq}")
}

/// Where an alert leads: its own address (an application's alert with a `url`), or
/// the hash of its room, at its message when it has one.
pub(crate) enum Target {
    Url(String),
    Hash(String),
}

/// Where clicking `alert` (here or in the bell) goes, if anywhere.
pub(crate) fn target(alert: &Alert) -> Option<Target> {
    if let Some(url) = alert.url.as_ref().filter(|u| is_web_url(u)) {
        return Some(Target::Url(url.clone()));
    }
    let room = alert.room.as_deref()?;
    Some(Target::Hash(match alert.offset {
        Some(offset) => crate::route::hash_for_message(room, offset),
        None => crate::route::hash_for(room),
    }))
}

/// Only `http(s)` addresses are opened: an alert's `url` comes from an application,
/// and a `javascript:` one must never run.
fn is_web_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Goes where an alert leads: a room in this tab, an address in a new one (without a
/// way back to this page).
pub(crate) fn go(target: &Target) {
    match target {
        Target::Hash(hash) => {
            let _ = window().location().set_hash(hash);
        }
        Target::Url(url) => {
            let _ = window().open_with_url_and_target_and_features(url, "_blank", "noopener");
        }
    }
}

/// Shows a desktop notification for an alert, if the person allowed them.
pub(crate) fn alert(alert: &Alert) {
    if !granted() {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&alert.body);
    options.set_tag(&tag(alert.seq));
    if let Ok(n) = Notification::new_with_options(&alert.title, &options) {
        let target = target(alert);
        let onclick = Closure::<dyn FnMut()>::new(move || {
            let _ = window().focus();
            if let Some(target) = &target {
                go(target);
            }
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
    let parts = Parts::PAGE | Parts::ROOMS | Parts::INBOX;
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
