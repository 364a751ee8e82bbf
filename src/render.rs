//! Text people read at the end of a run: the summary table and the failures.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use unicode_width::UnicodeWidthStr as _;

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

/// ", cpu 12.5 ms, max RSS 3.2 MiB" for an attempt whose usage was recorded, else "".
fn usage(a: &crate::store::AttemptRow) -> String {
    let (Some(user), Some(system)) = (a.user_cpu_us, a.system_cpu_us) else {
        return String::new();
    };
    #[allow(clippy::cast_precision_loss)] // display only
    let cpu_ms = (user + system) as f64 / 1000.0;
    let mut text = if cpu_ms < 1000.0 {
        format!(", cpu {cpu_ms:.1} ms")
    } else {
        format!(", cpu {:.2} s", cpu_ms / 1000.0)
    };
    if let Some(kib) = a.max_rss_kib {
        #[allow(clippy::cast_precision_loss)] // display only
        let _ = write!(text, ", max RSS {:.1} MiB", kib as f64 / 1024.0);
    }
    text
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
        rows.push(vec![
            job.id.0.clone(),
            report.states[i].as_str().to_owned(),
            count,
            took,
            exit,
        ]);
    }
    let mut out = table(&["JOB", "STATE", "ATTEMPTS", "DURATION", "EXIT"], &rows);
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
                printable(&pipeline.jobs[i].id.0),
                report.states[i].as_str(),
                printable(&report.reasons[i])
            );
            if let Some(log) = log {
                let _ = writeln!(out, "  log: {}", printable(&log));
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

/// Days since 1970-01-01 of a (proleptic Gregorian) date.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-26 08:03:12` (UTC) for milliseconds since the Unix epoch.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `text` with its control characters but tab written as escapes (`\u{1b}`): text from a
/// pipeline file or the history must not drive the terminal it is shown on.
pub fn printable(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c.is_control() && c != '\t')
}

/// [`printable`], tab escaped too: for what must stay one line with its neighbours in place
/// (a name or a path after a label, a table cell), where a tab would only look like spaces.
pub fn printable_line(text: &str) -> Cow<'_, str> {
    escaped(text, char::is_control)
}

/// `text` with the characters `control` picks written as escapes.
fn escaped(text: &str, control: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if control(c) {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Columns padded to their widest cell, as the terminal shows them: every control character
/// escaped (tab too: a row is one line with its columns in place), and widths counted in
/// columns (`日本` takes four), not in characters.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let all: Vec<Vec<Cow<'_, str>>> = std::iter::once(header.iter().map(|h| (*h).into()).collect())
        .chain(
            rows.iter()
                .map(|row| row.iter().map(|c| printable_line(c)).collect()),
        )
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &all {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let mut out = String::new();
    for row in all {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.width())))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// `exe runs`: newest first. A run not finished has lasted until `until` says (now, or
/// the last sign of life of one whose exe is gone).
pub fn runs_table(
    rows: &[crate::store::RunRow],
    until: impl Fn(&crate::store::RunRow) -> i64,
) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let took = duration(millis(
                r.ended_at_ms.unwrap_or_else(|| until(r)) - r.started_at_ms,
            ));
            vec![
                r.id.to_string(),
                r.name.clone(),
                r.state.clone(),
                timestamp(r.started_at_ms),
                if r.ended_at_ms.is_some() {
                    took
                } else {
                    format!("{took}+")
                },
                r.exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                r.resumed_from
                    .map_or_else(String::new, |p| format!("resumes {p}")),
            ]
        })
        .collect();
    table(
        &[
            "RUN",
            "PIPELINE",
            "STATE",
            "STARTED (UTC)",
            "DURATION",
            "EXIT",
            "",
        ],
        &body,
    )
}

