//! Importing the older tool's history (its tables `run_summary` and `job_history`), so
//! `exe runs` shows those runs too.
//!
//! The older tool kept only each job's final status (and, from its schema version 2 and 3,
//! retries, the last error and the duration). So an imported job gets one transition from
//! PENDING to its final state, by the actor `executioner`, and one attempt: its last, with
//! the recorded duration. Nothing is invented beyond that. A run with jobs but no summary
//! (the older tool stopped before writing it) is derived from its jobs, as runs are for
//! databases from before `run_summary`; such a run is SUCCESS only if it is known to have
//! ended and each of its jobs succeeded or was skipped. Times are read as UTC (`SQLite`'s
//! `CURRENT_TIMESTAMP`, which the older tool used). Imported runs have the `exe_version`
//! [`IMPORTED_VERSION`]. Importing the same file again, however its path is written, skips
//! the runs already imported: runs are matched by canonical path. Rows and values that
//! cannot be imported as written are reported, not fatal (see [`rows`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

pub use self::rows::Problem;
use self::rows::{OldJob, RawJob, RawRun, Time};
use super::error::classify;
use super::{IMPORTED_VERSION, Store, StoreError};

mod rows;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Runs added.
    pub runs: usize,
    /// Jobs added across them.
    pub jobs: usize,
    /// Runs skipped because an earlier import already added them.
    pub skipped: usize,
    /// The older tool's ids of the runs added without a `run_summary` row, though the
    /// database has that table: it stopped before writing one. Their state is derived.
    pub unfinished: Vec<i64>,
    /// The rows and values not imported as they were written, in the order met.
    pub problems: Vec<Problem>,
}

/// Milliseconds since the Unix epoch of an `SQLite` date-time text column (NULL if unparsable).
fn ms(column: &str) -> String {
    format!("CAST(ROUND(unixepoch({column}, 'subsec') * 1000) AS INTEGER)")
}

fn job_state(status: &str) -> &'static str {
    match status.to_ascii_uppercase().as_str() {
        "SUCCESS" | "COMPLETED" => "SUCCESS",
        "TIMEOUT" => "TIMEOUT",
        "SKIPPED" => "SKIPPED",
        "FAILED" | "ERROR" => "FAILED",
        _ => "CANCELLED",
    }
}

fn run_state(status: &str) -> &'static str {
    match job_state(status) {
        "SUCCESS" => "SUCCESS",
        "FAILED" | "TIMEOUT" => "FAILED",
        _ => "CANCELLED",
    }
}

/// The state of a run without a summary, from its jobs' states: FAILED if one failed or
/// timed out; else SUCCESS only if the run `ended` (the database predates `run_summary`)
/// and every job succeeded or was skipped; else CANCELLED. A job that never finished
/// (RUNNING, no status, a status the older tool did not write) means the run did not
/// succeed, and a resume of it must run that job.
fn derived_run_state<'a>(jobs: impl IntoIterator<Item = &'a str>, ended: bool) -> &'static str {
    let mut all_done = ended;
    for state in jobs {
        match state {
            "FAILED" | "TIMEOUT" => return "FAILED",
            "SUCCESS" | "SKIPPED" => {}
            _ => all_done = false,
        }
    }
    if all_done { "SUCCESS" } else { "CANCELLED" }
}

/// The older tool's history database, opened read-only and known to have its `job_history`
/// table: checked before exe's history is opened for writing, so that a wrong file leaves
/// exe's history as it was (not even created).
pub struct OldHistory {
    path: PathBuf,
    conn: Connection,
    /// It has `run_summary` (the older tool's schema version 5 and later).
    summary: bool,
    /// The columns of its `job_history`.
    columns: Vec<String>,
}

/// The columns of `job_history` the import reads; `duration_seconds`, `retry_count` and
/// `last_error` are read when there (older versions of the tool lacked them).
const JOB_COLUMNS: &[&str] = &["run_id", "id", "status", "application_name", "last_run"];

