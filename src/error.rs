//! The errors a command can end with, and the exit code each one means.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// Exit code: a job failed or timed out (and `lint` found errors).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the pipeline or the command line is invalid.
pub const EXIT_INVALID: i32 = 2;
/// Exit code: stopped by Ctrl-C, SIGTERM or SIGHUP.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline is invalid; the diagnostics say why.
    #[error("the pipeline is invalid")]
    Config(Vec<Diagnostic>),
    /// The command line asked for something impossible.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        help: Option<String>,
    },
    /// A file exe had to write could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Standard input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The run history could not be read or written.
    #[error("{0}")]
    History(#[from] crate::store::StoreError),
    /// A run could not go on (signal handling, history written mid-run).
    #[error("{0}")]
    Run(String),
    /// `exe watch` could not watch the files.
    #[error("{0}")]
    Watch(#[from] crate::watch::WatchError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage { .. } => EXIT_INVALID,
            // Naming a run or job that is not in the history is a command-line mistake.
            // So is a `--db` that names a folder, a device, a path through a file or another
            // program's database, or a `--history` that is not one.
            Error::History(
                crate::store::StoreError::UnknownRun { .. }
                | crate::store::StoreError::UnknownJob { .. }
                | crate::store::StoreError::NotAFile { .. }
                | crate::store::StoreError::FileOnPath { .. }
                | crate::store::StoreError::NotAHistory { .. }
                | crate::store::StoreError::BeingResumed { .. }
                | crate::store::StoreError::NotAnOldHistory { .. },
            ) => EXIT_INVALID,
            Error::History(crate::store::StoreError::Interrupted { .. }) => EXIT_INTERRUPTED,
            Error::Write { .. }
            | Error::Io(_)
            | Error::History(_)
            | Error::Run(_)
            | Error::Watch(_) => EXIT_FAILED,
        }
    }
}
