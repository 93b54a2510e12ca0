//! Member lists by the page: the `members` request, and the first page that `joined`
//! carries for a crowd (a room above `--announce-limit`).
//!
//! A room of 5,000 would otherwise send every joiner its whole list (~40 KB), which
//! nobody reads and which, in a crowd, no `presence` frame keeps current anyway. So a
//! crowd's `joined` lists a first page with the total, and a client that wants more asks
//! for it page by page.
//!
//! Pages are in the order of the nicks (by Unicode code point, each nick once), and the
//! cursor is the last nick of a page: the next page is the nicks that sort after it.
//! Unlike a position, such a cursor survives the room changing between two requests: a
//! member who stays is listed exactly once however many come and go meanwhile, and the
//! order is the same on every instance of a cluster (where the lists are already
//! sorted, `presence::redis`). The whole list is still read for each page (a cluster's
//! list is a union over instances that cannot be read in part), which is why every
//! page draws on the connection's read budget like a `history` page.

use std::sync::Arc;

use common::{ErrorCode, ServerMsg, MAX_MEMBERS_PAGE};

use crate::codec;
use crate::identity::Identity;
use crate::session::{End, Session};

/// A page of members, as `members` and a crowd's `joined` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// Ascending, each nick once.
    pub(crate) nicks: Vec<String>,
    /// Distinct nicks in the whole list.
    pub(crate) total: u64,
    /// The last nick of this page when more follow it: the `after` of the next page.
    pub(crate) next: Option<String>,
}

/// A `members` request the server will not answer with a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PageError {
    /// `after` is longer than any nick can be, so no answer handed it out.
    #[error("\"after\" must be a nick, such as the \"next\" of an earlier \"members\" answer (at most {max} characters)")]
    AfterTooLong { max: u32 },
}

impl PageError {
    /// The code its `error` frame carries: like an unknown `list_rooms` cursor.
    pub(crate) const fn code(&self) -> ErrorCode {
        match self {
            PageError::AfterTooLong { .. } => ErrorCode::BadJson,
        }
    }
}

/// Checks a request's cursor against the nick rule's length: anything longer cannot be
/// a nick, so it is no cursor this server handed out.
pub(crate) fn check_after(after: Option<&str>, nick_max_chars: u32) -> Result<(), PageError> {
    match after {
        Some(a) if a.chars().count() > nick_max_chars as usize => Err(PageError::AfterTooLong {
            max: nick_max_chars,
        }),
        _ => Ok(()),
    }
}

/// The page size a request asks for: [`MAX_MEMBERS_PAGE`] when it names none, at least
/// one (like `history`, 0 is taken as 1) and at most [`MAX_MEMBERS_PAGE`].
pub(crate) fn page_size(limit: Option<u64>) -> usize {
    limit.unwrap_or(MAX_MEMBERS_PAGE).clamp(1, MAX_MEMBERS_PAGE) as usize
}

/// The page of `all` (a room's nicks, in any order, possibly repeated) after `after`,
/// at most `limit` long.
pub(crate) fn page(mut all: Vec<String>, after: Option<&str>, limit: usize) -> Page {
    all.sort_unstable();
    all.dedup();
    let total = all.len() as u64;
    let start = after.map_or(0, |a| all.partition_point(|n| n.as_str() <= a));
    let end = start.saturating_add(limit).min(all.len());
    let more = end < all.len();
    // A fresh vector: the room's whole list is dropped here, not kept as capacity.
    let nicks: Vec<String> = all.drain(start..end).collect();
    let next = more.then(|| nicks.last().cloned()).flatten();
    Page { nicks, total, next }
}

/// Cuts `page` to what encodes within `max` bytes, keeping at least one nick so that
/// paging always moves on; the cursor follows the cut.
pub(crate) fn fit(page: &mut Page, max: usize) {
    let first = page.nicks.first().cloned();
    if codec::keep_first_within(&mut page.nicks, max) {
        if page.nicks.is_empty() {
            page.nicks.extend(first);
        }
        page.next = page.nicks.last().cloned();
    }
}

