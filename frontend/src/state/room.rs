//! One room as the web app knows it: its messages by offset, notices, unacked sends,
//! members, typists, and which slice of it is rendered.
//!
//! The rendered slice (the "window") keeps the DOM bounded: a room may hold thousands
//! of messages in memory, but at most [`MAX_RENDERED`] rows are in the page. Scrolling
//! up moves the window to older messages (and asks the server for more once we reach
//! the oldest we hold); scrolling back down moves it to newer ones.

use std::collections::BTreeMap;

use common::{ChatMessage, NotifyLevel};

use super::conversation::PendingOp;

/// Most messages kept in memory per room; the oldest are dropped beyond this so a tab
/// left open for days does not grow without bound.
pub(crate) const MAX_KEPT: usize = 5000;

/// Most notices kept per room.
const MAX_NOTICES: usize = 500;

/// Rows rendered while following the newest messages.
pub(crate) const WINDOW: usize = 150;

/// Most rows rendered at once; beyond this, rows far out of view are dropped.
pub(crate) const MAX_RENDERED: usize = 300;

/// How far one scroll step moves the window.
pub(crate) const STEP: usize = 50;

/// Consecutive messages of one nick closer together than this are grouped.
const GROUP_MS: u64 = 5 * 60 * 1000;

/// How long "alice is typing…" stays without a new `typing` frame.
pub(crate) const TYPING_SHOWN_MS: u64 = 5000;

#[derive(Debug, Clone)]
pub(crate) struct Room {
    pub(crate) name: String,
    /// Whether this connection has joined it (sends wait for that).
    pub(crate) joined: bool,
    /// The history epoch from the last `joined`; a different one means the server lost
    /// or reset the history and what we hold is stale.
    pub(crate) epoch: Option<String>,
    /// Up to where we have seen everything delivered live: `since` for the next join.
    /// It moves with live messages only, never with acks or history.
    pub(crate) known_head: u64,
    /// Messages by offset: an offset is shown once however many times it arrives.
    pub(crate) messages: BTreeMap<u64, ChatMessage>,
    pub(crate) notices: Vec<Notice>,
    /// Sent but not acknowledged, by client id. Ids end in a zero-padded counter, so
    /// the map iterates in send order.
    pub(crate) pending: BTreeMap<String, Outgoing>,
    /// Who is here: the whole list, or in a crowd the pages fetched so far (ordered by
    /// nick, as the server pages them).
    pub(crate) members: Vec<String>,
    /// In a crowd (the server sends its first page only), how many members there are
    /// in all; `None` when `members` is the whole list.
    pub(crate) member_total: Option<u64>,
    /// The `after` of the next page of members, while there is one.
    pub(crate) members_next: Option<String>,
    /// A `members` request is on its way (the "more" button waits for it).
    pub(crate) loading_members: bool,
    /// Whether the server has messages older than the ones we hold.
    pub(crate) has_more: bool,
    /// A `history` request for older messages is on its way.
    pub(crate) loading_older: bool,
    /// Messages that arrived while the person was looking elsewhere.
    pub(crate) unread: u32,
    /// Who is typing, and until when (ms since the epoch) to show it.
    pub(crate) typing: BTreeMap<String, u64>,
    /// Oldest rendered offset; `None`: from the oldest held.
    pub(crate) lo: Option<u64>,
    /// Newest rendered offset; `None`: up to the newest (following live messages).
    pub(crate) hi: Option<u64>,
    /// Whether the list is scrolled to the bottom (reported by the view).
    pub(crate) at_bottom: bool,
    /// Invitation-only (v2): shown with a lock, and offers the invite field.
    pub(crate) private: bool,
    /// For a direct-message room, the other person (listed under "Direct messages").
    pub(crate) dm: Option<Peer>,
    /// Unread messages that mention us (the `@` badge).
    pub(crate) mentions: u32,
    /// The user's read offset as last known, from any of their tabs or devices; it only
    /// moves forward.
    pub(crate) read: u64,
    /// The newest offset already counted into `unread`: the server's count in `welcome`
    /// covers everything up to the room's head, so a replay after the join must not
    /// count those messages again.
    pub(crate) counted: u64,
    /// The read offset last told to the server, and when (ms since the epoch): `read`
    /// frames are throttled per room, and one received from another tab is not echoed.
    pub(crate) read_sent: u64,
    pub(crate) read_sent_at: u64,
    /// Nick → user id, learnt from the messages seen: the member list only has nicks,
    /// and avatars are coloured by user id.
    pub(crate) users: BTreeMap<String, String>,
    /// The server made us a member (an invitation, a DM) with nothing read: what its
    /// first `joined` says is there is unread.
    pub(crate) unread_from_start: bool,
    /// Which of the room's messages alert the person (`room_notify`).
    pub(crate) notify: NotifyLevel,
    /// Our edits, deletions and reactions whose entries we have not seen, by client id
    /// (in the order they were made).
    pub(crate) ops: BTreeMap<String, PendingOp>,
    /// User id → display name, learnt from messages, `history.nicks` and reactions:
    /// reactions name users by id.
    pub(crate) names: BTreeMap<String, String>,
    /// The message the next one sent answers (shown above the composer).
    pub(crate) replying_to: Option<u64>,
    /// The message being edited in place.
    pub(crate) editing: Option<u64>,
    /// The message a reply's quote asked for, while older pages are loaded to reach it.
    pub(crate) seeking: Option<u64>,
    /// We created this room here, so we own it (and may delete others' messages).
    pub(crate) owned: bool,
}

