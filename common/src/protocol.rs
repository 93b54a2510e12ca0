//! The frames of protocol v2 (v1 plus its additions). Field names and the `type` tags
//! are the contract: renaming any of them breaks every client, so the golden tests in
//! `tests/wire.rs` pin them. Every v2 field a v1 client does not send is optional.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Opens the conversation; must come first. A guest names a `nick` (and `session`,
    /// to be the same guest as before); a signed-in person sends `token` instead (an
    /// account token or the host application's JWT). A `hello {token}` on a signed-in
    /// connection refreshes its token.
    Hello {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Subscribe to a room, optionally recovering everything after offset `since`.
    Join {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Unsubscribe from a room.
    Leave { room: String },
    /// Post a message; `id` is the client's key for the ack and for de-duplication.
    Send {
        room: String,
        text: String,
        id: String,
        /// The offset of the message this one answers, in the same room (v2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
    },
    /// Replaces the text of the sender's own message at `offset` (v2).
    Edit {
        room: String,
        offset: u64,
        text: String,
        id: String,
    },
    /// Takes back the message at `offset`: the sender's own, or any in a room the
    /// sender owns (v2).
    Delete {
        room: String,
        offset: u64,
        id: String,
    },
    /// Adds (`on`) or takes back a reaction to the message at `offset` (v2).
    React {
        room: String,
        offset: u64,
        emoji: String,
        on: bool,
        id: String,
    },
    /// "I am typing" in a room.
    Typing { room: String },
    /// Page backwards through a room's messages.
    History {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Ask for a page of a joined room's members, in the order of their nicks (an
    /// addition to the contract: `joined` lists only the first page of a crowd).
    Members {
        room: String,
        /// Where to continue: members whose nick sorts after this one (the `next` of
        /// the previous page, or of `joined`); from the first when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// Nicks per page, 1 to [`crate::MAX_MEMBERS_PAGE`] (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Ask for a page of the rooms that exist now (an addition to v1: both fields are
    /// optional, so a bare `list_rooms` gets the first page).
    ListRooms {
        /// Where to continue: the `next` of the previous page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        /// Rooms per page, 1 to [`crate::MAX_ROOMS_PAGE`] (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// The user has read `room` up to `offset` (v2).
    Read { room: String, offset: u64 },
    /// Creates a room whose owner is the sender (v2).
    CreateRoom {
        room: String,
        #[serde(default)]
        private: bool,
    },
    /// Makes `user` a member of a private room the sender owns (v2).
    Invite { room: String, user: String },
    /// Ends `user`'s membership of a room the sender owns (v2).
    Remove { room: String, user: String },
    /// Opens (or finds) the direct-message room with `user` (v2).
    OpenDm { user: String },
    /// Asks for the user's alerts after `since` (the newest 50 when absent) (v2).
    Inbox {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Marks the user's alerts up to `seq` read (v2).
    AlertRead { seq: u64 },
    /// Registers this browser for Web Push: the browser's `PushSubscription` JSON (v2).
    PushSubscribe { endpoint: String, keys: PushKeys },
    /// Forgets a Web Push subscription of the user (an addition to the contract).
    PushUnsubscribe { endpoint: String },
    /// Chooses which messages of a room alert the user (an addition to the contract).
    RoomNotify { room: String, level: NotifyLevel },
    /// Sets (or, with both absent, clears) the user's quiet hours, when nothing is
    /// pushed (an addition to the contract).
    QuietHours {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quiet: Option<Quiet>,
    },
}

impl ClientMsg {
    /// The `type` tag of this frame, used as `ref` in errors about it.
    pub const fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::Join { .. } => "join",
            ClientMsg::Leave { .. } => "leave",
            ClientMsg::Send { .. } => "send",
            ClientMsg::Edit { .. } => "edit",
            ClientMsg::Delete { .. } => "delete",
            ClientMsg::React { .. } => "react",
            ClientMsg::Typing { .. } => "typing",
            ClientMsg::History { .. } => "history",
            ClientMsg::ListRooms { .. } => "list_rooms",
            ClientMsg::Members { .. } => "members",
            ClientMsg::Read { .. } => "read",
            ClientMsg::CreateRoom { .. } => "create_room",
            ClientMsg::Invite { .. } => "invite",
            ClientMsg::Remove { .. } => "remove",
            ClientMsg::OpenDm { .. } => "open_dm",
            ClientMsg::Inbox { .. } => "inbox",
            ClientMsg::AlertRead { .. } => "alert_read",
            ClientMsg::PushSubscribe { .. } => "push_subscribe",
            ClientMsg::PushUnsubscribe { .. } => "push_unsubscribe",
            ClientMsg::RoomNotify { .. } => "room_notify",
            ClientMsg::QuietHours { .. } => "quiet_hours",
        }
    }

    /// The room this frame is about, if it names one.
    pub fn room(&self) -> Option<&str> {
        match self {
            ClientMsg::Join { room, .. }
            | ClientMsg::Leave { room }
            | ClientMsg::Send { room, .. }
            | ClientMsg::Edit { room, .. }
            | ClientMsg::Delete { room, .. }
            | ClientMsg::React { room, .. }
            | ClientMsg::Typing { room }
            | ClientMsg::History { room, .. }
            | ClientMsg::Members { room, .. }
            | ClientMsg::Read { room, .. }
            | ClientMsg::CreateRoom { room, .. }
            | ClientMsg::Invite { room, .. }
            | ClientMsg::Remove { room, .. }
            | ClientMsg::RoomNotify { room, .. } => Some(room),
            ClientMsg::Hello { .. }
            | ClientMsg::ListRooms { .. }
            | ClientMsg::OpenDm { .. }
            | ClientMsg::Inbox { .. }
            | ClientMsg::AlertRead { .. }
            | ClientMsg::PushSubscribe { .. }
            | ClientMsg::PushUnsubscribe { .. }
            | ClientMsg::QuietHours { .. } => None,
        }
    }

    /// What an `error` about this frame carries as `ref`: the id of a frame that writes
    /// to a room's log (`send`, `edit`, `delete`, `react`), otherwise the frame's type.
    pub fn reference(&self) -> &str {
        match self {
            ClientMsg::Send { id, .. }
            | ClientMsg::Edit { id, .. }
            | ClientMsg::Delete { id, .. }
            | ClientMsg::React { id, .. } => id,
            other => other.kind(),
        }
    }
}

/// A frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to a successful `hello`.
    Welcome {
        nick: String,
        session: String,
        server: String,
        limits: Limits,
        /// The user this connection belongs to (v2).
        #[serde(default)]
        user: String,
        /// The rooms the user is a member of (v2): what the client should join.
        #[serde(default)]
        rooms: Vec<MemberRoom>,
        /// Where the user's inbox stands (v2).
        #[serde(default)]
        inbox: InboxState,
        /// The user's quiet hours, if set (an addition to the contract).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quiet: Option<Quiet>,
    },
    /// The answer to `join`; always sent before any replayed message.
    Joined {
        room: String,
        /// The latest offset in the room when the subscription took effect (0 if none).
        head: u64,
        /// Names this room's history; a different epoch means history was lost or reset.
        epoch: String,
        nicks: Vec<String>,
        /// Present exactly when the join carried `since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// How many members the room has, present only when `nicks` is not all of them:
        /// a crowd (more members than the server announces), whose `nicks` are the first
        /// page of the `members` order, or a room whose list would outgrow the frame
        /// limit. An addition to v1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<u64>,
        /// In a crowd, the `after` of a `members` request for the page after `nicks`;
        /// absent when `nicks` is all of them or not a page of that order (an
        /// addition to the contract).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The answer to `leave`.
    Left { room: String },
    /// A chat message, to every member of its room.
    Message(ChatMessage),
    /// A message's text was replaced: an entry of the room's log (v2).
    Edited(Edited),
    /// A message was taken back: an entry of the room's log (v2).
    Deleted(Deleted),
    /// A reaction was added or taken back: an entry of the room's log (v2).
    Reacted(Reacted),
    /// To the sender, once its message is durably stored.
    Ack {
        id: String,
        room: String,
        offset: u64,
    },
    /// A system event (someone joined or left, or an informational notice).
    Notification {
        room: String,
        kind: NotificationKind,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
        ts: u64,
        /// A stored notice's place in the room's log (v2: the notifications API with
        /// `persist`); absent on notices that are not stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// A room's member list after it changed.
    Presence { room: String, nicks: Vec<String> },
    /// Someone else is typing in a room.
    Typing { room: String, nick: String },
    /// The answer to `history`: messages ascending by offset, in their current state.
    History {
        room: String,
        messages: Vec<ChatMessage>,
        has_more: bool,
        /// The display name of each user named in the messages' reactions (an addition
        /// to the contract), so a client can say who reacted.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        nicks: BTreeMap<String, String>,
    },
    /// The answer to `list_rooms`: one page, most messages first.
    Rooms {
        rooms: Vec<RoomInfo>,
        /// Rooms in all (an addition to v1).
        #[serde(default)]
        total: u64,
        /// The cursor for the next page; absent on the last one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The answer to `members`: one page of a room's members, ordered by nick (an
    /// addition to the contract).
    Members {
        room: String,
        /// Each member's nick once, ascending (by Unicode code point).
        nicks: Vec<String>,
        /// Members in all.
        total: u64,
        /// The `after` of the next page; absent on the last one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The user's read offset in a room moved (sent to the user's other connections).
    Read { room: String, offset: u64 },
    /// The answer to `create_room`.
    RoomCreated { room: String, private: bool },
    /// A user became a member of a private room: to the inviter (without `by`) and to
    /// each connection of the invitee (with `by`, the inviter's user id).
    Invited {
        room: String,
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The direct-message room with `user`: the answer to `open_dm`, and to the other
    /// user's connections (naming the opener).
    Dm {
        room: String,
        user: String,
        /// `user`'s display name (an addition to the contract).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
    },
    /// A new alert in the user's inbox, to every connection of the user (v2).
    Alert(Alert),
    /// The answer to `inbox`: alerts ascending by `seq` (v2).
    Inbox {
        alerts: Vec<Alert>,
        head: u64,
        unread: u64,
    },
    /// The user's alerts up to `seq` were read (to the user's other connections) (v2).
    AlertRead { seq: u64 },
    /// The answer to `push_subscribe` (v2).
    PushSubscribed { endpoint: String },
    /// The answer to `push_unsubscribe` (an addition to the contract).
    PushUnsubscribed { endpoint: String },
    /// A room's alert level changed: the answer to `room_notify`, and to the user's
    /// other connections (an addition to the contract).
    RoomNotify { room: String, level: NotifyLevel },
    /// The user's quiet hours changed: the answer to `quiet_hours`, and to the user's
    /// other connections (an addition to the contract).
    QuietHours {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quiet: Option<Quiet>,
    },
    /// A refused request; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerMsg {
    /// Builds an `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            reference,
        }
    }
}

/// A stored chat message as it travels in `message` and `history` frames.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub room: String,
    /// Position in the room: 1, 2, 3, … with no gaps, one total order for every member.
    pub offset: u64,
    /// The id the sender chose.
    pub id: String,
    pub nick: String,
    /// Absent from a deleted message (in `history`): its text is gone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Milliseconds since the Unix epoch, set by the server when it stored the message.
    pub ts: u64,
    /// The sender's user id (v2; absent on messages stored before v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The offset of the message this one answers (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// When the text was last edited (v2, `history` only: live, edits arrive as
    /// `edited` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<u64>,
    /// The message was deleted (v2, `history` only); it then has no text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// Who reacted with what, each emoji's users in the order they reacted (v2,
    /// `history` only).
    #[serde(default, skip_serializing_if = "Reactions::is_empty")]
    pub reactions: Reactions,
    /// How many users reacted with each emoji, present only when `reactions` lists
    /// fewer of them than reacted (a message too popular to name everyone within the
    /// frame limit) (an addition to the contract).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reaction_counts: BTreeMap<String, u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A message's reactions: each emoji with the users who reacted with it, emoji in the
/// order they were first used. On the wire a JSON object `{emoji: [user, …]}`; a
/// `Vec` rather than a map keeps that order, which a sorted map would lose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactions(pub Vec<(String, Vec<String>)>);

impl Reactions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds (`on`) or takes back `user`'s `emoji`; an emoji nobody uses any more goes.
    /// Adding twice or taking back what was not there changes nothing.
    pub fn apply(&mut self, emoji: &str, user: &str, on: bool) {
        let at = self.0.iter().position(|(e, _)| e == emoji);
        match (at, on) {
            (Some(i), true) => {
                let users = &mut self.0[i].1;
                if !users.iter().any(|u| u == user) {
                    users.push(user.to_owned());
                }
            }
            (None, true) => self.0.push((emoji.to_owned(), vec![user.to_owned()])),
            (Some(i), false) => {
                self.0[i].1.retain(|u| u != user);
                if self.0[i].1.is_empty() {
                    self.0.remove(i);
                }
            }
            (None, false) => {}
        }
    }

    /// The users who reacted with `emoji`.
    pub fn users(&self, emoji: &str) -> &[String] {
        self.0
            .iter()
            .find(|(e, _)| e == emoji)
            .map_or(&[], |(_, users)| users.as_slice())
    }
}

impl Serialize for Reactions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (emoji, users) in &self.0 {
            map.serialize_entry(emoji, users)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Reactions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Reactions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of emoji to lists of users")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Reactions, A::Error> {
                let mut out = Vec::new();
                while let Some((emoji, users)) = a.next_entry::<String, Vec<String>>()? {
                    out.push((emoji, users));
                }
                Ok(Reactions(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// An `edited` entry: the message at `target` now reads `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edited {
    pub room: String,
    /// This entry's own place in the room's log.
    pub offset: u64,
    /// The message edited.
    pub target: u64,
    pub text: String,
    /// Who edited it (its author).
    pub user: String,
    pub ts: u64,
}

/// A `deleted` entry: the message at `target` was taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub room: String,
    pub offset: u64,
    pub target: u64,
    /// Who deleted it: its author or the room's owner.
    pub user: String,
    pub ts: u64,
}

/// A `reacted` entry: `user` added (`on`) or took back `emoji` on the message at
/// `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reacted {
    pub room: String,
    pub offset: u64,
    pub target: u64,
    pub emoji: String,
    pub user: String,
    pub on: bool,
    pub ts: u64,
    /// The reacting user's display name (an addition to the contract).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nick: String,
}

/// One entry of a room's log: what takes an offset, is delivered live and is replayed
/// by `join {since}`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A message, or a stored notice.
    Message(ChatMessage),
    Edited(Edited),
    Deleted(Deleted),
    Reacted(Reacted),
}

impl Entry {
    pub fn room(&self) -> &str {
        match self {
            Entry::Message(m) => &m.room,
            Entry::Edited(e) => &e.room,
            Entry::Deleted(d) => &d.room,
            Entry::Reacted(r) => &r.room,
        }
    }

    /// The entry's place in the room's log.
    pub fn offset(&self) -> u64 {
        match self {
            Entry::Message(m) => m.offset,
            Entry::Edited(e) => e.offset,
            Entry::Deleted(d) => d.offset,
            Entry::Reacted(r) => r.offset,
        }
    }

    pub fn ts(&self) -> u64 {
        match self {
            Entry::Message(m) => m.ts,
            Entry::Edited(e) => e.ts,
            Entry::Deleted(d) => d.ts,
            Entry::Reacted(r) => r.ts,
        }
    }

    /// The message, when this entry is one.
    pub fn as_message(&self) -> Option<&ChatMessage> {
        match self {
            Entry::Message(m) => Some(m),
            _ => None,
        }
    }
}

impl ChatMessage {
    /// Whether this is a notice the notifications API stored in the room's log rather
    /// than a person's message: it has no sender, so an empty nick (which no person can
    /// have). Live and on resume it travels as a `notification` with its offset; in
    /// `history` it is an item with an empty nick.
    pub fn is_notice(&self) -> bool {
        self.nick.is_empty()
    }
}

impl ServerMsg {
    /// The frame an entry of a room's log travels as: a `message` (for a stored notice
    /// an `info` `notification` with its offset), `edited`, `deleted` or `reacted`.
    pub fn stored(entry: Entry) -> Self {
        match entry {
            Entry::Message(m) => Self::stored_message(m),
            Entry::Edited(e) => ServerMsg::Edited(e),
            Entry::Deleted(d) => ServerMsg::Deleted(d),
            Entry::Reacted(r) => ServerMsg::Reacted(r),
        }
    }

    fn stored_message(msg: ChatMessage) -> Self {
        if msg.is_notice() {
            ServerMsg::Notification {
                room: msg.room,
                kind: NotificationKind::Info,
                text: msg.text,
                nick: None,
                ts: msg.ts,
                offset: Some(msg.offset),
            }
        } else {
            ServerMsg::Message(msg)
        }
    }
}

/// One of the rooms a user is a member of, as `welcome.rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoom {
    pub room: String,
    /// The room's latest offset (0 if it has no messages).
    pub head: u64,
    pub epoch: String,
    /// The user's read offset.
    pub read: u64,
    /// Messages after `read`.
    pub unread: u64,
    /// Those of the unread messages that mention the user.
    pub mentions: u64,
    pub private: bool,
    /// For a direct-message room, the other user's id (an addition to the contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm: Option<String>,
    /// For a direct-message room, the other user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_nick: Option<String>,
    /// Which of the room's messages alert the user (an addition to the contract).
    #[serde(default)]
    pub notify: NotifyLevel,
    /// The user id of the room's owner, who may delete anyone's message in it (an
    /// addition to the contract); absent for a room without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One alert of a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The alert's place in the user's inbox: 1, 2, 3, … with no gaps.
    pub seq: u64,
    pub kind: AlertKind,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The message the alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Milliseconds since the Unix epoch, when the alert was made.
    pub ts: u64,
    pub read: bool,
}

/// What made an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A message in one of the user's rooms names `@nick`.
    Mention,
    /// A message in a DM room while none of the user's connections is in it.
    Dm,
    /// The user was made a member of a private room.
    Invite,
    /// From the notifications API.
    App,
    /// Any message in a room whose level the user set to `all` (an addition to the
    /// contract).
    Message,
    /// A reply to one of the user's messages (an addition to the contract).
    Reply,
}

impl AlertKind {
    /// The kind as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::Mention => "mention",
            AlertKind::Dm => "dm",
            AlertKind::Invite => "invite",
            AlertKind::App => "app",
            AlertKind::Message => "message",
            AlertKind::Reply => "reply",
        }
    }

    /// The kind named `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        [
            AlertKind::Mention,
            AlertKind::Dm,
            AlertKind::Invite,
            AlertKind::App,
            AlertKind::Message,
            AlertKind::Reply,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a user's inbox stands, in `welcome`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxState {
    /// The newest alert's `seq` (0 for an empty inbox).
    pub head: u64,
    /// Alerts not read yet.
    pub unread: u64,
}

