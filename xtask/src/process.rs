//! Long-running child processes that xtask starts and must not leave behind (servers,
//! Redis, nginx): started with a name, optionally logging to a file, waited for until
//! they listen, and stopped when dropped (SIGTERM, then SIGKILL after a grace period),
//! also when a later step fails.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process, stopped when dropped.
pub(crate) struct Supervised {
    name: String,
    child: Child,
    /// Where its output goes, to show when it fails to start; `None`: inherited.
    log: Option<PathBuf>,
}

impl Supervised {
    /// Starts `cmd` with the terminal's output.
    pub(crate) fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<Self> {
        let name = name.into();
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        Ok(Supervised {
            name,
            child,
            log: None,
        })
    }

    /// Starts `cmd` with its output (both streams) in the file `log`.
    pub(crate) fn spawn_logged(
        name: impl Into<String>,
        cmd: &mut Command,
        log: &Path,
    ) -> Result<Self> {
        let file =
            fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let mut proc = Self::spawn(name, cmd)?;
        proc.log = Some(log.to_path_buf());
        Ok(proc)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The process id (for `prlimit`/`taskset`, which exec the program, the program's).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits until something accepts connections on `addr`; fails, with the end of its
    /// log, if the process exits first or takes too long.
    pub(crate) fn wait_listening(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let exited = !matches!(self.child.try_wait(), Ok(None));
            if exited || Instant::now() > deadline {
                let tail = match &self.log {
                    Some(log) => {
                        let text = fs::read_to_string(log).unwrap_or_default();
                        let lines: Vec<&str> = text.lines().collect();
                        format!(
                            "; its output:\n{}",
                            lines[lines.len().saturating_sub(20)..].join("\n")
                        )
                    }
                    None => "; see its output above".to_owned(),
                };
                bail!("{} did not start listening on {addr}{tail}", self.name);
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM first: servers shut down cleanly, and nginx's master passes it on
            // to its workers, which a SIGKILL to the master would leave running.
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_process_is_stopped_and_reaped() {
        let mut sleeper = Supervised::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        assert!(sleeper.exited().unwrap().is_none());
        let pid = sleeper.pid();
        let started = Instant::now();
        drop(sleeper);
        assert!(started.elapsed() < STOP_GRACE, "SIGTERM was enough");
        // Reaped: no such process any more (not even a zombie).
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive);
    }

    #[test]
    fn a_process_that_exits_before_listening_is_reported_with_its_output() {
        let dir = std::env::temp_dir().join(format!("xtask-process-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("out.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo cannot bind; exit 3"]);
        let mut proc = Supervised::spawn_logged("server", &mut cmd, &log).unwrap();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = proc.wait_listening(addr).unwrap_err().to_string();
        assert!(err.contains("server did not start listening"), "{err}");
        assert!(err.contains("cannot bind"), "{err}");
        fs::remove_dir_all(&dir).ok();
    }
}
