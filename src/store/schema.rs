//! The history schema, as an ordered list of migrations keyed on `PRAGMA user_version`.
//!
//! Invariants: a migration, once released, is never edited (a database written by that
//! release must upgrade the same way); a new schema is a new entry at the end. All the
//! pending migrations of one open run in one transaction, so a crash leaves the database
//! at its old version, not half-way. A database whose version is newer than
//! [`CURRENT`] is never written to.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `n` (1-based) takes a database from `user_version` `n - 1` to `n`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: runs, their jobs, attempts and transitions.
    //
    // Times are milliseconds since the Unix epoch. No column is ever overwritten once set:
    // the end columns of runs and attempts start NULL and are filled in once, and
    // `runs.heartbeat_at` is liveness, not a fact. A job's current state is the `to_state`
    // of its last transition, hence the (run, job, id) index.
    "
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT    NOT NULL,
        file          TEXT    NOT NULL,
        digest        TEXT    NOT NULL,
        plan_json     TEXT    NOT NULL,
        state         TEXT    NOT NULL DEFAULT 'RUNNING',
        started_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        exit_code     INTEGER,
        host          TEXT    NOT NULL,
        user          TEXT    NOT NULL,
        pid           INTEGER NOT NULL,
        exe_version   TEXT    NOT NULL,
        resumed_from  INTEGER REFERENCES runs(id),
        heartbeat_at  INTEGER
    );
    CREATE INDEX runs_by_name    ON runs(name, id);
    CREATE INDEX runs_by_state   ON runs(state, id);
    CREATE INDEX runs_by_started ON runs(started_at);

    CREATE TABLE jobs (
        run     INTEGER NOT NULL REFERENCES runs(id),
        idx     INTEGER NOT NULL,
        job_id  TEXT    NOT NULL,
        PRIMARY KEY (run, idx),
        UNIQUE (run, job_id)
    ) WITHOUT ROWID;

    CREATE TABLE attempts (
        id          INTEGER PRIMARY KEY,
        run         INTEGER NOT NULL,
        job         INTEGER NOT NULL,
        number      INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        exit_code   INTEGER,
        signal      INTEGER,
        outcome     TEXT,
        reason      TEXT,
        log_path    TEXT    NOT NULL,
        pgid        INTEGER,
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx),
        UNIQUE (run, job, number)
    );

    CREATE TABLE transitions (
        id          INTEGER PRIMARY KEY,
        run         INTEGER NOT NULL,
        job         INTEGER NOT NULL,
        from_state  TEXT    NOT NULL,
        to_state    TEXT    NOT NULL,
        at          INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        actor       TEXT    NOT NULL,
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    );
    CREATE INDEX transitions_by_job ON transitions(run, job, id);
    ",
    // 2: what each job with `inputs` started with, to tell whether it is up to date.
    //
    // One row per job start (its first attempt), recorded with its RUNNING transition and
    // never changed; whether that start succeeded is the job's state in that run. `name`
    // and `job_id` repeat the run's and the job's, so a job's last start, in any run of its
    // pipeline, is one index seek. The digests are NULL when the fingerprint could not be
    // taken (an unreadable input): such a start matches nothing. A manifest (the names and
    // hashes a digest covers, to say what changed) is stored once per distinct content.
    "
    CREATE TABLE manifests (
        id      INTEGER PRIMARY KEY,
        digest  BLOB    NOT NULL UNIQUE,
        body    BLOB    NOT NULL
    );

    CREATE TABLE fingerprints (
        run      INTEGER NOT NULL,
        job      INTEGER NOT NULL,
        name     TEXT    NOT NULL,
        job_id   TEXT    NOT NULL,
        command  BLOB,
        env      BLOB REFERENCES manifests(digest),
        inputs   BLOB REFERENCES manifests(digest),
        PRIMARY KEY (run, job),
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    ) WITHOUT ROWID;
    CREATE INDEX fingerprints_by_job ON fingerprints(name, job_id, run);
    ",
    // 3: what each attempt's command used, as `wait4` reports it: peak RSS in KiB, and user
    // and system CPU time in microseconds. Set with the attempt's end; NULL for attempts
    // recorded before this version, imported ones, and those whose command never ran to
    // its end in exe's hands (a spawn failure, a failed pre-check, exe killed).
    "
    ALTER TABLE attempts ADD COLUMN max_rss_kib   INTEGER;
    ALTER TABLE attempts ADD COLUMN user_cpu_us   INTEGER;
    ALTER TABLE attempts ADD COLUMN system_cpu_us INTEGER;
    ",
    // 4: a name or state together with a time range, answered from an index alone. A
    // run's `started_at` is stored after its plan JSON (on overflow pages), so checking it
    // row by row read those pages for every run of that name: 83-112 ms over 50,000 runs.
    "
    CREATE INDEX runs_by_name_started  ON runs(name, started_at);
    CREATE INDEX runs_by_state_started ON runs(state, started_at);
    ",
    // 5: fewer pages written per commit. A job's start and end wrote four b-trees (attempts
    // and its (run, job, number) index, transitions and its (run, job, id) index); now each
    // table is its own index, kept in the order it grows:
    // - attempts are keyed by (run, job, number), and are read in the order they started;
    // - transitions are keyed by (run, id), where `id` counts a run's transitions from 1 in
    //   the order recorded (the audit trail's order). A job's current state is the last of
    //   its run's transitions for it;
    // - the plan JSON moves out of `runs` to `plans`: updating a run's end or heartbeat no
    //   longer rewrites the plan's overflow pages.
    "
    CREATE TABLE attempts_v5 (
        run            INTEGER NOT NULL,
        job            INTEGER NOT NULL,
        number         INTEGER NOT NULL,
        started_at     INTEGER NOT NULL,
        ended_at       INTEGER,
        exit_code      INTEGER,
        signal         INTEGER,
        outcome        TEXT,
        reason         TEXT,
        log_path       TEXT    NOT NULL,
        pgid           INTEGER,
        max_rss_kib    INTEGER,
        user_cpu_us    INTEGER,
        system_cpu_us  INTEGER,
        PRIMARY KEY (run, job, number),
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    ) WITHOUT ROWID;
    INSERT INTO attempts_v5
        SELECT run, job, number, started_at, ended_at, exit_code, signal, outcome, reason,
               log_path, pgid, max_rss_kib, user_cpu_us, system_cpu_us
        FROM attempts;
    DROP TABLE attempts;
    ALTER TABLE attempts_v5 RENAME TO attempts;

    CREATE TABLE transitions_v5 (
        run         INTEGER NOT NULL,
        id          INTEGER NOT NULL,
        job         INTEGER NOT NULL,
        from_state  TEXT    NOT NULL,
        to_state    TEXT    NOT NULL,
        at          INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        actor       TEXT    NOT NULL,
        PRIMARY KEY (run, id),
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    ) WITHOUT ROWID;
    INSERT INTO transitions_v5
        SELECT run, ROW_NUMBER() OVER (PARTITION BY run ORDER BY id), job, from_state,
               to_state, at, reason, actor
        FROM transitions;
    DROP INDEX transitions_by_job;
    DROP TABLE transitions;
    ALTER TABLE transitions_v5 RENAME TO transitions;

    CREATE TABLE plans (
        run   INTEGER PRIMARY KEY REFERENCES runs(id),
        json  TEXT    NOT NULL
    );
    INSERT INTO plans SELECT id, plan_json FROM runs;
    ALTER TABLE runs DROP COLUMN plan_json;
    ",
    // 6: transitions become a rowid table keyed by `seq` = `run << 32 | id`, so a run's
    // trail is still one range of the key, in the order recorded. Each commit appends to
    // the table's right edge: a full leaf there now splits by starting a new page (two
    // pages written), where the `WITHOUT ROWID` b-tree rebalanced three leaves and their
    // parent. WAL writes of a 2,000-long chain: 12,680 `pwrite`s before, 10,365 after.
    // `run` and `id` stay as columns, for readers of the table.
    "
    CREATE TABLE transitions_v6 (
        seq         INTEGER PRIMARY KEY,
        run         INTEGER NOT NULL,
        id          INTEGER NOT NULL,
        job         INTEGER NOT NULL,
        from_state  TEXT    NOT NULL,
        to_state    TEXT    NOT NULL,
        at          INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        actor       TEXT    NOT NULL,
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    );
    INSERT INTO transitions_v6
        SELECT (run << 32) + id, run, id, job, from_state, to_state, at, reason, actor
        FROM transitions ORDER BY run, id;
    DROP TABLE transitions;
    ALTER TABLE transitions_v6 RENAME TO transitions;
    ",
    // 7: every process group of an attempt, for crash recovery: `attempts.pgid` keeps the
    // first (a pre-check's, or the command's), and a group the attempt starts after it (its
    // command after a pre-check, a post-check) is a row here, so one still running when exe
    // died is found. Most attempts start one group and write nothing here.
    "
    CREATE TABLE attempt_groups (
        run     INTEGER NOT NULL,
        job     INTEGER NOT NULL,
        number  INTEGER NOT NULL,
        pgid    INTEGER NOT NULL,
        PRIMARY KEY (run, job, number, pgid),
        FOREIGN KEY (run, job) REFERENCES jobs(run, idx)
    ) WITHOUT ROWID;
    ",
    // 8: how much of a run's journal (the file its exe appends each batch of facts to before
    // acting on it, see `journal`) is in these tables, in bytes. Moved in the transaction
    // that adds those facts, so a journal is folded exactly once, by its exe or, after a
    // crash, by the next. NULL for runs recorded without a journal, and before the first fold.
    "
    ALTER TABLE runs ADD COLUMN journal_at INTEGER;
    ",
];

