//! The rules for what clients may name and say, shared so the web app can check input
//! before sending it and the server enforces exactly the same thing.

use unicode_normalization::UnicodeNormalization as _;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{skeleton, GeneralSecurityProfile as _, MixedScript as _};

use crate::error::ErrorCode;
use crate::protocol::Limits;

/// Why a value broke a rule. The message is written for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("nick must be 1-{max} characters after trimming")]
    NickLength { max: u32 },
    #[error("nick must not contain control characters")]
    NickControl,
    #[error("nick must not contain invisible or direction-changing characters")]
    NickInvisible,
    #[error("nick must not mix scripts (such as Latin with Cyrillic letters)")]
    NickMixedScripts,
    #[error("nick must only use characters that Unicode has assigned")]
    NickUnassigned,
    #[error("room must be 1-{max} characters")]
    RoomLength { max: u32 },
    #[error("room may only contain a-z, 0-9, '-' and '_'")]
    RoomCharset,
    #[error("text must be 1-{max} characters after trimming")]
    TextLength { max: u32 },
    #[error("id must be 1-{max} characters")]
    IdLength { max: u32 },
    #[error("a reaction must be one of {}", REACTIONS.join(" "))]
    Emoji,
}

impl RuleError {
    /// The error code a server answers with for this rule.
    pub const fn code(&self) -> ErrorCode {
        match self {
            RuleError::NickLength { .. }
            | RuleError::NickControl
            | RuleError::NickInvisible
            | RuleError::NickMixedScripts
            | RuleError::NickUnassigned => ErrorCode::InvalidNick,
            RuleError::RoomLength { .. } | RuleError::RoomCharset => ErrorCode::InvalidRoom,
            RuleError::TextLength { .. } => ErrorCode::InvalidText,
            RuleError::IdLength { .. } => ErrorCode::InvalidId,
            RuleError::Emoji => ErrorCode::InvalidEmoji,
        }
    }
}

fn char_len_within(s: &str, max: u32) -> bool {
    // Counting stops early so a huge input costs no more than `max` steps.
    let n = s.chars().take(max as usize + 1).count();
    n >= 1 && n <= max as usize
}

/// Checks a nick and returns it trimmed, as it will be shown.
///
/// A nick is seen by others as the name of a person, so beyond the length it must not
/// carry what makes one name look like another: invisible characters (zero-width
/// spaces, soft hyphens, word joiners, bidirectional overrides: every default-ignorable
/// code point) or letters of several scripts (a Cyrillic `а` in a Latin `alice`).
pub fn nick<'a>(raw: &'a str, limits: &Limits) -> Result<&'a str, RuleError> {
    let nick = raw.trim();
    if !char_len_within(nick, limits.nick_max_chars) {
        return Err(RuleError::NickLength {
            max: limits.nick_max_chars,
        });
    }
    if nick.chars().any(char::is_control) {
        return Err(RuleError::NickControl);
    }
    if nick.chars().any(is_invisible) {
        return Err(RuleError::NickInvisible);
    }
    // Unassigned today, possibly a lookalike tomorrow; and no script can be told for it.
    if nick
        .chars()
        .any(|c| c.identifier_type() == Some(IdentifierType::Not_Character))
    {
        return Err(RuleError::NickUnassigned);
    }
    if !nick.is_single_script() {
        return Err(RuleError::NickMixedScripts);
    }
    Ok(nick)
}

/// A default-ignorable code point: drawn as nothing, or changing how its neighbours
/// are drawn.
fn is_invisible(c: char) -> bool {
    c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// The key under which nicks are unique: nicks that look alike collide. It is the UTS #39
/// skeleton of the nick's lower-case NFKC form, so case, compatibility variants (`ｆｕｌｌ`
/// width) and confusable letters (Cyrillic `аӏісе` for `alice`) all map to one key.
pub fn nick_key(nick: &str) -> String {
    let folded: String = nick.nfkc().collect::<String>().to_lowercase();
    skeleton(&folded).collect()
}

/// Checks a room name. Room names are not trimmed: they appear in URLs as they are.
pub fn room<'a>(raw: &'a str, limits: &Limits) -> Result<&'a str, RuleError> {
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(RuleError::RoomCharset);
    }
    if raw.is_empty() || raw.len() > limits.room_max_chars as usize {
        return Err(RuleError::RoomLength {
            max: limits.room_max_chars,
        });
    }
    Ok(raw)
}

/// Checks a message text and returns it trimmed, as it will be stored.
pub fn text<'a>(raw: &'a str, limits: &Limits) -> Result<&'a str, RuleError> {
    let text = raw.trim();
    if !char_len_within(text, limits.text_max_chars) {
        return Err(RuleError::TextLength {
            max: limits.text_max_chars,
        });
    }
    Ok(text)
}

