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
}
