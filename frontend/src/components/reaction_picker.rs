//! The reaction picker: exactly the server's fixed set of reactions
//! (`common::validate::REACTIONS`). Choosing one adds it, or takes it back if it is
//! ours already. Esc closes it; focus starts on the first reaction.

use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use web_sys::KeyboardEvent;

use crate::connection::Connection;

#[component]
pub(crate) fn ReactionPicker(
    offset: u64,
    /// Set while the picker is open; cleared when it closes.
    picking: RwSignal<bool>,
    /// The row's actions, open after a long press: closed with the picker.
    open: RwSignal<bool>,
) -> impl IntoView {
    let on_done = move || {
        picking.set(false);
        open.set(false);
    };
    let conn = expect_context::<Connection>();
    let menu = NodeRef::<Div>::new();
    // The keyboard goes to the first reaction, so arrows and Tab walk them (unless the
    // picker closed before the frame came: its node ref is disposed then).
    request_animation_frame(move || {
        let first = menu
            .try_get_untracked()
            .flatten()
            .and_then(|m| m.query_selector("button").ok().flatten())
            .and_then(|b| b.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(first) = first {
            let _ = first.focus();
        }
    });
    let on_keydown = move |ev: KeyboardEvent| {
        let step: i32 = match ev.key().as_str() {
            "Escape" => {
                ev.stop_propagation();
                on_done();
                return;
            }
            "ArrowRight" | "ArrowDown" => 1,
            "ArrowLeft" | "ArrowUp" => -1,
            _ => return,
        };
        ev.prevent_default();
        let Some(menu) = menu.get_untracked() else {
            return;
        };
        let Ok(buttons) = menu.query_selector_all("button") else {
            return;
        };
        let n = buttons.length() as i32;
        let active = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element());
        let at = (0..n)
            .find(|i| {
                buttons
                    .item(*i as u32)
                    .map(|b| b.unchecked_into::<web_sys::Element>())
                    == active
            })
            .unwrap_or(0);
        if let Some(next) = buttons
            .item(((at + step).rem_euclid(n)) as u32)
            .and_then(|b| b.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = next.focus();
        }
    };
    let choices = common::validate::REACTIONS
        .iter()
        .map(|emoji| {
            view! {
                <button
                    type="button"
                    class="pick"
                    role="menuitem"
                    data-emoji=*emoji
                    aria-label=format!("React with {emoji}")
                    on:click=move |_| {
                        conn.toggle_reaction(offset, emoji);
                        on_done();
                    }
                >
                    {*emoji}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="reaction-picker" role="menu" aria-label="Add a reaction" node_ref=menu on:keydown=on_keydown>
            {choices}
        </div>
    }
}
