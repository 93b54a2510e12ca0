//! The connection to the server, shared by every component through one context.
//!
//! Components never see the socket or the stream: they read [`Connection::status`]
//! (and [`Connection::transport`]) and call the methods here. Incoming frames are
//! decoded and applied to the [`ChatState`] in the [`Store`] right in the carrier's
//! handler, so a burst of frames cannot be lost the way it could through a "latest
//! message" signal. What `apply` returns is acted on there: the frames it asks for
//! (joins, history, resends) go straight back out, its alerts become notifications,
//! and only the parts of the page it changed are woken.
//!
//! This file is what components call; `lifecycle` opens, watches and replaces the
//! carrier ([`crate::carrier`]: a WebSocket, or the SSE fallback), with the decisions
//! made in plain Rust by [`crate::link`] (when to reconnect) and [`crate::transport`]
//! (which way).

mod lifecycle;

use common::{Alert, ClientMsg, NotifyLevel, Quiet};
use leptos::prelude::*;

use crate::auth::{self, SignIn, TokenKind};
use crate::carrier::{Carrier, Probe};
use crate::link::{Reconnect, Status};
use crate::state::{ChatState, Parts};
use crate::store::Store;
use crate::transport::{Chooser, Transport};
use crate::{notify, prefs, push};

/// How long after a `history` refused for the read budget the page is asked for again.
const HISTORY_RETRY_MS: u64 = 1000;

/// The handle components get from the context. It is `Copy`: every field is an arena
/// handle, and the carrier itself stays on the browser's thread in `link`.
#[derive(Clone, Copy)]
pub(crate) struct Connection {
    /// What the header shows.
    pub(crate) status: ReadSignal<Status>,
    set_status: WriteSignal<Status>,
    /// The transport of the connection in use or being opened (the header says it).
    pub(crate) transport: ReadSignal<Transport>,
    set_transport: WriteSignal<Transport>,
    /// `welcome`s received since the page loaded (shown as `data-welcomes`, so tests
    /// and curious people can see reconnects).
    pub(crate) welcomes: RwSignal<u32>,
    /// Wall-clock ms, ticking every second: countdowns and typing expiry follow it.
    pub(crate) clock: RwSignal<u64>,
    chat: Store,
    /// The carrier, its timers and the policies deciding about them. Local storage
    /// because JS objects cannot cross threads.
    link: StoredValue<Link, LocalStorage>,
}

/// The browser-side objects behind a [`Connection`].
#[derive(Default)]
struct Link {
    /// The carrier in use (a WebSocket or an SSE stream).
    carrier: Option<Carrier>,
    /// The number of the carrier in use: its reports carry it, so those of carriers
    /// already replaced are recognised and ignored.
    serial: u32,
    /// Whether the carrier in use delivered a frame yet.
    heard: bool,
    /// When to reconnect.
    policy: Reconnect,
    /// Which transport to connect with.
    transports: Chooser,
    /// The pending reconnect, cancelled when the person reconnects by hand.
    retry: Option<TimeoutHandle>,
    /// When (ms) the carrier in use is given up on if it delivered nothing by then.
    /// Deadlines are checked by the clock's tick, like the probes': no timer each.
    mute_at: u64,
    /// While on SSE: when the next WebSocket probe goes out, and the probe out with
    /// the time it fails at.
    next_probe: Option<u64>,
    probe: Option<(Probe, u64)>,
    ticker: Option<IntervalHandle>,
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// Creates the connection context for `chat`. Nothing connects until a nick or a
/// token is chosen.
pub(crate) fn provide_connection_context(chat: Store) -> Connection {
    let (status, set_status) = signal(Status::Offline);
    let (transport, set_transport) = signal(Transport::default());
    let conn = Connection {
        status,
        set_status,
        transport,
        set_transport,
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
                conn.tick(now());
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

    /// Shows `status` over `transport` without connecting (the DOM tests have no
    /// server).
    #[cfg(all(test, target_arch = "wasm32"))]
    pub(crate) fn show(self, status: Status, transport: Transport) {
        self.set_status.set(status);
        self.set_transport.set(transport);
    }
}

/// A prefix for message ids that differs on every page load: the server de-duplicates
/// by room + nick + id even across reconnects, so ids must never repeat.
pub(crate) fn page_id_prefix() -> String {
    let random = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("{:x}{random:08x}", now())
}
