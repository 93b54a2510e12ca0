//! The chat as the web app knows it: a plain struct that server frames are applied to.
//!
//! Nothing here touches the DOM, the socket or the browser, so the protocol logic
//! (de-duplication, acks, recovery after a reconnect) is unit-tested natively. The
//! [`crate::connection`] module feeds frames in and sends the follow-up frames that
//! [`ChatState::apply`] returns.

use std::collections::BTreeMap;

use common::{ChatMessage, ClientMsg, ErrorCode, Limits, NotificationKind, ServerMsg};

/// How many messages the room opens with (the `limit` of the first `history` request).
pub(crate) const HISTORY_PAGE: u64 = 50;

/// Most messages kept in memory; the oldest are dropped beyond this so a tab left open
/// for days does not grow without bound.
const MAX_KEPT: usize = 5000;

/// Everything the web app knows about the conversation.
#[derive(Debug, Clone)]
pub(crate) struct ChatState {
    /// The one room this minimal app lives in.
    pub(crate) room: String,
    /// The nick the person asked for; sent in every `hello`, including after reconnects.
    wanted_nick: Option<String>,
    /// The session token from the last `welcome`, and the nick it belongs to. Sent with
    /// `hello` only for exactly that nick (the field is prefilled with it), so picking
    /// another nick does not reclaim the old one. Exact rather than case-insensitive
    /// comparison keeps Unicode case tables (~17 KB) out of the WebAssembly.
    session: Option<(String, String)>,
    /// The nick the server accepted; `None` until the first `welcome` (the nick form is
    /// shown while it is `None`).
    pub(crate) me: Option<String>,
    /// Why the server refused the last `hello`, shown next to the nick field.
    pub(crate) nick_error: Option<String>,
    /// The server's limits; the defaults until `welcome` advertises the real ones.
    pub(crate) limits: Limits,
    /// Whether the current connection has joined the room (sends wait for it).
    pub(crate) joined: bool,
    /// The room's history epoch from the last `joined`; a different one means the
    /// server lost or reset the history and what we hold is stale.
    epoch: Option<String>,
    /// The offset up to which we have seen everything delivered live: `since` for the
    /// next join. It moves with live messages only, never with acks or history.
    known_head: u64,
    /// Messages by offset: an offset is shown once however many times it arrives
    /// (history, live, replay after a reconnect).
    pub(crate) messages: BTreeMap<u64, ChatMessage>,
    /// Notifications and local notices, shown between messages.
    pub(crate) notices: Vec<Notice>,
    /// Messages sent but not acknowledged yet, by their client id. The ids end in a
    /// zero-padded counter, so the map iterates in send order.
    pub(crate) pending: BTreeMap<String, Outgoing>,
    /// Who is in the room now.
    pub(crate) members: Vec<String>,
    /// Whether the server has messages older than the ones we hold.
    pub(crate) has_more: bool,
    /// Set when a newer connection took the session over (close code 4001); the app
    /// then stays offline until the person asks to reconnect.
    pub(crate) session_taken: bool,
    /// Unique per page load, so message ids never repeat across reloads (the server
    /// de-duplicates by room + nick + id, and would swallow a repeated id).
    id_prefix: String,
    /// The counter behind the next message id.
    next_id: u64,
    /// The key of the next notice.
    next_notice: u64,
}

/// A message the person sent that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub(crate) text: String,
    /// Local send time in ms since the epoch, shown until the server's own arrives.
    pub(crate) ts: u64,
    /// Why the server refused it (`rate_limited`, …); refused messages are not resent.
    pub(crate) error: Option<String>,
}

/// One line between the messages that is not a chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// Unique key for rendering.
    pub(crate) seq: u64,
    /// Shown after the message with this offset, i.e. where it happened in the room.
    pub(crate) after: u64,
    pub(crate) kind: NoticeKind,
    pub(crate) text: String,
    pub(crate) ts: u64,
}

/// What a notice is about: the server's notification kinds plus local errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NoticeKind {
    Joined,
    Left,
    Info,
    /// An `error` frame or a connection problem, not from the room's other members.
    Error,
}

/// One row of the message list, in display order; the data is looked up by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Row {
    Message(u64),
    Notice(u64),
}

