//! `exe plan --format json`: one stable document for scripts.
//!
//! Keys are only ever added, never renamed or removed (`format_version` changes if that
//! must happen). Durations are seconds as numbers, layers are 1-based like the text, and
//! every text that could hold a secret is masked.

use std::path::Path;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::fingerprint;
use crate::model::Check;
use crate::plan::{Plan, Step, View, explain, shown_env, tidy_path};
use crate::secrets::Masker;
use crate::spec::RetryStatus;

/// The version of this document's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Renders the plan as pretty-printed JSON, with a final newline.
pub fn render(plan: &Plan<'_>, view: &View<'_>) -> String {
    let p = plan.pipeline;
    let pipeline = json!({
        "name": p.name,
        "file": p.file.display().to_string(),
        "working_dir": tidy_path(&p.working_dir),
        "max_parallel": plan.max_parallel,
        "continue_on_error": p.continue_on_error,
    });
    write(plan, view, pipeline, false)
}

/// The definition a run records, and a resume compares (see `resume::changes`): the plan
/// as [`render`] writes it, without what depends on how the file was named (its path, a
/// relative `working_dir`), and with every other resolved setting that decides what a job
/// does: `when`, its grace period, its environment (each value as a hash: no value, secret
/// or not, is stored), its checks (secrets masked), inputs and outputs.
pub fn definition(plan: &Plan<'_>, view: &View<'_>) -> String {
    let p = plan.pipeline;
    // The folder itself, however it was reached (`./p.toml`, `$PWD/p.toml`, `../p.toml`).
    let working_dir = std::fs::canonicalize(&p.working_dir)
        .or_else(|_| std::path::absolute(&p.working_dir))
        .unwrap_or_else(|_| p.working_dir.clone());
    let pipeline = json!({
        "name": p.name,
        "working_dir_canonical": tidy_path(&working_dir),
        "max_parallel": plan.max_parallel,
        "continue_on_error": p.continue_on_error,
    });
    write(plan, view, pipeline, true)
}

fn write(plan: &Plan<'_>, view: &View<'_>, pipeline: Value, definition: bool) -> String {
    let p = plan.pipeline;
    let ids =
        |list: &[usize]| -> Vec<&str> { list.iter().map(|&j| p.jobs[j].id.0.as_str()).collect() };
    let doc = Document {
        format_version: FORMAT_VERSION,
        explain: (!view.explanations.is_empty())
            .then(|| view.explanations.iter().map(explain::to_json).collect()),
        pipeline,
        jobs: Jobs {
            plan,
            view,
            definition,
        },
        critical_path: ids(&plan.critical_path),
        summary: json!({ "to_run": plan.to_run, "skipped": plan.skipped }),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("a plan always serializes");
    text.push('\n');
    text
}

/// The document, in the order of its keys.
#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Vec<Value>>,
    pipeline: Value,
    jobs: Jobs<'a>,
    critical_path: Vec<&'a str>,
    summary: Value,
}

/// The jobs, each made into JSON only while it is written: a tree of every job at once
/// was most of `exe apply`'s peak memory on a 2,000-job pipeline.
struct Jobs<'a> {
    plan: &'a Plan<'a>,
    view: &'a View<'a>,
    /// Each job with what [`definition`] adds.
    definition: bool,
}

impl Serialize for Jobs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (plan, view) = (self.plan, self.view);
        serializer.collect_seq(plan.steps.iter().map(|s| {
            let mut job = job(plan, s, view);
            if self.definition {
                job.extend(defined(plan, s, view));
            }
            Value::Object(job)
        }))
    }
}

/// What [`definition`] adds to a job.
fn defined(plan: &Plan<'_>, step: &Step, view: &View<'_>) -> Map<String, Value> {
    let p = plan.pipeline;
    let job = plan.job(step);
    let env: Map<String, Value> = fingerprint::env_manifest(p, job)
        .entries()
        .map(|(name, hash)| {
            let mut first = [0; 8];
            first.copy_from_slice(&hash[..8]);
            let short = format!("{:016x}", u64::from_be_bytes(first));
            (name.to_owned(), Value::String(short))
        })
        .collect();
    let checks = |list: &[Check]| -> Vec<Value> {
        list.iter()
            .map(|c| check(c, &p.working_dir, view.masker))
            .collect()
    };
    let mut out = Map::new();
    out.insert("when".into(), json!(job.enabled));
    out.insert(
        "timeout_grace_seconds".into(),
        json!(job.timeout_grace.as_secs_f64()),
    );
    out.insert("env_hashes".into(), Value::Object(env));
    out.insert("pre_checks".into(), json!(checks(&job.pre_checks)));
    out.insert("post_checks".into(), json!(checks(&job.post_checks)));
    out.insert("inputs".into(), json!(job.inputs));
    out.insert("outputs".into(), json!(job.outputs));
    out
}

