//! What a resumed run starts with, decided from the earlier run's recorded job states.
//!
//! Jobs that succeeded there (or were marked successful, were skipped as up to date, or
//! were carried over as done from a run it resumed) are skipped as done. With
//! `--failed-only`, only jobs that FAILED or TIMED OUT run again; the others are left for a
//! later plain `--resume`, and so are jobs `--only` or `--skip` leave out. Everything else
//! runs again. Pure: the caller reads the history and passes the rows in.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::selection::{
    Disposition, LEFT_FOR_A_PLAIN_RESUME, SUCCEEDED_IN, SkipReason, UP_TO_DATE,
};
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
            if job.state == "SKIPPED" && job.reason == UP_TO_DATE {
                return Disposition::Skip(SkipReason::UpToDate);
            }
            if let Some(done_in) = done_in(job, run) {
                return Disposition::Skip(SkipReason::Succeeded { run: done_in });
            }
            let failed = matches!(job.state.as_str(), "FAILED" | "TIMEOUT");
            if failed_only && !failed {
                return Disposition::Skip(SkipReason::NotFailed { run });
            }
            // Not done, and left out of this resume: left for the next, as --failed-only does.
            match selected {
                Disposition::Skip(SkipReason::NotSelected) => {
                    Disposition::Skip(SkipReason::LeftOut { by: "--only" })
                }
                Disposition::Skip(SkipReason::Flag) => {
                    Disposition::Skip(SkipReason::LeftOut { by: "--skip" })
                }
                selected => selected,
            }
        })
        .collect()
}

/// The run a job's work was done in, if it is done as of `run`: it succeeded there (or was
/// marked successful), was skipped there as up to date, or was carried over as done into
/// it from the run it names.
pub fn done_in(job: &JobRow, run: i64) -> Option<i64> {
    match job.state.as_str() {
        "SUCCESS" => Some(run),
        "SKIPPED" if job.reason == UP_TO_DATE => Some(run),
        "SKIPPED" => job
            .reason
            .strip_prefix(SUCCEEDED_IN)
            .and_then(|r| r.trim().parse().ok()),
        _ => None,
    }
}

/// Whether a recorded run left anything to do. Nothing when it succeeded and left no job
/// for a plain resume (`--failed-only`, or `--only` or `--skip` on a resume), or when
/// every one of its jobs is done (a failed run whose failures were all marked successful
/// since).
pub fn nothing_to_do(state: &str, jobs: &[JobRow], run: i64) -> bool {
    let succeeded = state == "SUCCESS"
        && !jobs
            .iter()
            .any(|j| j.state == "SKIPPED" && j.reason.ends_with(LEFT_FOR_A_PLAIN_RESUME));
    succeeded || (!jobs.is_empty() && jobs.iter().all(|j| done_in(j, run).is_some()))
}

/// What differs between a run's recorded definition and the pipeline's now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each difference, for people: a job added or removed, a job's or the pipeline's
    /// setting with its value before and now (or only its name when the value is long or
    /// is a hash), the jobs' order.
    pub listed: Vec<String>,
    /// Settings the recorded definition does not hold (an older exe recorded less), so
    /// their changes cannot be told; sorted.
    pub unrecorded: Vec<String>,
}

/// Keys of a job in the plan that are decided per run, not defined by the pipeline.
const PER_RUN: &[&str] = &["decision", "reason", "layer", "changes"];

/// Pipeline keys that say how the file was named, or are compared apart (the name).
const NOT_COMPARED: &[&str] = &["name", "file", "working_dir"];

