//! `exe plan --format json`: one stable document for scripts.
//!
//! Keys are only ever added, never renamed or removed (`format_version` changes if that
//! must happen). Durations are seconds as numbers, layers are 1-based like the text, and
//! every text that could hold a secret is masked.

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::fingerprint;
use crate::model::Check;
use crate::plan::{Plan, Step, View, explain, shown_env, tidy_path};
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
    write(plan, view, pipeline, None)
}

/// The definition a run records, and a resume compares (see `resume::changes`): the plan
/// as [`render`] writes it, without what depends on how the file was named (its path, a
/// relative `working_dir`) and without any text that could hold a secret, with every
/// other resolved setting that decides what a job does. The command (rendered with the
/// fingerprint's stand-ins for `{{ run.id }}` and `{{ attempt }}`) and the checks are
/// recorded as hashes of their real text, the environment the pipeline sets as a hash of
/// each value: no text is masked, so the caller's secrets cannot change what is compared.
pub fn definition(plan: &Plan<'_>, view: &View<'_>) -> String {
    let p = plan.pipeline;
    // The folder itself, however it was reached (`./p.toml`, `$PWD/p.toml`, `../p.toml`).
    let working_dir = std::fs::canonicalize(&p.working_dir)
        .or_else(|_| std::path::absolute(&p.working_dir))
        .unwrap_or_else(|_| p.working_dir.clone());
    // The environment every job gets from the pipeline: what its `env` sets, and `--env`.
    let set = p.env.iter().filter(|(name, _)| p.own_env.contains(name));
    let pipeline = json!({
        "name": p.name,
        "working_dir_canonical": tidy_path(&working_dir),
        "max_parallel": plan.max_parallel,
        "continue_on_error": p.continue_on_error,
        "inherit_env": p.inherit_env,
        "set_env_hashes": env_hashes(set.chain(&p.env_overrides)),
    });
    // A check's path is kept relative to the working folder, whether it was written
    // relative (so it starts with the folder as given), or absolute by the folder's path
    // as given or as resolved.
    let folders = [
        p.working_dir.clone(),
        std::path::absolute(&p.working_dir).unwrap_or_else(|_| p.working_dir.clone()),
        working_dir,
    ];
    write(plan, view, pipeline, Some(&folders))
}

fn write(
    plan: &Plan<'_>,
    view: &View<'_>,
    pipeline: Value,
    definition: Option<&[PathBuf]>,
) -> String {
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
    // The definition goes into the history with every run: without the indentation, a
    // 2,000-job plan is 0.9 MB instead of 1.4 MB (and as many fewer pages written).
    let mut text = if definition.is_some() {
        serde_json::to_string(&doc)
    } else {
        serde_json::to_string_pretty(&doc)
    }
    .expect("a plan always serializes");
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
    /// For [`definition`]: each job with what it adds, its checks' paths relative to the
    /// first of these folders they are in.
    definition: Option<&'a [PathBuf]>,
}

impl Serialize for Jobs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (plan, view) = (self.plan, self.view);
        serializer.collect_seq(plan.steps.iter().map(|s| {
            let mut job = job(plan, s, view, self.definition.is_none());
            if let Some(folders) = self.definition {
                job.extend(defined(plan, s, folders));
            }
            Value::Object(job)
        }))
    }
}

/// Each variable's name with the short hash of its value.
fn env_hashes<'e>(env: impl Iterator<Item = &'e (String, String)>) -> Map<String, Value> {
    let mut hashes: Vec<(&str, String)> = env
        .map(|(name, value)| {
            let hash = fingerprint::short(&fingerprint::env_value_hash(name, value));
            (name.as_str(), hash)
        })
        .collect();
    // By name, the last of equal names winning (`--env` over the file).
    hashes.sort_by_key(|(name, _)| *name);
    hashes
        .into_iter()
        .map(|(name, hash)| (name.to_owned(), Value::String(hash)))
        .collect()
}

