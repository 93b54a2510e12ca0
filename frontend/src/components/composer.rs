//! The message input: Enter sends, Shift+Enter is a new line, Esc clears (and stops
//! replying), Up in an empty field edits our last message. While replying, the reply
//! bar sits above it.

use leptos::html::Textarea;
use leptos::prelude::*;
use web_sys::{KeyboardEvent, SubmitEvent};

use crate::components::ReplyBar;
use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

/// Most lines the field grows to before it scrolls.
const MAX_ROWS: usize = 6;

#[component]
pub(crate) fn Composer() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let field = NodeRef::<Textarea>::new();
    let submit = move || {
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
    let on_keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        // While an input method composes (e.g. Japanese), Enter confirms the word.
        "Enter" if !ev.shift_key() && !ev.is_composing() => {
            ev.prevent_default();
            submit();
        }
        "Escape" => {
            text.set(String::new());
            error.set(None);
            conn.cancel_reply();
        }
        "ArrowUp"
            if !ev.shift_key() && text.with_untracked(|t| t.is_empty()) && conn.edit_last() =>
        {
            ev.prevent_default();
        }
        _ => {}
    };
    let rows = move || text.with(|t| t.lines().count().clamp(1, MAX_ROWS));
    // A new room on screen (or the first one): the composer is where hands go next.
    let current = Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.current.clone()));
    Effect::new(move |_| {
        current.with(|_| ());
        request_animation_frame(move || {
            if let Some(el) = field.try_get_untracked().flatten() {
                let _ = el.focus();
            }
        });
    });
    let placeholder = move || {
        current.with(|c| {
            c.as_ref()
                .map_or_else(String::new, |r| format!("Message #{r}"))
        })
    };
    view! {
        <ReplyBar />
        <form
            class="composer"
            on:submit=move |ev: SubmitEvent| {
                ev.prevent_default();
                submit();
            }
        >
            <textarea
                name="message"
                aria-label="Message"
                aria-describedby="composer-error"
                placeholder=placeholder
                autocomplete="off"
                enterkeyhint="send"
                rows=rows
                node_ref=field
                bind:value=text
                on:keydown=on_keydown
                on:input=move |_| conn.typing()
            ></textarea>
            <button type="submit">"Send"</button>
        </form>
        <p id="composer-error" class="field-error composer-error" role="alert">
            {move || error.get()}
        </p>
    }
}
