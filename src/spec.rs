//! The raw file format: serde types that mirror what users write, in every format.
//!
//! These types are the parser (through figment) and the source of the JSON Schema
//! (`exe schema`), so the two cannot drift. Every field is optional here: a job may get its
//! `command` from a template, a value may come from a profile or `--set`. Turning this into
//! a model that cannot be invalid is `validate.rs`'s job. The older tool's format lives in
//! `spec/legacy.rs` and converts into these types.

pub mod legacy;
mod scalar;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use scalar::{
    DurationError, DurationSpec, EnvValue, InheritEnv, MAX_DURATION, SizeSpec, StringList, When,
    duration_of, format_duration, is_variable_name, parse_duration,
};

/// The format version this exe writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A whole pipeline file (also what a profile or an included file holds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "exe pipeline",
    description = "A pipeline for exe: shell jobs with dependencies."
)]
pub struct PipelineSpec {
    /// Format version; `1` now. `exe migrate` upgrades older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Pipeline name, used in history, logs and notifications. Default: the file stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where jobs run; relative to the file that sets it. Default: the file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Files (or globs) merged in before this file's own keys, in order, relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<StringList>,
    /// Per-job logs go to `<log_dir>/<run id>/<job id>.log`. Default `.exe/logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
    /// Template variables, read as `{{ vars.name }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<BTreeMap<String, serde_json::Value>>,
    /// Environment for every job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// Which of the caller's environment variables jobs see. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_env: Option<InheritEnv>,
    /// Job fields applied to every job that does not set them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<JobSpec>,
    /// Jobs running at once. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// Keep running independent jobs after a failure (the run still fails). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_error: Option<bool>,
    /// Reusable partial jobs, used with `extends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<BTreeMap<String, JobSpec>>,
    /// Email and webhook notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
    /// The jobs, by id (`[A-Za-z0-9_.-]+`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<IndexMap<String, JobSpec>>,
    /// Top-level overrides selected with `--profile NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<BTreeMap<String, PipelineSpec>>,
    /// What to do with commands that match known-dangerous patterns. Default `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<SecurityPolicy>,
}

/// One job, or the partial job a template or `defaults` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Shell command, run with `sh -c` in its own process group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ids of the jobs this one depends on. A matrix job's id means all of its expansions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<StringList>,
    /// Kill the job's whole process tree after this long (state TIMEOUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Time between TERM and KILL when the job is stopped. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_grace: Option<DurationSpec>,
    /// Job environment, over the pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// When and how often to try again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Checks that must pass before the command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_checks: Option<Vec<CheckSpec>>,
    /// Checks that must pass after the command succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_checks: Option<Vec<CheckSpec>>,
    /// Higher runs first among ready jobs. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// What the job needs free before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
    /// Globs of files the job reads; with them the job is skipped when up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Paths the job writes; all must exist for the job to be up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
    /// Template name(s) merged under this job's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<StringList>,
    /// Parameters for the templates, read as `{{ params.name }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<BTreeMap<String, serde_json::Value>>,
    /// One job per combination of these values, ids `job[key=value,...]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Template expression; false skips the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// This job's logs go under this folder instead of the pipeline's `log_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
}

/// Retry policy of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first attempt. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Wait before the first retry. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationSpec>,
    /// Each further retry waits this many times longer. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// Random spread of each wait, as a fraction (0.1 = ±10%). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// No retry starts later than this after the first attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<DurationSpec>,
    /// A failed attempt with one of these exit codes is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<Vec<u8>>,
    /// An attempt that ends in one of these states is retried. Default both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_status: Option<Vec<RetryStatus>>,
}

/// The attempt outcomes a retry can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryStatus {
    /// The command exited non-zero, was killed by a signal, or a post-check failed.
    #[serde(rename = "FAILED", alias = "failed")]
    Failed,
    /// The command ran past its timeout.
    #[serde(rename = "TIMEOUT", alias = "timeout")]
    Timeout,
}

impl JsonSchema for RetryStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RetryStatus".into()
    }
    // The lower-case spellings are read too (the derived schema had only the upper case).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An attempt outcome: FAILED (non-zero exit, a signal, a failed post-check) or TIMEOUT; lower case is read too.",
            "enum": ["FAILED", "TIMEOUT", "failed", "timeout"]
        })
    }
}

/// A check run before or after a job's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// Passes when `path` is an existing regular file.
    FileExists {
        /// The file.
        path: String,
    },
    /// Passes when `path` is an existing file with at least one byte.
    FileNotEmpty {
        /// The file.
        path: String,
    },
    /// Passes when files match `path` and no line of them matches any of `patterns`.
    LogClean {
        /// A glob of log files.
        path: String,
        /// Regular expressions of error lines. Default `["ORA-\\d{5}"]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patterns: Option<Vec<String>>,
    },
    /// Passes when the shell command `run` exits 0.
    Command {
        /// The shell command.
        run: String,
    },
}

/// What a job needs free before it starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory, e.g. `"4GiB"` or MiB as an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<SizeSpec>,
}

/// Notifications at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// Notify when a run succeeds. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<bool>,
    /// Notify when a run fails. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<bool>,
    /// Send an email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSpec>,
    /// POST a JSON summary to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

/// Email notification settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    /// Recipients.
    pub to: StringList,
    /// Sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// SMTP server. Default `localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// SMTP port. Default 587.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// SMTP user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_user: Option<String>,
    /// SMTP password (masked as `***` wherever exe shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
}

/// Webhook notification settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// The URL to POST to.
    pub url: String,
}

/// How commands matching known-dangerous patterns are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityPolicy {
    /// Lint warnings.
    #[default]
    Warn,
    /// Lint errors; `apply` refuses to run.
    Strict,
}

/// The JSON Schema of the pipeline format, as `exe schema` prints it.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PipelineSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}
