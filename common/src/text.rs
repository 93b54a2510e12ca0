//! Reading message text where both ends must agree: whether a message mentions someone
//! (the web app highlights it, the server counts it in `welcome.rooms[].mentions`).

/// Whether `text` mentions `nick`: the nick as a whole word, ASCII letters in any case,
/// with or without a leading `@`. Word characters are letters, digits, `_` and `-`, so
/// `alice` is mentioned in "hi alice!" and "@Alice: x" but not in "malice" or
/// "alice_b".
pub fn mentions(text: &str, nick: &str) -> bool {
    let (hay, needle) = (text.as_bytes(), nick.as_bytes());
    if needle.is_empty() || needle.len() > hay.len() {
        return false;
    }
    (0..=hay.len() - needle.len()).any(|i| {
        // Only ASCII bytes are compared case-insensitively, the rest exactly; as `nick`
        // is valid UTF-8, a match starts and ends on char boundaries of `text`.
        let end = i + needle.len();
        hay[i..end].eq_ignore_ascii_case(needle)
            && !text[..i].chars().next_back().is_some_and(is_word_char)
            && !text[end..].chars().next().is_some_and(is_word_char)
    })
}

/// Whether `text` names `@nick`: what raises a `mention` alert. Stricter than
/// [`mentions`] (which also counts the bare word, for highlighting and counts) because an
/// alert interrupts someone: a message about "alice's bike" should not.
pub fn names(text: &str, nick: &str) -> bool {
    text.match_indices('@')
        .any(|(at, _)| mentions_at(text, at + 1, nick))
}

/// Whether `nick` starts at byte `start` of `text` and ends at a word boundary.
fn mentions_at(text: &str, start: usize, nick: &str) -> bool {
    let end = start + nick.len();
    text.get(start..end)
        .is_some_and(|word| word.eq_ignore_ascii_case(nick))
        && !text[end..].chars().next().is_some_and(is_word_char)
}

/// Characters that continue a nick-like word; anything else (spaces, punctuation, `@`)
/// separates words.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_whole_word_is_a_mention() {
        assert!(mentions("hi @Alice: x", "alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_b", "alice"));
        assert!(!mentions("", "alice"));
    }

    #[test]
    fn an_alert_needs_the_at_sign() {
        use super::names;
        assert!(names("hi @Alice: x", "alice"));
        assert!(names("@alice", "alice"));
        assert!(names("@bob @alice", "alice"));
        assert!(!names("hi alice", "alice"));
        assert!(!names("@alice_b", "alice"));
        assert!(!names("mail@alice", "bob"));
        assert!(names("@Zoë Smith, hi", "zoë smith"));
        assert!(!names("@", "alice"));
        assert!(!names("é@alic", "alice"));
    }
}