/// The columns of `run_summary` the import reads.
const RUN_COLUMNS: &[&str] = &[
    "run_id",
    "application_name",
    "start_time",
    "end_time",
    "status",
    "exit_code",
];

impl OldHistory {
    /// Opens the file at `path` read-only, and checks that it is the older tool's history.
    pub fn open(path: &Path) -> Result<OldHistory, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |detail: String| StoreError::NotAnOldHistory {
            path: path.to_path_buf(),
            detail,
        };
        let has = |table: &str| -> Result<bool, StoreError> {
            conn.query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| corrupt(format!("cannot read its tables: {e}")))
        };
        if !has("job_history")? {
            return Err(corrupt("it has no `job_history` table".to_owned()));
        }
        let summary = has("run_summary")?;
        let columns_of = |table: &str| -> Result<Vec<String>, StoreError> {
            conn.prepare("SELECT name FROM pragma_table_info(?1)")
                .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
                .map_err(|e| corrupt(format!("cannot read {table}: {e}")))
        };
        // Checked here, before exe's history is opened: the import's queries need them.
        let require = |table: &str, columns: &[String], needed: &[&str]| match needed
            .iter()
            .find(|n| !columns.iter().any(|c| c == *n))
        {
            Some(missing) => Err(corrupt(format!(
                "its {table} table has no `{missing}` column"
            ))),
            None => Ok(()),
        };
        let columns = columns_of("job_history")?;
        require("job_history", &columns, JOB_COLUMNS)?;
        if summary {
            require("run_summary", &columns_of("run_summary")?, RUN_COLUMNS)?;
        }
        Ok(OldHistory {
            path: path.to_path_buf(),
            conn,
            summary,
            columns,
        })
    }
}

