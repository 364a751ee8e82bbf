//! From the merged raw spec to a [`Pipeline`] that cannot be invalid.
//!
//! One pass finds every problem and reports each at the span it was written at: ids, missing
//! and empty commands, templates (`extends`, `with`, minijinja), matrix expansion, `needs`,
//! dependency cycles, numeric ranges, regexes, `working_dir`, and the security policy.
//! Job fields are layered here: `defaults` < templates (in `extends` order) < the job.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::diagnostic::{At, Diagnostic, Severity, did_you_mean};
use crate::job_ref::JobRef;
use indexmap::IndexMap;

use crate::graph::Dag;
use crate::load::{Document, dotted};
use crate::model::{Check, Job, JobId, Notify, Pipeline, Resources, RetryPolicy};
use crate::security;
use crate::spec::{
    CheckSpec, InheritEnv, JobSpec, PipelineSpec, RetrySpec, RetryStatus, SecurityPolicy, When,
};
use crate::template::{self, Context as JValue, Text, context, to_value};

/// exe's "default" `inherit_env` whitelist; `LC_*` matches every locale variable.
pub const DEFAULT_INHERITED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TZ", "TMPDIR",
];
/// The grace period between TERM and KILL when a job does not set one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The pipeline's jobs may depend on at most this many jobs in all (two 10,000-job
/// matrices, one needing the other, would make 100,000,000).
const MAX_NEEDS: usize = 1_000_000;

/// At most this many dependency cycles are reported.
const MAX_CYCLES: usize = 20;

/// A matrix job may expand into at most this many jobs.
const MAX_MATRIX: usize = 10_000;

/// What validation needs from the outside world.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The environment exe was started with.
    pub process_env: Vec<(String, String)>,
    /// `--env K=V` values.
    pub cli_env: Vec<(String, String)>,
}

/// Validates a document. Returns the pipeline when there are no errors, and every
/// diagnostic (warnings too) either way.
pub fn validate(doc: &Document, options: &Options) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let mut v = Validator {
        doc,
        diags: Vec::new(),
    };
    let pipeline = v.pipeline(options);
    let failed = v.diags.iter().any(Diagnostic::is_error);
    (pipeline.filter(|_| !failed), v.diags)
}

struct Validator<'d> {
    doc: &'d Document,
    diags: Vec<Diagnostic>,
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// One job entry before its fields are turned into a [`Job`].
#[derive(Clone)]
struct Draft<'d> {
    key: &'d str,
    spec: Fields<'d>,
    /// The templates the job extends, base-most first.
    chain: Vec<String>,
    matrix: Vec<(String, serde_json::Value)>,
}

impl Draft<'_> {
    /// Where the job's fields may have been written, highest precedence first.
    fn origins(&self) -> Vec<Vec<String>> {
        let mut origins = vec![path(&["jobs", self.key])];
        origins.extend(self.chain.iter().rev().map(|t| path(&["templates", t])));
        origins.push(path(&["defaults"]));
        origins
    }
}

/// A job's fields: as written when neither `defaults` nor a template adds any (most jobs:
/// no copy of them is made), else merged (shared by a matrix's expansions).
#[derive(Clone)]
enum Fields<'d> {
    Written(&'d JobSpec),
    Merged(Rc<JobSpec>),
}

impl std::ops::Deref for Fields<'_> {
    type Target = JobSpec;

    fn deref(&self) -> &JobSpec {
        match self {
            Fields::Written(spec) => spec,
            Fields::Merged(spec) => spec,
        }
    }
}

