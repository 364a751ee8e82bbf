//! `exe plan --format json`: one stable document for scripts.
//!
//! Keys are only ever added, never renamed or removed (`format_version` changes if that
//! must happen). Durations are seconds as numbers, layers are 1-based like the text, and
//! every text that could hold a secret is masked.

use serde_json::{Map, Value, json};

use crate::plan::{Plan, Step, View, explain, shown_env, tidy_path};
use crate::spec::RetryStatus;

/// The version of this document's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Renders the plan as pretty-printed JSON, with a final newline.
pub fn render(plan: &Plan<'_>, view: &View<'_>) -> String {
    let p = plan.pipeline;
    let jobs: Vec<Value> = plan.steps.iter().map(|s| job(plan, s, view)).collect();
    let ids =
        |list: &[usize]| -> Vec<&str> { list.iter().map(|&j| p.jobs[j].id.0.as_str()).collect() };
    let mut doc = Map::new();
    doc.insert("format_version".into(), json!(FORMAT_VERSION));
    if !view.explanations.is_empty() {
        let explained: Vec<Value> = view.explanations.iter().map(explain::to_json).collect();
        doc.insert("explain".into(), Value::Array(explained));
    }
    doc.insert(
        "pipeline".into(),
        json!({
            "name": p.name,
            "file": p.file.display().to_string(),
            "working_dir": tidy_path(&p.working_dir),
            "max_parallel": plan.max_parallel,
            "continue_on_error": p.continue_on_error,
        }),
    );
    doc.insert("jobs".into(), Value::Array(jobs));
    doc.insert("critical_path".into(), json!(ids(&plan.critical_path)));
    doc.insert(
        "summary".into(),
        json!({ "to_run": plan.to_run, "skipped": plan.skipped }),
    );
    let mut text =
        serde_json::to_string_pretty(&Value::Object(doc)).expect("a JSON value always serializes");
    text.push('\n');
    text
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