/// The other person of a direct-message room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) user: String,
    /// Their display name when the server told it, else their user id.
    pub(crate) nick: String,
}

/// A message the person sent that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub(crate) text: String,
    /// Local send time in ms since the epoch, shown until the server's own arrives.
    pub(crate) ts: u64,
    /// Why the server refused it (`rate_limited`, …); refused messages are not resent
    /// until the person retries.
    pub(crate) error: Option<String>,
    /// The message it answers.
    pub(crate) reply_to: Option<u64>,
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

/// One rendered row, in display order; the data is looked up by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Row {
    /// `continued`: same nick as the row before, shortly after, so shown without meta.
    Message {
        offset: u64,
        continued: bool,
    },
    Notice(u64),
}

/// A row's identity, which never changes while it is on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RowKey {
    Message(u64),
    Notice(u64),
}

impl Row {
    /// What a list of rows is keyed by: the message's offset or the notice's number,
    /// not how the row looks now.
    pub(crate) fn key(self) -> RowKey {
        match self {
            Row::Message { offset, .. } => RowKey::Message(offset),
            Row::Notice(seq) => RowKey::Notice(seq),
        }
    }
}

impl Room {
    pub(crate) fn new(name: &str) -> Self {
        Room {
            name: name.to_owned(),
            joined: false,
            epoch: None,
            known_head: 0,
            messages: BTreeMap::new(),
            notices: Vec::new(),
            pending: BTreeMap::new(),
            members: Vec::new(),
            member_total: None,
            members_next: None,
            loading_members: false,
            has_more: false,
            loading_older: false,
            unread: 0,
            typing: BTreeMap::new(),
            lo: None,
            hi: None,
            at_bottom: true,
            private: false,
            dm: None,
            mentions: 0,
            read: 0,
            counted: 0,
            read_sent: 0,
            read_sent_at: 0,
            users: BTreeMap::new(),
            unread_from_start: false,
            notify: NotifyLevel::default(),
            ops: BTreeMap::new(),
            names: BTreeMap::new(),
            replying_to: None,
            editing: None,
            seeking: None,
            owned: false,
        }
    }

    /// Forgets what we hold (a new epoch, or `recovered: false`).
    pub(crate) fn reset(&mut self) {
        self.messages.clear();
        self.notices.clear();
        self.has_more = false;
        self.loading_older = false;
        self.lo = None;
        self.hi = None;
        self.replying_to = None;
        self.editing = None;
        self.seeking = None;
    }

    /// Adds a message delivered live (or replayed after a resume).
    pub(crate) fn insert_live(&mut self, mut m: ChatMessage) -> bool {
        self.known_head = self.known_head.max(m.offset);
        if let Some(held) = self.messages.get(&m.offset) {
            // A page of history (current-state) may have brought it first, with edits,
            // a deletion or reactions that the live frame, sent before them, lacks.
            if held.edited_ts.is_some() || held.deleted {
                m.text.clone_from(&held.text);
                m.edited_ts = held.edited_ts;
                m.deleted = held.deleted;
            }
            if m.reactions.is_empty() {
                m.reactions = held.reactions.clone();
                m.reaction_counts = held.reaction_counts.clone();
            }
        }
        self.typing.remove(&m.nick);
        let new = self.insert(m);
        if new && self.hi.is_none() {
            if self.at_bottom {
                self.follow();
            } else if self.rendered_messages() > MAX_RENDERED {
                // Someone reading older messages must not see them pushed out: freeze
                // the window where it is; "jump to latest" brings them back.
                self.hi = self.messages.keys().rev().nth(1).copied();
            }
        }
        new
    }

