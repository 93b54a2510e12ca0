//! The room on screen lives in the URL (`#/r/<room>`), so a link opens it and the
//! browser's back and forward buttons move between rooms. `/r/<room>` paths (the
//! server answers them with the app) are accepted too and rewritten to the hash form.
//! `#/r/<room>/<offset>` points at one message (what an alert opens).

/// The room named by a location's hash (`#/r/dev`) or, failing that, its path
/// (`/r/dev`).
#[cfg(test)]
pub(crate) fn room_from(hash: &str, path: &str) -> Option<String> {
    target_from(hash, path).map(|(room, _)| room)
}

/// The room and, for a link to one message (`#/r/dev/12`), its offset. The name is
/// percent-encoded in links we make, so a raw `/` followed by digits is the offset.
pub(crate) fn target_from(hash: &str, path: &str) -> Option<(String, Option<u64>)> {
    let raw = hash
        .strip_prefix("#/r/")
        .or_else(|| path.strip_prefix("/r/"))?
        .trim_end_matches('/');
    let (raw, offset) = match raw.rsplit_once('/') {
        Some((room, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
            (room, tail.parse().ok())
        }
        _ => (raw, None),
    };
    let room = percent_decode(raw)?;
    (!room.trim().is_empty()).then_some((room, offset))
}

/// The hash of one message: `#/r/<room>/<offset>`.
pub(crate) fn hash_for_message(room: &str, offset: u64) -> String {
    format!("{}/{offset}", hash_for(room))
}

/// The hash for a room: `#/r/` and the name, percent-encoded.
pub(crate) fn hash_for(room: &str) -> String {
    let mut out = String::from("#/r/");
    for b in room.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding; `None` for malformed escapes or bytes that are not UTF-8. Also
/// what reads a host token from the fragment (`auth`).
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The room in the browser's current location.
pub(crate) fn current() -> Option<String> {
    current_target().map(|(room, _)| room)
}

/// The room in the browser's current location, and the message if it names one.
pub(crate) fn current_target() -> Option<(String, Option<u64>)> {
    let location = leptos::prelude::window().location();
    target_from(
        &location.hash().unwrap_or_default(),
        &location.pathname().unwrap_or_default(),
    )
}

/// Points the location at `room` without adding a history entry (used when the app
/// itself changes rooms, e.g. after leaving one, and to rewrite `/r/x` to `/#/r/x`).
pub(crate) fn replace(room: &str) {
    let window = leptos::prelude::window();
    let location = window.location();
    let target = hash_for(room);
    let same =
        location.hash().is_ok_and(|h| h == target) && location.pathname().is_ok_and(|p| p == "/");
    if same {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("/{target}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_come_from_the_hash_or_the_path() {
        assert_eq!(room_from("#/r/lobby", "/").as_deref(), Some("lobby"));
        assert_eq!(room_from("", "/r/dev").as_deref(), Some("dev"));
        assert_eq!(room_from("#/r/dev", "/r/other").as_deref(), Some("dev"));
        assert_eq!(
            room_from("#/r/caf%C3%A9%20ol%C3%A9", "/").as_deref(),
            Some("café olé")
        );
        assert_eq!(room_from("", "/"), None);
        assert_eq!(room_from("#/r/", "/"), None);
        assert_eq!(room_from("#/r/%zz", "/"), None);
        assert_eq!(room_from("#/r/%FF", "/"), None);
    }

    #[test]
    fn hashes_round_trip() {
        for room in ["lobby", "café olé", "a/b?c#d", "100%", "日本"] {
            assert_eq!(room_from(&hash_for(room), "/").as_deref(), Some(room));
        }
        assert_eq!(hash_for("a b"), "#/r/a%20b");
    }

    #[test]
    fn a_link_can_point_at_one_message() {
        assert_eq!(
            target_from("#/r/lobby/12", "/"),
            Some(("lobby".to_owned(), Some(12)))
        );
        assert_eq!(
            target_from("#/r/lobby", "/"),
            Some(("lobby".to_owned(), None))
        );
        assert_eq!(
            target_from("#/r/lobby/", "/"),
            Some(("lobby".to_owned(), None))
        );
        assert_eq!(room_from("#/r/dev/7", "/").as_deref(), Some("dev"));
        for room in ["lobby", "a/b", "x/5", "café"] {
            let hash = hash_for_message(room, 42);
            assert_eq!(target_from(&hash, "/"), Some((room.to_owned(), Some(42))));
        }
        // Not digits: part of a (hand-typed) name, as before.
        assert_eq!(room_from("#/r/a/b", "/").as_deref(), Some("a/b"));
        assert_eq!(target_from("#/r//5", "/"), None);
    }
}
