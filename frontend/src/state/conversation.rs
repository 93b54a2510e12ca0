//! The conversation (issue 14) in the reducer: edits, deletions, reactions and replies.
//!
//! More methods of [`ChatState`] and [`Room`], kept apart like `people` and `inbox`.
//! Edits, deletions and reactions are entries of the room's log: each has its own
//! offset, so they move `known_head` (a resume must not replay them again), but they
//! are no messages: they make no row, count as no unread and raise no alert. An entry
//! at or below `known_head` is already in what we hold (`history` is current-state),
//! so it is skipped: re-applying an old edit after a newer one would undo it.
//!
//! The person's own edits, deletions and reactions show at once, as [`PendingOp`]s laid
//! over the server's state ([`Room::shown`]). One stays until the server's entry for it
//! has been seen (its ack names the entry's offset; `known_head` reaching it settles
//! it), so the row never flickers back between the ack and the entry. A refused one
//! goes, with a notice saying why.
//!
//! Which rows a change touched is recorded in [`ChatState::take_touched`]: the store
//! wakes those rows (and the quotes of their replies) and nothing else.

use std::collections::BTreeMap;

use common::{ChatMessage, ClientMsg, Deleted, Edited, Reacted, Reactions};

use super::{ChatState, NoticeKind, Room, HISTORY_PAGE};

/// Characters of the original a reply's quote shows.
pub(crate) const SNIPPET_CHARS: usize = 80;

/// An edit, deletion or reaction of the person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Edit { text: String },
    Delete,
    React { emoji: String, on: bool },
}

/// An [`Op`] whose entry in the log we have not seen yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingOp {
    /// The offset of the message it changes.
    pub(crate) target: u64,
    pub(crate) op: Op,
    /// The offset of its entry, from the ack; it goes once `known_head` reaches this.
    pub(crate) acked: Option<u64>,
}

impl PendingOp {
    /// The frame that asks for it (again, after a reconnect: same id, the server
    /// de-duplicates).
    fn frame(&self, room: &str, id: &str) -> ClientMsg {
        let (room, offset, id) = (room.to_owned(), self.target, id.to_owned());
        match &self.op {
            Op::Edit { text } => ClientMsg::Edit {
                room,
                offset,
                text: text.clone(),
                id,
            },
            Op::Delete => ClientMsg::Delete { room, offset, id },
            Op::React { emoji, on } => ClientMsg::React {
                room,
                offset,
                emoji: emoji.clone(),
                on: *on,
                id,
            },
        }
    }

    fn verb(&self) -> &'static str {
        match self.op {
            Op::Edit { .. } => "edit",
            Op::Delete => "delete",
            Op::React { .. } => "react",
        }
    }
}

/// A message as the person sees it: the server's state with their pending changes on
/// top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// Empty once deleted.
    pub(crate) text: String,
    pub(crate) edited: bool,
    pub(crate) deleted: bool,
    pub(crate) reactions: Vec<Chip>,
    /// Being edited in place.
    pub(crate) editing: bool,
}

/// One reaction under a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Chip {
    pub(crate) emoji: String,
    /// Everyone who reacted with it (more than `names` when the server listed only
    /// the first few).
    pub(crate) count: u64,
    /// The display names of those listed, in the order they reacted.
    pub(crate) names: Vec<String>,
    /// We reacted with it.
    pub(crate) mine: bool,
}

impl Chip {
    /// Who reacted, for the tooltip and the accessible name: "alice, bob and 3 more".
    pub(crate) fn who(&self) -> String {
        let listed = self.names.join(", ");
        match self.count.saturating_sub(self.names.len() as u64) {
            0 => listed,
            more if listed.is_empty() => format!("{more} people"),
            more => format!("{listed} and {more} more"),
        }
    }
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quote {
    pub(crate) nick: String,
    /// The start of its text (empty when deleted).
    pub(crate) snippet: String,
    pub(crate) deleted: bool,
}

/// The start of `text`: its first line, at most [`SNIPPET_CHARS`] characters.
pub(crate) fn snippet(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(SNIPPET_CHARS).collect();
    if out.len() < text.trim_end().len() {
        out.push('…');
    }
    out
}

/// Adds or takes back `user`'s `emoji`, keeping the server's totals (present when it
/// listed only some of the users) in step.
fn react(
    reactions: &mut Reactions,
    counts: &mut BTreeMap<String, u64>,
    emoji: &str,
    user: &str,
    on: bool,
) {
    let listed = reactions.users(emoji).len() as u64;
    let had = reactions.users(emoji).iter().any(|u| u == user);
    reactions.apply(emoji, user, on);
    if let Some(n) = counts.get_mut(emoji) {
        match (on, had) {
            (true, false) => *n += 1,
            (false, true) => *n = n.saturating_sub(1),
            // One of those counted but not listed.
            (false, false) if *n > listed => *n -= 1,
            _ => {}
        }
        if *n == 0 {
            counts.remove(emoji);
        }
    }
}

impl Room {
    /// Whether a log entry at `offset` is news, moving `known_head` past it if so.
    fn take_entry(&mut self, offset: u64) -> bool {
        if offset <= self.known_head {
            return false;
        }
        self.known_head = offset;
        true
    }

