//! People (protocol v2) in the reducer: the rooms `welcome` says the user is a member
//! of, read offsets synced across the user's tabs and devices, private rooms, invites,
//! direct messages, and rooms that end without our asking.
//!
//! These are more methods of [`ChatState`], kept apart because they are one concept:
//! membership belongs to the person now, not to the connection, and the server tells
//! every tab about it.

use common::{ClientMsg, ErrorCode, MemberRoom};

use super::{ChatState, NoticeKind, Peer, Room};

/// `read` frames go out at most once per room per this many ms, so scrolling through
/// a busy room does not send one per message; the last offset still goes out.
pub(crate) const READ_THROTTLE_MS: u64 = 500;

/// The "New room" dialog while it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NewRoom {
    /// The room asked for with `create_room`, until the answer comes.
    pub(crate) waiting: Option<String>,
    /// Why the server refused it (`room_exists`, …).
    pub(crate) error: Option<String>,
}

/// The answer to the last `invite`, shown under the invite field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InviteOutcome {
    Invited(String),
    Refused(String),
}

impl ChatState {
    /// Merges `welcome.rooms` into the sidebar: every room the user is a member of is
    /// joined (by the caller's join loop), with the server's unread and mention counts.
    pub(super) fn merge_member_rooms(&mut self, rooms: Vec<MemberRoom>) {
        let visible = !self.hidden;
        for m in rooms {
            let on_screen = visible && self.current.as_deref() == Some(m.room.as_str());
            let room = self
                .rooms
                .entry(m.room.clone())
                .or_insert_with(|| Room::new(&m.room));
            room.private = m.private;
            room.notify = m.notify;
            room.owned = m.owner.is_some() && m.owner == self.user;
            if let Some(user) = m.dm {
                room.dm = Some(Peer {
                    nick: m.dm_nick.unwrap_or_else(|| user.clone()),
                    user,
                });
            }
            room.read = room.read.max(m.read);
            room.read_sent = room.read_sent.max(m.read);
            // The server's counts cover everything up to `head`; messages up to there
            // that a resume replays were counted already.
            room.counted = room.counted.max(m.head);
            if on_screen {
                room.unread = 0;
                room.mentions = 0;
            } else {
                room.unread = u32::try_from(m.unread).unwrap_or(u32::MAX);
                room.mentions = u32::try_from(m.mentions).unwrap_or(u32::MAX);
            }
        }
    }

