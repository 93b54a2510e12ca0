//! Which messages of the room on screen alert the person: all, mentions (the
//! default) or nothing.

use common::NotifyLevel;
use leptos::prelude::*;

use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

/// A small select in the room's title bar.
#[component]
pub(crate) fn RoomNotify() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let level = Memo::new(move |_| {
        chat.with(Parts::INBOX | Parts::ROOMS, |s| {
            s.room().map(|r| r.notify).unwrap_or_default()
        })
    });
    let on_change = move |ev| {
        let Some(level) = NotifyLevel::parse(&event_target_value(&ev)) else {
            return;
        };
        if let Some(room) = chat.with_untracked(|s| s.current.clone()) {
            conn.set_room_notify(&room, level);
        }
    };
    view! {
        <select
            class="room-notify"
            name="room-notify"
            aria-label="Notify me about"
            title="Which messages of this room notify you"
            prop:value=move || level.get().as_str()
            on:change=on_change
        >
            <option value="all">"All messages"</option>
            <option value="mentions">"Mentions only"</option>
            <option value="nothing">"Muted"</option>
        </select>
    }
}
