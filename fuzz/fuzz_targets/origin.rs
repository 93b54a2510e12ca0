//! Fuzz target: the `Origin` and `Host` checks (`backend/src/http/origin.rs`), the
//! first code a cross-site or DNS-rebinding page reaches.
//!
//! The input is split on `\n` into patterns, an `Origin`, a `Host` and public hosts.
//! Beyond "no panic": a pattern prints as something that parses back to it; `*` lets
//! every origin in; a request without `Origin` always passes the Origin check; with no
//! public hosts on a non-loopback listener every host is served; and a host a
//! public-host list lets in has the name of one of its entries.

#![no_main]

use backend::fuzzing::{host_allowed, origin_allowed, origin_pattern_round_trip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\n');
    let patterns: Vec<&str> = parts.next().unwrap_or("").split(',').collect();
    let origin = parts.next();
    let host = parts.next();
    let public: Vec<&str> = parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|h| !h.is_empty())
        .collect();

    for p in &patterns {
        if let Some((shown, same)) = origin_pattern_round_trip(p) {
            assert!(
                same,
                "{p:?} printed as {shown:?}, which parses to something else"
            );
        }
    }
    for loopback in [false, true] {
        let allowed = origin_allowed(&patterns, loopback, origin, host);
        if patterns.contains(&"*") && origin.is_some() {
            assert!(allowed, "* refused {origin:?}");
        }
        assert!(
            origin_allowed(&patterns, loopback, None, host),
            "no Origin refused"
        );
        assert!(
            host_allowed(&[], false, host),
            "with no list and no loopback, any host"
        );
        // Entries that do not parse are refused at start-up; the list is the others.
        let listed: Vec<&str> = public
            .iter()
            .copied()
            .filter(|p| p.parse::<backend::PublicHost>().is_ok())
            .collect();
        if host_allowed(&public, loopback, host) && !listed.is_empty() {
            let host = host.expect("a request without Host is never served by a list");
            let listed = listed.iter().any(|p| name(p) == name(host));
            assert!(listed, "{host:?} served though not in {public:?}");
        }
    }
});

/// The name in `host[:port]`, lowercased: what a public-host entry is compared by.
fn name(raw: &str) -> String {
    let s = raw.trim().to_ascii_lowercase();
    if s.starts_with('[') {
        return s.split_inclusive(']').next().unwrap_or_default().to_owned();
    }
    match s.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => s,
    }
}
