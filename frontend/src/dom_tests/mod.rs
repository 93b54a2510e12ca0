//! Browser tests: components rendered into the real DOM of headless Chromium.
//!
//! Run with `cargo test -p frontend --target wasm32-unknown-unknown` (the runner,
//! wasm-bindgen-test-runner, is set in `.cargo/config.toml` and drives Chromium through
//! chromedriver). The logic behind the components is unit-tested natively; these tests
//! check what only a browser can tell: which elements and attributes actually end up in
//! the document.
//!
//! The chat tests mount real components with a real [`ChatState`] store and the real
//! connection context, as [`crate::App`] does. The connection opens no socket until a
//! nick is chosen, so no server is needed: the tests apply protocol frames to the store
//! themselves (exactly what the socket's `message` handler does), wait for Leptos to
//! update the DOM, and look at it.
//!
//! - `rich_text`: message text, links, markup.
//! - `message_list`: rows, grouping, notices, replays, bursts, typing.
//! - `composer`: the keyboard (Enter, Shift+Enter, Esc) and pending → sent.
//! - `conversation`: edits, deletions, reactions and replies in place; Up edits.
//! - `sidebar`: joined rooms with unread counts, the room directory.
//! - `room_view`: the components together as `App` lays them out (focus, unmounting).
//! - `inbox`: the bell, its list and reads, the room's level, messages naming us.
//! - `members`: a crowd's member list by the page, a small room's whole.
//! - `header`: the status badge, which says which transport carries the chat.

mod composer;
mod conversation;
mod header;
mod inbox;
mod members;
mod message_list;
mod people;
mod rich_text;
mod room_view;
mod sidebar;
mod store;

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;

use common::{ChatMessage, Limits, ServerMsg};
use leptos::mount::mount_to;
use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test_configure;
use web_sys::{Element, HtmlElement};

use crate::connection::{provide_connection_context, Connection};
use crate::state::ChatState;
use crate::store::Store;
use crate::Ui;

wasm_bindgen_test_configure!(run_in_browser);

/// Our nick in every chat test.
const ME: &str = "alice";

/// A fixed, recent time (ms since the epoch) for message timestamps.
const T0: u64 = 1_700_000_000_000;

/// A fresh `<div>` appended to the page's body.
fn new_host() -> HtmlElement {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a document");
    let host: HtmlElement = document
        .create_element("div")
        .expect("create a div")
        .unchecked_into();
    document
        .body()
        .expect("a body")
        .append_child(&host)
        .expect("append the div");
    host
}

/// Components mounted into their own `<div>` with the contexts `App` provides. Dropping
/// it unmounts them (which also stops the connection's clock) and removes the `<div>`,
/// two animation frames later: the components schedule work for the next frame (scroll
/// position, focus), and a test must not pull the view out from under it. (Unmounting
/// with such work pending is a real case with its own test in `room_view`.)
struct Page {
    host: HtmlElement,
    chat: Store,
    conn: Connection,
    /// The `UnmountHandle`, kept only to be dropped.
    mounted: Option<Box<dyn Any>>,
}

impl Drop for Page {
    fn drop(&mut self) {
        let mounted = self.mounted.take();
        let host = self.host.clone();
        // Frame callbacks run in the order they were requested: the first frame runs
        // everything requested before now (and by effects still queued), the second
        // then finds nothing of ours pending.
        request_animation_frame(move || {
            request_animation_frame(move || {
                drop(mounted);
                host.remove();
            });
        });
    }
}

/// Mounts `view` with a store holding `rooms` (the first on screen), the connection
/// context built on that store, and the [`Store`] and [`Ui`] contexts.
fn mount<V: IntoView + 'static>(rooms: &[&str], view: impl FnOnce() -> V + 'static) -> Page {
    let host = new_host();
    let rooms: Vec<String> = rooms.iter().map(|r| (*r).to_owned()).collect();
    let out = Rc::new(Cell::new(None));
    let handle = mount_to(host.clone(), {
        let out = Rc::clone(&out);
        move || {
            let chat = Store::new(ChatState::new(None, &rooms, "test".to_owned()));
            let conn = provide_connection_context(chat);
            provide_context(chat);
            provide_context(Ui {
                sidebar_open: RwSignal::new(false),
            });
            out.set(Some((chat, conn)));
            view()
        }
    });
    let (chat, conn) = out.take().expect("the mount closure ran");
    Page {
        host,
        chat,
        conn,
        mounted: Some(Box::new(handle)),
    }
}

