//! What a run would do, decided before anything runs: every job in execution order, its
//! layer, whether it runs and why not, and the critical path.
//!
//! [`Plan::new`] is a pure function of the validated [`Pipeline`], the jobs' selection
//! ([`Disposition`]s) and the parallelism to show; it reads no file and no clock. How a plan
//! looks is not its business: `plan/text.rs`, `plan/json.rs` and `plan/graph_formats.rs`
//! render it, `plan/explain.rs` says where configured values came from.
//!
//! Invariants a [`Plan`] keeps: `steps` holds every job exactly once, in [`Dag::order`]
//! (every job after all of its needs, file order among jobs that are ready together);
//! `to_run + skipped == steps.len()`; the critical path lists only jobs that run, each
//! after the jobs it needs.
//!
//! [`Dag::order`]: crate::graph::Dag::order

pub mod explain;
pub mod graph_formats;
pub mod json;
pub mod text;

use std::time::Duration;

use crate::model::{Job, Pipeline};
use crate::secrets::Masker;
use crate::selection::{Disposition, SkipReason};
use crate::spec::{DurationSpec, SizeSpec};

pub use explain::Explanation;

/// Whether a job would run, and if not, why. Later decisions (up to date, already
/// succeeded in an earlier run) join as variants; every variant but [`Decision::Run`] is
/// a skip, and a skipped job counts as done for the jobs that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The job runs when its needs are done.
    Run,
    /// The run's selection leaves the job out (`--skip`, `--only`, `when`).
    Skip(SkipReason),
}

impl Decision {
    /// Does the job run?
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Run)
    }

    /// Why the job does not run; `None` when it runs.
    pub fn reason(&self) -> Option<String> {
        match self {
            Decision::Run => None,
            Decision::Skip(reason) => Some(reason.to_string()),
        }
    }
}

impl From<&Disposition> for Decision {
    fn from(d: &Disposition) -> Self {
        match d {
            Disposition::Run => Decision::Run,
            Disposition::Skip(reason) => Decision::Skip(reason.clone()),
        }
    }
}

/// One job's place in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index of the job in [`Pipeline::jobs`].
    pub job: usize,
    /// 0-based layer: the longest chain of needs below the job (shown 1-based).
    pub layer: usize,
    /// Whether it runs.
    pub decision: Decision,
    /// For a job with `inputs` the selection runs: what changed since its last success
    /// (empty when it is up to date); `None` for the others and under `--force`.
    pub changes: Option<Vec<String>>,
}

/// What a run would do.
#[derive(Debug)]
pub struct Plan<'p> {
    /// The pipeline planned.
    pub pipeline: &'p Pipeline,
    /// Jobs that may run at once (the file's, or `--max-parallel`).
    pub max_parallel: usize,
    /// Every job once, in execution order.
    pub steps: Vec<Step>,
    /// How many layers there are.
    pub layers: usize,
    /// The longest chain of jobs that run (by job count for now), needs first, as
    /// indexes into [`Pipeline::jobs`]; empty when nothing runs.
    pub critical_path: Vec<usize>,
    /// Jobs that run.
    pub to_run: usize,
    /// Jobs that do not.
    pub skipped: usize,
}

impl<'p> Plan<'p> {
    /// Plans `pipeline` with each job's disposition (by job index) and `max_parallel`.
    ///
    /// # Panics
    ///
    /// Panics if `dispositions` does not hold one entry per job.
    pub fn new(
        pipeline: &'p Pipeline,
        dispositions: &[Disposition],
        max_parallel: usize,
    ) -> Plan<'p> {
        assert_eq!(
            dispositions.len(),
            pipeline.jobs.len(),
            "one disposition per job"
        );
        let dag = &pipeline.dag;
        let layers = dag.layers();
        let mut layer_of = vec![0; dag.len()];
        for (layer, jobs) in layers.iter().enumerate() {
            for &job in jobs {
                layer_of[job] = layer;
            }
        }
        let decisions: Vec<Decision> = dispositions.iter().map(Decision::from).collect();
        // Weight 1 per job that runs: the chain with the most work on it. Recorded durations
        // will replace the 1 once a history exists.
        let (path, weight) = dag.critical_path(|i| if decisions[i].runs() { 1.0 } else { 0.0 });
        let critical_path = if weight > 0.0 {
            path.into_iter().filter(|&i| decisions[i].runs()).collect()
        } else {
            Vec::new()
        };
        let to_run = decisions.iter().filter(|d| d.runs()).count();
        let steps = dag
            .order()
            .iter()
            .map(|&job| Step {
                job,
                layer: layer_of[job],
                decision: decisions[job].clone(),
                changes: None,
            })
            .collect();
        Plan {
            pipeline,
            max_parallel,
            steps,
            layers: layers.len(),
            critical_path,
            to_run,
            skipped: decisions.len() - to_run,
        }
    }

    /// Adds what changed for each job (by index; see [`Step::changes`]).
    #[must_use]
    pub fn with_changes(mut self, mut changes: Vec<Option<Vec<String>>>) -> Plan<'p> {
        for step in &mut self.steps {
            step.changes = changes.get_mut(step.job).and_then(Option::take);
        }
        self
    }

    /// The job a step is about.
    pub fn job(&self, step: &Step) -> &'p Job {
        &self.pipeline.jobs[step.job]
    }

    /// The ids of the jobs a job needs, ascending by file order.
    pub fn needs(&self, job: &Job) -> Vec<&'p str> {
        let jobs = &self.pipeline.jobs;
        job.needs.iter().map(|&n| jobs[n].id.0.as_str()).collect()
    }

    /// The steps of each layer, layer 0 first, each in execution order.
    pub fn by_layer(&self) -> Vec<Vec<&Step>> {
        let mut layers = vec![Vec::new(); self.layers];
        for step in &self.steps {
            layers[step.layer].push(step);
        }
        layers
    }

    /// Would nothing run?
    pub fn is_empty(&self) -> bool {
        self.to_run == 0
    }
}

