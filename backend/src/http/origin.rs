//! Which pages may open a WebSocket here: the defence against cross-site WebSocket
//! hijacking.
//!
//! Browsers send the page's `Origin` with every WebSocket handshake and do not apply the
//! same-origin policy to WebSockets, so without this check any site a user visits could
//! chat in their name. Allowed are:
//! - the server's own host: `Origin`'s host and port equal the request's `Host` (the web
//!   app served by Huddle itself, directly or through a proxy that keeps `Host`);
//! - the patterns of `--allowed-origins`, or by default the local development origins
//!   ([`DEFAULT_PATTERNS`]);
//! - requests without `Origin`: they come from programs, not browsers, and a program
//!   could send any `Origin` it likes anyway.

use std::fmt;
use std::str::FromStr;

use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;

/// The origins allowed when `--allowed-origins` is not given: local development, such
/// as `trunk serve` on another port proxying `/ws` here.
pub(crate) const DEFAULT_PATTERNS: [&str; 6] = [
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://localhost:*",
    "https://localhost:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// One entry of `--allowed-origins`: `scheme://host[:port]`, where the port may be `*`
/// (any port, or none), or `*` alone for any origin at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin (turns the check off).
    Any,
    /// A scheme, host and port to compare with.
    Exact {
        scheme: String,
        host: String,
        port: PortPattern,
    },
}

/// The port part of an [`OriginPattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// `:*`: any port.
    Any,
    /// A given port; a pattern without one means the scheme's default port.
    Is(u16),
}

/// Why an `--allowed-origins` entry is not a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin; write scheme://host or scheme://host:port (port may be *), e.g. https://chat.example.com or http://127.0.0.1:*")]
pub struct BadPattern(String);

impl FromStr for OriginPattern {
    type Err = BadPattern;

    fn from_str(raw: &str) -> Result<Self, BadPattern> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(OriginPattern::Any);
        }
        let bad = || BadPattern(raw.to_owned());
        let origin = Origin::parse(raw, true).ok_or_else(bad)?;
        let port = match origin.port {
            Some(None) => PortPattern::Any,
            Some(Some(p)) => PortPattern::Is(p),
            None => PortPattern::Is(default_port(&origin.scheme).ok_or_else(bad)?),
        };
        Ok(OriginPattern::Exact {
            scheme: origin.scheme,
            host: origin.host,
            port,
        })
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginPattern::Any => f.write_str("*"),
            OriginPattern::Exact { scheme, host, port } => {
                write!(f, "{scheme}://{host}")?;
                match port {
                    PortPattern::Any => f.write_str(":*"),
                    PortPattern::Is(p) => write!(f, ":{p}"),
                }
            }
        }
    }
}

impl OriginPattern {
    fn matches(&self, origin: &Origin) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact { scheme, host, port } => {
                *scheme == origin.scheme
                    && *host == origin.host
                    && match port {
                        PortPattern::Any => true,
                        PortPattern::Is(p) => origin.effective_port() == Some(*p),
                    }
            }
        }
    }
}

/// The check, built once from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct AllowedOrigins {
    patterns: Vec<OriginPattern>,
}

impl AllowedOrigins {
    /// `--allowed-origins` as given, or [`DEFAULT_PATTERNS`] when it is empty.
    pub(crate) fn new(configured: &[OriginPattern]) -> Self {
        let patterns = if configured.is_empty() {
            DEFAULT_PATTERNS
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect()
        } else {
            configured.to_vec()
        };
        AllowedOrigins { patterns }
    }

    /// Whether a handshake with these headers may proceed.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else {
            return true;
        };
        let Some(origin) = origin.to_str().ok().and_then(|o| Origin::parse(o, false)) else {
            // "null" (sandboxed frames, file:// pages) and anything malformed.
            return self.patterns.contains(&OriginPattern::Any);
        };
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        host.is_some_and(|h| origin.is_host(h)) || self.patterns.iter().any(|p| p.matches(&origin))
    }
}

/// A parsed `scheme://host[:port]`, lowercased.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    /// `None`: no port given; `Some(None)`: `*` (patterns only); `Some(Some(p))`: `p`.
    port: Option<Option<u16>>,
}

