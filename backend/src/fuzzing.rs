//! The parsers an attacker reaches first, reachable from the fuzz targets in `fuzz/`
//! (a workspace of its own, so it sees only what is public). Each function calls the
//! server's own code unchanged, building what it needs from plain strings. Not an API.

use std::net::{IpAddr, SocketAddr};

use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};

use crate::http::api::{bearer_token, ApiToken};
use crate::http::origin::{AllowedOrigins, OriginPattern, PublicHost, PublicHosts};
use crate::peers::{self, IpNet};

fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        // A value no HTTP parser would have produced is not a case to check.
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(name.clone(), value);
        }
    }
    map
}

/// Whether a WebSocket handshake with this `Origin` and `Host` passes the Origin check,
/// with `--allowed-origins` given as `patterns` (entries that do not parse are left
/// out, as clap would have refused them).
pub fn origin_allowed(
    patterns: &[&str],
    loopback: bool,
    origin: Option<&str>,
    host: Option<&str>,
) -> bool {
    let patterns: Vec<OriginPattern> = patterns.iter().filter_map(|p| p.parse().ok()).collect();
    let mut pairs = Vec::new();
    pairs.extend(origin.map(|o| (ORIGIN, o)));
    pairs.extend(host.map(|h| (HOST, h)));
    AllowedOrigins::new(&patterns, loopback).allows(&headers(&pairs))
}

/// `--allowed-origins` entries: each parses, or not, and prints as what it parsed to.
pub fn origin_pattern_round_trip(raw: &str) -> Option<(String, bool)> {
    let pattern: OriginPattern = raw.parse().ok()?;
    let shown = pattern.to_string();
    let again = shown.parse::<OriginPattern>().ok();
    Some((shown, again == Some(pattern)))
}

/// Whether a request naming `host` directly (not through a proxy) is served, with
/// `--public-host` given as `hosts`.
pub fn host_allowed(hosts: &[&str], loopback: bool, host: Option<&str>) -> bool {
    let hosts: Vec<PublicHost> = hosts.iter().filter_map(|h| h.parse().ok()).collect();
    let pairs: Vec<_> = host.map(|h| (HOST, h)).into_iter().collect();
    PublicHosts::new(&hosts, loopback).allows(&headers(&pairs), false)
}

/// The client address the per-address limits use, for a TCP `peer`, these
/// `X-Forwarded-For` header values and `--trusted-proxies` entries (invalid entries are
/// left out).
pub fn client_ip(peer: SocketAddr, forwarded: &[&str], trusted: &[&str]) -> IpAddr {
    let trusted: Vec<IpNet> = trusted.iter().filter_map(|t| t.parse().ok()).collect();
    let name = axum::http::HeaderName::from_static("x-forwarded-for");
    let pairs: Vec<_> = forwarded.iter().map(|f| (name.clone(), *f)).collect();
    peers::client_ip(peer, &headers(&pairs), &trusted)
}

/// What a resume reads from a `Last-Event-ID` header (the stream, and each room's
/// offset), allowing at most `max_rooms` rooms.
pub fn event_id(id: &str, max_rooms: usize) -> Option<(String, Vec<(String, u64)>)> {
    crate::session::events::parse_event_id(id, max_rooms)
}

/// For an `--api-token` (`None` if the server would refuse it) and an `Authorization`
/// header: whether the API lets the request in.
pub fn api_authorized(token: &str, authorization: Option<&str>) -> Option<bool> {
    let token: ApiToken = token.parse().ok()?;
    let pairs: Vec<_> = authorization
        .map(|a| (AUTHORIZATION, a))
        .into_iter()
        .collect();
    let headers = headers(&pairs);
    Some(bearer_token(&headers).is_some_and(|given| token.matches(given)))
}