/// What [`definition`] adds to a job.
fn defined(plan: &Plan<'_>, step: &Step, folders: &[PathBuf]) -> Map<String, Value> {
    let job = plan.job(step);
    let checks = |list: &[Check]| -> String {
        let list: Vec<Value> = list.iter().map(|c| check(c, folders)).collect();
        fingerprint::short(&fingerprint::text_hash(&Value::Array(list).to_string()))
    };
    let command = fingerprint::short(&fingerprint::command_hash(job));
    let mut out = Map::new();
    out.insert("command_hash".into(), json!(command));
    out.insert("when".into(), json!(job.enabled));
    out.insert(
        "timeout_grace_seconds".into(),
        json!(job.timeout_grace.as_secs_f64()),
    );
    // A variable `--env` sets too is the pipeline's: the job gets that value, not its own.
    let overridden = |name: &str| plan.pipeline.env_overrides.iter().any(|(k, _)| k == name);
    let own = job.env.iter().filter(|(name, _)| !overridden(name));
    out.insert("set_env_hashes".into(), Value::Object(env_hashes(own)));
    out.insert("pre_checks_hash".into(), json!(checks(&job.pre_checks)));
    out.insert("post_checks_hash".into(), json!(checks(&job.post_checks)));
    out.insert("inputs".into(), json!(job.inputs));
    out.insert("outputs".into(), json!(job.outputs));
    out
}

/// A check as the file writes it, its path relative to the working folder again.
fn check(check: &Check, folders: &[PathBuf]) -> Value {
    let relative = |path: &Path| -> String {
        // An empty folder (`p.toml`'s) is a prefix of every path, absolute ones too.
        let inside = (folders.iter())
            .find_map(|f| path.strip_prefix(f).ok().filter(|rest| rest.is_relative()));
        inside.unwrap_or(path).display().to_string()
    };
    match check {
        Check::FileExists(path) => json!({ "check": "file_exists", "path": relative(path) }),
        Check::FileNotEmpty(path) => json!({ "check": "file_not_empty", "path": relative(path) }),
        Check::LogClean { path, patterns } => json!({
            "check": "log_clean",
            "path": relative(Path::new(path)),
            "patterns": patterns.iter().map(regex::Regex::as_str).collect::<Vec<_>>(),
        }),
        Check::Command(run) => json!({ "check": "command", "run": run }),
    }
}