/// A check as the file writes it, its path relative to the working directory again.
fn check(check: &Check, working_dir: &Path, masker: &Masker) -> Value {
    let relative = |path: &Path| -> String {
        let path = path.strip_prefix(working_dir).unwrap_or(path);
        masker.mask(&path.display().to_string()).into_owned()
    };
    match check {
        Check::FileExists(path) => json!({ "check": "file_exists", "path": relative(path) }),
        Check::FileNotEmpty(path) => json!({ "check": "file_not_empty", "path": relative(path) }),
        Check::LogClean { path, patterns } => json!({
            "check": "log_clean",
            "path": relative(Path::new(path)),
            "patterns": patterns.iter().map(regex::Regex::as_str).collect::<Vec<_>>(),
        }),
        Check::Command(run) => json!({ "check": "command", "run": masker.mask(run) }),
    }
}

fn job(plan: &Plan<'_>, step: &Step, view: &View<'_>) -> Map<String, Value> {
    let job = plan.job(step);
    let r = &job.retry;
    let resources = job.resources;
    let mut out = Map::new();
    out.insert("id".into(), json!(job.id.0));
    out.insert("layer".into(), json!(step.layer + 1));
    out.insert(
        "decision".into(),
        json!(if step.decision.runs() { "run" } else { "skip" }),
    );
    out.insert("reason".into(), json!(step.decision.reason()));
    // Only for jobs it was decided for: the plan a run records (and digests, to compare on
    // `--resume`) stays as it was before up-to-date decisions existed.
    if let Some(changes) = &step.changes {
        out.insert("changes".into(), json!(changes));
    }
    out.insert("needs".into(), json!(plan.needs(job)));
    out.insert(
        "command".into(),
        json!(view.masker.mask(job.command.display())),
    );
    out.insert(
        "timeout_seconds".into(),
        json!(job.timeout.map(|t| t.as_secs_f64())),
    );
    out.insert(
        "retry".into(),
        json!({
            "max": r.max,
            "delay_seconds": r.delay.as_secs_f64(),
            "backoff": r.backoff,
            "jitter": r.jitter,
            "max_time_seconds": r.max_time.map(|t| t.as_secs_f64()),
            "on_exit_codes": r.on_exit_codes,
            "on_status": r.on_status.iter().map(|s| match s {
                RetryStatus::Failed => "FAILED",
                RetryStatus::Timeout => "TIMEOUT",
            }).collect::<Vec<_>>(),
        }),
    );
    let set = resources.cpu > 0.0 || resources.memory > 0;
    out.insert(
        "resources".into(),
        if set {
            json!({ "cpu": resources.cpu, "memory_bytes": resources.memory })
        } else {
            Value::Null
        },
    );
    out.insert(
        "checks".into(),
        json!({ "pre": job.pre_checks.len(), "post": job.post_checks.len() }),
    );
    out.insert("priority".into(), json!(job.priority));
    if view.show_env && step.decision.runs() {
        let env: Map<String, Value> = shown_env(plan.pipeline, job, view.masker)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        out.insert("env".into(), Value::Object(env));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::Disposition;
    use crate::validate::{Options, from_toml};

    fn recorded(text: &str) -> String {
        let options = Options::default();
        let pipeline = from_toml(text, &options);
        let env = pipeline.jobs.iter().flat_map(|j| &j.env);
        let masker = Masker::new(env.map(|(k, v)| (k, v)));
        let view = View {
            masker: &masker,
            show_env: false,
            explanations: &[],
            color: false,
        };
        let all_run = vec![Disposition::Run; pipeline.jobs.len()];
        definition(&Plan::new(&pipeline, &all_run, 1), &view)
    }

    #[test]
    fn a_definition_holds_what_decides_a_job_and_no_secret() {
        let job = |token: &str, when: bool| {
            format!(
                "[jobs.a]\ncommand = \"deploy\"\nwhen = \"{when}\"\ninputs = [\"src/*\"]\n\
                 post_checks = [{{ check = \"file_exists\", path = \"out\" }}]\n\
                 [jobs.a.env]\nAPI_TOKEN = \"{token}\"\n"
            )
        };
        let text = recorded(&job("s3cr3t-value", true));
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("test-pipeline.toml"), "no file path: {text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let a = &doc["jobs"][0];
        assert_eq!(a["when"], true);
        assert_eq!(a["inputs"], json!(["src/*"]));
        assert_eq!(
            a["post_checks"],
            json!([{ "check": "file_exists", "path": "out" }]),
            "relative to the working directory, however it was named"
        );
        assert!(a["env_hashes"]["API_TOKEN"].is_string());
        assert_ne!(
            text,
            recorded(&job("another-value", true)),
            "a secret's change shows"
        );
        assert_ne!(text, recorded(&job("s3cr3t-value", false)));
    }
}
