//! `exe logs RUN JOB [--attempt N] [--follow]`: an attempt's log, as the history records it.
//!
//! Following a job (no `--attempt`) waits for it to start if it has not yet, prints each
//! attempt's log as it grows, and goes on to the next attempt when a retry starts one. It
//! stops when the job is final, or when the exe running the run is gone.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::Duration;

use super::history::{no_history, open_read};
use crate::cli::LogsArgs;
use crate::clock::now_ms;
use crate::error::{EXIT_FAILED, Error};
use crate::job_ref::JobRef;
use crate::state::JobState;
use crate::store::{AttemptRow, JobRow, Store};

/// How often a follower asks the history and the log again.
const POLL: Duration = Duration::from_millis(200);

pub(super) fn logs(args: &LogsArgs, db: &Path) -> Result<i32, Error> {
    let store = open_read(db)?.ok_or_else(|| no_history(db))?;
    let jobs = store.jobs(args.run)?;
    let reference = JobRef::parse(&args.job);
    let named: Vec<&JobRow> = jobs.iter().filter(|j| reference.names(&j.id)).collect();
    let job = match named[..] {
        [job] => job,
        [] => {
            return Err(Error::Usage {
                message: format!("run {} has no job `{}`", args.run, args.job),
                help: Some(
                    (reference.hint(jobs.iter().map(|j| j.id.as_str())))
                        .unwrap_or_else(|| show_help(args.run)),
                ),
            });
        }
        _ => {
            const LISTED: usize = 5;
            let mut ids: Vec<&str> = named.iter().take(LISTED).map(|j| j.id.as_str()).collect();
            let more = named.len().saturating_sub(LISTED);
            let more = format!("and {more} more");
            if named.len() > LISTED {
                ids.push(&more);
            }
            return Err(Error::Usage {
                message: format!(
                    "`{}` names {} jobs of run {}: {}",
                    args.job,
                    named.len(),
                    args.run,
                    ids.join(", ")
                ),
                help: Some("name one of them".to_owned()),
            });
        }
    };
    let follow_job = args.follow && args.attempt.is_none();
    let history = History {
        store: &store,
        run: args.run,
        host: super::apply::hostname(),
    };
    // By number, not count: an imported job has only its last attempt, numbered as it was.
    let mut attempts = store.job_attempts(args.run, job.index)?;
    let recorded: Vec<u32> = attempts.iter().map(|a| a.number).collect();
    let mut number = match (args.attempt, recorded.iter().max()) {
        (Some(n), _) if recorded.contains(&n) => n,
        (Some(n), _) => {
            let numbers: Vec<String> = recorded.iter().map(u32::to_string).collect();
            let numbers = if numbers.is_empty() {
                vec!["none".to_owned()]
            } else {
                numbers
            };
            return Err(Error::Usage {
                message: format!(
                    "job `{}` has no attempt {n} in run {} (recorded: {})",
                    job.id,
                    args.run,
                    numbers.join(", ")
                ),
                help: None,
            });
        }
        (None, Some(&last)) => last,
        (None, None) if follow_job => match history.next_attempt(job.index, 0)? {
            Next::Attempt(n) => n,
            Next::None => return Err(did_not_run(&job.id, args.run)),
            Next::Gone => return Ok(EXIT_FAILED),
        },
        (None, None) => return Err(did_not_run(&job.id, args.run)),
    };
    let mut stdout = std::io::stdout().lock();
    loop {
        let attempt = match attempts.iter().position(|a| a.number == number) {
            Some(at) => attempts.swap_remove(at),
            // Started since the attempts were read: a followed job's retry.
            None => history.attempt(job, number)?,
        };
        if !history.print(&attempt, args.follow, &mut stdout)? {
            return Ok(EXIT_FAILED);
        }
        if !follow_job {
            return Ok(0);
        }
        match history.next_attempt(job.index, number)? {
            Next::Attempt(n) => {
                stderrln!("--- attempt {n} of `{}` ---", job.id);
                number = n;
            }
            Next::None => return Ok(0),
            Next::Gone => return Ok(EXIT_FAILED),
        }
    }
}

/// The run a follower reads, and this host (to tell whether the run's exe is gone).
struct History<'s> {
    store: &'s Store,
    run: i64,
    host: String,
}

/// What comes after an attempt of a followed job.
enum Next {
    /// This attempt has started.
    Attempt(u32),
    /// Nothing: the job is final.
    None,
    /// The exe running the run is gone (and said so).
    Gone,
}

