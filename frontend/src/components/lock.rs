//! The padlock that marks a private room, drawn rather than an emoji: a system without
//! the emoji font would show an empty box.

use leptos::prelude::*;

#[component]
pub(crate) fn Lock() -> impl IntoView {
    view! {
        <svg class="lock" viewBox="0 0 16 16" width="12" height="12" role="img" aria-label="private">
            <title>"Private room"</title>
            <path d="M5 7V5a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.6"/>
            <rect x="3" y="7" width="10" height="8" rx="1.5" fill="currentColor"/>
        </svg>
    }
}
