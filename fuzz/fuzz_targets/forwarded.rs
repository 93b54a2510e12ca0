//! Fuzz target: the client address behind `X-Forwarded-For` (`peers::client_ip`), which
//! every per-address limit trusts.
//!
//! The input gives a peer address, trusted networks and header values. Beyond "no
//! panic": an untrusted peer is always the answer (a client cannot choose its address by
//! sending the header itself), and any other answer is an address written in the header.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use backend::fuzzing::client_ip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\n');
    let peer: IpAddr = match parts.next().and_then(|p| p.trim().parse().ok()) {
        Some(ip) => ip,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let trusted: Vec<&str> = parts.next().unwrap_or("").split(',').collect();
    let forwarded: Vec<&str> = parts.collect();
    let peer = SocketAddr::new(peer, 4242);

    let got = client_ip(peer, &forwarded, &trusted);
    if client_ip(peer, &forwarded, &[]) != peer.ip().to_canonical() {
        panic!("with nothing trusted the header was believed");
    }
    if got != peer.ip().to_canonical() {
        let written = forwarded.iter().flat_map(|v| v.split(',')).any(|hop| {
            let hop = hop.trim();
            hop.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()) == Some(got)
                || hop
                    .parse::<SocketAddr>()
                    .ok()
                    .map(|s| s.ip().to_canonical())
                    == Some(got)
        });
        assert!(written, "{got} is neither the peer nor in {forwarded:?}");
    }
});
