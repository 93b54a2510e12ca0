//! Huddle's web app: a Leptos client-side-rendered app compiled to WebAssembly.
//!
//! # Layout
//! - [`App`]: creates the chat store and the connection context, and lays out the page.
//! - `state`: [`ChatState`](state::ChatState), a plain struct that server frames are
//!   applied to, with one `Room` per joined room. All protocol logic lives there and
//!   is unit-tested natively; applying a frame returns its effects as values.
//! - `store`: the reactive face of the state, one trigger per part of the page, so a
//!   frame wakes only what it changed.
//! - `link`: when to reconnect (backoff with full jitter) and what the status says;
//!   plain Rust, unit-tested.
//! - `transport`: which transport carries the protocol (the WebSocket, or the SSE
//!   fallback after two silent sockets, and back once a probe answers); plain Rust,
//!   unit-tested.
//! - `carrier`: the two transports behind one face (`WebSocket`; `EventSource` with
//!   one `POST` at a time), reporting opens, frames and closes the same way.
//! - `connection`: the context components call, and the glue between the carrier,
//!   `link`, `transport` and the store.
//! - `http`: the one helper for plain HTTP posts to the server.
//! - `route`: the room on screen in the URL (`#/r/<room>`).
//! - `notify`: tab visibility, the title's unread count, desktop notifications of
//!   alerts.
//! - `push`: Web Push: the service worker (`frontend/sw.js`) registered, the browser
//!   subscribed, and the worker's "open this room" messages.
//! - `prefs`: the nick, session and rooms remembered in `localStorage`.
//! - `auth`: signing in with an account (HTTP), the token kept between visits, and a
//!   host application's token taken from the URL fragment.
//! - `avatar`: the letter and colour shown for a person.
//! - `text`: links and mentions found in message text.
//! - `components`: one component per file; they read the store and call the connection.
//!
//! Text from the network is always rendered as text nodes, never as HTML.

mod auth;
mod avatar;
mod carrier;
mod components;
mod connection;
#[cfg(all(test, target_arch = "wasm32"))]
mod dom_tests;
mod http;
mod link;
mod notify;
mod prefs;
mod push;
mod route;
mod state;
mod store;
mod text;
mod transport;

use leptos::prelude::*;

use crate::components::{
    Composer, Header, InviteForm, Lock, MessageList, NewRoomDialog, Presence, RoomNotify, Sidebar,
    SignIn,
};
use crate::connection::{page_id_prefix, provide_connection_context, Connection};
use crate::state::{ChatState, Parts};
use crate::store::Store;

/// Page-level view state that is not chat data.
#[derive(Clone, Copy)]
pub(crate) struct Ui {
    /// The room drawer on narrow screens.
    pub(crate) sidebar_open: RwSignal<bool>,
}

/// The whole app: the sign-in screen until the server welcomes us, then the rooms.
#[component]
pub fn App() -> impl IntoView {
    // A host application's token in the fragment is taken out of the address first, so
    // that what is left is the room route (if any).
    let token = auth::take_fragment_token().or_else(auth::saved_token);
    // The room in the URL comes first (it is shown), then the rooms of the last visit.
    let mut rooms: Vec<String> = route::current().into_iter().collect();
    for saved in prefs::saved_rooms() {
        if !rooms.contains(&saved) {
            rooms.push(saved);
        }
    }
    let chat = Store::new(ChatState::new(
        prefs::saved_session(),
        &rooms,
        page_id_prefix(),
    ));
    let conn = provide_connection_context(chat);
    // Components read the store; changes go through the connection.
    provide_context(chat);
    let ui = Ui {
        sidebar_open: RwSignal::new(false),
    };
    provide_context(ui);
    notify::watch_page(chat);
    push::listen();
    watch_route(conn, chat);
    remember_rooms(chat);
    // Someone who was here before comes straight back: signed in with their token, or
    // as the same guest nick, which the saved session reclaims.
    if let Some(token) = token {
        conn.sign_in(&token);
    } else if let Some((nick, _)) = prefs::saved_session() {
        let _ = conn.join(&nick);
    }

    let welcomed = move || chat.with(Parts::SESSION, ChatState::in_chat);
    let current = Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.current.clone()));
    // A direct message is titled by the other person, a private room has a lock.
    let room_title = move || chat.with(Parts::ROOMS, |s| s.room().map(|r| r.label()));
    let room_locked = move || {
        chat.with(Parts::ROOMS, |s| {
            s.room().is_some_and(|r| r.private && r.dm.is_none())
        })
    };
    view! {
        <div class="app" class:sidebar-open=move || ui.sidebar_open.get()>
            <Header />
            <Show when=welcomed fallback=|| view! { <SignIn /> }>
                <div class="layout">
                    <Sidebar />
                    <main class="room" data-room=move || current.get()>
                        <div class="room-head">
                            <h2 class="room-title">
                                <Show when=room_locked>
                                    <Lock/>
                                    " "
                                </Show>
                                {room_title}
                            </h2>
                            <RoomNotify />
                        </div>
                        <InviteForm />
                        <MessageList />
                        <Composer />
                    </main>
                    <Presence />
                </div>
                <NewRoomDialog />
            </Show>
            <div id="announcer" class="visually-hidden" aria-live="polite">
                {move || chat.with(Parts::PAGE, |s| s.announcement.clone())}
            </div>
        </div>
    }
}

/// Keeps the room on screen and the URL in step: a hash change (link, back/forward)
/// opens its room; the app changing rooms by itself (leaving one) rewrites the URL.
fn watch_route(conn: Connection, chat: Store) {
    // A link to one message (a pushed alert opening a new tab): highlighted once its
    // room's messages arrive.
    if let Some((room, Some(offset))) = route::current_target() {
        chat.update(Parts::ALL, |s| s.open_message(&room, offset));
    }
    if let Some(room) = chat.with_untracked(|s| s.current.clone()) {
        route::replace(&room);
    }
    let handle = window_event_listener(leptos::ev::hashchange, move |_| {
        let opened = match route::current_target() {
            Some((room, Some(offset))) => conn.open_message(&room, offset),
            Some((room, None)) => conn.open_room(&room),
            None => Ok(()),
        };
        if let Err(e) = opened {
            chat.update(Parts::ROOMS, |s| s.room_error = Some(e));
        }
    });
    on_cleanup(move || handle.remove());
    Effect::new(move |_| {
        if let Some(room) = chat.with(Parts::ROOMS, |s| s.current.clone()) {
            if route::current().as_deref() != Some(room.as_str()) {
                route::replace(&room);
            }
        }
    });
}

/// Remembers the joined rooms, so a reload comes back to all of them.
fn remember_rooms(chat: Store) {
    let names = Memo::new(move |_| {
        chat.with(Parts::ROOMS, |s| {
            s.rooms.keys().cloned().collect::<Vec<_>>()
        })
    });
    Effect::new(move |_| names.with(|n| prefs::save_rooms(&n.iter().collect::<Vec<_>>())));
}
