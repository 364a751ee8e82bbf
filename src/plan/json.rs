//! `exe plan --format json`: one stable document for scripts.
//!
//! Keys are only ever added, never renamed or removed (`format_version` changes if that
//! must happen). Durations are seconds as numbers, layers are 1-based like the text, and
//! every text that could hold a secret is masked.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::plan::{Plan, Step, View, explain, shown_env, tidy_path};
use crate::spec::RetryStatus;

/// The version of this document's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Renders the plan as pretty-printed JSON, with a final newline.
pub fn render(plan: &Plan<'_>, view: &View<'_>) -> String {
    let p = plan.pipeline;
    let ids =
        |list: &[usize]| -> Vec<&str> { list.iter().map(|&j| p.jobs[j].id.0.as_str()).collect() };
    let doc = Document {
        format_version: FORMAT_VERSION,
        explain: (!view.explanations.is_empty())
            .then(|| view.explanations.iter().map(explain::to_json).collect()),
        pipeline: json!({
            "name": p.name,
            "file": p.file.display().to_string(),
            "working_dir": tidy_path(&p.working_dir),
            "max_parallel": plan.max_parallel,
            "continue_on_error": p.continue_on_error,
        }),
        jobs: Jobs { plan, view },
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
}

impl Serialize for Jobs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (plan, view) = (self.plan, self.view);
        serializer.collect_seq(plan.steps.iter().map(|s| job(plan, s, view)))
    }
}

fn job(plan: &Plan<'_>, step: &Step, view: &View<'_>) -> Value {
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
    Value::Object(out)
}