    /// Adds a message; returns whether the offset was new.
    pub(crate) fn insert(&mut self, m: ChatMessage) -> bool {
        if let Some(user) = &m.user {
            if self.users.get(&m.nick) != Some(user) {
                self.users.insert(m.nick.clone(), user.clone());
            }
            if self.names.get(user) != Some(&m.nick) {
                self.names.insert(user.clone(), m.nick.clone());
            }
        }
        let new = self.messages.insert(m.offset, m).is_none();
        while self.messages.len() > MAX_KEPT {
            let dropped = self.messages.pop_first().map(|(k, _)| k);
            self.has_more = true;
            if self.hi.is_some() && self.hi < self.messages.keys().next().copied() {
                self.hi = None;
            }
            if self.lo.is_some() && self.lo <= dropped {
                self.lo = None;
            }
        }
        new
    }

    /// Adds a page of history. Pages asked for by [`Room::older`] extend the window.
    pub(crate) fn insert_history(&mut self, messages: Vec<ChatMessage>, has_more: bool) {
        let oldest = messages.first().map(|m| m.offset);
        for m in messages {
            self.insert(m);
        }
        if self.loading_older {
            self.loading_older = false;
            if oldest.is_some() && self.lo.is_some() {
                self.lo = oldest;
                self.limit_from_top();
            }
        }
        // Older pages tell about what lies below them; the newest page about the rest.
        self.has_more = has_more;
    }

    pub(crate) fn notice(&mut self, seq: u64, kind: NoticeKind, text: String, ts: u64) {
        self.notices.push(Notice {
            seq,
            after: self.known_head,
            kind,
            text,
            ts,
        });
        if self.notices.len() > MAX_NOTICES {
            self.notices.remove(0);
        }
    }

    /// Moves the window so that the message at `offset` is rendered (an alert opened
    /// it); `false` when we do not hold it. The window is left frozen around it unless
    /// it is among the newest rows, so new messages do not scroll it away.
    pub(crate) fn reveal(&mut self, offset: u64) -> bool {
        if !self.messages.contains_key(&offset) {
            return false;
        }
        let newest_lo = self.messages.keys().rev().nth(WINDOW - 1).copied();
        if newest_lo.is_none_or(|lo| offset >= lo) {
            self.follow();
            return true;
        }
        self.at_bottom = false;
        self.lo = self
            .messages
            .range(..=offset)
            .rev()
            .nth(STEP)
            .map(|(k, _)| *k)
            .or_else(|| self.messages.keys().next().copied());
        self.hi = self.messages.range(offset..).nth(STEP).map(|(k, _)| *k);
        true
    }

    /// Moves the window to the newest rows (the person is at the bottom).
    pub(crate) fn follow(&mut self) {
        self.hi = None;
        self.lo = self.messages.keys().rev().nth(WINDOW - 1).copied();
    }

    /// The view reached the top: shows older rows. Returns `Some(before)` when the
    /// server must be asked for messages older than `before`.
    pub(crate) fn older(&mut self) -> Option<u64> {
        let oldest = *self.messages.keys().next()?;
        match self.lo {
            Some(lo) if lo > oldest => {
                self.lo = self
                    .messages
                    .range(..lo)
                    .rev()
                    .nth(STEP - 1)
                    .map(|(k, _)| *k);
                self.limit_from_top();
                None
            }
            _ if self.has_more && !self.loading_older => {
                self.loading_older = true;
                // Rendered from the oldest held: pin it so the page extends the window.
                self.lo = Some(oldest);
                Some(oldest)
            }
            _ => None,
        }
    }

