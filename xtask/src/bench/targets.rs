//! `cargo xtask bench targets`: the table of targets in one session, every
//! figure measured for Huddle and for the floor (`loadgen floor`) with the same clients
//! and steps, alternating which goes first, and given as a ratio Huddle / floor.
//!
//! One room of N (default 5,000): the ramp of [`STEPS`] gives the server CPU at 50k
//! deliveries/s, the RSS per connection (from that step's set-up) and the highest
//! deliveries/s with p99 ≤ 100 ms; the step at 500k/s offered is run for a server whose
//! ramp stopped before it. Then idle connections in rooms of 10 (default 10,000, at most
//! what the open-files limit allows) give the RSS per idle connection.

use anyhow::Result;
use serde_json::json;

use super::{idle_run, one_room_run, ramp, ratio, Bench, BenchArgs, Numbers, Ramp, Server};

/// Offered deliveries/s of the ramp (one room of N, 10 senders).
const STEPS: [f64; 10] = [
    50e3, 100e3, 150e3, 200e3, 250e3, 300e3, 400e3, 500e3, 750e3, 1e6,
];
/// The load the issue asks to hold without loss.
const HIGH: f64 = 500e3;
/// The room size of the fan-out targets.
const ROOM: usize = 5_000;
/// Idle connections (rooms of 10) for the RSS per idle connection.
const IDLE: usize = 10_000;

pub(super) fn targets(b: &Bench<'_>, args: &BenchArgs) -> Result<()> {
    let (n, steps, high, idle_n) = if args.quick {
        (args.n.unwrap_or(500), vec![10e3, 50e3], 100e3, 1_000)
    } else {
        (args.n.unwrap_or(ROOM), STEPS.to_vec(), HIGH, IDLE)
    };
    let steps = if args.offered.is_empty() {
        steps
    } else {
        args.offered.clone()
    };
    let window = args.window();
    let n = n.min(b.max_connections());
    let idle_n = idle_n.min(b.max_connections());

    println!("\ntargets: one room of {n}, ramp {steps:?} deliveries/s, {window} s windows");
    let mut ramps = ramp(b, "targets", n, &steps, window)?;
    // The high point, for any server whose ramp ended before reaching it.
    for server in b.servers(steps.len()) {
        let Some(r) = ramps.iter_mut().find(|r| r.server == server) else {
            continue;
        };
        if !r.points.iter().any(|(o, _)| (o - high).abs() < 1.0) {
            let report = one_room_run(b, server, "targets", n, high, window)?;
            r.points.push((high, Numbers::of(&report)));
        }
    }

    println!("\ntargets: {idle_n} idle connections in rooms of 10");
    let mut idle = Vec::new();
    for server in b.servers(1) {
        let report = idle_run(b, server, "targets", idle_n, window, 1)?;
        b.record_of(
            server,
            "targets",
            &json!({"idle": idle_n, "rooms_of": 10}),
            &report,
        )?;
        idle.push((server, Numbers::of(&report)));
    }

    let of = |server: Server| ramps.iter().find(|r| r.server == server);
    let idle_of = |server: Server| idle.iter().find(|(s, _)| *s == server).map(|(_, r)| r);
    let (h, f) = (of(Server::Huddle), of(Server::Floor));
    let (hi, fi) = (idle_of(Server::Huddle), idle_of(Server::Floor));

    let cpu = |r: Option<&Ramp>| r.and_then(|r| r.at_50k.as_ref()).map(|x| x.server_cpu);
    let best = |r: Option<&Ramp>| r.and_then(|r| r.best).map(|x| x.0);
    let at_high = |r: Option<&Ramp>| {
        r.and_then(|r| r.points.iter().find(|(o, _)| (o - high).abs() < 1.0))
            .map(|(_, x)| x.clone())
    };
    let rss = |r: Option<&Ramp>| {
        r.and_then(|r| r.points.first())
            .map(|(_, x)| x.rss_per_conn)
    };
    let idle_rss = |r: Option<&Numbers>| r.map(|x| x.rss_per_conn);

    let pct = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1} %"));
    let rate = |v: Option<f64>| v.map_or("none".to_owned(), |v| format!("{v:.0}/s"));
    let bytes = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0} B"));
    let high_text = |x: &Option<Numbers>| match x {
        Some(x) => format!(
            "{:.0}/s, lost {} dup {} undelivered {}, p99 {:.1} ms (loadgen CPU {:.0} %)",
            x.delivered_per_s, x.lost, x.duplicated, x.undelivered, x.p99_ms, x.loadgen_cpu
        ),
        None => "—".to_owned(),
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "missed",
        None => "not measured",
    };
    let cpu_ratio = cpu(h).zip(cpu(f)).map(|(a, b)| a / b);
    let best_ratio = best(h).zip(best(f)).map(|(a, b)| a / b);
    let (hh, fh) = (at_high(h), at_high(f));
    let high_ok = hh
        .as_ref()
        .map(|x| x.ready == n as u64 && x.disconnected == 0 && x.lossless && x.p99_ms <= 200.0);

    println!();
    println!(
        "targets summary: one room of {n} (server on CPU 0, loadgen on CPU 1), {window} s \
         windows, one session; ratio = huddle / floor"
    );
    let row = |figure: &str, hv: String, fv: String, r: String, target: &str, ok: &str| {
        println!(
            "  {figure:<44} huddle {hv:<14} floor {fv:<14} ratio {r:<7} target {target} → {ok}"
        );
    };
    row(
        "server CPU at 50k deliveries/s",
        pct(cpu(h)),
        pct(cpu(f)),
        ratio(cpu(h), cpu(f)),
        "≤ 1.2× the floor",
        verdict(cpu_ratio.map(|r| r <= 1.2)),
    );
    row(
        "highest deliveries/s with p99 ≤ 100 ms",
        rate(best(h)),
        rate(best(f)),
        ratio(best(h), best(f)),
        "≥ 250,000/s and ≥ 0.8× the floor",
        verdict(match (best(h), best_ratio) {
            (Some(v), Some(r)) => Some(v >= 250e3 && r >= 0.8),
            (None, _) => Some(false),
            _ => None,
        }),
    );
    println!(
        "  {:<44} huddle {}\n  {:<44} floor  {}\n  {:<44} target 0 lost, p99 ≤ 200 ms → {}",
        format!("at {high:.0}/s offered"),
        high_text(&hh),
        "",
        high_text(&fh),
        "",
        verdict(high_ok)
    );
    row(
        &format!("server RSS per connection, room of {n}"),
        bytes(rss(h)),
        bytes(rss(f)),
        ratio(rss(h), rss(f)),
        "≤ 10 KiB (10,240 B)",
        verdict(rss(h).map(|v| v <= 10_240.0)),
    );
    row(
        &format!("RSS per idle connection, {idle_n} in rooms of 10"),
        bytes(idle_rss(hi)),
        bytes(idle_rss(fi)),
        ratio(idle_rss(hi), idle_rss(fi)),
        "≤ 6 KiB (6,144 B)",
        verdict(idle_rss(hi).map(|v| v <= 6_144.0)),
    );
    for r in &ramps {
        println!("  ramp, {}", r.line());
    }
    Ok(())
}
