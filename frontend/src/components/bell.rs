//! The bell in the header: how many of the user's alerts are unread, and the inbox
//! list it opens.

use leptos::prelude::*;

use crate::components::InboxList;
use crate::state::{ChatState, Parts};
use crate::store::Store;

/// The bell button with its unread count; clicking it opens or closes the inbox.
#[component]
pub(crate) fn Bell() -> impl IntoView {
    let chat = expect_context::<Store>();
    let open = RwSignal::new(false);
    // Reading a room reads its alerts too, so the count follows the rooms as well.
    let unread =
        Memo::new(move |_| chat.with(Parts::INBOX | Parts::ROOMS, ChatState::unread_alerts));
    let label = move || match unread.get() {
        0 => "Notifications".to_owned(),
        1 => "Notifications: 1 unread".to_owned(),
        n => format!("Notifications: {n} unread"),
    };
    view! {
        <div class="bell-wrap" on:keydown=move |ev| {
            if ev.key() == "Escape" {
                open.set(false);
            }
        }>
            <button
                id="bell"
                class="bell"
                type="button"
                aria-haspopup="dialog"
                aria-controls="inbox"
                aria-expanded=move || open.get().to_string()
                aria-label=label
                title=label
                data-unread=move || unread.get()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                // Drawn rather than an emoji: without the emoji font it would be a box.
                <svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
                    <path
                        d="M8 1.5a4.5 4.5 0 0 0-4.5 4.5v3L2 11.5h12L12.5 9V6A4.5 4.5 0 0 0 8 1.5z"
                        fill="currentColor"
                    />
                    <path d="M6.2 13a1.8 1.8 0 0 0 3.6 0z" fill="currentColor" />
                </svg>
                <Show when=move || { unread.get() > 0 }>
                    <span class="bell-count" aria-hidden="true">
                        {move || match unread.get() {
                            n if n > 99 => "99+".to_owned(),
                            n => n.to_string(),
                        }}
                    </span>
                </Show>
            </button>
            <Show when=move || open.get()>
                <InboxList close=Callback::new(move |()| open.set(false)) />
            </Show>
        </div>
    }
}
