//! The actions on a message: react, reply, edit, delete (with a confirmation).
//!
//! The toolbar shows on hover (desktop), on a long press (phones: the row's
//! `actions-open`) and whenever focus is inside the row, so every action is reachable
//! from the keyboard. Deleting asks first, in place.

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;

use crate::components::ReactionPicker;
use crate::connection::Connection;

#[component]
pub(crate) fn MessageActions(
    offset: u64,
    /// Ours: it may be edited.
    may_edit: bool,
    /// Ours, or in a room we own.
    may_delete: bool,
    /// The row's actions are open (a long press); any action closes them.
    open: RwSignal<bool>,
) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let picking = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let edit = may_edit.then(|| {
        view! {
            <button
                type="button"
                class="act act-edit"
                on:click=move |_| {
                    open.set(false);
                    conn.start_edit(offset);
                }
            >
                "Edit"
            </button>
        }
    });
    let delete = may_delete.then(|| {
        view! {
            <button
                type="button"
                class="act act-delete"
                aria-expanded=move || confirming.get().to_string()
                on:click=move |_| confirming.update(|c| *c = !*c)
            >
                "Delete"
            </button>
        }
    });
    view! {
        <div class="actions" role="toolbar" aria-label="Message actions">
            <button
                type="button"
                class="act act-react"
                aria-haspopup="menu"
                aria-expanded=move || picking.get().to_string()
                on:click=move |_| picking.update(|p| *p = !*p)
            >
                "React"
            </button>
            <button
                type="button"
                class="act act-reply"
                on:click=move |_| {
                    open.set(false);
                    conn.reply_to(offset);
                    focus_composer();
                }
            >
                "Reply"
            </button>
            {edit}
            {delete}
        </div>
        // The picker or the confirmation, in one reactive child (each costs code).
        {move || {
            if picking.get() {
                view! { <ReactionPicker offset=offset picking=picking open=open /> }.into_any()
            } else if confirming.get() {
                view! {
                    <div class="confirm-delete" role="group" aria-label="Delete this message?">
                        <span>"Delete this message?"</span>
                        <button
                            type="button"
                            class="confirm-yes danger"
                            on:click=move |_| {
                                confirming.set(false);
                                open.set(false);
                                conn.delete_message(offset);
                            }
                        >
                            "Delete"
                        </button>
                        <button type="button" class="confirm-no" on:click=move |_| confirming.set(false)>
                            "Cancel"
                        </button>
                    </div>
                }
                    .into_any()
            } else {
                ().into_any()
            }
        }}
    }
}

/// Puts the keyboard in the message field (after choosing to reply, or closing the
/// editor).
pub(crate) fn focus_composer() {
    let field = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("textarea[name=message]").ok().flatten())
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(field) = field {
        let _ = field.focus();
    }
}
