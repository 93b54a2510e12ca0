//! The first screen: pick a nick and join.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;
use crate::link::Status;
use crate::prefs;
use crate::state::Parts;
use crate::store::Store;

/// The nick field and Join button, with the reason when a nick is refused (checked
/// here first, then by the server, e.g. `nick_taken`).
#[component]
pub(crate) fn NickForm() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let nick = RwSignal::new(prefs::saved_nick().unwrap_or_default());
    let local_error = RwSignal::new(None::<String>);
    let error = move || {
        local_error
            .get()
            .or_else(|| chat.with(Parts::SESSION, |s| s.nick_error.clone()))
    };
    let (room, max_len) = chat.with_untracked(|s| {
        (
            format!("#{}", s.current.as_deref().unwrap_or_default()),
            s.limits.nick_max_chars,
        )
    });
    let waiting = move || {
        matches!(
            conn.status.get(),
            Status::Connecting | Status::Reconnecting { .. }
        ) && chat.with(Parts::SESSION, |s| s.nick_error.is_none())
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        local_error.set(conn.join(&nick.get_untracked()).err());
    };
    view! {
        <form class="nick-form" on:submit=on_submit>
            <label for="nick">"Pick a nick to join " <strong>{room}</strong></label>
            <div class="field-row">
                <input
                    id="nick"
                    name="nick"
                    autocomplete="nickname"
                    maxlength=max_len
                    required
                    autofocus
                    bind:value=nick
                    aria-invalid=move || error().is_some().to_string()
                    aria-describedby="nick-error"
                />
                <button type="submit" disabled=waiting>
                    {move || if waiting() { "Joining…" } else { "Join" }}
                </button>
            </div>
            <p id="nick-error" class="field-error" role="alert">
                {error}
            </p>
        </form>
    }
}
