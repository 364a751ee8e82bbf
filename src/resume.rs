//! What a resumed run starts with, decided from the earlier run's recorded job states.
//!
//! Jobs that succeeded there (or were marked successful, were skipped as up to date, or
//! were carried over as done from a run it resumed) are skipped as done. With
//! `--failed-only`, only jobs that FAILED or TIMED OUT run again; the others are left for a
//! later plain `--resume`, and so are jobs `--only` or `--skip` leave out. Everything else
//! runs again. Pure: the caller reads the history and passes the rows in.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::plan::{duration_text, size_text};
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
    /// Each difference, one per line, for people: a job added or removed, a setting of the
    /// pipeline or of a job (with its values before and now when it cannot hold a secret
    /// and they are short, else by its name only), the jobs' order.
    pub listed: Vec<String>,
    /// Settings the recorded definition does not hold (an older exe recorded less), so
    /// their changes cannot be told; named as in the file, sorted.
    pub unrecorded: Vec<String>,
}

/// Keys of a job in the plan that are decided per run, not defined by the pipeline.
const PER_RUN: &[&str] = &["decision", "reason", "layer", "changes"];

/// Pipeline keys that say how the file was named, or are compared apart (the name).
const NOT_COMPARED: &[&str] = &["name", "file", "working_dir"];

/// Settings whose values are shown in a change: none can hold a secret. Every other
/// setting (the command, checks, environment, paths) is named only.
const SHOWN: &[&str] = &[
    "when",
    "timeout",
    "timeout_grace",
    "retry",
    "priority",
    "resources",
    "needs",
    "max_parallel",
    "continue_on_error",
    "inherit_env",
];

/// How many changes are listed; the rest are counted.
pub const LISTED_AT_MOST: usize = 20;

