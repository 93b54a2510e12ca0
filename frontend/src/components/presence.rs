//! Who is in the room on screen now.

use leptos::prelude::*;

use crate::state::ChatState;

/// The member list, from `joined.nicks` and later `presence` frames.
#[component]
pub(crate) fn Presence() -> impl IntoView {
    let chat = expect_context::<ReadSignal<ChatState>>();
    // Memos so that the list re-renders only when the members change, not on every
    // message.
    let members =
        Memo::new(move |_| chat.with(|s| s.room().map(|r| r.members.clone()).unwrap_or_default()));
    // While disconnected the list is the last one we know, greyed out as possibly stale.
    let stale = Memo::new(move |_| chat.with(|s| !s.room().is_some_and(|r| r.joined)));
    view! {
        <aside class="presence" class:stale=stale aria-label="Who is here">
            <h2>"Here " <span class="count">{move || members.with(Vec::len)}</span></h2>
            <ul>
                <For each=move || members.get() key=|nick| nick.clone() let(nick)>
                    <li>{nick}</li>
                </For>
            </ul>
        </aside>
    }
}
