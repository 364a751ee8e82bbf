//! `exe apply`: load, validate, select (or resume), record, run, and say how it went.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::cli::{ApplyArgs, DurabilityArg, split_ids};
use crate::clock::now_ms;
use crate::diagnostic::{Diagnostic, render_human};
use crate::error::{EXIT_FAILED, EXIT_INTERRUPTED, Error};
use crate::fingerprint::Fingerprinter;
use crate::model::Pipeline;
use crate::plan::{Plan, View, json};
use crate::progress::{Progress, Style};
use crate::recovery;
use crate::render;
use crate::resources;
use crate::resume;
use crate::runner::{self, Cancel, Options};
use crate::scheduler::Config;
use crate::selection::{self, Disposition};
use crate::state::RunState;
use crate::store::{Access, Durability, NewRun, RunRow, Store};

pub(super) fn run(args: &ApplyArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let process_env: Vec<(String, String)> = std::env::vars().collect();
    let super::Loaded {
        pipeline, warnings, ..
    } = super::load_pipeline(&args.run, &process_env)?;
    show_warnings(&warnings, out);
    let dispositions = select(&pipeline, args)?;
    if let Some(id) = args.resume
        && super::history::missing(db)
    {
        // No history, so no such run: say so without creating one.
        return Err(crate::store::StoreError::UnknownRun { id }.into());
    }
    let mut store = open_store(db, args)?;
    close_orphans(&mut store, out.quiet)?;
    execute(
        args,
        out,
        &pipeline,
        dispositions,
        &process_env,
        &mut store,
        None,
    )
}

/// Shows a loaded pipeline's warnings (unless `-q`).
pub(super) fn show_warnings(warnings: &[Diagnostic], out: super::Output) {
    if !out.quiet && !warnings.is_empty() {
        stderr!("{}", render_human(warnings, out.color_err));
    }
}

/// What each job would do by `--skip`, `--only` and `when`.
pub(super) fn select(pipeline: &Pipeline, args: &ApplyArgs) -> Result<Vec<Disposition>, Error> {
    selection::select(
        pipeline,
        &split_ids(&args.run.skip),
        &split_ids(&args.run.only),
    )
    .map_err(Error::Config)
}

/// The history, opened for writing with `--durability`.
pub(super) fn open_store(db: &Path, args: &ApplyArgs) -> Result<Store, Error> {
    let durability = match args.durability {
        DurabilityArg::Normal => Durability::Normal,
        DurabilityArg::Full => Durability::Full,
    };
    Ok(Store::open(db, Access::ReadWrite, durability)?)
}

