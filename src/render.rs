//! Text people read at the end of a run: the summary table and the failures.

use std::fmt::Write as _;
use std::time::Duration;

use crate::model::Pipeline;
use crate::process::Exit;
use crate::runner::Report;
use crate::state::{JobState, RunState};

/// `1.2s`, `3m04s`, `1h02m`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The table of every job (state, attempts, duration, exit), the failures with their
/// reasons and logs, and one closing line.
pub fn summary(pipeline: &Pipeline, report: &Report, run_id: i64) -> String {
    let mut rows = Vec::with_capacity(pipeline.jobs.len());
    for (i, job) in pipeline.jobs.iter().enumerate() {
        let attempts: Vec<_> = report.attempts.iter().filter(|a| a.job == i).collect();
        let took = match (attempts.first(), attempts.last()) {
            (Some(first), Some(last)) => duration(last.ended.saturating_sub(first.started)),
            _ => "-".to_owned(),
        };
        let exit = match attempts.last().and_then(|a| a.exit) {
            Some(Exit::Code(c)) => c.to_string(),
            Some(Exit::Signal(s)) => format!("signal {s}"),
            None => "-".to_owned(),
        };
        let count = if attempts.is_empty() {
            "-".to_owned()
        } else {
            attempts.len().to_string()
        };
        rows.push([
            job.id.0.clone(),
            report.states[i].as_str().to_owned(),
            count,
            took,
            exit,
        ]);
    }
    let header = ["JOB", "STATE", "ATTEMPTS", "DURATION", "EXIT"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &header.map(str::to_owned));
    for row in &rows {
        line(&mut out, row);
    }
    let failures: Vec<usize> = (0..pipeline.jobs.len())
        .filter(|&i| matches!(report.states[i], JobState::Failed | JobState::Timeout))
        .collect();
    if !failures.is_empty() {
        out.push('\n');
        for i in failures {
            let log = report
                .attempts
                .iter()
                .rev()
                .find(|a| a.job == i)
                .map(|a| a.log.display().to_string());
            let _ = writeln!(
                out,
                "{} {}: {}",
                pipeline.jobs[i].id,
                report.states[i].as_str(),
                report.reasons[i]
            );
            if let Some(log) = log {
                let _ = writeln!(out, "  log: {log}");
            }
        }
    }
    let count = |s: JobState| report.states.iter().filter(|x| **x == s).count();
    let _ = writeln!(
        out,
        "\nRun {run_id} {} in {}: {} succeeded, {} failed, {} skipped, {} cancelled.",
        match report.run_state {
            RunState::Success => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "was cancelled",
            RunState::Running => "stopped",
        },
        duration(report.elapsed),
        count(JobState::Success),
        count(JobState::Failed) + count(JobState::Timeout),
        count(JobState::Skipped),
        count(JobState::Cancelled),
    );
    out
}
