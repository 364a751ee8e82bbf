//! One attempt of a job with checks, as a worker thread runs it: pre-checks, the command,
//! post-checks. (The coordinator starts the command of a job without checks itself.)
//!
//! Every process it starts (the command and `command` checks) gets its own process group,
//! which it reports through `on_start` before waiting, so the coordinator can kill it on a
//! timeout or a cancel. It decides nothing about retries or states: it says how it ended.

use std::path::Path;

use crate::checks;
use crate::model::{Check, Job};
use crate::process::{self, AttemptSpec, Exit, Finished, Usage};

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A pre-check failed; the command did not run.
    PreCheckFailed(String),
    /// The command ended (and, if it exited 0, every post-check passed).
    Exited(Finished),
    /// The command exited 0 but a post-check failed.
    PostCheckFailed {
        /// Which check failed, and how.
        reason: String,
        /// What the command used.
        usage: Usage,
    },
    /// exe could not run it (working directory, log file, spawn).
    Error(String),
}

/// Everything one attempt needs, resolved by the coordinator.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The job.
    pub job: &'a Job,
    /// The command with `run.id` and `attempt` filled in.
    pub command: String,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Where it runs.
    pub working_dir: &'a Path,
    /// Where its output goes.
    pub log_path: std::path::PathBuf,
}

/// Runs the attempt; calls `on_start(pgid)` for every process group it starts.
pub fn run(attempt: &Attempt<'_>, on_start: &dyn Fn(i32)) -> Ended {
    if let Err(reason) = run_checks(attempt, &attempt.job.pre_checks, on_start) {
        return match reason {
            CheckError::Failed(r) => Ended::PreCheckFailed(r),
            CheckError::Exe(r) => Ended::Error(r),
        };
    }
    let finished = match run_process(attempt, &attempt.command, on_start) {
        Ok(finished) => finished,
        Err(e) => return Ended::Error(e),
    };
    if finished.exit != Exit::Code(0) {
        return Ended::Exited(finished);
    }
    match run_checks(attempt, &attempt.job.post_checks, on_start) {
        Ok(()) => Ended::Exited(finished),
        Err(CheckError::Failed(reason)) => Ended::PostCheckFailed {
            reason,
            usage: finished.usage,
        },
        Err(CheckError::Exe(r)) => Ended::Error(r),
    }
}

impl Ended {
    /// What the command used, when it ran to its end.
    #[must_use]
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Ended::Exited(finished) => Some(finished.usage),
            Ended::PostCheckFailed { usage, .. } => Some(*usage),
            Ended::PreCheckFailed(_) | Ended::Error(_) => None,
        }
    }
}

enum CheckError {
    /// The check ran and failed.
    Failed(String),
    /// The check could not be run.
    Exe(String),
}

fn run_checks(
    attempt: &Attempt<'_>,
    checks: &[Check],
    on_start: &dyn Fn(i32),
) -> Result<(), CheckError> {
    for check in checks {
        match check {
            Check::FileExists(path) => checks::file_exists(path).map_err(CheckError::Failed)?,
            Check::FileNotEmpty(path) => {
                checks::file_not_empty(path).map_err(CheckError::Failed)?;
            }
            Check::LogClean { path, patterns } => {
                checks::log_clean(path, patterns).map_err(CheckError::Failed)?;
            }
            Check::Command(run) => {
                match run_process(attempt, run, on_start)
                    .map_err(CheckError::Exe)?
                    .exit
                {
                    Exit::Code(0) => {}
                    Exit::Code(code) => {
                        return Err(CheckError::Failed(format!(
                            "check `{run}` exited with {code}"
                        )));
                    }
                    Exit::Signal(signal) => {
                        return Err(CheckError::Failed(format!(
                            "check `{run}` was killed by signal {signal}"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn run_process(
    attempt: &Attempt<'_>,
    command: &str,
    on_start: &dyn Fn(i32),
) -> Result<Finished, String> {
    let spec = AttemptSpec {
        command,
        env: &attempt.env,
        working_dir: attempt.working_dir,
        log_path: &attempt.log_path,
    };
    let running = process::spawn(&spec).map_err(|e| with_causes(&e))?;
    on_start(running.pgid());
    running
        .wait(attempt.job.timeout_grace)
        .map_err(|e| with_causes(&e))
}

/// "working directory wd is not usable: No such file or directory (os error 2)".
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
