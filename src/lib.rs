//! exe: a pipeline runner. `run` is the whole program; `main` only calls it.

/// `eprint!` that ignores a failed write instead of panicking. exe's own messages are
/// best-effort once stderr is gone (a reader that closed the pipe, `2>&-`): the history, the
/// logs and the exit code still tell what happened, and a run must not die half-recorded
/// over a message. Defined before the modules so that all of them can use it.
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// [`stderr!`] with a newline.
macro_rules! stderrln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod attempt;
pub mod checks;
pub mod cli;
pub mod clock;
mod commands;
pub mod diagnostic;
pub mod emit;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod graph;
pub mod job_ref;
pub mod load;
pub mod logs;
pub mod model;
pub mod plan;
pub mod process;
pub mod progress;
pub mod recovery;
pub mod render;
pub mod resources;
pub mod resume;
pub mod runner;
pub mod scheduler;
pub mod secrets;
pub mod security;
pub mod selection;
pub mod signals;
pub mod source;
pub mod spec;
pub mod state;
pub mod store;
pub mod template;
pub mod up_to_date;
pub mod validate;
pub mod watch;

use std::ffi::OsString;
use std::io::IsTerminal as _;

use clap::Parser as _;

use crate::cli::{Cli, ColorChoice, LogFormat};
use crate::commands::Output;
use crate::diagnostic::{Diagnostic, render_human};
use crate::error::{EXIT_INVALID, Error};

/// Parses the arguments, runs the command, prints any error, and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_INVALID } else { 0 };
        }
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match cli.global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
    };
    let err_color = match cli.global.color {
        ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
        other => other == ColorChoice::Always,
    };
    init_logging(cli.global.verbose, cli.global.log_format);
    signals::survive_file_size_limit();
    let out = Output {
        color,
        color_err: err_color,
        quiet: cli.global.quiet,
    };
    match commands::dispatch(cli, out) {
        Ok(code) => code,
        // The reader stopped reading (`exe runs | head`): not an error, it has what it
        // wanted. End quietly, as `exe plan` does.
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            report(&e, err_color);
            e.exit_code()
        }
    }
}

fn report(e: &Error, color: bool) {
    let text = match e {
        Error::Config(diagnostics) => render_human(diagnostics, color),
        Error::Usage { message, help } => {
            let mut d = Diagnostic::error("exe::cli::usage", message.clone());
            d.help.clone_from(help);
            render_human(&[d], color)
        }
        Error::History(e) => {
            let mut d = Diagnostic::error("exe::history", e.to_string());
            d.help = e.help();
            render_human(&[d], color)
        }
        Error::Watch(e) => {
            let mut d = Diagnostic::error("exe::watch", e.to_string());
            d.help = e.help();
            render_human(&[d], color)
        }
        other => render_human(&[Diagnostic::error("exe::io", other.to_string())], color),
    };
    stderr!("{text}");
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