    /// Asks for the page before the oldest message held, whatever is rendered (a
    /// reply's original is being sought); the page extends the window like
    /// [`Room::older`]'s. `Some(before)` unless there is nothing older or a page is on
    /// its way.
    pub(crate) fn older_page(&mut self) -> Option<u64> {
        if !self.has_more || self.loading_older {
            return None;
        }
        let oldest = *self.messages.keys().next()?;
        self.loading_older = true;
        self.lo = Some(oldest);
        Some(oldest)
    }

    /// The view reached the bottom of a frozen window: shows newer rows.
    pub(crate) fn newer(&mut self) {
        let Some(hi) = self.hi else { return };
        self.hi = self.messages.range(hi + 1..).nth(STEP - 1).map(|(k, _)| *k);
        if self.hi.is_some() {
            // Drop rows far above, keeping the count bounded.
            let rendered = self.rendered_offsets().count();
            if rendered > MAX_RENDERED {
                let lo = self.rendered_offsets().nth(rendered - MAX_RENDERED);
                self.lo = lo;
            }
        }
    }

    /// After the window grew at the top, drops rows far below the view.
    fn limit_from_top(&mut self) {
        if self.rendered_messages() > MAX_RENDERED {
            let hi = self.rendered_offsets().nth(MAX_RENDERED - 1);
            self.hi = hi;
        }
    }

    fn rendered_offsets(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        let lo = self.lo.unwrap_or(0);
        let hi = self.hi.unwrap_or(u64::MAX);
        self.messages.range(lo..=hi).map(|(k, _)| *k)
    }

    fn rendered_messages(&self) -> usize {
        self.rendered_offsets().count()
    }

    /// Whether rows older than the window exist (held or on the server).
    pub(crate) fn can_load_older(&self) -> bool {
        self.has_more
            || self
                .lo
                .is_some_and(|lo| self.messages.range(..lo).next().is_some())
    }

    /// The newest message offset rendered: what the person has in front of them when
    /// the room is on screen (0 when there is none).
    pub(crate) fn newest_shown(&self) -> u64 {
        self.rendered_offsets().next_back().unwrap_or(0)
    }

    /// The label in the sidebar: the other person for a direct message, else the name.
    pub(crate) fn label(&self) -> String {
        match &self.dm {
            Some(peer) => peer.nick.clone(),
            None => format!("#{}", self.name),
        }
    }

    /// Whether the window stops before the newest rows.
    pub(crate) fn is_frozen(&self) -> bool {
        self.hi.is_some()
    }

    /// The rendered rows in display order: messages by offset, each notice after the
    /// message that was the newest when it arrived.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let lo = self.lo.unwrap_or(0);
        let hi = self.hi.unwrap_or(u64::MAX);
        let mut notices: Vec<&Notice> = self
            .notices
            .iter()
            .filter(|n| n.after >= lo && n.after <= hi)
            .collect();
        notices.sort_by_key(|n| (n.after, n.seq));
        let mut notices = notices.into_iter().peekable();
        let mut rows = Vec::new();
        let mut prev: Option<&ChatMessage> = None;
        for (&offset, m) in self.messages.range(lo..=hi) {
            while let Some(n) = notices.next_if(|n| n.after < offset) {
                rows.push(Row::Notice(n.seq));
                prev = None;
            }
            let continued =
                prev.is_some_and(|p| p.nick == m.nick && m.ts >= p.ts && m.ts - p.ts < GROUP_MS);
            rows.push(Row::Message { offset, continued });
            prev = Some(m);
        }
        rows.extend(notices.map(|n| Row::Notice(n.seq)));
        rows
    }

    /// Who is typing at `now`, except `me`.
    pub(crate) fn typists(&self, now: u64, me: Option<&str>) -> Vec<&str> {
        self.typing
            .iter()
            .filter(|(nick, until)| **until > now && Some(nick.as_str()) != me)
            .map(|(nick, _)| nick.as_str())
            .collect()
    }
}

