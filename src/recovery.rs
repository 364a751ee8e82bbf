//! Closing runs whose exe died (killed with -9, a power loss): bug 17 of the older tool left
//! them RUNNING forever.
//!
//! A RUNNING run is orphaned when its owner is gone: on this host its pid no longer runs
//! exe, or (on any host) it has not written a heartbeat for [`STALE`]. Such a run gets, for
//! each unfinished job, a transition to CANCELLED with the reason "exe died", an end for each
//! attempt left open, and the run state CANCELLED. Nothing earlier is changed, and the run
//! stays resumable. Process groups of its attempts that are still alive are reported, with
//! the command that ends them: exe does not kill what it cannot prove is its own.

use std::time::Duration;

use crate::store::{Record, RunFilter, RunRow, Store, StoreError};

/// A run silent for this long is taken as dead, whatever host it ran on (heartbeats come
/// every 5 s).
pub const STALE: Duration = Duration::from_secs(30);

/// A process group an orphaned run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The run.
    pub run: i64,
    /// The job's id.
    pub job: String,
    /// The group still alive.
    pub pgid: i32,
}

/// Closes every orphaned run; returns the ids closed and the process groups still alive.
pub fn close_orphans(
    store: &mut Store,
    host: &str,
    now_ms: i64,
) -> Result<(Vec<i64>, Vec<Leftover>), StoreError> {
    let running = store.runs(&RunFilter {
        state: Some("RUNNING".to_owned()),
        limit: usize::MAX,
        ..RunFilter::default()
    })?;
    let mut closed = Vec::new();
    let mut leftovers = Vec::new();
    for listed in running.iter().filter(|r| orphaned(r, host, now_ms)) {
        // The owner may have finished the run (and exited) since the list was read: look
        // again right before closing, and leave a run someone else finished alone.
        let run = store.run(listed.id)?;
        if run.state != "RUNNING" || !orphaned(&run, host, now_ms) {
            continue;
        }
        match close(store, &run, now_ms) {
            Ok(left) => {
                leftovers.extend(left);
                closed.push(run.id);
            }
            Err(StoreError::RunFinished { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((closed, leftovers))
}

/// Whether a RUNNING run's owner is gone.
pub fn orphaned(run: &RunRow, host: &str, now_ms: i64) -> bool {
    let last_sign = run.heartbeat_at_ms.unwrap_or(run.started_at_ms);
    let silent =
        now_ms.saturating_sub(last_sign) > i64::try_from(STALE.as_millis()).unwrap_or(i64::MAX);
    silent || (run.host == host && !runs_exe(run.pid))
}

/// Is `pid` a live exe process? (A reused pid of another program does not count.)
fn runs_exe(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        program
            .rsplit(|&b| b == b'/')
            .next()
            .is_some_and(|name| name.starts_with(b"exe"))
    })
}

fn close(store: &mut Store, run: &RunRow, now_ms: i64) -> Result<Vec<Leftover>, StoreError> {
    let jobs = store.jobs(run.id)?;
    let attempts = store.attempts(run.id)?;
    let mut batch = Vec::new();
    let mut leftovers = Vec::new();
    for attempt in attempts.iter().filter(|a| a.ended_at_ms.is_none()) {
        batch.push(Record::AttemptEnded {
            job: attempt.job,
            number: attempt.number,
            at_ms: now_ms,
            exit_code: None,
            signal: None,
            usage: None,
            outcome: "CANCELLED",
            reason: "exe died",
        });
        if let Some(pgid) = attempt.pgid.filter(|&g| crate::process::group_alive(g)) {
            leftovers.push(Leftover {
                run: run.id,
                job: attempt.job_id.clone(),
                pgid,
            });
        }
    }
    for job in &jobs {
        if matches!(job.state.as_str(), "PENDING" | "QUEUED" | "RUNNING") {
            batch.push(Record::Transition {
                job: job.index,
                from: &job.state,
                to: "CANCELLED",
                at_ms: now_ms,
                reason: "exe died",
            });
        }
    }
    store.record(run.id, &batch)?;
    store.finish_run(run.id, "CANCELLED", 137, now_ms)?;
    Ok(leftovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, pid: u32, heartbeat: Option<i64>) -> RunRow {
        RunRow {
            id: 1,
            name: "p".into(),
            file: "p.toml".into(),
            digest: String::new(),
            state: "RUNNING".into(),
            started_at_ms: 0,
            ended_at_ms: None,
            exit_code: None,
            host: host.into(),
            user: "u".into(),
            pid,
            exe_version: "0".into(),
            resumed_from: None,
            heartbeat_at_ms: heartbeat,
        }
    }

    #[test]
    fn owners_are_judged_by_pid_here_and_heartbeat_anywhere() {
        let now = 100_000;
        // A pid that cannot exist on Linux (above pid_max).
        assert!(
            orphaned(&row("here", 4_194_305, Some(now)), "here", now),
            "dead pid on this host"
        );
        assert!(
            !orphaned(&row("there", 4_194_305, Some(now - 1_000)), "here", now),
            "another host, fresh heartbeat"
        );
        assert!(
            orphaned(&row("there", 1, Some(now - 31_000)), "here", now),
            "silent for 31 s"
        );
        // This test binary is `executioner-<hash>`: an exe as far as the check goes.
        assert!(runs_exe(std::process::id()));
    }
}