/// What a rendering shows besides the plan itself, and how secrets are kept out of it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Masks secret values in commands, environments and explained values.
    pub masker: &'a Masker,
    /// Show each running job's complete environment (`--show-env`).
    pub show_env: bool,
    /// `--explain` answers, shown before the plan.
    pub explanations: &'a [Explanation],
    /// Colour (text only).
    pub color: bool,
}

/// The environment a job would get, as it may be shown: secret values masked.
pub fn shown_env(pipeline: &Pipeline, job: &Job, masker: &Masker) -> Vec<(String, String)> {
    pipeline
        .job_env(job)
        .into_iter()
        .map(|(k, v)| {
            let shown = masker.value(&k, &v).into_owned();
            (k, shown)
        })
        .collect()
}

/// A path for display without `.` segments inside it (`legacy/.` reads `legacy`).
pub(crate) fn tidy_path(path: &std::path::Path) -> String {
    let tidy: std::path::PathBuf = path.components().collect();
    if tidy.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        tidy.display().to_string()
    }
}

/// A duration the way files write it: `90s`, `1h30m`, `500ms`.
pub(crate) fn duration_text(d: Duration) -> String {
    // DurationSpec's serialized form is the format's own spelling; reuse it rather than
    // keep a second formatter that could drift.
    serde_json::to_value(DurationSpec(d))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{}s", d.as_secs_f64()))
}