    /// Drops the pending changes whose entries have been seen; returns their targets.
    fn settle(&mut self) -> Vec<u64> {
        let head = self.known_head;
        let mut settled = Vec::new();
        self.ops.retain(|_, op| {
            let seen = op.acked.is_some_and(|at| at <= head);
            if seen {
                settled.push(op.target);
            }
            !seen
        });
        settled
    }

    /// The display name of a user id, as learnt from messages and reactions.
    pub(crate) fn name_of(&self, user: &str) -> String {
        self.names
            .get(user)
            .cloned()
            .unwrap_or_else(|| user.to_owned())
    }

    /// The message at `offset` as shown, with our pending changes on top; `me` is our
    /// user id (whose reactions are ours).
    pub(crate) fn shown(&self, offset: u64, me: Option<&str>) -> Option<Shown> {
        let m = self.messages.get(&offset)?;
        let mut text = m.text.clone();
        let mut edited = m.edited_ts.is_some();
        let mut deleted = m.deleted;
        let mut reactions = m.reactions.clone();
        let mut counts = m.reaction_counts.clone();
        for op in self.ops.values().filter(|op| op.target == offset) {
            match &op.op {
                Op::Edit { text: t } => {
                    text.clone_from(t);
                    edited = true;
                }
                Op::Delete => deleted = true,
                Op::React { emoji, on } => {
                    if let Some(me) = me {
                        react(&mut reactions, &mut counts, emoji, me, *on);
                    }
                }
            }
        }
        if deleted {
            text.clear();
            reactions = Reactions::default();
        }
        let reactions = reactions
            .0
            .iter()
            .map(|(emoji, users)| Chip {
                emoji: emoji.clone(),
                count: counts
                    .get(emoji)
                    .copied()
                    .unwrap_or(0)
                    .max(users.len() as u64),
                names: users.iter().map(|u| self.name_of(u)).collect(),
                mine: me.is_some_and(|me| users.iter().any(|u| u == me)),
            })
            .collect();
        Some(Shown {
            text,
            edited,
            deleted,
            reactions,
            editing: !deleted && self.editing == Some(offset),
        })
    }

    /// What a reply to `offset` quotes; `None` while we do not hold it.
    pub(crate) fn quote(&self, offset: u64) -> Option<Quote> {
        let nick = self.messages.get(&offset)?.nick.clone();
        let shown = self.shown(offset, None)?;
        Some(Quote {
            nick,
            snippet: snippet(&shown.text),
            deleted: shown.deleted,
        })
    }
}

impl ChatState {
    /// The rows changed since the last call, as (room, offset): the store wakes them.
    pub(crate) fn take_touched(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.touched)
    }

    pub(super) fn touch(&mut self, room: &str, offsets: impl IntoIterator<Item = u64>) {
        self.touched
            .extend(offsets.into_iter().map(|o| (room.to_owned(), o)));
    }

    /// A message's text was replaced.
    pub(super) fn on_edited(&mut self, e: Edited) {
        let Some(r) = self.rooms.get_mut(&e.room) else {
            return;
        };
        if !r.take_entry(e.offset) {
            return;
        }
        if let Some(m) = r.messages.get_mut(&e.target).filter(|m| !m.deleted) {
            m.text = e.text;
            m.edited_ts = Some(e.ts);
        }
        let mut touched = r.settle();
        touched.push(e.target);
        self.touch(&e.room, touched);
    }

    /// A message was taken back. One we never loaded is ignored: `history` shows it
    /// deleted.
    pub(super) fn on_deleted(&mut self, d: &Deleted) {
        let Some(r) = self.rooms.get_mut(&d.room) else {
            return;
        };
        if !r.take_entry(d.offset) {
            return;
        }
        if let Some(m) = r.messages.get_mut(&d.target) {
            m.deleted = true;
            m.text.clear();
            m.reactions = Reactions::default();
            m.reaction_counts.clear();
        }
        if r.editing == Some(d.target) {
            r.editing = None;
        }
        let mut touched = r.settle();
        touched.push(d.target);
        self.touch(&d.room, touched);
    }

