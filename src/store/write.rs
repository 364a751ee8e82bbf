//! The statements that add facts: new runs, batches of records, a run's end, heartbeats
//! and mark-success. Each public call is one transaction.
//!
//! Runs are created under `BEGIN IMMEDIATE` so that concurrent applies queue on the write
//! lock (and the busy timeout) instead of failing to upgrade a read lock; AUTOINCREMENT
//! then keeps ids unique and increasing, even across deleted-by-hand rows.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::error::classify;
use super::immediate::Immediate;
use super::transitions::{self, NewTransition};
use super::{ENGINE_ACTOR, Journal, NewRun, Record, Store, StoreError, index_sql};

/// `SQLite`'s extended code for a failed foreign key: the run or the job index is unknown.
const CONSTRAINT_FOREIGNKEY: i32 = 787;

impl Store {
    /// Records a new run and its jobs, and creates its journal (see [`Journal`]), in one
    /// transaction: a journal that cannot be made leaves no run behind. Returns the run's id.
    pub fn start_run(&mut self, run: &NewRun) -> Result<(i64, Journal), StoreError> {
        let Store {
            conn,
            path,
            durability,
            ..
        } = self;
        let tx = begin(conn, path, "starting a run")?;
        let id = new_run(&tx, path, run)?;
        let journal = Journal::create(path, *durability, id)?;
        if let Err(e) = tx.commit() {
            journal.remove();
            return Err(classify(path, "committing a new run", e));
        }
        Ok((id, journal))
    }

    /// Records a new run and its jobs, without a journal: how tests set a run up.
    #[cfg(test)]
    pub fn create_run(&mut self, run: &NewRun) -> Result<i64, StoreError> {
        let Store { conn, path, .. } = self;
        let tx = begin(conn, path, "starting a run")?;
        let id = new_run(&tx, path, run)?;
        tx.commit()
            .map_err(|e| classify(path, "committing a new run", e))?;
        Ok(id)
    }

    /// Records a batch of facts about `run` in one transaction, straight into the tables
    /// (as a fold does): how tests set a run up. A run itself journals and folds (`journal`).
    #[cfg(test)]
    pub fn record(&mut self, run: i64, batch: &[Record]) -> Result<(), StoreError> {
        let Store { conn, path, .. } = self;
        let tx = begin(conn, path, "recording")?;
        if let Err(refused) = write_batch(&tx, run, batch) {
            drop(tx);
            return Err(self.refused(run, refused));
        }
        tx.commit()
            .map_err(|e| classify(path, "committing records", e))
    }

    /// Closes `run`, whose exe died: its last facts (`batch`) and its end, in one
    /// transaction, unless another exe closed it first (several may open the history at
    /// once after a crash). Returns whether this call closed it.
    pub fn close_dead_run(
        &mut self,
        run: i64,
        batch: &[Record],
        state: &str,
        exit_code: i32,
        ended_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let Store { conn, path, .. } = self;
        let tx = begin(conn, path, "closing a run")?;
        let open = tx
            .prepare_cached("SELECT ended_at IS NULL FROM runs WHERE id = ?1")
            .and_then(|mut st| st.query_row(params![run], |row| row.get::<_, bool>(0)))
            .map_err(|e| classify(path, "reading a run", e))?;
        if !open {
            return Ok(false);
        }
        if let Err(refused) = write_batch(&tx, run, batch) {
            drop(tx);
            return Err(self.refused(run, refused));
        }
        tx.prepare_cached(
            "UPDATE runs SET state = ?2, exit_code = ?3, ended_at = ?4 WHERE id = ?1",
        )
        .and_then(|mut st| st.execute(params![run, state, exit_code, ended_at_ms]))
        .map_err(|e| classify(path, "closing a run", e))?;
        tx.commit()
            .map_err(|e| classify(path, "committing a run's close", e))?;
        Ok(true)
    }

