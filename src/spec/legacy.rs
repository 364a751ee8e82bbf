//! The older Python tool's JSON format ("executioner"), converted into [`PipelineSpec`].
//!
//! The conversion keeps every key's meaning: where the older tool's defaults differ from
//! exe's (a 3-hour timeout, 30 s retry delay with 1.5 backoff, `ORA-` log checks, its own
//! "default" environment whitelist), they are written out explicitly, so a migrated file
//! behaves exactly as the original did. Unknown keys are warnings (the older tool ignored
//! them); keys starting with `_` are comments.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use super::{
    CheckSpec, DurationSpec, EmailSpec, EnvValue, InheritEnv, JobSpec, NotifySpec, PipelineSpec,
    RetrySpec, RetryStatus, SecurityPolicy, StringList,
};
use crate::diagnostic::{At, Diagnostic};
use crate::load::{diagnose, to_figment};
use crate::model::JobId;
use crate::source::{Node, SourceFile, Value};

/// The older tool's "default" `inherit_shell_env` whitelist (it differs from exe's).
pub const LEGACY_DEFAULT_ENV: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "HOME",
    "USER",
    "SHELL",
    "HOSTNAME",
    "TERM",
    "DISPLAY",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "JAVA_HOME",
    "PYTHON_HOME",
    "NODE_PATH",
];

const TOP_KEYS: &[&str] = &[
    "working_dir",
    "application_name",
    "name",
    "jobs",
    "log_dir",
    "parallel",
    "max_workers",
    "default_timeout",
    "default_max_retries",
    "default_retry_delay",
    "default_retry_backoff",
    "default_retry_jitter",
    "default_max_retry_time",
    "default_retry_on_exit_codes",
    "env_variables",
    "inherit_shell_env",
    "email_address",
    "email_on_success",
    "email_on_failure",
    "smtp_server",
    "smtp_port",
    "smtp_user",
    "smtp_password",
    "allow_shell",
    "security_policy",
    "dependency_plugins",
    "description",
];

const JOB_KEYS: &[&str] = &[
    "id",
    "command",
    "description",
    "dependencies",
    "timeout",
    "env_variables",
    "pre_checks",
    "post_checks",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_jitter",
    "max_retry_time",
    "retry_on_exit_codes",
    "retry_on_status",
    "log_dir",
];

const CHECK_KEYS: &[&str] = &["name", "params"];

#[derive(Deserialize)]
struct LegacySpec {
    working_dir: Option<String>,
    application_name: Option<String>,
    name: Option<String>,
    description: Option<String>,
    // Absent, like empty, is a pipeline without jobs (a warning), not a parse error.
    #[serde(default)]
    jobs: Vec<LegacyJob>,
    log_dir: Option<String>,
    parallel: Option<bool>,
    max_workers: Option<i64>,
    default_timeout: Option<DurationSpec>,
    default_max_retries: Option<u32>,
    default_retry_delay: Option<DurationSpec>,
    default_retry_backoff: Option<f64>,
    default_retry_jitter: Option<f64>,
    default_max_retry_time: Option<DurationSpec>,
    default_retry_on_exit_codes: Option<Vec<u8>>,
    env_variables: Option<BTreeMap<String, EnvValue>>,
    inherit_shell_env: Option<InheritEnv>,
    email_address: Option<StringList>,
    email_on_success: Option<bool>,
    email_on_failure: Option<bool>,
    smtp_server: Option<String>,
    smtp_port: Option<u16>,
    smtp_user: Option<String>,
    smtp_password: Option<String>,
    allow_shell: Option<bool>,
    security_policy: Option<SecurityPolicy>,
}

