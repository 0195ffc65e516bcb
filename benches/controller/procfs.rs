//! What `/proc` tells of a process: its resident memory and the CPU it has used. The readers
//! are split from the parsers so the parsing is tested on fixed text (tests/bench_report.rs).

use std::collections::BTreeMap;

/// CPU seconds used so far by each process, at a time in ms on the sampler's clock.
pub type CpuSample = (f64, BTreeMap<String, f64>);

/// Cores each process used on average from `from_ms` to `to_ms`, from the last sample at or
/// before `from_ms` to the first at or after `to_ms` (the window widened to its samples). A
/// process missing from either sample is left out; no samples round the window, no result.
pub fn cores_between(samples: &[CpuSample], from_ms: f64, to_ms: f64) -> BTreeMap<String, f64> {
    let start = samples.iter().rev().find(|(t, _)| *t <= from_ms);
    let end = samples.iter().find(|(t, _)| *t >= to_ms);
    let (Some((t0, before)), Some((t1, after))) = (start, end) else {
        return BTreeMap::new();
    };
    let seconds = (t1 - t0) / 1000.0;
    if seconds <= 0.0 {
        return BTreeMap::new();
    }
    after
        .iter()
        .filter_map(|(name, cpu)| Some((name.clone(), (cpu - before.get(name)?) / seconds)))
        .collect()
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        return None;
    }
    Some(stat_cpu_ticks(&stat)? as f64 / per_second as f64)
}

/// utime + stime of a `/proc/PID/stat` line, in clock ticks.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `VmRSS` of a process, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// `RssFile` of a process (resident pages of mapped files: its binary's code), in MiB.
pub fn rss_file_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "RssFile:")
}

fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_mib(&status, field)
}

/// A `/proc/PID/status` field given in kB (`VmRSS:`, `RssFile:`), in MiB.
pub fn status_field_mib(status: &str, field: &str) -> Option<f64> {
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
