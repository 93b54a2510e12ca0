//! The rooms: the ones the person is in (with unread counts and mention badges), their
//! direct messages, a field to join or create a room, and every room on the server.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::components::{Avatar, Lock};
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
    let joined = Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.group_rooms()));
    let dms = Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.dm_rooms()));
    let notice = move || chat.with(Parts::ROOMS, |s| s.people_notice.clone());
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
            {move || {
                notice()
                    .map(|text| {
                        view! {
                            <p id="people-notice" class="people-notice" role="status">
                                {text}
                                <button
                                    class="dismiss"
                                    aria-label="Dismiss"
                                    on:click=move |_| conn.dismiss_notice()
                                >
                                    "×"
                                </button>
                            </p>
                        }
                    })
            }}
            <button id="new-room" class="new-room" on:click=move |_| conn.new_room_dialog(true)>
                "+ New room"
            </button>
            <ul class="joined-rooms">
                <For
                    each=move || joined.get()
                    key=|name| name.clone()
                    children=move |name| room_row(conn, chat, ui, &name)
                />
            </ul>
            <section id="dm-section" class="dm-section" aria-labelledby="dm-heading">
                <h2 id="dm-heading">"Direct messages"</h2>
                <ul class="dm-rooms">
                    <For
                        each=move || dms.get()
                        key=|name| name.clone()
                        children=move |name| room_row(conn, chat, ui, &name)
                    />
                </ul>
                <Show when=move || dms.with(Vec::is_empty)>
                    <p class="dm-hint">"Click someone's name in a room to message them."</p>
                </Show>
            </section>
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

/// One room in the sidebar (a group room or a direct message). Keyed by name alone: its
/// unread count, mentions and whether it is on screen update the row in place.
fn room_row(conn: Connection, chat: Store, ui: Ui, name: &str) -> impl IntoView {
    let name = name.to_owned();
    let leave = name.clone();
    let (n, m) = (name.clone(), name.clone());
    let current =
        Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.current.as_deref() == Some(n.as_str())));
    // (unread, mentions): the server's counts after `welcome`, then ours.
    let counts = Memo::new(move |_| {
        chat.with(Parts::ROOMS, |s| {
            s.rooms.get(&m).map_or((0, 0), |r| (r.unread, r.mentions))
        })
    });
    // Whether a room is private or a direct message does not change.
    let (private, dm, label) = chat.with_untracked(|s| {
        s.rooms
            .get(&name)
            .map_or((false, None, format!("#{name}")), |r| {
                (r.private, r.dm.clone(), r.label())
            })
    });
    let is_dm = dm.is_some();
    let leave_label = format!("Leave {label}");
    let icon = match &dm {
        Some(peer) => {
            view! { <Avatar nick=peer.nick.clone() user=Some(peer.user.clone()) /> }.into_any()
        }
        None if private => view! { <Lock/> }.into_any(),
        None => ().into_any(),
    };
    // Only the room name after "#", as before direct messages existed.
    let text = if is_dm { label } else { name.clone() };
    view! {
        <li
            class="room-item"
            class:current=current
            class:dm=is_dm
            class:private=private
            data-room=name.clone()
            data-user=dm.map(|p| p.user)
            data-unread=move || counts.get().0
            data-mentions=move || counts.get().1
        >
            <a
                class="room-link"
                href=route::hash_for(&name)
                aria-current=move || current.get().then_some("page")
                on:click=move |_| ui.sidebar_open.set(false)
            >
                {icon}
                {(!is_dm).then_some("#")}
                <bdi>{text}</bdi>
                {move || {
                    let (_, mentions) = counts.get();
                    (mentions > 0)
                        .then(|| {
                            view! {
                                <span class="mention" aria-label=format!("{mentions} mentioning you")>
                                    "@"
                                    {mentions}
                                </span>
                            }
                        })
                }}
                {move || {
                    let (unread, _) = counts.get();
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
                aria-label=leave_label
                title="Leave"
                on:click=move |_| conn.leave_room(&leave)
            >
                "×"
            </button>
        </li>
    }
}
