//! Huddle's web app: a Leptos client-side-rendered app compiled to WebAssembly.
//!
//! # Layout
//! - [`App`]: creates the chat store and the connection context, and lays out the page.
//! - `state`: [`ChatState`](state::ChatState), a plain struct that server frames are
//!   applied to. All protocol logic lives there and is unit-tested natively.
//! - `connection`: the WebSocket context (status signal, join/send, reconnect).
//! - `prefs`: the nick and session remembered in `localStorage`.
//! - `components`: one component per file; they read the store and call the connection.
//!
//! Text from the network is always rendered as text nodes, never as HTML.

mod components;
mod connection;
mod prefs;
mod state;

use leptos::prelude::*;

use crate::components::{Composer, Header, MessageList, NickForm, Presence};
use crate::connection::{page_id_prefix, provide_connection_context};
use crate::state::ChatState;

/// The room this minimal app joins; rooms to choose from come in a later version.
const ROOM: &str = "lobby";

/// The whole app: the nick form until the server welcomes us, then the room.
#[component]
pub fn App() -> impl IntoView {
    let chat = RwSignal::new(ChatState::new(
        ROOM,
        prefs::saved_session(),
        page_id_prefix(),
    ));
    provide_connection_context(chat);
    // Components only read the store; changes go through the connection.
    provide_context(chat.read_only());
    let welcomed = move || chat.with(|s| s.me.is_some());
    view! {
        <div class="app">
            <Header />
            <Show when=welcomed fallback=|| view! { <NickForm /> }>
                <main class="room">
                    <Presence />
                    <MessageList />
                    <Composer />
                </main>
            </Show>
        </div>
    }
}
