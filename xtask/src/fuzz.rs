//! `cargo xtask fuzz`: runs the fuzz targets in `fuzz/fuzz_targets/` ([`TARGETS`]), each
//! for a bounded time: the client frame decoder and validation rules, the Origin/Host
//! checks, `X-Forwarded-For`, the API's bearer header, the web app's link and mention
//! parser (with a time budget), and whole sessions against a real server.
//!
//! cargo-fuzz drives libFuzzer, which needs nightly Rust for its sanitizer flags, so this
//! task installs what is missing first: the nightly toolchain (minimal profile, through
//! rustup) and cargo-fuzz. It is not part of `cargo xtask test`: a fuzz run is worth
//! minutes, and its result depends on luck, so CI runs it as a separate, bounded job.
//!
//! The committed seeds in `fuzz/corpus/<target>/` are read but never written: libFuzzer
//! adds the inputs it discovers to the first corpus directory, which is a working copy
//! under the target directory. A failing input is written to `fuzz/artifacts/<target>/`.

use std::fs;

use anyhow::{bail, Context as _, Result};

use crate::Ctx;

/// Every fuzz target, `fuzz/fuzz_targets/<name>.rs`, in the order they run.
pub(crate) const TARGETS: [&str; 7] = [
    "decode",
    "origin",
    "forwarded",
    "bearer",
    "text",
    "event_id",
    "session",
];

/// Installed when `cargo fuzz` is missing; any installed cargo-fuzz is used as it is.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The toolchain cargo-fuzz builds with: libFuzzer needs `-Zsanitizer` and friends.
const NIGHTLY: &str = "nightly";

/// Installs nightly Rust and cargo-fuzz if missing, then fuzzes `target` (or every
/// target in turn) for `seconds` each.
pub(crate) fn fuzz(ctx: &Ctx, seconds: u64, target: Option<&str>) -> Result<()> {
    if seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let targets: Vec<&str> = match target {
        None => TARGETS.to_vec(),
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!(
            "no fuzz target {t:?}; the targets are {}",
            TARGETS.join(", ")
        ),
    };
    nightly_toolchain(ctx)?;
    cargo_fuzz(ctx)?;
    for target in targets {
        run_target(ctx, target, seconds)?;
    }
    Ok(())
}

fn run_target(ctx: &Ctx, target: &str, seconds: u64) -> Result<()> {
    let fuzz_dir = ctx.root.join("fuzz");
    let seeds = fuzz_dir.join("corpus").join(target);
    if !seeds.is_dir() {
        bail!("the seed corpus {} is missing", seeds.display());
    }
    let target_dir = ctx.target_dir().join("fuzz");
    let work = target_dir.join("corpus").join(target);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let dict = fuzz_dir.join(format!("{target}.dict"));

    println!("fuzzing `{target}` for {seconds} s (seeds: fuzz/corpus/{target}/)");
    let mut cmd = ctx.cmd("rustup");
    cmd.args(["run", NIGHTLY, "cargo", "fuzz", "run", "--fuzz-dir"])
        .arg(&fuzz_dir)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // One input taking this long is a hang, which is a bug like a crash.
        .arg("-timeout=20")
        .arg("-print_final_stats=1");
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    if target == "text" {
        // Long messages are where a slower-than-linear parser shows.
        cmd.arg("-max_len=16384");
    }
    // The stable cargo that runs xtask must not leak into the nightly build.
    cmd.env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    ctx.run(&mut cmd).with_context(|| {
        format!(
            "the fuzzer stopped with a failure (or could not build: see the output above). \
             A failing input is saved in fuzz/artifacts/{target}/; reproduce it with \
             `rustup run {NIGHTLY} cargo fuzz run {target} fuzz/artifacts/{target}/<file>`, \
             then add it to fuzz/corpus/{target}/ once fixed"
        )
    })?;
    println!();
    println!(
        "fuzzing `{target}` found nothing in {seconds} s; the inputs it discovered are in {}",
        work.strip_prefix(&ctx.root).unwrap_or(&work).display()
    );
    Ok(())
}

fn nightly_toolchain(ctx: &Ctx) -> Result<()> {
    let installed = ctx
        .probe(ctx.cmd("rustup").args(["toolchain", "list"]))
        .context(
            "`rustup` not found: cargo-fuzz needs nightly Rust through rustup (https://rustup.rs)",
        )?;
    if installed.lines().any(|t| t.starts_with("nightly-")) {
        println!("ok: {NIGHTLY} toolchain");
        return Ok(());
    }
    println!("installing: {NIGHTLY} toolchain (minimal profile)");
    let install = ["toolchain", "install", NIGHTLY, "--profile", "minimal"];
    ctx.run(ctx.cmd("rustup").args(install)).with_context(|| {
        format!(
            "installing nightly Rust failed (is static.rust-lang.org reachable?); \
             run `rustup {}` where it is, then `cargo xtask fuzz` again",
            install.join(" ")
        )
    })
}

fn cargo_fuzz(ctx: &Ctx) -> Result<()> {
    if let Some(found) = ctx.probe(ctx.cargo().args(["fuzz", "--version"])) {
        println!("ok: {found}");
        return Ok(());
    }
    println!("installing: cargo-fuzz {CARGO_FUZZ_VERSION} (a cargo install, about a minute)");
    let install = [
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
    ];
    ctx.run(ctx.cargo().args(install)).with_context(|| {
        format!(
            "installing cargo-fuzz failed: see the output above; try `cargo {}`",
            install.join(" ")
        )
    })
}
