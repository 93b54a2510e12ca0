//! Editing one of our messages in place: Enter saves, Shift+Enter is a new line, Esc
//! cancels. The keyboard goes back to the composer afterwards.

use leptos::html::Textarea;
use leptos::prelude::*;
use web_sys::KeyboardEvent;

use crate::components::message_actions::focus_composer;
use crate::components::message_list::keep_at_bottom;
use crate::connection::Connection;
use crate::store::Store;

#[component]
pub(crate) fn MessageEditor(offset: u64, text: String) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let draft = RwSignal::new(text);
    let error = RwSignal::new(None::<String>);
    let field = NodeRef::<Textarea>::new();
    // The editor is taller than the text: the last row must not slip out of view.
    keep_at_bottom(expect_context::<Store>());
    // The editor may be gone by the next frame (saved, cancelled, the page left):
    // then there is nothing to focus, and its node ref is disposed.
    request_animation_frame(move || {
        if let Some(el) = field.try_get_untracked().flatten() {
            let _ = el.focus();
            let end = el.value().encode_utf16().count() as u32;
            let _ = el.set_selection_range(end, end);
        }
    });
    let save = move || match conn.save_edit(offset, &draft.get_untracked()) {
        Ok(()) => focus_composer(),
        Err(e) => error.set(Some(e)),
    };
    let cancel = move || {
        conn.cancel_edit();
        focus_composer();
    };
    let on_keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        "Enter" if !ev.shift_key() && !ev.is_composing() => {
            ev.prevent_default();
            save();
        }
        "Escape" => {
            ev.prevent_default();
            ev.stop_propagation();
            cancel();
        }
        _ => {}
    };
    view! {
        <div class="editor">
            <textarea
                class="edit-field"
                aria-label="Edit message"
                rows="2"
                node_ref=field
                bind:value=draft
                on:keydown=on_keydown
            ></textarea>
            <div class="editor-buttons">
                <span class="hint">"Enter to save, Esc to cancel"</span>
                <button type="button" class="edit-cancel" on:click=move |_| cancel()>
                    "Cancel"
                </button>
                <button type="button" class="edit-save" on:click=move |_| save()>
                    "Save"
                </button>
            </div>
            <p class="field-error" role="alert">
                {move || error.get()}
            </p>
        </div>
    }
}
