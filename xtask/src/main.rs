//! `cargo xtask`: the project's one entry point for setting up, building, running and
//! testing Huddle.
//!
//! Why this exists: building Huddle needs more than `cargo build` (a WebAssembly target,
//! Trunk, a wasm-bindgen CLI matching `Cargo.lock`, a working wasm-opt, Chromium for the
//! browser tests). Instead of a Makefile or shell scripts that drift out of sync with each
//! other and with CI, every workflow is a Rust program run through cargo (the alias lives
//! in `.cargo/config.toml`). CI runs `cargo xtask test`, exactly what the README tells a
//! person to run.
//!
//! Commands (see `cargo xtask --help`):
//! - `setup`: install whatever is missing; each step is skipped when already satisfied.
//! - `web`: build the web app into `dist/` and precompress it (`.br`, `.gz`).
//! - `run`: build everything and run the server on <http://127.0.0.1:3000>.
//! - `dist`: build the release server binary, which embeds `dist/`.
//! - `test`: checks the tools are there (installing nothing), then formatting, lints, the
//!   web bundle and every test, stopping at the first failure.
//! - `cluster`: Redis, three release instances and nginx in front, to try scale-out.
//! - `bench`: the benchmark scenarios of BENCHMARKS.md (release server + `loadgen`).
//! - `fuzz`: run every fuzz target (or one) for a bounded time (not part of `test`).

mod bench;
mod cluster;
mod fuzz;
mod process;
mod setup;
mod web;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

