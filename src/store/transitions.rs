//! The audit trail's inserts: a batch of transitions, numbered after the run's last one.
//!
//! A run's transitions are keyed by (run, id), where `id` counts from 1 in the order they
//! were recorded. The next id is read once per batch, inside the batch's write
//! transaction, so two writers (an apply and a `mark-success` on the same run) cannot
//! take the same number. The rows then go in with as few statements as possible: each
//! statement costs more to run than the row it adds, and a chain's step records three
//! transitions (QUEUED, RUNNING, then SUCCESS of the job before).

use std::sync::LazyLock;

use rusqlite::{Connection, ToSql};

use super::schema::{SEQ_FROM, transitions_of_run};

/// One transition to record; `job` is the job's index in its run.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewTransition<'a> {
    pub job: i64,
    pub from: &'a str,
    pub to: &'a str,
    pub at_ms: i64,
    pub reason: &'a str,
    pub actor: &'a str,
}

/// The most rows one statement inserts; longer batches take several statements.
const ROWS_PER_STATEMENT: usize = 8;

/// The values a row binds.
const COLUMNS: usize = 9;

/// The run's last transition number, 0 if it has none: one seek to the end of the run's
/// range of `seq` (see [`transitions_of_run`]). A unit test checks that a new run id does
/// not make `SQLite` prepare it again.
pub(super) static LAST_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT COALESCE((SELECT t.id FROM transitions t WHERE {} ORDER BY t.seq DESC LIMIT 1), 0)",
        transitions_of_run(SEQ_FROM)
    )
});

/// `INSERTS[n - 1]` inserts `n` rows.
static INSERTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=ROWS_PER_STATEMENT)
        .map(|rows| {
            let values = (0..rows)
                .map(|row| {
                    let first = row * COLUMNS + 1;
                    let params = (first..first + COLUMNS)
                        .map(|n| format!("?{n}"))
                        .collect::<Vec<_>>();
                    format!("({})", params.join(", "))
                })
                .collect::<Vec<_>>();
            format!(
                "INSERT INTO transitions (seq, run, id, job, from_state, to_state, at, reason, actor)
                 VALUES {}",
                values.join(", ")
            )
        })
        .collect()
});

/// Inserts `rows` as `run`'s next transitions, in order. Call inside a write transaction.
pub(super) fn insert(
    conn: &Connection,
    run: i64,
    rows: &[NewTransition<'_>],
) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let last: i64 = conn
        .prepare_cached(&LAST_ID)?
        .query_row([run], |row| row.get(0))?;
    let ids: Vec<(i64, i64)> = (last + 1..)
        .take(rows.len())
        .map(|id| ((run << 32) + id, id))
        .collect();
    for (chunk, ids) in rows
        .chunks(ROWS_PER_STATEMENT)
        .zip(ids.chunks(ROWS_PER_STATEMENT))
    {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * COLUMNS);
        for (t, (seq, id)) in chunk.iter().zip(ids) {
            params.extend_from_slice(&[
                seq, &run, id, &t.job, &t.from, &t.to, &t.at_ms, &t.reason, &t.actor,
            ]);
        }
        conn.prepare_cached(&INSERTS[chunk.len() - 1])?
            .execute(params.as_slice())?;
    }
    Ok(())
}
