//! The chat as the web app knows it: a plain struct that server frames are applied to.
//!
//! Nothing here touches the DOM, the socket or the browser, so the protocol logic
//! (resume after a reconnect, resends, de-duplication, acks, unread counts, mentions)
//! is unit-tested natively. The [`crate::connection`] module feeds every frame in and
//! acts on what [`ChatState::apply`] returns as values: the frames to send in reply, the
//! mention alerts to raise, and which [`Parts`] of the page changed (so the reactive
//! [`crate::store::Store`] wakes only those). The time comes in as an argument.

mod conversation;
mod inbox;
mod members;
mod people;
pub(crate) mod room;

use std::collections::{BTreeMap, VecDeque};

use common::{
    Alert, ChatMessage, ClientMsg, ErrorCode, Limits, MemberRoom, NotificationKind, RoomInfo,
    ServerMsg,
};

pub(crate) use conversation::Chip;
#[cfg(test)]
pub(crate) use conversation::Shown;
pub(crate) use inbox::{format_time, parse_time, Inbox, NotifySettings};
pub(crate) use people::{InviteOutcome, NewRoom};
pub(crate) use room::{typing_line, NoticeKind, Outgoing, Peer, Room, Row, TYPING_SHOWN_MS};

use crate::text::mentions;

/// How many messages a room opens with (the `limit` of the first `history` request).
pub(crate) const HISTORY_PAGE: u64 = 50;
/// Rooms asked for per page of the room list.
pub(crate) const ROOMS_PAGE: u64 = 50;

/// The room everyone starts in.
pub(crate) const DEFAULT_ROOM: &str = "lobby";

/// Everything the web app knows about the conversation.
#[derive(Debug, Clone)]
pub(crate) struct ChatState {
    /// The nick the person asked for; sent in every `hello`, including after reconnects.
    wanted_nick: Option<String>,
    /// The session token from the last `welcome`, and the nick it belongs to. Offered
    /// only for exactly that nick, so picking another nick does not reclaim the old one.
    session: Option<(String, String)>,
    /// The sign-in token (an account's, or the host application's), sent in `hello`
    /// instead of a nick. Dropped when the server says it is invalid or signed out.
    token: Option<String>,
    /// The nick the server accepted; `None` until the first `welcome` (the sign-in
    /// screen is shown while it is `None`).
    pub(crate) me: Option<String>,
    /// Our user id from `welcome` (v2): how messages are told to be ours across nicks,
    /// and what a direct message names.
    pub(crate) user: Option<String>,
    /// Why the server refused the last `hello`, shown next to the nick field.
    pub(crate) nick_error: Option<String>,
    /// Why the sign-in screen is back (an expired token, signed out), shown on it.
    pub(crate) sign_in_error: Option<String>,
    /// The server admits no guests (`guests_disabled`): the guest tab is disabled.
    pub(crate) guests_disabled: bool,
    /// The server's limits; the defaults until `welcome` advertises the real ones.
    pub(crate) limits: Limits,
    /// Whether the current connection has been welcomed (frames other than `hello`
    /// wait for it).
    pub(crate) welcomed: bool,
    /// The rooms the person is in, by name (the sidebar's order).
    pub(crate) rooms: BTreeMap<String, Room>,
    /// The room on screen.
    pub(crate) current: Option<String>,
    /// `join`s sent and not answered yet, in order: a refused join (`ref` = "join")
    /// belongs to the oldest.
    joining: VecDeque<String>,
    /// Why the last room could not be joined, shown under the room field.
    pub(crate) room_error: Option<String>,
    /// The rooms on the server, from the `rooms` pages received since the first page
    /// was last asked for.
    pub(crate) directory: Vec<RoomInfo>,
    /// Rooms on the server in all, from the last `rooms` page.
    pub(crate) directory_total: u64,
    /// The cursor of the next page of rooms, if there is one.
    pub(crate) directory_next: Option<String>,
    /// Whether the page asked for last continues `directory` (rather than replacing it).
    directory_appending: bool,
    /// Set when the server closed this connection because the user has too many open
    /// (close code 4001); the app then stays offline until the person asks to
    /// reconnect, or the oldest and newest tabs would close each other forever.
    pub(crate) session_taken: bool,
    /// A line about the person's rooms that is not about the room on screen ("bob
    /// invited you to #plans", "You are no longer in #x"), shown in the sidebar.
    pub(crate) people_notice: Option<String>,
    /// The "New room" dialog, while open.
    pub(crate) new_room: Option<NewRoom>,
    /// The answer to the last `invite`.
    pub(crate) invite_outcome: Option<InviteOutcome>,
    /// The user of the `open_dm` on its way: its answer puts the room on screen.
    opening_dm: Option<String>,
    /// The user's alerts (the bell).
    pub(crate) inbox: Inbox,
    /// Quiet hours and this browser's push subscription.
    pub(crate) settings: NotifySettings,
    /// The message an alert or a reply's quote pointed at (room, offset), highlighted
    /// once it is shown.
    pub(crate) highlight: Option<(String, u64)>,
    /// Counts the times a message was pointed at, so the view brings it into view
    /// again when the same one is asked for twice.
    pub(crate) highlight_seq: u64,
    /// The messages whose rows changed in place (an edit, a reaction, …) since the
    /// store last took them: it wakes those rows and nothing else.
    touched: Vec<(String, u64)>,
    /// Whether the tab is hidden (then messages count towards the title).
    pub(crate) hidden: bool,
    /// Messages that arrived while the tab was hidden, for the title.
    pub(crate) hidden_unread: u32,
    /// The latest line for screen readers (`aria-live`).
    pub(crate) announcement: String,
    /// When we last told the server we are typing.
    last_typing: u64,
    /// Unique per page load, so message ids never repeat across reloads (the server
    /// de-duplicates by room + nick + id, and would swallow a repeated id).
    id_prefix: String,
    next_id: u64,
    next_notice: u64,
}