/// Checks a client-chosen message id. Ids are opaque and compared exactly.
pub fn id<'a>(raw: &'a str, limits: &Limits) -> Result<&'a str, RuleError> {
    if !char_len_within(raw, limits.id_max_chars) {
        return Err(RuleError::IdLength {
            max: limits.id_max_chars,
        });
    }
    Ok(raw)
}

/// The reactions a server offers, in the order a picker shows them.
///
/// A fixed set rather than any emoji: every client can draw each one, a message's
/// reactions stay few and small (at most this many chips, each at most one user per
/// user), and nothing can pose as a reaction (a letter, a lookalike, a zalgo tower)
/// the way an arbitrary grapheme could.
pub const REACTIONS: [&str; 12] = [
    "\u{1f44d}",        // thumbs up
    "\u{2764}\u{fe0f}", // red heart
    "\u{1f602}",        // tears of joy
    "\u{1f389}",        // party popper
    "\u{1f62e}",        // open mouth
    "\u{1f622}",        // crying
    "\u{1f64f}",        // folded hands
    "\u{1f440}",        // eyes
    "\u{1f525}",        // fire
    "\u{2705}",         // check mark
    "\u{1f680}",        // rocket
    "\u{1f44e}",        // thumbs down
];

/// Checks a reaction: one of [`REACTIONS`], compared exactly. A heart without its
/// variation selector (`\u{2764}` alone) is taken as the heart, since keyboards send
/// both.
pub fn emoji(raw: &str) -> Result<&'static str, RuleError> {
    let raw = if raw == "\u{2764}" {
        "\u{2764}\u{fe0f}"
    } else {
        raw
    };
    REACTIONS
        .iter()
        .copied()
        .find(|e| *e == raw)
        .ok_or(RuleError::Emoji)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        let l = Limits::default();
        assert_eq!(nick("  alice ", &l), Ok("alice"));
        assert_eq!(nick("   ", &l), Err(RuleError::NickLength { max: 32 }));
        assert_eq!(nick("a\u{7}b", &l), Err(RuleError::NickControl));
        assert!(nick(&"é".repeat(32), &l).is_ok());
        assert!(nick(&"é".repeat(33), &l).is_err());
        assert_eq!(room("lobby-2_x", &l), Ok("lobby-2_x"));
        assert_eq!(room("Lobby", &l), Err(RuleError::RoomCharset));
        assert_eq!(room("", &l), Err(RuleError::RoomLength { max: 64 }));
        assert!(room(&"a".repeat(65), &l).is_err());
        assert_eq!(text("  hi \n", &l), Ok("hi"));
        assert!(text(" \n\t ", &l).is_err());
        assert!(text(&"x".repeat(4000), &l).is_ok());
        assert!(text(&"x".repeat(4001), &l).is_err());
        assert!(id("", &l).is_err());
        assert!(id(&"i".repeat(64), &l).is_ok());
        assert!(id(&"i".repeat(65), &l).is_err());
        assert_eq!(emoji("\u{1f44d}"), Ok("\u{1f44d}"));
        assert_eq!(emoji("\u{2764}"), Ok("\u{2764}\u{fe0f}"));
        assert_eq!(emoji("\u{2764}\u{fe0f}"), Ok("\u{2764}\u{fe0f}"));
        for bad in [
            "",
            "a",
            "\u{1f44d}\u{1f44d}",
            "\u{1f44d}\u{1f3fd}",
            "\u{1f4a9}",
            " \u{1f44d}",
        ] {
            assert_eq!(emoji(bad), Err(RuleError::Emoji), "{bad:?}");
        }
        assert_eq!(nick_key("ÅLice"), nick_key("åliCE"));
        // Names that would pose as alice while she is online.
        for invisible in [
            "alice\u{200b}",
            "\u{202e}ecila",
            "al\u{ad}ice",
            "al\u{2060}ice",
            "ali\u{200d}ce",
            "\u{2066}alice\u{2069}",
        ] {
            assert_eq!(
                nick(invisible, &l),
                Err(RuleError::NickInvisible),
                "{invisible:?}"
            );
        }
        assert_eq!(nick("\u{430}lice", &l), Err(RuleError::NickMixedScripts));
        // One script, however it looks, is a name; it is its key that collides.
        let cyrillic = "\u{430}\u{4cf}\u{456}\u{441}\u{435}";
        assert_eq!(nick(cyrillic, &l), Ok(cyrillic));
        assert_eq!(nick_key(cyrillic), nick_key("alice"));
        assert_eq!(
            nick_key("\u{ff21}\u{ff2c}\u{ff29}\u{ff23}\u{ff25}"),
            nick_key("alice")
        );
        assert_eq!(nick_key("rnary"), nick_key("mary"));
        assert_ne!(nick_key("alice"), nick_key("alicia"));
        // Scripts used together in one language, digits, punctuation and emoji stay fine.
        for ok in ["山田たろう", "Zoë", "bob_42", "dj 🎧", "Анна", "ελένη"] {
            assert_eq!(nick(ok, &l), Ok(ok), "{ok:?}");
        }
    }
}
