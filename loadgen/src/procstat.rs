//! What `/proc` says about a process: resident memory (`/proc/<pid>/status`), CPU time
//! (`/proc/<pid>/stat`), and the open-files limit (`/proc/<pid>/limits`). Linux only;
//! the load generator and the server run on the same machine.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// A process could not be inspected.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {why}")]
pub struct ProcError {
    path: PathBuf,
    why: String,
}

/// Which process: a pid, or the load generator itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    Pid(u32),
    This,
}

impl Proc {
    fn file(self, name: &str) -> PathBuf {
        match self {
            Proc::Pid(pid) => PathBuf::from(format!("/proc/{pid}/{name}")),
            Proc::This => PathBuf::from(format!("/proc/self/{name}")),
        }
    }

    fn read(self, name: &str) -> Result<String, ProcError> {
        let path = self.file(name);
        std::fs::read_to_string(&path).map_err(|e| ProcError {
            path,
            why: e.to_string(),
        })
    }

    /// Resident memory and CPU time now.
    pub fn sample(self) -> Result<Sample, ProcError> {
        let at = Instant::now();
        let stat = self.read("stat")?;
        let status = self.read("status")?;
        let bad = |file: &str, why: &str| ProcError {
            path: self.file(file),
            why: why.to_owned(),
        };
        Ok(Sample {
            at,
            cpu_ticks: cpu_ticks(&stat).ok_or_else(|| bad("stat", "no utime/stime fields"))?,
            // A zombie (exited, not yet reaped) has no VmRSS.
            rss_bytes: rss_bytes(&status)
                .ok_or_else(|| bad("status", "no VmRSS line: has the process exited?"))?,
        })
    }

    /// The soft limit on open files, if it has one.
    pub fn nofile_limit(self) -> Result<Option<u64>, ProcError> {
        Ok(nofile_soft_limit(&self.read("limits")?))
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

impl Sample {
    /// CPU use between `self` and a later sample, in percent of one core.
    pub fn cpu_pct_until(&self, later: &Sample, ticks_per_sec: u64) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 || ticks_per_sec == 0 {
            return 0.0;
        }
        let ticks = later.cpu_ticks.saturating_sub(self.cpu_ticks) as f64;
        100.0 * ticks / ticks_per_sec as f64 / wall
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux if that fails).
pub fn ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// utime + stime from `/proc/<pid>/stat`. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS:   1234 kB` from `/proc/<pid>/status`, in bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft "Max open files" from `/proc/<pid>/limits`; `None` when unlimited.
fn nofile_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_name() {
        let stat = "1234 (my (weird) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn parses_status_and_limits() {
        let status = "Name:\thuddle\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(rss_bytes(status), Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(nofile_soft_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(nofile_soft_limit(unlimited), None);
    }

    #[test]
    fn samples_this_process() {
        let a = Proc::This.sample().unwrap();
        assert!(a.rss_bytes > 0);
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = Proc::This.sample().unwrap();
        let pct = a.cpu_pct_until(&b, ticks_per_sec());
        assert!((0.0..=200.0 * 64.0).contains(&pct), "{pct}");
        assert!(Proc::This.nofile_limit().is_ok());
        assert!(Proc::Pid(u32::MAX).sample().is_err());
    }
}
