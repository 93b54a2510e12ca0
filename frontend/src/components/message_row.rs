//! One stored message in the list: who and when, the quote of the message it answers,
//! its text (or "message deleted", or the editor), "(edited)", its reactions, and the
//! actions on it.
//!
//! What never changes (sender, time, whom it answers) is read once. What an edit, a
//! deletion or a reaction changes comes from the message's own trigger in the store,
//! so such a frame re-renders this row and no other.

use std::collections::BTreeSet;

use leptos::prelude::*;
use wasm_bindgen::JsValue;
use web_sys::{KeyboardEvent, TouchEvent};

use crate::components::{
    Avatar, MessageActions, MessageEditor, ReactionChips, ReplyQuote, RichText,
};
use crate::connection::Connection;
use crate::store::Store;
use crate::text::mentions;

/// How long a finger rests on a message before its actions open (phones).
const LONG_PRESS_MS: u64 = 500;

#[component]
pub(crate) fn MessageRow(
    /// The room the row belongs to.
    room: String,
    offset: u64,
    /// The rows shown without their meta line (same sender as the row before, shortly
    /// after).
    continued: Memo<BTreeSet<u64>>,
    /// The message an alert or a quote pointed at.
    highlight: Memo<Option<u64>>,
) -> impl IntoView {
    let chat = expect_context::<Store>();
    let found = chat.with_untracked(|s| {
        let r = s.rooms.get(&room)?;
        let m = r.messages.get(&offset)?;
        let mine = s.is_mine(&m.nick, m.user.as_deref());
        // Our nick named in someone else's message stands out.
        let named = !mine && s.me.as_deref().is_some_and(|me| mentions(&m.text, me));
        Some((m.clone(), mine, named, r.owned, s.user.clone()))
    });
    let Some((m, mine, named, owned, me)) = found else {
        return ().into_any();
    };
    // A notice the notifications API stored in the room's log: no sender.
    if m.is_notice() {
        return view! {
            <li class="notice info" data-offset=offset data-key=format!("m{offset}")>
                <span class="notice-text">{m.text}</span>
                <time>{hhmm(m.ts)}</time>
            </li>
        }
        .into_any();
    }
    // The message's own trigger: only a change to this message re-runs these. (Plain
    // closures rather than memos where a re-run is cheap: each memo type costs code.)
    let trigger = chat.watch(&room, offset);
    let quote = m
        .reply_to
        .map(|target| view! { <ReplyQuote room=room.clone() target=target /> });
    let shown = move || {
        trigger.track();
        chat.with_untracked(|s| s.rooms.get(&room)?.shown(offset, me.as_deref()))
    };
    // What the body shows, apart from the reactions: a reaction leaves the text alone.
    let body = {
        let shown = shown.clone();
        Memo::new(move |_| {
            shown()
                .map(|s| (s.text, s.edited, s.deleted, s.editing))
                .unwrap_or_default()
        })
    };
    let deleted = move || body.with(|b| b.2);
    let chips = move || shown().map(|s| s.reactions).unwrap_or_default();
    // Actions open by a long press (phones) or from the keyboard, not only on hover.
    let open = RwSignal::new(false);
    let press = StoredValue::new_local(None::<TimeoutHandle>);
    let cancel_press = move || {
        if let Some(handle) = press.try_update_value(Option::take).flatten() {
            handle.clear();
        }
    };
    let on_touchstart = move |_: TouchEvent| {
        cancel_press();
        let handle = set_timeout_with_handle(
            move || open.set(true),
            std::time::Duration::from_millis(LONG_PRESS_MS),
        );
        press.set_value(handle.ok());
    };
    on_cleanup(cancel_press);
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Escape" && open.get_untracked() {
            open.set(false);
        }
    };
    let sender = match m.user.clone().filter(|_| !mine) {
        Some(user) => sender_menu(m.nick.clone(), user).into_any(),
        None => view! { <bdi class="nick">{m.nick.clone()}</bdi> }.into_any(),
    };
    let text = move || {
        let (text, edited, deleted, editing) = body.get();
        if deleted {
            view! { <p class="tombstone">"message deleted"</p> }.into_any()
        } else if editing {
            view! { <MessageEditor offset=offset text=text /> }.into_any()
        } else {
            let marker = edited.then(|| view! { <span class="edited">"(edited)"</span> });
            view! {
                <RichText text=text />
                {marker}
            }
            .into_any()
        }
    };
    // One class attribute for all the row's states: every reactive attribute costs
    // code of its own in the bundle.
    let class = move || {
        let mut class = String::from("msg");
        for (on, name) in [
            (mine, " mine"),
            (named, " mentions-me"),
            (highlight.get() == Some(offset), " highlight"),
            (continued.with(|c| c.contains(&offset)), " continued"),
            (deleted(), " deleted"),
            (open.get(), " actions-open"),
        ] {
            if on {
                class.push_str(name);
            }
        }
        class
    };
    view! {
        <li
            class=class
            data-offset=offset
            data-key=format!("m{offset}")
            on:touchstart=on_touchstart
            on:touchend=move |_| cancel_press()
            on:touchmove=move |_| cancel_press()
            on:keydown=on_keydown
        >
            <div class="meta">
                <Avatar nick=m.nick.clone() user=m.user.clone() />
                {sender}
                <time>{hhmm(m.ts)}</time>
                {mine.then(|| view! { <span class="sent-state">"✓ sent"</span> })}
            </div>
            {quote}
            {text}
            {move || view! { <ReactionChips offset=offset chips=chips() /> }}
            // Hidden by the style sheet once the message is deleted.
            <MessageActions offset=offset may_edit=mine may_delete=mine || owned open=open />
        </li>
    }
    .into_any()
}

/// The sender's name as a button that offers "Message <nick>" (`open_dm`). The menu
/// is the row's own: rows are few (the rendered window), and a row's menu closes
/// when the row goes.
fn sender_menu(nick: String, user: String) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let open = RwSignal::new(false);
    let label = format!("Message {nick}");
    view! {
        <span class="sender-wrap">
            <button
                class="sender"
                type="button"
                data-user=user.clone()
                aria-haspopup="menu"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                <bdi class="nick">{nick}</bdi>
            </button>
            <Show when=move || open.get()>
                <span class="sender-menu" role="menu">
                    <button
                        class="message-user"
                        type="button"
                        role="menuitem"
                        data-user=user.clone()
                        on:click={
                            let user = user.clone();
                            move |_| {
                                open.set(false);
                                conn.open_dm(&user);
                            }
                        }
                    >
                        {label.clone()}
                    </button>
                </span>
            </Show>
        </span>
    }
}

/// Local time of day, `HH:MM`, of a server timestamp (ms since the epoch).
pub(crate) fn hhmm(ts: u64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}