impl History<'_> {
    /// Attempt `number` of `job` (it is recorded: the job counted it, or it was listed).
    fn attempt(&self, job: &JobRow, number: u32) -> Result<AttemptRow, Error> {
        let attempts = self.store.job_attempts(self.run, job.index)?;
        attempts
            .into_iter()
            .find(|a| a.number == number)
            .ok_or_else(|| Error::Usage {
                message: format!(
                    "attempt {number} of job `{}` in run {} is not recorded",
                    job.id, self.run
                ),
                help: Some(show_help(self.run)),
            })
    }

    /// The error for an attempt with no log: the older tool's runs, imported, have none.
    fn no_log(&self, attempt: &AttemptRow) -> Error {
        let imported = (self.store.run(self.run)).is_ok_and(|r| r.imported());
        Error::Usage {
            message: format!(
                "no log was recorded for attempt {} of job `{}` in run {}{}",
                attempt.number,
                attempt.job_id,
                self.run,
                if imported {
                    ": the run was imported from the older executioner, which kept no logs"
                } else {
                    ""
                }
            ),
            help: None,
        }
    }

    /// Prints the attempt's log; following, until the history says it ended and the log
    /// has nothing more. False when the exe running it is gone, so it will never end.
    fn print(
        &self,
        attempt: &AttemptRow,
        follow: bool,
        out: &mut impl std::io::Write,
    ) -> Result<bool, Error> {
        if attempt.log_path.is_empty() {
            return Err(self.no_log(attempt));
        }
        let path = Path::new(&attempt.log_path);
        let mut offset = 0u64;
        loop {
            let mut chunk = Vec::new();
            match std::fs::File::open(path) {
                Ok(mut file) => {
                    file.seek(SeekFrom::Start(offset))?;
                    file.read_to_end(&mut chunk)?;
                }
                // Following a running attempt, its log may not be made yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let ended = || {
                        self.store
                            .attempt_ended(self.run, attempt.job, attempt.number)
                    };
                    if offset == 0 && (!follow || ended()?) {
                        return Err(gone(path));
                    }
                }
                Err(e) => {
                    return Err(Error::Run(format!(
                        "cannot read the log {}: {e}",
                        path.display()
                    )));
                }
            }
            offset += chunk.len() as u64;
            out.write_all(&chunk)?;
            out.flush()?;
            if !follow {
                return Ok(true);
            }
            // Read again until the history says the attempt ended, then once more.
            let ended = (self.store).attempt_ended(self.run, attempt.job, attempt.number)?;
            if ended && chunk.is_empty() {
                return Ok(true);
            }
            if !ended && chunk.is_empty() && self.gone()? {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the job at `index` starts an attempt after `after`, or is final: a retry
    /// is queued in the same commit that ends the attempt before it, so a job that is not
    /// final will run again.
    fn next_attempt(&self, index: usize, after: u32) -> Result<Next, Error> {
        loop {
            let now = self.store.job(self.run, index)?;
            if now.attempts > after {
                return Ok(Next::Attempt(after + 1));
            }
            let fin = JobState::ALL
                .iter()
                .any(|s| s.as_str() == now.state && s.is_final());
            if fin {
                return Ok(Next::None);
            }
            if self.gone()? {
                return Ok(Next::Gone);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the exe running the run is gone (it then never records what a follower waits
    /// for); says so when it is.
    fn gone(&self) -> Result<bool, Error> {
        let run = self.run;
        if !crate::recovery::orphaned(&self.store.run(run)?, &self.host, now_ms()) {
            return Ok(false);
        }
        stderrln!(
            "the exe running run {run} is gone, so the history will record nothing more of \
             this job (a process of it may still run: the next `exe apply` says so); that \
             apply records the job as CANCELLED, and `--resume {run}` runs it again"
        );
        Ok(true)
    }
}

fn gone(path: &Path) -> Error {
    Error::Usage {
        message: format!("the log {} is gone", path.display()),
        // Runs recorded before exe kept absolute paths.
        help: path.is_relative().then(|| {
            "this path is relative to the folder `exe apply` ran in: run `exe logs` there"
                .to_owned()
        }),
    }
}

fn did_not_run(job: &str, run: i64) -> Error {
    Error::Usage {
        message: format!("job `{job}` did not run in run {run}"),
        help: Some(show_help(run)),
    }
}

fn show_help(run: i64) -> String {
    format!("`exe show {run}` lists its jobs and attempts")
}
