//! One function per subcommand, wiring the parts together.

mod apply;
mod history;
mod init;
mod lint;
mod logs;
mod migrate;
mod plan;
mod watch;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, PlanArgs, PlanFormat, RunArgs};
use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::fingerprint::Fingerprinter;
use crate::load::{self, Document, LoadOptions};
use crate::model::Pipeline;
use crate::secrets::Masker;
use crate::selection::Disposition;
use crate::source::Format;
use crate::store::Store;
use crate::up_to_date;
use crate::validate::{self, Options};

pub use history::JobStats;

/// How output should look, decided once from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Colour on stdout.
    pub color: bool,
    /// Colour on stderr.
    pub color_err: bool,
    /// Errors only.
    pub quiet: bool,
}

/// The format a file exe writes is in, from its extension (`exe init`, `exe migrate -o`):
/// a file named otherwise would not load.
fn written_format(path: &Path) -> Result<Format, Error> {
    Format::from_path(path).ok_or_else(|| Error::Usage {
        message: format!("{}: exe reads pipelines by their extension", path.display()),
        help: Some("name the file `.toml`, `.yaml`, `.yml` or `.json`".to_owned()),
    })
}

/// The history a command uses without `--db` or `EXE_DB`.
const DEFAULT_DB: &str = ".exe/history.db";

/// Runs a parsed command line; returns the exit code of a command that finished.
pub fn dispatch(cli: Cli, out: Output) -> Result<i32, Error> {
    let db = (cli.global.db.clone())
        .filter(|db| !db.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
    match cli.command {
        Command::Lint(args) => lint::run(&args, out),
        Command::Schema => {
            std::io::stdout().write_all(crate::spec::json_schema().as_bytes())?;
            Ok(0)
        }
        Command::Init(args) => init::run(&args),
        Command::Migrate(args) => migrate::run(&args, out, &db),
        Command::Apply(args) if args.dry_run && args.resume.is_some() => Err(Error::Usage {
            message: "--dry-run does not show a resume".to_owned(),
            help: Some(
                "`exe show RUN` lists what succeeded in that run; without --resume, --dry-run \
                 shows the whole pipeline"
                    .to_owned(),
            ),
        }),
        // `--dry-run` is the plan, with the same selection, layers and failure policy.
        Command::Apply(args) if args.dry_run => plan::run(
            &PlanArgs {
                run: args.run,
                format: PlanFormat::Text,
                show_env: false,
                explain: Vec::new(),
                detailed_exitcode: false,
                max_parallel: args.max_parallel,
                continue_on_error: args.continue_on_error,
            },
            out,
            &db,
        ),
        Command::Apply(args) => apply::run(&args, out, &db),
        Command::Watch(args) => watch::run(&args, out, &db),
        Command::Runs(args) => history::runs(&args, out, &db),
        Command::Show(args) => history::show(&args, &db),
        Command::Logs(args) => logs::logs(&args, &db),
        Command::MarkSuccess(args) => history::mark_success(&args, &db),
        Command::Stats(args) => history::stats(&args, out, &db),
        Command::Plan(args) => plan::run(&args, out, &db),
    }
}

/// A run's pipeline, loaded and validated, with the document it came from.
struct Loaded {
    /// The merged document (for `--explain`).
    doc: Document,
    /// The validated pipeline.
    pipeline: Pipeline,
    /// Warnings to show.
    warnings: Vec<Diagnostic>,
}

/// Asks `question` on the terminal, with ` [y/N] ` after it; true when the answer is yes.
fn confirm(question: &str) -> std::io::Result<bool> {
    stderr!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Loads and validates the pipeline a run names, with every layer the flags add. On
/// failure, every problem is reported, including those behind invalid values.
fn load_pipeline(run: &RunArgs, process_env: &[(String, String)]) -> Result<Loaded, Error> {
    if run.file.as_os_str() == "-" {
        // A run is recorded with its file (resume compares against it) and includes and
        // `working_dir` resolve from its folder: standard input has neither.
        return Err(Error::Usage {
            message: "plan, apply and watch read a pipeline file, not standard input".to_owned(),
            help: Some(
                "save it to a file first; `exe lint -` checks a pipeline from standard input"
                    .to_owned(),
            ),
        });
    }
    let load_options = LoadOptions {
        profile: run.profile.clone(),
        sets: run.sets.clone(),
        use_env: true,
    };
    let options = Options {
        process_env: process_env.to_vec(),
        cli_env: run.env.clone(),
    };
    let started = std::time::Instant::now();
    let (doc, mut warnings) = match load::load(&run.file, &load_options) {
        Ok(loaded) => loaded,
        Err(failure) => {
            let mut diagnostics = failure.diagnostics;
            if let Some(partial) = failure.partial {
                diagnostics.extend(validate::validate(&partial, &options).1);
            }
            return Err(Error::Config(diagnostics));
        }
    };
    let (pipeline, found) = validate::validate(&doc, &options);
    warnings.extend(found);
    tracing::info!(
        file = %run.file.display(),
        files = doc.provenance.files().count(),
        jobs = pipeline.as_ref().map_or(0, |p| p.jobs.len()),
        problems = warnings.len(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "pipeline loaded and validated"
    );
    match pipeline {
        Some(pipeline) => Ok(Loaded {
            doc,
            pipeline,
            warnings,
        }),
        None => Err(Error::Config(warnings)),
    }
}

/// The dispositions with up-to-date jobs skipped (none under `--force`), and what changed
/// for each job with `inputs` that runs (see [`up_to_date`]), as text for the plan.
fn up_to_date(
    pipeline: &Pipeline,
    dispositions: Vec<Disposition>,
    force: bool,
    history: Option<&Store>,
    fingerprinter: &Fingerprinter<'_>,
) -> Result<(Vec<Disposition>, Vec<Option<Vec<String>>>), Error> {
    if force {
        return Ok((dispositions, Vec::new()));
    }
    let verdicts = up_to_date::check(pipeline, dispositions, history, fingerprinter)?;
    let changes = verdicts
        .changes
        .into_iter()
        .map(|c| c.map(|c| c.iter().map(ToString::to_string).collect()))
        .collect();
    Ok((verdicts.dispositions, changes))
}

/// Masks every secret a job could see, or a command could have been rendered from.
fn masker(pipeline: &Pipeline, process_env: &[(String, String)]) -> Masker {
    Masker::new(
        process_env
            .iter()
            .chain(&pipeline.env)
            .chain(pipeline.jobs.iter().flat_map(|j| &j.env))
            .chain(&pipeline.env_overrides)
            .map(|(k, v)| (k, v)),
    )
}