/// The parts of the page a change touches. The reactive store keeps one trigger per
/// part, so a change wakes only what shows that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Parts(u8);

impl Parts {
    pub(crate) const NONE: Parts = Parts(0);
    /// Who we are: the nick, a refused nick, the welcome, the limits, a takeover.
    pub(crate) const SESSION: Parts = Parts(1);
    /// The joined rooms: the list, unread counts, the room on screen, the room error.
    pub(crate) const ROOMS: Parts = Parts(1 << 1);
    /// The conversations: messages, notices, pending sends, the rendered window.
    pub(crate) const MESSAGES: Parts = Parts(1 << 2);
    /// Who is in each room, and whether we are joined there now.
    pub(crate) const MEMBERS: Parts = Parts(1 << 3);
    /// Who is typing.
    pub(crate) const TYPING: Parts = Parts(1 << 4);
    /// Every room on the server.
    pub(crate) const DIRECTORY: Parts = Parts(1 << 5);
    /// The tab: its title and the screen-reader announcement.
    pub(crate) const PAGE: Parts = Parts(1 << 6);
    /// The inbox (the bell) and the notification settings.
    pub(crate) const INBOX: Parts = Parts(1 << 7);
    pub(crate) const ALL: Parts = Parts(u8::MAX);
    /// How many parts there are.
    pub(crate) const COUNT: usize = 8;

    /// Whether part number `i` (`0..COUNT`) is among these.
    pub(crate) fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    /// What a server frame can change. Conservative where a frame is rare; exact for
    /// the frequent ones (a `typing` frame touches the typing line and nothing else).
    pub(crate) fn of(msg: &ServerMsg) -> Parts {
        match msg {
            ServerMsg::Typing { .. } => Parts::TYPING,
            ServerMsg::Presence { .. } | ServerMsg::Members { .. } => {
                Parts::MEMBERS | Parts::DIRECTORY
            }
            ServerMsg::Rooms { .. } => Parts::DIRECTORY,
            ServerMsg::History { .. } | ServerMsg::Ack { .. } => Parts::MESSAGES,
            // Entries change rows in place: the rows they touched are woken one by one
            // (`ChatState::take_touched`), the list is not.
            ServerMsg::Edited(_) | ServerMsg::Deleted(_) | ServerMsg::Reacted(_) => Parts::NONE,
            // The author stops typing; unread counts, the title and the announcement
            // follow messages, and reading the room on screen reads its alerts.
            ServerMsg::Message(_) => {
                Parts::MESSAGES | Parts::ROOMS | Parts::PAGE | Parts::TYPING | Parts::INBOX
            }
            // A stored notice (with an offset) moves the room on like a message.
            ServerMsg::Notification {
                offset: Some(_), ..
            } => Parts::MESSAGES | Parts::ROOMS | Parts::PAGE,
            ServerMsg::Notification { .. } => Parts::MESSAGES | Parts::PAGE,
            ServerMsg::Joined { .. } | ServerMsg::Left { .. } => {
                Parts::ROOMS | Parts::MESSAGES | Parts::MEMBERS | Parts::TYPING
            }
            ServerMsg::Welcome { .. } | ServerMsg::Error { .. } => Parts::ALL,
            ServerMsg::Read { .. }
            | ServerMsg::RoomCreated { .. }
            | ServerMsg::Invited { .. }
            | ServerMsg::Dm { .. } => Parts::ALL,
            ServerMsg::Alert(_)
            | ServerMsg::Inbox { .. }
            | ServerMsg::AlertRead { .. }
            | ServerMsg::PushSubscribed { .. }
            | ServerMsg::PushUnsubscribed { .. }
            | ServerMsg::RoomNotify { .. }
            | ServerMsg::QuietHours { .. } => Parts::INBOX,
        }
    }
}