/// What differs between two definitions (as [`crate::plan::json::definition`] writes
/// them; an older exe recorded [`crate::plan::json::render`]'s plan). A setting `before`
/// does not hold is not a change but [`Changes::unrecorded`]: a run recorded by an older
/// exe reads as unchanged in what it recorded, not as changed in everything else.
pub fn changes(before: &str, now: &str) -> Changes {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_default();
    let (before, now) = (parse(before), parse(now));
    let mut out = Changes::default();
    let mut unrecorded = BTreeSet::new();
    let empty = Map::new();
    let object = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (was, is) = (object(before.get("pipeline")), object(now.get("pipeline")));
    for field in compare(&was, &is, NOT_COMPARED, &mut unrecorded) {
        out.listed.push(format!("the pipeline's {field}"));
    }
    let jobs = |doc: &Value| -> Vec<(String, Map<String, Value>)> {
        let list = doc.get("jobs").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .map(|j| {
                let id = j.get("id").and_then(Value::as_str).unwrap_or_default();
                (id.to_owned(), object(Some(j)))
            })
            .collect()
    };
    let (old, new) = (jobs(&before), jobs(&now));
    let old_map: HashMap<&str, &Map<String, Value>> =
        old.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let new_map: HashMap<&str, &Map<String, Value>> =
        new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    for (id, job) in &new {
        match old_map.get(id.as_str()) {
            None => out.listed.push(format!("job `{id}` was added")),
            Some(was) => {
                let fields = compare(was, job, PER_RUN, &mut unrecorded);
                if !fields.is_empty() {
                    out.listed
                        .push(format!("job `{id}` changed: {}", fields.join(", ")));
                }
            }
        }
    }
    for (id, _) in &old {
        if !new_map.contains_key(id.as_str()) {
            out.listed.push(format!("job `{id}` was removed"));
        }
    }
    let order = |jobs: &[(String, Map<String, Value>)], other: &HashMap<&str, _>| -> Vec<String> {
        jobs.iter()
            .map(|(id, _)| id.clone())
            .filter(|id| other.contains_key(id.as_str()))
            .collect()
    };
    if order(&old, &new_map) != order(&new, &old_map) {
        out.listed
            .push("the order the jobs run in changed".to_owned());
    }
    out.unrecorded = unrecorded.into_iter().collect();
    out
}

/// The fields of `now` that differ from `was`, each said with its values when they are
/// short; fields in `skip` are not compared, and fields `was` lacks go to `unrecorded`.
fn compare(
    was: &Map<String, Value>,
    now: &Map<String, Value>,
    skip: &[&str],
    unrecorded: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut fields = Vec::new();
    for (key, value) in now {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let Some(before) = was.get(key) else {
            unrecorded.insert(setting(key).to_owned());
            continue;
        };
        if before == value {
            continue;
        }
        if let (Some(before), Some(value)) = (before.as_object(), value.as_object())
            && key == "env_hashes"
        {
            // Hashes say nothing to people: the variables' names do.
            for (name, hash) in value {
                match before.get(name) {
                    None => fields.push(format!("env `{name}` added")),
                    Some(old) if old != hash => fields.push(format!("env `{name}` changed")),
                    Some(_) => {}
                }
            }
            let gone = before.keys().filter(|name| !value.contains_key(*name));
            fields.extend(gone.map(|name| format!("env `{name}` removed")));
            continue;
        }
        let (old, new) = (before.to_string(), value.to_string());
        if old.len() + new.len() <= 80 {
            fields.push(format!("{key} {old} → {new}"));
        } else {
            fields.push(key.clone());
        }
    }
    fields
}

