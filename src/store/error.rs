//! Why the history store failed, in terms the user can act on.
//!
//! `SQLite` reports a handful of conditions the user can fix (a locked, full, read-only,
//! corrupt or newer database, or a failed read or write); [`classify`] turns those into their
//! own variants so the message and the help are about the database file, not about SQL.
//! Everything else is [`StoreError::Sql`], a bug or an environment problem, with what we were
//! doing.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Why the history store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened at all.
    #[error("cannot open the history database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// `SQLite`'s reason.
        source: rusqlite::Error,
    },
    /// The path names a folder, a device, a pipe or a socket: `SQLite` needs a regular file
    /// (a pipe would block the open for good).
    #[error("the history database {} is {kind}, not a file", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead.
        kind: NotAFileKind,
    },
    /// A folder on the path is a file.
    #[error(
        "the history database {} cannot be reached: {} is a file, not a folder",
        path.display(), file.display()
    )]
    FileOnPath {
        /// The database file.
        path: PathBuf,
        /// The file that stands where a folder should.
        file: PathBuf,
    },
    /// The path cannot be looked at: a folder on the way is not this user's to enter.
    #[error("cannot reach the history database {}: {source}", path.display())]
    Unreachable {
        /// The database file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database file is there, but this user may not read it.
    #[error("cannot read the history database {}: {source}", path.display())]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database file is missing but its write-ahead log is there, and may hold runs:
    /// creating a new database would throw them away.
    #[error(
        "the history database {} is missing, but its write-ahead log {}-wal is there and may \
         hold runs",
        path.display(), path.display()
    )]
    WalWithoutDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// An `SQLite` database with tables of its own and no exe schema version: not a history.
    #[error(
        "{} is an SQLite database but not an exe history: it has tables, and schema version \
         {found} where a history has 1 or more",
        path.display()
    )]
    NotAHistory {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// The directory that should hold the database could not be created.
    #[error("cannot create the directory for the history database {}: {source}", path.display())]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database was written by a newer exe; it was not modified.
    #[error(
        "the history database {} has schema version {found}; this exe knows up to {supported}",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// The database is too old to be read without upgrading it, and it was opened
    /// read-only.
    #[error(
        "the history database {} has schema version {found} and must be upgraded to {current}, \
         but it was opened read-only",
        path.display()
    )]
    NeedsUpgrade {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The version this code writes.
        current: i64,
    },
    /// The file is not a `SQLite` database, or it is damaged.
    #[error("the history database {} is damaged or not a database: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What `SQLite` found.
        detail: String,
    },
    /// `exe migrate --history` was given a file that is not the older tool's history.
    #[error("{} is not a history of the older executioner: {detail}", path.display())]
    NotAnOldHistory {
        /// The file given to `--history`.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A write was needed but the file (or its directory) is read-only.
    #[error("the history database {} is read-only", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// Read-only, the WAL's shared-memory file could neither be opened nor created, and the
    /// WAL holds commits that the database file alone does not have.
    #[error(
        "the history database {} cannot be read: its write-ahead log ({}-wal) needs a \
         shared-memory file ({}-shm) that this user can neither open nor create",
        path.display(), path.display(), path.display()
    )]
    WalUnreadable {
        /// The database file.
        path: PathBuf,
    },
    /// Another process held the database locked for longer than the busy timeout.
    #[error("the history database {} stayed locked by another process", path.display())]
    Busy {
        /// The database file.
        path: PathBuf,
    },
    /// exe was asked to stop while another process held the database locked.
    #[error(
        "interrupted while the history database {} was locked by another process",
        path.display()
    )]
    Interrupted {
        /// The database file.
        path: PathBuf,
    },
    /// The disk (or quota) is full.
    #[error("the disk holding the history database {} is full", path.display())]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// The operating system failed a read or write of the database: a quota or a file-size
    /// limit reached (which `SQLite` reports as I/O errors, unlike a full disk), or a failing
    /// disk.
    #[error("cannot read or write the history database {}: {detail}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// What `SQLite` reported.
        detail: String,
    },
    /// Something is where a new run's journal goes, and could not be moved aside.
    #[error(
        "{} is in the way of run {run}'s journal and could not be moved aside to {}: {source}",
        path.display(),
        aside.display()
    )]
    JournalInTheWay {
        /// The run being started (not recorded).
        run: i64,
        /// Where its journal goes.
        path: PathBuf,
        /// Where exe tried to move what is there.
        aside: PathBuf,
        /// Why it could not.
        source: std::io::Error,
    },
    /// No run has this id.
    #[error("there is no run {id} in the history")]
    UnknownRun {
        /// The id asked for.
        id: i64,
    },
    /// The run has no job with this id (or index).
    #[error("run {run} has no job {job:?}")]
    UnknownJob {
        /// The run.
        run: i64,
        /// The job id (or index) asked for.
        job: String,
    },
    /// An attempt end was recorded for an attempt that never started, or that already
    /// ended: facts are written once.
    #[error("attempt {number} of job {job} in run {run} was not started or has already ended")]
    UnknownAttempt {
        /// The run.
        run: i64,
        /// The job's index.
        job: usize,
        /// The attempt's number.
        number: u32,
    },
    /// A run resuming a run of the same resume chain (the run asked for, one it resumed, or
    /// one that resumed it) is still going: the jobs they have in common would run twice at
    /// once.
    #[error(
        "run {run} is being resumed already, by run {by}{}, which is still running",
        chained(*run, *of)
    )]
    BeingResumed {
        /// The run asked to resume.
        run: i64,
        /// The run still going.
        by: i64,
        /// The run it resumes: `run`, or another of its chain.
        of: i64,
    },
    /// The run was already finished; its end is written once.
    #[error("run {id} has already finished")]
    RunFinished {
        /// The run.
        id: i64,
    },
    /// Any other `SQLite` failure: a bug in exe or a broken environment.
    #[error("history database error while {context}: {source}")]
    Sql {
        /// What the store was doing.
        context: &'static str,
        /// `SQLite`'s reason.
        source: rusqlite::Error,
    },
}

