//! Closing runs whose exe died (killed with -9, a power loss): bug 17 of the older tool left
//! them RUNNING forever.
//!
//! A RUNNING run is orphaned when its owner is gone: on this host, its pid no longer runs
//! the exe that started it (a live one may be stopped, by Ctrl-Z or a paused container, and
//! write no heartbeat meanwhile); on another host, it has not written a heartbeat for
//! [`STALE`]. Such a run gets, for
//! each unfinished job, a transition to CANCELLED with the reason "exe died", an end for each
//! attempt left open, and the run state CANCELLED. Nothing earlier is changed, and the run
//! stays resumable. Process groups of its attempts that are still running are reported, with
//! the command that ends them. exe offers to end one itself only when it can prove the group
//! is still the attempt's ([`Leftover::provably_ours`]), and only if the user says yes.
//!
//! Only runs of this host have their groups looked at: a pgid recorded on another machine
//! names nothing here.

use std::time::Duration;

use crate::process::members::Member;
use crate::store::{Access, AttemptRow, Durability, Record, RunFilter, RunRow, Store, StoreError};

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
    /// The group, still running.
    pub pgid: i32,
    /// When the attempt started, in ms since the Unix epoch.
    pub started_at_ms: i64,
    /// The last time its exe was known to be alive: its run's last heartbeat (or start).
    pub owner_seen_ms: i64,
}

/// exe records an attempt, then starts its process: the process starts within this of the
/// recorded time. Also covers the 10 ms resolution of `/proc` start times.
const START_SLACK_MS: i64 = 2_000;

impl Leftover {
    /// Whether the group is provably the attempt's: one of its processes started while the
    /// dead exe was known to be alive, between the attempt's start and the later of its run's
    /// last heartbeat and the start plus [`START_SLACK_MS`]. A pgid is not handed out again
    /// while any process is in the group, so such a process shows the number was never reused
    /// since. Processes that all started later (or a `/proc` exe cannot read) prove nothing.
    pub fn provably_ours(&self) -> bool {
        let from = self.started_at_ms - START_SLACK_MS;
        let to = self.owner_seen_ms.max(self.started_at_ms + START_SLACK_MS);
        member_started_between(self.pgid, from, to)
    }
}

/// Whether a process of group `pgid` started between `from_ms` and `to_ms` (ms since the
/// Unix epoch), by the start times in `/proc`.
fn member_started_between(pgid: i32, from_ms: i64, to_ms: i64) -> bool {
    let Some(members) = crate::process::members::of_group(pgid) else {
        return false;
    };
    let booted = booted_ms();
    members
        .iter()
        .any(|member| (from_ms..=to_ms).contains(&started_ms(member, booted)))
}

/// When the machine booted, in ms since the Unix epoch. Both clocks are read here, together:
/// a `now` taken earlier (before a question to the user, say) would put the boot, and so
/// every process's start, that much too early.
fn booted_ms() -> i64 {
    let since_boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    crate::clock::now_ms() - (since_boot.tv_sec * 1000 + since_boot.tv_nsec / 1_000_000)
}

/// When a process started, in ms since the Unix epoch: `/proc` counts start times in
/// clock ticks since boot (`CLOCK_BOOTTIME`).
fn started_ms(member: &Member, booted_ms: i64) -> i64 {
    let ticks = i64::try_from(rustix::param::clock_ticks_per_second()).unwrap_or(100);
    booted_ms + member.start_ticks * 1000 / ticks
}

/// What [`close_orphans`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The runs closed.
    pub closed: Vec<i64>,
    /// Process groups of theirs still running.
    pub leftovers: Vec<Leftover>,
    /// Runs whose journal could not be folded whole, and why: each journal is kept.
    pub damaged: Vec<(i64, String)>,
}