/// One run of a loaded pipeline, recorded in `store`, with its summary: the part of `apply`
/// that `watch` repeats. `cancel` is `watch`'s: it owns the signals and stops the run
/// through it, and reruns rather than resumes, so no resume hint is shown then.
pub(super) fn execute(
    args: &ApplyArgs,
    out: super::Output,
    pipeline: &Pipeline,
    mut dispositions: Vec<Disposition>,
    process_env: &[(String, String)],
    store: &mut Store,
    cancel: Option<Cancel>,
) -> Result<i32, Error> {
    let masker = super::masker(pipeline, process_env);
    // The run records the pipeline's plan with every job as "run" (what it would do): its
    // digest does not change when a resume skips finished jobs, and each job's actual
    // decision is in its transitions.
    let all_run = vec![Disposition::Run; pipeline.jobs.len()];
    let view = View {
        masker: &masker,
        show_env: false,
        explanations: &[],
        color: false,
    };
    let definition = json::definition(&Plan::new(pipeline, &all_run, pipeline.max_parallel), &view);
    let digest = resume::digest(&definition);
    if let Some(previous) = args.resume {
        let before = store.run(previous)?;
        refuse_running(&before, "resume it")?;
        let before_jobs = store.jobs(previous)?;
        let changes = if before.digest == digest {
            Vec::new()
        } else {
            changes_since(store, &before, pipeline, &definition, out.quiet)?
        };
        // Only the same pipeline is done when that run is: another, or this one changed,
        // is told so first, and with --allow-changes runs what that run did not.
        if changes.is_empty() && resume::nothing_to_do(&before.state, &before_jobs, previous) {
            if before.state == RunState::Success.as_str() {
                stderrln!("run {previous} succeeded: nothing to do");
            } else {
                // Marked successful since, or exe was killed between the last job's end and
                // the run's.
                let state = &before.state;
                stderrln!("every job of run {previous} ({state}) has succeeded: nothing to do");
            }
            return Ok(0);
        }
        if !changes.is_empty() {
            let listed = resume::listing(&changes);
            if !args.allow_changes {
                let help = if before.name == pipeline.name {
                    "pass --allow-changes to resume it anyway".to_owned()
                } else {
                    // Most likely the wrong file or run id, rather than an edit.
                    "check the file and the run id (`exe runs` lists runs with their \
                     pipelines); pass --allow-changes to resume it anyway"
                        .to_owned()
                };
                return Err(Error::Usage {
                    message: format!("the pipeline changed since run {previous}:\n{listed}"),
                    help: Some(help),
                });
            }
            if !out.quiet {
                stderrln!(
                    "note: the pipeline changed since run {previous} (resumed anyway, --allow-changes):\n{listed}"
                );
            }
        }
        let ids: Vec<&str> = pipeline.jobs.iter().map(|j| j.id.0.as_str()).collect();
        dispositions =
            resume::dispositions(&ids, dispositions, &before_jobs, previous, args.failed_only);
        if !dispositions.iter().any(|d| matches!(d, Disposition::Run)) {
            // Nothing is recorded: a run of only skipped jobs would read as a success.
            if args.failed_only {
                stderrln!(
                    "no job of run {previous} failed or timed out: nothing to do \
                     (a plain --resume {previous} runs the jobs that did not run)"
                );
            } else {
                stderrln!("no job is left to run from run {previous}: nothing to do");
            }
            return Ok(0);
        }
    }
    // Up to date is decided after resume: the jobs a resume runs again are checked like
    // any others, and the jobs it carries over as done stay done.
    let fingerprinter = Fingerprinter::new(pipeline, store.path());
    let (dispositions, _) = super::up_to_date(
        pipeline,
        dispositions,
        args.run.force,
        Some(store),
        &fingerprinter,
    )?;
    if let Some(previous) = args.resume
        && !dispositions.iter().any(|d| matches!(d, Disposition::Run))
    {
        // The jobs left to run are up to date: as above, a run of only skipped jobs would
        // read as a success.
        stderrln!("the jobs left to run from run {previous} are up to date: nothing to do");
        return Ok(0);
    }
    let capacity = resources::for_pipeline(pipeline);
    // A job that asks for more than the machine has would wait for ever: refuse to start.
    let too_big = resources::too_big(pipeline, &dispositions, capacity);
    if !too_big.is_empty() {
        let problems = too_big.into_iter();
        return Err(Error::Config(
            problems
                .map(|m| Diagnostic::error("exe::run::too_big", m))
                .collect(),
        ));
    }
    let config = Config {
        max_parallel: args
            .max_parallel
            .map_or(pipeline.max_parallel, |n| n as usize),
        continue_on_error: args.continue_on_error || pipeline.continue_on_error,
        capacity,
    };
    let ids: Vec<String> = pipeline.jobs.iter().map(|j| j.id.0.clone()).collect();
    let started_at_ms = now_ms();
    let file = pipeline.file.display().to_string();
    let (run_id, mut journal) = store.start_run(&NewRun {
        name: &pipeline.name,
        file: &file,
        digest: &digest,
        plan_json: &definition,
        host: &hostname(),
        user: &user(),
        pid: std::process::id(),
        exe_version: env!("CARGO_PKG_VERSION"),
        resumed_from: args.resume,
        started_at_ms,
        jobs: &ids,
    })?;
    tracing::info!(
        run = run_id,
        pipeline = %pipeline.name,
        to_run = dispositions.iter().filter(|d| matches!(d, Disposition::Run)).count(),
        resumes = ?args.resume,
        "run recorded"
    );
    // The plan is recorded; a 2,000-job plan's text need not stay in memory for the run.
    drop(definition);
    let log_dirs = pipeline.jobs.iter().map(|j| j.log_dir.as_path());
    let log_folder = crate::logs::run_folder(run_id, log_dirs);
    if log_folder != run_id.to_string() && !out.quiet {
        stderrln!(
            "a log folder named {run_id} is there already (a run of another history); this run's logs go to folders named {log_folder}"
        );
    }
    // Orphaned grandchildren of jobs come back to exe, so their group can be reaped at once.
    let _ = crate::process::become_subreaper();
    crate::process::raise_open_files_limit();
    let progress = Progress::start(
        ids,
        Style {
            output: args.output,
            quiet: out.quiet,
            color: out.color_err,
        },
    );
    let resume_hint = cancel.is_none();
    let options = Options {
        run_id,
        log_folder,
        started_at_ms,
        config,
        cancel,
        fingerprints: &fingerprinter,
        masker: &masker,
    };
    // Without the thread, SQLite checkpoints inside the commit that crosses the threshold,
    // while the next job waits. Started after `start_run` on purpose: a WAL left over the
    // threshold is then checkpointed in that commit, which measured faster than moving it
    // while the first jobs run (docs/performance.md, "tried and not kept").
    let checkpointer = store.checkpoint_in_background().ok();
    let report = runner::run(
        pipeline,
        &dispositions,
        &options,
        &progress,
        store,
        &mut journal,
    );
    progress.finish();
    fingerprinter.save_cache();
    // A history that could not be written keeps its own message and help (a full disk: free
    // space); the display has already said that the run was stopped.
    let ended = report
        .map_err(|e| match e {
            runner::RunError::History(e) => Error::History(e),
            e => Error::Run(e.to_string()),
        })
        .and_then(|report| {
            let code = match report.run_state {
                RunState::Success => 0,
                RunState::Cancelled => EXIT_INTERRUPTED,
                RunState::Failed | RunState::Running => EXIT_FAILED,
            };
            store.finish_run(run_id, report.run_state.as_str(), code, now_ms())?;
            tracing::info!(
                run = run_id,
                state = report.run_state.as_str(),
                exit = code,
                ms = report.elapsed.as_secs_f64() * 1000.0,
                "run finished"
            );
            Ok((report, code))
        });
    let stopped = checkpointer.map_or(Ok(()), |c| store.stop_background_checkpoints(c));
    if ended.is_ok() && journal.is_folded() {
        journal.remove();
    }
    let (report, code) = ended?;
    stopped?;
    if !out.quiet || report.run_state != RunState::Success {
        stderr!("\n{}", render::summary(pipeline, &report, run_id));
        let left: Vec<&str> = (pipeline.jobs.iter().zip(&dispositions))
            .filter(
                |(_, d)| matches!(d, Disposition::Skip(reason) if reason.left_for_a_plain_resume()),
            )
            .map(|(job, _)| job.id.0.as_str())
            .collect();
        if report.run_state != RunState::Success && resume_hint {
            stderrln!(
                "Resume with: {}",
                resume_command(args, store.path(), &file, run_id)
            );
        } else if !left.is_empty() && resume_hint {
            stderrln!(
                "Not run, left for a plain resume: {}. Run {} with: {}",
                left.join(", "),
                if left.len() == 1 { "it" } else { "them" },
                resume_command(args, store.path(), &file, run_id)
            );
        }
    }
    Ok(code)
}

