//! Which pages may open a WebSocket here (the defence against cross-site WebSocket
//! hijacking), and which host names this server answers for (the defence against DNS
//! rebinding).
//!
//! Browsers send the page's `Origin` with every WebSocket handshake and do not apply the
//! same-origin policy to WebSockets, so without this check any site a user visits could
//! chat in their name. Allowed are:
//! - the server's own host: `Origin`'s host and port equal the request's `Host` (the web
//!   app served by Huddle itself, directly or through a proxy that keeps `Host`);
//! - the patterns of `--allowed-origins`, or by default, when the server listens on a
//!   loopback address only, the local development origins ([`DEFAULT_PATTERNS`]);
//! - requests without `Origin`: they come from programs, not browsers, and a program
//!   could send any `Origin` it likes anyway.
//!
//! "Origin = Host" alone would let a DNS-rebinding page in: its own name, pointed at
//! this server, is both. So [`PublicHosts`] decides which `Host`s are served at all on
//! `/ws`, the API and `/metrics`: those of `--public-host`; without it, on a loopback
//! listener, only loopback names (a rebinding page cannot name itself `localhost`) or
//! requests a trusted proxy forwarded; and without either, any (the server then warns
//! at start that it is exposed).

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
    /// `--allowed-origins` as given; when it is empty, [`DEFAULT_PATTERNS`] on a loopback
    /// listener and nothing but the server's own host otherwise.
    pub(crate) fn new(configured: &[OriginPattern], loopback: bool) -> Self {
        let patterns = if configured.is_empty() && !loopback {
            Vec::new()
        } else if configured.is_empty() {
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

/// One entry of `--public-host`: a host name or address with an optional port (any port
/// when none is given), as clients write it in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost {
    host: String,
    port: Option<u16>,
}

/// Why a `--public-host` entry is not a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host; write a name or address with an optional port, e.g. chat.example.com, chat.example.com:8443 or [2001:db8::1]")]
pub struct BadHost(String);

impl FromStr for PublicHost {
    type Err = BadHost;

    fn from_str(raw: &str) -> Result<Self, BadHost> {
        let raw = raw.trim();
        let parsed = Origin::parse(&format!("http://{raw}"), false)
            .filter(|_| !raw.contains("://"))
            .ok_or_else(|| BadHost(raw.to_owned()))?;
        Ok(PublicHost {
            host: parsed.host,
            port: parsed.port.flatten(),
        })
    }
}

impl fmt::Display for PublicHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Which `Host` headers are served: see the module documentation.
#[derive(Debug, Clone)]
pub(crate) enum PublicHosts {
    /// Any host (no `--public-host`, listening beyond loopback).
    Any,
    /// Loopback names only: `localhost`, `127.0.0.0/8`, `[::1]`.
    Loopback,
    /// Exactly these.
    Listed(Vec<PublicHost>),
}

impl PublicHosts {
    pub(crate) fn new(configured: &[PublicHost], loopback: bool) -> Self {
        match (configured.is_empty(), loopback) {
            (false, _) => PublicHosts::Listed(configured.to_vec()),
            (true, true) => PublicHosts::Loopback,
            (true, false) => PublicHosts::Any,
        }
    }

    /// Whether a request with these headers names a host this server answers for.
    /// `proxied`: it came from a trusted proxy that forwarded it (`X-Forwarded-For`),
    /// which chose the host: without a list, a proxy in front of a loopback listener is
    /// served whatever name it passes on. A page in a browser cannot add that header to
    /// a WebSocket handshake or a simple request, so rebinding gains nothing from it.
    pub(crate) fn allows(&self, headers: &HeaderMap, proxied: bool) -> bool {
        match self {
            PublicHosts::Any => return true,
            PublicHosts::Loopback if proxied => return true,
            _ => {}
        }
        // HTTP/1.1 requires `Host`; without one, nothing can be checked.
        let Some(host) = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<PublicHost>().ok())
        else {
            return false;
        };
        match self {
            PublicHosts::Any => true,
            PublicHosts::Loopback => is_loopback_name(&host.host),
            PublicHosts::Listed(list) => list.iter().any(|allowed| {
                allowed.host == host.host && allowed.port.is_none_or(|p| host.port == Some(p))
            }),
        }
    }
}

