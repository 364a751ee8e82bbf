//! Telling a job's peak memory from exe's own.
//!
//! Linux hands a new program the peak of the memory it replaced: a spawned child starts out
//! in (a copy of) exe's memory, so `wait4`'s `ru_maxrss` is at least exe's resident size when
//! it spawned the job. A figure no larger than exe's own peak may be exe's, so it is not the
//! job's to report.
//!
//! exe's own peak is its memory's high-water mark (`VmHWM`), not `getrusage(RUSAGE_SELF)`:
//! the latter also holds the peak of whatever process exec'd exe, so exe started from a large
//! parent (a test harness, a Python orchestrator) would have dropped every job's figure.
//! `VmHWM` only grows, so it is cached and read again only when a figure exceeds the cache.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slack for the kernel's per-CPU approximation of resident pages: the copy taken at spawn
/// and a later read of exe's high-water mark may differ by a few batches of pages.
const SLACK_KIB: u64 = 1024;

/// exe's high-water mark as last read, in KiB.
static OWN_PEAK_KIB: AtomicU64 = AtomicU64::new(0);

/// The job's peak, or `None` when `reported_kib` may be exe's own memory.
pub(super) fn jobs_own(reported_kib: u64) -> Option<u64> {
    let exes = |peak: u64| reported_kib <= peak.saturating_add(SLACK_KIB);
    if exes(OWN_PEAK_KIB.load(Ordering::Relaxed)) {
        return None;
    }
    let Some(fresh) = read_own_peak_kib() else {
        // Without /proc there is no telling: leave it out rather than report exe's memory.
        return None;
    };
    OWN_PEAK_KIB.fetch_max(fresh, Ordering::Relaxed);
    (!exes(fresh)).then_some(reported_kib)
}

/// `VmHWM` of /proc/self/status, in KiB.
fn read_own_peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_is_read_in_kib() {
        let status = "Name:\texe\nVmPeak:\t  100 kB\nVmHWM:\t   25280 kB\nVmRSS:\t 2 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(25280));
        assert_eq!(parse_vm_hwm("VmRSS:\t2 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\tlots\n"), None);
    }

    #[test]
    fn a_figure_within_exes_own_peak_is_not_the_jobs() {
        let own = read_own_peak_kib().expect("/proc/self/status has VmHWM");
        assert_eq!(jobs_own(own), None);
        assert_eq!(jobs_own(1), None);
        // Far above anything this test binary's other threads could reach meanwhile.
        let big = own + (4 << 20);
        assert_eq!(jobs_own(big), Some(big));
    }
}