impl Store {
    /// Imports every run of the older tool's history `old`.
    pub fn import_executioner(&mut self, old: &OldHistory) -> Result<Imported, StoreError> {
        let OldHistory {
            path: old,
            conn: source,
            summary,
            columns,
        } = old;
        let corrupt = |detail: String| StoreError::NotAnOldHistory {
            path: old.clone(),
            detail,
        };
        let column = |name: &str, or: &str| {
            if columns.iter().any(|c| c == name) {
                name.to_owned()
            } else {
                or.to_owned()
            }
        };
        let old_runs = read_runs(source, *summary)
            .map_err(|e| corrupt(format!("cannot read its runs: {e}")))?;
        let job_sql = format!(
            "SELECT id, status, last_run, {at}, {duration}, {retries}, {error} FROM job_history
             WHERE run_id = ?1 ORDER BY last_run, id",
            at = ms("last_run"),
            duration = column("duration_seconds", "NULL"),
            retries = column("retry_count", "NULL"),
            error = column("last_error", "NULL"),
        );
        let mut problems = if *summary {
            summary_rows_left_out(source)
                .map_err(|e| corrupt(format!("cannot read run_summary: {e}")))?
        } else {
            Vec::new()
        };
        problems.extend(
            rows_without_run(source)
                .map_err(|e| corrupt(format!("cannot read job_history: {e}")))?,
        );
        let mut report = Imported {
            problems,
            ..Imported::default()
        };
        // The file however it is named (`old.db`, `./old.db`, `$PWD/old.db`, a symlink).
        let canonical = std::fs::canonicalize(old).unwrap_or_else(|_| old.clone());
        let marker = |id: i64| format!("{} (executioner run {id})", canonical.display());
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| classify(&path, "importing", e))?;
        let seen = imported_from(&tx, &canonical).map_err(|e| classify(&path, "importing", e))?;
        for raw in old_runs {
            if seen.contains(&raw.id) {
                report.skipped += 1;
                continue;
            }
            let old_id = raw.id;
            let unfinished = raw.unfinished;
            let file = marker(old_id);
            let job_rows: Vec<RawJob> = source
                .prepare(&job_sql)
                .and_then(|mut s| {
                    s.query_map([old_id], |r| {
                        Ok(RawJob {
                            id: r.get(0)?,
                            status: r.get(1)?,
                            last_run: Time {
                                value: r.get(2)?,
                                ms: r.get(3)?,
                            },
                            duration_seconds: r.get(4)?,
                            retry_count: r.get(5)?,
                            last_error: r.get(6)?,
                        })
                    })?
                    .collect()
                })
                .map_err(|e| corrupt(format!("cannot read the jobs of run {old_id}: {e}")))?;
            let jobs: Vec<OldJob> = (job_rows.into_iter())
                .filter_map(|row| rows::job(old_id, row, &mut report.problems))
                .collect();
            let jobs = rows::last_of_each(old_id, jobs, &mut report.problems);
            let Some(run) = rows::run(raw, &jobs, &mut report.problems) else {
                continue;
            };
            let (start, end) = (run.start, run.end);
            let state = match &run.status {
                Some(status) => run_state(status),
                None => derived_run_state(jobs.iter().map(|j| job_state(&j.status)), !unfinished),
            };
            tx.execute(
                "INSERT INTO runs (name, file, digest, state, started_at, ended_at, exit_code, host, user, pid, exe_version)
                 VALUES (?1, ?2, '', ?3, ?4, ?5, ?6, '', '', 0, ?7)",
                params![run.name, file, state, start, end, run.exit_code, IMPORTED_VERSION],
            )
            .map_err(|e| classify(&path, "importing", e))?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO plans (run, json) VALUES (?1, '{}')",
                params![id],
            )
            .map_err(|e| classify(&path, "importing", e))?;
            for (index, job) in (0_i64..).zip(&jobs) {
                let at = job.at.unwrap_or(end);
                let state = job_state(&job.status);
                let insert = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
                    tx.execute(sql, p)
                        .map_err(|e| classify(&path, "importing", e))
                };
                insert(
                    "INSERT INTO jobs (run, idx, job_id) VALUES (?1, ?2, ?3)",
                    &[&id, &index, &job.id],
                )?;
                insert(
                    "INSERT INTO transitions (seq, run, id, job, from_state, to_state, at, reason, actor) VALUES ((?1 << 32) + ?2 + 1, ?1, ?2 + 1, ?2, 'PENDING', ?3, ?4, ?5, 'executioner')",
                    &[
                        &id,
                        &index,
                        &state,
                        &at,
                        &"imported from the older executioner's history (it kept final states only)",
                    ],
                )?;
                if state != "SKIPPED" && state != "CANCELLED" {
                    insert(
                        "INSERT INTO attempts (run, job, number, started_at, ended_at, outcome, reason, log_path) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '')",
                        &[
                            &id,
                            &index,
                            &job.attempt,
                            &at.saturating_sub(job.took_ms),
                            &at,
                            &state,
                            &job.error,
                        ],
                    )?;
                }
            }
            report.runs += 1;
            report.jobs += jobs.len();
            if unfinished {
                report.unfinished.push(old_id);
            }
        }
        tx.commit().map_err(|e| classify(&path, "importing", e))?;
        Ok(report)
    }
}

