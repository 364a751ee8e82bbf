//! `exe logs RUN JOB [--attempt N] [--follow]`: an attempt's log, as the history records it.
//!
//! Following a job (no `--attempt`) waits for it to start if it has not yet, prints each
//! attempt's log as it grows, and goes on to the next attempt when a retry starts one. It
//! stops when the job is final, or when the exe running the run is gone. Following one
//! attempt (`--attempt N`) waits for that attempt to start while the job may still start it.

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
        // Not started yet in a run still open: the job may start it. (Only open runs are
        // waited on: their attempts are numbered 1, 2, ... as they start; an imported run's
        // are numbered as they were, and it is finished.)
        (Some(n), _) if args.follow && history.open()? => match history.started(job.index, n)? {
            Next::Attempt(n) => n,
            Next::None => {
                let recorded = store.job_attempts(args.run, job.index)?;
                let recorded: Vec<u32> = recorded.iter().map(|a| a.number).collect();
                let now = store.job(args.run, job.index)?;
                return Err(no_attempt(
                    job,
                    args.run,
                    n,
                    &recorded,
                    Some(format!(
                        "the job is {} and starts no more attempts in this run",
                        now.state
                    )),
                ));
            }
            Next::Gone => return Ok(EXIT_FAILED),
        },
        (Some(n), _) => {
            let help = history.still_going()?.then(|| {
                format!(
                    "run {} is still going: `exe logs {} {} --attempt {n} --follow` waits for \
                     that attempt to start",
                    args.run, args.run, job.id
                )
            });
            return Err(no_attempt(job, args.run, n, &recorded, help));
        }
        (None, Some(&last)) => last,
        (None, None) if follow_job => match history.started(job.index, 1)? {
            Next::Attempt(n) => n,
            Next::None => return Err(did_not_run(&job.id, args.run)),
            Next::Gone => return Ok(EXIT_FAILED),
        },
        (None, None) if history.still_going()? && !job_is_final(job) => {
            return Err(Error::Usage {
                message: format!(
                    "job `{}` has not started yet in run {}, which is still going",
                    job.id, args.run
                ),
                help: Some(format!(
                    "`exe logs {} {} --follow` waits for it to start and prints its log",
                    args.run, job.id
                )),
            });
        }
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
        match history.started(job.index, number + 1)? {
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

    /// Waits until the job at `index` has started attempt `number`, or will start no more:
    /// it is final (a retry is queued in the same commit that ends the attempt before it, so
    /// a job that is not final will run again), or its run has ended.
    fn started(&self, index: usize, number: u32) -> Result<Next, Error> {
        loop {
            // The run first: once it has ended, the job read after it is as it stays.
            let ended = self.store.run(self.run)?.ended_at_ms.is_some();
            let now = self.store.job(self.run, index)?;
            if now.attempts >= number {
                return Ok(Next::Attempt(number));
            }
            if ended || job_is_final(&now) {
                return Ok(Next::None);
            }
            if self.gone()? {
                return Ok(Next::Gone);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the run has not ended (its exe may be gone).
    fn open(&self) -> Result<bool, Error> {
        Ok(self.store.run(self.run)?.ended_at_ms.is_none())
    }

    /// Whether the run has not ended and its exe is alive: its jobs may still start.
    fn still_going(&self) -> Result<bool, Error> {
        let run = self.store.run(self.run)?;
        Ok(run.ended_at_ms.is_none() && !crate::recovery::orphaned(&run, &self.host, now_ms()))
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

/// Whether the job's current state is final: it starts no more attempts.
fn job_is_final(job: &JobRow) -> bool {
    JobState::from_name(&job.state).is_some_and(JobState::is_final)
}

/// The error for an attempt `number` of `job` that `run` does not record, listing those it
/// does.
fn no_attempt(
    job: &JobRow,
    run: i64,
    number: u32,
    recorded: &[u32],
    help: Option<String>,
) -> Error {
    let numbers: Vec<String> = recorded.iter().map(u32::to_string).collect();
    let numbers = if numbers.is_empty() {
        "none".to_owned()
    } else {
        numbers.join(", ")
    };
    Error::Usage {
        message: format!(
            "job `{}` has no attempt {number} in run {run} (recorded: {numbers})",
            job.id
        ),
        help,
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