impl ChatState {
    /// A fresh state for `room`. `saved` is the nick and session from an earlier visit.
    pub(crate) fn new(room: &str, saved: Option<(String, String)>, id_prefix: String) -> Self {
        ChatState {
            room: room.to_owned(),
            wanted_nick: None,
            session: saved,
            me: None,
            nick_error: None,
            limits: Limits::default(),
            joined: false,
            epoch: None,
            known_head: 0,
            messages: BTreeMap::new(),
            notices: Vec::new(),
            pending: BTreeMap::new(),
            members: Vec::new(),
            has_more: false,
            session_taken: false,
            id_prefix,
            next_id: 0,
            next_notice: 0,
        }
    }

    /// Records the nick the person picked (already validated and trimmed).
    pub(crate) fn choose_nick(&mut self, nick: &str) {
        self.wanted_nick = Some(nick.to_owned());
        self.nick_error = None;
    }

    /// The `hello` to send on a fresh connection, if a nick was chosen.
    pub(crate) fn hello(&self) -> Option<ClientMsg> {
        let nick = self.wanted_nick.clone()?;
        let session = self
            .session
            .as_ref()
            .filter(|(owner, _)| *owner == nick)
            .map(|(_, token)| token.clone());
        Some(ClientMsg::Hello { nick, session })
    }

    /// Applies one server frame and returns the frames to send in reply.
    pub(crate) fn apply(&mut self, msg: ServerMsg) -> Vec<ClientMsg> {
        match msg {
            ServerMsg::Welcome {
                nick,
                session,
                limits,
                ..
            } => {
                self.session = Some((nick.clone(), session));
                self.me = Some(nick);
                self.nick_error = None;
                self.session_taken = false;
                self.limits = limits;
                // `since`/`epoch` only once we have joined before: that is a resume.
                let since = self.epoch.as_ref().map(|_| self.known_head);
                return vec![ClientMsg::Join {
                    room: self.room.clone(),
                    since,
                    epoch: self.epoch.clone(),
                }];
            }
            ServerMsg::Joined {
                room,
                head,
                epoch,
                nicks,
                recovered,
            } if room == self.room => return self.on_joined(head, epoch, nicks, recovered),
            ServerMsg::Message(m) if m.room == self.room => {
                if self.me.as_deref() == Some(m.nick.as_str()) {
                    // Our own message is stored (it is broadcast only after that), so it
                    // is no longer pending even if the ack has not arrived yet.
                    self.pending.remove(&m.id);
                }
                self.known_head = self.known_head.max(m.offset);
                self.insert(m);
            }
            ServerMsg::History {
                room,
                messages,
                has_more,
            } if room == self.room => {
                self.has_more = has_more;
                for m in messages {
                    self.insert(m);
                }
            }
            ServerMsg::Ack { id, room, offset } if room == self.room => {
                if let Some(sent) = self.pending.remove(&id) {
                    // The `message` frame may come later; show it as sent right away.
                    // That frame has the same offset, so it replaces this one.
                    let nick = self.me.clone().unwrap_or_default();
                    self.messages.entry(offset).or_insert(ChatMessage {
                        room,
                        offset,
                        id,
                        nick,
                        text: sent.text,
                        ts: sent.ts,
                    });
                    self.trim();
                }
            }
            ServerMsg::Notification {
                room,
                kind,
                text,
                nick,
                ts,
            } if room == self.room => {
                let kind = match kind {
                    NotificationKind::Joined => NoticeKind::Joined,
                    NotificationKind::Left => NoticeKind::Left,
                    NotificationKind::Info => NoticeKind::Info,
                };
                let text = match (text.is_empty(), nick, kind) {
                    (false, _, _) => text,
                    (true, Some(nick), NoticeKind::Joined) => format!("{nick} joined"),
                    (true, Some(nick), NoticeKind::Left) => format!("{nick} left"),
                    (true, _, _) => return Vec::new(),
                };
                self.notice(kind, text, ts);
            }
            ServerMsg::Presence { room, nicks } if room == self.room => self.members = nicks,
            ServerMsg::Error {
                code,
                message,
                reference,
            } => self.on_error(code, message, reference.as_deref()),
            // Other rooms, typing, `left` and `rooms` do not concern this minimal app.
            _ => {}
        }
        Vec::new()
    }

