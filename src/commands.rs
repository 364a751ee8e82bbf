//! One function per subcommand, wiring the parts together.

mod apply;
mod init;
mod lint;
mod migrate;
mod plan;

use std::io::Write as _;

use crate::cli::{Cli, Command, PlanArgs, PlanFormat, RunArgs};
use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::load::{self, Document, LoadOptions};
use crate::model::Pipeline;
use crate::validate::{self, Options};

pub use lint::Output;

/// Runs a parsed command line; returns the exit code of a command that finished.
pub fn dispatch(cli: Cli, out: Output) -> Result<i32, Error> {
    match cli.command {
        Command::Lint(args) => lint::run(&args, out),
        Command::Schema => {
            std::io::stdout().write_all(crate::spec::json_schema().as_bytes())?;
            Ok(0)
        }
        Command::Init(args) => init::run(&args),
        Command::Migrate(args) => migrate::run(&args, out),
        // `--dry-run` is the plan, with the same selection and layers.
        Command::Apply(args) if args.dry_run => plan::run(
            &PlanArgs {
                run: args.run,
                format: PlanFormat::Text,
                show_env: false,
                explain: Vec::new(),
                detailed_exitcode: false,
                max_parallel: args.max_parallel.map(|n| n as usize),
            },
            out,
        ),
        Command::Apply(args) => apply::run(&args, out),
        Command::Plan(args) => plan::run(&args, out),
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

/// Loads and validates the pipeline a run names, with every layer the flags add. On
/// failure, every problem is reported, including those behind invalid values.
fn load_pipeline(run: &RunArgs, process_env: &[(String, String)]) -> Result<Loaded, Error> {
    let load_options = LoadOptions {
        profile: run.profile.clone(),
        sets: run.sets.clone(),
        use_env: true,
    };
    let options = Options {
        process_env: process_env.to_vec(),
        cli_env: run.env.clone(),
    };
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
    match pipeline {
        Some(pipeline) => Ok(Loaded {
            doc,
            pipeline,
            warnings,
        }),
        None => Err(Error::Config(warnings)),
    }
}
