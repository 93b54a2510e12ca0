//! The `huddle` binary: parse flags, set up logging, bind, and run until a stop signal.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use backend::LogFormat;
use backend::{shutdown_signal, Command, Config, RunError, UserCommand};

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help and --version
        Err(e) => {
            // clap's first line says what is wrong; the rest is usage we point to instead.
            let rendered = e.to_string();
            let what = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            eprintln!("huddle: error: {what}; run `huddle --help` to see every flag");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::User {
        action: UserCommand::Add { name },
    }) = &config.command
    {
        return add_user(&config, name);
    }
    // A TLS or sign-in key setting that cannot work is a configuration error like a bad
    // flag: say so before anything starts. `run` loads the files again when it starts.
    if let Err(e) = backend::check_tls(&config) {
        eprintln!("huddle: error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = backend::check_jwt(&config) {
        eprintln!("huddle: error: {e}");
        return ExitCode::from(2);
    }
    init_logging(&config);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle: error: {e:#}");
            // An unusable --redis is a configuration error, like a bad flag.
            if matches!(e.downcast_ref::<RunError>(), Some(RunError::Redis { .. })) {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// `huddle user add NAME`, the password from the first line of standard input.
fn add_user(config: &Config, name: &str) -> ExitCode {
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("huddle: error: cannot read the password from standard input: {e}");
        return ExitCode::from(2);
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("huddle: error: no password on standard input; run `printf '%s\\n' \"$PASSWORD\" | huddle user add {name}`");
        return ExitCode::from(2);
    }
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|rt| {
            rt.block_on(backend::add_user(config, name, password))
                .map_err(anyhow::Error::new)
        });
    match result {
        Ok(()) => {
            println!("huddle: account {name:?} created");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("huddle: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stdout, one line per event, as text or JSON (`--log-format`). Colours only
/// on a terminal: in a file or the journal escape sequences are noise, and a log free of
/// them makes any that a client smuggled in stand out.
fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match config.log_format {
        LogFormat::Pretty => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        // Event fields at the top level next to `message`; the innermost span (the
        // connection: `{"name":"conn","id":…,"peer":…}`) under `span`.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let addr = config.addr;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let fix = match e.kind() {
                std::io::ErrorKind::AddrInUse => "another process is listening there; stop it or pick another address with --addr",
                std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges; pick another port with --addr",
                _ => "check the address given with --addr",
            };
            anyhow::anyhow!("cannot listen on {addr}: {e}; {fix}")
        })?;
        let db = config.db.clone();
        backend::run(listener, config, shutdown_signal())
            .await
            .map_err(|e| match e {
                RunError::Store(e) => anyhow::Error::new(e).context(format!(
                    "pick a writable file with --db (the directory {} must exist and be writable)",
                    db.parent().filter(|p| !p.as_os_str().is_empty()).map_or(".".into(), |p| p.display().to_string())
                )),
                other => other.into(),
            })
    })
}