    fn on_joined(
        &mut self,
        head: u64,
        epoch: String,
        nicks: Vec<String>,
        recovered: Option<bool>,
    ) -> Vec<ClientMsg> {
        self.joined = true;
        self.members = nicks;
        let reset = self.epoch.as_ref().is_some_and(|e| *e != epoch) || recovered == Some(false);
        if reset {
            // What we hold may have gaps or belong to a lost history: start over.
            self.messages.clear();
            self.notices.clear();
        }
        if recovered != Some(true) {
            // Everything after `head` now arrives live; older messages come from history.
            // After a successful recovery the replay is still on its way, so `known_head`
            // must keep following the messages themselves.
            self.known_head = head;
        }
        self.epoch = Some(epoch);
        let mut out = Vec::new();
        if recovered != Some(true) || self.messages.is_empty() {
            out.push(ClientMsg::History {
                room: self.room.clone(),
                before: None,
                limit: Some(HISTORY_PAGE),
            });
        }
        // Resending unacked messages is safe: the server de-duplicates by id.
        out.extend(self.unsent_frames());
        out
    }

    fn on_error(&mut self, code: ErrorCode, message: String, reference: Option<&str>) {
        if matches!(code, ErrorCode::NickTaken | ErrorCode::InvalidNick) {
            // Back to the nick form; the socket stays open and `hello` may be retried.
            self.me = None;
            self.joined = false;
            self.nick_error = Some(message);
            return;
        }
        if let Some(sent) = reference.and_then(|r| self.pending.get_mut(r)) {
            sent.error = Some(message);
            return;
        }
        self.notice(NoticeKind::Error, message, 0);
    }

    /// Queues a message (already validated) and returns the `send` frame if it can go
    /// out now; otherwise it goes out after the next join.
    pub(crate) fn queue_send(&mut self, text: &str, now_ms: u64) -> Option<ClientMsg> {
        self.next_id += 1;
        let id = format!("{}-{:06}", self.id_prefix, self.next_id);
        self.pending.insert(
            id.clone(),
            Outgoing {
                text: text.to_owned(),
                ts: now_ms,
                error: None,
            },
        );
        self.joined.then(|| ClientMsg::Send {
            room: self.room.clone(),
            text: text.to_owned(),
            id,
        })
    }

    /// The connection closed; membership belonged to it.
    pub(crate) fn disconnected(&mut self) {
        self.joined = false;
    }

    /// A newer connection took the session over (close code 4001).
    pub(crate) fn taken_over(&mut self, now_ms: u64) {
        self.disconnected();
        self.session_taken = true;
        self.notice(
            NoticeKind::Error,
            "This session was opened elsewhere (another tab or window).".to_owned(),
            now_ms,
        );
    }