    /// A reaction was added or taken back.
    pub(super) fn on_reacted(&mut self, x: Reacted) {
        let Some(r) = self.rooms.get_mut(&x.room) else {
            return;
        };
        if !x.nick.is_empty() {
            r.names.insert(x.user.clone(), x.nick);
        }
        if !r.take_entry(x.offset) {
            return;
        }
        if let Some(m) = r.messages.get_mut(&x.target).filter(|m| !m.deleted) {
            react(
                &mut m.reactions,
                &mut m.reaction_counts,
                &x.emoji,
                &x.user,
                x.on,
            );
        }
        let mut touched = r.settle();
        touched.push(x.target);
        self.touch(&x.room, touched);
    }

    /// The ack of one of our changes: it goes once its entry has been seen. Returns
    /// whether `id` was one.
    pub(super) fn on_op_ack(&mut self, id: &str, room: &str, offset: u64) -> bool {
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(op) = r.ops.get_mut(id) else {
            return false;
        };
        op.acked = Some(offset);
        let touched = r.settle();
        self.touch(room, touched);
        true
    }

    /// A change of ours was refused: it is undone, and a notice says why. Returns
    /// whether `id` was one.
    pub(super) fn on_op_error(&mut self, id: &str, message: &str, now: u64) -> bool {
        let found = self
            .rooms
            .iter_mut()
            .find_map(|(name, r)| Some((name.clone(), r.ops.remove(id)?)));
        let Some((room, op)) = found else {
            return false;
        };
        self.touch(&room, [op.target]);
        let text = format!("Could not {} that message: {message}", op.verb());
        self.notice(&room, NoticeKind::Error, text, now);
        true
    }

