//! Avatars: a letter and a colour per person. The colour comes from the user id, not
//! the nick, so two people with lookalike nicks ("alice" and "аlice" with a Cyrillic
//! а) still look different, and one person keeps their colour when they change nick.
//! Plain Rust, so the hash is unit-tested and the same on every page load.

/// The hue (0–359, for `hsl()`) of a user id: FNV-1a, stable across builds and
/// browsers (unlike the standard library's randomly seeded hasher).
pub(crate) fn hue(user: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % 360) as u16
}

/// The letter shown: the nick's first letter or digit, uppercased (`?` if it has
/// none, e.g. a nick of symbols).
pub(crate) fn letter(nick: &str) -> String {
    nick.chars()
        .find(|c| c.is_alphanumeric())
        .map_or_else(|| "?".to_owned(), |c| c.to_uppercase().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_follows_the_user_id_and_is_stable() {
        assert_eq!(hue("u:alice"), hue("u:alice"));
        assert!(hue("u:alice") < 360);
        // Pinned: a change of hash would recolour everyone.
        assert_eq!(hue(""), (0x811c_9dc5_u32 % 360) as u16);
        // Different people, even with the same nick, spread over the wheel.
        let hues: std::collections::BTreeSet<u16> =
            (0..50).map(|i| hue(&format!("guest:{i}"))).collect();
        assert!(hues.len() > 40, "{hues:?}");
    }

    #[test]
    fn the_letter_is_the_first_letter_or_digit() {
        assert_eq!(letter("alice"), "A");
        assert_eq!(letter("_bob"), "B");
        assert_eq!(letter("élodie"), "É");
        assert_eq!(letter("42x"), "4");
        assert_eq!(letter("<>!"), "?");
        assert_eq!(letter(""), "?");
    }
}
