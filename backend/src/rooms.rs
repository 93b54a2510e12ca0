//! The rules about rooms that are not about their messages, each written once: which
//! names are kept for direct messages, what a DM between two users is called, who may
//! see a room, who may invite to it or remove from it, and who may delete others'
//! messages in it. (Who may edit a message, its author, is checked by the store inside
//! the append, where the message is.)

use sha2::{Digest, Sha256};

use crate::directory::RoomSettings;

/// Room names starting with this are direct-message rooms, made only by `open_dm`, so
/// nobody can squat the room of a future DM by posting to its name first.
const DM_PREFIX: &str = "dm--";

/// Whether `room` is a name only `open_dm` makes.
pub(crate) fn is_dm_name(room: &str) -> bool {
    room.starts_with(DM_PREFIX)
}

/// The DM room of users `a` and `b`: the same for both, whoever opens it, and the same
/// every time; a valid room name however long or odd the user ids are.
pub(crate) fn dm_room(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(lo.as_bytes())
        .chain_update([0u8])
        .chain_update(hi.as_bytes())
        .finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{DM_PREFIX}{hex}")
}

/// The two users of a DM, in the order the directory keeps them.
pub(crate) fn dm_pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// Whether a user may see `room` (join it, read its history, post, type, mark it read):
/// a private room exists only for its members; a DM name without its DM does not exist
/// for anyone.
pub(crate) fn may_see(room: &str, settings: Option<&RoomSettings>, member: bool) -> bool {
    match settings {
        Some(s) if s.private => member,
        Some(_) => true,
        None => !is_dm_name(room),
    }
}

/// Whether `user` may invite others to `room` or remove them from it: its owner only
/// (a DM has none: it is exactly its two users).
pub(crate) fn may_manage(settings: Option<&RoomSettings>, user: &str) -> bool {
    settings.is_some_and(|s| s.owner.as_deref() == Some(user))
}

/// Whether `user` may delete anyone's message in `room` (everyone may delete their
/// own): its owner, the same person who manages its members.
pub(crate) fn may_delete_any(settings: Option<&RoomSettings>, user: &str) -> bool {
    may_manage(settings, user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dm_room_is_the_same_for_both_and_a_valid_room_name() {
        let room = dm_room("alice", "guest:0a1b");
        assert_eq!(room, dm_room("guest:0a1b", "alice"));
        assert_ne!(room, dm_room("alice", "guest:0a1c"));
        // No separator ambiguity: ("a", "bc") and ("ab", "c") differ.
        assert_ne!(dm_room("a", "bc"), dm_room("ab", "c"));
        assert!(common::validate::room(&room, &common::Limits::default()).is_ok());
        assert!(is_dm_name(&room));
    }

    #[test]
    fn private_rooms_exist_only_for_members() {
        let private = RoomSettings {
            private: true,
            owner: Some("ann".into()),
            dm: None,
        };
        assert!(may_see("ops", Some(&private), true));
        assert!(!may_see("ops", Some(&private), false));
        assert!(may_see("lobby", None, false));
        assert!(!may_see("dm--abc", None, true), "a DM name without its DM");
        assert!(may_manage(Some(&private), "ann"));
        assert!(!may_manage(Some(&private), "bob"));
        assert!(!may_manage(None, "ann"));
    }
}
