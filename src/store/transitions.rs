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

/// The run's last transition number, 0 if it has none: one seek to the end of the run's
/// range of the primary key. `+?1`, not `?1`: compared to a bound parameter in a MAX or
/// LIMIT query, `SQLite` prepares the statement again for each new value, which cost more
/// than the query itself.
pub(super) const LAST_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM transitions WHERE run = +?1";

/// `INSERTS[n - 1]` inserts `n` rows.
static INSERTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (1..=ROWS_PER_STATEMENT)
        .map(|rows| {
            let values = (0..rows)
                .map(|row| {
                    let first = row * 8 + 1;
                    let params = (first..first + 8)
                        .map(|n| format!("?{n}"))
                        .collect::<Vec<_>>();
                    format!("({})", params.join(", "))
                })
                .collect::<Vec<_>>();
            format!(
                "INSERT INTO transitions (run, id, job, from_state, to_state, at, reason, actor)
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
        .prepare_cached(LAST_ID)?
        .query_row([run], |row| row.get(0))?;
    let ids: Vec<i64> = (last + 1..).take(rows.len()).collect();
    for (chunk, ids) in rows
        .chunks(ROWS_PER_STATEMENT)
        .zip(ids.chunks(ROWS_PER_STATEMENT))
    {
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 8);
        for (t, id) in chunk.iter().zip(ids) {
            params.extend_from_slice(&[
                &run, id, &t.job, &t.from, &t.to, &t.at_ms, &t.reason, &t.actor,
            ]);
        }
        conn.prepare_cached(&INSERTS[chunk.len() - 1])?
            .execute(params.as_slice())?;
    }
    Ok(())
}