/// What a `--db` path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAFileKind {
    /// A directory.
    Folder,
    /// A FIFO: opening it would block until a writer came.
    NamedPipe,
    /// A Unix socket.
    Socket,
    /// A character or block device.
    Device,
}

impl std::fmt::Display for NotAFileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotAFileKind::Folder => "a folder",
            NotAFileKind::NamedPipe => "a named pipe",
            NotAFileKind::Socket => "a socket",
            NotAFileKind::Device => "a device",
        })
    }
}

/// How [`StoreError::BeingResumed`] names a resume of another run of the same chain.
fn chained(run: i64, of: i64) -> String {
    if run == of {
        String::new()
    } else {
        format!(" (which resumes run {of}, of the same resume chain)")
    }
}

impl StoreError {
    /// What the user can do about it, when there is something.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            StoreError::Open { .. } | StoreError::CreateDir { .. } => {
                "check the path and its permissions, or use --db (or EXE_DB) to choose another file"
                    .into()
            }
            StoreError::FileOnPath { file, .. } => format!(
                "use --db (or EXE_DB) to choose another path, or move {} aside so that exe \
                 can make the folder",
                file.display()
            ),
            StoreError::Unreachable { .. } => {
                "check the permissions of the folders on its path, or use --db (or EXE_DB) to \
                 choose another file"
                    .into()
            }
            StoreError::Unreadable { path, .. } => format!(
                "this user may not read it: check its owner and mode (`ls -l {}`), run exe as a \
                 user who may, or use --db (or EXE_DB) to choose another file",
                path.display()
            ),
            StoreError::WalWithoutDatabase { path } => format!(
                "restore {} from where it was moved or backed up; to start a new history \
                 instead, move {}-wal (and any {}-shm) aside",
                path.display(),
                path.display(),
                path.display()
            ),
            StoreError::NotAHistory { .. } => "exe left it as it was; point --db (or EXE_DB) \
                at an exe history, or at a new file"
                .into(),
            StoreError::NotAFile { path, kind } => {
                let example = if *kind == NotAFileKind::Folder {
                    format!(" such as {}", path.join("history.db").display())
                } else {
                    String::new()
                };
                format!("give --db (or EXE_DB) the path of a file{example}; exe creates it")
            }
            StoreError::NewerSchema { .. } => {
                "this database was written by a newer exe; use that exe, or --db another file"
                    .into()
            }
            StoreError::NeedsUpgrade { .. } => {
                "run any exe command that records history (e.g. `exe apply`) with write access \
                 once to upgrade it, or use a newer copy"
                    .into()
            }
            StoreError::Corrupt { path, .. } => format!(
                "move {} aside (keep it for recovery with the sqlite3 tool) and exe starts a new \
                 history; or use --db another file",
                path.display()
            ),
            StoreError::NotAnOldHistory { .. } => {
                "--history takes the SQLite file executioner kept its runs in (the one with a \
                 `job_history` table); the file was only read"
                    .into()
            }
            StoreError::ReadOnly { .. } => {
                "reading commands (runs, show, logs) still work; to record runs, make the file \
                 and its directory writable or use --db another file"
                    .into()
            }
            StoreError::WalUnreadable { .. } => {
                "run `exe runs` once as a user who may write to its folder (that makes the -shm \
                 file), or copy the database and its -wal file to a folder you can write and use \
                 --db"
                    .into()
            }
            StoreError::Busy { .. } => {
                "another exe is writing to it; try again, or use --db another file".into()
            }
            StoreError::Interrupted { .. } => "what was recorded before is intact; the next \
                exe that opens the history closes this run as CANCELLED, ready for --resume"
                .into(),
            StoreError::DiskFull { .. } => "free some space on that disk; what was recorded \
                before is intact, and the next exe that records a run closes a run this one \
                left open as CANCELLED, ready for --resume"
                .into(),
            StoreError::Io { .. } => "check that disk: a quota or file-size limit (ulimit -f) \
                may be reached, or the disk may be failing; what was recorded before is intact"
                .into(),
            StoreError::JournalInTheWay { path, .. } => format!(
                "move {} away: it is not this history's (run ids start from 1 again in a new \
                 history); nothing was recorded",
                path.display()
            ),
            StoreError::UnknownRun { .. } => "`exe runs` lists the runs".into(),
            StoreError::BeingResumed { by, .. } => {
                format!("wait for run {by} to end; if it fails, resume it (`--resume {by}`)")
            }
            StoreError::UnknownJob { run, .. } => format!("`exe show {run}` lists its jobs"),
            StoreError::UnknownAttempt { .. }
            | StoreError::RunFinished { .. }
            | StoreError::Sql { .. } => return None,
        })
    }
}

/// Turns a `SQLite` error into the store error the user can act on, or [`StoreError::Sql`].
pub(crate) fn classify(path: &Path, context: &'static str, err: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) if super::busy::stopping() => {
            StoreError::Interrupted { path }
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { path },
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
        Some(ErrorCode::SystemIoFailure) => StoreError::Io {
            path,
            detail: err.to_string(),
        },
        // After a successful open, CANTOPEN means SQLite could not create the -wal or
        // -shm file next to the database: its directory is read-only.
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => StoreError::ReadOnly { path },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: err.to_string(),
        },
        _ => StoreError::Sql {
            context,
            source: err,
        },
    }
}