#[derive(Deserialize)]
struct LegacyJob {
    id: String,
    command: Option<String>,
    description: Option<String>,
    dependencies: Option<StringList>,
    timeout: Option<DurationSpec>,
    env_variables: Option<BTreeMap<String, EnvValue>>,
    pre_checks: Option<Vec<LegacyCheck>>,
    post_checks: Option<Vec<LegacyCheck>>,
    max_retries: Option<u32>,
    retry_delay: Option<DurationSpec>,
    retry_backoff: Option<f64>,
    retry_jitter: Option<f64>,
    max_retry_time: Option<DurationSpec>,
    retry_on_exit_codes: Option<Vec<u8>>,
    retry_on_status: Option<Vec<String>>,
    log_dir: Option<String>,
}

#[derive(Deserialize)]
struct LegacyCheck {
    name: String,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
}

/// Is this tree a legacy file? Its top-level `jobs` is an array (the current format's is a
/// map keyed by id), or it has no `jobs` but the legacy-only `application_name`. Neither
/// is ever a valid current-format file, so a legacy file whose jobs all lack their `id`, or
/// that has none, is told that in legacy terms rather than that `jobs` should be a map.
pub fn is_legacy(tree: &Node) -> bool {
    match tree.get("jobs").map(|j| &j.value) {
        Some(Value::Seq(_)) => true,
        Some(_) => false,
        None => tree.get("application_name").is_some(),
    }
}

/// Converts a legacy tree. Returns the spec, each job id's index in the `jobs` array, and
/// warnings (the legacy notice, unknown keys, unsupported keys).
pub fn convert(
    tree: &Node,
    source: &Arc<SourceFile>,
) -> Result<(PipelineSpec, HashMap<String, usize>, Vec<Diagnostic>), Vec<Diagnostic>> {
    let at = |path: &[String], key: bool| -> Option<At> {
        let node = if key {
            let (last, parent) = path.split_last()?;
            tree.find(parent)
                .and_then(|p| p.get_key(last))
                .map(|k| k.span.clone())
        } else {
            tree.find(path).map(|n| n.span.clone())
        };
        Some(node.map_or_else(
            || At::File(source.path.clone()),
            |span| At::Span {
                source: source.clone(),
                span,
            },
        ))
    };
    let mut warnings = vec![
        Diagnostic::warning(
            "exe::config::legacy_format",
            "this file is in the older executioner format; it loads as it is",
        )
        .at(at(&[], false).map(|a| match a {
            At::Span { source, .. } => At::Span { source, span: 0..0 },
            other => other,
        }))
        .help(format!(
            "`exe migrate {}` converts it to the current format",
            source.path.display()
        )),
    ];
    let mut stripped = tree.clone();
    strip_keys(&mut stripped, TOP_KEYS, &[], None, &mut warnings, &at);
    let mut missing_ids = Vec::new();
    if let Some(Value::Seq(items)) = get_mut(&mut stripped, "jobs").map(|jobs| &mut jobs.value) {
        for (i, job) in items.iter_mut().enumerate() {
            let path = ["jobs".to_owned(), i.to_string()];
            strip_keys(job, JOB_KEYS, &path, None, &mut warnings, &at);
            strip_check_keys(job, &path, &mut warnings, &at);
            if matches!(job.value, Value::Map(_)) && job.get("id").is_none() {
                missing_ids.push(
                    Diagnostic::error(
                        "exe::config::missing_key",
                        format!("missing key `id` in `jobs.{i}`"),
                    )
                    .at(at(&path, false))
                    .label("this job has no `id`")
                    .help(
                        "every job of a legacy file has an `id`, unique in the file (in the \
                         current format, `jobs` is instead a map keyed by id)",
                    ),
                );
            }
        }
    }
    // Deserializing would name only the first job without an `id`: every one is named,
    // with the warnings (an unknown `ID` is likely the misspelt `id`).
    if !missing_ids.is_empty() {
        warnings.extend(missing_ids);
        return Err(warnings);
    }
    let mut legacy: LegacySpec = to_figment(&stripped)
        .deserialize()
        .map_err(|e| vec![diagnose(&e, &at)])?;
    let mut errors = Vec::new();
    let mut index = HashMap::new();
    for (i, job) in legacy.jobs.iter().enumerate() {
        for (n, status) in job.retry_on_status.iter().flatten().enumerate() {
            if legacy_status(status).is_none() {
                let path = [
                    "jobs".to_owned(),
                    i.to_string(),
                    "retry_on_status".to_owned(),
                    n.to_string(),
                ];
                warnings.push(
                    Diagnostic::warning(
                        "exe::config::legacy_unknown_status",
                        format!("unknown retry status `{status}`, ignored"),
                    )
                    .at(at(&path, false))
                    .help("the older tool's statuses are ERROR, FAILED and TIMEOUT"),
                );
            }
        }
        if let Some(first) = index.insert(job.id.clone(), i) {
            let path = ["jobs".to_owned(), i.to_string(), "id".to_owned()];
            let mut d = Diagnostic::error(
                "exe::config::duplicate_id",
                format!("duplicate job id `{}`", job.id),
            )
            .at(at(&path, false))
            .help("job ids must be unique");
            if let Some(n) = tree.find(&["jobs".to_owned(), first.to_string(), "id".to_owned()]) {
                d.related
                    .push(("first used here".to_owned(), n.span.clone()));
            }
            errors.push(d);
        }
    }
    if legacy.allow_shell == Some(false) {
        warnings.push(
            Diagnostic::warning(
                "exe::config::legacy_unsupported",
                "`allow_shell: false` is not supported: exe runs every command with `sh -c`",
            )
            .at(at(&["allow_shell".to_owned()], true)),
        );
    }
    if tree.get("dependency_plugins").is_some() {
        warnings.push(
            Diagnostic::warning("exe::config::legacy_unsupported", "`dependency_plugins` (Python plugins) are not supported and are ignored")
                .at(at(&["dependency_plugins".to_owned()], true))
                .help("run the plugin's logic as a `command` pre-check: `{ check = \"command\", run = \"python3 plugin.py\" }`"),
        );
    }
    for (i, renamed) in rename_ids(&mut legacy.jobs) {
        let path = ["jobs".to_owned(), i.to_string(), "id".to_owned()];
        warnings.push(
            Diagnostic::warning(
                "exe::config::legacy_id",
                format!("job id `{renamed}` is `{}` in exe", legacy.jobs[i].id),
            )
            .at(at(&path, false))
            .help(
                "exe's job ids are letters, digits, `_`, `.` and `-`: `--only`, `exe logs` and \
                 the history name the job so, and `exe migrate` writes it so",
            ),
        );
        index.remove(&renamed);
        index.insert(legacy.jobs[i].id.clone(), i);
    }
    let spec = build(legacy, &at, &mut errors);
    if errors.is_empty() {
        Ok((spec, index, warnings))
    } else {
        // The warnings go with the errors: lint shows every problem at once.
        warnings.extend(errors);
        Err(warnings)
    }
}

