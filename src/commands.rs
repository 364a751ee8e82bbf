//! One function per subcommand, wiring the parts together.

mod init;
mod lint;
mod migrate;
mod plan;

use std::io::Write as _;

use crate::cli::{Cli, Command};
use crate::error::Error;

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
        Command::Plan(args) => plan::run(&args, out),
        Command::Apply(_) => Err(Error::Usage {
            message: "`plan` and `apply` are being built (issue 3)".to_owned(),
            help: None,
        }),
    }
}
