//! Logging what clients control (nicks, rooms, texts, header values, error messages that
//! quote them) without letting it forge log lines.
//!
//! tracing's `%value` writes a `Display` verbatim, so a nick holding `"\n"` would start a
//! fake line in the pretty log, and `"\x1b[31m"` would drive the operator's terminal.
//! Wrap such values in [`Escaped`] (`nick = %Escaped(nick)`) and control characters come
//! out as visible escapes instead. The JSON log format escapes them anyway; the pretty
//! format is what needs this.

use std::fmt;

/// Displays a string with control characters (C0, DEL, C1), line and paragraph
/// separators and bidirectional overrides written as `\n`, `\t`, `\u{1b}`, …, and `\`
/// doubled, so the escaped form cannot be confused with a real escape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '\\' => Some("\\\\"),
                _ => None,
            };
            if escape.is_none() && !needs_escape(c) {
                continue;
            }
            f.write_str(&s[start..i])?;
            match escape {
                Some(e) => f.write_str(e)?,
                None => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        f.write_str(&s[start..])
    }
}

/// Characters that change how a log line reads rather than what it says.
fn needs_escape(c: char) -> bool {
    c.is_control()
        // Line and paragraph separators: some viewers break lines on them.
        || matches!(c, '\u{2028}' | '\u{2029}')
        // Bidirectional embeddings, overrides and isolates can reorder what a terminal
        // shows ("Trojan Source"); the zero-width mark is harmless but invisible.
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Displays an error with its causes, `outer: inner: root`, for one log field: the
/// causes are kept as `#[source]`s, not folded into strings, and this is where they are
/// read back. Errors name causes they got from outside (Redis, SQLite, the OS), so
/// their text is escaped like client text.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut error: Option<&(dyn std::error::Error + 'static)> = Some(self.0);
        let mut first = true;
        while let Some(e) = error {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            write!(f, "{}", Escaped(&e.to_string()))?;
            error = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_escaped() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner\nforged line"));
        assert_eq!(Chain(&e).to_string(), "outer: inner\\nforged line");
    }

    #[test]
    fn control_characters_become_visible_and_the_rest_is_kept() {
        let shown = Escaped("a\nb\r\tc\x1b[31md\u{7f}\u{85}é\u{2028}\u{202e}x\\n").to_string();
        assert_eq!(
            shown,
            "a\\nb\\r\\tc\\u{1b}[31md\\u{7f}\\u{85}é\\u{2028}\\u{202e}x\\\\n"
        );
        assert!(!shown.chars().any(needs_escape));
        assert_eq!(Escaped("plain nick").to_string(), "plain nick");
        assert_eq!(Escaped("").to_string(), "");
    }

    proptest::proptest! {
        #[test]
        fn nothing_that_breaks_a_line_survives(s in ".*") {
            let shown = Escaped(&s).to_string();
            proptest::prop_assert!(!shown.chars().any(needs_escape));
        }
    }
}