/// A size the way files write it: `512MiB`, `4GiB`.
pub(crate) fn size_text(bytes: u64) -> String {
    serde_json::to_value(SizeSpec(bytes))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{bytes}B"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Dag;
    use crate::model::{JobId, Notify, Resources, RetryPolicy};
    use crate::spec::SecurityPolicy;
    use crate::template::Text;

    fn job(id: &str, needs: &[usize]) -> Job {
        Job {
            id: JobId(id.to_owned()),
            description: None,
            command: Text::Static("true".to_owned()),
            needs: needs.to_vec(),
            timeout: None,
            timeout_grace: Duration::from_secs(5),
            env: Vec::new(),
            retry: RetryPolicy {
                max: 0,
                delay: Duration::ZERO,
                backoff: 1.0,
                jitter: 0.0,
                max_time: None,
                on_exit_codes: Vec::new(),
                on_status: Vec::new(),
            },
            pre_checks: Vec::new(),
            post_checks: Vec::new(),
            priority: 0,
            resources: Resources::default(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            enabled: true,
            log_dir: ".exe/logs".into(),
            matrix: Vec::new(),
        }
    }

    /// `(id, needs)` in file order.
    fn pipeline(jobs: &[(&str, &[usize])]) -> Pipeline {
        let jobs: Vec<Job> = jobs.iter().map(|(id, needs)| job(id, needs)).collect();
        let needs: Vec<Vec<usize>> = jobs.iter().map(|j| j.needs.clone()).collect();
        Pipeline {
            name: "p".to_owned(),
            description: None,
            file: "p.toml".into(),
            working_dir: ".".into(),
            log_dir: ".exe/logs".into(),
            max_parallel: 1,
            continue_on_error: false,
            security_policy: SecurityPolicy::default(),
            notify: Notify::default(),
            env: Vec::new(),
            ambient_env: std::collections::BTreeSet::new(),
            own_env: std::collections::BTreeSet::new(),
            inherit_env: crate::spec::InheritEnv::All(true),
            env_overrides: Vec::new(),
            jobs,
            dag: Dag::new(&needs).unwrap(),
        }
    }

    fn ids(plan: &Plan<'_>, jobs: &[usize]) -> Vec<String> {
        jobs.iter()
            .map(|&j| plan.pipeline.jobs[j].id.0.clone())
            .collect()
    }

    const RUN: Disposition = Disposition::Run;

    /// a; b needs a; c; d needs b and c; e needs a.
    fn diamond() -> Pipeline {
        pipeline(&[
            ("a", &[]),
            ("b", &[0]),
            ("c", &[]),
            ("d", &[1, 2]),
            ("e", &[0]),
        ])
    }

    #[test]
    fn steps_follow_the_dag_order_with_layers() {
        let p = diamond();
        let plan = Plan::new(&p, &[RUN, RUN, RUN, RUN, RUN], 2);
        let order: Vec<usize> = plan.steps.iter().map(|s| s.job).collect();
        assert_eq!(ids(&plan, &order), ["a", "b", "c", "d", "e"]);
        let layers: Vec<usize> = plan.steps.iter().map(|s| s.layer).collect();
        assert_eq!(layers, [0, 1, 0, 2, 1]);
        assert_eq!(plan.layers, 3);
        let grouped: Vec<Vec<usize>> = plan
            .by_layer()
            .iter()
            .map(|l| l.iter().map(|s| s.job).collect())
            .collect();
        assert_eq!(grouped, [vec![0, 2], vec![1, 4], vec![3]]);
        assert_eq!(plan.max_parallel, 2);
    }

    #[test]
    fn counts_and_reasons_follow_the_dispositions() {
        let p = diamond();
        let skip = Disposition::Skip(SkipReason::Flag);
        let plan = Plan::new(&p, &[RUN, skip.clone(), RUN, RUN, skip], 1);
        assert_eq!((plan.to_run, plan.skipped), (3, 2));
        assert!(!plan.is_empty());
        let b = plan.steps.iter().find(|s| s.job == 1).unwrap();
        assert_eq!(b.decision.reason().as_deref(), Some("skipped by --skip"));
        assert_eq!(plan.steps[0].decision.reason(), None);
    }

    #[test]
    fn the_critical_path_counts_only_jobs_that_run() {
        let p = diamond();
        let plan = Plan::new(&p, &[RUN, RUN, RUN, RUN, RUN], 1);
        assert_eq!(ids(&plan, &plan.critical_path), ["a", "b", "d"]);

        // With b skipped, a -> b -> d still carries the most work (a and d); b itself
        // takes none, so the path leaves it out.
        let skip = Disposition::Skip(SkipReason::When);
        let plan = Plan::new(&p, &[RUN, skip, RUN, RUN, RUN], 1);
        assert_eq!(ids(&plan, &plan.critical_path), ["a", "d"]);
    }

    #[test]
    fn nothing_to_run_means_an_empty_plan_and_no_critical_path() {
        let p = diamond();
        let skip = Disposition::Skip(SkipReason::NotSelected);
        let plan = Plan::new(&p, &vec![skip; 5], 1);
        assert!(plan.is_empty());
        assert_eq!((plan.to_run, plan.skipped), (0, 5));
        assert!(plan.critical_path.is_empty());

        let empty = pipeline(&[]);
        let plan = Plan::new(&empty, &[], 1);
        assert!(plan.is_empty() && plan.steps.is_empty() && plan.layers == 0);
    }

    #[test]
    fn ready_jobs_keep_file_order() {
        // c is listed first but needs b; a and b are both roots.
        let p = pipeline(&[("c", &[2]), ("a", &[]), ("b", &[])]);
        let plan = Plan::new(&p, &[RUN, RUN, RUN], 1);
        let order: Vec<usize> = plan.steps.iter().map(|s| s.job).collect();
        assert_eq!(ids(&plan, &order), ["a", "b", "c"]);
        let c = &plan.pipeline.jobs[0];
        assert_eq!(plan.needs(c), ["b"]);
    }

    #[test]
    fn durations_and_sizes_read_as_in_files() {
        assert_eq!(duration_text(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_text(Duration::from_millis(500)), "500ms");
        assert_eq!(size_text(4 << 30), "4GiB");
        assert_eq!(tidy_path("legacy/.".as_ref()), "legacy");
        assert_eq!(tidy_path("./.".as_ref()), ".");
    }
}
