//! Fuzz target: the `Origin` and `Host` checks (`backend/src/http/origin.rs`), the
//! first code a cross-site or DNS-rebinding page reaches.
//!
//! The input is split on `\n` into patterns, an `Origin`, a `Host` and public hosts.
//! Beyond "no panic": a pattern prints as something that parses back to it; `*` lets
//! every origin in; a request without `Origin` always passes the Origin check; with no
//! public hosts on a non-loopback listener every host is served; and a host a
//! public-host list lets in has the name of one of its entries. The Origin decision
//! agrees with plain restatements of its rules: with nothing configured on a public
//! listener and no `Host`, only a request without `Origin` passes; every listed pattern
//! lets in the origin it prints as (any port for `:*`), in any letter case; letter case
//! never changes a decision; and a `Host` can only let more in (the server's own origin).

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
    // What the server is started with: the entries that parse, as they print.
    let shown: Vec<String> = patterns
        .iter()
        .filter_map(|p| origin_pattern_round_trip(p).map(|(shown, _)| shown))
        .collect();
    for loopback in [false, true] {
        let allowed = origin_allowed(&patterns, loopback, origin, host);
        check_restatements(&patterns, &shown, loopback, origin, host, allowed);
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

/// The Origin decision (`allowed`, for these arguments) against its rules restated.
fn check_restatements(
    patterns: &[&str],
    shown: &[String],
    loopback: bool,
    origin: Option<&str>,
    host: Option<&str>,
    allowed: bool,
) {
    // Nothing configured on a public listener: only the server's own origin, so with no
    // `Host` to compare with, only a request without `Origin`.
    // (A value no HTTP parser would produce is not sent: the same as none.)
    let sent = origin.is_some_and(|o| {
        o.bytes()
            .all(|b| (b' '..=b'~').contains(&b) || b == b'\t' || b >= 0x80)
    });
    if shown.is_empty() && !loopback {
        assert_eq!(
            origin_allowed(patterns, false, origin, None),
            !sent,
            "no patterns, no Host, Origin {origin:?}"
        );
    }
    // A `Host` adds the server's own origin and never takes anything away.
    if origin_allowed(patterns, loopback, origin, None) {
        assert!(allowed, "Host {host:?} refused {origin:?}");
    }
    // Scheme and host are compared without regard to letter case.
    let (upper_origin, upper_host) = (upper(origin), upper(host));
    let (lower_origin, lower_host) = (lower(origin), lower(host));
    for (o, h) in [
        (upper_origin.as_deref(), host),
        (origin, upper_host.as_deref()),
        (lower_origin.as_deref(), lower_host.as_deref()),
    ] {
        assert_eq!(
            origin_allowed(patterns, loopback, o, h),
            allowed,
            "case changed the decision for {origin:?} on {host:?}"
        );
    }
    // Each pattern lets in what it prints as, whatever the `Host` and the letter case.
    for p in shown.iter().filter(|p| *p != "*") {
        let exact = match p.strip_suffix(":*") {
            Some(any_port) => format!("{any_port}:4242"),
            None => p.clone(),
        };
        for o in [exact.clone(), exact.to_ascii_uppercase()] {
            assert!(
                origin_allowed(patterns, loopback, Some(&o), host),
                "pattern {p:?} refused {o:?} (Host {host:?})"
            );
        }
        // Without a port too, unless the host has a colon that would then read as one.
        let any_port = p.strip_suffix(":*").filter(|a| {
            let host = a.split_once("://").map_or("", |(_, h)| h);
            !host.contains(':') || host.ends_with(']')
        });
        if let Some(any_port) = any_port {
            assert!(
                origin_allowed(patterns, loopback, Some(any_port), host),
                "pattern {p:?} refused {any_port:?} (Host {host:?})"
            );
        }
    }
}

fn upper(s: Option<&str>) -> Option<String> {
    s.map(str::to_ascii_uppercase)
}

fn lower(s: Option<&str>) -> Option<String> {
    s.map(str::to_ascii_lowercase)
}

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