/// A setting of the recorded definition, as people know it (some keys are the record's own).
fn setting(key: &str) -> &str {
    match key {
        "env_hashes" => "the environment",
        "working_dir_canonical" => "the working folder",
        "timeout_grace_seconds" => "timeout_grace",
        other => other,
    }
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
            row("u", "SKIPPED", "up to date"),
        ];
        let ids = ["a", "b", "c", "d", "u", "new"];
        let all_run = || vec![Disposition::Run; 6];
        let plain = dispositions(&ids, all_run(), &previous, 7, false);
        assert_eq!(
            plain,
            [
                Disposition::Skip(SkipReason::Succeeded { run: 7 }),
                Disposition::Run,
                Disposition::Run,
                Disposition::Skip(SkipReason::Succeeded { run: 3 }),
                Disposition::Skip(SkipReason::UpToDate),
                Disposition::Run,
            ]
        );
        // Left out by --only or --skip, and not done: left for the next plain resume.
        let mut selected = vec![Disposition::Skip(SkipReason::NotSelected); 6];
        selected[2] = Disposition::Skip(SkipReason::Flag);
        let only = dispositions(&ids, selected, &previous, 7, false);
        assert_eq!(only[0], Disposition::Skip(SkipReason::Succeeded { run: 7 }));
        assert_eq!(
            only[1],
            Disposition::Skip(SkipReason::LeftOut { by: "--only" })
        );
        assert_eq!(
            only[2],
            Disposition::Skip(SkipReason::LeftOut { by: "--skip" })
        );
        assert_eq!(only[5], Disposition::Skip(SkipReason::NotSelected), "new");
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
            changes(before, now).listed,
            [
                "job `a` changed: command \"x\" → \"z\"",
                "job `b` was added",
                "job `gone` was removed"
            ]
        );
        assert_eq!(changes(before, before), Changes::default());
        let left = [row(
            "c",
            "SKIPPED",
            "did not fail in run 7 (--failed-only); a plain --resume runs it",
        )];
        assert!(!nothing_to_do("SUCCESS", &left, 7));
        let left = [row(
            "d",
            "SKIPPED",
            "not selected by --only; a plain --resume runs it",
        )];
        assert!(!nothing_to_do("SUCCESS", &left, 7));
        let up_to_date = [row("u", "SKIPPED", "up to date"), row("f", "SUCCESS", "")];
        assert!(nothing_to_do("FAILED", &up_to_date, 7));
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
    }

    #[test]
    fn settings_are_named_with_their_values_and_env_by_name_only() {
        let before = r#"{"pipeline": {"name": "p", "max_parallel": 1, "working_dir_canonical": "/a"},
            "jobs": [{"id": "a", "when": false, "env_hashes": {"A": "1", "GONE": "2", "KEEP": "3"}},
                     {"id": "b", "command": "x"}]}"#;
        let now = r#"{"pipeline": {"name": "q", "max_parallel": 4, "working_dir_canonical": "/a"},
            "jobs": [{"id": "b", "command": "x"},
                     {"id": "a", "when": true, "env_hashes": {"A": "9", "NEW": "4", "KEEP": "3"}}]}"#;
        assert_eq!(
            changes(before, now).listed,
            [
                "the pipeline's max_parallel 1 → 4",
                "job `a` changed: when false → true, env `A` changed, env `NEW` added, env `GONE` removed",
                "the order the jobs run in changed",
            ]
        );
        // A long value is named, not shown.
        let long = |c: &str| format!(r#"{{"jobs": [{{"id": "a", "command": "{c}"}}]}}"#);
        let (x, y) = ("x".repeat(50), "y".repeat(50));
        assert_eq!(
            changes(&long(&x), &long(&y)).listed,
            ["job `a` changed: command"]
        );
    }

    #[test]
    fn what_an_older_exe_did_not_record_is_not_a_change() {
        // An older exe recorded the plan with the file's path and a relative working_dir,
        // and without the settings added since.
        let before = r#"{"pipeline": {"name": "p", "file": "p.toml", "working_dir": ".", "max_parallel": 1},
            "jobs": [{"id": "a", "command": "x", "layer": 1, "checks": {"pre": 0, "post": 0}}]}"#;
        let now = r#"{"pipeline": {"name": "p", "working_dir_canonical": "/w", "max_parallel": 1},
            "jobs": [{"id": "a", "command": "x", "layer": 1, "checks": {"pre": 0, "post": 0},
                      "when": true, "env_hashes": {"PATH": "1"}}]}"#;
        let compared = changes(before, now);
        assert!(compared.listed.is_empty(), "{:?}", compared.listed);
        assert_eq!(
            compared.unrecorded,
            ["the environment", "the working folder", "when"]
        );
        // What it did record still counts.
        let edited = before.replace(r#""command": "x""#, r#""command": "y""#);
        assert_eq!(
            changes(&edited, now).listed,
            ["job `a` changed: command \"y\" → \"x\""]
        );
        assert_ne!(digest("abc"), digest("abd"));
    }
}
