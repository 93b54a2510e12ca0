//! Who is in the room on screen now.

use leptos::prelude::*;

use crate::components::Avatar;
use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

/// The member list, from `joined.nicks` and later `presence` frames. Those name nicks
/// only; the avatar's colour needs the user id, known once the person has a message in
/// the room (the row is keyed by nick, so it keeps the colour it was drawn with).
///
/// A crowd (a room above the server's announce limit) comes as its first page with the
/// total: the heading counts everyone, and "Show more" asks for the next page, whose
/// rows are added after those shown.
#[component]
pub(crate) fn Presence() -> impl IntoView {
    let chat = expect_context::<Store>();
    let conn = expect_context::<Connection>();
    // Subscribed to the members (and which room is on screen) only: messages and
    // typing never re-run these.
    let parts = Parts::MEMBERS | Parts::ROOMS;
    let members = Memo::new(move |_| {
        chat.with(parts, |s| {
            s.room().map(|r| r.members.clone()).unwrap_or_default()
        })
    });
    // Everyone, not only the rows fetched so far; and whether a next page can be
    // asked for (`Some(waiting)`). Plain closures: each is read in one place.
    let count = move || {
        chat.with(parts, |s| {
            s.room().map_or(0, |r| {
                r.member_total.map_or(r.members.len(), |t| t as usize)
            })
        })
    };
    let more = move || {
        chat.with(parts, |s| {
            s.room()
                .filter(|r| r.members_next.is_some())
                .map(|r| r.loading_members)
        })
    };
    // While disconnected the list is the last one we know, greyed out as possibly stale.
    let stale = Memo::new(move |_| chat.with(parts, |s| !s.room().is_some_and(|r| r.joined)));
    view! {
        <aside class="presence" class:stale=stale aria-label="Who is here">
            <h2>"Here " <span class="count">{count}</span></h2>
            <ul>
                <For each=move || members.get() key=|nick| nick.clone() let(nick)>
                    <li>
                        <Avatar nick=nick.clone() user=user_of(chat, &nick) />
                        <bdi>{nick}</bdi>
                    </li>
                </For>
            </ul>
            {move || {
                more()
                    .map(|loading| {
                        let shown = members.with(Vec::len);
                        let label = format!("Show more ({shown} of {})", count());
                        view! {
                            <button
                                class="more-members"
                                disabled=loading
                                on:click=move |_| conn.more_members()
                            >
                                {label}
                            </button>
                        }
                    })
            }}
        </aside>
    }
}

/// The user id behind a nick in the room on screen, if a message told it.
fn user_of(chat: Store, nick: &str) -> Option<String> {
    chat.with_untracked(|s| s.room()?.users.get(nick).cloned())
}
