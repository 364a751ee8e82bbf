//! What a resumed run starts with, decided from the earlier run's recorded job states.
//!
//! Jobs that succeeded there (or were marked successful, or were carried over as done from
//! a run it resumed) are skipped as done. With `--failed-only`, only jobs that FAILED or
//! TIMED OUT run again; the others are left for a later plain `--resume`. Everything else
//! runs again. Pure: the caller reads the history and passes the rows in.

use std::collections::HashMap;

use crate::selection::{Disposition, LEFT_BY_FAILED_ONLY, SUCCEEDED_IN, SkipReason};
use crate::store::JobRow;

/// The dispositions of a resumed run: `selected` (from `--skip`, `--only`, `when`) for the
/// jobs that run again, "done" for the jobs that need not.
pub fn dispositions(
    ids: &[&str],
    selected: Vec<Disposition>,
    previous: &[JobRow],
    run: i64,
    failed_only: bool,
) -> Vec<Disposition> {
    let before: HashMap<&str, &JobRow> = previous.iter().map(|j| (j.id.as_str(), j)).collect();
    ids.iter()
        .zip(selected)
        .map(|(id, selected)| {
            let Some(job) = before.get(id) else {
                return selected;
            };
            if let Some(done_in) = succeeded_in(job, run) {
                return Disposition::Skip(SkipReason::Succeeded { run: done_in });
            }
            let failed = matches!(job.state.as_str(), "FAILED" | "TIMEOUT");
            if failed_only && !failed {
                return Disposition::Skip(SkipReason::NotFailed { run });
            }
            selected
        })
        .collect()
}

/// The run a job succeeded in, if it is done as of `run`.
fn succeeded_in(job: &JobRow, run: i64) -> Option<i64> {
    match job.state.as_str() {
        "SUCCESS" => Some(run),
        "SKIPPED" => job
            .reason
            .strip_prefix(SUCCEEDED_IN)
            .and_then(|r| r.trim().parse().ok()),
        _ => None,
    }
}

/// Whether a recorded run left anything to do. Nothing when it succeeded and `--failed-only`
/// left no job of it for a plain resume, or when every one of its jobs is done (a failed
/// run whose failures were all marked successful since).
pub fn nothing_to_do(state: &str, jobs: &[JobRow], run: i64) -> bool {
    let succeeded = state == "SUCCESS"
        && !jobs
            .iter()
            .any(|j| j.state == "SKIPPED" && j.reason.starts_with(LEFT_BY_FAILED_ONLY));
    succeeded || (!jobs.is_empty() && jobs.iter().all(|j| succeeded_in(j, run).is_some()))
}

/// What differs between two plans (as `exe plan --format json` writes them): jobs added,
/// removed, or changed in what they run. Decisions (run/skip) are not compared.
pub fn changes(before: &str, now: &str) -> Vec<String> {
    let jobs = |text: &str| -> Vec<(String, serde_json::Value)> {
        let doc: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        doc.get("jobs")
            .and_then(|j| j.as_array())
            .map(|jobs| {
                jobs.iter()
                    .map(|j| {
                        let mut j = j.clone();
                        if let Some(o) = j.as_object_mut() {
                            for transient in ["decision", "reason", "layer"] {
                                o.remove(transient);
                            }
                        }
                        (
                            j.get("id")
                                .and_then(|i| i.as_str())
                                .unwrap_or_default()
                                .to_owned(),
                            j,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (jobs(before), jobs(now));
    let old_map: HashMap<&str, &serde_json::Value> =
        old.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let new_map: HashMap<&str, &serde_json::Value> =
        new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Vec::new();
    for (id, job) in &new {
        match old_map.get(id.as_str()) {
            None => out.push(format!("job `{id}` was added")),
            Some(was) if *was != job => {
                let fields: Vec<&str> = job
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| was.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.as_str())
                    .collect();
                out.push(format!("job `{id}` changed: {}", fields.join(", ")));
            }
            Some(_) => {}
        }
    }
    for (id, _) in &old {
        if !new_map.contains_key(id.as_str()) {
            out.push(format!("job `{id}` was removed"));
        }
    }
    out
}

/// A stable digest of a plan's definition (FNV-1a, 64 bits, hex): equal plans, equal digests.
pub fn digest(plan_json: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in plan_json.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &str, reason: &str) -> JobRow {
        JobRow {
            index: 0,
            id: id.to_owned(),
            state: state.to_owned(),
            reason: reason.to_owned(),
            attempts: 1,
        }
    }

    #[test]
    fn done_jobs_are_skipped_and_the_rest_run() {
        let previous = [
            row("a", "SUCCESS", "succeeded"),
            row("b", "FAILED", "exit code 1"),
            row("c", "CANCELLED", "run failed: b failed"),
            row("d", "SKIPPED", "already succeeded in run 3"),
        ];
        let ids = ["a", "b", "c", "d", "new"];
        let all_run = || vec![Disposition::Run; 5];
        let plain = dispositions(&ids, all_run(), &previous, 7, false);
        assert_eq!(
            plain,
            [
                Disposition::Skip(SkipReason::Succeeded { run: 7 }),
                Disposition::Run,
                Disposition::Run,
                Disposition::Skip(SkipReason::Succeeded { run: 3 }),
                Disposition::Run,
            ]
        );
        let failed_only = dispositions(&ids, all_run(), &previous, 7, true);
        assert_eq!(failed_only[1], Disposition::Run);
        assert_eq!(
            failed_only[2],
            Disposition::Skip(SkipReason::NotFailed { run: 7 }),
            "never-run jobs wait"
        );
    }

    #[test]
    fn changes_name_what_differs() {
        let before = r#"{"jobs": [{"id": "a", "command": "x", "decision": "run"}, {"id": "gone", "command": "y"}]}"#;
        let now = r#"{"jobs": [{"id": "a", "command": "z", "decision": "skip"}, {"id": "b", "command": "y"}]}"#;
        assert_eq!(
            changes(before, now),
            [
                "job `a` changed: command",
                "job `b` was added",
                "job `gone` was removed"
            ]
        );
        assert!(changes(before, before).is_empty());
        let left = [row(
            "c",
            "SKIPPED",
            "did not fail in run 7 (--failed-only); a plain --resume runs it",
        )];
        assert!(!nothing_to_do("SUCCESS", &left, 7));
        assert!(nothing_to_do("SUCCESS", &[row("a", "SUCCESS", "")], 7));
        assert!(!nothing_to_do("FAILED", &[], 7));
        // A failed run whose failure was marked successful, and a job done in an earlier run.
        let done = [
            row("a", "SUCCESS", "fixed by hand"),
            row("b", "SKIPPED", "already succeeded in run 3"),
        ];
        assert!(nothing_to_do("FAILED", &done, 7));
        assert!(!nothing_to_do(
            "FAILED",
            &[row("a", "FAILED", "exit code 1")],
            7
        ));
        assert_eq!(digest("abc"), digest("abc"));
        assert_ne!(digest("abc"), digest("abd"));
    }
}
