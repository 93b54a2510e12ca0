//! Fuzz target: the client address behind `X-Forwarded-For` (`peers::client_ip`), which
//! every per-address limit trusts, and the `--trusted-proxies` networks (`IpNet`).
//!
//! The input gives a peer address, trusted networks and header values. Beyond "no
//! panic": a network prints as something that parses back to it; an untrusted peer is
//! always the answer (a client cannot choose its address by sending the header itself);
//! any other answer is an address written in the header; and the answer is the one a
//! plain restatement of the rule gives (from the right, skip trusted proxies, stop at the
//! first hop that is not one or is not an address).

#![no_main]

use std::net::{IpAddr, SocketAddr};

use backend::fuzzing::client_ip;
use backend::IpNet;
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

    // The networks the server is started with, each as (address, prefix length).
    let nets: Vec<(IpAddr, u8)> = trusted
        .iter()
        .filter_map(|t| Some((t, t.parse::<IpNet>().ok()?)))
        .map(|(raw, net)| {
            let shown = net.to_string();
            // An IPv4-mapped entry prints as the IPv4 network it maps.
            assert_eq!(
                shown.parse::<IpNet>(),
                Ok(net),
                "{raw:?} parsed to {net:?}, printed as {shown:?}"
            );
            let (addr, prefix) = shown.split_once('/').expect("printed as addr/prefix");
            (
                addr.parse().expect("an address"),
                prefix.parse().expect("a prefix length"),
            )
        })
        .collect();

    let got = client_ip(peer, &forwarded, &trusted);
    let peer_ip = peer.ip().to_canonical();
    if client_ip(peer, &forwarded, &[]) != peer_ip {
        panic!("with nothing trusted the header was believed");
    }
    if !nets.iter().any(|net| contains(*net, peer_ip)) {
        assert_eq!(got, peer_ip, "an untrusted peer's header was believed");
    }
    if got != peer_ip {
        let written = forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .any(|hop| hop_ip(hop) == Some(got));
        assert!(written, "{got} is neither the peer nor in {forwarded:?}");
    }
    assert_eq!(
        got,
        restated(peer_ip, &forwarded, &nets),
        "peer {peer_ip}, trusted {trusted:?}, header {forwarded:?}"
    );
});

/// `client_ip` restated: from the trusted peer leftwards, while the address at hand is a
/// trusted proxy, take the hop before it; a hop that is not an address ends the walk.
fn restated(peer: IpAddr, forwarded: &[&str], nets: &[(IpAddr, u8)]) -> IpAddr {
    let trusted = |ip: IpAddr| nets.iter().any(|net| contains(*net, ip));
    let hops: Vec<&str> = forwarded
        .iter()
        // Values an HTTP parser would refuse are not sent, and only visible ASCII is read.
        .filter(|v| v.bytes().all(|b| (b' '..=b'~').contains(&b) || b == b'\t'))
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        if !trusted(client) {
            break;
        }
        match hop_ip(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// A hop as an address: `ip` or `ip:port`, IPv4-mapped IPv6 read as IPv4.
fn hop_ip(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// Whether `ip` is in the network: the same family and the same leading `prefix` bits
/// (the network as printed, so an IPv4-mapped entry is its IPv4 network).
fn contains((net, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    // The network as the server holds it: a mapped one wider than /96 stays IPv6 and
    // contains no IPv4 client.
    let (net, ip, width) = match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(n.to_bits()), u128::from(i.to_bits()), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix).min(width);
    let mask = |x: u128| {
        if prefix == 0 {
            0
        } else {
            x >> (width - prefix)
        }
    };
    mask(net) == mask(ip)
}
