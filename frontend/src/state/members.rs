//! The reducer's member-list half for crowds: a room above the server's announce limit
//! sends only the first page of its members in `joined` (with the total and a cursor),
//! and never a `presence` list; the person asks for the next pages with `members`.
//! Rooms listed whole (`member_total` is `None`) work exactly as before.

use common::{ClientMsg, MAX_MEMBERS_PAGE};

use super::ChatState;

impl ChatState {
    /// What `joined` said beyond its `nicks`: the total when they are not all, and the
    /// cursor of the next page when they are a crowd's first.
    pub(super) fn on_member_page(&mut self, room: &str, total: Option<u64>, next: Option<String>) {
        if let Some(r) = self.room_mut(room) {
            r.member_total = total;
            r.members_next = next;
            r.loading_members = false;
        }
    }

    /// A page of members: added after those held (pages come in nick order, and a
    /// nick held already is not shown twice).
    pub(super) fn on_members(
        &mut self,
        room: &str,
        nicks: Vec<String>,
        total: u64,
        next: Option<String>,
    ) {
        if let Some(entry) = self.directory.iter_mut().find(|d| d.room == room) {
            entry.members = total;
        }
        let Some(r) = self.room_mut(room) else {
            return;
        };
        r.loading_members = false;
        for nick in nicks {
            if !r.members.contains(&nick) {
                r.members.push(nick);
            }
        }
        r.members_next = next;
        // The latest count: a crowd's list is not kept current by `presence` frames,
        // so this is the best number there is.
        r.member_total = Some(total);
    }

    /// Asks for the page of members after those shown in the room on screen, unless
    /// all are shown or a page is on its way.
    pub(crate) fn more_members(&mut self) -> Option<ClientMsg> {
        let name = self.current.clone()?;
        let r = self.room_mut(&name)?;
        if r.loading_members || !r.joined {
            return None;
        }
        let after = r.members_next.clone()?;
        r.loading_members = true;
        Some(ClientMsg::Members {
            room: name,
            after: Some(after),
            limit: Some(MAX_MEMBERS_PAGE),
        })
    }
}