    /// Another tab or device of ours read `room` up to `offset`: fewer unread here.
    pub(super) fn on_read(&mut self, room: &str, offset: u64) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if offset <= r.read {
            return;
        }
        r.read = offset;
        // Already known to the server: this tab must not send it back.
        r.read_sent = r.read_sent.max(offset);
        if offset >= r.counted {
            r.unread = 0;
            r.mentions = 0;
            return;
        }
        // Messages after `offset` that we counted. Exact when we hold all of them,
        // otherwise at most one per offset still unread.
        let held = r.messages.range(offset + 1..=r.counted).count() as u64;
        let left = if held == r.counted - offset {
            let me = self.me.as_deref();
            r.messages
                .range(offset + 1..=r.counted)
                .filter(|(_, m)| Some(m.nick.as_str()) != me)
                .count() as u64
        } else {
            r.counted - offset
        };
        r.unread = r.unread.min(u32::try_from(left).unwrap_or(u32::MAX));
        r.mentions = r.mentions.min(r.unread);
    }

    /// The person is looking at the room on screen: everything rendered there is read.
    /// The `read` frame goes out with [`ChatState::flush_reads`].
    pub(crate) fn mark_read(&mut self) {
        if self.hidden {
            return;
        }
        let Some(room) = self.current.as_deref().and_then(|c| self.rooms.get_mut(c)) else {
            return;
        };
        room.unread = 0;
        room.mentions = 0;
        room.read = room.read.max(room.newest_shown());
    }

    /// The `read` frames due at `now`: one per room whose read offset moved past what
    /// the server knows, unless one went out for it less than [`READ_THROTTLE_MS`] ago
    /// (that room's turn comes at a later call; the connection calls this every second).
    pub(crate) fn flush_reads(&mut self, now: u64) -> Vec<ClientMsg> {
        if !self.welcomed {
            return Vec::new();
        }
        let mut out = Vec::new();
        for room in self.rooms.values_mut() {
            let due = now >= room.read_sent_at.saturating_add(READ_THROTTLE_MS);
            if room.joined && room.read > room.read_sent && due {
                room.read_sent = room.read;
                room.read_sent_at = now;
                out.push(ClientMsg::Read {
                    room: room.name.clone(),
                    offset: room.read,
                });
            }
        }
        out
    }

    /// Adds a room the server made us a member of (invited, created, a direct message)
    /// and returns the `join` for it. `None` if it is in the sidebar already.
    fn add_member_room(&mut self, name: &str) -> Option<ClientMsg> {
        if self.rooms.contains_key(name) {
            return None;
        }
        let mut room = Room::new(name);
        room.unread_from_start = true;
        self.rooms.insert(name.to_owned(), room);
        if !self.welcomed {
            // The next `welcome` lists it, and the join goes out then.
            return None;
        }
        self.joining.push_back(name.to_owned());
        Some(ClientMsg::Join {
            room: name.to_owned(),
            since: None,
            epoch: None,
        })
    }

    /// `left {room}`: the answer to our `leave` (the room is gone from the sidebar
    /// already), or the room ended without our asking: the owner removed us, or we
    /// left it in another tab. Then it leaves the sidebar here too.
    pub(super) fn on_left(&mut self, name: &str) {
        let rejoining = self.joining.iter().any(|r| r == name);
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.joined = false;
        if rejoining {
            // Left, then opened again before the answer: the `joined` is on its way.
            return;
        }
        let label = room.label();
        self.rooms.remove(name);
        if self.current.as_deref() == Some(name) {
            self.current = self.rooms.keys().next().cloned();
            if let Some(next) = self.current.clone() {
                self.show(&next);
            }
        }
        self.people_notice = Some(format!("You are no longer in {label}."));
        self.announcement = format!("You are no longer in {label}.");
    }

    /// Opens the "New room" dialog.
    pub(crate) fn open_new_room(&mut self) {
        self.new_room = Some(NewRoom::default());
    }

    pub(crate) fn close_new_room(&mut self) {
        self.new_room = None;
    }

    /// `create_room` for a name already validated; the answer joins and shows it.
    pub(crate) fn create_room(&mut self, name: &str, private: bool) -> Vec<ClientMsg> {
        let dialog = self.new_room.get_or_insert_with(NewRoom::default);
        dialog.waiting = Some(name.to_owned());
        dialog.error = None;
        vec![ClientMsg::CreateRoom {
            room: name.to_owned(),
            private,
        }]
    }

    pub(super) fn on_room_created(&mut self, name: &str, private: bool) -> Vec<ClientMsg> {
        let asked = self
            .new_room
            .as_ref()
            .is_some_and(|d| d.waiting.as_deref() == Some(name));
        if asked {
            self.new_room = None;
        }
        let join = self.add_member_room(name);
        if let Some(room) = self.rooms.get_mut(name) {
            room.private = private;
            // Only an answer to our own `create_room` comes here: we own the room.
            room.owned = true;
        }
        self.show(name);
        join.into_iter().collect()
    }

    /// `invite` for a room we own (the server checks that).
    pub(crate) fn invite(&mut self, room: &str, user: &str) -> Vec<ClientMsg> {
        self.invite_outcome = None;
        vec![ClientMsg::Invite {
            room: room.to_owned(),
            user: user.to_owned(),
        }]
    }

    /// `invited`: with `by`, someone invited us and the room joins the sidebar; without,
    /// it answers our own `invite`.
    pub(super) fn on_invited(
        &mut self,
        name: &str,
        user: &str,
        by: Option<String>,
    ) -> Vec<ClientMsg> {
        match by {
            Some(by) => {
                let join = self.add_member_room(name);
                if let Some(room) = self.rooms.get_mut(name) {
                    room.private = true;
                }
                if join.is_some() {
                    let text = format!("{by} invited you to #{name}.");
                    self.announcement.clone_from(&text);
                    self.people_notice = Some(text);
                }
                join.into_iter().collect()
            }
            None => {
                let text = format!("{user} is now a member of #{name}.");
                self.invite_outcome = Some(InviteOutcome::Invited(text.clone()));
                self.notice(name, NoticeKind::Info, text, 0);
                Vec::new()
            }
        }
    }

    /// `open_dm {user}`; the answer shows the room.
    pub(crate) fn open_dm(&mut self, user: &str) -> Vec<ClientMsg> {
        self.opening_dm = Some(user.to_owned());
        vec![ClientMsg::OpenDm {
            user: user.to_owned(),
        }]
    }

    /// `dm`: the answer to our `open_dm` (shown), or someone opened one with us (listed
    /// under "Direct messages" and joined, not shown: we were doing something else).
    pub(super) fn on_dm(
        &mut self,
        name: &str,
        user: String,
        nick: Option<String>,
    ) -> Vec<ClientMsg> {
        let asked = self.opening_dm.as_deref() == Some(user.as_str());
        let join = self.add_member_room(name);
        if let Some(room) = self.rooms.get_mut(name) {
            room.private = true;
            room.dm = Some(Peer {
                nick: nick.unwrap_or_else(|| user.clone()),
                user,
            });
        }
        if asked {
            self.opening_dm = None;
            self.show(name);
        }
        join.into_iter().collect()
    }

    /// Errors about the v2 requests; `false` when the error is about something else.
    pub(super) fn on_people_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        reference: Option<&str>,
    ) -> bool {
        match reference {
            Some("create_room") => {
                let text = match code {
                    ErrorCode::RoomExists => {
                        "A room with that name exists already: pick another name.".to_owned()
                    }
                    _ => message.to_owned(),
                };
                self.new_room.get_or_insert_with(NewRoom::default).error = Some(text);
                if let Some(d) = self.new_room.as_mut() {
                    d.waiting = None;
                }
            }
            Some("invite" | "remove") => {
                let text = match code {
                    ErrorCode::UnknownUser => "No user has that id.".to_owned(),
                    ErrorCode::Forbidden => {
                        "Only the room's owner can invite or remove people.".to_owned()
                    }
                    _ => message.to_owned(),
                };
                self.invite_outcome = Some(InviteOutcome::Refused(text));
            }
            Some("open_dm") => {
                self.opening_dm = None;
                self.people_notice = Some(match code {
                    ErrorCode::UnknownUser => "That person is not known to the server.".to_owned(),
                    ErrorCode::Forbidden => "You cannot message that person.".to_owned(),
                    _ => message.to_owned(),
                });
            }
            // A read offset, the inbox's catching up and the push subscription are
            // bookkeeping (and a server without the inbox refuses them all): nothing
            // to tell the person.
            Some("read" | "inbox" | "alert_read" | "push_subscribe" | "push_unsubscribe") => {}
            _ => return false,
        }
        true
    }

    /// The direct-message rooms, by the other person's name.
    pub(crate) fn dm_rooms(&self) -> Vec<String> {
        let mut dms: Vec<(&str, &str)> = self
            .rooms
            .values()
            .filter_map(|r| Some((r.dm.as_ref()?.nick.as_str(), r.name.as_str())))
            .collect();
        dms.sort_unstable();
        dms.into_iter().map(|(_, room)| room.to_owned()).collect()
    }

    /// The rooms that are not direct messages, by name.
    pub(crate) fn group_rooms(&self) -> Vec<String> {
        self.rooms
            .values()
            .filter(|r| r.dm.is_none())
            .map(|r| r.name.clone())
            .collect()
    }
}