    /// Records the end of `run`: its final state and exit code. Written once.
    pub fn finish_run(
        &mut self,
        run: i64,
        state: &str,
        exit_code: i32,
        ended_at_ms: i64,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE runs SET state = ?2, exit_code = ?3, ended_at = ?4
                 WHERE id = ?1 AND ended_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![run, state, exit_code, ended_at_ms]))
            .map_err(|e| self.err("finishing a run", e))?;
        if changed == 0 {
            self.run(run)?;
            return Err(StoreError::RunFinished { id: run });
        }
        Ok(())
    }

    /// Records that the owner of `run` is alive. Ignored once the run is finished.
    pub fn heartbeat(&mut self, run: i64, at_ms: i64) -> Result<(), StoreError> {
        let changed = self
            .conn
            .prepare_cached("UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1 AND ended_at IS NULL")
            .and_then(|mut st| st.execute(params![run, at_ms]))
            .map_err(|e| self.err("recording a heartbeat", e))?;
        if changed == 0 {
            // Unknown, or finished (a late heartbeat is harmless).
            self.run(run)?;
        }
        Ok(())
    }

    /// Marks `job` of `run` successful by hand: a new transition from its current state
    /// to SUCCESS, with `actor` and `reason`. Earlier attempts and transitions stay.
    /// Returns false, recording nothing, when the job is already SUCCESS.
    pub fn mark_success(
        &mut self,
        run: i64,
        job: &str,
        actor: &str,
        reason: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let Store {
            conn,
            path,
            version,
            ..
        } = self;
        let tx = begin(conn, path, "marking a job successful")?;
        let found = tx
            .prepare_cached("SELECT idx FROM jobs WHERE run = ?1 AND job_id = ?2")
            .and_then(|mut st| {
                st.query_row(params![run, job], |row| row.get::<_, i64>(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })
            })
            .map_err(|e| classify(path, "finding a job", e))?;
        let Some(index) = found else {
            drop(tx);
            return Err(self.unknown(run, job));
        };
        let current = super::read::job_at(&tx, *version, run, index)
            .map_err(|e| classify(path, "reading a job's state", e))?
            .state;
        if current == "SUCCESS" {
            // A SUCCESS-to-SUCCESS row would say nothing; the transaction wrote nothing.
            return Ok(false);
        }
        let transition = NewTransition {
            job: index,
            from: &current,
            to: "SUCCESS",
            at_ms,
            reason,
            actor,
        };
        transitions::insert(&tx, run, &[transition])
            .map_err(|e| classify(path, "marking a job successful", e))?;
        tx.commit()
            .map_err(|e| classify(path, "committing mark-success", e))?;
        Ok(true)
    }

    /// The error for a batch [`write_batch`] refused.
    pub(super) fn refused(&self, run: i64, refused: Refused) -> StoreError {
        match refused {
            Refused::Attempt { job, number } => StoreError::UnknownAttempt { run, job, number },
            Refused::Job(job) => self.unknown(run, &job),
            Refused::Sql(e) => classify(&self.path, "recording", e),
        }
    }

    /// The error for an unknown `job` of `run`: [`StoreError::UnknownRun`] if the run itself is unknown.
    fn unknown(&self, run: i64, job: &str) -> StoreError {
        match self.run(run) {
            Ok(_) => StoreError::UnknownJob {
                run,
                job: job.to_owned(),
            },
            Err(e) => e,
        }
    }
}

/// Why a batch was not written.
pub(super) enum Refused {
    /// An attempt's end or group matched no open attempt.
    Attempt { job: usize, number: u32 },
    /// A job (by index) the run does not have.
    Job(String),
    /// Anything else `SQLite` reported.
    Sql(rusqlite::Error),
}