/// How many nicks a crowd's `joined` lists: the announce limit, the size of the lists
/// the server already sends everyone in a room that is not a crowd, and at most one
/// `members` page (so a high limit cannot make a joiner's frame large again).
pub(crate) fn first_page_size(announce_limit: u64) -> usize {
    announce_limit.clamp(1, MAX_MEMBERS_PAGE) as usize
}

/// What `joined` says about a room's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedList {
    pub(crate) nicks: Vec<String>,
    /// The total, when `nicks` is not all of them.
    pub(crate) members: Option<u64>,
    /// The cursor after `nicks`, when they are the first page of a crowd.
    pub(crate) next: Option<String>,
}

/// The member list of a `joined` frame, from the room's whole list `all` (as
/// `Membership::members` gives it). A room of at most `announce_limit` members gets
/// it as before (in that order; cut to `max` bytes with the total if it would not
/// fit); a crowd gets its first page with the total and the cursor of the next.
pub(crate) fn joined_list(all: Vec<String>, announce_limit: u64, max: usize) -> JoinedList {
    if all.len() as u64 > announce_limit {
        let mut first = page(all, None, first_page_size(announce_limit));
        fit(&mut first, max);
        return JoinedList {
            members: Some(first.total),
            nicks: first.nicks,
            next: first.next,
        };
    }
    let mut nicks = all;
    let total = nicks.len() as u64;
    let cut = codec::keep_first_within(&mut nicks, max);
    JoinedList {
        nicks,
        members: cut.then_some(total),
        next: None,
    }
}

impl Session {
    /// `members {room, after?, limit?}`: one page of a room this connection joined.
    pub(crate) async fn members(
        &mut self,
        who: &Identity,
        room: Arc<str>,
        after: Option<String>,
        limit: Option<u64>,
    ) -> Result<(), End> {
        let reference = Some("members".to_owned());
        if let Err(e) = check_after(after.as_deref(), self.state.limits.nick_max_chars) {
            return self.reply_error(e.code(), e.to_string(), reference).await;
        }
        if !self.rooms.contains_key(&room) {
            return self
                .not_joined_or_forbidden(who, &room, "members", reference)
                .await;
        }
        // Like a `history` page: a connection cannot make the server read member lists
        // faster than its read budget allows.
        if !self.reads.may_read() {
            let config = &self.state.config;
            let message = format!(
                "too much read: at most {} names and {} KB per second; try again shortly",
                config.read_rate,
                config.read_bytes / 1024
            );
            return self
                .reply_error(ErrorCode::RateLimited, message, reference)
                .await;
        }
        let all = self.state.membership.members(&room, None).await;
        let mut page = page(all, after.as_deref(), page_size(limit));
        let max = self.state.config.max_frame_bytes as usize;
        fit(&mut page, max.saturating_sub(super::handlers::FRAME_SLACK));
        let count = page.nicks.len();
        let msg = ServerMsg::Members {
            room: room.to_string(),
            nicks: page.nicks,
            total: page.total,
            next: page.next,
        };
        // Charged by the answer's size, as a history page is.
        let bytes = codec::encode(&msg).len();
        self.reads.charge(count, bytes);
        self.reply(&msg).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nicks(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn pages_walk_the_sorted_list_once_each() {
        let all = nicks(&["zoe", "bob", "amy", "carl", "bob", "dan"]);
        let first = page(all.clone(), None, 2);
        assert_eq!(first.nicks, ["amy", "bob"]);
        assert_eq!((first.total, first.next.as_deref()), (5, Some("bob")));
        let second = page(all.clone(), first.next.as_deref(), 2);
        assert_eq!(second.nicks, ["carl", "dan"]);
        assert_eq!(second.next.as_deref(), Some("dan"));
        let last = page(all.clone(), second.next.as_deref(), 2);
        assert_eq!((last.nicks, last.next), (nicks(&["zoe"]), None));
        // Exactly filled: no cursor to an empty page.
        assert_eq!(page(all, Some("carl"), 2).next, None);
    }

    #[test]
    fn a_cursor_survives_the_room_changing() {
        let first = page(nicks(&["a", "b", "c", "d"]), None, 2);
        // "a" and "b" left, "aa" arrived (before the cursor): "c" and "d" still follow.
        let next = page(nicks(&["aa", "c", "d", "e"]), first.next.as_deref(), 2);
        assert_eq!(next.nicks, ["c", "d"]);
        assert_eq!(next.total, 4);
        // The cursor's own nick may be gone: the page starts after where it would be.
        assert_eq!(page(nicks(&["a", "c"]), Some("b"), 5).nicks, ["c"]);
    }

    #[test]
    fn past_the_end_is_an_empty_last_page() {
        let p = page(nicks(&["a", "b"]), Some("zzz"), 10);
        assert_eq!((p.nicks.len(), p.total, p.next), (0, 2, None));
        let empty = page(Vec::new(), None, 10);
        assert_eq!((empty.nicks.len(), empty.total, empty.next), (0, 0, None));
    }

    #[test]
    fn order_is_by_code_point_not_by_locale() {
        let p = page(nicks(&["émile", "Zed", "alice", "Ölaf"]), None, 10);
        assert_eq!(p.nicks, ["Zed", "alice", "Ölaf", "émile"]);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(page_size(None), 100);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(7)), 7);
        assert_eq!(page_size(Some(u64::MAX)), 100);
        assert_eq!(first_page_size(3), 3);
        assert_eq!(first_page_size(200), 100);
        assert_eq!(first_page_size(0), 1);
    }

