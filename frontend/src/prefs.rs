//! What the browser remembers between visits: the last nick, its session token, and
//! the rooms the person was in. (A sign-in token is `auth`'s.)
//!
//! Storage can be missing or refuse writes (private windows, disabled cookies); the app
//! then simply forgets between visits, so every failure here is ignored on purpose.

use web_sys::Storage;

const NICK_KEY: &str = "huddle.nick";
const SESSION_KEY: &str = "huddle.session";
const ROOMS_KEY: &str = "huddle.rooms";

/// `localStorage`, when the browser lets us use it.
pub(crate) fn storage() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The nick used last time, to prefill the nick field.
pub(crate) fn saved_nick() -> Option<String> {
    storage()?.get_item(NICK_KEY).ok().flatten()
}

/// The nick and session token from the last `welcome`, to reclaim the nick.
pub(crate) fn saved_session() -> Option<(String, String)> {
    let storage = storage()?;
    let nick = storage.get_item(NICK_KEY).ok().flatten()?;
    let session = storage.get_item(SESSION_KEY).ok().flatten()?;
    Some((nick, session))
}

/// Remembers the nick and session the server just granted.
pub(crate) fn save(nick: &str, session: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(NICK_KEY, nick);
        let _ = storage.set_item(SESSION_KEY, session);
    }
}

/// Forgets the guest session and the rooms (signing out): the next person on this
/// browser starts afresh. The nick stays as a suggestion for the nick field.
pub(crate) fn forget_session() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(SESSION_KEY);
        let _ = storage.remove_item(ROOMS_KEY);
    }
}

/// The rooms the person was in last time.
pub(crate) fn saved_rooms() -> Vec<String> {
    storage()
        .and_then(|s| s.get_item(ROOMS_KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

pub(crate) fn save_rooms(rooms: &[&String]) {
    if let (Some(storage), Ok(json)) = (storage(), serde_json::to_string(rooms)) {
        let _ = storage.set_item(ROOMS_KEY, &json);
    }
}
