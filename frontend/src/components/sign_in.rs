//! The first screen: join as a guest, log in, or register.

use leptos::prelude::*;

use crate::auth::Mode;
use crate::components::{AccountForm, NickForm};
use crate::state::Parts;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Guest,
    Login,
    Register,
}

/// Three tabs: "Guest" (a nick, as before accounts existed), "Log in" and "Register".
/// Why the screen is back (an expired sign-in, signed out elsewhere) is said above
/// them. A server that admits no guests disables the guest tab and says so.
#[component]
pub(crate) fn SignIn() -> impl IntoView {
    let chat = expect_context::<Store>();
    let chosen = RwSignal::new(Tab::Guest);
    let guests_disabled = move || chat.with(Parts::SESSION, |s| s.guests_disabled);
    // Derived, not written by an effect: the guest tab cannot be the one shown once
    // the server refused guests.
    let tab = move || match chosen.get() {
        Tab::Guest if guests_disabled() => Tab::Login,
        t => t,
    };
    let notice = move || chat.with(Parts::SESSION, |s| s.sign_in_error.clone());
    let tab_button = move |which: Tab, id: &'static str, label: &'static str| {
        view! {
            <button
                id=id
                class="tab"
                type="button"
                role="tab"
                aria-controls="sign-in-panel"
                aria-selected=move || (tab() == which).to_string()
                class:selected=move || tab() == which
                disabled=move || which == Tab::Guest && guests_disabled()
                on:click=move |_| chosen.set(which)
            >
                {label}
            </button>
        }
    };
    view! {
        <section id="sign-in" class="sign-in" aria-label="Sign in">
            {move || {
                notice()
                    .map(|text| {
                        view! {
                            <p id="sign-in-notice" class="sign-in-notice" role="alert">
                                {text}
                            </p>
                        }
                    })
            }}
            <div class="tabs" role="tablist" aria-label="How to sign in">
                {tab_button(Tab::Guest, "tab-guest", "Guest")}
                {tab_button(Tab::Login, "tab-login", "Log in")}
                {tab_button(Tab::Register, "tab-register", "Register")}
            </div>
            <Show when=guests_disabled>
                <p id="guests-disabled" class="guests-disabled">
                    "This server does not admit guests: log in or register to chat."
                </p>
            </Show>
            <div id="sign-in-panel" class="tab-panel" role="tabpanel" data-tab=move || {
                match tab() {
                    Tab::Guest => "guest",
                    Tab::Login => "login",
                    Tab::Register => "register",
                }
            }>
                {move || match tab() {
                    Tab::Guest => view! { <NickForm /> }.into_any(),
                    Tab::Login => view! { <AccountForm mode=Mode::Login /> }.into_any(),
                    Tab::Register => view! { <AccountForm mode=Mode::Register /> }.into_any(),
                }}
            </div>
        </section>
    }
}