/// Closes every orphaned run, after folding what its journal holds beyond its tables (see
/// [`crate::store::Journal`]).
pub fn close_orphans(store: &mut Store, host: &str, now_ms: i64) -> Result<Recovered, StoreError> {
    let running = store.runs(&RunFilter {
        state: Some("RUNNING".to_owned()),
        limit: usize::MAX,
        ..RunFilter::default()
    })?;
    let mut recovered = Recovered::default();
    for listed in running.iter().filter(|r| orphaned(r, host, now_ms)) {
        // The owner may have finished the run (and exited) since the list was read: look
        // again right before closing, and leave a run someone else finished alone.
        let run = store.run(listed.id)?;
        if run.state != "RUNNING" || !orphaned(&run, host, now_ms) {
            continue;
        }
        tracing::info!(run = run.id, host = %run.host, pid = run.pid, "closing a run whose exe died");
        let left = store.fold_left(run.id)?;
        tracing::info!(
            run = run.id,
            records = left.records,
            "folded the journal of a dead run"
        );
        let Some(groups) = close(store, &run, run.host == host)? else {
            continue;
        };
        recovered.leftovers.extend(groups);
        recovered.closed.push(run.id);
        match left.damaged {
            Some(why) => recovered.damaged.push((run.id, why)),
            None => store.remove_journal(run.id),
        }
    }
    store.remove_finished_journals();
    Ok(recovered)
}

/// Folds the journals of runs whose exe died into the tables of the history `reader` reads,
/// so the reading commands show each such run up to where its exe got. (Closing it is
/// `apply`'s.) The history is opened for writing only when such a journal is there; when it
/// cannot be written, the reader shows what the tables hold.
pub fn fold_dead_journals(reader: &Store, host: &str, now_ms: i64) {
    let dead: Vec<i64> = (crate::store::journals_beside(reader.path()).into_iter())
        .map(|(id, _)| id)
        .filter(|&id| {
            (reader.run(id))
                .is_ok_and(|run| run.ended_at_ms.is_none() && orphaned(&run, host, now_ms))
        })
        .collect();
    if dead.is_empty() {
        return;
    }
    let Ok(mut store) = Store::open(reader.path(), Access::ReadWrite, Durability::Normal) else {
        return;
    };
    for id in dead {
        if let Err(e) = store.fold_left(id) {
            tracing::debug!(run = id, error = %e, "a dead run's journal was not folded");
        }
    }
}

/// Whether a RUNNING run's owner is gone.
pub fn orphaned(run: &RunRow, host: &str, now_ms: i64) -> bool {
    if run.host == host {
        return !owner_runs(run);
    }
    let last_sign = run.heartbeat_at_ms.unwrap_or(run.started_at_ms);
    now_ms.saturating_sub(last_sign) > i64::try_from(STALE.as_millis()).unwrap_or(i64::MAX)
}