/// Writes a batch of facts about `run` in the caller's transaction: each record, then the
/// transitions together ([`transitions::insert`]).
pub(super) fn write_batch(tx: &Connection, run: i64, batch: &[Record]) -> Result<(), Refused> {
    let mut transitions = Vec::new();
    for record in batch {
        match insert_record(tx, run, record, &mut transitions) {
            Ok(true) => {}
            Ok(false) => {
                return Err(match *record {
                    Record::AttemptEnded { job, number, .. }
                    | Record::AttemptGroup { job, number, .. } => Refused::Attempt { job, number },
                    Record::Fingerprint { job, .. } => Refused::Job(job.to_string()),
                    Record::Transition { .. } | Record::AttemptStarted { .. } => unreachable!(
                        "only an attempt's end or group, or a fingerprint, can match no row"
                    ),
                });
            }
            Err(e) if is_foreign_key(&e) => {
                let job = match record {
                    Record::Transition { job, .. }
                    | Record::AttemptStarted { job, .. }
                    | Record::AttemptEnded { job, .. }
                    | Record::AttemptGroup { job, .. }
                    | Record::Fingerprint { job, .. } => *job,
                };
                return Err(Refused::Job(job.to_string()));
            }
            Err(e) => return Err(Refused::Sql(e)),
        }
    }
    match transitions::insert(tx, run, &transitions) {
        Ok(()) => Ok(()),
        Err(e) if is_foreign_key(&e) => Err(unknown_job(tx, run, &transitions)
            .map_or_else(Refused::Sql, |job| Refused::Job(job.to_string()))),
        Err(e) => Err(Refused::Sql(e)),
    }
}

/// Records `run` in the caller's write transaction; returns its id.
fn new_run(tx: &Connection, path: &Path, run: &NewRun) -> Result<i64, StoreError> {
    // Checked under the write lock: two resumes of one run starting at once would both
    // run its jobs, and so would two resumes of one chain (run 3 resuming run 2 while run
    // 1, which run 2 resumed, is resumed again). (Runs whose exe died were closed before.)
    if let Some(resumed) = run.resumed_from {
        let going =
            resume_going_in_chain(tx, resumed).map_err(|e| classify(path, "reading runs", e))?;
        if let Some((by, of)) = going {
            return Err(StoreError::BeingResumed {
                run: resumed,
                by,
                of,
            });
        }
    }
    insert_run(tx, run).map_err(|e| classify(path, "recording a new run", e))
}

/// A resume still going in the resume chain of `run` (what it resumed, what resumed that,
/// ...), as (the run going, the run it resumes).
fn resume_going_in_chain(tx: &Connection, run: i64) -> rusqlite::Result<Option<(i64, i64)>> {
    let first = first_of_chain(tx, run)?;
    let mut going = tx.prepare_cached(
        "SELECT id, resumed_from FROM runs
         WHERE state = 'RUNNING' AND ended_at IS NULL AND resumed_from IS NOT NULL",
    )?;
    let going: Vec<(i64, i64)> = going
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (by, of) in going {
        if first_of_chain(tx, of)? == first {
            return Ok(Some((by, of)));
        }
    }
    Ok(None)
}

/// The run that `run`'s resume chain started with: the first one, which resumed none.
fn first_of_chain(tx: &Connection, mut run: i64) -> rusqlite::Result<i64> {
    let mut parent = tx.prepare_cached("SELECT resumed_from FROM runs WHERE id = ?1")?;
    while let Some(resumed) = parent
        .query_row([run], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
    {
        // A run resumes an earlier one; a history edited by hand could loop.
        if resumed >= run {
            break;
        }
        run = resumed;
    }
    Ok(run)
}

/// Starts a write transaction (see [`Immediate`]).
fn begin<'c>(
    conn: &'c Connection,
    path: &Path,
    context: &'static str,
) -> Result<Immediate<'c>, StoreError> {
    Immediate::begin(conn).map_err(|e| classify(path, context, e))
}

/// [`insert_run`] in a caller's transaction, so the speed test can batch many runs.
#[cfg(test)]
pub(super) fn insert_run_for_bench(tx: &Connection, run: &NewRun) -> rusqlite::Result<i64> {
    insert_run(tx, run)
}

fn insert_run(tx: &Connection, run: &NewRun) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO runs (name, file, digest, started_at, host, user, pid, exe_version,
                           resumed_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        run.name,
        run.file,
        run.digest,
        run.started_at_ms,
        run.host,
        run.user,
        run.pid,
        run.exe_version,
        run.resumed_from,
    ])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO plans (run, json) VALUES (?1, ?2)")?
        .execute(params![id, run.plan_json])?;
    let mut job = tx.prepare_cached("INSERT INTO jobs (run, idx, job_id) VALUES (?1, ?2, ?3)")?;
    for (index, job_id) in run.jobs.iter().enumerate() {
        job.execute(params![id, index_sql(index), job_id])?;
    }
    Ok(id)
}

