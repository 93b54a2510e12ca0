//! The WebSocket to the server, shared by every component through one context.
//!
//! Components never see the socket: they read [`Connection::status`] and call the
//! methods here. Incoming frames are decoded and applied to the [`ChatState`] in the
//! [`Store`] right in the `message` handler, so a burst of frames cannot be lost the
//! way it could through a "latest message" signal. What `apply` returns is acted on
//! here: the frames it asks for (joins, history, resends) go straight back out, its
//! alerts become notifications, and only the parts of the page it changed are woken.
//! When to reconnect is decided by [`crate::link`].

use common::{Alert, ClientMsg, CloseCode, ErrorCode, NotifyLevel, Quiet, ServerMsg};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, EventTarget, MessageEvent, WebSocket};

use crate::auth::{self, SignIn, TokenKind};
use crate::link::{ws_url, AfterClose, Reconnect, Status};
use crate::state::{ChatState, Parts};
use crate::store::Store;
use crate::{notify, prefs, push};

/// How long after a `history` refused for the read budget the page is asked for again.
const HISTORY_RETRY_MS: u64 = 1000;

/// The handle components get from the context. It is `Copy`: every field is an arena
/// handle, and the socket itself stays on the browser's thread in `link`.
#[derive(Clone, Copy)]
pub(crate) struct Connection {
    /// What the header shows.
    pub(crate) status: ReadSignal<Status>,
    set_status: WriteSignal<Status>,
    /// `welcome`s received since the page loaded (shown as `data-welcomes`, so tests
    /// and curious people can see reconnects).
    pub(crate) welcomes: RwSignal<u32>,
    /// Wall-clock ms, ticking every second: countdowns and typing expiry follow it.
    pub(crate) clock: RwSignal<u64>,
    chat: Store,
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
    policy: Reconnect,
    /// The pending reconnect, cancelled when the person reconnects by hand.
    retry: Option<TimeoutHandle>,
    ticker: Option<IntervalHandle>,
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

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// Creates the connection context for `chat`. Nothing connects until a nick or a
/// token is chosen.
pub(crate) fn provide_connection_context(chat: Store) -> Connection {
    let (status, set_status) = signal(Status::Offline);
    let conn = Connection {
        status,
        set_status,
        welcomes: RwSignal::new(0),
        clock: RwSignal::new(now()),
        chat,
        link: StoredValue::new_local(Link::default()),
    };
    let clock = conn.clock;
    if let Ok(ticker) =
        // Never backwards: a page (or a test) that moved it on keeps it there. Read
        // offsets held back by the throttle go out on the next tick.
        set_interval_with_handle(
            move || {
                clock.update(|c| *c = (*c).max(now()));
                conn.flush_reads();
            },
            std::time::Duration::from_secs(1),
        )
    {
        conn.link.update_value(|l| l.ticker = Some(ticker));
    }
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
        self.chat.update(Parts::SESSION, |s| s.choose_nick(nick));
        self.say_hello();
        Ok(())
    }

    /// Signs in with a token (an account's, or the host application's): remembered for
    /// the next visit, then `hello {token}`.
    pub(crate) fn sign_in(self, sign_in: &SignIn) {
        auth::save_token(sign_in);
        self.chat
            .update(Parts::SESSION, |s| s.use_token(&sign_in.token));
        self.say_hello();
    }

    /// Says `hello` on the open socket, or opens one (whose `open` says it).
    fn say_hello(self) {
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
    }

    /// Signs out: an account's token is revoked on the server (which closes the
    /// person's other connections with 4003), a host's token is only forgotten; the
    /// socket closes and the sign-in screen comes back, with nothing of theirs on it.
    pub(crate) fn sign_out(self) {
        if let Some(SignIn {
            token,
            kind: TokenKind::Account,
        }) = auth::saved_token()
        {
            wasm_bindgen_futures::spawn_local(async move { auth::logout(&token).await });
        }
        auth::forget_token();
        prefs::forget_session();
        self.stop();
        self.chat.update(Parts::ALL, ChatState::sign_out);
        self.set_status.set(Status::Offline);
    }

    /// Closes the socket and cancels any reconnect, keeping the clock.
    fn stop(self) {
        let link = self.link.try_update_value(|l| {
            l.policy.reset();
            (l.socket.take(), l.retry.take())
        });
        if let Some((socket, retry)) = link {
            if let Some(retry) = retry {
                retry.clear();
            }
            if let Some(socket) = socket {
                detach(&socket);
            }
        }
    }

    /// Sends the `read` frames the store holds back (throttled per room).
    fn flush_reads(self) {
        let frames = self
            .chat
            .update(Parts::NONE, |s| s.flush_reads(now()))
            .unwrap_or_default();
        for frame in frames {
            self.send(&frame);
        }
    }

