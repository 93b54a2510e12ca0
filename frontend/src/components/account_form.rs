//! Logging in to, or creating, an account on this server.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::auth::{self, Mode, SignIn, TokenKind, USER_MAX_CHARS};
use crate::connection::Connection;

/// User name and password (checked here, not by the browser's `required`, so every
/// problem is one of our sentences); the name is checked here first (1–32 of `a-z 0-9 - _ .`),
/// then the server answers with a token, or a reason shown as a sentence. Element ids
/// are prefixed by the mode (`login-…`, `register-…`), as both exist on the screen's
/// tabs.
#[component]
pub(crate) fn AccountForm(mode: Mode) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let user = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let (prefix, action, busy_label, password_autocomplete) = match mode {
        Mode::Login => ("login", "Log in", "Logging in…", "current-password"),
        Mode::Register => ("register", "Create account", "Creating…", "new-password"),
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let name = match auth::validate_user(&user.get_untracked()) {
            Ok(name) => name,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let secret = password.get_untracked();
        if secret.is_empty() {
            error.set(Some("Enter a password.".to_owned()));
            return;
        }
        error.set(None);
        busy.set(true);
        wasm_bindgen_futures::spawn_local(async move {
            let answer = auth::sign_in(mode, &name, &secret).await;
            // The form may be gone by now (another tab chosen): `try_` then does nothing.
            let _ = busy.try_set(false);
            match answer {
                Ok(token) => conn.sign_in(&SignIn {
                    token,
                    kind: TokenKind::Account,
                }),
                Err(e) => {
                    let _ = error.try_set(Some(e.message()));
                }
            }
        });
    };
    let id = move |suffix: &str| format!("{prefix}-{suffix}");
    view! {
        <form id=id("form") class="account-form" on:submit=on_submit>
            <label for=id("user")>"User name"</label>
            <input
                id=id("user")
                name="user"
                autocomplete="username"
                autocapitalize="none"
                spellcheck="false"
                maxlength=USER_MAX_CHARS
                bind:value=user
                aria-invalid=move || error.with(Option::is_some).to_string()
                aria-describedby=id("error")
            />
            <label for=id("password")>"Password"</label>
            <input
                id=id("password")
                name="password"
                type="password"
                autocomplete=password_autocomplete
                bind:value=password
            />
            <button id=id("submit") type="submit" disabled=move || busy.get()>
                {move || if busy.get() { busy_label } else { action }}
            </button>
            <p id=id("error") class="field-error" role="alert">
                {move || error.get()}
            </p>
        </form>
    }
}