/// A job as `exe plan` shows it; without its command and check counts in a definition,
/// which records hashes instead (see [`defined`]).
fn job(plan: &Plan<'_>, step: &Step, view: &View<'_>, texts: bool) -> Map<String, Value> {
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
    if texts {
        out.insert(
            "command".into(),
            json!(view.masker.mask(job.command.display())),
        );
    }
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
    if texts {
        out.insert(
            "checks".into(),
            json!({ "pre": job.pre_checks.len(), "post": job.post_checks.len() }),
        );
    }
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
    use crate::secrets::Masker;
    use crate::selection::Disposition;
    use crate::validate::{Options, from_toml};

    fn recorded_with(text: &str, options: &Options) -> String {
        let pipeline = from_toml(text, options);
        let view = View {
            masker: &Masker::default(),
            show_env: false,
            explanations: &[],
            color: false,
        };
        let all_run = vec![Disposition::Run; pipeline.jobs.len()];
        definition(&Plan::new(&pipeline, &all_run, 1), &view)
    }

    fn recorded(text: &str) -> String {
        recorded_with(text, &Options::default())
    }

    #[test]
    fn a_definition_holds_what_decides_a_job_and_no_secret() {
        let job = |token: &str, when: bool| {
            format!(
                "[jobs.a]\ncommand = \"deploy --token {token}\"\nwhen = \"{when}\"\ninputs = [\"src/*\"]\n\
                 post_checks = [{{ check = \"command\", run = \"test {token}\" }}]\n\
                 [jobs.a.env]\nAPI_TOKEN = \"{token}\"\n"
            )
        };
        // Short, and in a command: no masker would catch it.
        let text = recorded(&job("pw1", true));
        assert!(!text.contains("pw1"), "{text}");
        assert!(!text.contains("deploy"), "no command text: {text}");
        assert!(!text.contains("test-pipeline.toml"), "no file path: {text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let a = &doc["jobs"][0];
        assert_eq!(a["when"], true);
        assert_eq!(a["inputs"], json!(["src/*"]));
        assert!(a["set_env_hashes"]["API_TOKEN"].is_string());
        assert!(
            a.get("checks").is_none(),
            "counted by nothing but the hashes"
        );
        let changed = |other: &str| {
            let doc: Value = serde_json::from_str(&recorded(other)).unwrap();
            let b = &doc["jobs"][0];
            ["command_hash", "post_checks_hash", "set_env_hashes"]
                .into_iter()
                .filter(|key| a[*key] != b[*key])
                .collect::<Vec<_>>()
        };
        assert_eq!(
            changed(&job("pw2", true)),
            ["command_hash", "post_checks_hash", "set_env_hashes"],
            "a secret's change shows"
        );
        assert_ne!(text, recorded(&job("pw1", false)));
    }

    #[test]
    fn a_command_is_recorded_as_rendered_for_a_run() {
        let job = |target: &str| {
            recorded(&format!(
                "vars = {{ target = \"{target}\" }}\n[jobs.a]\n\
                 command = \"echo {{{{ vars.target }}}} {{{{ attempt }}}} {{{{ run.id }}}}\"\n"
            ))
        };
        assert_ne!(job("staging"), job("production"));
        assert_eq!(job("staging"), job("staging"));
    }

    #[test]
    fn the_environment_is_what_the_pipeline_sets_not_what_it_inherits() {
        let options = |shell: &[(&str, &str)]| Options {
            process_env: shell
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Options::default()
        };
        let text = "inherit_env = \"default\"\nenv = { PATH = \"/opt/bin:${PATH}\" }\n\
                    [jobs.a]\ncommand = \"true\"\n";
        let doc = |shell: &[(&str, &str)]| -> Value {
            serde_json::from_str(&recorded_with(text, &options(shell))).unwrap()
        };
        let plain = doc(&[("PATH", "/bin"), ("HOME", "/h")]);
        assert_eq!(plain["pipeline"]["inherit_env"], "default");
        let set = &plain["pipeline"]["set_env_hashes"];
        assert_eq!(
            set.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["PATH"]
        );
        assert_eq!(plain["jobs"][0]["set_env_hashes"], json!({}));
        // Only inherited: not compared. Named by the pipeline: compared by its value.
        let more = doc(&[
            ("PATH", "/bin"),
            ("HOME", "/other"),
            ("LC_TERMINAL", "iTerm2"),
        ]);
        assert_eq!(more, plain);
        let moved = doc(&[("PATH", "/usr/bin"), ("HOME", "/h")]);
        assert_ne!(moved["pipeline"]["set_env_hashes"], *set);
    }

    #[test]
    fn a_jobs_variable_that_env_overrides_is_the_pipelines() {
        let with_env = Options {
            cli_env: vec![("MODE".to_owned(), "cli".to_owned())],
            ..Options::default()
        };
        let job = |mode: &str| -> Value {
            let text =
                format!("[jobs.a]\ncommand = \"true\"\nenv = {{ MODE = \"{mode}\", X = \"1\" }}\n");
            serde_json::from_str(&recorded_with(&text, &with_env)).unwrap()
        };
        let (fast, slow) = (job("fast"), job("slow"));
        assert_eq!(fast, slow, "the job gets MODE=cli either way");
        let names = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&fast["jobs"][0]["set_env_hashes"]), ["X"]);
        assert_eq!(names(&fast["pipeline"]["set_env_hashes"]), ["MODE"]);
    }

    #[test]
    fn a_check_path_is_relative_to_the_working_folder_however_it_is_written() {
        // The folder as written (`src/..`) is not the folder's path (the manifest's).
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let hashes = |path: &str| {
            let text = format!(
                "working_dir = \"src/..\"\n[jobs.a]\ncommand = \"true\"\n\
                 post_checks = [{{ check = \"file_exists\", path = \"{path}\" }}]\n"
            );
            let doc: Value = serde_json::from_str(&recorded(&text)).unwrap();
            doc["jobs"][0]["post_checks_hash"].clone()
        };
        let absolute = here.join("out.txt");
        assert_eq!(hashes("out.txt"), hashes(&absolute.display().to_string()));
        assert_ne!(hashes("out.txt"), hashes("other.txt"));
    }
}
