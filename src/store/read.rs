//! The queries behind `exe runs`, `exe show`, resume and crash recovery. They never write.
//!
//! `runs` builds its WHERE clause from the filters that are set (values still bound), so
//! `SQLite` can pick the index for that filter; with none it walks the primary key
//! backwards and stops after `limit` rows, which is what keeps `exe runs` fast on a
//! large history. A time filter alone goes through the `started_at` index (see `runs`).

use rusqlite::{Connection, Row, ToSql, params};

use super::schema::{PLANS_FROM, USAGE_FROM, transitions_of_run};
use super::{AttemptRow, JobRow, RunFilter, RunRow, Store, StoreError, TransitionRow, index_sql};

const RUN_COLUMNS: &str = "id, name, file, digest, state, started_at, ended_at, exit_code, \
                           host, user, pid, exe_version, resumed_from, heartbeat_at";

/// A job index read back; `SQLite` has no unsigned type.
/// The job at `index` of `run` on `conn`, a store's connection or its open write
/// transaction (`mark-success` reads the job's state there), whose schema is `version`.
pub(super) fn job_at(
    conn: &Connection,
    version: i64,
    run: i64,
    index: i64,
) -> rusqlite::Result<JobRow> {
    // `id` orders a run's transitions in every schema (see `transitions`).
    let sql = format!(
        "SELECT j.idx, j.job_id, last.to_state, last.reason,
                (SELECT COALESCE(MAX(a.number), 0) FROM attempts a WHERE a.run = j.run AND a.job = j.idx)
         FROM jobs j
         LEFT JOIN (SELECT t.to_state, t.reason FROM transitions t
                    WHERE {} AND t.job = ?2 ORDER BY t.id DESC LIMIT 1) last
         WHERE j.run = ?1 AND j.idx = ?2",
        transitions_of_run(version)
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row(params![run, index], job_row))
}

/// A row of [`Store::jobs`] or [`Store::job`]: index, id, last state and reason, attempts.
fn job_row(row: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        index: job_index(row, 0)?,
        id: row.get(1)?,
        state: row
            .get::<_, Option<String>>(2)?
            .unwrap_or_else(|| "PENDING".to_owned()),
        reason: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
        attempts: row.get(4)?,
    })
}

fn job_index(row: &Row, column: usize) -> rusqlite::Result<usize> {
    let value: i64 = row.get(column)?;
    usize::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

fn run_row(row: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        name: row.get(1)?,
        file: row.get(2)?,
        digest: row.get(3)?,
        state: row.get(4)?,
        started_at_ms: row.get(5)?,
        ended_at_ms: row.get(6)?,
        exit_code: row.get(7)?,
        host: row.get(8)?,
        user: row.get(9)?,
        pid: row.get(10)?,
        exe_version: row.get(11)?,
        resumed_from: row.get(12)?,
        heartbeat_at_ms: row.get(13)?,
    })
}