/// "alice is typing…", "alice and bob are typing…", "3 people are typing…".
pub(crate) fn typing_line(typists: &[&str]) -> String {
    match typists {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [a, b] => format!("{a} and {b} are typing…"),
        more => format!("{} people are typing…", more.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(offset: u64, nick: &str) -> ChatMessage {
        ChatMessage {
            reply_to: None,
            edited_ts: None,
            deleted: false,
            reactions: Default::default(),
            reaction_counts: Default::default(),
            room: "r".to_owned(),
            offset,
            id: format!("id{offset}"),
            nick: nick.to_owned(),
            text: format!("text {offset}"),
            ts: 1_000_000 + offset * 1000,
            user: None,
        }
    }

    fn offsets(room: &Room) -> Vec<u64> {
        room.rows()
            .into_iter()
            .filter_map(|r| match r {
                Row::Message { offset, .. } => Some(offset),
                Row::Notice(_) => None,
            })
            .collect()
    }

    #[test]
    fn consecutive_messages_of_one_nick_are_grouped() {
        let mut r = Room::new("r");
        r.insert_live(msg(1, "a"));
        r.insert_live(msg(2, "a"));
        r.insert_live(msg(3, "b"));
        r.notice(1, NoticeKind::Joined, "c joined".into(), 0);
        r.insert_live(msg(4, "b"));
        assert_eq!(
            r.rows(),
            vec![
                Row::Message {
                    offset: 1,
                    continued: false
                },
                Row::Message {
                    offset: 2,
                    continued: true
                },
                Row::Message {
                    offset: 3,
                    continued: false
                },
                Row::Notice(1),
                Row::Message {
                    offset: 4,
                    continued: false
                },
            ]
        );
    }

    #[test]
    fn following_keeps_the_rendered_rows_bounded() {
        let mut r = Room::new("r");
        for o in 1..=2000 {
            r.insert_live(msg(o, "a"));
        }
        let shown = offsets(&r);
        assert_eq!(shown.len(), WINDOW);
        assert_eq!(shown.last(), Some(&2000));
        assert_eq!(r.messages.len(), 2000);
    }

    #[test]
    fn a_reader_scrolled_up_is_not_pushed_around_and_can_jump_back() {
        let mut r = Room::new("r");
        for o in 1..=100 {
            r.insert_live(msg(o, "a"));
        }
        r.at_bottom = false;
        for o in 101..=1000 {
            r.insert_live(msg(o, "a"));
        }
        let shown = offsets(&r);
        assert_eq!(shown.first(), Some(&1), "the rows being read stay");
        assert!(shown.len() <= MAX_RENDERED + 1, "{}", shown.len());
        assert!(r.is_frozen());
        // Scrolling down walks towards the newest, never rendering too many.
        while r.is_frozen() {
            r.newer();
            assert!(offsets(&r).len() <= MAX_RENDERED + STEP);
        }
        r.at_bottom = true;
        r.follow();
        assert_eq!(offsets(&r).last(), Some(&1000));
    }

    #[test]
    fn scrolling_up_walks_held_rows_then_asks_the_server() {
        let mut r = Room::new("r");
        r.insert_history((801..=1000).map(|o| msg(o, "a")).collect(), true);
        r.follow();
        assert_eq!(offsets(&r).first(), Some(&851));
        assert_eq!(r.older(), None);
        assert_eq!(offsets(&r).first(), Some(&801));
        assert_eq!(r.older(), Some(801), "held rows exhausted: ask for older");
        assert_eq!(r.older(), None, "one request at a time");
        r.insert_history((751..=800).map(|o| msg(o, "a")).collect(), true);
        let shown = offsets(&r);
        assert_eq!(shown.first(), Some(&751));
        assert!(shown.len() <= MAX_RENDERED);
        // Going up far enough drops the newest rows from the page.
        for _ in 0..10 {
            if let Some(before) = r.older() {
                let page = (before.saturating_sub(50)..before).filter(|o| *o > 0);
                r.insert_history(page.map(|o| msg(o, "a")).collect(), before > 51);
            }
        }
        let shown = offsets(&r);
        assert!(shown.len() <= MAX_RENDERED, "{}", shown.len());
        assert!(r.is_frozen());
        assert!(!r.can_load_older() || shown[0] > 1);
    }

    #[test]
    fn typing_expires_and_is_cleared_by_a_message() {
        let mut r = Room::new("r");
        r.typing.insert("bob".into(), 10_000);
        r.typing.insert("me".into(), 10_000);
        assert_eq!(r.typists(9_000, Some("me")), ["bob"]);
        assert!(r.typists(10_000, Some("me")).is_empty());
        r.insert_live(msg(1, "bob"));
        assert!(r.typists(0, None).iter().all(|n| *n != "bob"));
        assert_eq!(typing_line(&["a", "b"]), "a and b are typing…");
        assert_eq!(typing_line(&["a", "b", "c"]), "3 people are typing…");
    }
}