/// Gives each job whose id exe cannot take (the older tool took any text: `Load customers`)
/// one it can: each other character becomes `_`, and a number is added if that id is taken.
/// Dependencies on a renamed job follow it. Returns each renamed job's index and old id.
fn rename_ids(jobs: &mut [LegacyJob]) -> Vec<(usize, String)> {
    let mut taken: HashSet<String> = (jobs.iter())
        .filter(|j| JobId::is_valid(&j.id))
        .map(|j| j.id.clone())
        .collect();
    let mut renamed = Vec::new();
    let mut new_ids = HashMap::new();
    for (i, job) in jobs.iter_mut().enumerate() {
        if JobId::is_valid(&job.id) || new_ids.contains_key(&job.id) {
            continue;
        }
        let mut base: String = (job.id.chars())
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() {
            base = format!("job_{i}");
        }
        let mut id = base.clone();
        for n in 2.. {
            if !taken.contains(&id) {
                break;
            }
            id = format!("{base}_{n}");
        }
        taken.insert(id.clone());
        new_ids.insert(job.id.clone(), id.clone());
        renamed.push((i, std::mem::replace(&mut job.id, id)));
    }
    if !new_ids.is_empty() {
        for needs in jobs.iter_mut().filter_map(|j| j.dependencies.as_mut()) {
            for need in &mut needs.0 {
                if let Some(id) = new_ids.get(need) {
                    need.clone_from(id);
                }
            }
        }
    }
    renamed
}

