//! The command line, as clap types only. Parsing, not behaviour.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::state::RunState;

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
    /// The run history database. Default: `.exe/history.db` in the current folder (also
    /// when `EXE_DB` is set but empty).
    #[arg(
        long,
        global = true,
        env = "EXE_DB",
        value_name = "PATH",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    pub db: Option<PathBuf>,
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
    /// Show what `apply` would run, in what order, and why anything would be skipped.
    Plan(PlanArgs),
    /// Run a pipeline: jobs in parallel as their needs finish, with retries, timeouts and checks.
    Apply(ApplyArgs),
    /// Apply a pipeline, then apply it again whenever the pipeline or a job's inputs change.
    Watch(WatchArgs),
    /// List recorded runs, newest first.
    Runs(RunsArgs),
    /// Show one run: its jobs, states, attempts, times, exit codes, CPU time, memory and logs.
    Show(ShowArgs),
    /// Print a job's log from a run.
    Logs(LogsArgs),
    /// Record jobs of a run as successful (audited), so a resume passes them.
    MarkSuccess(MarkSuccessArgs),
    /// Per job of each pipeline: p50, p95 and max duration, and failure rate, over recent runs.
    Stats(StatsArgs),
}

/// `exe stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only runs of this pipeline name.
    #[arg(long)]
    pub name: Option<String>,
    /// How many of the most recent finished runs to look at.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub last: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// `exe runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this pipeline name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only runs in this state (RUNNING, SUCCESS, FAILED, CANCELLED; any case).
    #[arg(
        long,
        value_name = "STATE",
        ignore_case = true,
        value_parser = clap::builder::PossibleValuesParser::new(RunState::ALL.map(RunState::as_str)),
    )]
    pub status: Option<String>,
    /// Only runs started at or after this time: a date (`2026-11-26`), a date and time in UTC
    /// (`2026-11-26T08:00`), or an age with its unit (`2h` ago; `90s`, `3d`). Not a bare number.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only runs started before this time (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// At most this many runs (0: all of them).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// `--format` of the history commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A table for people.
    Text,
    /// JSON for scripts.
    Json,
}

/// `exe show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id.
    pub run: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// `exe logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id.
    pub run: i64,
    /// The job id.
    pub job: String,
    /// Which attempt (default: the last).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing as the log grows: waits for the job to start, goes on through its
    /// retries, and ends when it is done (with --attempt N: waits for attempt N to start while
    /// the run is going, and ends when that attempt ends).
    #[arg(long, short)]
    pub follow: bool,
}

/// `exe mark-success`.
#[derive(Debug, Args)]
pub struct MarkSuccessArgs {
    /// The run id.
    pub run: i64,
    /// The jobs to record as successful.
    #[arg(required = true)]
    pub jobs: Vec<String>,
    /// Why (kept in the audit trail; it cannot be blank).
    #[arg(long, required = true, value_parser = not_blank)]
    pub reason: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
}

/// What selects and shapes a run; shared by `plan` and `apply`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The pipeline file.
    pub file: PathBuf,
    /// Select a profile from the file's `profiles`.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Override a value: `--set jobs.build.timeout=5m` (repeatable; wins over everything).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    /// Set a job environment variable: `--env K=V` (repeatable; wins over the file).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Do not run this job; it counts as done for the jobs that need it once its own needs are (repeatable, or a comma list).
    #[arg(long, value_name = "ID", value_parser = some_ids)]
    pub skip: Vec<String>,
    /// Run only these jobs; the jobs they need count as done (repeatable, or a comma list).
    #[arg(long, value_name = "ID", value_parser = some_ids)]
    pub only: Vec<String>,
    /// Run jobs even when they are up to date (jobs with `inputs` whose last success had
    /// the same command, environment and input contents).
    #[arg(long)]
    pub force: bool,
}

/// `exe plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pipeline and what selects the run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Show the environment each job would get (secrets masked).
    #[arg(long)]
    pub show_env: bool,
    /// Say which file, environment variable or flag set this key path (repeatable).
    #[arg(long, value_name = "PATH")]
    pub explain: Vec<String>,
    /// Exit 0 when nothing would run, 2 when something would (1 stays "error").
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Jobs that may run at once (for the layers shown; the file's `max_parallel` otherwise).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// `apply --dry-run --continue-on-error`: the plan says what a failure would do then.
    #[arg(skip)]
    pub continue_on_error: bool,
}

/// `exe plan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people.
    Text,
    /// For scripts.
    Json,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// `exe apply`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each is a command-line switch
