//! Who may call the notifications API: `--api-token` (every scope) and the keys of
//! `--api-keys FILE`, each with its scopes, so a deployment with several callers gives
//! each only what it needs and can revoke one without the others. Keys are compared in
//! constant time against every entry, and never logged or printed.
//!
//! The file: one key per line, then its scopes separated by spaces or commas; blank
//! lines and `#` comments are skipped:
//!
//! ```text
//! # the deploy bot may only post to rooms
//! 3f9c…e1  rooms:notify
//! 77ab…02  users:notify, read
//! ```

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq as _;

use super::{ApiToken, MIN_TOKEN_CHARS};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `POST /api/rooms/{room}/notifications`.
    RoomsNotify,
    /// `POST /api/users/{user}/notifications`.
    UsersNotify,
    /// `GET /api/notifications/{id}`.
    Read,
}

impl Scope {
    const ALL: [Scope; 3] = [Scope::RoomsNotify, Scope::UsersNotify, Scope::Read];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Scope::RoomsNotify => "rooms:notify",
            Scope::UsersNotify => "users:notify",
            Scope::Read => "read",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Scope::RoomsNotify => 1,
            Scope::UsersNotify => 2,
            Scope::Read => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scopes(u8);

impl Scopes {
    pub(crate) fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// Why `--api-keys` cannot be used. Messages name the line, never the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiKeysError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Line {
        path: String,
        line: usize,
        why: String,
    },
    #[error("{path} has no keys; remove --api-keys or add a line `KEY SCOPE...`")]
    Empty { path: String },
}

/// Every key the API accepts.
#[derive(Default)]
pub(crate) struct ApiKeys {
    keys: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys, <redacted>)", self.keys.len())
    }
}

impl ApiKeys {
    /// `token` (all scopes) and the keys in `file`.
    pub(crate) fn load(
        token: Option<&ApiToken>,
        file: Option<&Path>,
    ) -> Result<Self, ApiKeysError> {
        let mut keys = ApiKeys::default();
        if let Some(token) = token {
            keys.keys.push((token.0.as_bytes().to_vec(), Scopes(7)));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ApiKeysError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let parsed = parse(&text).map_err(|(line, why)| ApiKeysError::Line {
                path: path.display().to_string(),
                line,
                why,
            })?;
            if parsed.is_empty() {
                return Err(ApiKeysError::Empty {
                    path: path.display().to_string(),
                });
            }
            keys.keys.extend(parsed);
        }
        Ok(keys)
    }

    /// Whether the API is off (no token, no file).
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scopes of key `given`, if it is one. Every entry is compared, so the time
    /// taken says nothing about which (or whether one) matched.
    pub(crate) fn scopes(&self, given: &[u8]) -> Option<Scopes> {
        let mut found = 0u8;
        for (key, scopes) in &self.keys {
            let hit: bool = key.as_slice().ct_eq(given).into();
            found |= if hit { scopes.0 } else { 0 };
        }
        (found != 0).then_some(Scopes(found))
    }
}

/// The entries of a keys file, or the line number and what is wrong with it.
/// A key and what it may do.
type Entry = (Vec<u8>, Scopes);

fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty());
        let key = words.next().unwrap_or_default();
        if key.len() < MIN_TOKEN_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err((
                i + 1,
                format!("a key must be at least {MIN_TOKEN_CHARS} visible ASCII characters (make one with `openssl rand -hex 32`)"),
            ));
        }
        let mut scopes = 0u8;
        for word in words {
            let Some(scope) = Scope::ALL.into_iter().find(|s| s.as_str() == word) else {
                return Err((
                    i + 1,
                    format!("unknown scope {word:?}; the scopes are rooms:notify, users:notify and read"),
                ));
            };
            scopes |= scope.bit();
        }
        if scopes == 0 {
            return Err((
                i + 1,
                "a key needs at least one scope (rooms:notify, users:notify, read)".to_owned(),
            ));
        }
        keys.push((key.as_bytes().to_vec(), Scopes(scopes)));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_file_gives_each_key_its_scopes() {
        let text = format!("# bots\n{A} rooms:notify\n\n{B}  users:notify, read  # app\n");
        let keys = ApiKeys {
            keys: parse(&text).unwrap(),
        };
        let a = keys.scopes(A.as_bytes()).unwrap();
        assert!(a.has(Scope::RoomsNotify) && !a.has(Scope::UsersNotify) && !a.has(Scope::Read));
        let b = keys.scopes(B.as_bytes()).unwrap();
        assert!(!b.has(Scope::RoomsNotify) && b.has(Scope::UsersNotify) && b.has(Scope::Read));
        assert!(keys.scopes(b"nope").is_none());
        assert!(keys.scopes(b"").is_none());
        assert!(!format!("{keys:?}").contains(A));
    }

    #[test]
    fn bad_lines_are_named_without_the_key() {
        assert_eq!(parse("short read").unwrap_err().0, 1);
        let e = parse(&format!("\n{A} write")).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("unknown scope") && !e.1.contains(A));
        assert!(parse(A).unwrap_err().1.contains("at least one scope"));
    }

    #[test]
    fn the_token_has_every_scope() {
        let token: ApiToken = A.parse().unwrap();
        let keys = ApiKeys::load(Some(&token), None).unwrap();
        let s = keys.scopes(A.as_bytes()).unwrap();
        assert!(Scope::ALL.iter().all(|&x| s.has(x)));
        assert!(ApiKeys::load(None, None).unwrap().is_empty());
    }
}