/// The schema version this code writes.
#[allow(clippy::cast_possible_wrap)] // a handful of migrations
pub(crate) const CURRENT: i64 = MIGRATIONS.len() as i64;

/// The oldest schema version this code's queries can read without upgrading it (what a
/// read-only open accepts). Raise it when a migration changes a column the queries use.
pub(crate) const READABLE_FROM: i64 = 1;

/// The first schema version with fingerprints; read-only opens of older ones have none.
pub(crate) const FINGERPRINTS_FROM: i64 = 2;

/// The first schema version with attempts' usage; read-only opens of older ones have none.
pub(crate) const USAGE_FROM: i64 = 3;

/// The first schema version with the plan JSON in `plans` (before, in `runs.plan_json`).
pub(crate) const PLANS_FROM: i64 = 5;

/// The first schema version whose transitions are keyed by `seq` = `run << 32 | id`
/// (before, by `(run, id)` or an index on `run`).
pub(crate) const SEQ_FROM: i64 = 6;

/// The first schema version that keeps an attempt's later process groups.
pub(crate) const GROUPS_FROM: i64 = 7;

/// Where `run`'s transitions are, for a query whose `?1` is the run and whose
/// transitions table is `t`: one range of the key from schema [`SEQ_FROM`] on.
pub(crate) fn transitions_of_run(version: i64) -> &'static str {
    if version >= SEQ_FROM {
        "t.seq BETWEEN (?1 << 32) AND (?1 << 32) + 4294967295"
    } else {
        "t.run = ?1"
    }
}