pub struct ApplyArgs {
    /// The pipeline and what selects the run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Jobs running at once (overrides the file's `max_parallel`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Keep running jobs that do not depend on a failed one (the run still fails).
    #[arg(long)]
    pub continue_on_error: bool,
    /// Show the plan instead of running (the same as `exe plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// How job output is shown: prefixed lines as they come, each job's output when it ends, or none.
    #[arg(long, value_enum, default_value_t = OutputMode::Prefixed)]
    pub output: OutputMode,
    /// Continue this recorded run: jobs that succeeded (or were marked successful) are not run again.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<i64>,
    /// With --resume: rerun only the jobs that failed or timed out.
    #[arg(long, requires = "resume")]
    pub failed_only: bool,
    /// With --resume: run even though the pipeline changed since that run.
    #[arg(long, requires = "resume")]
    pub allow_changes: bool,
    /// `full` makes the history fsync every batch of records before acting on it; `normal`
    /// survives a crash of exe, and a power loss may lose the last few transitions.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Normal)]
    pub durability: DurabilityArg,
}

/// `exe watch`.
#[derive(Debug, Args)]
#[command(
    mut_arg("dry_run", |a| a.hide(true)),
    mut_arg("resume", |a| a.hide(true)),
    mut_arg("failed_only", |a| a.hide(true)),
    mut_arg("allow_changes", |a| a.hide(true))
)]
pub struct WatchArgs {
    /// What each run does: the flags of `apply`.
    #[command(flatten)]
    pub apply: ApplyArgs,
    /// How long changes must pause before a rerun starts, so a burst of saves is one rerun
    /// (`"100ms"`, `"1s"`, ... as durations in the file).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = crate::spec::parse_duration)]
    pub debounce: Duration,
    /// What a change during a run does: stop the run and start again, or let it finish first.
    #[arg(long, value_enum, default_value_t = OnBusy::Restart)]
    pub on_busy: OnBusy,
}

/// `exe watch --on-busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnBusy {
    /// Cancel the run (TERM to its jobs' process groups, then KILL after their grace period), then rerun.
    Restart,
    /// Let the run finish, then rerun once for every change made meanwhile.
    Queue,
}

/// `exe apply --durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survives a crash of exe (WAL with synchronous=NORMAL, the run's journal unsynced).
    Normal,
    /// fsync every batch of records (and commit) before acting on it.
    Full,
}

/// `exe apply --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputMode {
    /// Each line as it comes, prefixed with the job id.
    Prefixed,
    /// A job's whole output when it ends.
    Grouped,
    /// No job output (it is still in the logs).
    Quiet,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not K=V"))?;
    if !crate::spec::is_variable_name(key) {
        return Err(format!("`{key}` is not a valid variable name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// An `--only` or `--skip` value that names at least one id: `--only "$JOBS"` with `$JOBS`
/// empty would otherwise select every job.
fn some_ids(text: &str) -> Result<String, String> {
    if split_ids(&[text.to_owned()]).is_empty() {
        return Err("it names no job: give a job id, or a comma list of them".to_owned());
    }
    Ok(text.to_owned())
}

/// Splits `a,b` and repeated flags into ids, keeping commas inside matrix ids (`build[os=a,v=1]`).
pub fn split_ids(values: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for value in values {
        let mut depth = 0usize;
        let mut start = 0;
        for (i, c) in value.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    ids.push(value[start..i].trim().to_owned());
                    start = i + 1;
                }
                _ => {}
            }
        }
        ids.push(value[start..].trim().to_owned());
    }
    ids.retain(|id| !id.is_empty());
    ids
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
    /// Where to write: a file, or a folder to write `pipeline.<ext>` in. Default:
    /// `pipeline.<ext>` in the current folder.
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
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "history"])))]
pub struct MigrateArgs {
    /// The file to convert.
    pub file: Option<PathBuf>,
    /// Import the older executioner's history database (its runs and jobs) into exe's history.
    #[arg(long, value_name = "OLD.db", conflicts_with_all = ["file", "to", "output", "force"])]
    pub history: Option<PathBuf>,
    /// Format to write. Default: OUT's extension, else TOML.
    #[arg(long, value_enum)]
    pub to: Option<TargetFormat>,
    /// Write here instead of standard output (in the format its extension names).
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

/// `--reason` of mark-success: an audit trail entry must say something.
fn not_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("say why the jobs count as successful; the reason is kept in the audit trail".into())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_on_commas_outside_brackets() {
        let ids = split_ids(&["a,b".to_owned(), "build[os=linux,v=1],c".to_owned()]);
        assert_eq!(ids, ["a", "b", "build[os=linux,v=1]", "c"]);
    }

    #[test]
    fn env_values_keep_their_commas() {
        assert_eq!(
            parse_env("K=a,b=c").unwrap(),
            ("K".to_owned(), "a,b=c".to_owned())
        );
        assert!(parse_env("1K=v").is_err());
        assert!(parse_env("novalue").is_err());
    }
}