impl std::ops::BitOr for Parts {
    type Output = Parts;

    fn bitor(self, other: Parts) -> Parts {
        Parts(self.0 | other.0)
    }
}

/// What applying a frame produced, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Applied {
    /// Frames to send in reply (joins, history, resends).
    pub(crate) replies: Vec<ClientMsg>,
    /// The stored sign-in token no longer works (`invalid_token`): forget it, so the
    /// next visit does not try it again.
    pub(crate) forget_token: bool,
    /// New alerts to raise as desktop notifications (the tab is hidden).
    pub(crate) alerts: Vec<Alert>,
    /// The parts of the page that may have changed.
    pub(crate) changed: Parts,
}

impl ChatState {
    /// A fresh state. `saved` is the nick and session from an earlier visit; `rooms`
    /// the rooms to be in (from the URL and the last visit), the first one on screen.
    pub(crate) fn new(
        saved: Option<(String, String)>,
        rooms: &[String],
        id_prefix: String,
    ) -> Self {
        let mut state = ChatState {
            wanted_nick: None,
            session: saved,
            token: None,
            me: None,
            user: None,
            nick_error: None,
            sign_in_error: None,
            guests_disabled: false,
            limits: Limits::default(),
            welcomed: false,
            rooms: BTreeMap::new(),
            current: None,
            joining: VecDeque::new(),
            room_error: None,
            directory: Vec::new(),
            directory_total: 0,
            directory_next: None,
            directory_appending: false,
            session_taken: false,
            people_notice: None,
            new_room: None,
            invite_outcome: None,
            opening_dm: None,
            inbox: Inbox::default(),
            settings: NotifySettings::default(),
            highlight: None,
            highlight_seq: 0,
            touched: Vec::new(),
            hidden: false,
            hidden_unread: 0,
            announcement: String::new(),
            last_typing: 0,
            id_prefix,
            next_id: 0,
            next_notice: 0,
        };
        for name in rooms {
            state
                .rooms
                .entry(name.clone())
                .or_insert_with(|| Room::new(name));
        }
        if state.rooms.is_empty() {
            state
                .rooms
                .insert(DEFAULT_ROOM.to_owned(), Room::new(DEFAULT_ROOM));
        }
        state.current = rooms
            .first()
            .cloned()
            .or_else(|| Some(DEFAULT_ROOM.to_owned()));
        state
    }

    /// Records the nick the person picked (already validated and trimmed): they are a
    /// guest now.
    pub(crate) fn choose_nick(&mut self, nick: &str) {
        self.wanted_nick = Some(nick.to_owned());
        self.token = None;
        self.nick_error = None;
        self.sign_in_error = None;
    }

    /// Records a sign-in token (from logging in, registering, the URL or an earlier
    /// visit): `hello` sends it instead of a nick.
    pub(crate) fn use_token(&mut self, token: &str) {
        self.token = Some(token.to_owned());
        self.wanted_nick = None;
        self.nick_error = None;
        self.sign_in_error = None;
    }

    /// Whether this person signs in with a token rather than as a guest.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The `hello` to send on a fresh connection, if a token or a nick was chosen.
    pub(crate) fn hello(&self) -> Option<ClientMsg> {
        if let Some(token) = &self.token {
            return Some(ClientMsg::Hello {
                nick: None,
                session: None,
                token: Some(token.clone()),
            });
        }
        let nick = self.wanted_nick.clone()?;
        let session = self
            .session
            .as_ref()
            .filter(|(owner, _)| *owner == nick)
            .map(|(_, token)| token.clone());
        Some(ClientMsg::Hello {
            nick: Some(nick),
            session,
            token: None,
        })
    }

    /// Whether the rooms (rather than the sign-in screen) are on screen: once
    /// welcomed, and also while a token or the saved session of the nick being asked
    /// for is on its way, so a returning visitor is never asked again who they are.
    pub(crate) fn in_chat(&self) -> bool {
        let reclaiming = self.wanted_nick.is_some()
            && self.session.as_ref().map(|(owner, _)| owner) == self.wanted_nick.as_ref();
        self.me.is_some()
            || (self.nick_error.is_none()
                && self.sign_in_error.is_none()
                && (self.token.is_some() || reclaiming))
    }

    /// Whether the server refused who we said we are and never welcomed us: retrying
    /// would only repeat it.
    pub(crate) fn refused(&self) -> bool {
        self.me.is_none()
            && (self.nick_error.is_some()
                || self.sign_in_error.is_some()
                || (self.guests_disabled && self.token.is_none()))
    }

    pub(crate) fn room(&self) -> Option<&Room> {
        self.rooms.get(self.current.as_deref()?)
    }

    fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.get_mut(name)
    }

    /// Applies one server frame that arrived at `now` (ms since the epoch).
    pub(crate) fn apply(&mut self, msg: ServerMsg, now: u64) -> Applied {
        let changed = Parts::of(&msg);
        let mut alerts = Vec::new();
        let had_token = self.token.is_some();
        let replies = self.reduce(msg, now, &mut alerts);
        Applied {
            replies,
            forget_token: had_token && self.token.is_none(),
            alerts,
            changed,
        }
    }

    fn reduce(&mut self, msg: ServerMsg, now: u64, alerts: &mut Vec<Alert>) -> Vec<ClientMsg> {
        match msg {
            ServerMsg::Welcome {
                nick,
                session,
                limits,
                user,
                rooms,
                inbox,
                quiet,
                ..
            } => {
                let mut out = self.on_welcome(nick, session, limits, user, rooms);
                out.push(self.on_welcome_inbox(inbox, quiet));
                return out;
            }
            // In a crowd `nicks` is the first page: `members` counts them all and
            // `next` continues (`members` requests, see `state::members`).
            ServerMsg::Joined {
                room,
                head,
                epoch,
                nicks,
                recovered,
                members,
                next,
            } => {
                let out = self.on_joined(&room, head, epoch, nicks, recovered);
                self.on_member_page(&room, members, next);
                return out;
            }
            ServerMsg::Left { room } => self.on_left(&room),
            ServerMsg::Message(m) => self.on_message(m),
            ServerMsg::Edited(e) => self.on_edited(e),
            ServerMsg::Deleted(d) => self.on_deleted(&d),
            ServerMsg::Reacted(r) => self.on_reacted(r),
            ServerMsg::History {
                room,
                messages,
                has_more,
                nicks,
            } => {
                let offsets: Vec<u64> = messages.iter().map(|m| m.offset).collect();
                let Some(r) = self.room_mut(&room) else {
                    return Vec::new();
                };
                r.names.extend(nicks);
                r.insert_history(messages, has_more);
                let seeking = r.seeking.is_some();
                // Rows shown already may have changed (history is current-state), and
                // replies quoting these messages can show them now.
                self.touch(&room, offsets);
                let out = if seeking {
                    self.seek(&room).into_iter().collect()
                } else {
                    Vec::new()
                };
                if self.current.as_deref() == Some(room.as_str()) {
                    // The first page of the room on screen is what the person sees.
                    self.mark_read();
                }
                return out;
            }
            ServerMsg::Ack { id, room, offset } => self.on_ack(id, room, offset),
            // A notice stored in the room's log has its place among the messages (so
            // `since` and unread counts stay gap-free): it is kept as one, with no
            // sender, as `history` gives it, and shown as a notice.
            ServerMsg::Notification {
                room,
                text,
                ts,
                offset: Some(offset),
                ..
            } => self.on_message(ChatMessage {
                reply_to: None,
                edited_ts: None,
                deleted: false,
                reactions: Default::default(),
                reaction_counts: Default::default(),
                room,
                offset,
                id: String::new(),
                nick: String::new(),
                text,
                ts,
                user: None,
            }),
            ServerMsg::Notification {
                room,
                kind,
                text,
                nick,
                ts,
                ..
            } => self.on_notification(&room, kind, text, nick, ts),
            ServerMsg::Presence { room, nicks } => {
                // The directory's count for this room is known exactly now.
                if let Some(entry) = self.directory.iter_mut().find(|d| d.room == room) {
                    entry.members = nicks.len() as u64;
                }
                if let Some(r) = self.room_mut(&room) {
                    // Lists are sent only for rooms small enough to list whole.
                    r.members = nicks;
                    r.member_total = None;
                    r.members_next = None;
                }
            }
            ServerMsg::Members {
                room,
                nicks,
                total,
                next,
            } => self.on_members(&room, nicks, total, next),
            ServerMsg::Typing { room, nick } => {
                let until = now + TYPING_SHOWN_MS;
                if let Some(r) = self.room_mut(&room) {
                    r.typing.insert(nick, until);
                }
            }
            ServerMsg::Rooms { rooms, total, next } => {
                if std::mem::take(&mut self.directory_appending) {
                    // Activity can move a room across a page boundary: show it once.
                    let fresh: Vec<RoomInfo> = rooms
                        .into_iter()
                        .filter(|r| !self.directory.iter().any(|d| d.room == r.room))
                        .collect();
                    self.directory.extend(fresh);
                } else {
                    self.directory = rooms;
                }
                self.directory_total = total;
                self.directory_next = next;
            }
            ServerMsg::Error {
                code,
                message,
                reference,
            } => self.on_error(code, message, reference.as_deref(), now),
            ServerMsg::Read { room, offset } => self.on_read(&room, offset),
            ServerMsg::RoomCreated { room, private } => {
                return self.on_room_created(&room, private)
            }
            ServerMsg::Invited { room, user, by } => return self.on_invited(&room, &user, by),
            ServerMsg::Dm { room, user, nick } => return self.on_dm(&room, user, nick),
            ServerMsg::Alert(alert) => alerts.extend(self.on_alert(alert)),
            ServerMsg::Inbox {
                alerts,
                head,
                unread,
            } => self.on_inbox(alerts, head, unread),
            ServerMsg::AlertRead { seq } => self.on_alert_read(seq),
            ServerMsg::PushSubscribed { endpoint } => self.settings.push_endpoint = Some(endpoint),
            ServerMsg::PushUnsubscribed { endpoint } => {
                if self.settings.push_endpoint.as_deref() == Some(endpoint.as_str()) {
                    self.settings.push_endpoint = None;
                }
            }
            ServerMsg::RoomNotify { room, level } => self.on_room_notify(&room, level),
            ServerMsg::QuietHours { quiet } => self.settings.quiet = quiet,
        }
        Vec::new()
    }

    fn on_welcome(
        &mut self,
        nick: String,
        session: String,
        limits: Limits,
        user: String,
        rooms: Vec<MemberRoom>,
    ) -> Vec<ClientMsg> {
        if self.token.is_none() {
            // A guest: the session reclaims this nick next time. (A signed-in person
            // is who their token says.)
            self.session = Some((nick.clone(), session));
        }
        self.me = Some(nick);
        // A v1 server names no user.
        self.user = Some(user).filter(|u| !u.is_empty());
        self.nick_error = None;
        self.sign_in_error = None;
        self.session_taken = false;
        self.merge_member_rooms(rooms);
        self.limits = limits;
        self.welcomed = true;
        self.joining.clear();
        let mut out = Vec::new();
        for room in self.rooms.values() {
            // `since`/`epoch` once we have joined before: that is a resume.
            let since = room.epoch.as_ref().map(|_| room.known_head);
            out.push(ClientMsg::Join {
                room: room.name.clone(),
                since,
                epoch: room.epoch.clone(),
            });
            self.joining.push_back(room.name.clone());
        }
        out.push(self.first_rooms_page());
        out
    }

    /// Asks for the first page of the room list, which replaces what is shown.
    pub(crate) fn first_rooms_page(&mut self) -> ClientMsg {
        self.directory_appending = false;
        ClientMsg::ListRooms {
            cursor: None,
            limit: Some(ROOMS_PAGE),
        }
    }

    /// Asks for the page of rooms after those shown, if there is one.
    pub(crate) fn more_rooms(&mut self) -> Option<ClientMsg> {
        let cursor = self.directory_next.clone()?;
        self.directory_appending = true;
        Some(ClientMsg::ListRooms {
            cursor: Some(cursor),
            limit: Some(ROOMS_PAGE),
        })
    }

    fn on_joined(
        &mut self,
        name: &str,
        head: u64,
        epoch: String,
        nicks: Vec<String>,
        recovered: Option<bool>,
    ) -> Vec<ClientMsg> {
        if let Some(i) = self.joining.iter().position(|r| r == name) {
            self.joining.remove(i);
        }
        let Some(room) = self.rooms.get_mut(name) else {
            // We left it while the join was on its way.
            return vec![ClientMsg::Leave {
                room: name.to_owned(),
            }];
        };
        room.joined = true;
        room.members = nicks;
        if std::mem::take(&mut room.unread_from_start) {
            // Invited or sent a DM: its messages so far wait unread, as the server
            // counts them (read offset 0), and the replay must not count them again.
            room.unread = u32::try_from(head.saturating_sub(room.read)).unwrap_or(u32::MAX);
            room.counted = room.counted.max(head);
        }
        let reset = room.epoch.as_ref().is_some_and(|e| *e != epoch) || recovered == Some(false);
        if reset {
            // What we hold may have gaps or belong to a lost history: start over.
            room.reset();
        }
        if recovered != Some(true) {
            // Everything after `head` now arrives live; older messages come from history.
            // After a successful recovery the replay is still on its way, so
            // `known_head` must keep following the messages themselves.
            room.known_head = head;
        }
        room.epoch = Some(epoch);
        let mut out = Vec::new();
        if recovered != Some(true) || room.messages.is_empty() {
            out.push(ClientMsg::History {
                room: name.to_owned(),
                before: None,
                limit: Some(HISTORY_PAGE),
            });
        }
        // Resending unacked messages and changes is safe: the server de-duplicates by
        // id.
        out.extend(unsent_frames(room));
        out.extend(ChatState::unsent_ops(room));
        out.push(self.first_rooms_page());
        out
    }

    /// Stores a live message. (Alerts about it come from the server as `alert` frames,
    /// the one source of desktop notifications.)
    fn on_message(&mut self, m: ChatMessage) {
        // By user id when both are known (v2): one person, many tabs and devices.
        let mine = self.is_mine(&m.nick, m.user.as_deref());
        let current = self.current.as_deref() == Some(m.room.as_str());
        let hidden = self.hidden;
        let mentioned = !mine && self.me.as_deref().is_some_and(|me| mentions(&m.text, me));
        let Some(room) = self.rooms.get_mut(&m.room) else {
            return;
        };
        if mine {
            // Our own message is stored (it is broadcast only after that), so it is no
            // longer pending even if the ack has not arrived yet.
            room.pending.remove(&m.id);
        }
        let (nick, text, offset) = (m.nick.clone(), m.text.clone(), m.offset);
        if !room.insert_live(m) {
            return;
        }
        if mine {
            room.counted = room.counted.max(offset);
            return;
        }
        // Counted once: the server's count in `welcome` already covers the replay.
        let fresh = offset > room.counted && offset > room.read;
        room.counted = room.counted.max(offset);
        if fresh && (!current || hidden) {
            room.unread += 1;
            if mentioned {
                room.mentions += 1;
            }
        }
        if hidden {
            self.hidden_unread += 1;
        }
        if current {
            self.announcement = format!("{nick}: {text}");
            self.mark_read();
        }
    }

    fn on_ack(&mut self, id: String, room: String, offset: u64) {
        if self.on_op_ack(&id, &room, offset) {
            return;
        }
        let nick = self.me.clone().unwrap_or_default();
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if let Some(sent) = r.pending.remove(&id) {
            // The `message` frame may come later; show it as sent right away. That
            // frame has the same offset, so it replaces this one.
            if !r.messages.contains_key(&offset) {
                r.insert(ChatMessage {
                    reply_to: sent.reply_to,
                    edited_ts: None,
                    deleted: false,
                    reactions: Default::default(),
                    reaction_counts: Default::default(),
                    room,
                    offset,
                    id,
                    nick,
                    text: sent.text,
                    ts: sent.ts,
                    user: self.user.clone(),
                });
            }
        }
    }

    fn on_notification(
        &mut self,
        room: &str,
        kind: NotificationKind,
        text: String,
        nick: Option<String>,
        ts: u64,
    ) {
        let kind = match kind {
            NotificationKind::Joined => NoticeKind::Joined,
            NotificationKind::Left => NoticeKind::Left,
            NotificationKind::Info => NoticeKind::Info,
        };
        let text = match (text.is_empty(), nick, kind) {
            (false, _, _) => text,
            (true, Some(nick), NoticeKind::Joined) => format!("{nick} joined"),
            (true, Some(nick), NoticeKind::Left) => format!("{nick} left"),
            (true, _, _) => return,
        };
        if self.current.as_deref() == Some(room) {
            self.announcement.clone_from(&text);
        }
        self.notice(room, kind, text, ts);
    }

    fn on_error(&mut self, code: ErrorCode, message: String, reference: Option<&str>, now: u64) {
        if self.on_people_error(code, &message, reference) {
            return;
        }
        match (code, reference) {
            (ErrorCode::InvalidToken, _) => {
                // Back to the sign-in screen; the socket stays open for another `hello`.
                self.token = None;
                self.me = None;
                self.user = None;
                self.welcomed = false;
                self.sign_in_error = Some("Your sign-in expired, sign in again.".to_owned());
            }
            (ErrorCode::GuestsDisabled, _) => {
                self.me = None;
                self.welcomed = false;
                // The sign-in screen says so on its guest tab.
                self.guests_disabled = true;
                self.wanted_nick = None;
            }
            (ErrorCode::NickTaken | ErrorCode::InvalidNick, _) => {
                // Back to the nick form; the socket stays open and `hello` may be retried.
                self.me = None;
                self.welcomed = false;
                self.nick_error = Some(message);
            }
            (_, Some("join")) => {
                // Joins are answered in order: the oldest one in flight was refused.
                if let Some(name) = self.joining.pop_front() {
                    let held = self.rooms.get(&name).is_some_and(|r| r.epoch.is_some());
                    if !held {
                        self.rooms.remove(&name);
                        if self.current.as_deref() == Some(name.as_str()) {
                            self.current = self.rooms.keys().next().cloned();
                        }
                    }
                }
                self.room_error = Some(message);
            }
            (code, Some("members")) => {
                // The "more" button may ask again; running out of read budget is no
                // news worth a line, anything else is.
                for r in self.rooms.values_mut() {
                    r.loading_members = false;
                }
                if code != ErrorCode::RateLimited {
                    if let Some(current) = self.current.clone() {
                        self.notice(&current, NoticeKind::Error, message, now);
                    }
                }
            }
            (code, Some("history")) => {
                // The page can be asked for again (the connection does so after a
                // moment when the server's read budget was the reason).
                for r in self.rooms.values_mut() {
                    r.loading_older = false;
                }
                if code != ErrorCode::RateLimited {
                    if let Some(current) = self.current.clone() {
                        self.notice(&current, NoticeKind::Error, message, now);
                    }
                }
            }
            (_, Some(id)) if self.on_op_error(id, &message, now) => {}
            (_, Some(id)) if self.rooms.values().any(|r| r.pending.contains_key(id)) => {
                for r in self.rooms.values_mut() {
                    if let Some(sent) = r.pending.get_mut(id) {
                        sent.error = Some(message.clone());
                    }
                }
            }
            _ => {
                if let Some(current) = self.current.clone() {
                    self.notice(&current, NoticeKind::Error, message, now);
                }
            }
        }
    }

    /// Opens a room: joins it if we are not in it yet, and puts it on screen. Returns
    /// the frames to send, or why the name is not acceptable.
    pub(crate) fn open_room(&mut self, raw: &str) -> Result<Vec<ClientMsg>, String> {
        let name = common::validate::room(raw, &self.limits)
            .map_err(|e| e.to_string())?
            .to_owned();
        self.room_error = None;
        let mut out = Vec::new();
        if !self.rooms.contains_key(&name) {
            self.rooms.insert(name.clone(), Room::new(&name));
            if self.welcomed {
                out.push(ClientMsg::Join {
                    room: name.clone(),
                    since: None,
                    epoch: None,
                });
                self.joining.push_back(name.clone());
            }
        }
        self.show(&name);
        Ok(out)
    }

    /// Opens a room at one of its messages (an alert's): joins it if needed, puts it
    /// on screen and, if we hold the message, renders it, highlighted.
    pub(crate) fn open_message(
        &mut self,
        room: &str,
        offset: u64,
    ) -> Result<Vec<ClientMsg>, String> {
        let out = self.open_room(room)?;
        if let Some(r) = self.rooms.get_mut(room) {
            // Not held yet: each page of history that arrives looks for it, and asks
            // for older ones until it is there.
            r.seeking = (!r.reveal(offset)).then_some(offset);
        }
        self.highlight = Some((room.to_owned(), offset));
        self.highlight_seq += 1;
        Ok(out)
    }

    /// Puts a room we are in on screen; it counts as read.
    fn show(&mut self, name: &str) {
        if self.highlight.as_ref().is_some_and(|(r, _)| r != name) {
            self.highlight = None;
        }
        self.current = Some(name.to_owned());
        if let Some(r) = self.rooms.get_mut(name) {
            r.at_bottom = true;
            r.follow();
        }
        // An invite's answer was about the room left behind.
        self.invite_outcome = None;
        self.mark_read();
    }

    /// Leaves a room. Its unacked messages are dropped with it.
    pub(crate) fn leave_room(&mut self, name: &str) -> Vec<ClientMsg> {
        let Some(room) = self.rooms.remove(name) else {
            return Vec::new();
        };
        if self.current.as_deref() == Some(name) {
            self.current = self.rooms.keys().next().cloned();
            if let Some(next) = self.current.clone() {
                self.show(&next);
            }
        }
        if self.welcomed && (room.joined || self.joining.iter().any(|r| r == name)) {
            vec![ClientMsg::Leave {
                room: name.to_owned(),
            }]
        } else {
            Vec::new()
        }
    }

    /// The tab was hidden or shown again.
    pub(crate) fn set_hidden(&mut self, hidden: bool) {
        self.hidden = hidden;
        if !hidden {
            self.hidden_unread = 0;
            self.mark_read();
        }
    }

    /// Unread messages in the rooms not on screen (the drawer button's badge).
    pub(crate) fn unread_elsewhere(&self) -> u32 {
        self.rooms
            .values()
            .filter(|r| self.current.as_ref() != Some(&r.name))
            .map(|r| r.unread)
            .sum()
    }

    /// The page title: the unread count while the tab is hidden.
    pub(crate) fn title(&self) -> String {
        match (self.hidden_unread, self.current.as_deref()) {
            (n, _) if n > 0 => format!("({n}) Huddle"),
            (_, Some(room)) => format!("#{room} · Huddle"),
            _ => "Huddle".to_owned(),
        }
    }

    /// Queues a message (already validated) to the room on screen and returns the
    /// `send` frame if it can go out now; otherwise it goes out after the next join.
    pub(crate) fn queue_send(&mut self, text: &str, now_ms: u64) -> Option<ClientMsg> {
        let id = self.fresh_id();
        let name = self.current.clone()?;
        let room = self.rooms.get_mut(&name)?;
        let reply_to = room.replying_to.take();
        room.pending.insert(
            id.clone(),
            Outgoing {
                text: text.to_owned(),
                ts: now_ms,
                error: None,
                reply_to,
            },
        );
        room.at_bottom = true;
        room.follow();
        room.joined.then(|| ClientMsg::Send {
            reply_to,
            room: name,
            text: text.to_owned(),
            id,
        })
    }

    /// Tries a refused message again (same id: the server de-duplicates).
    pub(crate) fn retry(&mut self, room: &str, id: &str) -> Option<ClientMsg> {
        let r = self.rooms.get_mut(room)?;
        let sent = r.pending.get_mut(id)?;
        sent.error = None;
        r.joined.then(|| ClientMsg::Send {
            reply_to: sent.reply_to,
            room: room.to_owned(),
            text: sent.text.clone(),
            id: id.to_owned(),
        })
    }

    /// A `typing` frame for the room on screen, at most once per the server's interval.
    pub(crate) fn typing(&mut self, now_ms: u64) -> Option<ClientMsg> {
        let interval = u64::from(self.limits.typing_interval_ms);
        let room = self.room().filter(|r| r.joined)?.name.clone();
        if now_ms < self.last_typing.saturating_add(interval) {
            return None;
        }
        self.last_typing = now_ms;
        Some(ClientMsg::Typing { room })
    }

    /// The view reached the top of the room on screen; returns a `history` request
    /// when older messages must come from the server.
    pub(crate) fn load_older(&mut self) -> Option<ClientMsg> {
        let limit = Some(HISTORY_PAGE);
        let room = self
            .current
            .as_deref()
            .and_then(|c| self.rooms.get_mut(c))?;
        let before = room.older()?;
        Some(ClientMsg::History {
            room: room.name.clone(),
            before: Some(before),
            limit,
        })
    }

    /// The view reports whether it is scrolled to the bottom.
    pub(crate) fn set_at_bottom(&mut self, at_bottom: bool) {
        if let Some(r) = self.current.as_deref().and_then(|c| self.rooms.get_mut(c)) {
            r.at_bottom = at_bottom;
            if at_bottom {
                if r.is_frozen() {
                    r.newer();
                } else {
                    r.follow();
                }
            }
        }
        self.mark_read();
    }

    /// Shows the newest rows of the room on screen.
    pub(crate) fn jump_to_latest(&mut self) {
        if let Some(r) = self.current.as_deref().and_then(|c| self.rooms.get_mut(c)) {
            r.at_bottom = true;
            r.follow();
        }
        self.mark_read();
    }

    /// The connection closed; membership belonged to it.
    pub(crate) fn disconnected(&mut self) {
        self.welcomed = false;
        self.joining.clear();
        for r in self.rooms.values_mut() {
            r.joined = false;
            r.typing.clear();
            // A page asked for on the old connection will not arrive.
            r.loading_older = false;
        }
    }

    /// The server closed this connection for the user's newer ones (close code 4001:
    /// too many connections for this user).
    pub(crate) fn taken_over(&mut self) {
        self.disconnected();
        self.session_taken = true;
    }

    /// The server signed this person out (close code 4003: the token was revoked):
    /// back to the sign-in screen, saying why.
    pub(crate) fn signed_out(&mut self) {
        self.forget_person();
        self.sign_in_error = Some("You were signed out. Sign in again to continue.".to_owned());
    }

    /// The person signed out here: back to an empty sign-in screen.
    pub(crate) fn sign_out(&mut self) {
        self.forget_person();
    }

    /// Forgets who we are and everything that was theirs (rooms, messages, drafts of
    /// sends), so the next person signing in on this page sees none of it. Message ids
    /// keep counting: they must never repeat within a page load.
    fn forget_person(&mut self) {
        let fresh = ChatState::new(None, &[], String::new());
        let kept = ChatState {
            id_prefix: std::mem::take(&mut self.id_prefix),
            next_id: self.next_id,
            next_notice: self.next_notice,
            hidden: self.hidden,
            limits: self.limits.clone(),
            guests_disabled: self.guests_disabled,
            ..fresh
        };
        *self = kept;
    }

    fn notice(&mut self, room: &str, kind: NoticeKind, text: String, ts: u64) {
        self.next_notice += 1;
        let seq = self.next_notice;
        if let Some(r) = self.rooms.get_mut(room) {
            r.notice(seq, kind, text, ts);
        }
    }
}

fn unsent_frames(room: &Room) -> impl Iterator<Item = ClientMsg> + '_ {
    room.pending
        .iter()
        .filter(|(_, sent)| sent.error.is_none())
        .map(|(id, sent)| ClientMsg::Send {
            reply_to: sent.reply_to,
            room: room.name.clone(),
            text: sent.text.clone(),
            id: id.clone(),
        })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_conversation;
#[cfg(test)]
mod tests_inbox;
#[cfg(test)]
mod tests_people;
