//! The WebSocket to the server, shared by every component through one context.
//!
//! Components never see the socket: they read [`Connection::status`] and call
//! [`Connection::join`], [`Connection::send_text`] and [`Connection::reconnect_now`].
//! Incoming frames are decoded here and applied to the [`ChatState`] store right in the
//! `message` handler, so a burst of frames cannot be lost the way it could through a
//! "latest message" signal. Whatever frames `apply` asks for (join, history, resends)
//! go straight back out.

use std::time::Duration;

use common::{ClientMsg, CloseCode, ServerMsg, WS_PATH};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, EventTarget, MessageEvent, WebSocket};

use crate::prefs;
use crate::state::ChatState;

/// The connection as the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The first connection is being opened.
    Connecting,
    /// The server welcomed us.
    Connected,
    /// The connection dropped; a new one is scheduled or being opened.
    Reconnecting,
    /// Not connected and not trying: no nick chosen yet, a refused nick, or the
    /// session moved to another tab.
    Offline,
}

impl Status {
    /// The word shown in the header.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Reconnecting => "reconnecting",
            Status::Offline => "offline",
        }
    }
}

/// The handle components get from the context. It is `Copy`: every field is an arena
/// handle, and the socket itself stays on the browser's thread in `link`.
#[derive(Clone, Copy)]
pub(crate) struct Connection {
    /// What the header shows.
    pub(crate) status: ReadSignal<Status>,
    set_status: WriteSignal<Status>,
    chat: RwSignal<ChatState>,
    /// The socket, its event handlers and the reconnect timer. Local storage because
    /// JS objects cannot cross threads.
    link: StoredValue<Link, LocalStorage>,
}

/// The browser-side objects behind a [`Connection`].
#[derive(Default)]
struct Link {
    /// The socket currently in use; events from older sockets are ignored.
    socket: Option<WebSocket>,
    /// Created once and attached to every socket, so no handler is ever dropped while
    /// the browser might still call it.
    handlers: Option<Handlers>,
    /// Failed attempts since the last `welcome`, for the backoff.
    attempt: u32,
    /// The pending reconnect, cancelled when the person reconnects by hand.
    retry: Option<TimeoutHandle>,
}

struct Handlers {
    open: Closure<dyn FnMut(Event)>,
    message: Closure<dyn FnMut(MessageEvent)>,
    close: Closure<dyn FnMut(CloseEvent)>,
}

impl Handlers {
    fn new(conn: Connection) -> Self {
        Handlers {
            open: Closure::new(move |ev: Event| conn.on_open(&ev)),
            message: Closure::new(move |ev: MessageEvent| conn.on_message(&ev)),
            close: Closure::new(move |ev: CloseEvent| conn.on_close(&ev)),
        }
    }
}

/// Creates the connection context for `chat`. Nothing connects until [`Connection::join`].
pub(crate) fn provide_connection_context(chat: RwSignal<ChatState>) -> Connection {
    let (status, set_status) = signal(Status::Offline);
    let conn = Connection {
        status,
        set_status,
        chat,
        link: StoredValue::new_local(Link::default()),
    };
    provide_context(conn);
    on_cleanup(move || conn.shut_down());
    conn
}

impl Connection {
    /// Joins the chat as `nick`: validates it, then says `hello` on the open socket or
    /// opens one. Returns why the nick is not acceptable.
    pub(crate) fn join(self, nick: &str) -> Result<(), String> {
        let limits = self.chat.with_untracked(|s| s.limits.clone());
        let nick = common::validate::nick(nick, &limits).map_err(|e| e.to_string())?;
        self.chat.update(|s| s.choose_nick(nick));
        let ready = self
            .link
            .with_value(|l| l.socket.as_ref().map(WebSocket::ready_state));
        match ready {
            // A socket whose `hello` was refused stays open: retry on it.
            Some(WebSocket::OPEN) => {
                if let Some(hello) = self.chat.with_untracked(ChatState::hello) {
                    self.send(&hello);
                }
            }
            // `on_open` will say hello with the nick just chosen.
            Some(WebSocket::CONNECTING) => {}
            _ => self.reconnect_now(),
        }
        Ok(())
    }

    /// Posts a message to the room. It shows as pending until acknowledged; when the
    /// socket is down it goes out after the next join. Returns why the text is refused.
    pub(crate) fn send_text(self, text: &str) -> Result<(), String> {
        let limits = self.chat.with_untracked(|s| s.limits.clone());
        let text = common::validate::text(text, &limits).map_err(|e| e.to_string())?;
        let now = js_sys::Date::now() as u64;
        if let Some(frame) = self.chat.try_update(|s| s.queue_send(text, now)).flatten() {
            self.send(&frame);
        }
        Ok(())
    }

    /// Connects now, forgetting the backoff (also after the session moved elsewhere).
    pub(crate) fn reconnect_now(self) {
        let retry = self.link.try_update_value(|l| {
            l.attempt = 0;
            l.retry.take()
        });
        if let Some(retry) = retry.flatten() {
            retry.clear();
        }
        self.chat.update(|s| s.session_taken = false);
        self.connect();
    }