/// What changed in the pipeline since the run `before` (whose digest differs), for people.
/// A run imported from the older executioner recorded no plan, and a run recorded by an
/// older exe recorded fewer settings: said once (unless `quiet`), and not counted as
/// changes.
fn changes_since(
    store: &Store,
    before: &RunRow,
    pipeline: &Pipeline,
    definition: &str,
    quiet: bool,
) -> Result<Vec<String>, Error> {
    let previous = before.id;
    let mut changes = if before.imported() {
        if !quiet {
            stderrln!(
                "note: run {previous} was imported from the older executioner, which recorded no plan: changes to the pipeline since cannot be checked"
            );
        }
        Vec::new()
    } else {
        let compared = resume::changes(&store.plan_json(previous)?, definition);
        if !compared.unrecorded.is_empty() && !quiet {
            stderrln!(
                "note: run {previous} was recorded by exe {}, which did not record {} as this one compares them: changes to those cannot be checked",
                before.exe_version,
                compared.unrecorded.join(", ")
            );
        }
        compared.listed
    };
    if before.name != pipeline.name {
        // Most likely the wrong file or run id, rather than an edit.
        changes.insert(
            0,
            format!(
                "run {previous} was of the pipeline `{}` ({}), not `{}`",
                before.name, before.file, pipeline.name
            ),
        );
    }
    Ok(changes)
}

