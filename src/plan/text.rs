//! `exe plan` for people: a header, the jobs layer by layer with what matters about each,
//! the critical path, and one summary line scripts can grep (`Plan: 3 to run, 1 skipped.`).
//!
//! Commands are shown by their first line only (the JSON has them whole) and every text
//! that could hold a secret goes through the view's masker.

use std::fmt::Write as _;

use crate::model::{Job, RetryPolicy};
use crate::plan::{Plan, Step, View, duration_text, explain, shown_env, size_text, tidy_path};
use crate::render::{printable, printable_line};
use crate::spec::RetryStatus;

/// Where the details under a job line start.
const INDENT: &str = "        ";

/// Renders the whole plan, explanations first.
pub fn render(plan: &Plan<'_>, view: &View<'_>) -> String {
    let mut out = String::new();
    if !view.explanations.is_empty() {
        out.push_str("Explain:\n");
        for e in view.explanations {
            out.push_str(&explain::render_text(e));
        }
        out.push('\n');
    }
    header(plan, &mut out);
    for (i, layer) in plan.by_layer().iter().enumerate() {
        let _ = writeln!(out, "\nLayer {}", i + 1);
        for step in layer {
            job(plan, step, view, &mut out);
        }
    }
    out.push('\n');
    critical_path(plan, &mut out);
    let _ = writeln!(
        out,
        "\nPlan: {} to run, {} skipped.",
        plan.to_run, plan.skipped
    );
    out
}

fn header(plan: &Plan<'_>, out: &mut String) {
    let p = plan.pipeline;
    let _ = writeln!(out, "Pipeline:     {}", printable_line(&p.name));
    let file = p.file.display().to_string();
    let _ = writeln!(out, "File:         {}", printable_line(&file));
    let _ = writeln!(
        out,
        "Working dir:  {}",
        printable_line(&tidy_path(&p.working_dir))
    );
    let _ = writeln!(out, "Max parallel: {}", plan.max_parallel);
    let _ = writeln!(
        out,
        "On failure:   {}",
        if p.continue_on_error {
            "keep running the jobs that do not depend on it"
        } else {
            "start no more jobs"
        }
    );
}

fn job(plan: &Plan<'_>, step: &Step, view: &View<'_>, out: &mut String) {
    let job = plan.job(step);
    let (word, colour) = if step.decision.runs() {
        ("run ", "32")
    } else {
        ("skip", "33")
    };
    if view.color {
        let _ = writeln!(out, "  \x1b[{colour}m{word}\x1b[0m  {}", job.id);
    } else {
        let _ = writeln!(out, "  {word}  {}", job.id);
    }
    let mut detail = |label: &str, text: &str| {
        let _ = writeln!(out, "{INDENT}{label}: {}", printable(text));
    };
    if let Some(reason) = step.decision.reason() {
        detail("reason", &reason);
    }
    if let Some(changes) = step.changes.as_ref().filter(|c| !c.is_empty()) {
        detail("why", &changes.join("; "));
    }
    let needs = plan.needs(job);
    if !needs.is_empty() {
        detail("needs", &needs.join(", "));
    }
    detail(
        "command",
        &command_line(&view.masker.mask(job.command.display())),
    );
    if let Some(timeout) = job.timeout {
        detail("timeout", &duration_text(timeout));
    }
    if let Some(retry) = retry_summary(&job.retry) {
        detail("retry", &retry);
    }
    if let Some(resources) = resources(job) {
        detail("resources", &resources);
    }
    if let Some(checks) = checks(job) {
        detail("checks", &checks);
    }
    if job.priority != 0 {
        detail("priority", &job.priority.to_string());
    }
    if view.show_env && step.decision.runs() {
        let env = shown_env(plan.pipeline, job, view.masker);
        if env.is_empty() {
            detail("env", "(empty)");
        } else {
            let _ = writeln!(out, "{INDENT}env:");
            for (k, v) in env {
                let _ = writeln!(out, "{INDENT}  {}={}", printable(&k), printable(&v));
            }
        }
    }
}

/// Longer first lines of commands are cut here, so a job's block stays one screen wide.
const COMMAND_WIDTH: usize = 72;

/// The first line of a command, and how many more there are.
fn command_line(command: &str) -> String {
    let mut lines = command.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap_or_default().to_owned();
    if first.chars().count() > COMMAND_WIDTH {
        first = first.chars().take(COMMAND_WIDTH - 1).collect::<String>() + "…";
    }
    match lines.count() {
        0 => first,
        1 => format!("{first}  (+1 line)"),
        n => format!("{first}  (+{n} lines)"),
    }
}

