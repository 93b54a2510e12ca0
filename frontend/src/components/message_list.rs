//! The conversation of the room on screen: a bounded window of messages and notices,
//! our pending sends, and the scrolling that goes with it.
//!
//! Scrolling rules: at the bottom the view follows new messages; scrolled up, it stays
//! exactly where it is while rows are added or dropped above or below (we restore the
//! position of an anchor row ourselves, since rows come and go on both ends); near the
//! top it loads older rows.

use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlElement;

use crate::components::message_row::hhmm;
use crate::components::{Avatar, MessageRow, ReplyQuote, RichText};
use crate::connection::Connection;
use crate::state::{typing_line, NoticeKind, Parts, Row};
use crate::store::Store;

/// How close to the bottom (in CSS pixels) still counts as "reading the latest".
const STICK_PX: i32 = 48;

/// How close to the top starts loading older rows.
const TOP_PX: i32 = 200;

/// The scroller, the rows, and the "jump to latest" button.
#[component]
pub(crate) fn MessageList() -> impl IntoView {
    let conn = expect_context::<Connection>();
    let chat = expect_context::<Store>();
    let scroller = NodeRef::<Div>::new();
    // The conversation of the room on screen: these re-run for messages, never for
    // typing, presence or the directory.
    let parts = Parts::MESSAGES | Parts::ROOMS;
    let rows =
        Memo::new(move |_| chat.with(parts, |s| s.room().map(|r| r.rows()).unwrap_or_default()));
    let pending = Memo::new(move |_| {
        chat.with(parts, |s| {
            s.room()
                .map(|r| r.pending.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let room_name = Memo::new(move |_| chat.with(Parts::ROOMS, |s| s.current.clone()));
    let at_bottom = Memo::new(move |_| chat.with(parts, |s| s.room().is_none_or(|r| r.at_bottom)));
    let frozen = Memo::new(move |_| chat.with(parts, |s| s.room().is_some_and(|r| r.is_frozen())));
    let can_load_older =
        Memo::new(move |_| chat.with(parts, |s| s.room().is_some_and(|r| r.can_load_older())));
    let loading =
        Memo::new(move |_| chat.with(parts, |s| s.room().is_some_and(|r| r.loading_older)));
    // Which rows continue the previous one's sender: a row's key is its offset alone,
    // so this changes its look in place.
    let continued = Memo::new(move |_| {
        rows.with(|rows| {
            rows.iter()
                .filter_map(|row| match row {
                    Row::Message {
                        offset,
                        continued: true,
                    } => Some(*offset),
                    _ => None,
                })
                .collect::<std::collections::BTreeSet<u64>>()
        })
    });
    // The message an alert or a reply's quote pointed at, if it is in this room.
    let highlight = Memo::new(move |_| {
        chat.with(Parts::ROOMS | Parts::MESSAGES, |s| {
            s.highlight
                .as_ref()
                .filter(|(room, _)| s.current.as_ref() == Some(room))
                .map(|(_, offset)| *offset)
        })
    });
    // The row the person is looking at, and its distance from the top of the view.
    let anchor = StoredValue::new(None::<(String, i32)>);
    // The scroll position we last saw or set: only a move up from it is the person
    // leaving the bottom; rows added below it are not.
    let last_top = StoredValue::new(0);

    // Rows changed: keep the view where the person left it, or at the bottom. Runs a
    // frame later, once the new rows are laid out.
    Effect::new(move |_| {
        // `with`, not `track`: a memo only recomputes when read.
        rows.with(|_| ());
        pending.with(|_| ());
        room_name.with(|_| ());
        let stick = at_bottom.get_untracked();
        request_animation_frame(move || {
            let Some(el) = scroller.try_get_untracked().flatten() else {
                return;
            };
            if stick {
                el.set_scroll_top(el.scroll_height());
            } else if let Some((key, delta)) = anchor.get_value() {
                if let Some(row) = find_row(&el, &key) {
                    el.set_scroll_top(row.offset_top() - delta);
                }
            }
            last_top.set_value(el.scroll_top());
            anchor.set_value(first_visible(&el));
        });
    });

    // An alert opened a message: bring its row into view once it is rendered (its
    // room's messages may still be on their way), then leave the scrolling to the
    // person.
    let revealed = StoredValue::new(None::<(u64, u64)>);
    Effect::new(move |_| {
        rows.with(|_| ());
        let Some(offset) = highlight.get() else {
            revealed.set_value(None);
            return;
        };
        // Pointing at the same message again scrolls to it again.
        let seq = chat.with(Parts::ROOMS | Parts::MESSAGES, |s| s.highlight_seq);
        if revealed.get_value() == Some((offset, seq)) {
            return;
        }
        request_animation_frame(move || {
            let Some(el) = scroller.try_get_untracked().flatten() else {
                return;
            };
            if let Some(row) = find_row(&el, &format!("m{offset}")) {
                let options = web_sys::ScrollIntoViewOptions::new();
                options.set_block(web_sys::ScrollLogicalPosition::Center);
                row.scroll_into_view_with_scroll_into_view_options(&options);
                revealed.set_value(Some((offset, seq)));
            }
        });
    });

    let on_scroll = move |_| {
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        anchor.set_value(first_visible(&el));
        let top = el.scroll_top();
        // Our own scroll to the bottom is reported a frame later, by which time more
        // rows may have arrived below: that is not the person scrolling up.
        let bottom = top + el.client_height() >= el.scroll_height() - STICK_PX
            || (at_bottom.get_untracked() && top >= last_top.get_value());
        last_top.set_value(top);
        if bottom != at_bottom.get_untracked() || (bottom && frozen.get_untracked()) {
            conn.set_at_bottom(bottom);
        }
        if el.scroll_top() < TOP_PX && can_load_older.get_untracked() && !loading.get_untracked() {
            conn.load_older();
        }
    };

    // The one reader of the typing part; the clock expires typists.
    let typing = move || {
        let now = conn.clock.get();
        chat.with(Parts::TYPING | Parts::ROOMS, |s| {
            s.room()
                .map(|r| typing_line(&r.typists(now, s.me.as_deref())))
                .unwrap_or_default()
        })
    };
    let empty =
        move || rows.with(Vec::is_empty) && pending.with(Vec::is_empty) && !can_load_older.get();

    view! {
        <div class="scroller" node_ref=scroller on:scroll=on_scroll>
            <Show when=move || can_load_older.get()>
                <button class="load-older" on:click=move |_| conn.load_older() disabled=move || loading.get()>
                    {move || if loading.get() { "Loading…" } else { "Load older messages" }}
                </button>
            </Show>
            <ol class="messages" aria-label="Messages">
                <Show when=empty>
                    <li class="empty">"No messages yet. Say hi!"</li>
                </Show>
                <For
                    each=move || {
                        let room = room_name.get();
                        rows.get().into_iter().map(move |row| (room.clone(), row)).collect::<Vec<_>>()
                    }
                    // Identity only (room and offset, or notice number): a row's state
                    // (continued, sent) updates it in place instead of remounting it.
                    key=|(room, row)| (room.clone(), row.key())
                    children=move |(room, row)| {
                        row_view(chat, room.unwrap_or_default(), row, continued, highlight)
                    }
                />
                <Show when=move || !frozen.get()>
                    <For
                        each=move || pending.get()
                        key=|id| id.clone()
                        children=move |id| pending_view(conn, chat, &id)
                    />
                </Show>
            </ol>
        </div>
        <Show when=move || frozen.get() || !at_bottom.get()>
            <button class="jump-latest" on:click=move |_| conn.jump_to_latest()>
                "Jump to latest ↓"
            </button>
        </Show>
        <p class="typing" aria-live="off">
            {typing}
        </p>
    }
}

/// Keeps the view at the bottom when something below the list (the reply bar) or in
/// a row (the editor) changed its height, if the person was reading the newest rows.
pub(crate) fn keep_at_bottom(chat: Store) {
    if !chat.with_untracked(|s| s.room().is_some_and(|r| r.at_bottom)) {
        return;
    }
    request_animation_frame(|| {
        let scroller = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector(".scroller").ok().flatten());
        if let Some(el) = scroller {
            el.set_scroll_top(el.scroll_height());
        }
    });
}

/// The first row whose bottom is below the top of the view, as (key, offset from the
/// view's top).
fn first_visible(el: &HtmlElement) -> Option<(String, i32)> {
    let top = el.scroll_top();
    let rows = el.query_selector_all("[data-key]").ok()?;
    for i in 0..rows.length() {
        let row = rows.item(i)?.dyn_into::<HtmlElement>().ok()?;
        if row.offset_top() + row.offset_height() > top {
            return Some((row.get_attribute("data-key")?, row.offset_top() - top));
        }
    }
    None
}

fn find_row(el: &HtmlElement, key: &str) -> Option<HtmlElement> {
    el.query_selector(&format!("[data-key=\"{key}\"]"))
        .ok()
        .flatten()?
        .dyn_into()
        .ok()
}

/// One row: a message (its own component, which follows edits, deletions and
/// reactions by itself) or a notice, which never changes and is read once.
fn row_view(
    chat: Store,
    room: String,
    row: Row,
    continued: Memo<std::collections::BTreeSet<u64>>,
    highlight: Memo<Option<u64>>,
) -> AnyView {
    match row {
        Row::Message { offset, .. } => {
            view! { <MessageRow room=room offset=offset continued=continued highlight=highlight /> }
                .into_any()
        }
        Row::Notice(seq) => {
            let Some(n) = chat.with_untracked(|s| {
                s.rooms
                    .get(&room)?
                    .notices
                    .iter()
                    .find(|n| n.seq == seq)
                    .cloned()
            }) else {
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
                <li class=class data-key=format!("n{seq}")>
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
fn pending_view(conn: Connection, chat: Store, id: &str) -> impl IntoView {
    let id = id.to_owned();
    let (room, (text, reply_to), nick, user) = chat.with_untracked(|s| {
        (
            s.current.clone().unwrap_or_default(),
            s.room()
                .and_then(|r| r.pending.get(&id))
                .map(|p| (p.text.clone(), p.reply_to))
                .unwrap_or_default(),
            s.me.clone().unwrap_or_default(),
            s.user.clone(),
        )
    });
    // A memo: the row subscribes to its own error, not to every change of the store.
    let key = id.clone();
    let quote = reply_to.map(|target| view! { <ReplyQuote room=room.clone() target=target /> });
    let error = Memo::new(move |_| {
        chat.with(Parts::MESSAGES, |s| {
            s.rooms.get(&room)?.pending.get(&key)?.error.clone()
        })
    });
    let failed = move || error.with(Option::is_some);
    let state = move || if failed() { "not sent" } else { "sending…" };
    let retry_room = chat.with_untracked(|s| s.current.clone().unwrap_or_default());
    let retry_id = id.clone();
    view! {
        <li class="msg mine pending" class:failed=failed data-id=id.clone() data-key=format!("p{id}")>
            <div class="meta">
                <Avatar nick=nick.clone() user=user />
                <bdi class="nick">{nick}</bdi>
                <span class="send-state">{state}</span>
            </div>
            {quote}
            <RichText text=text />
            <Show when=failed>
                <p class="field-error">
                    {move || error.get()} " "
                    <button class="retry" on:click={
                        let (room, id) = (retry_room.clone(), retry_id.clone());
                        move |_| conn.retry(&room, &id)
                    }>"Retry"</button>
                </p>
            </Show>
        </li>
    }
}