    #[test]
    fn a_cursor_longer_than_a_nick_is_refused() {
        assert_eq!(check_after(None, 32), Ok(()));
        assert_eq!(check_after(Some(&"é".repeat(32)), 32), Ok(()));
        let e = check_after(Some(&"x".repeat(33)), 32).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadJson);
    }

    #[test]
    fn a_page_cut_to_the_frame_moves_its_cursor_and_never_stalls() {
        let all: Vec<String> = (0..50).map(|i| format!("member-{i:02}")).collect();
        let mut p = page(all.clone(), None, 50);
        assert_eq!(p.next, None);
        // Each nick costs 12 bytes as JSON (with its comma), the brackets 2.
        fit(&mut p, 2 + 12 * 10);
        assert_eq!(p.nicks.len(), 10);
        assert_eq!(p.next.as_deref(), Some("member-09"));
        let mut tiny = page(all, p.next.as_deref(), 50);
        fit(&mut tiny, 0);
        assert_eq!(tiny.nicks, ["member-10"]);
        assert_eq!(tiny.next.as_deref(), Some("member-10"));
    }

    #[test]
    fn joined_lists_a_crowd_by_the_page_and_a_room_as_before() {
        let room = nicks(&["zoe", "bob", "amy"]);
        // At the limit: unchanged, in the order given, no count, no cursor.
        let at = joined_list(room.clone(), 3, 60_000);
        assert_eq!((at.nicks, at.members, at.next), (room.clone(), None, None));
        // Above it: the first page, sorted, with the total and the cursor.
        let crowd = joined_list(room, 2, 60_000);
        assert_eq!(crowd.nicks, ["amy", "bob"]);
        assert_eq!(
            (crowd.members, crowd.next.as_deref()),
            (Some(3), Some("bob"))
        );
        // 5,000 members of a default server: 100 nicks.
        let big: Vec<String> = (0..5000).map(|i| format!("n{i:04}")).collect();
        let crowd = joined_list(big, 200, 60_000);
        assert_eq!(crowd.nicks.len(), 100);
        assert_eq!(crowd.members, Some(5000));
        // Under the limit but beyond the frame: cut in order, counted, no cursor.
        let long: Vec<String> = (0..50).map(|i| format!("member-{i:02}")).collect();
        let cut = joined_list(long, 100, 2 + 12 * 5);
        assert_eq!(
            (cut.nicks.len(), cut.members, cut.next),
            (5, Some(50), None)
        );
    }
}
