//! One function per subcommand, wiring the parts together.

mod apply;
mod init;
mod lint;
mod migrate;

use std::io::Write as _;

use crate::cli::{Cli, Command, RunArgs};
use crate::diagnostic::Diagnostic;
use crate::error::Error;
use crate::load::{self, LoadOptions};
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
        Command::Apply(args) => apply::run(&args, out),
        Command::Plan(_) => Err(Error::Usage {
            message: "`plan` and `apply` are being built (issue 3)".to_owned(),
            help: None,
        }),
    }
}

/// Loads and validates the pipeline a run names, with every layer the flags add.
/// Returns the pipeline and its warnings, or every error as [`Error::Config`].
fn load_pipeline(run: &RunArgs) -> Result<(Pipeline, Vec<Diagnostic>), Error> {
    let options = LoadOptions {
        profile: run.profile.clone(),
        sets: run.sets.clone(),
        use_env: true,
    };
    let (doc, mut diagnostics) =
        load::load(&run.file, &options).map_err(|f| Error::Config(f.diagnostics))?;
    let (pipeline, found) = validate::validate(
        &doc,
        &Options {
            process_env: std::env::vars().collect(),
            cli_env: run.env.clone(),
        },
    );
    diagnostics.extend(found);
    match pipeline {
        Some(pipeline) => Ok((pipeline, diagnostics)),
        None => Err(Error::Config(diagnostics)),
    }
}
