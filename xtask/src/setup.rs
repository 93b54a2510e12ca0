//! What building and testing Huddle needs: `cargo xtask setup` installs it, and
//! `cargo xtask test` only checks it ([`check`]), naming what is missing and the command
//! that installs it, since a test run should never install system packages as root.
//!
//! Every step first checks whether it is already satisfied and prints one line
//! (`ok: …`, `installing: …`, `missing: …` or `skip: …`), so a second run takes seconds.
//! Versions are pinned where a mismatch breaks the build; the reason is next to each pin.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::Ctx;

/// The Rust target the web app is compiled to.
pub(crate) const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Trunk 0.22 needs a newer rustc than the project's toolchain (1.95); 0.21.14 works.
const TRUNK_VERSION: &str = "0.21.14";

/// binaryen's wasm-opt, installed from npm into `target/tools`. Debian's binaryen (108)
/// produces broken modules from current wasm-bindgen output, so never use the system one.
/// Trunk.toml pins `wasm_opt = "version_132"` to match.
const BINARYEN_MAJOR: &str = "132";
const BINARYEN_NPM: &str = "binaryen@132.0.0";

/// A system package (installed with apt-get on Debian) and what shows it is present.
/// To require another package, add one entry here.
struct SystemPackage {
    /// The Debian package name.
    apt: &'static str,
    /// A command the package puts on `PATH`, or (starting with `/`) a file it installs.
    command: &'static str,
    /// What it is for, shown when it is missing and cannot be installed here.
    purpose: &'static str,
}

impl SystemPackage {
    fn is_present(&self, ctx: &Ctx) -> bool {
        if self.command.starts_with('/') {
            std::path::Path::new(self.command).exists()
        } else {
            ctx.which(self.command).is_some()
        }
    }
}

const SYSTEM_PACKAGES: &[SystemPackage] = &[
    SystemPackage {
        apt: "chromium",
        command: "chromium",
        purpose: "browser for the end-to-end tests",
    },
    SystemPackage {
        apt: "chromium-driver",
        command: "chromedriver",
        purpose: "WebDriver for the end-to-end tests",
    },
    // Tests start their own servers on free ports; a server the package may start on
    // 6379 is never used.
    SystemPackage {
        apt: "redis-server",
        command: REDIS_SERVER,
        purpose: "Redis for the multi-instance tests",
    },
    // Without a colour emoji font, Chromium draws reactions as empty boxes in the
    // screenshots the README shows.
    SystemPackage {
        apt: "fonts-noto-color-emoji",
        command: "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
        purpose: "emoji in the browser tests' screenshots",
    },
];

/// The command the Redis tests and `cargo xtask cluster` start.
pub(crate) const REDIS_SERVER: &str = "redis-server";

/// Whether a step installs what is missing or only reports it.
enum Mode {
    Install,
    /// Collects what is missing, each with the way to get it.
    Check(Vec<String>),
}

impl Mode {
    /// Records that `what` is missing; true when the step should install it now.
    fn lacks(&mut self, what: String) -> bool {
        match self {
            Mode::Install => true,
            Mode::Check(missing) => {
                missing.push(what);
                false
            }
        }
    }
}

/// Runs every setup step in order; fails at the first one that cannot be satisfied.
pub(crate) fn setup(ctx: &Ctx) -> Result<()> {
    steps(ctx, &mut Mode::Install)
}

/// Checks that everything `setup` installs is present, installing nothing; fails with
/// the list of what is missing.
pub(crate) fn check(ctx: &Ctx) -> Result<()> {
    let mut mode = Mode::Check(Vec::new());
    steps(ctx, &mut mode)?;
    match mode {
        Mode::Check(missing) if !missing.is_empty() => bail!(
            "missing:\n  - {}\nrun `cargo xtask setup` to install them (as root, or with the \
             apt-get command it prints, for the system packages); every test needs them",
            missing.join("\n  - ")
        ),
        _ => Ok(()),
    }
}

fn steps(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    system_packages(ctx, mode)?;
    rust_toolchain(ctx, mode)?;
    // Before reading the wasm-bindgen version from Cargo.lock: fetching also brings the
    // lock file up to date, and Trunk runs cargo with `--offline`. Downloading crates
    // needs no privileges, so a check does it too.
    cargo_fetch(ctx)?;
    trunk(ctx, mode)?;
    wasm_bindgen_cli(ctx, mode)?;
    binaryen(ctx, mode)?;
    nginx(ctx, mode)?;
    Ok(())
}