/// The command that resumes `run_id`, and on a second line the layers it must be given
/// again: `--set`, `--env` and `EXE_*` values are not repeated (a value may be a secret),
/// but are part of the pipeline a resume compares with this run's: without them it reads as
/// changed.
fn resume_command(args: &ApplyArgs, db: &Path, file: &str, run_id: i64) -> String {
    let profile = (args.run.profile.as_deref())
        .map(|p| format!(" --profile {}", shell_word(p)))
        .unwrap_or_default();
    let mut command = format!(
        "exe{} apply {}{profile} --resume {run_id}",
        db_flag(db),
        shell_word(file)
    );
    let mut layers = Vec::new();
    if !args.run.sets.is_empty() {
        layers.push("--set");
    }
    if !args.run.env.is_empty() {
        layers.push("--env");
    }
    if std::env::vars_os().any(|(k, _)| k.to_str().is_some_and(crate::load::is_layer_variable)) {
        layers.push("EXE_* variables");
    }
    if let Some((last, first)) = layers.split_last() {
        let listed = if first.is_empty() {
            (*last).to_owned()
        } else {
            format!("{} and {last}", first.join(", "))
        };
        command.push_str(&format!("\n  with the same {listed} as this run"));
    }
    command
}

/// Closes runs left RUNNING by an exe that died, and says so (with any process group of
/// theirs still alive, and how to end it).
pub(super) fn close_orphans(store: &mut Store, quiet: bool) -> Result<(), Error> {
    let recovery::Recovered {
        closed,
        leftovers,
        damaged,
    } = recovery::close_orphans(store, &hostname(), now_ms())?;
    if !quiet {
        for run in closed {
            stderrln!(
                "run {run} was left RUNNING by an exe that died; it is now CANCELLED (resume it with --resume {run})"
            );
        }
    }
    for (run, why) in damaged {
        stderrln!(
            "warning: run {run}: {why}; what came before is recorded, the file is kept as it was"
        );
    }
    let interactive = !quiet && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    for l in leftovers {
        let what = format!(
            "process group {} of job `{}` (run {}) is still running",
            l.pgid, l.job, l.run
        );
        if interactive && l.provably_ours() {
            offer_to_end(&what, l.pgid)?;
        } else {
            stderrln!("{what}; end it with: kill -- -{}", l.pgid);
        }
    }
    Ok(())
}

/// Refuses to act on a run that is still RUNNING once [`close_orphans`] has run: its exe is
/// alive, and resuming the run or marking its jobs would race it (the same jobs run twice,
/// or a trail that contradicts what that exe records next).
pub(super) fn refuse_running(run: &RunRow, to: &str) -> Result<(), Error> {
    if run.state != RunState::Running.as_str() {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "run {} is still running (exe pid {} on {})",
            run.id, run.pid, run.host
        ),
        help: Some(format!(
            "{to} once it has ended; `exe show {}` shows where it is",
            run.id
        )),
    })
}

/// Asks whether to end an orphaned group that is provably the dead run's, and does.
fn offer_to_end(what: &str, pgid: i32) -> Result<(), Error> {
    let grace = crate::validate::DEFAULT_GRACE;
    let question = format!(
        "{what}. End it (SIGTERM, then SIGKILL after {})?",
        render::duration(grace)
    );
    if !super::confirm(&question)? {
        stderrln!("Left running; end it later with: kill -- -{pgid}");
        return Ok(());
    }
    if crate::process::end_orphaned_group(pgid, grace).unwrap_or(false) {
        stderrln!("Ended process group {pgid}.");
    } else {
        stderrln!("Process group {pgid} is still there after SIGKILL; see `ps -g {pgid}`.");
    }
    Ok(())
}

/// Who runs exe, for the history and the audit trail: the name of the real user id in
/// `/etc/passwd`, else `USER` or `LOGNAME` (users known only to a directory service), else
/// `uid N`. Not `USER` first: cron, containers and CI often leave it unset, and after `su`
/// it can name someone else.
pub(super) fn user() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_named(&passwd, uid))
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of `uid` in the text of a passwd file (`name:password:uid:...` lines).
fn user_named(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_owned())
    })
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The path as one shell word, quoted only when it needs to be.
/// ` --db PATH` when the history is not the one a command run without it would find (the
/// default, or `EXE_DB` as it is set now): the resume hint must name the same history.
fn db_flag(db: &Path) -> String {
    let found = std::env::var_os("EXE_DB")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(super::DEFAULT_DB), PathBuf::from);
    if db == found {
        String::new()
    } else {
        format!(" --db {}", shell_word(&db.display().to_string()))
    }
}

fn shell_word(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_named_by_the_passwd_line_of_its_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      ana:x:1000:1000:Ana,,,:/home/ana:/bin/sh\n\
                      broken\n";
        assert_eq!(user_named(passwd, 1000).as_deref(), Some("ana"));
        assert_eq!(user_named(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_named(passwd, 5), None);
    }

    #[test]
    fn exe_always_knows_who_runs_it() {
        // Whatever the environment says (CI may leave USER unset), the uid names someone.
        assert!(!user().is_empty());
    }
}
