//! The command line, as clap types only. Parsing, not behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// exe runs pipelines of shell jobs with dependencies, and checks them.
#[derive(Debug, Parser)]
#[command(name = "exe", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: Global,
}

/// Flags accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// When to use colour: auto (a terminal, and `NO_COLOR` unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Print less: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print exe's own diagnostic log to stderr (-v info, -vv debug, -vvv trace; or `EXE_LOG`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Format of exe's own diagnostic log.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files and report every problem at once (read-only; for editors, CI and pre-commit).
    Lint(LintArgs),
    /// Print the JSON Schema of the pipeline format.
    Schema,
    /// Write a commented starter pipeline.
    Init(InitArgs),
    /// Convert a legacy (executioner) or other-format file to the current format.
    Migrate(MigrateArgs),
}

/// `exe lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files or folders (every pipeline file below them); `-` reads standard input. Default: `.`.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// The name (and so the format) of what `-` reads, for messages and includes.
    #[arg(long, value_name = "NAME")]
    pub stdin_filename: Option<PathBuf>,
}

/// `exe lint --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Source excerpts with labels, for people.
    Human,
    /// One JSON document (the shape of Terraform's `validate -json`).
    Json,
    /// GitHub Actions annotations.
    Github,
}

/// `exe init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write. Default: `pipeline.<ext>` in the current folder.
    pub path: Option<PathBuf>,
    /// Starter to use.
    #[arg(long, short, default_value = "basic")]
    pub template: String,
    /// List the starters and exit.
    #[arg(long)]
    pub list: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `exe migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The file to convert.
    pub file: PathBuf,
    /// Format to write.
    #[arg(long, value_enum, default_value_t = TargetFormat::Toml)]
    pub to: TargetFormat,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `exe migrate --to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetFormat {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}