/// The nginx binary for the load-balancer test and `cargo xtask cluster`: `nginx` on
/// PATH, else the one [`nginx`] unpacked into `target/tools`.
pub(crate) fn nginx_binary(ctx: &Ctx) -> Option<PathBuf> {
    ctx.which("nginx").or_else(|| {
        let unpacked = unpacked_nginx(ctx);
        ctx.probe(ctx.cmd(&unpacked).arg("-v")).map(|_| unpacked)
    })
}

fn unpacked_nginx(ctx: &Ctx) -> PathBuf {
    ctx.tools_dir().join("nginx/usr/sbin/nginx")
}

/// nginx, unpacked from Debian's package into `target/tools` rather than installed:
/// installing it would start a system nginx on port 80, and unpacking needs no root.
/// Only the binary is used, with our own configuration and prefix directory.
fn nginx(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    if let Some(found) = nginx_binary(ctx) {
        println!("ok: nginx ({})", found.display());
        return Ok(());
    }
    let what = "nginx (the load balancer of the cluster test and `cargo xtask cluster`)";
    if !mode.lacks(what.to_owned()) {
        return Ok(());
    }
    if ctx.which("apt-get").is_none() || ctx.which("dpkg-deb").is_none() {
        bail!("{what} is missing: install it with your system's package manager");
    }
    println!("installing: nginx (Debian package, unpacked into target/tools)");
    let download = ctx.tools_dir().join("nginx-deb");
    fs::create_dir_all(&download)
        .with_context(|| format!("cannot create {}", download.display()))?;
    let fetch = |ctx: &Ctx| {
        ctx.probe(
            ctx.cmd("apt-get")
                .args(["download", "nginx"])
                .current_dir(&download),
        )
    };
    if fetch(ctx).is_none() {
        // A fresh machine may have no package lists yet.
        ctx.run(
            ctx.cmd("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("`apt-get update` failed (needed to download nginx): see the output above")?;
        fetch(ctx).context("`apt-get download nginx` failed; run it by hand to see why")?;
    }
    let deb = fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("`apt-get download nginx` left no .deb behind")?;
    ctx.run(
        ctx.cmd("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(ctx.tools_dir().join("nginx")),
    )
    .context("unpacking the nginx package failed: see the output above")?;
    fs::remove_dir_all(&download).ok();
    let unpacked = unpacked_nginx(ctx);
    match ctx.probe(ctx.cmd(&unpacked).arg("-v")) {
        Some(version) => println!("ok: {version}"),
        None => bail!(
            "{} does not run (a missing shared library?); install nginx with apt-get instead",
            unpacked.display()
        ),
    }
    Ok(())
}

/// Commands of [`SYSTEM_PACKAGES`] that are not on `PATH`.
fn missing_system_commands(ctx: &Ctx) -> Vec<&'static str> {
    SYSTEM_PACKAGES
        .iter()
        .filter(|p| !p.is_present(ctx))
        .map(|p| p.command)
        .collect()
}

fn system_packages(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    let (present, missing): (Vec<_>, Vec<_>) =
        SYSTEM_PACKAGES.iter().partition(|p| p.is_present(ctx));
    for p in &present {
        println!("ok: {} ({} is there)", p.apt, p.command);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut install = false;
    for p in &missing {
        install |= mode.lacks(format!(
            "{} ({}; Debian package `{}`)",
            p.command, p.purpose, p.apt
        ));
    }
    if !install {
        return Ok(());
    }

    let names: Vec<&str> = missing.iter().map(|p| p.apt).collect();
    let apt_args = ["install", "-y", "--no-install-recommends"];
    let has_apt = ctx.which("apt-get").is_some();
    let is_root = ctx.probe(ctx.cmd("id").arg("-u")).as_deref() == Some("0");

    if has_apt && is_root {
        println!("installing: {} (apt-get)", names.join(" "));
        ctx.run(
            ctx.cmd("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("`apt-get update` failed: see the output above (is the network up?)")?;
        ctx.run(
            ctx.cmd("apt-get")
                .args(apt_args)
                .args(&names)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .with_context(|| {
            format!(
                "installing {} failed: see the output above",
                names.join(" ")
            )
        })?;
        let still_missing = missing_system_commands(ctx);
        if !still_missing.is_empty() {
            bail!(
                "apt-get installed {} but {} is still not there",
                names.join(" "),
                still_missing.join(", ")
            );
        }
        println!("ok: {}", names.join(" "));
    } else if has_apt {
        bail!(
            "{} missing and this is not root, so not installing; run:\n    \
             sudo apt-get update && sudo apt-get {} {}",
            names.join(" "),
            apt_args.join(" "),
            names.join(" ")
        );
    } else {
        bail!(
            "{} missing: install them with your system's package manager",
            names.join(" ")
        );
    }
    Ok(())
}

fn rust_toolchain(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    const RUSTUP_HINT: &str = "`rustup` not found: install Rust with rustup (https://rustup.rs)";

    let targets = ctx
        .probe(ctx.cmd("rustup").args(["target", "list", "--installed"]))
        .context(RUSTUP_HINT)?;
    if targets.lines().any(|t| t.trim() == WASM_TARGET) {
        println!("ok: rust target {WASM_TARGET}");
    } else if mode.lacks(format!("the rust target {WASM_TARGET}")) {
        println!("installing: rust target {WASM_TARGET}");
        ctx.run(ctx.cmd("rustup").args(["target", "add", WASM_TARGET]))
            .with_context(|| {
                format!(
                    "adding the {WASM_TARGET} target failed: try `rustup target add {WASM_TARGET}`"
                )
            })?;
    }

    // `cargo xtask test` runs rustfmt and clippy; a minimal rustup profile lacks both.
    let components = ctx
        .probe(ctx.cmd("rustup").args(["component", "list", "--installed"]))
        .context(RUSTUP_HINT)?;
    for component in ["rustfmt", "clippy"] {
        let prefix = format!("{component}-");
        if components.lines().any(|c| c.trim().starts_with(&prefix)) {
            println!("ok: rust component {component}");
        } else if mode.lacks(format!("the rust component {component}")) {
            println!("installing: rust component {component}");
            ctx.run(ctx.cmd("rustup").args(["component", "add", component]))
                .with_context(|| {
                    format!("adding {component} failed: try `rustup component add {component}`")
                })?;
        }
    }
    Ok(())
}

fn cargo_fetch(ctx: &Ctx) -> Result<()> {
    ctx.run(ctx.cargo().arg("fetch")).context(
        "`cargo fetch` failed: see the output above (is the network or registry reachable?)",
    )?;
    println!("ok: crates fetched");
    Ok(())
}

fn trunk(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    let wanted = format!("trunk {TRUNK_VERSION}");
    let found = ctx.probe(ctx.cmd("trunk").arg("--version"));
    if found.as_deref() == Some(wanted.as_str()) {
        println!("ok: {wanted}");
        return Ok(());
    }
    let what = format!("{wanted} (found: {})", found.as_deref().unwrap_or("none"));
    if !mode.lacks(what) {
        return Ok(());
    }
    println!(
        "installing: {wanted} (found: {}; a cargo install, about 7 minutes)",
        found.as_deref().unwrap_or("none")
    );
    let install = ["install", "--locked", "trunk", "--version", TRUNK_VERSION];
    ctx.run(ctx.cargo().args(install)).with_context(|| {
        format!(
            "trunk install failed: see the output above; try `cargo {}`",
            install.join(" ")
        )
    })?;
    check_installed(ctx, "trunk", &wanted)
}

fn wasm_bindgen_cli(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    let lock_path = ctx.root.join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {}: run `cargo fetch`", lock_path.display()))?;
    let version = match locked_versions(&lock, "wasm-bindgen").as_slice() {
        [] => {
            println!("skip: wasm-bindgen-cli (no crate depends on wasm-bindgen in Cargo.lock yet)");
            return Ok(());
        }
        [one] => one.clone(),
        several => bail!(
            "Cargo.lock has several wasm-bindgen versions ({}); the CLI can match only one: \
             pin `wasm-bindgen = \"=<version>\"` in frontend/Cargo.toml",
            several.join(", ")
        ),
    };

    // The CLI must be exactly the library's version, or Trunk's wasm-bindgen step fails.
    let wanted = format!("wasm-bindgen {version}");
    let found = ctx.probe(ctx.cmd("wasm-bindgen").arg("--version"));
    if found.as_deref() == Some(wanted.as_str()) {
        println!("ok: {wanted} (wasm-bindgen-cli, as in Cargo.lock)");
        return Ok(());
    }
    let what = format!(
        "wasm-bindgen-cli {version}, as in Cargo.lock (found: {})",
        found.as_deref().unwrap_or("none")
    );
    if !mode.lacks(what) {
        return Ok(());
    }
    println!(
        "installing: wasm-bindgen-cli {version} to match Cargo.lock (found: {}; about 3 minutes)",
        found.as_deref().unwrap_or("none")
    );
    // Deliberately without `--locked`: wasm-bindgen-cli's own lock file pins a
    // webpki-roots version that the registry no longer serves.
    let install = ["install", "wasm-bindgen-cli", "--version", &version];
    ctx.run(ctx.cargo().args(install)).with_context(|| {
        format!(
            "wasm-bindgen-cli install failed: see the output above; try `cargo {}`",
            install.join(" ")
        )
    })?;
    check_installed(ctx, "wasm-bindgen", &wanted)
}

fn binaryen(ctx: &Ctx, mode: &mut Mode) -> Result<()> {
    let tools = ctx.tools_dir();
    let wasm_opt = tools.join("node_modules").join(".bin").join("wasm-opt");
    let wanted = format!("version {BINARYEN_MAJOR}");
    let found = ctx.probe(ctx.cmd(&wasm_opt).arg("--version"));
    if found.as_deref().is_some_and(|v| v.contains(&wanted)) {
        println!("ok: wasm-opt {wanted} (binaryen in target/tools)");
        return Ok(());
    }
    if !mode.lacks(format!("wasm-opt {wanted} (binaryen, in target/tools)")) {
        return Ok(());
    }
    println!("installing: {BINARYEN_NPM} into target/tools (npm)");
    if ctx.which("npm").is_none() {
        bail!("npm not found: install Node.js and npm (needed to install binaryen's wasm-opt)");
    }
    fs::create_dir_all(&tools).with_context(|| format!("cannot create {}", tools.display()))?;
    ctx.run(
        ctx.cmd("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&tools)
            .arg(BINARYEN_NPM),
    )
    .with_context(|| {
        format!(
            "binaryen install failed: see the output above; try `npm install --prefix {} {BINARYEN_NPM}`",
            tools.display()
        )
    })?;
    let found = ctx
        .probe(ctx.cmd(&wasm_opt).arg("--version"))
        .unwrap_or_default();
    if !found.contains(&wanted) {
        bail!(
            "{} reports `{found}` after installing {BINARYEN_NPM}",
            wasm_opt.display()
        );
    }
    println!("ok: wasm-opt {wanted}");
    Ok(())
}

/// After an install: the tool on our `PATH` must now report the wanted version.
fn check_installed(ctx: &Ctx, program: &str, wanted: &str) -> Result<()> {
    let found = ctx.probe(ctx.cmd(program).arg("--version"));
    match found {
        Some(v) if v == wanted => {
            println!("ok: {wanted}");
            Ok(())
        }
        other => bail!(
            "after installing, `{program} --version` reports `{}` instead of `{wanted}`: \
             another {program} earlier on PATH? (cargo's bin directory should come first)",
            other.as_deref().unwrap_or("nothing")
        ),
    }
}

/// The versions of package `name` in a `Cargo.lock`.
fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    lock.split("[[package]]")
        .skip(1)
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|line| {
                    let value = line
                        .trim()
                        .strip_prefix(key)?
                        .trim_start()
                        .strip_prefix('=')?;
                    Some(value.trim().trim_matches('"'))
                })
            };
            (field("name")? == name)
                .then(|| field("version"))
                .flatten()
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::locked_versions;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "wasm-bindgen-macro",
]

[[package]]
name = "wasm-bindgen-macro"
version = "0.2.130"
dependencies = [
 "wasm-bindgen",
]

[[package]]
name = "web-sys"
version = "0.3.77"
"#;

    #[test]
    fn finds_exactly_the_named_package() {
        assert_eq!(locked_versions(LOCK, "wasm-bindgen"), ["0.2.130"]);
        assert_eq!(locked_versions(LOCK, "web-sys"), ["0.3.77"]);
        assert!(locked_versions(LOCK, "leptos").is_empty());
    }

    #[test]
    fn reports_every_version_of_a_duplicated_package() {
        let lock = format!("{LOCK}\n[[package]]\nname = \"web-sys\"\nversion = \"0.3.80\"\n");
        assert_eq!(locked_versions(&lock, "web-sys"), ["0.3.77", "0.3.80"]);
    }
}
