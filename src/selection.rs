//! Which jobs a run starts with as "run" and which as "skipped", before anything runs.
//!
//! `--skip` and `when = false` skip a job; a skipped job counts as done for the jobs that
//! need it (the older tool's meaning). `--only` runs just the named jobs, and every other
//! job counts as done. A matrix job's id names all of its expansions. Later decisions
//! (resumed: `resume.rs`, up to date: `up_to_date.rs`) add to this list; the planner shows
//! it and the scheduler starts from it.

use crate::diagnostic::{At, Diagnostic};
use crate::job_ref::JobRef;
use crate::model::Pipeline;

/// How a job enters a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// It will run when its needs are met.
    Run,
    /// It will not run; it counts as done. The reason is shown to the user.
    Skip(SkipReason),
}

/// Why a job is skipped before the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `--skip ID`.
    Flag,
    /// `when` rendered false.
    When,
    /// `--only` named other jobs.
    NotSelected,
    /// `--resume`: it succeeded (or was marked successful) in that run, or one it resumed.
    Succeeded {
        /// The run it succeeded in.
        run: i64,
    },
    /// `--resume --failed-only`: it did not fail in that run; a plain `--resume` runs it.
    NotFailed {
        /// The resumed run.
        run: i64,
    },
    /// `--resume` with `--only` or `--skip`: the selection left out a job that is not done;
    /// a plain `--resume` of the new run runs it.
    LeftOut {
        /// The flag that left it out: `--only` or `--skip`.
        by: &'static str,
    },
    /// Its fingerprint matches its last success and its outputs exist (see `up_to_date`).
    UpToDate,
}

impl SkipReason {
    /// Whether the job's work is done (it succeeded in the run resumed, or its outputs are
    /// up to date): the jobs that need it go on at once. A job not run for another reason
    /// (`--skip`, `--only`, `when`, left by `--failed-only`) is done only once its own needs
    /// are, so what follows it still waits for what precedes it.
    pub fn work_is_done(&self) -> bool {
        matches!(self, SkipReason::Succeeded { .. } | SkipReason::UpToDate)
    }

    /// Whether the job is left for a plain `--resume` of the run it is skipped in.
    pub fn left_for_a_plain_resume(&self) -> bool {
        matches!(
            self,
            SkipReason::NotFailed { .. } | SkipReason::LeftOut { .. }
        )
    }
}

/// How a job carried over as done is recorded; `resume.rs` reads it back, so a run that
/// resumes a resumed run still knows which jobs are done.
pub const SUCCEEDED_IN: &str = "already succeeded in run ";
/// How the reason of a job left for a plain `--resume` (by `--failed-only`, or by `--only`
/// or `--skip` on a resume) ends; read back likewise, so that a resume of the new run knows
/// it has something left to do.
pub const LEFT_FOR_A_PLAIN_RESUME: &str = "a plain --resume runs it";
/// How a job skipped as up to date is recorded; `resume.rs` reads it back as done.
pub const UP_TO_DATE: &str = "up to date";

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Flag => f.write_str("skipped by --skip"),
            SkipReason::When => f.write_str("`when` is false"),
            SkipReason::NotSelected => f.write_str("not selected by --only"),
            SkipReason::Succeeded { run } => write!(f, "{SUCCEEDED_IN}{run}"),
            SkipReason::NotFailed { run } => write!(
                f,
                "did not fail in run {run} (--failed-only); {LEFT_FOR_A_PLAIN_RESUME}"
            ),
            SkipReason::LeftOut { by: "--only" } => {
                write!(f, "not selected by --only; {LEFT_FOR_A_PLAIN_RESUME}")
            }
            SkipReason::LeftOut { by } => write!(f, "skipped by {by}; {LEFT_FOR_A_PLAIN_RESUME}"),
            SkipReason::UpToDate => f.write_str(UP_TO_DATE),
        }
    }
}

/// Each job's disposition, by index. An id that names no job is an error.
pub fn select(
    pipeline: &Pipeline,
    skip: &[String],
    only: &[String],
) -> Result<Vec<Disposition>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let skipped = resolve(pipeline, skip, "--skip", &mut errors);
    let selected = resolve(pipeline, only, "--only", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(pipeline
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            if !only.is_empty() && !selected[i] {
                Disposition::Skip(SkipReason::NotSelected)
            } else if skipped[i] {
                Disposition::Skip(SkipReason::Flag)
            } else if !job.enabled {
                Disposition::Skip(SkipReason::When)
            } else {
                Disposition::Run
            }
        })
        .collect())
}

/// Marks the jobs `ids` name (see [`JobRef`]): an id, a matrix job's name for all its
/// expansions, or some of its `key=value` pairs.
fn resolve(
    pipeline: &Pipeline,
    ids: &[String],
    flag: &str,
    errors: &mut Vec<Diagnostic>,
) -> Vec<bool> {
    let mut marked = vec![false; pipeline.jobs.len()];
    let all = || pipeline.jobs.iter().map(|j| j.id.0.as_str());
    for id in ids {
        let reference = JobRef::parse(id);
        let mut found = false;
        for (i, job) in pipeline.jobs.iter().enumerate() {
            if reference.names(&job.id.0) {
                marked[i] = true;
                found = true;
            }
        }
        if !found {
            let hint = (reference.hint(all()))
                .unwrap_or_else(|| "`exe plan FILE` lists the job ids".to_owned());
            errors.push(
                Diagnostic::error(
                    "exe::cli::unknown_job",
                    format!("`{flag} {id}`: there is no job `{id}`"),
                )
                .at(Some(At::Flag(format!("{flag} {id}"))))
                .help(hint),
            );
        }
    }
    marked
}