/// The `user_version` of the open database.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// The `user_version` of the open database, and whether it has any table, read together
/// (one statement, so a creator's commit cannot fall between the two).
pub(crate) fn version_and_tables(conn: &Connection) -> rusqlite::Result<(i64, bool)> {
    conn.query_row(
        "SELECT user_version,
                EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')
         FROM pragma_user_version",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// What [`migrate`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// The database is at the last version of `migrations`.
    UpTo(i64),
    /// The database is newer than `migrations` knows; nothing was written.
    Newer(i64),
}

/// Brings the database up to the last of `migrations`, in one immediate transaction.
///
/// The version is read again inside the transaction: with several processes opening a
/// new database at once, only the first one creates the tables.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<Migrated> {
    let target = i64::try_from(migrations.len()).expect("a handful of migrations");
    // Reading first avoids taking the write lock on every open of an up-to-date database.
    let found = version(conn)?;
    if found > target {
        return Ok(Migrated::Newer(found));
    }
    if found == target {
        return Ok(Migrated::UpTo(target));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > target {
        return Ok(Migrated::Newer(found));
    }
    for (n, sql) in migrations
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tracing::info!(version = n + 1, "migrating the history database");
        tx.execute_batch(sql)?;
    }
    // PRAGMA takes no bound parameters; `target` is our own integer, never user input.
    tx.execute_batch(&format!("PRAGMA user_version = {target}"))?;
    tx.commit()?;
    Ok(Migrated::UpTo(target))
}
