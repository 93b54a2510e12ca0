//! The bar at the top: app name, room, connection status.

use leptos::prelude::*;

use crate::connection::{Connection, Status};
use crate::state::ChatState;

/// The header. Before the first `welcome` the status is shown only while a connection
/// is on its way: someone just arriving, or fixing a refused nick, is waiting for
/// nothing, and "offline" or "connecting" would only alarm them.
#[component]
pub(crate) fn Header() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<ReadSignal<ChatState>>();
    let room = chat.with_untracked(|s| s.room.clone());
    let status = conn.status;
    let show_status = move || {
        let (welcomed, refused) =
            chat.with(|s| (s.me.is_some() || s.session_taken, s.nick_error.is_some()));
        welcomed || (status.get() != Status::Offline && !refused)
    };
    view! {
        <header class="top">
            <h1>"Huddle"</h1>
            <span class="room-name">"#" {room}</span>
            <Show when=show_status>
                <span class=move || format!("status status-{}", status.get().label()) role="status">
                    {move || status.get().label()}
                </span>
            </Show>
            <Show when=move || chat.with(|s| s.session_taken)>
                <button class="reconnect" on:click=move |_| conn.reconnect_now()>
                    "Reconnect here"
                </button>
            </Show>
        </header>
    }
}