    /// Runs `f` on the store, wakes `parts`, and sends the frames it returns.
    fn act(self, parts: Parts, f: impl FnOnce(&mut ChatState) -> Vec<ClientMsg>) {
        for frame in self.chat.update(parts, f).unwrap_or_default() {
            self.send(&frame);
        }
        // Whatever the person did may have shown them newer messages.
        self.flush_reads();
    }

    /// Posts a message to the room on screen. It shows as pending until acknowledged;
    /// when the socket is down it goes out after the next join. Returns why the text
    /// is refused.
    pub(crate) fn send_text(self, text: &str) -> Result<(), String> {
        let limits = self.chat.with_untracked(|s| s.limits.clone());
        let text = common::validate::text(text, &limits).map_err(|e| e.to_string())?;
        self.act(Parts::MESSAGES, |s| {
            s.queue_send(text, now()).into_iter().collect()
        });
        Ok(())
    }

    /// Opens our message at `offset` for editing in place (the window moves to it).
    pub(crate) fn start_edit(self, offset: u64) {
        self.chat
            .update(Parts::MESSAGES, |s| s.start_edit(offset, now()));
    }

    /// Up in an empty composer: edits our newest message here; `false` if there is
    /// none.
    pub(crate) fn edit_last(self) -> bool {
        self.chat
            .update(Parts::MESSAGES, |s| s.edit_last(now()))
            .unwrap_or(false)
    }

    /// Closes the editor without saving.
    pub(crate) fn cancel_edit(self) {
        self.chat.update(Parts::NONE, ChatState::cancel_edit);
    }

    /// Saves an edit of our message at `offset`. Returns why the text is refused.
    pub(crate) fn save_edit(self, offset: u64, text: &str) -> Result<(), String> {
        let limits = self.chat.with_untracked(|s| s.limits.clone());
        let text = common::validate::text(text, &limits).map_err(|e| e.to_string())?;
        self.act(Parts::NONE, |s| {
            s.save_edit(offset, text).into_iter().collect()
        });
        Ok(())
    }

    /// Deletes the message at `offset` (the person confirmed).
    pub(crate) fn delete_message(self, offset: u64) {
        self.act(Parts::NONE, |s| {
            s.delete_message(offset).into_iter().collect()
        });
    }

    /// Adds our `emoji` to the message at `offset`, or takes it back.
    pub(crate) fn toggle_reaction(self, offset: u64, emoji: &str) {
        self.act(Parts::NONE, |s| {
            s.toggle_reaction(offset, emoji).into_iter().collect()
        });
    }

    /// The next message answers the one at `offset` (shown above the composer).
    pub(crate) fn reply_to(self, offset: u64) {
        self.chat.update(Parts::MESSAGES, |s| s.reply_to(offset));
    }

    pub(crate) fn cancel_reply(self) {
        self.chat.update(Parts::MESSAGES, ChatState::cancel_reply);
    }

    /// Shows the message at `offset` highlighted, loading older pages until it is
    /// there (a reply's quote was clicked).
    pub(crate) fn jump_to(self, offset: u64) {
        self.act(Parts::MESSAGES | Parts::ROOMS, |s| {
            s.jump_to(offset).into_iter().collect()
        });
    }

    /// Opens (joins if needed) a room and puts it on screen.
    pub(crate) fn open_room(self, name: &str) -> Result<(), String> {
        // Another room on screen: everything about "the room" changes.
        let frames = self
            .chat
            .update(Parts::ALL, |s| s.open_room(name))
            .unwrap_or(Ok(Vec::new()))?;
        for frame in frames {
            self.send(&frame);
        }
        self.flush_reads();
        Ok(())
    }

    /// Opens a room at one of its messages (an alert's link), highlighted.
    pub(crate) fn open_message(self, room: &str, offset: u64) -> Result<(), String> {
        let frames = self
            .chat
            .update(Parts::ALL, |s| s.open_message(room, offset))
            .unwrap_or(Ok(Vec::new()))?;
        for frame in frames {
            self.send(&frame);
        }
        self.flush_reads();
        Ok(())
    }

    /// The person clicked an alert in the bell: it is read (with every older one, as
    /// `alert_read` goes), and its room opens at its message, or its address in a new
    /// tab.
    pub(crate) fn open_alert(self, alert: &Alert) {
        let seq = alert.seq;
        self.act(Parts::INBOX, |s| s.read_alerts_upto(seq));
        match notify::target(alert) {
            Some(notify::Target::Hash(_)) => {
                if let (Some(room), offset) = (alert.room.as_deref(), alert.offset) {
                    let opened = match offset {
                        Some(offset) => self.open_message(room, offset),
                        None => self.open_room(room),
                    };
                    if let Err(e) = opened {
                        self.chat.update(Parts::ROOMS, |s| s.room_error = Some(e));
                    }
                }
            }
            Some(target @ notify::Target::Url(_)) => notify::go(&target),
            None => {}
        }
    }