impl Origin {
    fn parse(raw: &str, wildcard_port: bool) -> Option<Origin> {
        let (scheme, rest) = raw.split_once("://")?;
        let valid_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        // An IPv6 host is bracketed, and its colons are not a port separator.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let valid_host = !host.is_empty()
            && host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':')
            });
        if !valid_host {
            return None;
        }
        let port = match port {
            None => None,
            Some("*") if wildcard_port => Some(None),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(Some(p.parse().ok()?))
            }
            Some(_) => return None,
        };
        Some(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The port, or the scheme's default when none was given.
    fn effective_port(&self) -> Option<u16> {
        match self.port {
            Some(p) => p,
            None => default_port(&self.scheme),
        }
    }

    /// Whether this origin names the host in a `Host` header (`host[:port]`), treating a
    /// missing port on either side as this origin's scheme's default.
    fn is_host(&self, host_header: &str) -> bool {
        let Some(host) = Origin::parse(&format!("{}://{}", self.scheme, host_header), false) else {
            return false;
        };
        host.host == self.host && host.effective_port() == self.effective_port()
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        if let Some(host) = host {
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    fn allowed(patterns: &[&str], origin: &str, host: &str) -> bool {
        let patterns: Vec<OriginPattern> = patterns.iter().map(|p| p.parse().unwrap()).collect();
        AllowedOrigins::new(&patterns).allows(&headers(Some(origin), Some(host)))
    }

    #[test]
    fn patterns_parse_and_print() {
        for (raw, shown) in [
            ("*", "*"),
            ("https://chat.example.com", "https://chat.example.com:443"),
            ("http://127.0.0.1:*", "http://127.0.0.1:*"),
            ("HTTP://LocalHost:8080", "http://localhost:8080"),
            ("http://[::1]:*", "http://[::1]:*"),
            (" https://a.b:8443 ", "https://a.b:8443"),
        ] {
            let p: OriginPattern = raw.parse().unwrap();
            assert_eq!(p.to_string(), shown, "{raw}");
        }
        for bad in [
            "",
            "chat.example.com",
            "https://",
            "https://a.b/",
            "https://a.b:port",
            "https://a.b:99999",
            "https://user@a.b",
            "ftp://a.b",
            "https://*.example.com",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn same_host_is_always_allowed() {
        let only = ["https://other.example"];
        assert!(allowed(
            &only,
            "https://chat.example.com",
            "chat.example.com"
        ));
        assert!(allowed(
            &only,
            "https://chat.example.com",
            "chat.example.com:443"
        ));
        assert!(allowed(&only, "http://10.0.0.5:3000", "10.0.0.5:3000"));
        assert!(allowed(
            &only,
            "HTTPS://Chat.Example.com",
            "chat.example.COM"
        ));
        assert!(!allowed(&only, "http://10.0.0.5:3001", "10.0.0.5:3000"));
        assert!(!allowed(&only, "https://evil.example", "chat.example.com"));
        assert!(!allowed(
            &only,
            "https://chat.example.com.evil.example",
            "chat.example.com"
        ));
        // The port must match too: another service on the same host is another origin.
        assert!(!allowed(
            &only,
            "http://chat.example.com:8080",
            "chat.example.com"
        ));
    }

    #[test]
    fn defaults_allow_local_development_only() {
        assert!(allowed(&[], "http://127.0.0.1:8080", "127.0.0.1:3000"));
        assert!(allowed(&[], "http://localhost:8080", "127.0.0.1:3000"));
        assert!(allowed(&[], "https://localhost", "127.0.0.1:3000"));
        assert!(allowed(&[], "http://[::1]:8080", "[::1]:3000"));
        assert!(!allowed(&[], "https://evil.example", "chat.example.com"));
        assert!(!allowed(&[], "http://127.0.0.2:8080", "chat.example.com"));
        assert!(!allowed(
            &[],
            "http://localhost.evil.example",
            "chat.example.com"
        ));
    }

    #[test]
    fn a_configured_list_replaces_the_defaults() {
        let list = ["https://app.example.com", "http://10.1.1.1:*"];
        assert!(allowed(
            &list,
            "https://app.example.com",
            "chat.example.com"
        ));
        assert!(allowed(
            &list,
            "https://app.example.com:443",
            "chat.example.com"
        ));
        assert!(!allowed(
            &list,
            "https://app.example.com:8443",
            "chat.example.com"
        ));
        assert!(!allowed(
            &list,
            "http://app.example.com",
            "chat.example.com"
        ));
        assert!(allowed(&list, "http://10.1.1.1:9", "chat.example.com"));
        assert!(allowed(&list, "http://10.1.1.1", "chat.example.com"));
        assert!(!allowed(&list, "http://localhost:8080", "chat.example.com"));
        assert!(allowed(
            &["*"],
            "https://anything.example",
            "chat.example.com"
        ));
    }

    #[test]
    fn no_origin_is_allowed_and_null_or_garbage_is_not() {
        let check = AllowedOrigins::new(&[]);
        assert!(check.allows(&headers(None, Some("chat.example.com"))));
        assert!(check.allows(&headers(None, None)));
        assert!(!check.allows(&headers(Some("null"), Some("chat.example.com"))));
        assert!(!check.allows(&headers(Some("https://a.b/path"), Some("a.b"))));
        // Without Host only the list can allow it.
        assert!(!check.allows(&headers(Some("https://chat.example.com"), None)));
        let any = AllowedOrigins::new(&[OriginPattern::Any]);
        assert!(any.allows(&headers(Some("null"), Some("chat.example.com"))));
    }
}
