//! Above the composer while a reply is being written: whom it answers and the start of
//! what they said, with a button (and Esc in the composer) to stop replying.

use leptos::prelude::*;

use crate::components::message_list::keep_at_bottom;
use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

#[component]
pub(crate) fn ReplyBar() -> impl IntoView {
    let chat = expect_context::<Store>();
    let target =
        Memo::new(move |_| chat.with(Parts::MESSAGES | Parts::ROOMS, |s| s.room()?.replying_to));
    // The bar takes room from the list: the newest rows stay in view.
    Effect::new(move |_| {
        target.track();
        keep_at_bottom(chat);
    });
    move || {
        target.get().map(|offset| {
            let room = chat.with_untracked(|s| s.current.clone().unwrap_or_default());
            replying(room, offset)
        })
    }
}

/// The bar for a reply to the message at `offset`, watching that message (an edit or
/// a deletion shows here too).
fn replying(room: String, offset: u64) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let trigger = chat.watch(&room, offset);
    let quote = move || {
        trigger.track();
        chat.with_untracked(|s| s.rooms.get(&room)?.quote(offset))
    };
    let nick = {
        let quote = quote.clone();
        move || quote().map(|q| q.nick).unwrap_or_default()
    };
    let text = move || match quote() {
        Some(q) if q.deleted => "message deleted".to_owned(),
        Some(q) => q.snippet,
        None => String::new(),
    };
    view! {
        <div class="reply-bar" role="status">
            <span class="reply-label">"Replying to "<bdi class="quote-nick">{nick}</bdi></span>
            <span class="quote-text">{text}</span>
            <button
                type="button"
                class="reply-cancel"
                aria-label="Stop replying"
                title="Stop replying (Esc)"
                on:click=move |_| conn.cancel_reply()
            >
                "×"
            </button>
        </div>
    }
}
