//! The write transaction every recording call runs in.
//!
//! `BEGIN IMMEDIATE` takes the write lock at once, waiting up to the busy timeout, so a
//! transaction cannot fail later with a deadlock between two readers that both want to
//! write. `BEGIN` and `COMMIT` are statements prepared once: rusqlite's `Transaction`
//! runs them through `execute_batch`, which parses them again on every call, and that
//! parsing was a tenth of what recording a chain's step cost.

use std::ops::Deref;

use rusqlite::Connection;

/// An open write transaction; dropped without [`Immediate::commit`], it is rolled back.
pub(super) struct Immediate<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl<'c> Immediate<'c> {
    /// Begins the transaction, waiting for the write lock up to the busy timeout.
    pub(super) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Immediate {
            conn,
            committed: false,
        })
    }

    /// Commits what the transaction wrote.
    pub(super) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Deref for Immediate<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        // SQLite ends some failed transactions itself (a full disk, an I/O error).
        if !self.committed && !self.conn.is_autocommit() {
            // The error that stopped the transaction is what the caller reports.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