/// Which messages of a room alert its member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyLevel {
    /// Every message (in a DM room, every message alerts unless muted).
    All,
    /// Messages naming `@nick` (the default).
    #[default]
    Mentions,
    /// None: the room is muted.
    Nothing,
}

impl NotifyLevel {
    /// The level as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyLevel::All => "all",
            NotifyLevel::Mentions => "mentions",
            NotifyLevel::Nothing => "nothing",
        }
    }

    /// The level named `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        [
            NotifyLevel::All,
            NotifyLevel::Mentions,
            NotifyLevel::Nothing,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// Quiet hours: from `from` to `to`, minutes after midnight in the user's time zone,
/// which is `tz` minutes east of UTC (the span may wrap past midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiet {
    pub from: u16,
    pub to: u16,
    #[serde(default)]
    pub tz: i16,
}

impl Quiet {
    /// Whether these are sensible hours: both ends within a day, and an offset within
    /// ±14 h (the widest offset in use).
    pub fn is_valid(&self) -> bool {
        self.from < 1440 && self.to < 1440 && self.tz.unsigned_abs() <= 14 * 60
    }

    /// Whether the instant `now_ms` (Unix milliseconds) falls in the quiet hours.
    pub fn covers(&self, now_ms: u64) -> bool {
        let minute_utc = (now_ms / 60_000 % 1440) as i64;
        let local = (minute_utc + i64::from(self.tz)).rem_euclid(1440) as u16;
        if self.from <= self.to {
            self.from <= local && local < self.to
        } else {
            local >= self.from || local < self.to
        }
    }
}