/// The executioner run ids already imported from the file at `canonical`. Their `file` is
/// `PATH (executioner run ID)`, PATH canonical; earlier imports kept PATH as typed, relative
/// to a folder they did not record: a relative PATH is read from the current folder, so such
/// runs are recognised when the import is repeated from the folder it was first run in.
fn imported_from(tx: &Connection, canonical: &Path) -> rusqlite::Result<HashSet<i64>> {
    let mut statement = tx.prepare("SELECT file FROM runs WHERE exe_version = ?1")?;
    let files = statement.query_map([IMPORTED_VERSION], |r| r.get::<_, String>(0))?;
    let mut ids = HashSet::new();
    for file in files {
        let file = file?;
        if let Some((path, id)) =
            (file.strip_suffix(')')).and_then(|f| f.rsplit_once(" (executioner run "))
            && let Ok(id) = id.parse()
            && std::fs::canonicalize(path).is_ok_and(|p| p == canonical)
        {
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// The rows of `job_history` whose `run_id` is not a run id (NULL, text), as problems.
fn rows_without_run(source: &Connection) -> rusqlite::Result<Vec<Problem>> {
    let mut statement = source.prepare(
        "SELECT run_id, id FROM job_history WHERE typeof(run_id) <> 'integer' ORDER BY rowid",
    )?;
    statement
        .query_map([], |r| {
            Ok(Problem::NoRun {
                value: rows::shown(&r.get::<_, Value>(0)?),
                job: rows::shown(&r.get::<_, Value>(1)?),
            })
        })?
        .collect()
}

/// The rows of `run_summary` that are not imported, as problems: those whose `run_id` is not
/// a run id, and of several rows of one run id all but the first ([`read_runs`] skips them).
fn summary_rows_left_out(source: &Connection) -> rusqlite::Result<Vec<Problem>> {
    let mut without = source.prepare(
        "SELECT application_name, run_id FROM run_summary
         WHERE typeof(run_id) <> 'integer' ORDER BY rowid",
    )?;
    let mut problems: Vec<Problem> = without
        .query_map([], |r| {
            Ok(Problem::SummaryWithoutRun {
                name: rows::shown(&r.get::<_, Value>(0)?),
                value: rows::shown(&r.get::<_, Value>(1)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut repeated = source.prepare(
        "SELECT run_id, COUNT(*) FROM run_summary WHERE typeof(run_id) = 'integer'
         GROUP BY run_id HAVING COUNT(*) > 1 ORDER BY run_id",
    )?;
    let repeated = repeated.query_map([], |r| {
        Ok(Problem::RepeatedRun {
            run: r.get(0)?,
            rows: usize::try_from(r.get::<_, i64>(1)?).unwrap_or(usize::MAX),
        })
    })?;
    for problem in repeated {
        problems.push(problem?);
    }
    Ok(problems)
}

fn read_runs(source: &Connection, summary: bool) -> rusqlite::Result<Vec<RawRun>> {
    // A run per run id of `job_history`, from its jobs: the older tool had no run table before
    // its schema version 5, and it wrote a run's summary at the end, so a run it stopped in
    // has none. Its state is derived from its jobs' (`derived_run_state`), so no status here;
    // its times are its jobs' (`rows::run`). Rows without a run id are `rows_without_run`.
    let derived = |filter: &str| {
        format!(
            "SELECT run_id, MAX(application_name), NULL, NULL, NULL, NULL, NULL, NULL, {unfinished}
             FROM job_history WHERE typeof(run_id) = 'integer' {filter} GROUP BY run_id",
            unfinished = i32::from(summary),
        )
    };
    let sql = if summary {
        format!(
            "SELECT run_id, application_name, start_time, {start}, end_time, {end}, COALESCE(status, ''), exit_code, 0
             FROM run_summary AS s
             WHERE typeof(run_id) = 'integer'
               AND rowid = (SELECT MIN(rowid) FROM run_summary WHERE run_id = s.run_id)
             UNION ALL {unfinished} ORDER BY run_id",
            start = ms("start_time"),
            end = ms("end_time"),
            // (`NOT IN` a list holding NULL is never true: a NULL run_id is left out.)
            unfinished = derived(
                "AND run_id NOT IN (SELECT run_id FROM run_summary WHERE run_id IS NOT NULL)"
            ),
        )
    } else {
        format!("{} ORDER BY run_id", derived(""))
    };
    let mut statement = source.prepare(&sql)?;
    statement
        .query_map([], |r| {
            Ok(RawRun {
                id: r.get(0)?,
                name: r.get(1)?,
                start: Time {
                    value: r.get(2)?,
                    ms: r.get(3)?,
                },
                end: Time {
                    value: r.get(4)?,
                    ms: r.get(5)?,
                },
                status: r.get(6)?,
                exit_code: r.get(7)?,
                unfinished: r.get(8)?,
            })
        })?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Access, Durability, RunFilter};

    /// An old history as the older tool (schema version 5) wrote it.
    fn old_history(path: &Path) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE job_history (run_id INTEGER, id TEXT, description TEXT, command TEXT, status TEXT,
                application_name TEXT, last_run TIMESTAMP DEFAULT CURRENT_TIMESTAMP, retry_count INTEGER DEFAULT 0,
                last_error TEXT, retry_history TEXT, duration_seconds REAL, memory_usage_mb REAL, cpu_usage_percent REAL,
                PRIMARY KEY (run_id, id));
             CREATE TABLE run_summary (run_id INTEGER PRIMARY KEY, application_name TEXT NOT NULL, start_time TIMESTAMP NOT NULL,
                end_time TIMESTAMP, status TEXT, total_jobs INTEGER, completed_jobs INTEGER, failed_jobs INTEGER,
                skipped_jobs INTEGER, exit_code INTEGER, created_at TIMESTAMP);
             INSERT INTO run_summary VALUES (7, 'nightly', '2024-03-01 01:00:00', '2024-03-01 01:10:00', 'FAILED', 3, 1, 1, 0, 1, NULL);
             INSERT INTO job_history (run_id, id, status, application_name, last_run, retry_count, last_error, duration_seconds)
                VALUES (7, 'extract', 'SUCCESS', 'nightly', '2024-03-01 01:05:00', 0, NULL, 300.5),
                       (7, 'load', 'ERROR', 'nightly', '2024-03-01 01:09:00', 2, 'ORA-00942', 60.0),
                       (7, 'report', 'SKIPPED', 'nightly', '2024-03-01 01:10:00', 0, NULL, NULL);",
        )
        .unwrap();
    }

    #[test]
    fn imports_runs_jobs_and_final_states_once() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("executioner.db");
        old_history(&old);
        let mut store = Store::open(
            &dir.path().join("history.db"),
            Access::ReadWrite,
            Durability::Normal,
        )
        .unwrap();
        let report = store
            .import_executioner(&OldHistory::open(&old).unwrap())
            .unwrap();
        assert_eq!(
            report,
            Imported {
                runs: 1,
                jobs: 3,
                skipped: 0,
                unfinished: vec![],
                problems: vec![]
            }
        );
        let runs = store
            .runs(&RunFilter {
                limit: 10,
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!(
            (run.name.as_str(), run.state.as_str(), run.exit_code),
            ("nightly", "FAILED", Some(1))
        );
        assert_eq!(run.started_at_ms, 1_709_254_800_000);
        assert_eq!(run.ended_at_ms, Some(1_709_255_400_000));
        let jobs = store.jobs(run.id).unwrap();
        let states: Vec<(&str, &str)> = jobs
            .iter()
            .map(|j| (j.id.as_str(), j.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("extract", "SUCCESS"),
                ("load", "FAILED"),
                ("report", "SKIPPED")
            ]
        );
        let attempts = store.attempts(run.id).unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            (attempts[1].number, attempts[1].reason.as_deref()),
            (3, Some("ORA-00942"))
        );
        assert_eq!(
            attempts[0].ended_at_ms.unwrap() - attempts[0].started_at_ms,
            300_500
        );
        assert_eq!(
            store
                .import_executioner(&OldHistory::open(&old).unwrap())
                .unwrap(),
            Imported {
                runs: 0,
                jobs: 0,
                skipped: 1,
                unfinished: vec![],
                problems: vec![]
            }
        );
    }

    #[test]
    fn jobs_of_a_run_without_a_summary_are_imported_as_a_run_that_did_not_finish() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("executioner.db");
        old_history(&old);
        Connection::open(&old)
            .unwrap()
            .execute_batch(
                "INSERT INTO job_history (run_id, id, status, application_name, last_run)
                    VALUES (8, 'extract', 'SUCCESS', 'nightly', '2024-03-02 01:05:00'),
                           (9, 'extract', 'FAILED', 'nightly', '2024-03-03 01:05:00');",
            )
            .unwrap();
        let mut store = Store::open_in_memory().unwrap();
        let report = store
            .import_executioner(&OldHistory::open(&old).unwrap())
            .unwrap();
        assert_eq!((report.runs, report.jobs), (3, 5));
        assert_eq!(report.unfinished, [8, 9]);
        let runs = store
            .runs(&RunFilter {
                limit: 10,
                ..RunFilter::default()
            })
            .unwrap();
        let states: Vec<(&str, Option<i64>)> = runs
            .iter()
            .map(|r| (r.state.as_str(), r.ended_at_ms))
            .collect();
        assert_eq!(
            states,
            [
                ("FAILED", Some(1_709_427_900_000)),
                ("CANCELLED", Some(1_709_341_500_000)),
                ("FAILED", Some(1_709_255_400_000))
            ]
        );
    }

    #[test]
    fn a_derived_run_succeeds_only_when_it_ended_and_every_job_did() {
        for (jobs, ended, state) in [
            (&["SUCCESS", "SKIPPED"][..], true, "SUCCESS"),
            (&["SUCCESS", "SKIPPED"], false, "CANCELLED"),
            (&["SUCCESS", "CANCELLED"], true, "CANCELLED"),
            (&["CANCELLED", "FAILED"], true, "FAILED"),
            (&["TIMEOUT", "SUCCESS"], false, "FAILED"),
        ] {
            assert_eq!(
                derived_run_state(jobs.iter().copied(), ended),
                state,
                "{jobs:?} ended: {ended}"
            );
        }
    }

    #[test]
    fn a_run_from_before_run_summary_with_an_unfinished_job_is_not_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("executioner.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch(
                "CREATE TABLE job_history (run_id INTEGER, id TEXT, status TEXT, application_name TEXT,
                    last_run TIMESTAMP, PRIMARY KEY (run_id, id));
                 INSERT INTO job_history VALUES
                    (1, 'extract', 'SUCCESS', 'etl', '2024-01-01 00:00:00'),
                    (1, 'load', 'RUNNING', 'etl', '2024-01-01 00:01:00'),
                    (2, 'extract', 'SUCCESS', 'etl', '2024-01-02 00:00:00'),
                    (2, 'load', NULL, 'etl', '2024-01-02 00:01:00'),
                    (3, 'extract', 'completed', 'etl', '2024-01-03 00:00:00'),
                    (3, 'load', 'SKIPPED', 'etl', '2024-01-03 00:01:00'),
                    (4, 'extract', 'PENDING', 'etl', '2024-01-04 00:00:00'),
                    (4, 'load', 'ERROR', 'etl', '2024-01-04 00:01:00');",
            )
            .unwrap();
        let mut store = Store::open_in_memory().unwrap();
        let report = store
            .import_executioner(&OldHistory::open(&old).unwrap())
            .unwrap();
        // Without `run_summary` there is no telling a stopped run: no warning is due.
        assert_eq!(report.unfinished, Vec::<i64>::new());
        let runs = store
            .runs(&RunFilter {
                limit: 10,
                ..RunFilter::default()
            })
            .unwrap();
        let states: Vec<&str> = runs.iter().rev().map(|r| r.state.as_str()).collect();
        assert_eq!(states, ["CANCELLED", "CANCELLED", "SUCCESS", "FAILED"]);
    }

    #[test]
    fn a_file_that_is_not_an_old_history_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = OldHistory::open(&other).err().unwrap();
        assert!(
            err.to_string().contains("job_history") || format!("{err:?}").contains("job_history"),
            "{err:?}"
        );
    }
}
