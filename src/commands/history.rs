//! `exe runs`, `exe show`, `exe stats` and `exe mark-success`: reading (and auditing) the history.

use std::collections::HashSet;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use crate::cli::{ListFormat, MarkSuccessArgs, RunsArgs, ShowArgs, StatsArgs};
use crate::clock::now_ms;
use crate::error::Error;
use crate::job_ref::JobRef;
use crate::render;
use crate::spec::{DurationError, duration_of};
use crate::store::{
    Access, AttemptRow, Durability, JobRow, RunFilter, RunRow, Store, StoreError, TransitionRow,
};

/// Whether there is no file at `db`. Only that: any other reason it cannot be looked at (a
/// file where a folder of its path should be, a folder this user may not enter) is the
/// open's to say.
pub(super) fn missing(db: &Path) -> bool {
    std::fs::metadata(db).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// The history at `db` opened read-only; `None` when there is none yet.
pub(super) fn open_read(db: &Path) -> Result<Option<Store>, Error> {
    match Store::open(db, Access::ReadOnly, Durability::Normal) {
        Ok(store) => {
            // Runs whose exe died are shown up to where that exe got, journal included.
            crate::recovery::fold_dead_journals(&store, &super::apply::hostname(), now_ms());
            Ok(Some(store))
        }
        // Missing (with no WAL of its own left: the open checks that first).
        Err(StoreError::Open { .. }) if missing(db) => Ok(None),
        // An exe stopped while creating the file left no schema at all: no run is in it, and
        // the next `apply` creates the schema.
        Err(StoreError::NeedsUpgrade { found: 0, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What `runs` and `stats` say when [`open_read`] found no history: an empty list in JSON,
/// so a script reads the same shape as from a history with no matching run.
fn nothing_recorded(db: &Path, format: ListFormat, out: super::Output) -> Result<i32, Error> {
    if format == ListFormat::Json {
        std::io::stdout().write_all(b"[]\n")?;
    } else if db.exists() {
        nothing_to_list(
            &format!("No runs recorded yet ({} holds none).", db.display()),
            out,
        );
    } else {
        nothing_to_list(
            &format!("No runs recorded yet ({} does not exist).", db.display()),
            out,
        );
    }
    Ok(0)
}

/// Says why a text list is empty: on stderr, and not with `-q`. It is a message, not a row,
/// as exe's other messages are: standard output stays empty, as a list with no row.
fn nothing_to_list(message: &str, out: super::Output) {
    if !out.quiet {
        stderrln!("{message}");
    }
}

pub(super) fn no_history(db: &Path) -> Error {
    Error::Usage {
        message: format!("there is no run history at {}", db.display()),
        help: Some("runs are recorded by `exe apply` in .exe/history.db of the folder it runs in; --db or EXE_DB picks another".to_owned()),
    }
}

pub(super) fn runs(args: &RunsArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let now = now_ms();
    let when = |text: &Option<String>, flag: &str| -> Result<Option<i64>, Error> {
        text.as_deref()
            .map(|t| parse_when(t, now).map_err(|why| not_a_time(flag, t, why)))
            .transpose()
    };
    let filter = RunFilter {
        name: args.name.clone(),
        state: args.status.as_ref().map(|s| s.to_ascii_uppercase()),
        since_ms: when(&args.since, "--since")?,
        until_ms: when(&args.until, "--until")?,
        finished: false,
        limit: args.limit,
    };
    // The flags are checked first: a mistyped time is an error even before anything is recorded.
    let Some(store) = open_read(db)? else {
        return nothing_recorded(db, args.format, out);
    };
    let mut rows = store.runs(&filter)?;
    if rows.is_empty() && args.format == ListFormat::Text {
        nothing_to_list("No runs match.", out);
        return Ok(0);
    }
    let text = match args.format {
        ListFormat::Json => serde_json::to_string_pretty(&rows).expect("rows serialize") + "\n",
        ListFormat::Text => {
            let host = super::apply::hostname();
            let mut gone = HashSet::new();
            for run in &mut rows {
                if mark_gone(run, &host, now) {
                    gone.insert(run.id);
                }
            }
            // Listing reads no attempts: a gone run's last heartbeat is its last sign here.
            render::runs_table(&rows, |r| {
                if gone.contains(&r.id) {
                    r.heartbeat_at_ms.unwrap_or(r.started_at_ms)
                } else {
                    now
                }
            })
        }
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(0)
}

pub(super) fn show(args: &ShowArgs, db: &Path) -> Result<i32, Error> {
    let store = open_read(db)?.ok_or_else(|| no_history(db))?;
    let run = store.run(args.run)?;
    let jobs = store.jobs(args.run)?;
    let attempts = store.attempts(args.run)?;
    match args.format {
        ListFormat::Json => {
            let transitions = store.transitions(args.run)?;
            let document = RunDocument {
                run: &run,
                jobs: &jobs,
                attempts: &attempts,
                transitions: &transitions,
            };
            // Written as it is serialized: a 10,000-job run is about 11 MB of JSON.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &document).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        ListFormat::Text => {
            let mut run = run;
            let now = now_ms();
            let until = if mark_gone(&mut run, &super::apply::hostname(), now) {
                crate::recovery::last_sign_of_life(&run, &attempts)
            } else {
                now
            };
            let text = render::run_detail(&run, &jobs, &attempts, until);
            std::io::stdout().write_all(text.as_bytes())?;
        }
    }
    Ok(0)
}

/// Shows a RUNNING run whose exe is gone as such: it stays RUNNING in the history until
/// the next exe that writes it (`apply`, `mark-success`) closes it as CANCELLED. Returns
/// whether it is gone (it then lasted until its last sign of life, not until now).
fn mark_gone(run: &mut RunRow, host: &str, now: i64) -> bool {
    let gone = run.state == "RUNNING" && crate::recovery::orphaned(run, host, now);
    if gone {
        "RUNNING (exe gone)".clone_into(&mut run.state);
    }
    gone
}

/// What `exe show --format json` prints, in this order.
#[derive(serde::Serialize)]
struct RunDocument<'a> {
    run: &'a RunRow,
    jobs: &'a [JobRow],
    attempts: &'a [AttemptRow],
    transitions: &'a [TransitionRow],
}

pub(super) fn mark_success(args: &MarkSuccessArgs, db: &Path) -> Result<i32, Error> {
    if missing(db) {
        return Err(no_history(db));
    }
    let mut store = Store::open(db, Access::ReadWrite, Durability::Normal)?;
    super::apply::close_orphans(&mut store, false)?;
    super::apply::refuse_running(&store.run(args.run)?, "mark its jobs")?;
    let known = store.jobs(args.run)?;
    let mut to_mark: Vec<&str> = Vec::new();
    // By the run each job's work was done in: this one, or the one it was carried over from.
    let mut already: Vec<(i64, &str)> = Vec::new();
    for job in &args.jobs {
        // A matrix job's name, or some of its pairs, marks each expansion it names.
        let reference = JobRef::parse(job);
        let mut rows = known.iter().filter(|j| reference.names(&j.id)).peekable();
        if rows.peek().is_none() {
            let hint = reference.hint(known.iter().map(|j| j.id.as_str()));
            return Err(Error::Usage {
                message: format!("run {} has no job `{job}`", args.run),
                help: Some(
                    hint.unwrap_or_else(|| format!("`exe show {}` lists its jobs", args.run)),
                ),
            });
        }
        for row in rows {
            // A job carried over as done, or skipped as up to date, is done like one that
            // succeeded: a SKIPPED-to-SUCCESS row would say nothing more.
            match crate::resume::done_in(row, args.run) {
                Some(run) if !already.contains(&(run, row.id.as_str())) => {
                    already.push((run, &row.id));
                }
                Some(_) => {}
                None if !to_mark.contains(&row.id.as_str()) => to_mark.push(&row.id),
                None => {}
            }
        }
    }
    let done = |jobs: &[(i64, &str)]| {
        let mut runs: Vec<i64> = jobs.iter().map(|(run, _)| *run).collect();
        runs.sort_unstable();
        runs.dedup();
        for run in runs {
            let ids: Vec<&str> = (jobs.iter().filter(|(r, _)| *r == run))
                .map(|(_, id)| *id)
                .collect();
            stderrln!(
                "{} already succeeded in run {run}: nothing recorded for {}.",
                ids.join(", "),
                if ids.len() == 1 { "it" } else { "them" }
            );
        }
    };
    done(&already);
    if to_mark.is_empty() {
        return Ok(0);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage {
                message: "mark-success asks for confirmation, and standard input is not a terminal"
                    .to_owned(),
                help: Some("pass --yes to confirm from a script".to_owned()),
            });
        }
        let question = format!(
            "Record {} of run {} as successful?",
            to_mark.join(", "),
            args.run
        );
        if !super::confirm(&question)? {
            stderrln!("Nothing recorded.");
            return Ok(1);
        }
    }
    let user = super::apply::user();
    let actor = format!("{user}@{}", super::apply::hostname());
    let mut marked = Vec::new();
    let mut meanwhile = Vec::new();
    for job in to_mark {
        if store.mark_success(args.run, job, &actor, &args.reason, now_ms())? {
            marked.push(job);
        } else {
            // Marked by someone else since the states above were read.
            meanwhile.push((args.run, job));
        }
    }
    done(&meanwhile);
    if !marked.is_empty() {
        stderrln!(
            "Recorded {} of run {} as successful ({actor}: {}).",
            marked.join(", "),
            args.run,
            args.reason
        );
    }
    Ok(0)
}

/// One job's figures over the runs looked at. A job is known by its pipeline's name and its
/// id: two pipelines may each have a job `build`, and their figures are not one job's.
#[derive(Debug, serde::Serialize)]
pub struct JobStats {
    /// The name of the pipeline the job is in.
    pub pipeline: String,
    /// The job id.
    pub job: String,
    /// Runs in which it ran (at least one attempt).
    pub runs: usize,
    /// Of those, runs it ended FAILED or TIMEOUT in.
    pub failed: usize,
    /// Median, 95th percentile and longest duration (first attempt start to last attempt end), ms.
    pub p50_ms: i64,
    /// 95th percentile, ms.
    pub p95_ms: i64,
    /// Longest, ms.
    pub max_ms: i64,
}

pub(super) fn stats(args: &StatsArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let Some(store) = open_read(db)? else {
        return nothing_recorded(db, args.format, out);
    };
    // The last `last` runs that have ended, newest first (runs still going are passed over).
    let finished = store.runs(&RunFilter {
        name: args.name.clone(),
        finished: true,
        limit: args.last as usize,
        ..RunFilter::default()
    })?;
    let mut by_job: std::collections::BTreeMap<(String, String), (Vec<i64>, usize)> =
        std::collections::BTreeMap::new();
    for run in &finished {
        let jobs = store.jobs(run.id)?;
        let attempts = store.attempts(run.id)?;
        let spans = render::attempt_spans(jobs.len(), &attempts);
        for job in jobs {
            let Some(Some((start, last))) = spans.get(job.index) else {
                continue;
            };
            let Some(end) = last.ended_at_ms else {
                continue;
            };
            let entry = by_job.entry((run.name.clone(), job.id)).or_default();
            entry.0.push(end - start);
            // What ran, not what was recorded since: a failure later marked successful
            // still failed.
            let failed = matches!(last.outcome.as_deref(), Some("FAILED" | "TIMEOUT"));
            entry.1 += usize::from(failed);
        }
    }
    let rows: Vec<JobStats> = by_job
        .into_iter()
        .map(|((pipeline, job), (mut durations, failed))| {
            durations.sort_unstable();
            JobStats {
                pipeline,
                job,
                runs: durations.len(),
                failed,
                p50_ms: percentile(&durations, 50),
                p95_ms: percentile(&durations, 95),
                max_ms: durations.last().copied().unwrap_or(0),
            }
        })
        .collect();
    let text = match args.format {
        ListFormat::Json => serde_json::to_string_pretty(&rows).expect("stats serialize") + "\n",
        ListFormat::Text if finished.is_empty() => {
            let of = (args.name.as_deref())
                .map(|n| format!(" of `{n}`"))
                .unwrap_or_default();
            nothing_to_list(&format!("No finished runs{of} to look at."), out);
            return Ok(0);
        }
        ListFormat::Text if rows.is_empty() => {
            let runs = finished.len();
            let plural = if runs == 1 { "" } else { "s" };
            nothing_to_list(
                &format!("No job ran in the last {runs} finished run{plural}."),
                out,
            );
            return Ok(0);
        }
        ListFormat::Text => render::stats_table(&rows, finished.len()),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(0)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Why a `--since` or `--until` value is not a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotATime {
    /// A number without a unit: a year, a Unix time and an age in seconds look alike, so exe
    /// does not guess (a pipeline's durations take bare seconds; a point in time does not).
    BareNumber,
    /// An age longer than any duration exe takes (100 years).
    AgeTooLarge,
    /// Neither a date nor an age.
    Unknown,
}

/// The usage error for `flag text`, which is not a time because of `why`.
fn not_a_time(flag: &str, text: &str, why: NotATime) -> Error {
    let (problem, help) = match why {
        NotATime::BareNumber => {
            let number = text.trim();
            let year = number.len() == 4 && number.bytes().all(|b| b.is_ascii_digit());
            let date = if year {
                format!("`{number}-01-01`")
            } else {
                "`2026-11-26` (or `2026-11-26T08:00`, UTC)".to_owned()
            };
            let seconds = format!("{number}s");
            let age = if duration_of(&seconds).is_ok() {
                format!("`{seconds}`")
            } else {
                "`2h`".to_owned()
            };
            (
                "a bare number is not a time",
                format!("write {date} for a date, or {age} for an age (units: ms, s, m, h, d)"),
            )
        }
        NotATime::AgeTooLarge => (
            "the age is too large: at most 100 years (`36500d`)",
            "for a time longer ago, write its date (`1970-01-01`)".to_owned(),
        ),
        NotATime::Unknown => (
            "not a time",
            "write a date (`2026-11-26`), a date and time (`2026-11-26T08:00`, UTC), or an age \
             (`2h`)"
                .to_owned(),
        ),
    };
    Error::Usage {
        message: format!("`{flag} {text}`: {problem}"),
        help: Some(help),
    }
}

/// `2026-11-26`, `2026-11-26T08:00[:SS]` (UTC), or an age such as `2h` (before `now`).
fn parse_when(text: &str, now_ms: i64) -> Result<i64, NotATime> {
    if text.trim().parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(NotATime::BareNumber);
    }
    match duration_of(text) {
        Ok(age) => {
            return i64::try_from(age.as_millis())
                .ok()
                .and_then(|age| now_ms.checked_sub(age))
                .ok_or(NotATime::AgeTooLarge);
        }
        Err(DurationError::TooLong) => return Err(NotATime::AgeTooLarge),
        Err(DurationError::Invalid) => {}
    }
    parse_date(text).ok_or(NotATime::Unknown)
}

/// `2026-11-26` or `2026-11-26T08:00[:SS]` (UTC), in milliseconds since the Unix epoch.
fn parse_date(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let numbers = |text: &str, sep: char| -> Option<Vec<i64>> {
        text.split(sep).map(|p| p.parse().ok()).collect()
    };
    let (date, time) = (numbers(date, '-')?, numbers(time, ':')?);
    let [year, month, day] = date[..] else {
        return None;
    };
    let (hour, minute, second) = match time[..] {
        [h, m] => (h, m, 0),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    let valid = (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..61).contains(&second);
    if !valid {
        return None;
    }
    Some(
        ((render::days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60_000
            + second * 1000,
    )
}

/// The days of `month` (1 to 12) in `year`, by the Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&values, 50), 10);
        assert_eq!(percentile(&values, 95), 19);
        assert_eq!(percentile(&[7], 95), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn times_and_ages() {
        assert_eq!(parse_when("1970-01-02", 0), Ok(86_400_000));
        assert_eq!(parse_when("2026-11-26T08:00", 0), Ok(1_795_680_000_000));
        assert_eq!(parse_when("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert_eq!(parse_when("2026-13-01", 0), Err(NotATime::Unknown));
        for impossible in [
            "2026-02-29",
            "2026-02-30",
            "2026-11-31",
            "1900-02-29",
            "0-01-01",
        ] {
            assert_eq!(
                parse_when(impossible, 0),
                Err(NotATime::Unknown),
                "{impossible}"
            );
        }
        for leap in ["2024-02-29", "2000-02-29"] {
            assert!(parse_when(leap, 0).is_ok(), "{leap}");
        }
        assert_eq!(
            parse_when("99999999999999-01-01", 0),
            Err(NotATime::Unknown)
        );
        assert_eq!(parse_when("yesterday", 0), Err(NotATime::Unknown));
        assert_eq!(parse_when("inf", 0), Err(NotATime::Unknown));
    }

    #[test]
    fn a_bare_number_is_no_time_and_an_age_has_a_limit() {
        for bare in ["2026", "1795785597", "0", "1.5", " 42 ", "-3"] {
            assert_eq!(parse_when(bare, 0), Err(NotATime::BareNumber), "{bare}");
        }
        assert_eq!(parse_when("2026s", 3_000_000), Ok(3_000_000 - 2_026_000));
        assert_eq!(parse_when("99999d", 0), Err(NotATime::AgeTooLarge));
        assert!(parse_when("36500d", 0).is_ok());
    }

    #[test]
    fn a_bare_number_gets_a_date_and_an_age_made_of_it() {
        let help = |text| match not_a_time("--since", text, NotATime::BareNumber) {
            Error::Usage { help, .. } => help.unwrap(),
            other => panic!("{other}"),
        };
        assert_eq!(
            help("2026"),
            "write `2026-01-01` for a date, or `2026s` for an age (units: ms, s, m, h, d)"
        );
        assert!(help("1795785597").contains("`2026-11-26`"));
        assert!(help("1795785597").contains("`1795785597s`"));
        assert!(
            help("9999999999999").contains("`2h`"),
            "no age above 100 years"
        );
    }
}
