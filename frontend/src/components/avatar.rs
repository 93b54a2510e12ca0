//! A person's avatar: their initial on a colour of their own.

use leptos::prelude::*;

use crate::avatar;

/// The letter comes from the nick, the colour from the user id (never the nick: two
/// lookalike nicks of different people must not look alike). Without a known id the
/// avatar is neutral grey. The letter is drawn by CSS from `data-letter`, so the
/// avatar adds no text to the row: copying a message, or reading a row's text, still
/// gives just the nick.
#[component]
pub(crate) fn Avatar(nick: String, user: Option<String>) -> impl IntoView {
    let letter = avatar::letter(&nick);
    let style = user
        .as_deref()
        .map(|u| format!("--avatar-hue: {}", avatar::hue(u)));
    view! {
        <span
            class="avatar"
            class:unknown=user.is_none()
            data-letter=letter
            data-user=user
            style=style
            title=nick
            aria-hidden="true"
        ></span>
    }
}