/// Whether the run's pid, on this host, is still the exe that started it: an exe process
/// that started before the run did (a pid handed out again since started later).
fn owner_runs(run: &RunRow) -> bool {
    runs_exe(run.pid)
        && crate::process::members::of_pid(run.pid)
            .is_some_and(|p| started_ms(&p, booted_ms()) <= run.started_at_ms + START_SLACK_MS)
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

/// When `run`'s exe was last known alive: its last heartbeat, or the last start or end of
/// one of its `attempts` recorded after it.
pub fn last_sign_of_life(run: &RunRow, attempts: &[AttemptRow]) -> i64 {
    (attempts.iter())
        .flat_map(|a| [Some(a.started_at_ms), a.ended_at_ms])
        .chain([run.heartbeat_at_ms, Some(run.started_at_ms)])
        .flatten()
        .max()
        .unwrap_or(run.started_at_ms)
}

/// Closes `run`; returns the groups of its attempts still running when `here` (it ran on this
/// host), none otherwise; `None` when another exe closed it first. What it closes ends at the run's last sign of life (its last
/// heartbeat, or the last attempt start or end recorded after it): when exe died is not
/// known, and the time of this recovery, maybe days later, would be further off.
fn close(store: &mut Store, run: &RunRow, here: bool) -> Result<Option<Vec<Leftover>>, StoreError> {
    let jobs = store.jobs(run.id)?;
    let attempts = store.attempts(run.id)?;
    let last_sign = last_sign_of_life(run, &attempts);
    let later_groups = if here {
        store.later_groups(run.id)?
    } else {
        Vec::new()
    };
    let mut batch = Vec::new();
    let mut leftovers = Vec::new();
    for attempt in attempts.iter().filter(|a| a.ended_at_ms.is_none()) {
        batch.push(Record::AttemptEnded {
            job: attempt.job,
            number: attempt.number,
            at_ms: last_sign,
            exit_code: None,
            signal: None,
            usage: None,
            outcome: "CANCELLED",
            reason: "exe died",
            pgid: None,
        });
        // The attempt's first group, and any it started after (a check, its command).
        let later = (later_groups.iter())
            .filter(|&&(job, number, _)| job == attempt.job && number == attempt.number)
            .map(|&(_, _, pgid)| pgid);
        let groups = attempt.pgid.into_iter().chain(later);
        for pgid in groups.filter(|&g| here && crate::process::group_running(g)) {
            leftovers.push(Leftover {
                run: run.id,
                job: attempt.job_id.clone(),
                pgid,
                started_at_ms: attempt.started_at_ms,
                owner_seen_ms: run.heartbeat_at_ms.unwrap_or(run.started_at_ms),
            });
        }
    }
    for job in &jobs {
        if matches!(job.state.as_str(), "PENDING" | "QUEUED" | "RUNNING") {
            batch.push(Record::Transition {
                job: job.index,
                from: &job.state,
                to: "CANCELLED",
                at_ms: last_sign,
                reason: "exe died",
            });
        }
    }
    if store.close_dead_run(run.id, &batch, "CANCELLED", 137, last_sign)? {
        Ok(Some(leftovers))
    } else {
        // Another exe, opening the history at the same moment, closed it first.
        Ok(None)
    }
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
        // This test process stands for a live exe here that wrote no heartbeat for long
        // (stopped by Ctrl-Z): it is alive, unless the run started before the process did.
        let now = crate::clock::now_ms();
        let mut stopped = row("here", std::process::id(), Some(now - 600_000));
        stopped.started_at_ms = now - 1_000;
        assert!(
            !orphaned(&stopped, "here", now),
            "a live owner, however silent"
        );
        stopped.started_at_ms = 0;
        assert!(
            orphaned(&stopped, "here", now),
            "the pid was handed out again since"
        );
        // This test binary is `executioner-<hash>`: an exe as far as the check goes.
        assert!(runs_exe(std::process::id()));
    }

    /// A store holding one RUNNING run of `host` (pid above `pid_max`, last heartbeat at 0)
    /// whose only attempt is open, in this test process's own group: a live one.
    fn dead_run_with_a_live_group(host: &str) -> (Store, i32) {
        let mut store = Store::open_in_memory().unwrap();
        let jobs = ["long".to_owned()];
        let id = store
            .create_run(&crate::store::NewRun {
                name: "p",
                file: "p.toml",
                digest: "",
                plan_json: "{}",
                host,
                user: "u",
                pid: 4_194_305,
                exe_version: "0",
                resumed_from: None,
                started_at_ms: 0,
                jobs: &jobs,
            })
            .unwrap();
        let group = rustix::process::getpgrp().as_raw_nonzero().get();
        store
            .record(
                id,
                &[Record::AttemptStarted {
                    job: 0,
                    number: 1,
                    at_ms: 0,
                    log_path: "long.log",
                    pgid: Some(group),
                }],
            )
            .unwrap();
        (store, group)
    }

    #[test]
    fn only_runs_of_this_host_have_their_groups_reported() {
        let now = 100_000;
        let (mut store, group) = dead_run_with_a_live_group("here");
        let Recovered {
            closed, leftovers, ..
        } = close_orphans(&mut store, "here", now).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(leftovers.len(), 1);
        // Ended when last known alive (the attempt's start, at 0), not at this recovery.
        let run = store.run(closed[0]).unwrap();
        assert_eq!(run.ended_at_ms, Some(0));
        assert!(store.attempts(run.id).unwrap()[0].ended_at_ms == Some(0));
        assert_eq!(leftovers[0].pgid, group);
        // Started long before the run's recorded start: not provably the attempt's.
        assert!(!leftovers[0].provably_ours());
        // The same pgid recorded on another machine names nothing here.
        let (mut store, _) = dead_run_with_a_live_group("elsewhere");
        let Recovered {
            closed, leftovers, ..
        } = close_orphans(&mut store, "here", now).unwrap();
        assert_eq!((closed.len(), leftovers.len()), (1, 0));
    }

    #[test]
    fn a_group_is_matched_by_when_its_processes_started() {
        let group = rustix::process::getpgrp().as_raw_nonzero().get();
        let now = crate::clock::now_ms();
        // This test process is in its group and started before now.
        assert!(member_started_between(group, 0, now + 1_000));
        assert!(!member_started_between(group, now + 60_000, now + 120_000));
        assert!(
            !member_started_between(4_194_305, 0, now + 1_000),
            "no such group"
        );
    }
}
