//! The older tool's rows as `SQLite` returns them, and what exe makes of them.
//!
//! `SQLite` keeps any value in any column (`'abc'` in a REAL column, a date written as
//! `03/03/2024 01:00`), so each value is read as it is and judged here, one row at a time:
//! a value that is not what its column holds is reported as a [`Problem`] and the row is
//! imported without it, and a row exe cannot import at all (no run id, no job id, a run
//! with no time to order it by) is left out and reported. One bad row never stops the
//! import of the others.

use std::collections::HashMap;

use rusqlite::types::Value;

/// A row or value of the old history that is not imported as it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A run with no start time exe can read (`start_time`, or for a run without a summary,
    /// every `last_run` of its jobs): exe orders runs by their start, so it is left out.
    #[error(
        "run {run}: neither its start_time ({value}) nor a last_run of its jobs is a date and \
         time: not imported"
    )]
    NoStart {
        /// The older tool's run id.
        run: i64,
        /// The value written, as SQL shows it.
        value: String,
    },
    /// A `job_history` row whose `run_id` is not a run id (NULL, text): left out.
    #[error("job_history row of job {job} has run_id {value}, not a run id: not imported")]
    NoRun {
        /// The row's job id, as SQL shows it.
        job: String,
        /// Its `run_id`, as SQL shows it.
        value: String,
    },
    /// A `run_summary` row whose `run_id` is not a run id (NULL, text): left out.
    #[error("run_summary row of {name} has run_id {value}, not a run id: not imported")]
    SummaryWithoutRun {
        /// Its `application_name`, as SQL shows it.
        name: String,
        /// Its `run_id`, as SQL shows it.
        value: String,
    },
    /// Several `run_summary` rows of one run id: the first is imported.
    #[error("run {run}: {rows} run_summary rows; only the first is imported")]
    RepeatedRun {
        /// The older tool's run id.
        run: i64,
        /// How many rows it has.
        rows: usize,
    },
    /// A `job_history` row without a job id: left out.
    #[error("run {run}: a job_history row has id NULL: not imported")]
    NoJobId {
        /// The older tool's run id.
        run: i64,
    },
    /// Several `job_history` rows of one job in one run (the older tool kept one, its final
    /// state): the last, by `last_run`, is imported.
    #[error(
        "run {run}, job `{job}`: {rows} job_history rows; only the last (by last_run) is imported"
    )]
    RepeatedJob {
        /// The older tool's run id.
        run: i64,
        /// The job's id.
        job: String,
        /// How many rows it has.
        rows: usize,
    },
    /// A value that is not what its column holds: its row is imported without it.
    #[error("run {run}{job}: {column} {value} is not {expected}: imported without it")]
    BadValue {
        /// The older tool's run id.
        run: i64,
        /// `, job` and the job's id for a `job_history` value; empty for a `run_summary` one.
        job: String,
        /// The column.
        column: &'static str,
        /// The value written, as SQL shows it.
        value: String,
        /// What the column holds.
        expected: &'static str,
    },
}

impl Problem {
    /// Whether a whole row was left out (rather than imported without one value).
    pub fn left_out(&self) -> bool {
        !matches!(self, Problem::BadValue { .. })
    }
}

/// A value as SQL writes it: `NULL`, `12`, `'text'`.
pub fn shown(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Value::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// A text column's value as text (a number as its digits); `None` for NULL.
pub fn text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Integer(n) => Some(n.to_string()),
        Value::Real(x) => Some(x.to_string()),
        Value::Text(t) => Some(t),
        Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// A time column: its value and, if `SQLite` reads it as a time, milliseconds since the epoch.
pub struct Time {
    pub value: Value,
    pub ms: Option<i64>,
}

impl Time {
    /// The time, `None` for NULL; a value that is not a time is reported as `column` of the
    /// row and read as NULL.
    fn read(self, column: &'static str, row: &Row, problems: &mut Vec<Problem>) -> Option<i64> {
        if self.ms.is_none() && self.value != Value::Null {
            problems.push(row.bad(column, &self.value, "a date and time"));
        }
        self.ms
    }
}

/// Which row a value is in, to report it.
struct Row<'a> {
    run: i64,
    job: Option<&'a str>,
}

