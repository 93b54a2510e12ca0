//! The rooms: the ones the person is in (with unread counts), a field to join or
//! create one, and every room on the server.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;
use crate::route;
use crate::state::ChatState;
use crate::Ui;

#[component]
pub(crate) fn Sidebar() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<ReadSignal<ChatState>>();
    let ui = expect_context::<Ui>();
    // (name, unread, current): re-renders the list only when one of these changes.
    let joined = Memo::new(move |_| {
        chat.with(|s| {
            s.rooms
                .values()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.unread,
                        s.current.as_ref() == Some(&r.name),
                    )
                })
                .collect::<Vec<_>>()
        })
    });
    let directory = Memo::new(move |_| {
        chat.with(|s| {
            s.directory
                .iter()
                .map(|r| (r.room.clone(), r.members))
                .collect::<Vec<_>>()
        })
    });
    let draft = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let error = move || {
        local_error
            .get()
            .or_else(|| chat.with(|s| s.room_error.clone()))
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let name = draft.get_untracked();
        let limits = chat.with_untracked(|s| s.limits.clone());
        match common::validate::room(&name, &limits) {
            Ok(room) => {
                local_error.set(None);
                // The hash change opens it, so back/forward know about it too.
                let _ = window().location().set_hash(&route::hash_for(room));
                draft.set(String::new());
                ui.sidebar_open.set(false);
            }
            Err(e) => local_error.set(Some(e.to_string())),
        }
    };
    view! {
        <nav id="sidebar" class="sidebar" aria-label="Rooms">
            <h2>"Rooms"</h2>
            <ul class="joined-rooms">
                <For
                    each=move || joined.get()
                    key=|entry| entry.clone()
                    children=move |(name, unread, current)| {
                        let leave = name.clone();
                        view! {
                            <li class="room-item" class:current=current data-room=name.clone()>
                                <a
                                    class="room-link"
                                    href=route::hash_for(&name)
                                    aria-current=current.then_some("page")
                                    on:click=move |_| ui.sidebar_open.set(false)
                                >
                                    "#"
                                    {name.clone()}
                                    {(unread > 0)
                                        .then(|| {
                                            view! {
                                                <span class="unread" aria-label=format!("{unread} unread")>
                                                    {unread}
                                                </span>
                                            }
                                        })}
                                </a>
                                <button
                                    class="leave-room"
                                    aria-label=format!("Leave {name}")
                                    title="Leave"
                                    on:click=move |_| conn.leave_room(&leave)
                                >
                                    "×"
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            <form class="join-room" on:submit=on_submit>
                <input
                    name="room"
                    aria-label="Join or create a room"
                    placeholder="Room name"
                    autocomplete="off"
                    bind:value=draft
                    aria-invalid=move || error().is_some().to_string()
                    aria-describedby="room-error"
                />
                <button type="submit">"Join"</button>
                <p id="room-error" class="field-error" role="alert">
                    {error}
                </p>
            </form>
            <h2>
                "All rooms "
                <button
                    class="refresh-rooms"
                    aria-label="Refresh room list"
                    title="Refresh"
                    on:click=move |_| conn.list_rooms()
                >
                    "↻"
                </button>
            </h2>
            <ul class="all-rooms">
                <For
                    each=move || directory.get()
                    key=|entry| entry.clone()
                    children=move |(name, members)| {
                        let hash = route::hash_for(&name);
                        let label = name.clone();
                        view! {
                            <li>
                                <button
                                    class="open-room"
                                    data-room=name.clone()
                                    on:click=move |_| {
                                        let _ = window().location().set_hash(&hash);
                                        ui.sidebar_open.set(false);
                                    }
                                >
                                    "#"
                                    {label}
                                    <span class="members" aria-label=format!("{members} online")>
                                        {members}
                                    </span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </nav>
    }
}