/// What differs between two definitions (as [`crate::plan::json::definition`] writes
/// them; an older exe recorded [`crate::plan::json::render`]'s plan). A setting `before`
/// does not hold is not a change but [`Changes::unrecorded`]: a run recorded by an older
/// exe reads as unchanged in what it recorded, not as changed in everything else.
pub fn changes(before: &str, now: &str) -> Changes {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_default();
    let (before, now) = (parse(before), parse(now));
    let mut out = Changes::default();
    let mut unrecorded = BTreeSet::new();
    let pipeline = |doc: &Value| doc.get("pipeline").map(object).unwrap_or_default();
    let (was, is) = (pipeline(&before), pipeline(&now));
    for field in compare(&was, &is, NOT_COMPARED, &mut unrecorded) {
        out.listed.push(format!("the pipeline's {field}"));
    }
    let jobs = |doc: &Value| -> Vec<(String, Map<String, Value>)> {
        let list = doc.get("jobs").and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .map(|j| {
                let id = j.get("id").and_then(Value::as_str).unwrap_or_default();
                (id.to_owned(), object(j))
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
                for field in compare(was, job, PER_RUN, &mut unrecorded) {
                    out.listed.push(format!("job `{id}` changed: {field}"));
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

/// The changes for people: one a line, each indented, at most [`LISTED_AT_MOST`] of them
/// and then how many more there are.
pub fn listing(changes: &[String]) -> String {
    let mut lines: Vec<String> = changes
        .iter()
        .take(LISTED_AT_MOST)
        .map(|c| format!("  {c}"))
        .collect();
    if let Some(more) = changes.len().checked_sub(LISTED_AT_MOST).filter(|&n| n > 0) {
        let s = if more == 1 { "" } else { "s" };
        lines.push(format!("  ... and {more} more change{s}"));
    }
    lines.join("\n")
}

/// The settings of `now` that differ from `was`, each as people write it (see [`SHOWN`]);
/// keys in `skip` are not compared, and keys `was` lacks go to `unrecorded`.
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
        let name = setting(key);
        if key == "set_env_hashes" {
            // Hashes say nothing to people: the variables' names do.
            let (before, value) = (object(before), object(value));
            for (variable, hash) in &value {
                match before.get(variable) {
                    None => fields.push(format!("env `{variable}` added")),
                    Some(old) if old != hash => fields.push(format!("env `{variable}` changed")),
                    Some(_) => {}
                }
            }
            let gone = before.keys().filter(|v| !value.contains_key(*v));
            fields.extend(gone.map(|variable| format!("env `{variable}` removed")));
        } else if before.is_object() || value.is_object() {
            // `retry`, `resources`: each part that changed, as `retry.max`.
            let (before, value) = (object(before), object(value));
            let parts: BTreeSet<&String> = before.keys().chain(value.keys()).collect();
            for part in parts {
                let (old, new) = (before.get(part), value.get(part));
                if old != new {
                    let part = setting(part);
                    fields.push(shown(&format!("{name}.{part}"), name, part, old, new));
                }
            }
        } else {
            fields.push(shown(name, name, name, Some(before), Some(value)));
        }
    }
    fields
}

/// An object's entries; none for anything else (`resources` is `null` when not set).
fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A changed setting, with its values when `top` is [`SHOWN`] and they are short.
fn shown(setting: &str, top: &str, part: &str, old: Option<&Value>, new: Option<&Value>) -> String {
    if !SHOWN.contains(&top) {
        return setting.to_owned();
    }
    let (old, new) = (value_text(part, old), value_text(part, new));
    if old.len() + new.len() <= 80 {
        format!("{setting} {old} → {new}")
    } else {
        setting.to_owned()
    }
}

/// A recorded value as the file writes it: durations and sizes in their units.
fn value_text(setting: &str, value: Option<&Value>) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return "none".to_owned();
    };
    let seconds = value.as_f64().filter(|s| s.is_finite() && *s >= 0.0);
    match (setting, seconds) {
        ("timeout" | "timeout_grace" | "delay" | "max_time", Some(s)) => {
            duration_text(Duration::from_secs_f64(s))
        }
        ("memory", Some(_)) => value.as_u64().map_or_else(|| value.to_string(), size_text),
        _ => value.to_string(),
    }
}

/// A key of the recorded definition as people know it: the file's name for the setting.
fn setting(key: &str) -> &str {
    match key {
        "command_hash" => "command",
        "pre_checks_hash" => "pre_checks",
        "post_checks_hash" => "post_checks",
        "set_env_hashes" | "env_hashes" => "env",
        "working_dir_canonical" => "working_dir",
        "timeout_seconds" => "timeout",
        "timeout_grace_seconds" => "timeout_grace",
        "delay_seconds" => "delay",
        "max_time_seconds" => "max_time",
        "memory_bytes" => "memory",
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
                "job `a` changed: command",
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
    fn settings_are_named_as_in_the_file_one_per_line_and_secrets_by_name_only() {
        let before = r#"{"pipeline": {"name": "p", "max_parallel": 1, "working_dir_canonical": "/a",
                "inherit_env": "default", "set_env_hashes": {"REGION": "1"}},
            "jobs": [{"id": "a", "when": false, "command_hash": "c1", "pre_checks_hash": "p1",
                      "set_env_hashes": {"A": "1", "GONE": "2", "KEEP": "3"},
                      "timeout_seconds": 30.0, "timeout_grace_seconds": 5.0,
                      "retry": {"max": 0, "delay_seconds": 0.0}, "resources": null},
                     {"id": "b", "command_hash": "c2"}]}"#;
        let now = r#"{"pipeline": {"name": "q", "max_parallel": 4, "working_dir_canonical": "/a",
                "inherit_env": true, "set_env_hashes": {"REGION": "2"}},
            "jobs": [{"id": "b", "command_hash": "c2"},
                     {"id": "a", "when": true, "command_hash": "c9", "pre_checks_hash": "p2",
                      "set_env_hashes": {"A": "9", "NEW": "4", "KEEP": "3"},
                      "timeout_seconds": 90.0, "timeout_grace_seconds": 0.5,
                      "retry": {"max": 3, "delay_seconds": 60.0},
                      "resources": {"cpu": 2.0, "memory_bytes": 4294967296}}]}"#;
        assert_eq!(
            changes(before, now).listed,
            [
                "the pipeline's max_parallel 1 → 4",
                "the pipeline's inherit_env \"default\" → true",
                "the pipeline's env `REGION` changed",
                "job `a` changed: when false → true",
                "job `a` changed: command",
                "job `a` changed: pre_checks",
                "job `a` changed: env `A` changed",
                "job `a` changed: env `NEW` added",
                "job `a` changed: env `GONE` removed",
                "job `a` changed: timeout 30s → 1m30s",
                "job `a` changed: timeout_grace 5s → 500ms",
                "job `a` changed: retry.delay 0s → 1m",
                "job `a` changed: retry.max 0 → 3",
                "job `a` changed: resources.cpu none → 2.0",
                "job `a` changed: resources.memory none → 4GiB",
                "the order the jobs run in changed",
            ]
        );
        // A long value is named, not shown.
        let long = |c: &str| format!(r#"{{"jobs": [{{"id": "a", "needs": ["{c}"]}}]}}"#);
        let (x, y) = ("x".repeat(50), "y".repeat(50));
        assert_eq!(
            changes(&long(&x), &long(&y)).listed,
            ["job `a` changed: needs"]
        );
    }

    #[test]
    fn a_long_list_of_changes_is_cut() {
        let changes: Vec<String> = (1..=23).map(|n| format!("change {n}")).collect();
        let listed = listing(&changes);
        assert_eq!(listed.lines().count(), LISTED_AT_MOST + 1);
        assert!(listed.starts_with("  change 1\n  change 2\n"), "{listed}");
        assert!(
            listed.ends_with("  change 20\n  ... and 3 more changes"),
            "{listed}"
        );
        assert_eq!(listing(&changes[..2]), "  change 1\n  change 2");
        assert!(listing(&changes[..21]).ends_with("... and 1 more change"));
    }

    #[test]
    fn what_an_older_exe_did_not_record_is_not_a_change() {
        // An older exe recorded the plan with the file's path and a relative working_dir,
        // the command as (masked) text and the checks as counts, and without the settings
        // added since.
        let before = r#"{"pipeline": {"name": "p", "file": "p.toml", "working_dir": ".", "max_parallel": 1},
            "jobs": [{"id": "a", "command": "x", "layer": 1, "checks": {"pre": 0, "post": 0},
                      "timeout_seconds": null}]}"#;
        let now = r#"{"pipeline": {"name": "p", "working_dir_canonical": "/w", "max_parallel": 1,
                "inherit_env": true, "set_env_hashes": {}},
            "jobs": [{"id": "a", "command_hash": "c1", "layer": 1, "timeout_seconds": null,
                      "when": true, "timeout_grace_seconds": 5.0, "set_env_hashes": {"PATH": "1"},
                      "pre_checks_hash": "p", "post_checks_hash": "p"}]}"#;
        let compared = changes(before, now);
        assert!(compared.listed.is_empty(), "{:?}", compared.listed);
        assert_eq!(
            compared.unrecorded,
            [
                "command",
                "env",
                "inherit_env",
                "post_checks",
                "pre_checks",
                "timeout_grace",
                "when",
                "working_dir"
            ]
        );
        // What it did record still counts.
        let edited = before.replace(r#""timeout_seconds": null"#, r#""timeout_seconds": 5"#);
        assert_eq!(
            changes(&edited, now).listed,
            ["job `a` changed: timeout 5s → none"]
        );
        assert_ne!(digest("abc"), digest("abd"));
    }
}