    /// "Mark all read" in the bell.
    pub(crate) fn read_all_alerts(self) {
        self.act(Parts::INBOX, ChatState::read_all_alerts);
    }

    /// Chooses which messages of `room` alert the person.
    pub(crate) fn set_room_notify(self, room: &str, level: NotifyLevel) {
        self.act(Parts::INBOX, |s| s.set_room_notify(room, level));
    }

    /// Sets (or with `None` clears) the quiet hours.
    pub(crate) fn set_quiet(self, quiet: Option<Quiet>) {
        self.act(Parts::INBOX, |s| s.set_quiet(quiet));
    }

    /// Subscribes this browser to Web Push and tells the server (after the person
    /// allowed notifications). Failing is quiet: without a push service the bell and
    /// the notifications of open tabs still work.
    pub(crate) fn enable_push(self) {
        if !push::supported() {
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            match push::subscribe().await {
                Ok(frame) => self.send(&frame),
                Err(err) => leptos::logging::warn!("no Web Push here: {err:?}"),
            }
        });
    }

    /// On every connect, once the person has allowed notifications: registers the
    /// worker again and tells the server of this browser's subscription (the one it
    /// has, or a new one). The server treats a repeat as a no-op, and this covers a
    /// subscription it dropped or the browser renewed.
    fn resubscribe_push(self) {
        if notify::granted() {
            self.enable_push();
        }
    }

    /// Opens or closes the "New room" dialog.
    pub(crate) fn new_room_dialog(self, open: bool) {
        self.chat.update(Parts::ROOMS, |s| {
            if open {
                s.open_new_room();
            } else {
                s.close_new_room();
            }
        });
    }

    /// Creates a room (the answer joins it and puts it on screen). Returns why the name
    /// is not acceptable.
    pub(crate) fn create_room(self, name: &str, private: bool) -> Result<(), String> {
        let limits = self.chat.with_untracked(|s| s.limits.clone());
        let name = common::validate::room(name, &limits).map_err(|e| e.to_string())?;
        self.act(Parts::ROOMS, |s| s.create_room(name, private));
        Ok(())
    }

    /// Invites a user (by id) to a private room we own.
    pub(crate) fn invite(self, room: &str, user: &str) -> Result<(), String> {
        let user = user.trim();
        if user.is_empty() {
            return Err("Enter the user id of the person to invite.".to_owned());
        }
        self.act(Parts::ROOMS, |s| s.invite(room, user));
        Ok(())
    }

    /// Opens the direct-message room with a user (the answer puts it on screen).
    pub(crate) fn open_dm(self, user: &str) {
        self.act(Parts::ROOMS, |s| s.open_dm(user));
    }

    /// Hides the line about the person's rooms.
    pub(crate) fn dismiss_notice(self) {
        self.chat.update(Parts::ROOMS, |s| s.people_notice = None);
    }

    pub(crate) fn leave_room(self, name: &str) {
        self.act(Parts::ALL, |s| s.leave_room(name));
    }

    /// Asks for the room list from its first page.
    pub(crate) fn list_rooms(self) {
        self.act(Parts::NONE, |s| vec![s.first_rooms_page()]);
    }

    /// Asks for the next page of the room list.
    pub(crate) fn more_rooms(self) {
        self.act(Parts::NONE, |s| s.more_rooms().into_iter().collect());
    }

    /// Asks for the next page of the member list of the room on screen (a crowd).
    pub(crate) fn more_members(self) {
        self.act(Parts::MEMBERS, |s| s.more_members().into_iter().collect());
    }

    pub(crate) fn retry(self, room: &str, id: &str) {
        self.act(Parts::MESSAGES, |s| s.retry(room, id).into_iter().collect());
    }

    /// The person is typing in the composer (throttled by the store).
    pub(crate) fn typing(self) {
        // Only when we last said so changes: nothing on the page.
        self.act(Parts::NONE, |s| s.typing(now()).into_iter().collect());
    }

    /// The view reached the top of the messages.
    pub(crate) fn load_older(self) {
        self.act(Parts::MESSAGES, |s| s.load_older().into_iter().collect());
    }

    /// The view reports whether it is scrolled to the bottom.
    pub(crate) fn set_at_bottom(self, at_bottom: bool) {
        // Reaching the bottom reads the room: its unread count, its alerts and the
        // title follow.
        self.chat.update(
            Parts::MESSAGES | Parts::ROOMS | Parts::PAGE | Parts::INBOX,
            |s| s.set_at_bottom(at_bottom),
        );
        self.flush_reads();
    }

    pub(crate) fn jump_to_latest(self) {
        self.chat.update(
            Parts::MESSAGES | Parts::ROOMS | Parts::PAGE | Parts::INBOX,
            ChatState::jump_to_latest,
        );
        self.flush_reads();
    }

    /// Connects now, forgetting the backoff (also after the session moved elsewhere).
    pub(crate) fn reconnect_now(self) {
        let retry = self.link.try_update_value(|l| {
            l.policy.reset();
            l.retry.take()
        });
        if let Some(retry) = retry.flatten() {
            retry.clear();
        }
        self.chat
            .update(Parts::SESSION, |s| s.session_taken = false);
        self.connect();
    }

    fn connect(self) {
        let status = if self.chat.with_untracked(|s| s.me.is_some()) {
            Status::Reconnecting { retry_at: None }
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
                self.schedule_reconnect(None);
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
        let history_refused = matches!(
            &msg,
            ServerMsg::Error { code: ErrorCode::RateLimited, reference: Some(r), .. } if r == "history"
        );
        let welcomed = matches!(msg, ServerMsg::Welcome { .. });
        if let ServerMsg::Welcome { nick, session, .. } = &msg {
            // A guest's session reclaims the nick next time; a signed-in person's
            // token does that.
            if !self.chat.with_untracked(ChatState::has_token) {
                prefs::save(nick, session);
            }
            self.link.update_value(|l| l.policy.welcomed());
            self.set_status.set(Status::Connected);
            self.welcomes.update(|n| *n += 1);
        }
        let Some(applied) = self.chat.apply(msg, now()) else {
            return;
        };
        if history_refused {
            // Over the server's read budget: ask for the page again in a moment, as
            // scrolling to the top again would.
            let retry = std::time::Duration::from_millis(HISTORY_RETRY_MS);
            if let Err(err) = set_timeout_with_handle(move || self.load_older(), retry) {
                leptos::logging::warn!("cannot schedule a history retry: {err:?}");
            }
        }
        if applied.forget_token {
            auth::forget_token();
        }
        for reply in &applied.replies {
            self.send(reply);
        }
        for alert in &applied.alerts {
            notify::alert(alert);
        }
        if welcomed {
            self.resubscribe_push();
        }
        self.flush_reads();
    }

    fn on_close(self, ev: &CloseEvent) {
        if !self.is_current(ev) {
            return;
        }
        self.link.update_value(|l| l.socket = None);
        self.chat.update(Parts::ALL, ChatState::disconnected);
        // 1005/1006: no close frame (the network dropped, or the server died).
        let code = Some(ev.code()).filter(|c| !matches!(c, 1005 | 1006));
        let refused = self.chat.with_untracked(ChatState::refused);
        let next = self
            .link
            .try_update_value(|l| l.policy.closed(code, refused, js_sys::Math::random()));
        match next {
            Some(AfterClose::Retry(delay)) => self.schedule_reconnect(Some(delay)),
            Some(AfterClose::SessionTaken) => {
                self.chat.update(Parts::ALL, ChatState::taken_over);
                self.set_status.set(Status::Offline);
            }
            Some(AfterClose::SignedOut) => {
                // The token is dead: forget it, and do not come back with it.
                auth::forget_token();
                self.chat.update(Parts::ALL, ChatState::signed_out);
                self.set_status.set(Status::Offline);
            }
            Some(AfterClose::NickRefused) | None => self.set_status.set(Status::Offline),
        }
    }

    /// Reconnects after `delay`, or after the policy's next delay when `None`.
    fn schedule_reconnect(self, delay: Option<std::time::Duration>) {
        let delay = delay.unwrap_or_else(|| {
            match self
                .link
                .try_update_value(|l| l.policy.closed(None, false, js_sys::Math::random()))
            {
                Some(AfterClose::Retry(d)) => d,
                _ => std::time::Duration::from_secs(5),
            }
        });
        let retry_at = now() + delay.as_millis() as u64;
        self.set_status.set(Status::Reconnecting {
            retry_at: Some(retry_at),
        });
        match set_timeout_with_handle(move || self.connect(), delay) {
            Ok(handle) => self.link.update_value(|l| l.retry = Some(handle)),
            Err(err) => leptos::logging::warn!("cannot schedule a reconnect: {err:?}"),
        }
    }

    fn shut_down(self) {
        let link = self
            .link
            .try_update_value(|l| (l.socket.take(), l.retry.take(), l.ticker.take()));
        if let Some((socket, retry, ticker)) = link {
            if let Some(retry) = retry {
                retry.clear();
            }
            if let Some(ticker) = ticker {
                ticker.clear();
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

/// A prefix for message ids that differs on every page load: the server de-duplicates
/// by room + nick + id even across reconnects, so ids must never repeat.
pub(crate) fn page_id_prefix() -> String {
    let random = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("{:x}{random:08x}", now())
}
