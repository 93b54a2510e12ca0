//! The conversation: messages, notifications between them, and our pending sends.

use leptos::html::Ol;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::state::{ChatState, NoticeKind, Row};

/// How close to the bottom (in CSS pixels) still counts as "reading the latest", so new
/// messages keep the list scrolled down; further up, the person is reading older ones
/// and is left alone.
const STICK_PX: i32 = 48;

/// The scrolling list. Rows are keyed (by offset, notice number or message id), so a
/// new frame adds one row instead of re-rendering the list.
#[component]
pub(crate) fn MessageList() -> impl IntoView {
    let chat = expect_context::<ReadSignal<ChatState>>();
    let list = NodeRef::<Ol>::new();
    // The list's height when we last looked. Whether the person was reading the latest
    // rows is judged against it: a scroll listener would misjudge a burst, where rows
    // keep arriving between our scrolling and the browser's scroll event.
    let seen_height = StoredValue::new(0);
    // Scrolling is the DOM (outside the reactive graph), hence an effect. It waits a
    // frame so the rows added by this change are laid out first.
    Effect::new(move |_| {
        chat.with(|s| (s.messages.len(), s.notices.len(), s.pending.len()));
        request_animation_frame(move || {
            if let Some(el) = list.get_untracked() {
                let was_at_bottom =
                    el.scroll_top() + el.client_height() >= seen_height.get_value() - STICK_PX;
                if was_at_bottom {
                    el.set_scroll_top(el.scroll_height());
                }
                seen_height.set_value(el.scroll_height());
            }
        });
    });
    let empty = move || {
        chat.with(|s| s.messages.is_empty() && s.notices.is_empty() && s.pending.is_empty())
    };
    view! {
        <ol class="messages" role="log" aria-label="Messages" node_ref=list>
            <Show when=empty>
                <li class="empty">"No messages yet. Say hi!"</li>
            </Show>
            <For
                each=move || chat.with(ChatState::rows)
                key=|row| *row
                children=move |row| row_view(chat, row)
            />
            <For
                each=move || chat.with(|s| s.pending.keys().cloned().collect::<Vec<_>>())
                key=|id| id.clone()
                children=move |id| pending_view(chat, id)
            />
        </ol>
    }
}

/// One row. Stored messages and notices never change, so the data is read once,
/// without subscribing.
fn row_view(chat: ReadSignal<ChatState>, row: Row) -> AnyView {
    match row {
        Row::Message(offset) => {
            let found = chat.with_untracked(|s| {
                s.messages
                    .get(&offset)
                    .map(|m| (m.clone(), s.me.as_deref() == Some(m.nick.as_str())))
            });
            let Some((m, mine)) = found else {
                return ().into_any();
            };
            view! {
                <li class="msg" class:mine=mine>
                    <div class="meta">
                        <span class="nick">{m.nick}</span>
                        <time>{hhmm(m.ts)}</time>
                    </div>
                    <p class="text">{m.text}</p>
                </li>
            }
            .into_any()
        }
        Row::Notice(seq) => {
            let Some(n) = chat.with_untracked(|s| s.notices.iter().find(|n| n.seq == seq).cloned())
            else {
                return ().into_any();
            };
            let class = match n.kind {
                NoticeKind::Joined => "notice joined",
                NoticeKind::Left => "notice left",
                NoticeKind::Info => "notice info",
                NoticeKind::Error => "notice error",
            };
            let time = (n.ts > 0).then(|| view! { <time>{hhmm(n.ts)}</time> });
            view! {
                <li class=class>
                    <span class="notice-text">{n.text}</span>
                    {time}
                </li>
            }
            .into_any()
        }
    }
}

/// A message we sent that is not acknowledged yet; it turns into a normal row (keyed
/// by its offset) when the ack or its echo arrives.
fn pending_view(chat: ReadSignal<ChatState>, id: String) -> impl IntoView {
    let (text, nick) = chat.with_untracked(|s| {
        (
            s.pending
                .get(&id)
                .map(|p| p.text.clone())
                .unwrap_or_default(),
            s.me.clone().unwrap_or_default(),
        )
    });
    // A memo: the row subscribes to its own error, not to every change of the store.
    let error = Memo::new(move |_| chat.with(|s| s.pending.get(&id).and_then(|p| p.error.clone())));
    let failed = move || error.with(Option::is_some);
    let state = move || if failed() { "not sent" } else { "sending…" };
    view! {
        <li class="msg mine pending" class:failed=failed>
            <div class="meta">
                <span class="nick">{nick}</span>
                <span class="send-state">{state}</span>
            </div>
            <p class="text">{text}</p>
            <p class="field-error">{move || error.get()}</p>
        </li>
    }
}

/// Local time of day, `HH:MM`, of a server timestamp (ms since the epoch).
fn hhmm(ts: u64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}
