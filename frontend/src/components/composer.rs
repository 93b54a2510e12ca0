//! The message input.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;

/// A text field and Send button in a form, so Enter sends (and an on-screen keyboard
/// shows its "send" key).
#[component]
pub(crate) fn Composer() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let draft = text.get_untracked();
        if draft.trim().is_empty() {
            return;
        }
        match conn.send_text(&draft) {
            Ok(()) => {
                text.set(String::new());
                error.set(None);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <form class="composer" on:submit=on_submit>
            <input
                name="message"
                aria-label="Message"
                placeholder="Write a message…"
                autocomplete="off"
                enterkeyhint="send"
                bind:value=text
            />
            <button type="submit">"Send"</button>
        </form>
        <p class="field-error composer-error" role="alert">
            {move || error.get()}
        </p>
    }
}