/// `3 more after 10s, x2 backoff, ±10% jitter, within 15m, on FAILED/TIMEOUT or exit 1,75`;
/// `None` without retries.
pub fn retry_summary(r: &RetryPolicy) -> Option<String> {
    if r.max == 0 {
        return None;
    }
    let mut parts = vec![if r.delay.is_zero() {
        format!("{} more at once", r.max)
    } else {
        format!("{} more after {}", r.max, duration_text(r.delay))
    }];
    if (r.backoff - 1.0).abs() > f64::EPSILON {
        parts.push(format!("x{} backoff", round(r.backoff)));
    }
    if r.jitter > 0.0 {
        parts.push(format!("±{}% jitter", round(r.jitter * 100.0)));
    }
    if let Some(max_time) = r.max_time {
        parts.push(format!("within {}", duration_text(max_time)));
    }
    let statuses: Vec<&str> = r
        .on_status
        .iter()
        .map(|s| match s {
            RetryStatus::Failed => "FAILED",
            RetryStatus::Timeout => "TIMEOUT",
        })
        .collect();
    let codes: Vec<String> = r.on_exit_codes.iter().map(ToString::to_string).collect();
    parts.push(match (statuses.is_empty(), codes.is_empty()) {
        (false, true) => format!("on {}", statuses.join("/")),
        (false, false) => format!("on {} or exit {}", statuses.join("/"), codes.join(",")),
        (true, false) => format!("on exit {}", codes.join(",")),
        (true, true) => "on nothing (no on_status or on_exit_codes)".to_owned(),
    });
    Some(parts.join(", "))
}

/// A factor without float noise: `2`, `1.5`, `7` (not `7.000000000000001`).
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn resources(job: &Job) -> Option<String> {
    let r = job.resources;
    let mut parts = Vec::new();
    if r.cpu > 0.0 {
        let unit = if (r.cpu - 1.0).abs() < f64::EPSILON {
            "CPU"
        } else {
            "CPUs"
        };
        parts.push(format!("{} {unit}", round(r.cpu)));
    }
    if r.memory > 0 {
        parts.push(format!("{} memory", size_text(r.memory)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn checks(job: &Job) -> Option<String> {
    let mut parts = Vec::new();
    if !job.pre_checks.is_empty() {
        parts.push(format!("{} before", job.pre_checks.len()));
    }
    if !job.post_checks.is_empty() {
        parts.push(format!("{} after", job.post_checks.len()));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn critical_path(plan: &Plan<'_>, out: &mut String) {
    let jobs = &plan.pipeline.jobs;
    match plan.critical_path.len() {
        0 => out.push_str("Critical path: none (nothing runs)\n"),
        n => {
            let ids: Vec<&str> = plan
                .critical_path
                .iter()
                .map(|&j| jobs[j].id.0.as_str())
                .collect();
            let noun = if n == 1 { "job" } else { "jobs" };
            let _ = writeln!(out, "Critical path ({n} {noun}): {}", ids.join(" -> "));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max: 3,
            delay: Duration::from_secs(10),
            backoff: 2.0,
            jitter: 0.1,
            max_time: None,
            on_exit_codes: vec![1, 75],
            on_status: vec![RetryStatus::Failed, RetryStatus::Timeout],
        }
    }

    #[test]
    fn retry_summaries_read_as_one_sentence() {
        assert_eq!(
            retry_summary(&policy()).unwrap(),
            "3 more after 10s, x2 backoff, ±10% jitter, on FAILED/TIMEOUT or exit 1,75"
        );
        let r = RetryPolicy {
            max: 1,
            delay: Duration::ZERO,
            backoff: 1.0,
            jitter: 0.07,
            max_time: Some(Duration::from_mins(15)),
            on_exit_codes: vec![],
            on_status: vec![RetryStatus::Timeout],
        };
        assert_eq!(
            retry_summary(&r).unwrap(),
            "1 more at once, ±7% jitter, within 15m, on TIMEOUT"
        );
        assert_eq!(retry_summary(&RetryPolicy { max: 0, ..policy() }), None);
    }

    #[test]
    fn commands_show_their_first_line() {
        assert_eq!(command_line("make"), "make");
        assert_eq!(command_line("\nset -e\nmake\n\n"), "set -e  (+1 line)");
        assert_eq!(command_line("a\nb\nc"), "a  (+2 lines)");
        let long = "x".repeat(100);
        assert_eq!(command_line(&long), format!("{}…", "x".repeat(71)));
    }
}