    fn connect(self) {
        let status = if self.chat.with_untracked(|s| s.me.is_some()) {
            Status::Reconnecting
        } else {
            Status::Connecting
        };
        self.set_status.set(status);
        let location = window().location();
        let url = ws_url(
            &location.protocol().unwrap_or_default(),
            &location.host().unwrap_or_default(),
        );
        let socket = match WebSocket::new(&url) {
            Ok(socket) => socket,
            Err(err) => {
                leptos::logging::warn!("cannot open {url}: {err:?}");
                self.schedule_reconnect();
                return;
            }
        };
        let old = self.link.try_update_value(|l| {
            let h = l.handlers.get_or_insert_with(|| Handlers::new(self));
            socket.set_onopen(Some(h.open.as_ref().unchecked_ref()));
            socket.set_onmessage(Some(h.message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(h.close.as_ref().unchecked_ref()));
            l.socket.replace(socket)
        });
        if let Some(old) = old.flatten() {
            detach(&old);
        }
    }

    /// Sends one frame if the socket is open. Frames that cannot go out now are not
    /// queued here: `hello` and `join` are rebuilt on reconnect and unacked messages
    /// are resent from the store.
    fn send(self, msg: &ClientMsg) {
        let Ok(json) = serde_json::to_string(msg) else {
            return;
        };
        self.link.with_value(|l| {
            if let Some(socket) = l
                .socket
                .as_ref()
                .filter(|s| s.ready_state() == WebSocket::OPEN)
            {
                if let Err(err) = socket.send_with_str(&json) {
                    leptos::logging::warn!("send failed: {err:?}");
                }
            }
        });
    }

    /// Whether an event comes from the socket in use (not from one replaced earlier).
    fn is_current(self, ev: &Event) -> bool {
        let target = ev.target();
        self.link.with_value(|l| {
            l.socket
                .as_ref()
                .is_some_and(|s| target.as_ref() == Some(AsRef::<EventTarget>::as_ref(s)))
        })
    }

    fn on_open(self, ev: &Event) {
        if !self.is_current(ev) {
            return;
        }
        if let Some(hello) = self.chat.with_untracked(ChatState::hello) {
            self.send(&hello);
        }
    }

    fn on_message(self, ev: &MessageEvent) {
        if !self.is_current(ev) {
            return;
        }
        // The protocol is text-only; anything else is not ours to interpret.
        let Some(text) = ev.data().as_string() else {
            return;
        };
        let msg = match serde_json::from_str::<ServerMsg>(&text) {
            Ok(msg) => msg,
            Err(err) => {
                // Newer servers may add frame types; skipping them keeps us compatible.
                leptos::logging::warn!("ignoring frame: {err}");
                return;
            }
        };
        if let ServerMsg::Welcome { nick, session, .. } = &msg {
            prefs::save(nick, session);
            self.link.update_value(|l| l.attempt = 0);
            self.set_status.set(Status::Connected);
        }
        let replies = self.chat.try_update(|s| s.apply(msg)).unwrap_or_default();
        for reply in &replies {
            self.send(reply);
        }
    }

    fn on_close(self, ev: &CloseEvent) {
        if !self.is_current(ev) {
            return;
        }
        self.link.update_value(|l| l.socket = None);
        self.chat.update(ChatState::disconnected);
        let code = CloseCode::from_code(ev.code());
        if code.is_some_and(|c| !c.should_reconnect()) {
            // Reconnecting would take the session back from the newer tab, which would
            // then do the same: the two would fight forever.
            let now = js_sys::Date::now() as u64;
            self.chat.update(|s| s.taken_over(now));
            self.set_status.set(Status::Offline);
            return;
        }
        let refused = self
            .chat
            .with_untracked(|s| s.me.is_none() && s.nick_error.is_some());
        if refused {
            // Retrying would only repeat the refused nick; the Join button reconnects.
            self.set_status.set(Status::Offline);
            return;
        }
        self.schedule_reconnect();
    }

    fn schedule_reconnect(self) {
        self.set_status.set(Status::Reconnecting);
        let attempt = self
            .link
            .try_update_value(|l| {
                l.attempt = l.attempt.saturating_add(1);
                l.attempt - 1
            })
            .unwrap_or_default();
        let delay = backoff(attempt, js_sys::Math::random());
        match set_timeout_with_handle(move || self.connect(), delay) {
            Ok(handle) => self.link.update_value(|l| l.retry = Some(handle)),
            Err(err) => leptos::logging::warn!("cannot schedule a reconnect: {err:?}"),
        }
    }

    fn shut_down(self) {
        let link = self
            .link
            .try_update_value(|l| (l.socket.take(), l.retry.take()));
        if let Some((socket, retry)) = link {
            if let Some(retry) = retry {
                retry.clear();
            }
            if let Some(socket) = socket {
                detach(&socket);
            }
        }
    }
}

/// Stops listening to a socket we no longer use, and closes it.
fn detach(socket: &WebSocket) {
    socket.set_onopen(None);
    socket.set_onmessage(None);
    socket.set_onclose(None);
    let _ = socket.close_with_code(CloseCode::Normal.code());
}

/// The WebSocket URL on the page's own host: `wss` when the page came over https.
fn ws_url(page_protocol: &str, host: &str) -> String {
    let scheme = if page_protocol == "https:" {
        "wss"
    } else {
        "ws"
    };
    format!("{scheme}://{host}{WS_PATH}")
}

/// Exponential backoff from 0.5 s up to 30 s. Half of each delay is random (`jitter`
/// in 0..1) so that the clients of a restarted server do not all return at once.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    const FIRST_MS: u64 = 500;
    const MAX_MS: u64 = 30_000;
    let full = FIRST_MS.saturating_mul(1 << attempt.min(10)).min(MAX_MS);
    let random_part = (full as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(full / 2 + random_part)
}

/// A prefix for message ids that differs on every page load: the server de-duplicates
/// by room + nick + id even across reconnects, so ids must never repeat.
pub(crate) fn page_id_prefix() -> String {
    let now = js_sys::Date::now() as u64;
    let random = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("{now:x}{random:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_follows_the_page() {
        assert_eq!(ws_url("http:", "127.0.0.1:3000"), "ws://127.0.0.1:3000/ws");
        assert_eq!(ws_url("https:", "chat.example"), "wss://chat.example/ws");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(4000));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX, 0.0), Duration::from_secs(15));
    }
}