/// Where `huddle` listens for `cargo xtask run`.
const RUN_ADDR: &str = "127.0.0.1:3000";
/// The SQLite database `cargo xtask run` uses (ignored by git).
const RUN_DB: &str = "huddle.db";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Huddle's build, run and test tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install missing tools (Chromium, wasm32 target, Trunk, wasm-bindgen, wasm-opt) and fetch crates.
    Setup,
    /// Set up, build the web app into dist/ with Trunk, and precompress it.
    Web,
    /// Set up, build the web app and the server, and run the server on 127.0.0.1:3000.
    Run {
        /// Extra arguments for `huddle`, after `--` (e.g. `cargo xtask run -- --help`).
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Set up, build the web app and the release server binary (which embeds dist/).
    Dist,
    /// Check the tools are installed (see `setup`), then formatting, clippy, the web app
    /// and every test, the browser and Redis ones included.
    Test,
    /// Run a local cluster: Redis, three instances on 127.0.0.1:3001-3003 and nginx on 3000.
    Cluster,
    /// Benchmark a release server with `loadgen`: fanout, idle, rooms, durable, cluster,
    /// signins, alerts or pushes (see BENCHMARKS.md); results go to
    /// target/bench/results.jsonl.
    Bench(bench::BenchArgs),
    /// Fuzz what attackers reach (cargo-fuzz, nightly), each target for a bounded time.
    Fuzz {
        /// How long to fuzz each target, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (decode, origin, forwarded, bearer, text, event_id or session).
        #[arg(long)]
        target: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match Ctx::new().and_then(|ctx| dispatch(&ctx, cli.task)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Our own report, not anyhow's `Debug` one: no backtrace even when
            // RUST_BACKTRACE is set, since the cause is always a failed step, not a bug.
            eprintln!();
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn dispatch(ctx: &Ctx, task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::setup(ctx),
        Task::Web => {
            setup::setup(ctx)?;
            web::build(ctx)
        }
        Task::Run { args } => run_server(ctx, &args),
        Task::Dist => dist(ctx),
        Task::Test => test(ctx),
        Task::Cluster => cluster::cluster(ctx),
        Task::Bench(args) => bench::bench(ctx, &args),
        Task::Fuzz { seconds, target } => fuzz::fuzz(ctx, seconds, target.as_deref()),
    }
}

/// `cargo xtask run`: build everything, then run the debug server in the foreground.
fn run_server(ctx: &Ctx, extra_args: &[OsString]) -> Result<()> {
    setup::setup(ctx)?;
    web::build(ctx)?;
    ctx.run(
        ctx.cargo()
            .args(["build", "-p", "backend", "--bin", "huddle"]),
    )
    .context("building the server failed: see the compiler output above")?;

    let huddle = ctx.target_dir().join("debug").join(exe("huddle"));
    println!();
    println!("Huddle is running at http://{RUN_ADDR} (Ctrl-C stops it)");
    println!();
    // The terminal sends Ctrl-C's SIGINT to the whole foreground process group, so the
    // server receives it directly and shuts down on its own; we only wait for it.
    let status = ctx
        .cmd(&huddle)
        .args(["--addr", RUN_ADDR, "--db", RUN_DB])
        .args(extra_args)
        .status()
        .with_context(|| format!("could not start {}", huddle.display()))?;
    if !status.success() && !killed_by_signal(status) {
        bail!("huddle exited with {status}");
    }
    Ok(())
}

/// `cargo xtask dist`: the single self-contained release binary.
fn dist(ctx: &Ctx) -> Result<()> {
    setup::setup(ctx)?;
    web::build(ctx)?;
    ctx.run(
        ctx.cargo()
            .args(["build", "--release", "-p", "backend", "--bin", "huddle"]),
    )
    .context("building the release server failed: see the compiler output above")?;

    let huddle = ctx.target_dir().join("release").join(exe("huddle"));
    let size = fs::metadata(&huddle)
        .with_context(|| format!("{} is missing after the build", huddle.display()))?
        .len();
    let shown = huddle.strip_prefix(&ctx.root).unwrap_or(&huddle);
    println!();
    println!(
        "release binary: {} ({} bytes, {:.1} MiB; the web app is embedded)",
        shown.display(),
        web::thousands(size),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// `cargo xtask test`: everything CI checks, in order, stopping at the first failure.
fn test(ctx: &Ctx) -> Result<()> {
    type Step<'a> = (&'a str, Box<dyn Fn() -> Result<()> + 'a>);

    let steps: Vec<Step<'_>> = vec![
        // Checks only: installing (as root, for the system packages) is `setup`'s job.
        // Every test runs, so everything must be here.
        ("tools", Box::new(|| setup::check(ctx))),
        (
            "cargo fmt --check",
            Box::new(|| {
                ctx.run(ctx.cargo().args(["fmt", "--all", "--", "--check"]))
                    .context("code is not formatted: run `cargo fmt --all` and commit the result")
            }),
        ),
        (
            "cargo clippy",
            Box::new(|| {
                ctx.run(ctx.cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
                .context("clippy found problems: fix the warnings above")
            }),
        ),
        (
            "cargo clippy (frontend, wasm32)",
            Box::new(|| {
                ctx.run(ctx.cargo().args([
                    "clippy",
                    "-p",
                    "frontend",
                    "--target",
                    setup::WASM_TARGET,
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
                .context(
                    "clippy found problems in the frontend's wasm32 build: fix the warnings above",
                )
            }),
        ),
        ("web bundle", Box::new(|| web::build(ctx))),
        (
            "browser unit tests (wasm-bindgen-test)",
            Box::new(|| {
                // The wasm32 runner in `.cargo/config.toml`, wasm-bindgen-test-runner, runs
                // them in headless Chromium through chromedriver. No `-q`: the runner
                // rejects `--quiet`.
                ctx.run(ctx.cargo().args([
                    "test",
                    "-p",
                    "frontend",
                    "--target",
                    setup::WASM_TARGET,
                ]))
                .context(
                    "browser unit tests failed: see the output above (frontend/src/dom_tests/; \
                     `cargo xtask setup` installs a wasm-bindgen-test-runner matching Cargo.lock)",
                )
            }),
        ),
        (
            "cargo test",
            Box::new(|| {
                let mut cmd = ctx.cargo();
                // The tests that need Chromium, redis-server or nginx are `#[ignore]`d,
                // so a plain `cargo test` shows them as skipped; here, with the tools
                // checked present, they run too.
                cmd.args(["test", "--workspace", "--", "--include-ignored"]);
                // The load-balancer test's nginx may live in target/tools, off PATH.
                if let Some(nginx) = setup::nginx_binary(ctx) {
                    cmd.env("HUDDLE_NGINX", nginx);
                }
                ctx.run(&mut cmd)
                    .context("tests failed: see the output above")
            }),
        ),
    ];
    let mut times = Vec::new();
    let total = Instant::now();
    let count = steps.len();
    for (i, (name, step)) in steps.into_iter().enumerate() {
        println!();
        println!("==> [{}/{count}] {name}", i + 1);
        let started = Instant::now();
        let result = step();
        let took = started.elapsed();
        times.push((name, took));
        if let Err(err) = result {
            print_times(&times, total.elapsed());
            return Err(err.context(format!(
                "`cargo xtask test` failed at step {}/{count} `{name}` (after {})",
                i + 1,
                fmt_duration(took)
            )));
        }
        println!("<== {name}: ok ({})", fmt_duration(took));
    }
    print_times(&times, total.elapsed());
    println!();
    println!("all checks passed");
    Ok(())
}

fn print_times(times: &[(&str, Duration)], total: Duration) {
    println!();
    println!("step times:");
    for (name, took) in times {
        println!("  {name:<38} {:>9}", fmt_duration(*took));
    }
    println!("  {:<38} {:>9}", "total", fmt_duration(total));
}

fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(unix)]
fn killed_by_signal(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    status.signal().is_some()
}

#[cfg(not(unix))]
fn killed_by_signal(_status: ExitStatus) -> bool {
    false
}

fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// Paths and the environment every child process gets.
pub(crate) struct Ctx {
    /// The workspace root; every command runs from here.
    pub(crate) root: PathBuf,
    /// `PATH` for children: cargo's bin directory and our tools directory come first, so
    /// the tools `setup` installed win over anything older on the system.
    path: OsString,
}

impl Ctx {
    fn new() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask must live one directory below the workspace root")?
            .to_path_buf();
        let mut dirs = vec![
            cargo_home()?.join("bin"),
            Self::tools_dir_in(&root).join("node_modules").join(".bin"),
        ];
        dirs.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        let path = env::join_paths(dirs).context("a PATH entry contains the path separator")?;
        Ok(Self { root, path })
    }

    /// Where npm installs binaryen (`target/tools`; `cargo clean` removes it and `setup`
    /// puts it back).
    pub(crate) fn tools_dir(&self) -> PathBuf {
        Self::tools_dir_in(&self.root)
    }

    fn tools_dir_in(root: &Path) -> PathBuf {
        root.join("target").join("tools")
    }

    /// Cargo's target directory (honours `CARGO_TARGET_DIR`, like cargo does).
    pub(crate) fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }

    /// A command that runs from the workspace root with our `PATH`.
    pub(crate) fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let program = program.as_ref();
        // Resolve through our PATH so freshly installed tools are found first.
        let resolved = self
            .which(program)
            .unwrap_or_else(|| PathBuf::from(program));
        let mut cmd = Command::new(resolved);
        cmd.current_dir(&self.root).env("PATH", &self.path);
        cmd
    }

    /// The cargo that runs us (`$CARGO`), falling back to `cargo` on `PATH`.
    pub(crate) fn cargo(&self) -> Command {
        self.cmd(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    /// Finds an executable on our `PATH` (or returns a path as given if it names one).
    pub(crate) fn which(&self, program: impl AsRef<OsStr>) -> Option<PathBuf> {
        let program = Path::new(program.as_ref());
        if program.components().count() > 1 {
            return program.is_file().then(|| program.to_path_buf());
        }
        env::split_paths(&self.path)
            .map(|dir| {
                let mut name = program.as_os_str().to_owned();
                name.push(env::consts::EXE_SUFFIX);
                dir.join(name)
            })
            .find(|candidate| is_executable(candidate))
    }

    /// Runs a command with inherited stdio; a non-zero exit is an error.
    pub(crate) fn run(&self, cmd: &mut Command) -> Result<()> {
        println!("$ {}", display_cmd(cmd));
        let status = cmd
            .status()
            .with_context(|| format!("could not start `{}`", display_cmd(cmd)))?;
        if !status.success() {
            bail!("`{}` failed ({status})", display_cmd(cmd));
        }
        Ok(())
    }

    /// Runs a command quietly and returns its trimmed stdout (plus stderr), or `None` if it
    /// is missing or fails. Used for "is this already installed?" checks.
    pub(crate) fn probe(&self, cmd: &mut Command) -> Option<String> {
        let out = cmd.stdin(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Some(text.trim().to_owned())
    }
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(dir));
    }
    let home = env::var_os("HOME")
        .or_else(|| env::var_os("USERPROFILE"))
        .context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

fn display_cmd(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    // Show `cargo`/`trunk` rather than the full path we resolved.
    let mut parts = vec![program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}