/// The entry for `key` if `node` is a map that has it.
fn get_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The parameter a legacy check takes (each took exactly one), or `None` for a name the
/// older tool did not have.
fn check_param(name: &str) -> Option<&'static str> {
    match name {
        "check_file_exists" => Some("path"),
        "check_no_ora_errors" | "check_no_ora_or_sp2_errors" => Some("log_file"),
        _ => None,
    }
}

/// Removes, with a warning each, the keys of `job`'s checks other than `name` and `params`,
/// and the parameters their check does not take. (An unknown check name is an error later;
/// its parameters are not judged.)
fn strip_check_keys(
    job: &mut Node,
    path: &[String],
    warnings: &mut Vec<Diagnostic>,
    at: &impl Fn(&[String], bool) -> Option<At>,
) {
    let Value::Map(entries) = &mut job.value else {
        return;
    };
    for (field, list) in entries.iter_mut() {
        if !matches!(field.name.as_str(), "pre_checks" | "post_checks") {
            continue;
        }
        let Value::Seq(checks) = &mut list.value else {
            continue;
        };
        for (n, check) in checks.iter_mut().enumerate() {
            let here: Vec<String> = (path.iter().cloned())
                .chain([field.name.clone(), n.to_string()])
                .collect();
            let help = "a legacy check has a `name` and its `params`";
            strip_keys(check, CHECK_KEYS, &here, Some(help), warnings, at);
            let Some(Value::Str(name)) = check.get("name").map(|n| n.value.clone()) else {
                continue;
            };
            let Some(param) = check_param(&name) else {
                continue;
            };
            if let Some(params) = get_mut(check, "params") {
                let here: Vec<String> = here.into_iter().chain(["params".to_owned()]).collect();
                let help = format!("`{name}` takes only `{param}`");
                strip_keys(params, &[param], &here, Some(&help), warnings, at);
            }
        }
    }
}

/// Removes the keys of the map `node` (at `path`) that are not `known`: keys starting with
/// `_` silently (comments), others with a warning, whose help is a close known key, else
/// `help`.
fn strip_keys(
    node: &mut Node,
    known: &[&str],
    path: &[String],
    help: Option<&str>,
    warnings: &mut Vec<Diagnostic>,
    at: &impl Fn(&[String], bool) -> Option<At>,
) {
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    entries.retain(|(key, _)| {
        if key.name.starts_with('_') {
            return false;
        }
        if known.contains(&key.name.as_str()) {
            return true;
        }
        let here: Vec<String> = path.iter().cloned().chain([key.name.clone()]).collect();
        let mut d = Diagnostic::warning(
            "exe::config::legacy_unknown_key",
            format!("unknown key `{}`, ignored", key.name),
        )
        .at(at(&here, true))
        .label("ignored");
        // `ID` for `id`: too far for the edit distance, and common in hand-written JSON.
        let same_but_case = known.iter().find(|k| k.eq_ignore_ascii_case(&key.name));
        if let Some(k) = same_but_case {
            d = d.help(format!("did you mean `{k}`? keys are case-sensitive"));
        } else if let Some(hint) = crate::diagnostic::did_you_mean(&key.name, known.iter().copied())
        {
            d = d.help(hint);
        } else if let Some(help) = help {
            d = d.help(help);
        }
        warnings.push(d);
        false
    });
}