impl Row<'_> {
    fn bad(&self, column: &'static str, value: &Value, expected: &'static str) -> Problem {
        Problem::BadValue {
            run: self.run,
            job: self.job.map(|j| format!(", job `{j}`")).unwrap_or_default(),
            column,
            value: shown(value),
            expected,
        }
    }
}

/// A `job_history` row as read.
pub struct RawJob {
    pub id: Value,
    pub status: Value,
    pub last_run: Time,
    pub duration_seconds: Value,
    pub retry_count: Value,
    pub last_error: Value,
}

/// A job of an old run, as imported.
#[derive(Debug, PartialEq)]
pub struct OldJob {
    pub id: String,
    pub status: String,
    /// When it ended (`last_run`).
    pub at: Option<i64>,
    /// How long its last attempt took, in milliseconds.
    pub took_ms: i64,
    /// The number of its last attempt, 1 for the first: its `retry_count` plus one.
    pub attempt: u32,
    pub error: Option<String>,
}

/// The longest duration taken as recorded, in seconds: 100 years. A longer one is not a
/// duration (and its milliseconds could overflow).
const MAX_SECONDS: i64 = 100 * 366 * 86_400;

/// The job of `raw`, a row of the run `run`; `None` (reported) if it has no id.
pub fn job(run: i64, raw: RawJob, problems: &mut Vec<Problem>) -> Option<OldJob> {
    let Some(id) = text(raw.id) else {
        problems.push(Problem::NoJobId { run });
        return None;
    };
    let row = Row {
        run,
        job: Some(&id),
    };
    let at = raw.last_run.read("last_run", &row, problems);
    #[allow(clippy::cast_precision_loss)] // far below 2^52: exact
    let (max, whole) = (MAX_SECONDS as f64, |n: i64| n as f64);
    let seconds = match raw.duration_seconds {
        Value::Null => None,
        Value::Integer(n) if (0..=MAX_SECONDS).contains(&n) => Some(whole(n)),
        Value::Real(x) if (0.0..=max).contains(&x) => Some(x),
        other => {
            problems.push(row.bad("duration_seconds", &other, "a number of seconds"));
            None
        }
    };
    #[allow(clippy::cast_possible_truncation)] // at most MAX_SECONDS * 1000
    let took_ms = seconds.map_or(0, |s| (s * 1000.0).round() as i64);
    let attempt = match raw.retry_count {
        Value::Null => 1,
        Value::Integer(n) if n >= 0 && n < i64::from(u32::MAX) => {
            u32::try_from(n + 1).unwrap_or(u32::MAX)
        }
        other => {
            problems.push(row.bad("retry_count", &other, "a count of retries (0 or more)"));
            1
        }
    };
    Some(OldJob {
        status: text(raw.status).unwrap_or_default(),
        at,
        took_ms,
        attempt,
        error: text(raw.last_error),
        id,
    })
}

