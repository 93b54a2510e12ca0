//! Inviting someone to the private room on screen.

use leptos::prelude::*;
use web_sys::SubmitEvent;

use crate::connection::Connection;
use crate::state::{InviteOutcome, Parts};
use crate::store::Store;

/// Shown in private rooms (not direct messages). The server knows who owns the room
/// and answers anyone else with `forbidden`, shown here as a sentence; `welcome` does
/// not say who owns which room, so the field is offered to every member.
#[component]
pub(crate) fn InviteForm() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let room = Memo::new(move |_| {
        chat.with(Parts::ROOMS, |s| {
            s.room()
                .filter(|r| r.private && r.dm.is_none())
                .map(|r| r.name.clone())
        })
    });
    let user = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let outcome = move || {
        if let Some(e) = local_error.get() {
            return Some((false, e));
        }
        chat.with(Parts::ROOMS, |s| match &s.invite_outcome {
            Some(InviteOutcome::Invited(text)) => Some((true, text.clone())),
            Some(InviteOutcome::Refused(text)) => Some((false, text.clone())),
            None => None,
        })
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(room) = room.get_untracked() else {
            return;
        };
        match conn.invite(&room, &user.get_untracked()) {
            Ok(()) => {
                local_error.set(None);
                user.set(String::new());
            }
            Err(e) => local_error.set(Some(e)),
        }
    };
    view! {
        <Show when=move || room.with(Option::is_some)>
            <form id="invite-form" class="invite-form" on:submit=on_submit>
                <input
                    id="invite-user"
                    name="user"
                    aria-label="User id to invite"
                    placeholder="Invite by user id"
                    autocomplete="off"
                    bind:value=user
                    aria-describedby="invite-status"
                />
                <button id="invite-submit" type="submit">"Invite"</button>
                <p
                    id="invite-status"
                    role="status"
                    class=move || match outcome() {
                        Some((true, _)) => "invite-status ok",
                        Some((false, _)) => "invite-status field-error",
                        None => "invite-status",
                    }
                >
                    {move || outcome().map(|(_, text)| text)}
                </p>
            </form>
        </Show>
    }
}