#[allow(clippy::too_many_lines)]
fn build(
    legacy: LegacySpec,
    at: &impl Fn(&[String], bool) -> Option<At>,
    errors: &mut Vec<Diagnostic>,
) -> PipelineSpec {
    let max_parallel = if legacy.parallel == Some(true) {
        // The older tool's `--parallel` without `max_workers` used 4 workers.
        u32::try_from(legacy.max_workers.unwrap_or(4).max(1)).unwrap_or(u32::MAX)
    } else {
        1
    };
    let defaults = JobSpec {
        timeout: Some(
            legacy
                .default_timeout
                .unwrap_or(DurationSpec(Duration::from_hours(3))),
        ),
        retry: Some(RetrySpec {
            max: Some(legacy.default_max_retries.unwrap_or(0)),
            delay: Some(
                legacy
                    .default_retry_delay
                    .unwrap_or(DurationSpec(Duration::from_secs(30))),
            ),
            backoff: Some(legacy.default_retry_backoff.unwrap_or(1.5)),
            jitter: Some(legacy.default_retry_jitter.unwrap_or(0.1)),
            max_time: Some(
                legacy
                    .default_max_retry_time
                    .unwrap_or(DurationSpec(Duration::from_mins(30))),
            ),
            on_exit_codes: Some(
                legacy
                    .default_retry_on_exit_codes
                    .unwrap_or_else(|| vec![1]),
            ),
            on_status: Some(vec![RetryStatus::Failed, RetryStatus::Timeout]),
        }),
        ..JobSpec::default()
    };
    let notify = legacy.email_address.map(|to| NotifySpec {
        on_success: Some(legacy.email_on_success.unwrap_or(false)),
        on_failure: Some(legacy.email_on_failure.unwrap_or(true)),
        email: Some(EmailSpec {
            to: StringList(
                to.0.iter()
                    .flat_map(|a| a.split(','))
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            from: None,
            smtp_host: Some(legacy.smtp_server.unwrap_or_else(|| "localhost".to_owned())),
            smtp_port: Some(legacy.smtp_port.unwrap_or(587)),
            smtp_user: legacy.smtp_user,
            smtp_password: legacy.smtp_password,
        }),
        webhook: None,
    });
    let mut jobs = IndexMap::new();
    for (i, job) in legacy.jobs.into_iter().enumerate() {
        let path = |field: &str| vec!["jobs".to_owned(), i.to_string(), field.to_owned()];
        let mut checks = |list: Option<Vec<LegacyCheck>>, field: &str| -> Option<Vec<CheckSpec>> {
            let list = list?;
            let mut out = Vec::new();
            for (n, check) in list.into_iter().enumerate() {
                let here = || {
                    let mut p = path(field);
                    p.push(n.to_string());
                    p
                };
                match convert_check(&check) {
                    Ok(c) => out.push(c),
                    Err(message) => errors.push(
                        Diagnostic::error("exe::config::legacy_check", message)
                            .at(at(&here(), false))
                            .help("legacy checks: check_file_exists {path}, check_no_ora_errors {log_file}, check_no_ora_or_sp2_errors {log_file}"),
                    ),
                }
            }
            Some(out)
        };
        let pre_checks = checks(job.pre_checks, "pre_checks");
        let post_checks = checks(job.post_checks, "post_checks");
        let retry = RetrySpec {
            max: job.max_retries,
            delay: job.retry_delay,
            backoff: job.retry_backoff,
            jitter: job.retry_jitter,
            max_time: job.max_retry_time,
            on_exit_codes: job.retry_on_exit_codes,
            on_status: job.retry_on_status.map(|statuses| {
                let mut out = Vec::new();
                for s in statuses.iter().filter_map(|s| legacy_status(s)) {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            }),
        };
        let spec = JobSpec {
            command: job.command,
            description: job.description,
            needs: job.dependencies,
            timeout: job.timeout,
            env: job.env_variables,
            retry: (retry != RetrySpec::default()).then_some(retry),
            pre_checks,
            post_checks,
            log_dir: job.log_dir,
            ..JobSpec::default()
        };
        jobs.insert(job.id, spec);
    }
    PipelineSpec {
        version: Some(super::FORMAT_VERSION),
        name: legacy.application_name.or(legacy.name),
        description: legacy.description,
        working_dir: legacy.working_dir,
        log_dir: legacy.log_dir,
        env: legacy.env_variables,
        inherit_env: Some(match legacy.inherit_shell_env {
            Some(InheritEnv::Default) => {
                InheritEnv::Only(LEGACY_DEFAULT_ENV.iter().map(|s| (*s).to_owned()).collect())
            }
            Some(other) => other,
            None => InheritEnv::All(true),
        }),
        defaults: Some(defaults),
        max_parallel: Some(max_parallel),
        notify,
        jobs: Some(jobs),
        security_policy: legacy.security_policy,
        ..PipelineSpec::default()
    }
}

/// An older tool's retry status in exe's terms. ERROR was its word for a failure of its
/// own; exe records those as FAILED.
fn legacy_status(status: &str) -> Option<RetryStatus> {
    match status.to_ascii_uppercase().as_str() {
        "TIMEOUT" => Some(RetryStatus::Timeout),
        "ERROR" | "FAILED" => Some(RetryStatus::Failed),
        _ => None,
    }
}

fn convert_check(check: &LegacyCheck) -> Result<CheckSpec, String> {
    let Some(key) = check_param(&check.name) else {
        return Err(format!("unknown legacy check `{}`", check.name));
    };
    let param = || -> Result<String, String> {
        match check.params.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
            None => Err(format!(
                "check `{}` needs the parameter `{key}`",
                check.name
            )),
        }
    };
    let patterns = |list: &[&str]| Some(list.iter().map(|p| (*p).to_owned()).collect());
    match check.name.as_str() {
        "check_file_exists" => Ok(CheckSpec::FileExists { path: param()? }),
        "check_no_ora_errors" => Ok(CheckSpec::LogClean {
            path: param()?,
            patterns: patterns(&["ORA-"]),
        }),
        // `check_no_ora_or_sp2_errors`, the only other name `check_param` knows.
        _ => Ok(CheckSpec::LogClean {
            path: param()?,
            patterns: patterns(&["ORA-", "SP2-"]),
        }),
    }
}

/// Where, in the legacy file, the value at an exe key path was written.
pub fn source_path(path: &[String], jobs: &HashMap<String, usize>) -> Option<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    match path {
        [jobs_key, id, rest @ ..] if jobs_key == "jobs" => {
            let index = jobs.get(id)?.to_string();
            let mut out = vec!["jobs".to_owned(), index];
            let field: Vec<String> = match rest
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                [] => vec![],
                ["needs", n @ ..] => [
                    vec!["dependencies".to_owned()],
                    n.iter().map(|p| (*p).to_owned()).collect(),
                ]
                .concat(),
                ["env", n @ ..] => [
                    vec!["env_variables".to_owned()],
                    n.iter().map(|p| (*p).to_owned()).collect(),
                ]
                .concat(),
                ["retry", "max"] => s(&["max_retries"]),
                ["retry", "max_time"] => s(&["max_retry_time"]),
                ["retry", f, ..] => vec![format!("retry_{f}")],
                [checks @ ("pre_checks" | "post_checks"), n, ..] => s(&[checks, n]),
                [f, ..] => s(&[f]),
            };
            out.extend(field);
            Some(out)
        }
        [first, rest @ ..] => {
            let top = match first.as_str() {
                "name" => "application_name",
                "env" => "env_variables",
                "inherit_env" => "inherit_shell_env",
                "max_parallel" => "max_workers",
                other => other,
            };
            Some([vec![top.to_owned()], rest.to_vec()].concat())
        }
        [] => Some(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::source::{Format, parse};

    fn tree(json: &str) -> Node {
        parse(json, Format::Json).unwrap()
    }

    /// The codes and messages of converting `json`, errors or not, and the text each
    /// diagnostic points at.
    fn diagnostics(json: &str) -> Vec<(String, String, String)> {
        let source = Arc::new(SourceFile {
            path: PathBuf::from("old.json"),
            text: json.to_owned(),
            format: Format::Json,
        });
        let found = match convert(&tree(json), &source) {
            Ok((_, _, warnings)) => warnings,
            Err(all) => all,
        };
        found
            .into_iter()
            .filter(|d| d.code != "exe::config::legacy_format")
            .map(|d| {
                let text = match &d.at {
                    Some(At::Span { span, .. }) => json[span.clone()].to_owned(),
                    _ => String::new(),
                };
                (d.code.to_owned(), d.message.clone(), text)
            })
            .collect()
    }

    #[test]
    fn a_jobs_array_or_an_application_name_is_legacy_a_jobs_map_is_not() {
        for (json, legacy) in [
            (r#"{"jobs": [{"id": "a"}]}"#, true),
            (r#"{"application_name": "x", "jobs": [{"ID": "a"}]}"#, true),
            (r#"{"jobs": [{"command": "true"}]}"#, true),
            (r#"{"application_name": "x", "jobs": []}"#, true),
            (r#"{"application_name": "x"}"#, true),
            (r#"{"jobs": {"a": {"command": "true"}}}"#, false),
            (r#"{"application_name": "x", "jobs": {}}"#, false),
            (r#"{"name": "x"}"#, false),
        ] {
            assert_eq!(is_legacy(&tree(json)), legacy, "{json}");
        }
    }

    #[test]
    fn every_job_without_an_id_is_named_at_its_place() {
        let json =
            r#"{"application_name": "x", "jobs": [{"ID": "a"}, {"id": "b"}, {"command": "true"}]}"#;
        let found = diagnostics(json);
        let (code, message, text) = &found[0];
        assert_eq!(
            (code.as_str(), message.as_str(), text.as_str()),
            (
                "exe::config::legacy_unknown_key",
                "unknown key `ID`, ignored",
                "\"ID\""
            )
        );
        let missing: Vec<(&str, &str)> = found[1..]
            .iter()
            .map(|(code, message, text)| {
                assert_eq!(code, "exe::config::missing_key");
                (message.as_str(), text.as_str())
            })
            .collect();
        assert_eq!(
            missing,
            [
                ("missing key `id` in `jobs.0`", r#"{"ID": "a"}"#),
                ("missing key `id` in `jobs.2`", r#"{"command": "true"}"#)
            ]
        );
    }

    #[test]
    fn unknown_check_keys_and_parameters_are_warnings_at_the_key() {
        let json = r#"{"jobs": [{"id": "a", "pre_checks": [{"name": "check_file_exists", "_note": 1, "params": {"path": "p", "mode": 1}}],
            "post_checks": [{"name": "check_no_ora_errors", "foo": 1, "params": {"log_file": "l", "patterns": ["X"], "_why": "", "ignore": []}},
                            {"name": "check_no_ora_or_sp2_errors", "params": {"log_fil": "l", "log_file": "l"}}]}]}"#;
        let found: Vec<(String, String)> = diagnostics(json)
            .into_iter()
            .map(|(code, message, text)| {
                assert_eq!(code, "exe::config::legacy_unknown_key");
                (message, text)
            })
            .collect();
        let expected = [
            ("unknown key `mode`, ignored", "\"mode\""),
            ("unknown key `foo`, ignored", "\"foo\""),
            ("unknown key `patterns`, ignored", "\"patterns\""),
            ("unknown key `ignore`, ignored", "\"ignore\""),
            ("unknown key `log_fil`, ignored", "\"log_fil\""),
        ];
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|(m, t)| (m.as_str(), t.as_str()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_parameters_of_an_unknown_check_are_not_judged() {
        let json = r#"{"jobs": [{"id": "a", "pre_checks": [{"name": "check_disk", "params": {"free": 1}}]}]}"#;
        let codes: Vec<String> = diagnostics(json).into_iter().map(|d| d.0).collect();
        assert_eq!(codes, ["exe::config::legacy_check"]);
    }
}