    /// The rows of the message list in display order: messages by offset, each notice
    /// after the message that was the newest when it arrived.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let mut notices: Vec<&Notice> = self.notices.iter().collect();
        notices.sort_by_key(|n| (n.after, n.seq));
        let mut notices = notices.into_iter().peekable();
        let mut rows = Vec::with_capacity(self.messages.len() + self.notices.len());
        for &offset in self.messages.keys() {
            while let Some(n) = notices.next_if(|n| n.after < offset) {
                rows.push(Row::Notice(n.seq));
            }
            rows.push(Row::Message(offset));
        }
        rows.extend(notices.map(|n| Row::Notice(n.seq)));
        rows
    }

    fn unsent_frames(&self) -> impl Iterator<Item = ClientMsg> + '_ {
        self.pending
            .iter()
            .filter(|(_, sent)| sent.error.is_none())
            .map(|(id, sent)| ClientMsg::Send {
                room: self.room.clone(),
                text: sent.text.clone(),
                id: id.clone(),
            })
    }

    fn insert(&mut self, m: ChatMessage) {
        self.messages.insert(m.offset, m);
        self.trim();
    }

    fn trim(&mut self) {
        while self.messages.len() > MAX_KEPT {
            self.messages.pop_first();
            self.has_more = true;
        }
    }

    fn notice(&mut self, kind: NoticeKind, text: String, ts: u64) {
        self.next_notice += 1;
        self.notices.push(Notice {
            seq: self.next_notice,
            after: self.known_head,
            kind,
            text,
            ts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(offset: u64, nick: &str, id: &str) -> ChatMessage {
        ChatMessage {
            room: "lobby".to_owned(),
            offset,
            id: id.to_owned(),
            nick: nick.to_owned(),
            text: format!("text {offset}"),
            ts: 1_764_097_200_000 + offset,
        }
    }

    /// The server's answer to alice's `hello`.
    fn welcome(session: &str) -> ServerMsg {
        ServerMsg::Welcome {
            nick: "alice".to_owned(),
            session: session.to_owned(),
            server: "huddle/test".to_owned(),
            limits: Limits::default(),
        }
    }

    /// A state that has been welcomed as alice and has joined the lobby at `head`.
    fn joined(head: u64) -> ChatState {
        let mut s = ChatState::new("lobby", None, "p".to_owned());
        s.choose_nick("alice");
        let out = s.apply(welcome("s1"));
        assert_eq!(
            out,
            vec![ClientMsg::Join {
                room: "lobby".to_owned(),
                since: None,
                epoch: None
            }]
        );
        let out = s.apply(ServerMsg::Joined {
            room: "lobby".to_owned(),
            head,
            epoch: "e1".to_owned(),
            nicks: vec!["alice".to_owned(), "bob".to_owned()],
            recovered: None,
        });
        assert_eq!(
            out,
            vec![ClientMsg::History {
                room: "lobby".to_owned(),
                before: None,
                limit: Some(HISTORY_PAGE)
            }]
        );
        s
    }

    #[test]
    fn a_burst_of_1000_messages_keeps_them_all_in_order() {
        let mut s = joined(0);
        for offset in 1..=1000 {
            s.apply(ServerMsg::Message(msg(
                offset,
                "bob",
                &format!("b{offset}"),
            )));
        }
        assert_eq!(s.messages.len(), 1000);
        let offsets: Vec<u64> = s.messages.keys().copied().collect();
        assert_eq!(offsets, (1..=1000).collect::<Vec<_>>());
        assert_eq!(s.rows().len(), 1000);
    }

    #[test]
    fn history_overlapping_live_and_replayed_messages_shows_each_offset_once() {
        let mut s = joined(50);
        // Live messages arrive before the history answer ...
        for offset in 51..=55 {
            s.apply(ServerMsg::Message(msg(
                offset,
                "bob",
                &format!("b{offset}"),
            )));
        }
        // ... which overlaps them.
        s.apply(ServerMsg::History {
            room: "lobby".to_owned(),
            messages: (6..=53).map(|o| msg(o, "bob", &format!("b{o}"))).collect(),
            has_more: true,
        });
        // The connection drops; the resume asks for everything after 55.
        s.disconnected();
        let out = s.apply(welcome("s1"));
        assert_eq!(
            out,
            vec![ClientMsg::Join {
                room: "lobby".to_owned(),
                since: Some(55),
                epoch: Some("e1".to_owned())
            }]
        );
        let out = s.apply(ServerMsg::Joined {
            room: "lobby".to_owned(),
            head: 60,
            epoch: "e1".to_owned(),
            nicks: vec![],
            recovered: Some(true),
        });
        assert!(out.is_empty(), "a recovered join needs no history: {out:?}");
        // A replay that overlaps what we hold (a server may resend) changes nothing.
        for offset in 54..=60 {
            s.apply(ServerMsg::Message(msg(
                offset,
                "bob",
                &format!("b{offset}"),
            )));
        }
        let offsets: Vec<u64> = s.messages.keys().copied().collect();
        assert_eq!(offsets, (6..=60).collect::<Vec<_>>());
        assert!(s.has_more);
    }

    #[test]
    fn ack_moves_a_pending_message_to_sent_and_its_echo_is_not_duplicated() {
        let mut s = joined(3);
        let frame = s
            .queue_send("hi all", 1000)
            .expect("joined, so it goes out now");
        let ClientMsg::Send { id, text, .. } = frame else {
            panic!("expected a send frame, got {frame:?}");
        };
        assert_eq!(text, "hi all");
        assert!(s.pending.contains_key(&id));

        s.apply(ServerMsg::Ack {
            id: id.clone(),
            room: "lobby".to_owned(),
            offset: 4,
        });
        assert!(s.pending.is_empty());
        assert_eq!(s.messages[&4].text, "hi all");
        assert_eq!(s.messages[&4].nick, "alice");

        s.apply(ServerMsg::Message(ChatMessage {
            text: "hi all".to_owned(),
            ..msg(4, "alice", &id)
        }));
        assert_eq!(s.messages.len(), 1);
        assert_eq!(s.rows(), vec![Row::Message(4)]);
    }

    #[test]
    fn echo_before_ack_also_clears_pending() {
        let mut s = joined(0);
        let Some(ClientMsg::Send { id, .. }) = s.queue_send("yo", 1) else {
            panic!("expected a send frame");
        };
        s.apply(ServerMsg::Message(msg(1, "alice", &id)));
        assert!(s.pending.is_empty());
        s.apply(ServerMsg::Ack {
            id,
            room: "lobby".to_owned(),
            offset: 1,
        });
        assert_eq!(s.messages.len(), 1);
    }

    #[test]
    fn sends_while_disconnected_wait_for_the_join_and_ids_are_unique() {
        let mut s = joined(0);
        s.disconnected();
        assert_eq!(s.queue_send("one", 1), None);
        assert_eq!(s.queue_send("two", 2), None);
        s.apply(welcome("s2"));
        let out = s.apply(ServerMsg::Joined {
            room: "lobby".to_owned(),
            head: 0,
            epoch: "e1".to_owned(),
            nicks: vec![],
            recovered: Some(true),
        });
        let texts: Vec<&str> = out
            .iter()
            .filter_map(|m| match m {
                ClientMsg::Send { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["one", "two"]);
        let ids: std::collections::HashSet<_> = s.pending.keys().collect();
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn a_new_epoch_discards_what_we_hold_and_reloads_history() {
        let mut s = joined(0);
        s.apply(ServerMsg::Message(msg(1, "bob", "b1")));
        s.disconnected();
        let out = s.apply(ServerMsg::Joined {
            room: "lobby".to_owned(),
            head: 0,
            epoch: "e2".to_owned(),
            nicks: vec![],
            recovered: Some(false),
        });
        assert!(s.messages.is_empty());
        assert!(matches!(out.first(), Some(ClientMsg::History { .. })));
    }

    #[test]
    fn notices_sit_where_they_happened_and_errors_reach_their_target() {
        let mut s = joined(0);
        s.apply(ServerMsg::Message(msg(1, "bob", "b1")));
        s.apply(ServerMsg::Notification {
            room: "lobby".to_owned(),
            kind: NotificationKind::Left,
            text: "bob left".to_owned(),
            nick: Some("bob".to_owned()),
            ts: 5,
        });
        s.apply(ServerMsg::Message(msg(2, "carol", "c1")));
        assert_eq!(
            s.rows(),
            vec![Row::Message(1), Row::Notice(1), Row::Message(2)]
        );

        let Some(ClientMsg::Send { id, .. }) = s.queue_send("spam", 1) else {
            panic!("expected a send frame");
        };
        s.apply(ServerMsg::error(
            ErrorCode::RateLimited,
            "slow down",
            Some(id.clone()),
        ));
        assert_eq!(s.pending[&id].error.as_deref(), Some("slow down"));

        s.apply(ServerMsg::error(
            ErrorCode::NickTaken,
            "nick is taken",
            Some("hello".to_owned()),
        ));
        assert_eq!(s.me, None);
        assert_eq!(s.nick_error.as_deref(), Some("nick is taken"));
    }

    #[test]
    fn the_session_is_offered_only_for_its_own_nick() {
        let saved = Some(("alice".to_owned(), "s9".to_owned()));
        let mut s = ChatState::new("lobby", saved, "p".to_owned());
        assert_eq!(s.hello(), None);
        s.choose_nick("alice");
        assert_eq!(
            s.hello(),
            Some(ClientMsg::Hello {
                nick: "alice".to_owned(),
                session: Some("s9".to_owned())
            })
        );
        s.choose_nick("bob");
        assert_eq!(
            s.hello(),
            Some(ClientMsg::Hello {
                nick: "bob".to_owned(),
                session: None
            })
        );
    }
}