impl<'d> Validator<'d> {
    fn spec(&self) -> &'d PipelineSpec {
        &self.doc.spec
    }

    fn at(&self, paths: &[Vec<String>]) -> Option<At> {
        self.doc
            .provenance
            .locate(paths)
            .or_else(|| Some(At::File(self.doc.main.path.clone())))
    }

    fn at_key(&self, paths: &[Vec<String>]) -> Option<At> {
        self.doc
            .provenance
            .locate_key(paths)
            .or_else(|| Some(At::File(self.doc.main.path.clone())))
    }

    fn error(&mut self, code: &'static str, message: String, at: Option<At>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, message).at(at));
        self.diags.last_mut().expect("just pushed")
    }

    fn warn(&mut self, code: &'static str, message: String, at: Option<At>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(code, message).at(at));
        self.diags.last_mut().expect("just pushed")
    }

    #[allow(clippy::too_many_lines)]
    fn pipeline(&mut self, options: &Options) -> Option<Pipeline> {
        let spec = self.spec();
        if let Some(version) = spec.version
            && version != crate::spec::FORMAT_VERSION
        {
            let at = self.at(&[path(&["version"])]);
            self.error(
                "exe::config::unsupported_version",
                format!("format version {version} is not supported"),
                at,
            )
            .help = Some(format!(
                "this exe reads version {}",
                crate::spec::FORMAT_VERSION
            ));
        }
        self.check_profiles();
        let main_dir = match self.doc.main.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = spec.name.clone().unwrap_or_else(|| {
            self.doc.main.path.file_stem().map_or_else(
                || "pipeline".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
        let working_dir = match &spec.working_dir {
            Some(dir) => {
                let base = self
                    .doc
                    .provenance
                    .base_dir(&path(&["working_dir"]))
                    .unwrap_or_else(|| main_dir.clone());
                let base = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base
                };
                // Without inner `.` parts: `working_dir = "."` is `.`, not `./.` (which every
                // log path shown would repeat).
                base.join(dir).components().collect()
            }
            None => main_dir.clone(),
        };
        if !working_dir.is_dir() {
            let at = if spec.working_dir.is_some() {
                self.at(&[path(&["working_dir"])])
            } else {
                None
            };
            let what = if working_dir.exists() {
                "is not a folder"
            } else {
                "does not exist"
            };
            self.error(
                "exe::config::working_dir_missing",
                format!("working_dir {} {what}", working_dir.display()),
                at,
            )
            .help = Some("relative paths are relative to the file that sets them; create the folder or fix the path".to_owned());
        }
        let log_dir = working_dir.join(spec.log_dir.as_deref().unwrap_or(".exe/logs"));
        self.check_log_dir(&log_dir, &[path(&["log_dir"])]);
        let max_parallel = spec.max_parallel.unwrap_or(1);
        if max_parallel == 0 {
            let at = self.at(&[path(&["max_parallel"])]);
            self.error(
                "exe::config::invalid_value",
                "`max_parallel` must be at least 1".to_owned(),
                at,
            );
        }
        let inherit = spec.inherit_env.as_ref().unwrap_or(&InheritEnv::All(true));
        let inherited = inherited(inherit, &options.process_env);
        // The caller's whole environment, shell state included, is not part of what the
        // pipeline says; fingerprints leave it out (names the pipeline sets are kept below).
        let mut ambient_env: BTreeSet<String> = if matches!(inherit, InheritEnv::All(true)) {
            inherited.iter().map(|(k, _)| k.clone()).collect()
        } else {
            BTreeSet::new()
        };
        let mut own_env = BTreeSet::new();
        let vars = to_value(&spec.vars.clone().unwrap_or_default());
        let pipeline_ctx =
            context! { name => name.clone(), file => self.doc.main.path.display().to_string() };
        let process_env: BTreeMap<&str, &str> = options
            .process_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The pipeline's own `env`, rendered with the caller's environment.
        let mut top_env: Vec<(String, String)> = Vec::new();
        let raw_top: BTreeMap<String, String> = spec
            .env
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let inherited_map: BTreeMap<String, String> = inherited.iter().cloned().collect();
        let resolved = self.resolve_env(&raw_top, &options.cli_env, &inherited_map, |_, key| {
            vec![path(&["env", key])]
        });
        for (key, value) in resolved {
            let here = vec![path(&["env", &key])];
            let rendered = self.render_str(&value, |_| here.clone(), || {
                context! { vars => vars.clone(), env => to_value(&process_env), pipeline => pipeline_ctx.clone() }
            });
            ambient_env.remove(&key);
            own_env.insert(key.clone());
            top_env.push((key, rendered));
        }
        let mut template_env: BTreeMap<String, String> = options
            .process_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        template_env.extend(top_env.iter().cloned());
        template_env.extend(options.cli_env.iter().cloned());
        let env_value = to_value(&template_env);
        let mut base_env: BTreeMap<String, String> = inherited.into_iter().collect();
        base_env.extend(top_env);
        let policy = spec.security_policy.unwrap_or_default();

        let drafts = self.drafts();
        let mut jobs = Vec::with_capacity(drafts.len());
        let mut rendered_needs = Vec::with_capacity(drafts.len());
        let ctx = JobContext {
            vars: &vars,
            env: &env_value,
            pipeline: &pipeline_ctx,
            base_env: &base_env,
            cli_env: &options.cli_env,
        };
        for draft in &drafts {
            let (job, needs) = self.job(draft, &ctx, &working_dir, &log_dir, policy);
            jobs.push(job);
            rendered_needs.push(needs);
        }
        let needs = self.needs(&drafts, &rendered_needs);
        let dag = match Dag::new(&needs) {
            Ok(dag) => Some(dag),
            Err(first) => {
                // Every cycle, not just the first: each found is cut (its jobs' needs among
                // themselves dropped) and the search goes on, up to MAX_CYCLES.
                let mut cut = needs.clone();
                let mut next = Some(first);
                let mut reported = 0;
                while let Some(cycle) = next.take() {
                    let names: Vec<&str> =
                        cycle.path.iter().map(|&i| jobs[i].id.0.as_str()).collect();
                    let mut chain = names.clone();
                    chain.push(names[0]);
                    let at = self.at(&self.field(&drafts[cycle.path[0]], &["needs"]));
                    self.error("exe::graph::cycle", format!("dependency cycle: {}", chain.join(" -> ")), at)
                        .help = Some("a job cannot depend on itself, directly or through other jobs; remove one of these needs".to_owned());
                    reported += 1;
                    if reported < MAX_CYCLES {
                        let on: HashSet<usize> = cycle.path.iter().copied().collect();
                        for &node in &cycle.path {
                            cut[node].retain(|need| !on.contains(need));
                        }
                        next = Dag::new(&cut).err();
                    }
                }
                None
            }
        };
        for (job, needs) in jobs.iter_mut().zip(needs) {
            job.needs = needs;
        }
        let notify = spec.notify.clone().unwrap_or_default();
        Some(Pipeline {
            name,
            description: spec.description.clone(),
            file: self.doc.main.path.clone(),
            working_dir,
            log_dir,
            max_parallel: max_parallel.max(1) as usize,
            continue_on_error: spec.continue_on_error.unwrap_or(false),
            security_policy: policy,
            notify: Notify {
                on_success: notify.on_success.unwrap_or(false),
                on_failure: notify.on_failure.unwrap_or(true),
                email: notify.email,
                webhook: notify.webhook.map(|w| w.url),
            },
            env: base_env.into_iter().collect(),
            ambient_env,
            own_env,
            inherit_env: inherit.clone(),
            env_overrides: options.cli_env.clone(),
            jobs,
            dag: dag?,
        })
    }

    fn check_profiles(&mut self) {
        let profiles: Vec<(String, PipelineSpec)> = self
            .spec()
            .profiles
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, profile) in profiles {
            for (key, set) in [
                ("include", profile.include.is_some()),
                ("profiles", profile.profiles.is_some()),
                ("version", profile.version.is_some()),
            ] {
                if set {
                    let at = self.at_key(&[path(&["profiles", &name, key])]);
                    self.error("exe::config::invalid_profile", format!("a profile cannot set `{key}`"), at)
                        .help = Some("profiles override top-level settings, jobs and templates; move this key to the top level".to_owned());
                }
            }
        }
    }

    /// Every job after `extends` and matrix expansion, in file order.
    fn drafts(&mut self) -> Vec<Draft<'d>> {
        let spec = self.spec();
        let no_templates = BTreeMap::new();
        let templates = spec.templates.as_ref().unwrap_or(&no_templates);
        let blank = JobSpec::default();
        let defaults = spec.defaults.as_ref().unwrap_or(&blank);
        let jobs = spec.jobs.as_ref();
        if jobs.is_none_or(IndexMap::is_empty) {
            self.warn(
                "exe::config::no_jobs",
                "the pipeline has no jobs".to_owned(),
                Some(At::File(self.doc.main.path.clone())),
            )
            .help = Some("add jobs under `jobs`; `exe init` writes an example".to_owned());
        }
        if let Some(notify) = &spec.notify
            && (notify.email.is_some() || notify.webhook.is_some())
        {
            // Silence would let a failed run go unnoticed by those who expect the mail (the
            // older tool's `email_address` becomes `notify.email`).
            let at = self.at_key(&[path(&["notify"])]);
            self.warn(
                "exe::config::notify_not_sent",
                "`notify` is set, but this version of exe sends no e-mail or webhook".to_owned(),
                at,
            )
            .help = Some(
                "the settings are checked and kept for when sending is implemented; until \
                 then, watch `exe apply`'s exit code or `exe runs --status failed`"
                    .to_owned(),
            );
        }
        let mut drafts = Vec::with_capacity(jobs.map_or(0, IndexMap::len));
        for (key, job) in jobs.into_iter().flatten() {
            if !JobId::is_valid(key) {
                let at = self.at_key(&[path(&["jobs", key])]);
                self.error(
                    "exe::config::invalid_id",
                    format!("invalid job id `{key}`"),
                    at,
                )
                .help = Some("job ids may contain letters, digits, `_`, `.` and `-`".to_owned());
            }
            let chain = self.extends_chain(
                key,
                job.extends
                    .as_ref()
                    .or(defaults.extends.as_ref())
                    .map(|e| e.0.clone())
                    .unwrap_or_default(),
                templates,
            );
            let spec = if chain.is_empty() && *defaults == blank {
                Fields::Written(job)
            } else {
                let mut merged = defaults.clone();
                for name in &chain {
                    merged = merge(merged, templates[name].clone());
                }
                Fields::Merged(Rc::new(merge(merged, job.clone())))
            };
            let draft = Draft {
                key,
                spec,
                chain,
                matrix: Vec::new(),
            };
            let combos = self.matrix(&draft, draft.spec.matrix.clone().unwrap_or_default());
            let longest = (combos.iter())
                .map(|m| {
                    if m.is_empty() {
                        key.len()
                    } else {
                        expanded_id(key, m).len()
                    }
                })
                .max()
                .unwrap_or(key.len());
            if longest > JobId::MAX_LEN {
                let at = self.at_key(&[path(&["jobs", key])]);
                let with_matrix = if longest > key.len() {
                    " with its matrix"
                } else {
                    ""
                };
                self.error(
                    "exe::config::invalid_id",
                    format!(
                        "the id of job `{key}` is {longest} bytes long{with_matrix}; at most {}",
                        JobId::MAX_LEN
                    ),
                    at,
                )
                .help = Some(
                    "it names the job's log file, and the file system allows 255 bytes; \
                     shorten the id (or the matrix keys and values)"
                        .to_owned(),
                );
            }
            for matrix in combos {
                drafts.push(Draft {
                    matrix,
                    ..draft.clone()
                });
            }
        }
        // A template no job reaches is checked too: its `extends` must name templates. Those
        // no other template extends go first, so a problem is reported from one chain only.
        let mut seen: HashSet<String> = drafts.iter().flat_map(|d| d.chain.clone()).collect();
        let extended: HashSet<&str> = (templates.values())
            .flat_map(|t| {
                t.extends
                    .iter()
                    .flat_map(|e| e.0.iter().map(String::as_str))
            })
            .collect();
        let (roots, rest): (Vec<&String>, Vec<&String>) = templates
            .keys()
            .partition(|name| !extended.contains(name.as_str()));
        for name in roots.into_iter().chain(rest) {
            if seen.insert(name.clone()) {
                seen.extend(self.extends_chain("", vec![name.clone()], templates));
            }
        }
        drafts
    }

    /// The templates a job extends, base-most first, each once; reports unknown names and cycles.
    fn extends_chain(
        &mut self,
        key: &str,
        names: Vec<String>,
        templates: &BTreeMap<String, JobSpec>,
    ) -> Vec<String> {
        let mut chain = Vec::new();
        // (template, its extends, next index) as an explicit stack: no recursion.
        let mut stack: Vec<(Option<String>, Vec<String>, usize)> = vec![(None, names, 0)];
        while let Some((name, list, next)) = stack.last_mut() {
            let Some(child) = list.get(*next).cloned() else {
                if let Some(name) = name.take()
                    && !chain.contains(&name)
                {
                    chain.push(name);
                }
                stack.pop();
                continue;
            };
            *next += 1;
            let owner = name.clone();
            let Some(template) = templates.get(&child) else {
                let from = owner.map_or_else(
                    || path(&["jobs", key, "extends"]),
                    |t| path(&["templates", &t, "extends"]),
                );
                let at = self.at(&[from]);
                let hint = did_you_mean(&child, templates.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "templates defined: {}",
                            if templates.is_empty() {
                                "none".to_owned()
                            } else {
                                templates.keys().cloned().collect::<Vec<_>>().join(", ")
                            }
                        )
                    });
                self.error(
                    "exe::config::unknown_template",
                    format!("unknown template `{child}`"),
                    at,
                )
                .help = Some(hint);
                continue;
            };
            if stack
                .iter()
                .any(|(n, _, _)| n.as_deref() == Some(child.as_str()))
            {
                let at = self.at(&[path(&["templates", &child, "extends"])]);
                self.error(
                    "exe::config::template_cycle",
                    format!("template `{child}` extends itself through its chain"),
                    at,
                );
                continue;
            }
            stack.push((
                Some(child),
                template
                    .extends
                    .as_ref()
                    .map(|e| e.0.clone())
                    .unwrap_or_default(),
                0,
            ));
        }
        chain
    }

    /// The combinations of a matrix, in key order; one empty combination without a matrix.
    fn matrix(
        &mut self,
        draft: &Draft<'_>,
        matrix: BTreeMap<String, Vec<serde_json::Value>>,
    ) -> Vec<Vec<(String, serde_json::Value)>> {
        let key = draft.key;
        let mut combos: Vec<Vec<(String, serde_json::Value)>> = vec![Vec::new()];
        // Every key is checked (all its errors at once), before any is expanded.
        let mut sound = true;
        for (name, values) in &matrix {
            let Some(problem) = id_problem(name, values) else {
                continue;
            };
            sound = false;
            let at = self.at(&self.field(draft, &["matrix", name]));
            self.error(
                "exe::config::invalid_matrix",
                format!("matrix key `{name}` of job `{key}`: {problem}"),
                at,
            )
            .help = Some(
                "keys and values become part of job ids and log file names: a key holds \
                 letters, digits, `_`, `.` and `-`; a value is listed once, without `/`, `,`, \
                 `=`, `[`, `]` or control characters (the command can map a value to other text)"
                    .to_owned(),
            );
        }
        if !sound {
            return Vec::new();
        }
        for (name, values) in matrix {
            if values.is_empty() {
                let at = self.at(&self.field(draft, &["matrix", &name]));
                self.error(
                    "exe::config::empty_matrix",
                    format!("matrix key `{name}` of job `{key}` has no values"),
                    at,
                );
                return Vec::new();
            }
            if combos.len().saturating_mul(values.len()) > MAX_MATRIX {
                let at = self.at(&self.field(draft, &["matrix"]));
                self.error(
                    "exe::config::matrix_too_large",
                    format!("the matrix of job `{key}` expands to more than {MAX_MATRIX} jobs"),
                    at,
                );
                return Vec::new();
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    let name = name.clone();
                    values
                        .iter()
                        .map(move |v| [c.clone(), vec![(name.clone(), v.clone())]].concat())
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        combos
    }

    /// Was this job's command written but left out as invalid (a bad value, or a key that
    /// is a misspelling of `command`)?
    fn command_was_invalid(&self, draft: &Draft) -> bool {
        let removed = &self.doc.removed;
        self.field(draft, &["command"])
            .iter()
            .any(|p| removed.contains(p))
            || removed.iter().any(|p| {
                p.len() == 3
                    && p[0] == "jobs"
                    && p[1] == draft.key
                    && did_you_mean(&p[2], ["command"]).is_some()
            })
    }

    /// Where entry `n` of a job's `needs` is written: the list's entry, or the string that
    /// `needs = "build"` is.
    fn need_at(&self, draft: &Draft, n: usize) -> Option<At> {
        let entry = self.field(draft, &["needs", &n.to_string()]);
        (self.doc.provenance.locate(&entry)).or_else(|| self.at(&self.field(draft, &["needs"])))
    }

    #[allow(clippy::unused_self)] // a method so call sites read like the other lookups
    fn field(&self, draft: &Draft, field: &[&str]) -> Vec<Vec<String>> {
        draft
            .origins()
            .iter()
            .map(|o| [o.clone(), path(field)].concat())
            .collect()
    }

    #[allow(clippy::too_many_lines)]
    /// The job, and its `needs` rendered (a matrix job may name `build[os={{ matrix.os }}]`).
    fn job(
        &mut self,
        draft: &Draft,
        ctx: &JobContext<'_>,
        working_dir: &Path,
        log_dir: &Path,
        policy: SecurityPolicy,
    ) -> (Job, Vec<String>) {
        let spec = &draft.spec;
        let id = expanded_id(draft.key, &draft.matrix);
        let matrix_map: BTreeMap<&str, &serde_json::Value> =
            draft.matrix.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let params = spec.with.clone().unwrap_or_default();
        let make_ctx = || {
            context! {
                vars => ctx.vars.clone(),
                env => ctx.env.clone(),
                params => to_value(&params),
                matrix => to_value(&matrix_map),
                job => context! { id => id.clone(), name => draft.key },
                pipeline => ctx.pipeline.clone(),
            }
        };
        // The job's own env, rendered, with `${NAME}` from the layered environment.
        let raw_env: BTreeMap<String, String> = spec
            .env
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let resolved = self.resolve_env(&raw_env, ctx.cli_env, ctx.base_env, |v, key| {
            v.field(draft, &["env", key])
        });
        let mut env = Vec::with_capacity(resolved.len());
        for (key, value) in resolved {
            let value = self.render_str(&value, |v| v.field(draft, &["env", &key]), make_ctx);
            env.push((key, value));
        }
        let full_env: HashMap<&str, &str> = ctx
            .base_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .chain(ctx.cli_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let lookup = |n: &str| full_env.get(n).copied();

        let command = match &spec.command {
            // The command was written but invalid, or misspelt (`comand` gets "did you mean
            // `command`?"): that diagnostic is already there.
            None if self.command_was_invalid(draft) => Text::Static(String::new()),
            None => {
                let at = self.at_key(&[path(&["jobs", draft.key])]);
                self.error(
                    "exe::config::missing_command",
                    format!("job `{id}` has no `command`"),
                    at,
                )
                .help = Some("add `command`, or `extends` a template that has one".to_owned());
                Text::Static(String::new())
            }
            Some(command) => {
                let here = self.field(draft, &["command"]);
                let text = match if self.doc.legacy {
                    Ok(Text::Static(command.clone()))
                } else {
                    template::render(command, make_ctx)
                } {
                    Ok(text) => text,
                    Err(e) => {
                        let at = self.at(&here);
                        self.error(
                            "exe::config::template",
                            format!("in `command` of job `{id}`: {}", e.message),
                            at,
                        );
                        Text::Static(command.clone())
                    }
                };
                if text.display().trim().is_empty() {
                    let at = self.at(&here);
                    self.error(
                        "exe::config::empty_command",
                        format!("job `{id}` has an empty `command`"),
                        at,
                    )
                    .help = Some(
                        "write the shell command to run; to disable a job, use `when = false`"
                            .to_owned(),
                    );
                } else if text.display().contains('\0') {
                    let at = self.at(&here);
                    self.error(
                        "exe::config::invalid_value",
                        format!(
                            "the command of job `{id}` holds a NUL byte, which no program can be \
                             given"
                        ),
                        at,
                    );
                }
                for rule in security::scan(text.display()) {
                    let at = self.at(&here);
                    let d = match policy {
                        SecurityPolicy::Warn => self.warn(
                            rule.code,
                            format!("the command of job `{id}` {}", rule.message),
                            at,
                        ),
                        SecurityPolicy::Strict => self.error(
                            rule.code,
                            format!("the command of job `{id}` {}", rule.message),
                            at,
                        ),
                    };
                    d.help = Some(match policy {
                        SecurityPolicy::Warn => "if this is intended, keep it; `security_policy = \"strict\"` turns these into errors".to_owned(),
                        SecurityPolicy::Strict => "`security_policy = \"strict\"` refuses such commands; this check is a lint, not a sandbox".to_owned(),
                    });
                }
                text
            }
        };
        let description = spec
            .description
            .as_ref()
            .map(|d| self.render_str(d, |v| v.field(draft, &["description"]), make_ctx));
        let timeout = spec.timeout.map(|t| t.0);
        if timeout == Some(Duration::ZERO) {
            let at = self.at(&self.field(draft, &["timeout"]));
            self.error(
                "exe::config::invalid_duration",
                format!("the `timeout` of job `{id}` is zero"),
                at,
            )
            .help = Some("leave `timeout` out for no limit".to_owned());
        }
        let retry = self.retry(draft, &id, spec.retry.clone().unwrap_or_default());
        let pre_checks = self.checks(
            draft,
            &id,
            "pre_checks",
            spec.pre_checks.as_deref(),
            working_dir,
            &lookup,
            make_ctx,
        );
        let post_checks = self.checks(
            draft,
            &id,
            "post_checks",
            spec.post_checks.as_deref(),
            working_dir,
            &lookup,
            make_ctx,
        );
        let resources = spec.resources.clone().unwrap_or_default();
        if resources.cpu.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
            let at = self.at(&self.field(draft, &["resources", "cpu"]));
            self.error(
                "exe::config::invalid_value",
                format!("`resources.cpu` of job `{id}` must be more than 0"),
                at,
            );
        }
        let list = |v: &mut Self, name: &str, items: Option<&Vec<String>>| -> Vec<String> {
            items
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| {
                    let here = v.field(draft, &[name, &i.to_string()]);
                    let rendered = v.render_str(s, |_| here.clone(), make_ctx);
                    if let Err(e) = glob::Pattern::new(&rendered) {
                        let at = v.at(&here);
                        v.error(
                            "exe::config::invalid_glob",
                            format!(
                                "invalid glob `{rendered}` in `{name}` of job `{id}`: {}",
                                e.msg
                            ),
                            at,
                        )
                        .help = Some(
                            "`*`, `?`, `**` and `[...]` are special; write `[[]` for a literal `[`"
                                .to_owned(),
                        );
                    }
                    rendered
                })
                .collect()
        };
        let inputs = list(self, "inputs", spec.inputs.as_ref());
        let outputs = list(self, "outputs", spec.outputs.as_ref());
        let enabled = match &spec.when {
            None | Some(When::Bool(true)) => true,
            Some(When::Bool(false)) => false,
            Some(When::Expr(expr)) => {
                template::truthy(&self.render_str(expr, |v| v.field(draft, &["when"]), make_ctx))
            }
        };
        let job_log_dir = spec
            .log_dir
            .as_ref()
            .map_or_else(|| log_dir.to_path_buf(), |d| working_dir.join(d));
        if spec.log_dir.is_some() {
            let here = self.field(draft, &["log_dir"]);
            self.check_log_dir(&job_log_dir, &here);
        }
        let needs = spec
            .needs
            .iter()
            .flat_map(|n| n.0.iter())
            .enumerate()
            .map(|(i, n)| {
                self.render_str(n, |v| v.field(draft, &["needs", &i.to_string()]), make_ctx)
            })
            .collect();
        let job = Job {
            id: JobId(id),
            description,
            command,
            needs: Vec::new(),
            timeout,
            timeout_grace: spec.timeout_grace.map_or(DEFAULT_GRACE, |g| g.0),
            env,
            retry,
            pre_checks,
            post_checks,
            priority: spec.priority.unwrap_or(0),
            resources: Resources {
                cpu: resources.cpu.unwrap_or(0.0),
                memory: resources.memory.map_or(0, |m| m.0),
            },
            inputs,
            outputs,
            enabled,
            log_dir: job_log_dir,
            matrix: draft
                .matrix
                .iter()
                .map(|(k, v)| (k.clone(), matrix_text(v)))
                .collect(),
        };
        (job, needs)
    }

    fn retry(&mut self, draft: &Draft, id: &str, r: RetrySpec) -> RetryPolicy {
        let check = |v: &mut Self, ok: bool, field: &str, message: &str| {
            if !ok {
                let at = v.at(&v.field(draft, &["retry", field]));
                v.error(
                    "exe::config::invalid_value",
                    format!("`retry.{field}` of job `{id}` {message}"),
                    at,
                );
            }
        };
        check(
            self,
            r.backoff.is_none_or(|b| b > 0.0 && b.is_finite()),
            "backoff",
            "must be more than 0",
        );
        check(
            self,
            r.jitter.is_none_or(|j| (0.0..=1.0).contains(&j)),
            "jitter",
            "must be between 0 and 1",
        );
        check(
            self,
            r.max_time.is_none_or(|t| t.0 > Duration::ZERO),
            "max_time",
            "must be more than 0",
        );
        // The wait before the last retry, at its longest: `delay * backoff^(max-1)`, plus jitter.
        let max = r.max.unwrap_or(0);
        let longest = r.delay.map_or(0.0, |d| d.0.as_secs_f64())
            * r.backoff
                .unwrap_or(1.0)
                .powi(i32::try_from(max.saturating_sub(1)).unwrap_or(i32::MAX))
            * (1.0 + r.jitter.unwrap_or(0.0).clamp(0.0, 1.0));
        check(
            self,
            max == 0 || longest <= crate::spec::MAX_DURATION.as_secs_f64(),
            "backoff",
            &format!(
                "makes the wait before retry {max} longer than 100 years (`delay` times \
                 `backoff` to the power {}): lower `backoff`, `delay` or `max`",
                max.saturating_sub(1)
            ),
        );
        let on_status = r.on_status.unwrap_or_else(|| {
            // Naming exit codes alone means "retry failures with these codes" (and timeouts).
            if r.on_exit_codes.is_some() {
                vec![RetryStatus::Timeout]
            } else {
                vec![RetryStatus::Failed, RetryStatus::Timeout]
            }
        });
        RetryPolicy {
            max,
            delay: r.delay.map_or(Duration::ZERO, |d| d.0),
            backoff: r.backoff.unwrap_or(1.0),
            jitter: r.jitter.unwrap_or(0.0),
            max_time: r.max_time.map(|t| t.0),
            on_exit_codes: (r.on_exit_codes.into_iter().flatten())
                .map(i32::from)
                .collect(),
            on_status,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn checks<'a>(
        &mut self,
        draft: &Draft,
        id: &str,
        field: &str,
        specs: Option<&[CheckSpec]>,
        working_dir: &Path,
        lookup: &impl Fn(&str) -> Option<&'a str>,
        make_ctx: impl Fn() -> JValue + Copy,
    ) -> Vec<Check> {
        let mut out = Vec::new();
        for (i, check) in specs.into_iter().flatten().enumerate() {
            let n = i.to_string();
            let text = |v: &mut Self, key: &str, s: &str| {
                let here = v.field(draft, &[field, &n, key]);
                let s = v.interpolate(s, lookup, &here);
                v.render_str(&s, |_| here.clone(), make_ctx)
            };
            out.push(match check {
                CheckSpec::FileExists { path } => {
                    Check::FileExists(working_dir.join(text(self, "path", path)))
                }
                CheckSpec::FileNotEmpty { path } => {
                    Check::FileNotEmpty(working_dir.join(text(self, "path", path)))
                }
                CheckSpec::Command { run } => Check::Command(text(self, "run", run)),
                CheckSpec::LogClean { path, patterns } => {
                    let glob = working_dir
                        .join(text(self, "path", path))
                        .to_string_lossy()
                        .into_owned();
                    let defaults = vec![r"ORA-\d{5}".to_owned()];
                    let mut compiled = Vec::new();
                    for (p, pattern) in patterns.as_ref().unwrap_or(&defaults).iter().enumerate() {
                        match regex::Regex::new(pattern) {
                            Ok(re) => compiled.push(re),
                            Err(e) => {
                                let at = self
                                    .at(&self
                                        .field(draft, &[field, &n, "patterns", &p.to_string()]));
                                let detail = e
                                    .to_string()
                                    .lines()
                                    .last()
                                    .unwrap_or_default()
                                    .trim()
                                    .to_owned();
                                self.error(
                                    "exe::config::invalid_regex",
                                    format!("invalid pattern in a check of job `{id}`: {detail}"),
                                    at,
                                );
                            }
                        }
                    }
                    Check::LogClean {
                        path: glob,
                        patterns: compiled,
                    }
                }
            });
        }
        out
    }

    /// Resolves every job's `needs` into indexes, reporting unknown ids.
    fn needs(&mut self, drafts: &[Draft<'_>], rendered: &[Vec<String>]) -> Vec<Vec<usize>> {
        // A job's expansions are next to each other: an id names a range of drafts.
        let mut by_id: HashMap<Cow<'_, str>, Range<usize>> = HashMap::with_capacity(drafts.len());
        for (i, d) in drafts.iter().enumerate() {
            by_id
                .entry(Cow::Borrowed(d.key))
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
            if !d.matrix.is_empty() {
                by_id.insert(Cow::Owned(expanded_id(d.key, &d.matrix)), i..i + 1);
            }
        }
        // Every id, made only if a need is not an exact id or a job's name.
        let mut ids: Option<Vec<String>> = None;
        let mut all = Vec::with_capacity(drafts.len());
        let mut reported = HashSet::new();
        // Dependencies so far; past MAX_NEEDS the rest are not made (the pipeline is invalid).
        let mut total = 0usize;
        for (d, rendered) in drafts.iter().zip(rendered) {
            let mut needs = Vec::new();
            for (n, need) in rendered.iter().enumerate() {
                // Empty when the need names no job.
                let targets: Vec<usize> = if let Some(range) = by_id.get(need.as_str()) {
                    range.clone().collect()
                } else {
                    // Some of a matrix job's pairs, or all of them in another order.
                    let reference = JobRef::parse(need);
                    let ids = ids.get_or_insert_with(|| {
                        drafts
                            .iter()
                            .map(|o| expanded_id(o.key, &o.matrix))
                            .collect()
                    });
                    (ids.iter().enumerate())
                        .filter(|(_, id)| reference.names(id))
                        .map(|(i, _)| i)
                        .collect()
                };
                if targets.is_empty() {
                    if !reported.insert((d.key, n)) {
                        continue;
                    }
                    let at = self.need_at(d, n);
                    // Not the job itself: needing itself would be a cycle.
                    let others = drafts.iter().map(|o| o.key).filter(|&k| k != d.key);
                    let ids = ids.as_deref().unwrap_or_default();
                    let hint = (JobRef::parse(need).miss(ids.iter().map(String::as_str)))
                        .or_else(|| did_you_mean(need, others))
                        .unwrap_or_else(|| "`needs` lists ids of jobs in this pipeline".to_owned());
                    self.error(
                        "exe::config::unknown_need",
                        format!("job `{}` needs `{need}`, which is not a job", d.key),
                        at,
                    )
                    .help = Some(hint);
                    continue;
                }
                if total <= MAX_NEEDS && total + targets.len() > MAX_NEEDS {
                    let at = self.need_at(d, n);
                    self.error(
                        "exe::config::too_many_needs",
                        format!(
                            "the jobs' `needs` make more than {MAX_NEEDS} dependencies \
                             (job `{}` needs `{need}`: {} jobs)",
                            d.key,
                            targets.len()
                        ),
                        at,
                    )
                    .help = Some(
                        "a need on a matrix job means every one of its expansions: name one \
                         (`build[os=linux]`), or put one job between the two matrices"
                            .to_owned(),
                    );
                }
                total = total.saturating_add(targets.len());
                if total <= MAX_NEEDS {
                    needs.extend(targets);
                }
            }
            needs.sort_unstable();
            needs.dedup();
            all.push(needs);
        }
        all
    }

    /// A `log_dir` that is there as something other than a folder: no job could make its log.
    fn check_log_dir(&mut self, dir: &Path, here: &[Vec<String>]) {
        if dir.exists() && !dir.is_dir() {
            let at = self.at(here);
            self.error(
                "exe::config::log_dir_not_a_folder",
                format!("log_dir {} is not a folder", dir.display()),
                at,
            )
            .help = Some("each run's logs go in a folder below it; fix the path".to_owned());
        }
    }

    /// An `env` entry no environment can hold (a name with `=`, a NUL byte) is an error; a
    /// name a shell cannot read as `$NAME` is a warning (the job still gets it).
    fn check_variable(&mut self, key: &str, value: &str, here: &[Vec<String>]) {
        let at = || self.at_key(here);
        let unusable = if key.is_empty() {
            Some("it is empty")
        } else if key.contains('=') {
            Some("it holds `=`")
        } else if key.contains('\0') {
            Some("it holds a NUL byte")
        } else {
            None
        };
        if let Some(why) = unusable {
            let at = at();
            self.error(
                "exe::config::invalid_env_name",
                format!("`{key}` cannot be an environment variable's name: {why}"),
                at,
            )
            .help = Some("a name is letters, digits and `_`: `DB_HOST`".to_owned());
        } else if !crate::spec::is_variable_name(key) {
            let at = at();
            self.warn(
                "exe::config::invalid_env_name",
                format!(
                    "`{key}` is not a shell variable name: a command cannot read it as `${key}`"
                ),
                at,
            )
            .help = Some("a name is letters, digits and `_`, not starting with a digit".to_owned());
        }
        if value.contains('\0') {
            let at = self.at(here);
            self.error(
                "exe::config::invalid_value",
                format!("the value of `{key}` holds a NUL byte, which no environment variable can"),
                at,
            );
        }
    }

    /// Resolves `${NAME}` in one `env` map whose entries may name each other, in any order:
    /// `--env` values first, then the map's other entries, then `outer`.
    fn resolve_env(
        &mut self,
        raw: &BTreeMap<String, String>,
        cli: &[(String, String)],
        outer: &BTreeMap<String, String>,
        here: impl Fn(&Self, &str) -> Vec<Vec<String>>,
    ) -> BTreeMap<String, String> {
        let lookup = |name: &str, own: &str, map: &BTreeMap<String, String>| -> Option<String> {
            cli.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| map.get(name).filter(|_| name != own).cloned())
                .or_else(|| outer.get(name).cloned())
        };
        for (key, value) in raw {
            self.check_variable(key, value, &here(self, key));
        }
        // Each pass resolves one more level of entries naming entries; a cycle stops at the cap.
        let mut resolved = raw.clone();
        for _ in 0..=raw.len() {
            let next: BTreeMap<String, String> = raw
                .iter()
                .map(|(key, value)| {
                    let found: HashMap<String, String> = names_in(value)
                        .into_iter()
                        .filter_map(|n| lookup(&n, key, &resolved).map(|v| (n, v)))
                        .collect();
                    (
                        key.clone(),
                        template::interpolate(value, |n| found.get(n).map(String::as_str)).0,
                    )
                })
                .collect();
            if next == resolved {
                break;
            }
            resolved = next;
        }
        // A last pass over the written values reports names found nowhere.
        let mut out = BTreeMap::new();
        for (key, value) in raw {
            let found: HashMap<String, String> = names_in(value)
                .into_iter()
                .filter_map(|n| lookup(&n, key, &resolved).map(|v| (n, v)))
                .collect();
            let at = here(self, key);
            let value = self.interpolate(value, |n| found.get(n).map(String::as_str), &at);
            out.insert(key.clone(), value);
        }
        out
    }

    fn interpolate<'a>(
        &mut self,
        text: &str,
        lookup: impl Fn(&str) -> Option<&'a str>,
        here: &[Vec<String>],
    ) -> String {
        let (out, unknown) = template::interpolate(text, lookup);
        for name in unknown {
            let at = self.at(here);
            self.warn(
                "exe::config::undefined_variable",
                format!("`${{{name}}}` is not set; it is left as written"),
                at,
            )
            .help =
                Some("set it in `env`, with `--env`, or in the environment exe runs in".to_owned());
        }
        out
    }

    /// `text` rendered; on an error, reported at the key paths `here` gives (worked out only
    /// then: building them for every value was about a tenth of a 100,000-job lint).
    fn render_str(
        &mut self,
        text: &str,
        here: impl FnOnce(&Self) -> Vec<Vec<String>>,
        ctx: impl FnOnce() -> JValue,
    ) -> String {
        // The older tool had no templates: its files load unchanged, `{{` and all.
        if self.doc.legacy {
            return text.to_owned();
        }
        match template::render_now(text, ctx) {
            Ok(s) => s,
            Err(e) => {
                let here = here(self);
                let at = self.at(&here);
                let field = here.first().map(|p| dotted(p)).unwrap_or_default();
                self.error(
                    "exe::config::template",
                    format!("in `{field}`: {}", e.message),
                    at,
                );
                text.to_owned()
            }
        }
    }
}

