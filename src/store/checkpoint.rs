//! Checkpoints off the run's path: while a run records, a thread of its own (with its own
//! connection) moves the WAL into the database, instead of the commit that crossed the
//! threshold doing it (and its fsyncs) while the next job waits.
//!
//! Invariants: the WAL still never grows far past [`AUTOCHECKPOINT_PAGES`] (the thread is
//! asked as soon as a commit crosses it); a checkpoint is PASSIVE, so it never blocks a
//! writer, and it syncs as the run's own connection would (same `synchronous`). When the
//! run is done, [`Store::stop_background_checkpoints`] puts `SQLite`'s own automatic
//! checkpoints back and waits for the thread.

use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

use super::{AUTOCHECKPOINT_PAGES, BUSY_TIMEOUT, Store, StoreError};

/// The checkpointing thread of a run; give it back to [`Store::stop_background_checkpoints`].
#[derive(Debug)]
pub struct Checkpointer {
    thread: JoinHandle<()>,
}

impl Store {
    /// From now until [`Store::stop_background_checkpoints`], checkpoints run on a thread.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the second connection cannot be opened or configured; the store
    /// keeps checkpointing by itself then.
    pub fn checkpoint_in_background(&mut self) -> Result<Checkpointer, StoreError> {
        let synchronous: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(|e| self.err("reading synchronous", e))?;
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "synchronous", synchronous)?;
            Ok(conn)
        })
        .map_err(|e| self.err("opening a connection for checkpoints", e))?;
        // One pending request is enough: a checkpoint moves everything committed so far.
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("checkpoints".to_owned())
            .spawn(move || checkpoint_when_asked(&conn, &asked))
            .map_err(|e| StoreError::Io {
                path: self.path.clone(),
                detail: format!("cannot start the checkpoint thread: {e}"),
            })?;
        // Replaces SQLite's automatic checkpoints (they are a WAL hook too). The hook only
        // asks; it never blocks a commit.
        self.conn
            .wal_hook(Some(move |_: &mut Wal, pages: i32| {
                if pages >= AUTOCHECKPOINT_PAGES {
                    let _ = ask.try_send(());
                }
                Ok(())
            }))
            .map_err(|e| self.err("handing checkpoints to a thread", e))?;
        Ok(Checkpointer { thread })
    }

    /// Gives checkpoints back to `SQLite` and waits for the thread to finish its last one.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] if the automatic checkpoints cannot be restored.
    pub fn stop_background_checkpoints(
        &mut self,
        checkpointer: Checkpointer,
    ) -> Result<(), StoreError> {
        // Removing the hook through rusqlite drops the closure, which holds the only sender:
        // the thread's wait ends. (The pragma alone would replace the hook in SQLite but
        // leave the closure alive.)
        let removed = self
            .conn
            .wal_hook(None::<fn(&mut Wal, i32) -> rusqlite::Result<()>>);
        if removed.is_ok() {
            // Only then is the thread sure to end; otherwise it is left to end with exe.
            let _ = checkpointer.thread.join();
        }
        removed
            .and_then(|()| {
                self.conn
                    .pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)
            })
            .map_err(|e| self.err("restoring automatic checkpoints", e))
    }
}

fn checkpoint_when_asked(conn: &Connection, asked: &Receiver<()>) {
    while asked.recv().is_ok() {
        // A busy or failed checkpoint loses nothing: the frames stay in the WAL, and the
        // next request (or the next exe) moves them.
        if let Err(e) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            tracing::debug!(error = %e, "background checkpoint did not finish");
        }
    }
}
