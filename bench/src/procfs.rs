//! Memory and CPU of a process from `/proc` (Linux): resident memory now and at its
//! peak (`VmRSS`, `VmHWM`) and CPU time used (`utime + stime`), plus the machine's
//! description and load for the report.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One look at a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Resident memory, MiB.
    pub rss_mb: f64,
    /// Peak resident memory so far, MiB.
    pub hwm_mb: f64,
    /// CPU time used so far (user + system).
    pub cpu: Duration,
    /// When it was taken.
    pub at: Instant,
}

impl Sample {
    /// Takes a sample of process `pid`; `None` if it is gone or `/proc` is unreadable.
    pub fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Self {
            rss_mb: status_kb(&status, "VmRSS:")? / 1024.0,
            hwm_mb: status_kb(&status, "VmHWM:")? / 1024.0,
            cpu: cpu_time(&stat)?,
            at: Instant::now(),
        })
    }

    /// CPU used between `earlier` and this sample, as a percentage of one core.
    pub fn cpu_percent_since(&self, earlier: &Sample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall * 100.0
    }
}

/// How many file descriptors process `pid` holds open (entries of `/proc/<pid>/fd`;
/// readable for our own children).
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kb(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// `utime + stime` of `/proc/<pid>/stat` (fields 14 and 15, after the command name,
/// which may itself contain spaces and parentheses).
fn cpu_time(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every usual Linux).
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU model and count, memory and kernel, in one line.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = status_kb(&meminfo, "MemTotal:").map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} × {model}, {mem_gb:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// CPU time (user + system) used by a few processes since [`CpuMeter::start`]: what a
/// phase cost each of them, whatever else ran on the machine meanwhile. Per operation,
/// it moves much less with the machine's load than a rate does.
pub struct CpuMeter {
    started: Vec<Option<(u32, Sample)>>,
}

impl CpuMeter {
    /// Starts measuring `pids` (a `None`, or a process that cannot be read, is
    /// reported as not measured).
    pub fn start(pids: &[Option<u32>]) -> Self {
        let started = pids
            .iter()
            .map(|pid| pid.and_then(|pid| Some((pid, Sample::of(pid)?))))
            .collect();
        Self { started }
    }

    /// Milliseconds of CPU each process used since the start, per one of `ops`
    /// operations, in the order the pids were given.
    pub fn ms_per(&self, ops: u64) -> Vec<Option<f64>> {
        self.started
            .iter()
            .map(|started| {
                let (pid, before) = started.as_ref()?;
                let used = Sample::of(*pid)?.cpu.saturating_sub(before.cpu);
                Some(used.as_secs_f64() * 1e3 / ops.max(1) as f64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let a = Sample::of(std::process::id()).unwrap();
        assert!(a.rss_mb > 0.0 && a.hwm_mb >= a.rss_mb);
        let b = Sample::of(std::process::id()).unwrap();
        assert!(b.cpu_percent_since(&a) >= 0.0);
        assert!(open_files(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn parses_stat_with_odd_names() {
        let stat = "42 (a) b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        let ticks = clock_ticks() as f64;
        assert_eq!(
            cpu_time(stat).unwrap(),
            Duration::from_secs_f64(300.0 / ticks)
        );
    }
}