    /// After a (re)join: the changes still waiting for their ack, asked for again.
    pub(super) fn unsent_ops(room: &Room) -> impl Iterator<Item = ClientMsg> + '_ {
        room.ops
            .iter()
            .filter(|(_, op)| op.acked.is_none())
            .map(|(id, op)| op.frame(&room.name, id))
    }

    /// Whether a message is the person's own: by user id when both are known (v2),
    /// else by nick.
    pub(crate) fn is_mine(&self, nick: &str, user: Option<&str>) -> bool {
        match (self.user.as_deref(), user) {
            (Some(me), Some(sender)) => me == sender,
            _ => self.me.as_deref() == Some(nick),
        }
    }

    /// Whether the person may edit the message at `offset` of the room on screen at
    /// `now`: their own, not deleted, not a notice, and within the server's edit window.
    pub(crate) fn may_edit(&self, offset: u64, now: u64) -> bool {
        let window = self.limits.edit_window_ms;
        self.own_message(offset)
            .is_some_and(|m| window.is_none_or(|w| m.ts.saturating_add(w) >= now))
    }

    /// The message at `offset` of the room on screen, if it is ours and not deleted (a
    /// notice is nobody's).
    fn own_message(&self, offset: u64) -> Option<&ChatMessage> {
        let r = self.room()?;
        let m = r.messages.get(&offset)?;
        let live = r.shown(offset, None).is_some_and(|s| !s.deleted);
        (live && !m.is_notice() && self.is_mine(&m.nick, m.user.as_deref())).then_some(m)
    }

    /// Whether the person may delete it: their own, or any in a room they own
    /// (`welcome.rooms` says so, and so does creating it here).
    pub(crate) fn may_delete(&self, offset: u64) -> bool {
        self.room().is_some_and(|r| {
            r.messages.get(&offset).is_some_and(|m| {
                !m.is_notice() && (r.owned || self.is_mine(&m.nick, m.user.as_deref()))
            }) && r.shown(offset, None).is_some_and(|s| !s.deleted)
        })
    }

    pub(super) fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{:06}", self.id_prefix, self.next_id)
    }

    /// Records a change to the message at `target` of the room on screen; the frame
    /// to send if we are joined (otherwise it goes out after the next join).
    fn queue_op(&mut self, target: u64, op: Op) -> Option<ClientMsg> {
        let id = self.fresh_id();
        let name = self.current.clone()?;
        let r = self.rooms.get_mut(&name)?;
        let pending = PendingOp {
            target,
            op,
            acked: None,
        };
        let frame = r.joined.then(|| pending.frame(&name, &id));
        r.ops.insert(id, pending);
        self.touch(&name, [target]);
        frame
    }

    /// Opens the message at `offset` for editing in place (ours only, within the edit
    /// window at `now`).
    pub(crate) fn start_edit(&mut self, offset: u64, now: u64) -> bool {
        if !self.may_edit(offset, now) {
            return false;
        }
        let Some(name) = self.current.clone() else {
            return false;
        };
        let Some(r) = self.rooms.get_mut(&name) else {
            return false;
        };
        let before = r.editing.replace(offset);
        r.reveal(offset);
        self.touch(&name, before.into_iter().chain([offset]));
        true
    }

    /// Up in an empty composer: edits our newest message in the room on screen.
    pub(crate) fn edit_last(&mut self, now: u64) -> bool {
        let last = self.room().and_then(|r| {
            r.messages
                .keys()
                .rev()
                .copied()
                .find(|o| self.may_edit(*o, now))
        });
        last.is_some_and(|offset| self.start_edit(offset, now))
    }

    /// Closes the editor without saving.
    pub(crate) fn cancel_edit(&mut self) {
        let Some(name) = self.current.clone() else {
            return;
        };
        if let Some(offset) = self.rooms.get_mut(&name).and_then(|r| r.editing.take()) {
            self.touch(&name, [offset]);
        }
    }

    /// Saves an edit (`text` already validated); unchanged text only closes the editor.
    pub(crate) fn save_edit(&mut self, offset: u64, text: &str) -> Option<ClientMsg> {
        self.cancel_edit();
        let same = self
            .room()
            .and_then(|r| r.shown(offset, None))
            .is_some_and(|s| s.text == text);
        // An editor opened in time may be saved later: the server has the last word.
        if same || self.own_message(offset).is_none() {
            return None;
        }
        self.queue_op(
            offset,
            Op::Edit {
                text: text.to_owned(),
            },
        )
    }

    /// Deletes the message at `offset` (after the person confirmed).
    pub(crate) fn delete_message(&mut self, offset: u64) -> Option<ClientMsg> {
        if !self.may_delete(offset) {
            return None;
        }
        if let Some(r) = self.current.clone().and_then(|c| self.rooms.get_mut(&c)) {
            if r.editing == Some(offset) {
                r.editing = None;
            }
        }
        self.queue_op(offset, Op::Delete)
    }

    /// Adds our `emoji` to the message at `offset`, or takes it back if it is there.
    pub(crate) fn toggle_reaction(&mut self, offset: u64, emoji: &str) -> Option<ClientMsg> {
        let me = self.user.clone()?;
        let emoji = common::validate::emoji(emoji).ok()?;
        let shown = self.room()?.shown(offset, Some(&me))?;
        if shown.deleted {
            return None;
        }
        let on = !shown.reactions.iter().any(|c| c.emoji == emoji && c.mine);
        self.queue_op(
            offset,
            Op::React {
                emoji: emoji.to_owned(),
                on,
            },
        )
    }

    /// The next message sent answers the one at `offset`.
    pub(crate) fn reply_to(&mut self, offset: u64) {
        if let Some(r) = self.current.clone().and_then(|c| self.rooms.get_mut(&c)) {
            if r.messages.contains_key(&offset) {
                r.replying_to = Some(offset);
            }
        }
    }

    pub(crate) fn cancel_reply(&mut self) {
        if let Some(r) = self.current.clone().and_then(|c| self.rooms.get_mut(&c)) {
            r.replying_to = None;
        }
    }

    /// Shows the message at `offset` of the room on screen, highlighted (a reply's
    /// quote was clicked). Older pages are asked for until it is held; the `history`
    /// request is returned.
    pub(crate) fn jump_to(&mut self, offset: u64) -> Option<ClientMsg> {
        let name = self.current.clone()?;
        self.highlight = Some((name.clone(), offset));
        self.highlight_seq += 1;
        let r = self.rooms.get_mut(&name)?;
        if r.reveal(offset) {
            r.seeking = None;
            return None;
        }
        r.seeking = Some(offset);
        self.seek(&name)
    }

    /// Asks for the page of history that brings the room's sought message closer.
    /// Called again by each page that arrives until the message is held or the room
    /// has nothing older (then a notice says it is gone).
    pub(super) fn seek(&mut self, name: &str) -> Option<ClientMsg> {
        let max = u64::from(self.limits.history_max).max(1);
        let r = self.rooms.get_mut(name)?;
        let target = r.seeking?;
        if r.reveal(target) {
            r.seeking = None;
            return None;
        }
        let oldest = r.messages.keys().next().copied();
        let older = oldest.is_some_and(|o| o > target) && r.has_more;
        if !older {
            r.seeking = None;
            if self.highlight.as_ref().map(|(_, o)| *o) == Some(target) {
                self.highlight = None;
            }
            let text = "That message is no longer in this room's history.".to_owned();
            self.notice(name, NoticeKind::Info, text, 0);
            return None;
        }
        if r.loading_older {
            // The page on its way continues the search.
            return None;
        }
        let before = r.older_page()?;
        // Straight to the message when one page can reach it, with a few above it.
        let limit = (before - target + 10).clamp(HISTORY_PAGE, max);
        Some(ClientMsg::History {
            room: name.to_owned(),
            before: Some(before),
            limit: Some(limit),
        })
    }
}
