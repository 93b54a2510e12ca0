//! The quote at the top of a reply: the original's author and the start of its text,
//! or "message deleted". Clicking it shows the original, highlighted, loading older
//! pages first when it is not loaded yet.

use leptos::prelude::*;

use crate::connection::Connection;
use crate::store::Store;

#[component]
pub(crate) fn ReplyQuote(room: String, target: u64) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    // The original's own trigger: its edit, deletion or arrival in a page of history
    // updates this quote.
    let trigger = chat.watch(&room, target);
    let quote = move || {
        trigger.track();
        chat.with_untracked(|s| s.rooms.get(&room)?.quote(target))
    };
    view! {
        <button
            type="button"
            class="reply-quote"
            data-target=target
            title="Show the message this answers"
            on:click=move |_| conn.jump_to(target)
        >
            {move || match quote() {
                Some(q) => {
                    let text = if q.deleted {
                        view! { <span class="quote-text quote-deleted">"message deleted"</span> }
                            .into_any()
                    } else {
                        view! { <span class="quote-text">{q.snippet}</span> }.into_any()
                    };
                    view! {
                        <bdi class="quote-nick">{q.nick}</bdi>
                        {text}
                    }
                        .into_any()
                }
                None => view! { <span class="quote-text">"an earlier message"</span> }.into_any(),
            }}
        </button>
    }
}