/// A browser's Web Push keys, as `PushSubscription.toJSON()` gives them (base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// What a `notification` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Joined,
    Left,
    Info,
}

/// One entry of a `rooms` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room: String,
    /// Connections in the room now.
    pub members: u64,
    /// The room's latest offset (0 if it has no messages).
    pub head: u64,
}

/// The limits a server enforces, advertised in `welcome` so clients can validate early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest nick, in characters after trimming.
    pub nick_max_chars: u32,
    /// Longest room name, in characters.
    pub room_max_chars: u32,
    /// Longest message text, in characters after trimming.
    pub text_max_chars: u32,
    /// Longest message id, in characters.
    pub id_max_chars: u32,
    /// Most messages one `history` request returns.
    pub history_max: u32,
    /// Messages a `history` request returns when it names no `limit`.
    pub history_default: u32,
    /// Sustained `send`s per second per connection.
    pub rate_per_sec: u32,
    /// Burst of `send`s allowed above the sustained rate.
    pub rate_burst: u32,
    /// Largest frame the server accepts, in bytes.
    pub max_frame_bytes: u32,
    /// The server forwards at most one `typing` per nick per room per this many ms.
    pub typing_interval_ms: u32,
    /// How long after posting a message its author may edit it, in ms; absent when
    /// there is no limit (an addition to the contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_window_ms: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nick_max_chars: 32,
            room_max_chars: 64,
            text_max_chars: 4000,
            id_max_chars: 64,
            history_max: 100,
            history_default: 50,
            rate_per_sec: 20,
            rate_burst: 40,
            max_frame_bytes: 64 * 1024,
            typing_interval_ms: 2000,
            edit_window_ms: None,
        }
    }
}