/// Inserts one record, except a transition, which joins `transitions` to go in with the
/// batch's others ([`transitions::insert`]); `Ok(false)` when an attempt's end or group
/// matched no open attempt, or a fingerprint no job.
fn insert_record<'r>(
    tx: &Connection,
    run: i64,
    record: &Record<'r>,
    transitions: &mut Vec<NewTransition<'r>>,
) -> rusqlite::Result<bool> {
    match *record {
        Record::Transition {
            job,
            from,
            to,
            at_ms,
            reason,
        } => {
            transitions.push(NewTransition {
                job: index_sql(job),
                from,
                to,
                at_ms,
                reason,
                actor: ENGINE_ACTOR,
            });
            Ok(true)
        }
        Record::AttemptStarted {
            job,
            number,
            at_ms,
            log_path,
            pgid,
        } => tx
            .prepare_cached(
                "INSERT INTO attempts (run, job, number, started_at, log_path, pgid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![run, index_sql(job), number, at_ms, log_path, pgid])
            .map(|_| true),
        Record::AttemptEnded {
            job,
            number,
            at_ms,
            exit_code,
            signal,
            usage,
            outcome,
            reason,
            pgid,
        } => tx
            .prepare_cached(
                "UPDATE attempts
                 SET ended_at = ?4, exit_code = ?5, signal = ?6, outcome = ?7, reason = ?8,
                     max_rss_kib = ?9, user_cpu_us = ?10, system_cpu_us = ?11,
                     pgid = COALESCE(pgid, ?12)
                 WHERE run = ?1 AND job = ?2 AND number = ?3 AND ended_at IS NULL",
            )?
            .execute(params![
                run,
                index_sql(job),
                number,
                at_ms,
                exit_code,
                signal,
                outcome,
                reason,
                usage.and_then(|u| u.max_rss_kib).map(saturating_i64),
                usage.map(|u| micros(u.user_cpu)),
                usage.map(|u| micros(u.system_cpu)),
                pgid,
            ])
            .map(|changed| changed == 1),
        Record::Fingerprint { job, fingerprint } => {
            super::fingerprints::insert(tx, run, index_sql(job), fingerprint)
        }
        Record::AttemptGroup { job, number, pgid } => {
            let first = tx
                .prepare_cached(
                    "UPDATE attempts SET pgid = ?4
                     WHERE run = ?1 AND job = ?2 AND number = ?3 AND pgid IS NULL
                       AND ended_at IS NULL",
                )?
                .execute(params![run, index_sql(job), number, pgid])?;
            if first == 1 {
                return Ok(true);
            }
            // A later group of the attempt (its command after a pre-check, a post-check).
            tx.prepare_cached(
                "INSERT INTO attempt_groups (run, job, number, pgid)
                 SELECT run, job, number, ?4 FROM attempts
                 WHERE run = ?1 AND job = ?2 AND number = ?3 AND ended_at IS NULL",
            )?
            .execute(params![run, index_sql(job), number, pgid])
            .map(|inserted| inserted == 1)
        }
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn micros(time: std::time::Duration) -> i64 {
    i64::try_from(time.as_micros()).unwrap_or(i64::MAX)
}

/// The first of `rows` whose job is not one of `run`'s (what made their insert fail).
fn unknown_job(tx: &Connection, run: i64, rows: &[NewTransition<'_>]) -> rusqlite::Result<i64> {
    let mut known = tx.prepare_cached("SELECT 1 FROM jobs WHERE run = ?1 AND idx = ?2")?;
    for row in rows {
        if !known.exists(params![run, row.job])? {
            return Ok(row.job);
        }
    }
    // Not reached: a failed foreign key is a missing (run, job). Name the first.
    Ok(rows.first().map_or(0, |row| row.job))
}

fn is_foreign_key(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == CONSTRAINT_FOREIGNKEY)
}
