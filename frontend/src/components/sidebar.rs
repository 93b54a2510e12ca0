//! The rooms: the ones the person is in (with unread counts), a field to join or
//! create one, and every room on the server.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;
use crate::route;
use crate::state::Parts;
use crate::store::Store;
use crate::Ui;

#[component]
pub(crate) fn Sidebar() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let ui = expect_context::<Ui>();
    // Rows are keyed by name alone: a room's unread count and whether it is on screen
    // update its row in place, they do not remount it.
    let joined = Memo::new(move |_| {
        chat.with(Parts::ROOMS, |s| {
            s.rooms.keys().cloned().collect::<Vec<_>>()
        })
    });
    let directory = Memo::new(move |_| {
        chat.with(Parts::DIRECTORY, |s| {
            s.directory
                .iter()
                .map(|r| r.room.clone())
                .collect::<Vec<_>>()
        })
    });
    let draft = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let error = move || {
        local_error
            .get()
            .or_else(|| chat.with(Parts::ROOMS, |s| s.room_error.clone()))
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
                    key=|name| name.clone()
                    children=move |name| {
                        let leave = name.clone();
                        let (n, m) = (name.clone(), name.clone());
                        let current = Memo::new(move |_| {
                            chat.with(Parts::ROOMS, |s| s.current.as_deref() == Some(n.as_str()))
                        });
                        let unread = Memo::new(move |_| {
                            chat.with(Parts::ROOMS, |s| s.rooms.get(&m).map_or(0, |r| r.unread))
                        });
                        view! {
                            <li class="room-item" class:current=current data-room=name.clone()>
                                <a
                                    class="room-link"
                                    href=route::hash_for(&name)
                                    aria-current=move || current.get().then_some("page")
                                    on:click=move |_| ui.sidebar_open.set(false)
                                >
                                    "#"
                                    {name.clone()}
                                    {move || {
                                        let unread = unread.get();
                                        (unread > 0)
                                            .then(|| {
                                                view! {
                                                    <span class="unread" aria-label=format!("{unread} unread")>
                                                        {unread}
                                                    </span>
                                                }
                                            })
                                    }}
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
                    key=|name| name.clone()
                    children=move |name| {
                        let hash = route::hash_for(&name);
                        let label = name.clone();
                        let n = name.clone();
                        let members = Memo::new(move |_| {
                            chat.with(Parts::DIRECTORY, |s| {
                                s.directory.iter().find(|r| r.room == n).map_or(0, |r| r.members)
                            })
                        });
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
                                    <span class="members" aria-label=move || format!("{} online", members.get())>
                                        {members}
                                    </span>
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
            {move || {
                // The rooms not shown yet, when the server has more pages.
                let left = chat.with(Parts::DIRECTORY, |s| {
                    s.directory_next
                        .as_ref()
                        .map(|_| s.directory_total.saturating_sub(s.directory.len() as u64))
                });
                left.map(|left| {
                    view! {
                        <button class="more-rooms" on:click=move |_| conn.more_rooms()>
                            {format!("More rooms ({left})")}
                        </button>
                    }
                })
            }}
        </nav>
    }
}
