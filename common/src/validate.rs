//! The rules for what clients may name and say, shared so the web app can check input
//! before sending it and the server enforces exactly the same thing.

use crate::error::ErrorCode;
use crate::protocol::Limits;

/// Why a value broke a rule. The message is written for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("nick must be 1-{max} characters after trimming")]
    NickLength { max: u32 },
    #[error("nick must not contain control characters")]
    NickControl,
    #[error("room must be 1-{max} characters")]
    RoomLength { max: u32 },
    #[error("room may only contain a-z, 0-9, '-' and '_'")]
    RoomCharset,
    #[error("text must be 1-{max} characters after trimming")]
    TextLength { max: u32 },
    #[error("id must be 1-{max} characters")]
    IdLength { max: u32 },
}

impl RuleError {
    /// The error code a server answers with for this rule.
    pub const fn code(&self) -> ErrorCode {
        match self {
            RuleError::NickLength { .. } | RuleError::NickControl => ErrorCode::InvalidNick,
            RuleError::RoomLength { .. } | RuleError::RoomCharset => ErrorCode::InvalidRoom,
            RuleError::TextLength { .. } => ErrorCode::InvalidText,
            RuleError::IdLength { .. } => ErrorCode::InvalidId,
        }
    }
}

fn char_len_within(s: &str, max: u32) -> bool {
    // Counting stops early so a huge input costs no more than `max` steps.
    let n = s.chars().take(max as usize + 1).count();
    n >= 1 && n <= max as usize
}

/// Checks a nick and returns it trimmed, as it will be shown.
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
    Ok(nick)
}

/// The key under which nicks are unique: nicks differing only in case collide.
pub fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
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
        assert_eq!(nick_key("ÅLice"), nick_key("åliCE"));
    }
}