impl Store {
    /// Runs matching `filter`, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let mut clauses: Vec<&str> = Vec::new();
        let mut values: Vec<&dyn ToSql> = Vec::new();
        if let Some(name) = &filter.name {
            clauses.push("name = ?");
            values.push(name);
        }
        if let Some(state) = &filter.state {
            clauses.push("state = ?");
            values.push(state);
        }
        if filter.finished {
            clauses.push("ended_at IS NOT NULL");
        }
        // Each filter is served by an index that holds the start time, in the order listed
        // (`started_at`, or with the name or the state: schema 4), so a time filter and the
        // order read only the rows listed.
        if let Some(since) = &filter.since_ms {
            clauses.push("started_at >= ?");
            values.push(since);
        }
        if let Some(until) = &filter.until_ms {
            clauses.push("started_at < ?");
            values.push(until);
        }
        // SQLite reads a negative LIMIT as "no limit".
        let limit = if filter.limit == 0 {
            -1
        } else {
            i64::try_from(filter.limit).unwrap_or(i64::MAX)
        };
        values.push(&limit);
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        // Only fixed clause text is formatted in; every value is a bound parameter.
        // By start, not by id: runs imported from the older tool get new ids but keep their
        // times. The indexes on `started_at` hold the id too, so this needs no sort.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {filter_sql} ORDER BY started_at DESC, id DESC LIMIT ?"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_map(values.as_slice(), run_row)?.collect())
            .map_err(|e| self.err("listing runs", e))
    }

    /// One run; [`StoreError::UnknownRun`] if there is none with this id.
    pub fn run(&self, id: i64) -> Result<RunRow, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_row([id], run_row))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => StoreError::UnknownRun { id },
                e => self.err("reading a run", e),
            })
    }

    /// The plan of a run, as the JSON it was recorded with.
    pub fn plan_json(&self, run: i64) -> Result<String, StoreError> {
        self.conn
            .prepare_cached(if self.version >= PLANS_FROM {
                "SELECT json FROM plans WHERE run = ?1"
            } else {
                "SELECT plan_json FROM runs WHERE id = ?1"
            })
            .and_then(|mut st| st.query_row([run], |row| row.get(0)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => StoreError::UnknownRun { id: run },
                e => self.err("reading a plan", e),
            })
    }

    /// The jobs of a run in index order, each with its current state (the `to` of its last
    /// transition, PENDING if none), that transition's reason, and its last attempt's number.
    pub fn jobs(&self, run: i64) -> Result<Vec<JobRow>, StoreError> {
        self.run(run)?;
        // One pass over the run's transitions: with `MAX`, SQLite takes the other columns
        // from the row that has it (each job's last transition).
        let sql = format!(
            "SELECT j.idx, j.job_id, last.to_state, last.reason,
                    (SELECT COALESCE(MAX(a.number), 0) FROM attempts a WHERE a.run = j.run AND a.job = j.idx)
             FROM jobs j
             LEFT JOIN (SELECT t.job, t.to_state, t.reason, MAX(t.id)
                        FROM transitions t WHERE {} GROUP BY t.job) last ON last.job = j.idx
             WHERE j.run = ?1
             ORDER BY j.idx",
            transitions_of_run(self.version)
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| st.query_map([run], job_row)?.collect())
            .map_err(|e| self.err("listing jobs", e))
    }

    /// The job at `index` of `run`, as [`Store::jobs`] gives it: for `exe logs --follow`,
    /// which asks every 200 ms whether the job runs again.
    pub fn job(&self, run: i64, index: usize) -> Result<JobRow, StoreError> {
        job_at(&self.conn, self.version, run, index_sql(index))
            .map_err(|e| self.err("reading a job", e))
    }

    /// The attempts of a run, in the order they started (within one millisecond, by job
    /// index and number).
    pub fn attempts(&self, run: i64) -> Result<Vec<AttemptRow>, StoreError> {
        self.attempt_rows(run, None)
    }

    /// The attempts of the job at `index` of `run`, by number: for `exe logs`, which needs
    /// one job's, not the whole run's.
    pub fn job_attempts(&self, run: i64, index: usize) -> Result<Vec<AttemptRow>, StoreError> {
        self.attempt_rows(run, Some(index))
    }

    fn attempt_rows(&self, run: i64, job: Option<usize>) -> Result<Vec<AttemptRow>, StoreError> {
        self.run(run)?;
        // A read-only open may be of a database from before usage was recorded.
        let usage = if self.version >= USAGE_FROM {
            "a.max_rss_kib, a.user_cpu_us, a.system_cpu_us"
        } else {
            "NULL, NULL, NULL"
        };
        let (filter, order) = match job {
            Some(_) => ("AND a.job = ?2", "a.number"),
            None => ("", "a.started_at, a.job, a.number"),
        };
        let sql = format!(
            "SELECT a.job, j.job_id, a.number, a.started_at, a.ended_at, a.exit_code,
                    a.signal, a.outcome, a.reason, a.log_path, a.pgid, {usage}
             FROM attempts a JOIN jobs j ON j.run = a.run AND j.idx = a.job
             WHERE a.run = ?1 {filter}
             ORDER BY {order}"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| match job {
                Some(index) => st
                    .query_map(params![run, index_sql(index)], attempt_row)?
                    .collect(),
                None => st.query_map(params![run], attempt_row)?.collect(),
            })
            .map_err(|e| self.err("listing attempts", e))
    }

    /// The process groups `run`'s attempts started after their first (see
    /// [`super::Record::AttemptGroup`]): job index, attempt number and pgid, for crash
    /// recovery.
    pub fn later_groups(&self, run: i64) -> Result<Vec<(usize, u32, i32)>, StoreError> {
        if self.version < super::schema::GROUPS_FROM {
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached("SELECT job, number, pgid FROM attempt_groups WHERE run = ?1")
            .and_then(|mut st| {
                st.query_map(params![run], |row| {
                    Ok((job_index(row, 0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .map_err(|e| self.err("listing process groups", e))
    }

    /// Whether attempt `number` of the job at index `job` in `run` has ended: one row, for
    /// `exe logs --follow`, which asks every 200 ms.
    pub fn attempt_ended(&self, run: i64, job: usize, number: u32) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT ended_at IS NOT NULL FROM attempts
                 WHERE run = ?1 AND job = ?2 AND number = ?3",
            )
            .and_then(|mut st| st.query_row(params![run, index_sql(job), number], |row| row.get(0)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => {
                    StoreError::UnknownAttempt { run, job, number }
                }
                e => self.err("reading an attempt", e),
            })
    }

    /// The audit trail of a run, in the order recorded, numbered from 1 (also in a database
    /// from before schema 5, read as it is, whose ids counted all runs' transitions).
    pub fn transitions(&self, run: i64) -> Result<Vec<TransitionRow>, StoreError> {
        self.run(run)?;
        let sql = format!(
            "SELECT ROW_NUMBER() OVER (ORDER BY t.id), t.job, j.job_id, t.from_state, t.to_state, t.at, t.reason, t.actor
             FROM transitions t JOIN jobs j ON j.run = t.run AND j.idx = t.job
             WHERE {}
             ORDER BY t.id",
            transitions_of_run(self.version)
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map(params![run], |row| {
                    Ok(TransitionRow {
                        id: row.get(0)?,
                        job: job_index(row, 1)?,
                        job_id: row.get(2)?,
                        from: row.get(3)?,
                        to: row.get(4)?,
                        at_ms: row.get(5)?,
                        reason: row.get(6)?,
                        actor: row.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.err("listing transitions", e))
    }
}

fn attempt_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        job: job_index(row, 0)?,
        job_id: row.get(1)?,
        number: row.get(2)?,
        started_at_ms: row.get(3)?,
        ended_at_ms: row.get(4)?,
        exit_code: row.get(5)?,
        signal: row.get(6)?,
        outcome: row.get(7)?,
        reason: row.get(8)?,
        log_path: row.get(9)?,
        pgid: row.get(10)?,
        max_rss_kib: row.get(11)?,
        user_cpu_us: row.get(12)?,
        system_cpu_us: row.get(13)?,
    })
}