/// `localhost`, an IPv4 address in 127/8, or `[::1]`.
fn is_loopback_name(host: &str) -> bool {
    if host == "localhost" || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
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
        // A name or IPv4 address, or an IPv6 address in one pair of brackets: a stray
        // bracket or colon would make hosts match that no browser sends alike.
        let valid_host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').is_some_and(|v6| {
                !v6.is_empty()
                    && v6
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
            }),
            None => {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            }
        };
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
        AllowedOrigins::new(&patterns, true).allows(&headers(Some(origin), Some(host)))
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
    fn development_origins_only_on_a_loopback_listener() {
        let public = AllowedOrigins::new(&[], false);
        let from = |origin: &str, host: &str| public.allows(&headers(Some(origin), Some(host)));
        assert!(!from("http://localhost:8080", "chat.example.com"));
        assert!(!from("http://127.0.0.1:8080", "chat.example.com"));
        assert!(from("https://chat.example.com", "chat.example.com"));
    }

    #[test]
    fn public_hosts_parse_and_match() {
        let list: Vec<PublicHost> = ["Chat.Example.com", "10.0.0.5:8443", "[2001:db8::1]"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        assert_eq!(list[0].to_string(), "chat.example.com");
        for bad in [
            "",
            "https://chat.example.com",
            "a.b/c",
            "a.b:x",
            "user@a.b",
            "*",
            // Found by the fuzzer: a stray bracket made "[" a host that "[:443" matched.
            "[",
            "[:443",
            "[]",
            "a[b]",
            "[2001:db8::1",
            "a:b:80",
        ] {
            assert!(bad.parse::<PublicHost>().is_err(), "{bad:?} parsed");
        }
        let listed = PublicHosts::new(&list, true);
        let host = |h: &str| listed.allows(&headers(None, Some(h)), false);
        assert!(host("chat.example.com") && host("CHAT.example.com:443"));
        assert!(host("10.0.0.5:8443") && !host("10.0.0.5:8444") && !host("10.0.0.5"));
        assert!(host("[2001:db8::1]:3000"));
        assert!(!host("evil.example") && !host("chat.example.com.evil.example"));
        assert!(
            !host("localhost:3000"),
            "a list replaces the loopback default"
        );
        assert!(!listed.allows(&headers(None, None), false), "no Host");
        assert!(
            !listed.allows(&headers(None, Some("evil.example")), true),
            "a list binds proxies too"
        );

        let local = PublicHosts::new(&[], true);
        let host = |h: &str| local.allows(&headers(None, Some(h)), false);
        assert!(host("127.0.0.1:3000") && host("localhost") && host("[::1]:80"));
        assert!(host("127.0.0.2:3000"));
        // A rebinding page names itself.
        assert!(!host("evil.example:3000") && !host("localhost.evil.example"));
        // Behind a proxy on the same machine, the proxy picked the name.
        assert!(local.allows(&headers(None, Some("chat.example.com")), true));
        assert!(PublicHosts::new(&[], false).allows(&headers(None, Some("any.example")), false));
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
        let check = AllowedOrigins::new(&[], true);
        assert!(check.allows(&headers(None, Some("chat.example.com"))));
        assert!(check.allows(&headers(None, None)));
        assert!(!check.allows(&headers(Some("null"), Some("chat.example.com"))));
        assert!(!check.allows(&headers(Some("https://a.b/path"), Some("a.b"))));
        // Without Host only the list can allow it.
        assert!(!check.allows(&headers(Some("https://chat.example.com"), None)));
        let any = AllowedOrigins::new(&[OriginPattern::Any], false);
        assert!(any.allows(&headers(Some("null"), Some("chat.example.com"))));
    }
}