impl Page {
    /// Applies server frames to the store, one update each, as the socket handler does.
    fn apply(&self, frames: impl IntoIterator<Item = ServerMsg>) {
        for frame in frames {
            self.chat.apply(frame, js_sys::Date::now() as u64);
        }
    }

    /// Welcomes us as [`ME`] and joins `room` (empty, head 0) with `nicks` in it.
    fn welcome_and_join(&self, room: &str, nicks: &[&str]) {
        self.apply([welcome(ME), joined(room, 0, nicks)]);
    }

    fn all(&self, selector: &str) -> Vec<Element> {
        all(&self.host, selector)
    }

    fn one(&self, selector: &str) -> Element {
        one(&self.host, selector)
    }

    fn find(&self, selector: &str) -> Option<Element> {
        self.host
            .query_selector(selector)
            .expect("a valid selector")
    }

    fn text(&self, selector: &str) -> String {
        text(&self.one(selector))
    }
}

/// Waits until Leptos has brought the DOM up to date. Effects run as microtasks on the
/// wasm-bindgen-futures executor; a `setTimeout(0)` callback is a task, so it runs
/// after all of them (including effects that trigger further effects).
async fn flush() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        web_sys::window()
            .expect("a window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0)
            .expect("setTimeout");
    });
    JsFuture::from(promise).await.expect("the timeout resolves");
}

/// Waits for the next animation frame, after the frame callbacks requested so far.
async fn next_frame() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        web_sys::window()
            .expect("a window")
            .request_animation_frame(&resolve)
            .expect("requestAnimationFrame");
    });
    JsFuture::from(promise).await.expect("the frame comes");
}

/// The elements under `root` matching `selector`, in document order.
fn all(root: &Element, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).expect("a valid selector");
    (0..list.length())
        .filter_map(|i| list.item(i))
        .map(|node| node.unchecked_into())
        .collect()
}

/// The one element under `root` matching `selector`; panics if there is none or more.
fn one(root: &Element, selector: &str) -> Element {
    let found = all(root, selector);
    assert_eq!(found.len(), 1, "expected exactly one {selector:?}");
    found.into_iter().next().expect("one element")
}

fn text(el: &Element) -> String {
    el.text_content().unwrap_or_default()
}

/// `HH:MM` in the browser's time zone, as the message list shows timestamps.
fn local_hhmm(ts: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

fn welcome(nick: &str) -> ServerMsg {
    ServerMsg::Welcome {
        nick: nick.to_owned(),
        session: "session-token".to_owned(),
        server: "test".to_owned(),
        limits: Limits::default(),
        user: format!("u:{nick}"),
        rooms: Vec::new(),
        inbox: Default::default(),
        quiet: None,
    }
}

fn joined(room: &str, head: u64, nicks: &[&str]) -> ServerMsg {
    ServerMsg::Joined {
        room: room.to_owned(),
        head,
        epoch: "epoch-1".to_owned(),
        nicks: nicks.iter().map(|n| (*n).to_owned()).collect(),
        recovered: None,
        members: None,
        next: None,
    }
}

/// A stored chat message; its id is derived from the nick and offset.
fn chat_message(room: &str, offset: u64, nick: &str, text: &str, ts: u64) -> ChatMessage {
    ChatMessage {
        reply_to: None,
        edited_ts: None,
        deleted: false,
        reactions: Default::default(),
        reaction_counts: Default::default(),
        room: room.to_owned(),
        offset,
        id: format!("{nick}-{offset}"),
        nick: nick.to_owned(),
        text: text.to_owned(),
        ts,
        user: Some(format!("u:{nick}")),
    }
}

fn message(room: &str, offset: u64, nick: &str, text: &str, ts: u64) -> ServerMsg {
    ServerMsg::Message(chat_message(room, offset, nick, text, ts))
}
