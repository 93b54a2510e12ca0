//! The inbox the bell opens: the user's alerts, newest first, unread ones marked, and
//! "Mark all read".

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::connection::Connection;
use crate::state::Parts;
use crate::store::Store;

/// The list. `close` hides it (after an alert is opened).
#[component]
pub(crate) fn InboxList(close: Callback<()>) -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    // Which alerts are listed changes only with the inbox; whether each is read also
    // with the rooms (reading a room reads its alerts), and that is per row.
    let seqs = Memo::new(move |_| {
        chat.with(Parts::INBOX, |s| {
            s.inbox.alerts.keys().rev().copied().collect::<Vec<u64>>()
        })
    });
    let any_unread = move || chat.with(Parts::INBOX | Parts::ROOMS, |s| s.unread_alerts() > 0);
    view! {
        <section id="inbox" class="inbox" role="dialog" aria-label="Notifications">
            <header class="inbox-head">
                <h2>"Notifications"</h2>
                <button
                    id="mark-all-read"
                    type="button"
                    disabled=move || !any_unread()
                    on:click=move |_| conn.read_all_alerts()
                >
                    "Mark all read"
                </button>
            </header>
            <Show when=move || seqs.with(Vec::is_empty)>
                <p class="inbox-empty">"No notifications yet."</p>
            </Show>
            <ol class="alerts">
                <For
                    each=move || seqs.get()
                    key=|seq| *seq
                    children=move |seq| alert_row(conn, chat, seq, close)
                />
            </ol>
        </section>
    }
}

/// One alert. Its text never changes, so it is read once; whether it is read is
/// followed.
fn alert_row(conn: Connection, chat: Store, seq: u64, close: Callback<()>) -> impl IntoView {
    let alert = chat.with_untracked(|s| s.inbox.alerts.get(&seq).cloned());
    let Some(alert) = alert else {
        return ().into_any();
    };
    let unread = move || {
        chat.with(Parts::INBOX | Parts::ROOMS, |s| {
            s.inbox
                .alerts
                .get(&seq)
                .is_some_and(|a| !s.alert_is_read(a))
        })
    };
    let (title, body, kind) = (alert.title.clone(), alert.body.clone(), alert.kind.as_str());
    let when = when(alert.ts);
    view! {
        <li class="alert-item" class:not-read=unread data-seq=seq data-kind=kind>
            <button
                type="button"
                class="alert-open"
                on:click=move |_| {
                    close.run(());
                    conn.open_alert(&alert);
                }
            >
                <span class="alert-title">
                    <Show when=unread>
                        <span class="unread-dot" aria-label="unread">"●"</span>
                        " "
                    </Show>
                    <bdi>{title}</bdi>
                </span>
                <span class="alert-body" dir="auto">{body}</span>
                <time class="alert-time">{when}</time>
            </button>
        </li>
    }
    .into_any()
}

/// When an alert was made, in the browser's time zone: `HH:MM` today, else the date too.
fn when(ts: u64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    let today = js_sys::Date::new_0();
    let hhmm = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    if date.to_date_string() == today.to_date_string() {
        hhmm
    } else {
        format!(
            "{} {}",
            String::from(date.to_locale_date_string("default", &JsValue::UNDEFINED)),
            hhmm
        )
    }
}
