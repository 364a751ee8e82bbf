//! The validated pipeline: what the planner and the engine work from.
//!
//! Every value here has been checked: ids are valid and unique, `needs` point at real jobs
//! and form no cycle (the [`Dag`] proves it), durations and sizes are parsed, templates are
//! rendered. Nothing is optional that has a default. Nothing in here reads a file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::graph::Dag;
use crate::spec::{InheritEnv, RetryStatus, SecurityPolicy};
use crate::template::Text;

/// A job's id: `[A-Za-z0-9_.-]+`, or a matrix expansion `job[key=value,...]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

impl JobId {
    /// The longest id, in bytes, with its matrix: it names the job's log file
    /// (`<id>@<attempt>.log`), and file names are at most 255 bytes.
    pub const MAX_LEN: usize = 200;

    /// Is `id` a valid id as written in a file (matrix expansions are made by exe)?
    pub fn is_valid(id: &str) -> bool {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole validated pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// Name used in history and logs.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Where jobs run.
    pub working_dir: PathBuf,
    /// Where per-job logs go.
    pub log_dir: PathBuf,
    /// How many jobs run at once.
    pub max_parallel: usize,
    /// Whether independent jobs keep running after a failure.
    pub continue_on_error: bool,
    /// How dangerous commands are treated.
    pub security_policy: SecurityPolicy,
    /// Notifications at the end of a run.
    pub notify: Notify,
    /// Inherited variables and the pipeline's `env`, rendered: every job starts from these.
    pub env: Vec<(String, String)>,
    /// Names in `env` inherited wholesale from the caller (`inherit_env = true`) that the
    /// pipeline does not set itself: the shell's own state (`OLDPWD`, `SHLVL`, ...), which
    /// changes from one command to the next, so fingerprints leave it out.
    pub ambient_env: BTreeSet<String>,
    /// Names in `env` that the pipeline's `env` sets (in the file, an include, the profile,
    /// `--set` or `EXE_*`), as opposed to those only inherited from the caller.
    pub own_env: BTreeSet<String>,
    /// Which of the caller's variables jobs see.
    pub inherit_env: InheritEnv,
    /// `--env K=V` values, which win over everything.
    pub env_overrides: Vec<(String, String)>,
    /// Jobs in file order; indexes are used by `needs` and the DAG.
    pub jobs: Vec<Job>,
    /// The dependency graph over `jobs` indexes.
    pub dag: Dag,
}

impl Pipeline {
    /// The complete environment a job starts with, sorted by name: inherited < pipeline
    /// `env` < job `env` < `--env`.
    pub fn job_env(&self, job: &Job) -> Vec<(String, String)> {
        let mut env: std::collections::BTreeMap<&str, &str> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, v) in job.env.iter().chain(&self.env_overrides) {
            env.insert(k, v);
        }
        env.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// One job, ready to plan and run.
#[derive(Debug)]
pub struct Job {
    /// The id.
    pub id: JobId,
    /// Free text.
    pub description: Option<String>,
    /// The shell command (`run.id` and `attempt` are filled in at start).
    pub command: Text,
    /// Indexes of the jobs this one needs.
    pub needs: Vec<usize>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// Time between TERM and KILL.
    pub timeout_grace: Duration,
    /// The job's own `env` entries, rendered (see [`Pipeline::job_env`] for the whole).
    pub env: Vec<(String, String)>,
    /// When to try again.
    pub retry: RetryPolicy,
    /// Checks before the command.
    pub pre_checks: Vec<Check>,
    /// Checks after a successful command.
    pub post_checks: Vec<Check>,
    /// Higher first among ready jobs.
    pub priority: i64,
    /// What must be free before it starts.
    pub resources: Resources,
    /// Input globs (relative to the working directory).
    pub inputs: Vec<String>,
    /// Output paths (relative to the working directory).
    pub outputs: Vec<String>,
    /// False when `when` rendered false: the job is skipped.
    pub enabled: bool,
    /// Where this job's logs go.
    pub log_dir: PathBuf,
    /// The matrix values of an expansion, in key order.
    pub matrix: Vec<(String, String)>,
}

/// When and how a failed attempt is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max: u32,
    /// Wait before the first retry.
    pub delay: Duration,
    /// Growth factor of the wait.
    pub backoff: f64,
    /// Random spread as a fraction in `[0, 1]`.
    pub jitter: f64,
    /// No retry starts later than this after the first attempt began.
    pub max_time: Option<Duration>,
    /// Failures with these exit codes are retried.
    pub on_exit_codes: Vec<i32>,
    /// Attempts ending in these states are retried.
    pub on_status: Vec<RetryStatus>,
}

/// A check before or after a command.
#[derive(Debug, Clone)]
pub enum Check {
    /// A regular file exists.
    FileExists(PathBuf),
    /// A file exists and is not empty.
    FileNotEmpty(PathBuf),
    /// Files match the glob and no line matches a pattern.
    LogClean {
        /// The glob.
        path: String,
        /// The compiled patterns.
        patterns: Vec<regex::Regex>,
    },
    /// A shell command exits 0.
    Command(String),
}

/// What a job needs free.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    /// CPU cores.
    pub cpu: f64,
    /// Bytes of memory.
    pub memory: u64,
}

/// End-of-run notifications.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// On success.
    pub on_success: bool,
    /// On failure.
    pub on_failure: bool,
    /// Email recipients and server, if any.
    pub email: Option<crate::spec::EmailSpec>,
    /// Webhook URL, if any.
    pub webhook: Option<String>,
}