struct JobContext<'a> {
    vars: &'a JValue,
    env: &'a JValue,
    pipeline: &'a JValue,
    base_env: &'a BTreeMap<String, String>,
    cli_env: &'a [(String, String)],
}

/// The `${NAME}` names a text refers to.
fn names_in(text: &str) -> Vec<String> {
    template::interpolate(text, |_| None).1
}

/// `build` or `build[os=linux,py=3.12]`.
pub fn expanded_id(key: &str, matrix: &[(String, serde_json::Value)]) -> String {
    if matrix.is_empty() {
        return key.to_owned();
    }
    let parts: Vec<String> = matrix
        .iter()
        .map(|(k, v)| format!("{k}={}", matrix_text(v)))
        .collect();
    format!("{key}[{}]", parts.join(","))
}

/// What keeps a matrix key and its values from making sound job ids (`key=value` inside
/// `job[...]`, also a log file name): a key that is not an id, a value that is not a
/// string, number or boolean, text that would split the id or the path, or two values
/// written the same (`1` and `"1"`).
fn id_problem(name: &str, values: &[serde_json::Value]) -> Option<String> {
    if !JobId::is_valid(name) {
        return Some("the key may hold only letters, digits, `_`, `.` and `-`".to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    for value in values {
        if !matches!(
            value,
            serde_json::Value::String(_)
                | serde_json::Value::Number(_)
                | serde_json::Value::Bool(_)
        ) {
            return Some(format!(
                "the value {value} is not a string, number or boolean"
            ));
        }
        let text = matrix_text(value);
        if text.is_empty()
            || text
                .chars()
                .any(|c| c.is_control() || matches!(c, '/' | ',' | '=' | '[' | ']'))
        {
            return Some(format!(
                "the value {value} is empty or holds `/`, `,`, `=`, `[`, `]` or a control character"
            ));
        }
        if !seen.insert(text.clone()) {
            return Some(format!("the value `{text}` is listed twice"));
        }
    }
    None
}

fn matrix_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The caller's variables a job sees under an `inherit_env` setting.
pub fn inherited(mode: &InheritEnv, process_env: &[(String, String)]) -> Vec<(String, String)> {
    let keep = |name: &str, list: &[&str]| {
        list.iter().any(|p| {
            p.strip_suffix('*')
                .map_or(*p == name, |prefix| name.starts_with(prefix))
        })
    };
    process_env
        .iter()
        .filter(|(k, _)| match mode {
            InheritEnv::All(all) => *all,
            InheritEnv::Default => keep(k, DEFAULT_INHERITED),
            InheritEnv::Only(names) => names.iter().any(|n| n == k),
        })
        .cloned()
        .collect()
}

/// Merges `over` onto `base`: maps deeply, lists and scalars replaced, `over` wins.
fn merge(base: JobSpec, over: JobSpec) -> JobSpec {
    fn map<V>(
        base: Option<BTreeMap<String, V>>,
        over: Option<BTreeMap<String, V>>,
    ) -> Option<BTreeMap<String, V>> {
        match (base, over) {
            (Some(mut b), Some(o)) => {
                b.extend(o);
                Some(b)
            }
            (b, o) => o.or(b),
        }
    }
    let retry = match (base.retry, over.retry) {
        (Some(b), Some(o)) => Some(RetrySpec {
            max: o.max.or(b.max),
            delay: o.delay.or(b.delay),
            backoff: o.backoff.or(b.backoff),
            jitter: o.jitter.or(b.jitter),
            max_time: o.max_time.or(b.max_time),
            on_exit_codes: o.on_exit_codes.or(b.on_exit_codes),
            on_status: o.on_status.or(b.on_status),
        }),
        (b, o) => o.or(b),
    };
    let resources = match (base.resources, over.resources) {
        (Some(b), Some(o)) => Some(crate::spec::ResourcesSpec {
            cpu: o.cpu.or(b.cpu),
            memory: o.memory.or(b.memory),
        }),
        (b, o) => o.or(b),
    };
    JobSpec {
        command: over.command.or(base.command),
        description: over.description.or(base.description),
        needs: over.needs.or(base.needs),
        timeout: over.timeout.or(base.timeout),
        timeout_grace: over.timeout_grace.or(base.timeout_grace),
        env: map(base.env, over.env),
        retry,
        pre_checks: over.pre_checks.or(base.pre_checks),
        post_checks: over.post_checks.or(base.post_checks),
        priority: over.priority.or(base.priority),
        resources,
        inputs: over.inputs.or(base.inputs),
        outputs: over.outputs.or(base.outputs),
        extends: over.extends.or(base.extends),
        with: map(base.with, over.with),
        matrix: map(base.matrix, over.matrix),
        when: over.when.or(base.when),
        log_dir: over.log_dir.or(base.log_dir),
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

/// A valid pipeline from TOML text (its working dir is the crate's folder), for unit
/// tests of what comes after validation. Panics on any error.
#[cfg(test)]
pub(crate) fn from_toml(text: &str, options: &Options) -> Pipeline {
    use crate::load::{LoadOptions, load_text};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-pipeline.toml");
    let format = crate::source::Format::Toml;
    let (doc, _) = load_text(&path, text.to_owned(), format, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let (pipeline, diags) = validate(&doc, options);
    pipeline.unwrap_or_else(|| panic!("{diags:?}"))
}