/// The jobs of run `run` (read in the order they ended), each once: of a job's several rows,
/// the last is kept, in its place, and the others reported.
pub fn last_of_each(run: i64, jobs: Vec<OldJob>, problems: &mut Vec<Problem>) -> Vec<OldJob> {
    let mut rows: HashMap<String, usize> = HashMap::new();
    for job in &jobs {
        *rows.entry(job.id.clone()).or_default() += 1;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    jobs.into_iter()
        .filter(|job| {
            let total = rows[&job.id];
            let nth = seen.entry(job.id.clone()).or_default();
            *nth += 1;
            if *nth == total && total > 1 {
                problems.push(Problem::RepeatedJob {
                    run,
                    job: job.id.clone(),
                    rows: total,
                });
            }
            *nth == total
        })
        .collect()
}

/// A run as read: a `run_summary` row, or a run derived from its jobs.
pub struct RawRun {
    pub id: i64,
    pub name: Value,
    pub start: Time,
    pub end: Time,
    /// Its `run_summary` status, or `None` for a run derived from its jobs.
    pub status: Option<Value>,
    pub exit_code: Value,
    /// It has no `run_summary` row, though the database has that table.
    pub unfinished: bool,
}

/// An old run, as imported.
#[derive(Debug, PartialEq)]
pub struct OldRun {
    pub name: String,
    pub start: i64,
    pub end: i64,
    /// Its `run_summary` status, or `None` for a run derived from its jobs.
    pub status: Option<String>,
    pub exit_code: Option<i64>,
}

/// The run of `raw`, with its `jobs`; `None` (reported) if no time can be had for its start.
/// A run without a start time of its own (derived from its jobs, or an unreadable
/// `start_time`) starts when its first job ended, and ends when its last job did.
pub fn run(raw: RawRun, jobs: &[OldJob], problems: &mut Vec<Problem>) -> Option<OldRun> {
    let row = Row {
        run: raw.id,
        job: None,
    };
    let first = jobs.iter().filter_map(|j| j.at).min();
    let last = jobs.iter().filter_map(|j| j.at).max();
    let Some(start) = raw.start.ms.or(first) else {
        problems.push(Problem::NoStart {
            run: raw.id,
            value: shown(&raw.start.value),
        });
        return None;
    };
    if raw.start.ms.is_none() && raw.status.is_some() {
        problems.push(row.bad("start_time", &raw.start.value, "a date and time"));
    }
    let end = raw.end.read("end_time", &row, problems).or(last);
    let exit_code = match raw.exit_code {
        Value::Null => None,
        Value::Integer(n) => Some(n),
        other => {
            problems.push(row.bad("exit_code", &other, "an exit code"));
            None
        }
    };
    Some(OldRun {
        name: text(raw.name).unwrap_or_else(|| "executioner".to_owned()),
        start,
        end: end.unwrap_or(start),
        status: raw.status.map(|s| text(s).unwrap_or_default()),
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_job(duration: Value, retries: Value) -> RawJob {
        RawJob {
            id: Value::Text("load".into()),
            status: Value::Text("ERROR".into()),
            last_run: Time {
                value: Value::Text("2024-03-01 01:09:00".into()),
                ms: Some(1_000_000),
            },
            duration_seconds: duration,
            retry_count: retries,
            last_error: Value::Text("ORA-00942".into()),
        }
    }

    #[test]
    fn of_a_jobs_several_rows_the_last_is_kept_in_its_place() {
        let job = |id: &str, at: i64| OldJob {
            id: id.to_owned(),
            status: "SUCCESS".to_owned(),
            at: Some(at),
            took_ms: 0,
            attempt: 1,
            error: None,
        };
        let mut problems = Vec::new();
        let kept = last_of_each(
            7,
            vec![
                job("a", 1),
                job("b", 2),
                job("a", 3),
                job("c", 4),
                job("a", 5),
            ],
            &mut problems,
        );
        let kept: Vec<(&str, Option<i64>)> = kept.iter().map(|j| (j.id.as_str(), j.at)).collect();
        assert_eq!(kept, [("b", Some(2)), ("c", Some(4)), ("a", Some(5))]);
        assert_eq!(
            problems,
            [Problem::RepeatedJob {
                run: 7,
                job: "a".to_owned(),
                rows: 3
            }]
        );
        assert!(problems[0].left_out());
    }

    #[test]
    fn a_bad_value_is_reported_and_its_job_imported_without_it() {
        for (duration, retries, took_ms, attempt, column) in [
            (Value::Real(1.5), Value::Integer(2), 1500, 3, None),
            (Value::Null, Value::Null, 0, 1, None),
            (Value::Integer(60), Value::Integer(0), 60_000, 1, None),
            (
                Value::Text("abc".into()),
                Value::Integer(0),
                0,
                1,
                Some("duration_seconds"),
            ),
            (
                Value::Real(-1.0),
                Value::Integer(0),
                0,
                1,
                Some("duration_seconds"),
            ),
            (
                Value::Real(1e300),
                Value::Integer(0),
                0,
                1,
                Some("duration_seconds"),
            ),
            (
                Value::Real(1.0),
                Value::Integer(-1),
                1000,
                1,
                Some("retry_count"),
            ),
            (
                Value::Real(1.0),
                Value::Text("x".into()),
                1000,
                1,
                Some("retry_count"),
            ),
            (
                Value::Real(1.0),
                Value::Integer(1 << 40),
                1000,
                1,
                Some("retry_count"),
            ),
        ] {
            let case = format!("{duration:?} {retries:?}");
            let mut problems = Vec::new();
            let job = job(7, raw_job(duration, retries), &mut problems).unwrap();
            assert_eq!((job.took_ms, job.attempt), (took_ms, attempt), "{case}");
            assert_eq!(job.error.as_deref(), Some("ORA-00942"));
            let columns: Vec<&str> = (problems.iter())
                .map(|p| match p {
                    Problem::BadValue { column, .. } => *column,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(columns, Vec::from_iter(column), "{case}");
        }
        let mut problems = Vec::new();
        job(
            7,
            raw_job(Value::Text("abc".into()), Value::Integer(0)),
            &mut problems,
        );
        assert_eq!(
            problems[0].to_string(),
            "run 7, job `load`: duration_seconds 'abc' is not a number of seconds: imported without it"
        );
    }

    #[test]
    fn a_row_without_a_job_id_is_left_out() {
        let mut raw = raw_job(Value::Null, Value::Null);
        raw.id = Value::Null;
        let mut problems = Vec::new();
        assert_eq!(job(7, raw, &mut problems), None);
        assert_eq!(problems, [Problem::NoJobId { run: 7 }]);
        assert!(problems[0].left_out());
    }

    fn raw_run(start: Time) -> RawRun {
        RawRun {
            id: 3,
            name: Value::Text("nightly".into()),
            start,
            end: Time {
                value: Value::Null,
                ms: None,
            },
            status: Some(Value::Text("FAILED".into())),
            exit_code: Value::Null,
            unfinished: false,
        }
    }

    #[test]
    fn a_run_starts_at_its_start_time_else_its_first_job_else_is_left_out() {
        let bad = || Time {
            value: Value::Text("03/03/2024 01:00".into()),
            ms: None,
        };
        let mut problems = Vec::new();
        assert_eq!(run(raw_run(bad()), &[], &mut problems), None);
        assert_eq!(
            problems[0].to_string(),
            "run 3: neither its start_time ('03/03/2024 01:00') nor a last_run of its jobs is a \
             date and time: not imported"
        );
        assert!(problems[0].left_out());
        let mut problems = Vec::new();
        let jobs = [job(3, raw_job(Value::Null, Value::Null), &mut problems).unwrap()];
        let imported = run(raw_run(bad()), &jobs, &mut problems).unwrap();
        assert_eq!((imported.start, imported.end), (1_000_000, 1_000_000));
        assert!(matches!(
            &problems[..],
            [Problem::BadValue {
                column: "start_time",
                ..
            }]
        ));
        let good = Time {
            value: Value::Text("1970-01-01 00:00:02".into()),
            ms: Some(2_000),
        };
        let mut problems = Vec::new();
        let imported = run(raw_run(good), &jobs, &mut problems).unwrap();
        assert_eq!((imported.start, imported.end), (2_000, 1_000_000));
        assert!(problems.is_empty());
    }
}
