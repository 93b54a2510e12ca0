//! The "New room" dialog: a name and whether the room is private.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

/// Open while the store says so: `room_created` closes it (and puts the room on
/// screen), `room_exists` is shown in it.
#[component]
pub(crate) fn NewRoomDialog() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let open = move || chat.with(Parts::ROOMS, |s| s.new_room.is_some());
    let name = RwSignal::new(String::new());
    let private = RwSignal::new(true);
    let local_error = RwSignal::new(None::<String>);
    let error = move || {
        local_error.get().or_else(|| {
            chat.with(Parts::ROOMS, |s| {
                s.new_room.as_ref().and_then(|d| d.error.clone())
            })
        })
    };
    let waiting = move || {
        chat.with(Parts::ROOMS, |s| {
            s.new_room.as_ref().is_some_and(|d| d.waiting.is_some())
        })
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match conn.create_room(&name.get_untracked(), private.get_untracked()) {
            Ok(()) => local_error.set(None),
            Err(e) => local_error.set(Some(e)),
        }
    };
    let close = move || {
        local_error.set(None);
        name.set(String::new());
        conn.new_room_dialog(false);
    };
    view! {
        <Show when=open>
            <div class="dialog-backdrop">
                <div
                    id="new-room-dialog"
                    class="dialog"
                    role="dialog"
                    aria-modal="true"
                    aria-labelledby="new-room-title"
                    on:keydown=move |ev: web_sys::KeyboardEvent| {
                        if ev.key() == "Escape" {
                            close();
                        }
                    }
                >
                    <h2 id="new-room-title">"New room"</h2>
                    <form class="new-room-form" on:submit=on_submit>
                        <label for="new-room-name">"Room name"</label>
                        <input
                            id="new-room-name"
                            name="room"
                            autocomplete="off"
                            required
                            autofocus
                            bind:value=name
                            aria-invalid=move || error().is_some().to_string()
                            aria-describedby="new-room-error"
                        />
                        <label class="checkbox">
                            <input id="new-room-private" type="checkbox" name="private" bind:checked=private />
                            " Private: only people you invite can see and join it"
                        </label>
                        <p id="new-room-error" class="field-error" role="alert">
                            {error}
                        </p>
                        <div class="dialog-buttons">
                            <button id="new-room-cancel" type="button" on:click=move |_| close()>
                                "Cancel"
                            </button>
                            <button id="new-room-create" type="submit" disabled=waiting>
                                {move || if waiting() { "Creating…" } else { "Create" }}
                            </button>
                        </div>
                    </form>
                </div>
            </div>
        </Show>
    }
}
