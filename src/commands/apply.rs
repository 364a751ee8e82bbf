//! `exe apply`: load, validate, select, then run the pipeline and say how it went.

use crate::attempt;
use crate::cli::{ApplyArgs, split_ids};
use crate::diagnostic::{Diagnostic, render_human};
use crate::error::{EXIT_FAILED, Error};
use crate::model::{Pipeline, Resources};
use crate::progress::{Progress, Style};
use crate::render;
use crate::resources;
use crate::runner::{self, Options};
use crate::scheduler::Config;
use crate::selection;
use crate::state::RunState;

/// Exit code of a run stopped by Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: i32 = 130;

pub(super) fn run(args: &ApplyArgs, out: super::Output) -> Result<i32, Error> {
    let super::Loaded {
        pipeline, warnings, ..
    } = super::load_pipeline(&args.run, &std::env::vars().collect::<Vec<_>>())?;
    if !out.quiet && !warnings.is_empty() {
        eprint!("{}", render_human(&warnings, out.color_err));
    }
    let dispositions = selection::select(
        &pipeline,
        &split_ids(&args.run.skip),
        &split_ids(&args.run.only),
    )
    .map_err(Error::Config)?;
    // Reading the machine costs a few milliseconds: only when a job asks for resources.
    let asks = pipeline
        .jobs
        .iter()
        .any(|j| j.resources != Resources::default());
    let capacity = if asks {
        resources::capacity()
    } else {
        Resources::default()
    };
    check_fits(&pipeline, capacity)?;
    let config = Config {
        max_parallel: args
            .max_parallel
            .map_or(pipeline.max_parallel, |n| n as usize),
        continue_on_error: args.continue_on_error || pipeline.continue_on_error,
        capacity,
    };
    // Orphaned grandchildren of jobs come back to exe, so their group can be reaped at once.
    let _ = crate::process::become_subreaper();
    let run_id = new_run_id();
    let ids = pipeline.jobs.iter().map(|j| j.id.0.clone()).collect();
    let progress = Progress::start(
        ids,
        Style {
            output: args.output,
            quiet: out.quiet,
            color: out.color_err,
        },
    );
    let report = runner::run(
        &pipeline,
        &dispositions,
        &Options { run_id, config },
        &progress,
        attempt::run,
    );
    progress.finish();
    let report = report?;
    if !out.quiet || report.run_state != RunState::Success {
        eprint!("\n{}", render::summary(&pipeline, &report, run_id));
    }
    Ok(match report.run_state {
        RunState::Success => 0,
        RunState::Cancelled => EXIT_INTERRUPTED,
        RunState::Failed | RunState::Running => EXIT_FAILED,
    })
}

/// A job that asks for more than the machine has would wait forever: refuse to start.
fn check_fits(pipeline: &Pipeline, capacity: Resources) -> Result<(), Error> {
    let mut problems = Vec::new();
    for job in &pipeline.jobs {
        if job.resources.cpu > capacity.cpu {
            problems.push(Diagnostic::error(
                "exe::run::too_big",
                format!(
                    "job `{}` needs {} CPUs; this machine has {}",
                    job.id, job.resources.cpu, capacity.cpu
                ),
            ));
        }
        if job.resources.memory > capacity.memory {
            problems.push(Diagnostic::error(
                "exe::run::too_big",
                format!(
                    "job `{}` needs {} MiB of memory; {} MiB are available",
                    job.id,
                    job.resources.memory >> 20,
                    capacity.memory >> 20
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(problems))
    }
}

/// A run's id until the history numbers runs: its start time in milliseconds.
fn new_run_id() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}