/// `exe show`: the run, its jobs, and every attempt with its log. Not finished, the run has
/// lasted until `until_ms` (now, or the last sign of life of one whose exe is gone).
pub fn run_detail(
    run: &crate::store::RunRow,
    jobs: &[crate::store::JobRow],
    attempts: &[crate::store::AttemptRow],
    until_ms: i64,
) -> String {
    let mut out = String::new();
    let took = duration(millis(
        run.ended_at_ms.unwrap_or(until_ms) - run.started_at_ms,
    ));
    let _ = writeln!(
        out,
        "Run {}: {} {}",
        run.id,
        printable_line(&run.name),
        run.state
    );
    let _ = writeln!(out, "  file:     {}", printable_line(&run.file));
    let by = if run.imported() {
        "the older executioner (imported)".to_owned()
    } else {
        format!(
            "{}@{} (pid {})",
            printable_line(&run.user),
            printable_line(&run.host),
            run.pid
        )
    };
    let _ = writeln!(
        out,
        "  started:  {} UTC by {by}",
        timestamp(run.started_at_ms)
    );
    let _ = writeln!(
        out,
        "  duration: {took}{}",
        if run.ended_at_ms.is_some() {
            ""
        } else {
            " (not finished)"
        }
    );
    if let Some(code) = run.exit_code {
        let _ = writeln!(out, "  exit:     {code}");
    }
    if let Some(previous) = run.resumed_from {
        let _ = writeln!(out, "  resumes:  run {previous}");
    }
    out.push('\n');
    // A job's duration spans all its attempts, as in `exe stats`.
    let spans = attempt_spans(jobs.len(), attempts);
    let body: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let span = spans.get(j.index).copied().flatten();
            let last = span.map(|(_, a)| a);
            let exit = match last {
                Some(a) => match (a.exit_code, a.signal) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => "-".to_owned(),
                },
                None => "-".to_owned(),
            };
            let took = span.map_or_else(
                || "-".to_owned(),
                |(first, a)| duration(millis(a.ended_at_ms.unwrap_or(until_ms) - first)),
            );
            vec![
                j.id.clone(),
                j.state.clone(),
                j.attempts.to_string(),
                took,
                exit,
                j.reason.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["JOB", "STATE", "ATTEMPTS", "DURATION", "EXIT", "REASON"],
        &body,
    ));
    if !attempts.is_empty() {
        out.push_str("\nAttempts:\n");
        for a in attempts {
            let outcome = a.outcome.as_deref().unwrap_or("RUNNING");
            // Why it ended so (`exit code 3`, an imported job's last error), on its line.
            let reason = (a.reason.as_deref())
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({})", printable(&r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} #{} {} {}{reason}{}  {}",
                printable(&a.job_id),
                a.number,
                timestamp(a.started_at_ms),
                outcome,
                usage(a),
                printable(&a.log_path)
            );
        }
    }
    out
}

/// For each of a run's `jobs` jobs (by index), its first attempt's start and its last
/// attempt, in one pass over `attempts` (they come in the order they started).
pub fn attempt_spans(
    jobs: usize,
    attempts: &[crate::store::AttemptRow],
) -> Vec<Option<(i64, &crate::store::AttemptRow)>> {
    let mut spans: Vec<Option<(i64, &crate::store::AttemptRow)>> = vec![None; jobs];
    for a in attempts {
        if let Some(span) = spans.get_mut(a.job) {
            let first = span.map_or(a.started_at_ms, |(first, _)| first);
            *span = Some((first, a));
        }
    }
    spans
}

/// `exe stats`: the figures of `rows` over the `runs` finished runs looked at.
pub fn stats_table(rows: &[crate::commands::JobStats], runs: usize) -> String {
    let plural = if runs == 1 { "" } else { "s" };
    let ms = |v: i64| duration(millis(v));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.pipeline.clone(),
                r.job.clone(),
                r.runs.to_string(),
                failure_rate(r.failed, r.runs),
                ms(r.p50_ms),
                ms(r.p95_ms),
                ms(r.max_ms),
            ]
        })
        .collect();
    let mut out = format!("Over the last {runs} finished run{plural}:\n");
    out.push_str(&table(
        &["PIPELINE", "JOB", "RUNS", "FAILED", "P50", "P95", "MAX"],
        &body,
    ));
    out
}

/// `failed` out of `runs` as a whole percentage, except where rounding would hide what
/// happened: one failure in 201 runs is `<1%`, not `0%`, and 200 of 201 `>99%`, not `100%`.
fn failure_rate(failed: usize, runs: usize) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let rate = 100.0 * failed as f64 / runs.max(1) as f64;
    let shown = format!("{rate:.0}%");
    match shown.as_str() {
        "0%" if failed > 0 => "<1%".to_owned(),
        "100%" if failed < runs => ">99%".to_owned(),
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(
            printable("\u{7}\u{1b}[31mred\tx"),
            "\\u{7}\\u{1b}[31mred\tx"
        );
        assert_eq!(printable_line("X\tZ"), "X\\tZ");
    }

    #[test]
    fn table_cells_are_one_line_and_aligned_by_display_width() {
        let rows = vec![
            vec!["日本".to_owned(), "x".to_owned()],
            vec!["bad\nname\u{1b}[31m\tRED".to_owned(), "y".to_owned()],
            vec!["ab".to_owned(), "z".to_owned()],
        ];
        assert_eq!(
            table(&["NAME", "V"], &rows),
            "NAME                      V\n\
             日本                      x\n\
             bad\\nname\\u{1b}[31m\\tRED  y\n\
             ab                        z\n"
        );
    }

    #[test]
    fn failure_rates_round_but_never_to_none_or_all() {
        assert_eq!(failure_rate(0, 201), "0%");
        assert_eq!(failure_rate(1, 201), "<1%");
        assert_eq!(failure_rate(1, 3), "33%");
        assert_eq!(failure_rate(1, 199), "1%");
        assert_eq!(failure_rate(200, 201), ">99%");
        assert_eq!(failure_rate(201, 201), "100%");
        assert_eq!(failure_rate(0, 0), "0%");
    }
}
