//! What runs next: the pure decisions of a run.
//!
//! The scheduler owns every job's [`JobState`] during a run: which jobs are ready, in what
//! order they start (highest `priority`, then file order), whether they fit `max_parallel`
//! and the free resources, when a failed attempt is retried, and what a final failure does
//! to the rest (skip its dependents under `continue_on_error`, else stop the run). It
//! holds no threads, reads no clock and does no I/O: the runner passes the time since the
//! run started as `now`, and the random number for retry jitter as `sample`, and gets back
//! the [`Transition`]s to record, each built through the table in [`crate::state`].
//!
//! There are no waves: a job is QUEUED the moment its last need is done and can start
//! while unrelated jobs still run.
//!
//! Invariants between calls:
//! - a job is QUEUED exactly when it is in the ready set or in the retry waiting set;
//! - `running` counts the RUNNING jobs, and `used` is the sum of their requests;
//! - `unmet[j]` counts the needs of a PENDING job `j` that are not done yet (done means
//!   SUCCESS, or SKIPPED by the user or `when`, which the format counts as done);
//! - `finished` counts the jobs in a final state; FAILED and TIMEOUT are left again only
//!   inside the `finish` call that entered them, when a retry is due.
//!
//! Costs: `start` is O(jobs + needs); `next` is O(shapes + log jobs) where shapes is the
//! number of distinct resource requests among ready jobs; `finish` is O(dependents ×
//! log jobs), except that a final failure visits what it skips or cancels.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::graph::Dag;
use crate::model::{Pipeline, Resources, RetryPolicy};
use crate::selection::{Disposition, SkipReason};
use crate::spec::RetryStatus;
use crate::state::{JobState, RunState, Transition};

/// The run-wide limits and behaviour, after command-line overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Jobs running at once; 0 is treated as 1 so a run always makes progress.
    pub max_parallel: usize,
    /// Whether independent jobs keep running after a final failure.
    pub continue_on_error: bool,
    /// What the machine offers. A job asking for more than this in a dimension is
    /// admitted when nothing else holds that dimension, so a capacity of 0 means that
    /// dimension is not limited.
    pub capacity: Resources,
}

/// How an attempt ended. Data, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command exited 0 and every post-check passed.
    Success,
    /// The command exited non-zero, was killed by a signal (`exit_code` None), or exited 0
    /// and a post-check failed (`exit_code` Some(0)).
    Failed {
        /// The exit code, if the command exited.
        exit_code: Option<i32>,
        /// What happened, for the user.
        reason: String,
    },
    /// The command ran past its timeout and was killed.
    TimedOut {
        /// After how long, and how it was stopped, for the user.
        reason: String,
    },
    /// A pre-check failed, so the command never ran. Never retried.
    PreCheckFailed {
        /// Which check and why, for the user.
        reason: String,
    },
    /// The attempt was killed because the run was cancelled.
    Cancelled,
}

impl Outcome {
    /// What a failed pre-check's attempt and job record as their reason.
    #[must_use]
    pub fn pre_check_reason(check: &str) -> String {
        format!("pre-check failed: {check}")
    }
}

/// A resource request or amount in whole units, so that adding and removing running
/// jobs' requests never drifts the way summing `f64` CPUs would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Amount {
    /// Millionths of a CPU core.
    cpu: u64,
    /// Bytes.
    memory: u64,
}

impl Amount {
    fn of(r: Resources) -> Amount {
        // `as` saturates and maps NaN and negatives to 0, which is what a request needs;
        // validation already rejects such values.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cpu = (r.cpu * 1_000_000.0).round() as u64;
        Amount {
            cpu,
            memory: r.memory,
        }
    }

    fn min(self, other: Amount) -> Amount {
        Amount {
            cpu: self.cpu.min(other.cpu),
            memory: self.memory.min(other.memory),
        }
    }

    fn fits(self, free: Amount) -> bool {
        self.cpu <= free.cpu && self.memory <= free.memory
    }

    fn plus(self, other: Amount) -> Amount {
        Amount {
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
        }
    }

    fn minus(self, other: Amount) -> Amount {
        Amount {
            cpu: self.cpu - other.cpu,
            memory: self.memory - other.memory,
        }
    }
}

/// Order among ready jobs: the smallest key starts first.
type Key = (Reverse<i64>, usize);

/// What the scheduler keeps of one job.
#[derive(Debug)]
struct JobInfo {
    id: String,
    priority: i64,
    retry: RetryPolicy,
    /// The request, already capped at the capacity.
    request: Amount,
    /// `Some` for a job the run starts as skipped.
    skip: Option<SkipReason>,
}

/// The state of one run's jobs and the decisions about them. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    dag: Dag,
    jobs: Vec<JobInfo>,
    state: Vec<JobState>,
    attempts: Vec<u32>,
    first_start: Vec<Option<Duration>>,
    unmet: Vec<usize>,
    /// Ready jobs grouped by request, so `next` checks each distinct request once
    /// instead of every job that does not fit.
    ready: BTreeMap<Amount, BTreeSet<Key>>,
    /// QUEUED retries by not-before time; they hold no slot and no resources.
    waiting: BTreeSet<(Duration, usize)>,
    max_parallel: usize,
    continue_on_error: bool,
    capacity: Amount,
    used: Amount,
    running: usize,
    finished: usize,
    started: bool,
    /// A job ended FAILED or TIMEOUT for good.
    failed: bool,
    /// `cancel` was called, with this reason.
    cancelled: Option<String>,
}

impl Scheduler {
    /// A scheduler for `pipeline`, every job PENDING. `dispositions` has one entry per
    /// job, by index (see [`crate::selection::select`]).
    ///
    /// # Panics
    ///
    /// Panics if `dispositions` does not have one entry per job.
    pub fn new(pipeline: &Pipeline, dispositions: &[Disposition], config: Config) -> Self {
        let n = pipeline.jobs.len();
        assert_eq!(dispositions.len(), n, "bug: one disposition per job");
        let capacity = Amount::of(config.capacity);
        let jobs = pipeline
            .jobs
            .iter()
            .zip(dispositions)
            .map(|(job, disposition)| JobInfo {
                id: job.id.0.clone(),
                priority: job.priority,
                retry: job.retry.clone(),
                request: Amount::of(job.resources).min(capacity),
                skip: match disposition {
                    Disposition::Run => None,
                    Disposition::Skip(reason) => Some(reason.clone()),
                },
            })
            .collect();
        let dag = pipeline.dag.clone();
        let unmet = (0..n).map(|j| dag.needs(j).len()).collect();
        Scheduler {
            dag,
            jobs,
            state: vec![JobState::Pending; n],
            attempts: vec![0; n],
            first_start: vec![None; n],
            unmet,
            ready: BTreeMap::new(),
            waiting: BTreeSet::new(),
            max_parallel: config.max_parallel.max(1),
            continue_on_error: config.continue_on_error,
            capacity,
            used: Amount::default(),
            running: 0,
            finished: 0,
            started: false,
            failed: false,
            cancelled: None,
        }
    }

    /// Begins the run: jobs skipped by their disposition go to SKIPPED (first, in file
    /// order), then every job whose needs are all done goes to QUEUED (in file order).
    /// A skipped job counts as done for the jobs that need it once its own needs are done:
    /// skipping `test` in build -> test -> deploy leaves deploy after build, not beside it.
    /// One whose work is done ([`SkipReason::work_is_done`]) counts as done at once.
    /// Calling it again does nothing.
    pub fn start(&mut self, now: Duration) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.started {
            return out;
        }
        self.started = true;
        for job in 0..self.jobs.len() {
            if self.state[job] != JobState::Pending {
                continue; // cancelled before the start
            }
            if let Some(reason) = &self.jobs[job].skip {
                let reason = reason.to_string();
                self.set(job, JobState::Skipped, reason, now, &mut out);
            }
        }
        for job in 0..self.jobs.len() {
            let done = self.jobs[job]
                .skip
                .as_ref()
                .is_some_and(SkipReason::work_is_done);
            if done || (self.passes_through(job) && self.dag.needs(job).is_empty()) {
                // From the skipped jobs whose work is done or that need nothing, on through
                // those that need only such jobs. What this frees is queued below, in file
                // order.
                self.release_dependents(job, now, &mut out, false);
            }
        }
        for job in 0..self.jobs.len() {
            if self.state[job] == JobState::Pending && self.unmet[job] == 0 {
                let reason = if self.dag.needs(job).is_empty() {
                    "no needs"
                } else {
                    "needs done"
                };
                self.queue(job, reason, now, &mut out);
            }
        }
        out
    }

    /// The job to start now, moving it QUEUED -> RUNNING, or None when nothing can start:
    /// `max_parallel` jobs run, no ready job fits the free resources, or the ready jobs
    /// are retries whose time has not come (see [`Scheduler::next_wakeup`]). Among the
    /// jobs that fit, the highest `priority` wins, then the lowest index; a job too big
    /// for the free resources does not hold back a smaller one behind it.
    pub fn next(&mut self, now: Duration) -> Option<(usize, Transition)> {
        // Due retries join the ready jobs even when no slot is free: left waiting, they
        // would keep `next_wakeup` in the past, and the runner would poll without sleeping.
        while let Some(&(at, job)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.waiting.pop_first();
            self.make_ready(job);
        }
        if self.running >= self.max_parallel {
            return None;
        }
        let free = self.capacity.minus(self.used);
        // Shapes are ordered by CPU first, so those needing more CPU than is free are
        // never looked at.
        let limit = Amount {
            cpu: free.cpu,
            memory: u64::MAX,
        };
        let mut best: Option<(Key, Amount)> = None;
        for (&shape, keys) in self.ready.range(..=limit) {
            if !shape.fits(free) {
                continue;
            }
            let &key = keys.first().expect("empty request groups are removed");
            if best.is_none_or(|(best_key, _)| key < best_key) {
                best = Some((key, shape));
            }
        }
        let ((_, job), shape) = best?;
        let keys = self.ready.get_mut(&shape).expect("found above");
        keys.pop_first();
        if keys.is_empty() {
            self.ready.remove(&shape);
        }
        self.attempts[job] += 1;
        self.first_start[job].get_or_insert(now);
        self.running += 1;
        self.used = self.used.plus(shape);
        let attempt = self.attempts[job];
        let reason = match self.jobs[job].retry.max {
            0 => format!("attempt {attempt}"),
            max => format!("attempt {attempt} of {}", u64::from(max) + 1),
        };
        let mut out = Vec::with_capacity(1);
        self.set(job, JobState::Running, reason, now, &mut out);
        out.pop().map(|t| (job, t))
    }

    /// Records how a RUNNING job's attempt ended and everything that follows from it:
    /// dependents queued, a retry scheduled, dependents skipped or the run stopped.
    ///
    /// A FAILED or TIMEOUT attempt is retried (-> QUEUED, waiting `retry_delay` without
    /// holding a slot) when retries are left, `on_status` or `on_exit_codes` match, the
    /// retry would start within `max_time` of the first attempt, and the run is not
    /// stopping. Otherwise the failure is final: under `continue_on_error` every PENDING
    /// job that transitively needs it is SKIPPED; without it every PENDING or QUEUED job
    /// is CANCELLED and RUNNING ones are left to finish. A job killed without
    /// [`Scheduler::cancel`] having been called cancels the rest of the run.
    ///
    /// # Panics
    ///
    /// Panics if `job` is not RUNNING: a bug in the runner.
    pub fn finish(
        &mut self,
        job: usize,
        outcome: Outcome,
        now: Duration,
        sample: f64,
    ) -> Vec<Transition> {
        assert_eq!(
            self.state[job],
            JobState::Running,
            "bug: finish({}) called for a job that is not running",
            self.jobs[job].id
        );
        self.running -= 1;
        self.used = self.used.minus(self.jobs[job].request);
        let mut out = Vec::new();
        match outcome {
            Outcome::Success => {
                self.set(job, JobState::Success, "succeeded".into(), now, &mut out);
                self.release_dependents(job, now, &mut out, true);
            }
            Outcome::Failed { exit_code, reason } => {
                let failure = Failure {
                    state: JobState::Failed,
                    status: Some(RetryStatus::Failed),
                    exit_code,
                    reason,
                };
                self.fail(job, failure, now, sample, &mut out);
            }
            Outcome::TimedOut { reason } => {
                let failure = Failure {
                    state: JobState::Timeout,
                    status: Some(RetryStatus::Timeout),
                    exit_code: None,
                    reason,
                };
                self.fail(job, failure, now, sample, &mut out);
            }
            Outcome::PreCheckFailed { reason } => {
                let failure = Failure {
                    state: JobState::Failed,
                    status: None,
                    exit_code: None,
                    reason: Outcome::pre_check_reason(&reason),
                };
                self.fail(job, failure, now, sample, &mut out);
            }
            Outcome::Cancelled => {
                let reason = self.cancelled.clone().unwrap_or_else(|| "cancelled".into());
                self.set(job, JobState::Cancelled, reason, now, &mut out);
                if self.cancelled.is_none() {
                    let reason = format!("run cancelled: {} was cancelled", self.jobs[job].id);
                    self.cancel_unstarted(&reason, now, &mut out);
                    self.cancelled = Some(reason);
                }
            }
        }
        out
    }

    /// Cancels the run: every PENDING or QUEUED job, including retries waiting for their
    /// time, goes to CANCELLED with `reason`. RUNNING jobs stay RUNNING until the runner
    /// has killed them and calls [`Scheduler::finish`] with [`Outcome::Cancelled`]. Once
    /// every job is final there is nothing to cancel, and the run's state stays as it is.
    pub fn cancel(&mut self, now: Duration, reason: &str) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.is_done() {
            return out;
        }
        self.cancelled.get_or_insert_with(|| reason.to_owned());
        self.cancel_unstarted(reason, now, &mut out);
        out
    }

    /// The earliest time a waiting retry may start, if one is waiting. The runner sleeps
    /// until then (or an event) and calls [`Scheduler::next`] again.
    pub fn next_wakeup(&self) -> Option<Duration> {
        self.waiting.first().map(|&(at, _)| at)
    }

    /// Whether every job is in a final state.
    pub fn is_done(&self) -> bool {
        self.finished == self.jobs.len()
    }

    /// How many jobs are RUNNING.
    pub fn running(&self) -> usize {
        self.running
    }

    /// The job's current state.
    pub fn state(&self, job: usize) -> JobState {
        self.state[job]
    }

    /// How many attempts of the job have started.
    pub fn attempts(&self, job: usize) -> u32 {
        self.attempts[job]
    }

    /// RUNNING until every job is final; then CANCELLED if [`Scheduler::cancel`] was
    /// called, FAILED if a job ended FAILED or TIMEOUT, else SUCCESS.
    pub fn run_state(&self) -> RunState {
        if !self.is_done() {
            RunState::Running
        } else if self.cancelled.is_some() {
            RunState::Cancelled
        } else if self.failed {
            RunState::Failed
        } else {
            RunState::Success
        }
    }

    /// The one place a job's state changes: through the table, keeping `finished` true.
    fn set(
        &mut self,
        job: usize,
        to: JobState,
        reason: String,
        now: Duration,
        out: &mut Vec<Transition>,
    ) {
        let from = self.state[job];
        out.push(Transition::new(job, from, to, reason, now));
        self.state[job] = to;
        match (from.is_final(), to.is_final()) {
            (false, true) => self.finished += 1,
            (true, false) => self.finished -= 1,
            _ => {}
        }
    }

    fn queue(&mut self, job: usize, reason: &str, now: Duration, out: &mut Vec<Transition>) {
        self.set(job, JobState::Queued, reason.into(), now, out);
        self.make_ready(job);
    }

    fn make_ready(&mut self, job: usize) {
        let info = &self.jobs[job];
        self.ready
            .entry(info.request)
            .or_default()
            .insert((Reverse(info.priority), job));
    }

    /// A need of each dependent is done: queue those with none left (when `queue`), and go
    /// on through a skipped one, which is done once its own needs are.
    fn release_dependents(
        &mut self,
        job: usize,
        now: Duration,
        out: &mut Vec<Transition>,
        queue: bool,
    ) {
        let mut done = vec![job];
        while let Some(job) = done.pop() {
            for i in 0..self.dag.dependents(job).len() {
                let dependent = self.dag.dependents(job)[i];
                self.unmet[dependent] -= 1;
                if self.unmet[dependent] > 0 {
                    continue;
                }
                if self.passes_through(dependent) {
                    done.push(dependent);
                } else if queue && self.state[dependent] == JobState::Pending {
                    self.queue(dependent, "needs done", now, out);
                }
            }
        }
    }

    /// Whether `job` was skipped by its disposition without its work being done (`--skip`,
    /// `--only`, `when`, left by `--failed-only`): it stands in its dependents' way only
    /// until its own needs are done, and a failure before it skips them as if it were not
    /// there.
    fn passes_through(&self, job: usize) -> bool {
        self.jobs[job]
            .skip
            .as_ref()
            .is_some_and(|r| !r.work_is_done())
            && self.state[job] == JobState::Skipped
    }

    fn fail(
        &mut self,
        job: usize,
        failure: Failure,
        now: Duration,
        sample: f64,
        out: &mut Vec<Transition>,
    ) {
        match self.retry_plan(job, &failure, now, sample) {
            Ok((delay, not_before)) => {
                let retry = format!(
                    "retry {} of {} in {} ({})",
                    self.attempts[job],
                    self.jobs[job].retry.max,
                    seconds(delay),
                    failure.cause()
                );
                self.set(job, failure.state, failure.reason, now, out);
                self.set(job, JobState::Queued, retry, now, out);
                self.waiting.insert((not_before, job));
            }
            Err(why) => {
                let reason = match why {
                    Some(why) => format!("{}; not retried: {why}", failure.reason),
                    None => failure.reason,
                };
                self.set(job, failure.state, reason, now, out);
                self.failed = true;
                if self.continue_on_error {
                    self.skip_dependents(job, now, out);
                } else {
                    let reason = format!("run failed: {} failed", self.jobs[job].id);
                    self.cancel_unstarted(&reason, now, out);
                }
            }
        }
    }

    /// `Ok((delay, not-before time))` when the failed attempt is retried, else why not
    /// (None when the job asked for no retries, so there is nothing to explain).
    fn retry_plan(
        &self,
        job: usize,
        failure: &Failure,
        now: Duration,
        sample: f64,
    ) -> Result<(Duration, Duration), Option<String>> {
        let policy = &self.jobs[job].retry;
        let Some(status) = failure.status else {
            return Err(None); // a pre-check failure: the command never ran
        };
        if policy.max == 0 {
            return Err(None);
        }
        if self.cancelled.is_some() || (self.failed && !self.continue_on_error) {
            return Err(Some("the run is stopping".into()));
        }
        let matches = policy.on_status.contains(&status)
            || (status == RetryStatus::Failed
                && failure
                    .exit_code
                    .is_some_and(|code| policy.on_exit_codes.contains(&code)));
        if !matches {
            return Err(Some(
                "retry.on_status and retry.on_exit_codes do not cover it".into(),
            ));
        }
        let retry = self.attempts[job];
        if retry > policy.max {
            return Err(Some(format!("all {} retries used", policy.max)));
        }
        let delay = retry_delay(policy, retry, sample);
        let not_before = now.saturating_add(delay);
        if let Some(max_time) = policy.max_time {
            let first = self.first_start[job].unwrap_or(now);
            if not_before > first.saturating_add(max_time) {
                return Err(Some(format!(
                    "retry {retry} would start after retry.max_time ({})",
                    seconds(max_time)
                )));
            }
        }
        Ok((delay, not_before))
    }

    /// Every PENDING job that transitively needs `job` -> SKIPPED, in file order. The walk
    /// goes on through jobs skipped without their work done (they stand for their needs) and
    /// stops at other final jobs: one already skipped for another failure had its
    /// dependents visited.
    fn skip_dependents(&mut self, job: usize, now: Duration, out: &mut Vec<Transition>) {
        let mut found = Vec::new();
        let mut stack = vec![job];
        let mut seen = BTreeSet::new();
        while let Some(node) = stack.pop() {
            for &dependent in self.dag.dependents(node) {
                let pending = self.state[dependent] == JobState::Pending;
                if (pending || self.passes_through(dependent)) && seen.insert(dependent) {
                    if pending {
                        found.push(dependent);
                    }
                    stack.push(dependent);
                }
            }
        }
        found.sort_unstable();
        let reason = format!("upstream failed: {}", self.jobs[job].id);
        for dependent in found {
            self.set(dependent, JobState::Skipped, reason.clone(), now, out);
        }
    }

    /// Every PENDING or QUEUED job -> CANCELLED, in file order. Runs at most a couple of
    /// times per run, so a pass over all jobs is fine here.
    fn cancel_unstarted(&mut self, reason: &str, now: Duration, out: &mut Vec<Transition>) {
        self.ready.clear();
        self.waiting.clear();
        for job in 0..self.jobs.len() {
            if matches!(self.state[job], JobState::Pending | JobState::Queued) {
                self.set(job, JobState::Cancelled, reason.to_owned(), now, out);
            }
        }
    }
}

/// A failed attempt, as `fail` needs it.
struct Failure {
    /// FAILED or TIMEOUT.
    state: JobState,
    /// The status `on_status` is matched against; None = never retried.
    status: Option<RetryStatus>,
    exit_code: Option<i32>,
    reason: String,
}

impl Failure {
    /// The short cause shown in a retry's reason.
    fn cause(&self) -> String {
        match (self.state, self.exit_code) {
            (JobState::Timeout, _) => "timed out".into(),
            (_, Some(code)) if code != 0 => format!("exit code {code}"),
            _ => self.reason.clone(),
        }
    }
}

/// The wait before retry number `retry` (1 for the first retry): `delay *
/// backoff^(retry-1)`, scaled by `1 - jitter + 2 * jitter * sample`, a factor in
/// `[1 - jitter, 1 + jitter]` for `sample` in `[0, 1)`. Never negative; a wait too long
/// to represent is [`Duration::MAX`].
pub fn retry_delay(policy: &RetryPolicy, retry: u32, sample: f64) -> Duration {
    let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    let factor = 1.0 - jitter + 2.0 * jitter * sample.clamp(0.0, 1.0);
    let secs = policy.delay.as_secs_f64() * policy.backoff.powi(exponent) * factor;
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `1.5s`, `0s`, `120s`: seconds with at most three decimals.
fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::load::{LoadOptions, load_text};
    use crate::model::Job;
    use crate::source::Format;
    use crate::state::allowed;
    use crate::template::Text;
    use crate::validate::{Options, validate};

    /// A pipeline from `(id, extra TOML lines)`; every job runs `true`.
    fn pipeline(jobs: &[(&str, &str)]) -> Pipeline {
        let mut text = String::new();
        for (id, extra) in jobs {
            text += &format!("[jobs.{id}]\ncommand = \"true\"\n{extra}\n");
        }
        // Only read as a name; its folder must exist because it is the working dir.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scheduler-test.toml");
        let (doc, _) = load_text(&path, text, Format::Toml, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (p, diags) = validate(&doc, &Options::default());
        p.unwrap_or_else(|| panic!("{diags:?}"))
    }

    fn config(max_parallel: usize, continue_on_error: bool) -> Config {
        Config {
            max_parallel,
            continue_on_error,
            capacity: Resources::default(),
        }
    }

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn exit(code: i32) -> Outcome {
        Outcome::Failed {
            exit_code: Some(code),
            reason: format!("exit code {code}"),
        }
    }

    fn timed_out() -> Outcome {
        Outcome::TimedOut {
            reason: "timed out".into(),
        }
    }

    /// A scheduler under test. Every transition it returns goes through `record`, which
    /// checks it against the table and the job's previous state, and checks the
    /// scheduler's counters against what the transitions said.
    struct Sim {
        s: Scheduler,
        ids: Vec<String>,
        seen: Vec<JobState>,
        log: Vec<Transition>,
    }

    impl Sim {
        fn new(jobs: &[(&str, &str)], config: Config) -> Sim {
            Sim::with(jobs, config, &vec![Disposition::Run; jobs.len()])
        }

        fn with(jobs: &[(&str, &str)], config: Config, dispositions: &[Disposition]) -> Sim {
            let p = pipeline(jobs);
            Sim {
                s: Scheduler::new(&p, dispositions, config),
                ids: p.jobs.iter().map(|j| j.id.0.clone()).collect(),
                seen: vec![JobState::Pending; p.jobs.len()],
                log: Vec::new(),
            }
        }

        fn idx(&self, id: &str) -> usize {
            self.ids.iter().position(|i| i == id).expect("known id")
        }

        fn record(&mut self, ts: Vec<Transition>) -> Vec<String> {
            let mut names = Vec::new();
            for t in ts {
                assert!(allowed(t.from, t.to), "{t:?}");
                assert_eq!(
                    t.from, self.seen[t.job],
                    "{t:?} does not start where the job was"
                );
                self.seen[t.job] = t.to;
                names.push(format!("{} {}", self.ids[t.job], t.to));
                self.log.push(t);
            }
            for (job, &state) in self.seen.iter().enumerate() {
                assert_eq!(self.s.state(job), state, "job {}", self.ids[job]);
            }
            let running = self
                .seen
                .iter()
                .filter(|&&s| s == JobState::Running)
                .count();
            assert_eq!(self.s.running(), running);
            assert_eq!(self.s.is_done(), self.seen.iter().all(|s| s.is_final()));
            names
        }

        fn start(&mut self, secs: f64) -> Vec<String> {
            let ts = self.s.start(at(secs));
            self.record(ts)
        }

        fn next(&mut self, secs: f64) -> Option<String> {
            let (job, t) = self.s.next(at(secs))?;
            assert_eq!(
                (t.job, t.from, t.to),
                (job, JobState::Queued, JobState::Running)
            );
            self.record(vec![t]);
            Some(self.ids[job].clone())
        }

        /// Starts jobs until nothing more can start.
        fn next_all(&mut self, secs: f64) -> Vec<String> {
            std::iter::from_fn(|| self.next(secs)).collect()
        }

        fn finish(&mut self, id: &str, outcome: Outcome, secs: f64) -> Vec<String> {
            self.finish_with(id, outcome, secs, 0.5)
        }

        fn finish_with(
            &mut self,
            id: &str,
            outcome: Outcome,
            secs: f64,
            sample: f64,
        ) -> Vec<String> {
            let ts = self.s.finish(self.idx(id), outcome, at(secs), sample);
            self.record(ts)
        }

        fn cancel(&mut self, secs: f64, reason: &str) -> Vec<String> {
            let ts = self.s.cancel(at(secs), reason);
            self.record(ts)
        }

        /// The reason of the job's latest transition.
        fn reason(&self, id: &str) -> &str {
            let job = self.idx(id);
            let t = self
                .log
                .iter()
                .rev()
                .find(|t| t.job == job)
                .expect("a transition");
            &t.reason
        }

        fn state(&self, id: &str) -> JobState {
            self.s.state(self.idx(id))
        }
    }

    #[test]
    fn chain_runs_in_order() {
        let mut r = Sim::new(
            &[("a", ""), ("b", "needs = ['a']"), ("c", "needs = ['b']")],
            config(4, false),
        );
        assert_eq!(r.start(0.0), ["a QUEUED"]);
        assert_eq!(r.reason("a"), "no needs");
        assert_eq!(r.next_all(0.0), ["a"]);
        assert_eq!(r.reason("a"), "attempt 1");
        assert_eq!(
            r.finish("a", Outcome::Success, 1.0),
            ["a SUCCESS", "b QUEUED"]
        );
        assert_eq!(r.reason("b"), "needs done");
        assert_eq!(r.next_all(1.0), ["b"]);
        assert_eq!(
            r.finish("b", Outcome::Success, 2.0),
            ["b SUCCESS", "c QUEUED"]
        );
        assert_eq!(r.next_all(2.0), ["c"]);
        assert_eq!(r.s.run_state(), RunState::Running);
        assert_eq!(r.finish("c", Outcome::Success, 3.0), ["c SUCCESS"]);
        assert_eq!(r.s.run_state(), RunState::Success);
        assert_eq!(r.log.last().map(|t| t.at), Some(at(3.0)));
    }

    #[test]
    fn diamond_waits_for_both_sides() {
        let jobs = [
            ("a", ""),
            ("b", "needs = ['a']"),
            ("c", "needs = ['a']"),
            ("d", "needs = ['b', 'c']"),
        ];
        let mut r = Sim::new(&jobs, config(2, false));
        assert_eq!(r.start(0.0), ["a QUEUED"]);
        assert_eq!(r.next_all(0.0), ["a"]);
        assert_eq!(
            r.finish("a", Outcome::Success, 1.0),
            ["a SUCCESS", "b QUEUED", "c QUEUED"]
        );
        assert_eq!(r.next_all(1.0), ["b", "c"]);
        assert_eq!(r.finish("c", Outcome::Success, 2.0), ["c SUCCESS"]);
        assert_eq!(
            r.finish("b", Outcome::Success, 3.0),
            ["b SUCCESS", "d QUEUED"]
        );
        assert_eq!(r.next_all(3.0), ["d"]);
        assert_eq!(r.finish("d", Outcome::Success, 4.0), ["d SUCCESS"]);
        assert_eq!(r.s.run_state(), RunState::Success);
    }

    #[test]
    fn no_waves_a_ready_job_starts_while_a_long_one_runs() {
        let jobs = [("long", ""), ("b", ""), ("c", "needs = ['b']")];
        let mut r = Sim::new(&jobs, config(2, false));
        assert_eq!(r.start(0.0), ["long QUEUED", "b QUEUED"]);
        assert_eq!(r.next_all(0.0), ["long", "b"]);
        assert_eq!(
            r.finish("b", Outcome::Success, 1.0),
            ["b SUCCESS", "c QUEUED"]
        );
        assert_eq!(r.next_all(1.0), ["c"]);
        assert_eq!(r.state("long"), JobState::Running);
    }

    #[test]
    fn max_parallel_caps_running_jobs() {
        let jobs = [("a", ""), ("b", ""), ("c", ""), ("d", ""), ("e", "")];
        let mut r = Sim::new(&jobs, config(2, false));
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a", "b"]);
        assert_eq!(r.s.running(), 2);
        r.finish("b", Outcome::Success, 1.0);
        assert_eq!(r.next_all(1.0), ["c"]);
        // 0 would never start anything; it means 1.
        let mut r = Sim::new(&jobs, config(0, false));
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a"]);
    }

    #[test]
    fn priority_first_then_file_order() {
        let jobs = [
            ("a", ""),
            ("b", "priority = 5"),
            ("c", "priority = 5"),
            ("d", "priority = -1"),
            ("e", ""),
        ];
        let mut r = Sim::new(&jobs, config(1, false));
        r.start(0.0);
        let mut order = Vec::new();
        while let Some(id) = r.next(0.0) {
            r.finish(&id, Outcome::Success, 1.0);
            order.push(id);
        }
        assert_eq!(order, ["b", "c", "a", "e", "d"]);
    }

    #[test]
    fn resources_admit_only_what_fits() {
        let cpu3 = Config {
            capacity: Resources {
                cpu: 3.0,
                memory: 0,
            },
            ..config(4, false)
        };
        let two = "resources = { cpu = 2 }";
        let mut r = Sim::new(&[("a", two), ("b", two)], cpu3);
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a"]);
        r.finish("a", Outcome::Success, 1.0);
        assert_eq!(r.next_all(1.0), ["b"]);

        // The small job behind the big one that does not fit starts first.
        let jobs = [
            ("a", two),
            ("b", "resources = { cpu = 2 }\npriority = 1"),
            ("c", "resources = { cpu = 1 }"),
        ];
        let mut r = Sim::new(&jobs, cpu3);
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["b", "c"]);
        r.finish("c", Outcome::Success, 1.0);
        assert_eq!(r.next(1.0), None, "a still does not fit");
        r.finish("b", Outcome::Success, 2.0);
        assert_eq!(r.next_all(2.0), ["a"]);

        // Memory counts too, and a request bigger than the machine runs alone.
        let mem = Config {
            capacity: Resources {
                cpu: 3.0,
                memory: 4 << 30,
            },
            ..config(4, false)
        };
        let jobs = [
            ("a", "resources = { memory = \"3GiB\" }"),
            ("b", "resources = { memory = \"2GiB\" }"),
            ("huge", "resources = { cpu = 8 }"),
        ];
        let mut r = Sim::new(&jobs, mem);
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a", "huge"]);
        r.finish("a", Outcome::Success, 1.0);
        assert_eq!(r.next_all(1.0), ["b"]);
    }

    #[test]
    fn retry_then_succeed() {
        let jobs = [
            ("a", "retry = { max = 2, delay = \"1s\", backoff = 2 }"),
            ("b", ""),
        ];
        let mut r = Sim::new(&jobs, config(1, false));
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a"]);
        assert_eq!(r.reason("a"), "attempt 1 of 3");
        assert_eq!(r.finish("a", exit(1), 10.0), ["a FAILED", "a QUEUED"]);
        assert_eq!(r.log[r.log.len() - 2].reason, "exit code 1");
        assert_eq!(r.reason("a"), "retry 1 of 2 in 1s (exit code 1)");
        assert_eq!(r.s.next_wakeup(), Some(at(11.0)));
        // The waiting retry holds no slot: b starts in it.
        assert_eq!(r.next_all(10.0), ["b"]);
        r.finish("b", Outcome::Success, 10.5);
        assert_eq!(r.next(10.9), None, "not before 11s");
        assert_eq!(r.next_all(11.0), ["a"]);
        assert_eq!(r.s.next_wakeup(), None);
        assert_eq!((r.reason("a"), r.s.attempts(0)), ("attempt 2 of 3", 2));
        assert_eq!(r.finish("a", exit(1), 12.0), ["a FAILED", "a QUEUED"]);
        assert_eq!(r.reason("a"), "retry 2 of 2 in 2s (exit code 1)");
        assert_eq!(r.s.next_wakeup(), Some(at(14.0)));
        assert_eq!(r.next_all(14.0), ["a"]);
        assert_eq!(r.finish("a", Outcome::Success, 15.0), ["a SUCCESS"]);
        assert_eq!(r.s.attempts(0), 3);
        assert_eq!(r.s.run_state(), RunState::Success);
    }

    #[test]
    fn retries_exhausted_is_a_final_failure() {
        let mut r = Sim::new(&[("a", "retry = { max = 1 }")], config(1, false));
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(r.finish("a", exit(2), 1.0), ["a FAILED", "a QUEUED"]);
        assert_eq!(r.reason("a"), "retry 1 of 1 in 0s (exit code 2)");
        assert_eq!(r.next_all(1.0), ["a"]);
        assert_eq!(r.finish("a", exit(2), 2.0), ["a FAILED"]);
        assert_eq!(
            r.reason("a"),
            "exit code 2; not retried: all 1 retries used"
        );
        assert_eq!(r.s.run_state(), RunState::Failed);
    }

    #[test]
    fn exit_codes_or_status() {
        // Exit codes alone: those codes, and timeouts (the format's default on_status).
        let mut r = Sim::new(
            &[("a", "retry = { max = 5, on_exit_codes = [3] }")],
            config(1, false),
        );
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(r.finish("a", exit(3), 1.0), ["a FAILED", "a QUEUED"]);
        r.next_all(1.0);
        assert_eq!(r.finish("a", timed_out(), 2.0), ["a TIMEOUT", "a QUEUED"]);
        assert_eq!(r.reason("a"), "retry 2 of 5 in 0s (timed out)");
        r.next_all(2.0);
        assert_eq!(r.finish("a", exit(4), 3.0), ["a FAILED"]);
        assert_eq!(
            r.reason("a"),
            "exit code 4; not retried: retry.on_status and retry.on_exit_codes do not cover it"
        );

        // A listed exit code is retried even though FAILED is not in on_status.
        let retry = "retry = { max = 1, on_status = ['TIMEOUT'], on_exit_codes = [3] }";
        let mut r = Sim::new(&[("a", retry)], config(1, false));
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(r.finish("a", exit(3), 1.0), ["a FAILED", "a QUEUED"]);
    }

    #[test]
    fn timeout_only_does_not_retry_an_exit_code() {
        let mut r = Sim::new(
            &[("a", "retry = { max = 3, on_status = ['TIMEOUT'] }")],
            config(1, false),
        );
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(r.finish("a", exit(1), 1.0), ["a FAILED"]);
        assert_eq!(r.s.run_state(), RunState::Failed);
        // FAILED only: a signal or a failed post-check is retried, a timeout is not.
        let mut r = Sim::new(
            &[("a", "retry = { max = 3, on_status = ['FAILED'] }")],
            config(1, false),
        );
        r.start(0.0);
        r.next_all(0.0);
        let post = Outcome::Failed {
            exit_code: Some(0),
            reason: "post-check failed: out.txt is empty".into(),
        };
        assert_eq!(r.finish("a", post, 1.0), ["a FAILED", "a QUEUED"]);
        assert_eq!(
            r.reason("a"),
            "retry 1 of 3 in 0s (post-check failed: out.txt is empty)"
        );
        r.next_all(1.0);
        let signal = Outcome::Failed {
            exit_code: None,
            reason: "killed by SIGKILL".into(),
        };
        assert_eq!(r.finish("a", signal, 2.0), ["a FAILED", "a QUEUED"]);
        r.next_all(2.0);
        assert_eq!(r.finish("a", timed_out(), 3.0), ["a TIMEOUT"]);
        assert_eq!(r.s.run_state(), RunState::Failed);
    }

    #[test]
    fn max_time_stops_a_retry() {
        let retry = "retry = { max = 5, delay = \"10s\", max_time = \"15s\" }";
        let mut r = Sim::new(&[("a", retry)], config(1, false));
        r.start(0.0);
        r.next_all(1.0);
        // First attempt began at 1s: a retry may start until 16s.
        assert_eq!(r.finish("a", exit(1), 5.0), ["a FAILED", "a QUEUED"]);
        assert_eq!(r.next_all(15.0), ["a"]);
        assert_eq!(r.finish("a", exit(1), 6.5), ["a FAILED"]);
        assert_eq!(
            r.reason("a"),
            "exit code 1; not retried: retry 2 would start after retry.max_time (15s)"
        );
    }

    #[test]
    fn pre_check_failure_is_not_retried() {
        let mut r = Sim::new(
            &[("a", "retry = { max = 3 }"), ("b", "needs = ['a']")],
            config(1, false),
        );
        r.start(0.0);
        r.next_all(0.0);
        let outcome = Outcome::PreCheckFailed {
            reason: "file_exists: in.csv is missing".into(),
        };
        assert_eq!(r.finish("a", outcome, 1.0), ["a FAILED", "b CANCELLED"]);
        assert_eq!(
            r.log[0..].iter().rev().nth(1).map(|t| t.reason.as_str()),
            Some("pre-check failed: file_exists: in.csv is missing")
        );
        assert_eq!(r.s.attempts(0), 1);
        assert_eq!(r.s.run_state(), RunState::Failed);
    }

    #[test]
    fn continue_on_error_skips_only_dependents() {
        let jobs = [
            ("a", ""),
            ("b", "needs = ['a']"),
            ("c", "needs = ['b']"),
            ("d", ""),
            ("e", "needs = ['c', 'd']"),
            ("f", "needs = ['d']"),
        ];
        let mut r = Sim::new(&jobs, config(2, true));
        assert_eq!(r.start(0.0), ["a QUEUED", "d QUEUED"]);
        assert_eq!(r.next_all(0.0), ["a", "d"]);
        assert_eq!(
            r.finish("a", exit(1), 1.0),
            ["a FAILED", "b SKIPPED", "c SKIPPED", "e SKIPPED"]
        );
        assert_eq!(r.reason("e"), "upstream failed: a");
        assert_eq!(
            r.finish("d", Outcome::Success, 2.0),
            ["d SUCCESS", "f QUEUED"]
        );
        assert_eq!(r.next_all(2.0), ["f"]);
        assert_eq!(r.s.run_state(), RunState::Running);
        r.finish("f", Outcome::Success, 3.0);
        assert_eq!(r.s.run_state(), RunState::Failed);
    }

    #[test]
    fn failure_without_continue_cancels_pending_and_lets_running_finish() {
        let jobs = [
            ("a", ""),
            ("b", "retry = { max = 2 }"),
            ("c", ""),
            ("d", "needs = ['a']"),
            ("e", ""),
        ];
        let mut r = Sim::new(&jobs, config(3, false));
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a", "b", "c"]);
        assert_eq!(
            r.finish("a", exit(1), 1.0),
            ["a FAILED", "d CANCELLED", "e CANCELLED"]
        );
        assert_eq!(r.reason("e"), "run failed: a failed");
        assert_eq!(r.next(1.0), None);
        assert_eq!(
            r.finish("b", exit(1), 2.0),
            ["b FAILED"],
            "no retry once the run stops"
        );
        assert_eq!(
            r.reason("b"),
            "exit code 1; not retried: the run is stopping"
        );
        assert_eq!(r.s.run_state(), RunState::Running);
        assert_eq!(r.finish("c", Outcome::Success, 3.0), ["c SUCCESS"]);
        assert_eq!(r.s.run_state(), RunState::Failed);
    }

    #[test]
    fn cancel_while_a_retry_waits() {
        let jobs = [
            ("a", "retry = { max = 2, delay = \"5s\" }"),
            ("b", "needs = ['a']"),
        ];
        let mut r = Sim::new(&jobs, config(1, false));
        r.start(0.0);
        r.next_all(0.0);
        r.finish("a", exit(1), 1.0);
        assert_eq!(r.s.next_wakeup(), Some(at(6.0)));
        assert_eq!(r.cancel(2.0, "interrupted"), ["a CANCELLED", "b CANCELLED"]);
        assert_eq!(r.reason("b"), "interrupted");
        assert_eq!((r.s.next_wakeup(), r.next(10.0)), (None, None));
        assert_eq!(r.s.run_state(), RunState::Cancelled);
    }

    #[test]
    fn cancel_with_running_jobs() {
        let jobs = [("a", ""), ("b", ""), ("c", "needs = ['a']"), ("d", "")];
        let mut r = Sim::new(&jobs, config(2, false));
        r.start(0.0);
        assert_eq!(r.next_all(0.0), ["a", "b"]);
        assert_eq!(r.cancel(1.0, "interrupted"), ["c CANCELLED", "d CANCELLED"]);
        assert_eq!(r.s.running(), 2);
        assert_eq!(r.s.run_state(), RunState::Running);
        assert_eq!(r.finish("a", Outcome::Cancelled, 2.0), ["a CANCELLED"]);
        assert_eq!(r.reason("a"), "interrupted");
        // b ended on its own before it was killed.
        assert_eq!(r.finish("b", Outcome::Success, 2.5), ["b SUCCESS"]);
        assert_eq!(r.s.run_state(), RunState::Cancelled);
        assert_eq!(r.cancel(3.0, "again"), Vec::<String>::new());
    }

    #[test]
    fn a_job_killed_without_cancel_cancels_the_run() {
        let mut r = Sim::new(&[("a", ""), ("b", "needs = ['a']")], config(1, true));
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(
            r.finish("a", Outcome::Cancelled, 1.0),
            ["a CANCELLED", "b CANCELLED"]
        );
        assert_eq!(r.reason("b"), "run cancelled: a was cancelled");
        assert_eq!(r.s.run_state(), RunState::Cancelled);
    }

    #[test]
    fn skipped_jobs_count_as_done() {
        let jobs = [("a", ""), ("b", "needs = ['a']"), ("c", "needs = ['b']")];
        let skip = [
            Disposition::Skip(SkipReason::Flag),
            Disposition::Run,
            Disposition::Run,
        ];
        let mut r = Sim::with(&jobs, config(1, false), &skip);
        assert_eq!(r.start(0.0), ["a SKIPPED", "b QUEUED"]);
        assert_eq!(
            (r.reason("a"), r.reason("b")),
            ("skipped by --skip", "needs done")
        );

        let only = [
            Disposition::Skip(SkipReason::NotSelected),
            Disposition::Skip(SkipReason::When),
            Disposition::Run,
        ];
        let mut r = Sim::with(&jobs, config(1, false), &only);
        assert_eq!(r.start(0.0), ["a SKIPPED", "b SKIPPED", "c QUEUED"]);
        assert_eq!(
            (r.reason("a"), r.reason("b")),
            ("not selected by --only", "`when` is false")
        );
        assert_eq!(
            r.start(0.0),
            Vec::<String>::new(),
            "start twice does nothing"
        );
        r.next_all(0.0);
        r.finish("c", Outcome::Success, 1.0);
        assert_eq!(r.s.run_state(), RunState::Success, "skips are not failures");

        let all = vec![Disposition::Skip(SkipReason::Flag); 3];
        let mut r = Sim::with(&jobs, config(1, false), &all);
        r.start(0.0);
        assert_eq!(r.s.run_state(), RunState::Success);
    }

    #[test]
    fn a_skipped_job_keeps_the_order_of_what_it_stands_between() {
        // build -> test (skipped) -> deploy, and a job that needs only the skipped test.
        let jobs = [
            ("build", ""),
            ("test", "needs = ['build']"),
            ("deploy", "needs = ['test']"),
            ("notes", "needs = ['test']"),
        ];
        let skip_test = [
            Disposition::Run,
            Disposition::Skip(SkipReason::When),
            Disposition::Run,
            Disposition::Run,
        ];
        let mut r = Sim::with(&jobs, config(4, true), &skip_test);
        assert_eq!(r.start(0.0), ["test SKIPPED", "build QUEUED"]);
        assert_eq!(r.next_all(0.0), ["build"], "deploy waits for build");
        assert_eq!(
            r.finish("build", Outcome::Success, 1.0),
            ["build SUCCESS", "deploy QUEUED", "notes QUEUED"]
        );
        // A failure before the skipped job skips what is after it.
        let mut r = Sim::with(&jobs, config(4, true), &skip_test);
        r.start(0.0);
        r.next_all(0.0);
        assert_eq!(
            r.finish("build", exit(1), 1.0),
            ["build FAILED", "deploy SKIPPED", "notes SKIPPED"]
        );
        assert_eq!(r.reason("deploy"), "upstream failed: build");
        assert_eq!(r.s.run_state(), RunState::Failed);
        // A job whose work is done (it succeeded in the run resumed, or was marked so) lets
        // what needs it go at once, whatever runs again before it.
        let resumed = [
            Disposition::Run,
            Disposition::Skip(SkipReason::Succeeded { run: 1 }),
            Disposition::Run,
            Disposition::Run,
        ];
        let mut r = Sim::with(&jobs, config(4, true), &resumed);
        assert_eq!(
            r.start(0.0),
            [
                "test SKIPPED",
                "build QUEUED",
                "deploy QUEUED",
                "notes QUEUED"
            ]
        );
        r.next_all(0.0);
        assert_eq!(r.finish("build", exit(1), 1.0), ["build FAILED"]);
    }

    #[test]
    fn retry_delay_table() {
        let policy = |delay: f64, backoff: f64, jitter: f64| RetryPolicy {
            max: 10,
            delay: at(delay),
            backoff,
            jitter,
            max_time: None,
            on_exit_codes: vec![],
            on_status: vec![],
        };
        let table = [
            // (delay, backoff, jitter, retry, sample, expected seconds)
            (1.0, 2.0, 0.0, 1, 0.5, 1.0),
            (1.0, 2.0, 0.0, 2, 0.5, 2.0),
            (1.0, 2.0, 0.0, 3, 0.5, 4.0),
            (1.0, 0.5, 0.0, 3, 0.5, 0.25),
            (1.5, 1.0, 0.0, 4, 0.9, 1.5),
            (1.0, 2.0, 0.0, 0, 0.5, 1.0), // retry 0 reads as the first
            (2.0, 1.0, 0.5, 1, 0.0, 1.0), // lowest factor
            (2.0, 1.0, 0.5, 1, 0.5, 2.0),
            (2.0, 1.0, 1.0, 1, 0.0, 0.0), // full jitter can reach zero, never below
            (0.0, 3.0, 0.5, 5, 0.7, 0.0),
        ];
        for (delay, backoff, jitter, retry, sample, expected) in table {
            let got = retry_delay(&policy(delay, backoff, jitter), retry, sample);
            assert_eq!(
                got,
                at(expected),
                "{delay} {backoff} {jitter} {retry} {sample}"
            );
        }
        // Just under the top of the range.
        let high = retry_delay(&policy(2.0, 1.0, 0.5), 1, 0.999_999);
        assert!(high < at(3.0) && high > at(2.999), "{high:?}");
        // Out-of-range samples and huge waits stay in bounds.
        assert_eq!(retry_delay(&policy(2.0, 1.0, 0.5), 1, -1.0), at(1.0));
        assert_eq!(
            retry_delay(&policy(1.0, 10.0, 0.0), 400, 0.5),
            Duration::MAX
        );
        assert_eq!(seconds(at(1.5)), "1.5s");
        assert_eq!(seconds(at(0.25)), "0.25s");
        assert_eq!(seconds(Duration::ZERO), "0s");
        assert_eq!(seconds(at(120.0)), "120s");
    }

    #[test]
    fn run_state_for_each_ending() {
        let mut r = Sim::new(&[("a", "")], config(1, false));
        assert_eq!(r.s.run_state(), RunState::Running);
        r.start(0.0);
        r.next_all(0.0);
        r.finish("a", Outcome::Success, 1.0);
        assert_eq!(r.s.run_state(), RunState::Success);
        assert_eq!(r.cancel(2.0, "late Ctrl-C"), Vec::<String>::new());
        assert_eq!(
            r.s.run_state(),
            RunState::Success,
            "a cancel after the end changes nothing"
        );

        for (outcome, state) in [
            (exit(1), RunState::Failed),
            (timed_out(), RunState::Failed),
            (
                Outcome::PreCheckFailed { reason: "x".into() },
                RunState::Failed,
            ),
            (Outcome::Cancelled, RunState::Cancelled),
        ] {
            let mut r = Sim::new(&[("a", "")], config(1, true));
            r.start(0.0);
            r.next_all(0.0);
            r.finish("a", outcome, 1.0);
            assert_eq!(r.s.run_state(), state);
        }

        let mut r = Sim::new(&[("a", "")], config(1, false));
        r.cancel(0.0, "interrupted before the start");
        assert_eq!(r.start(0.0), Vec::<String>::new());
        assert_eq!(r.s.run_state(), RunState::Cancelled);
    }

    #[test]
    #[should_panic(expected = "bug: finish(a) called for a job that is not running")]
    fn finishing_a_job_that_is_not_running_is_a_bug() {
        let mut r = Sim::new(&[("a", "")], config(1, false));
        r.start(0.0);
        r.finish("a", Outcome::Success, 0.0);
    }

    /// Deterministic pseudo-random numbers, so failures reproduce.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).expect("31 bits fit") % bound
        }
    }

    #[test]
    fn random_runs_never_break_the_table_or_stall() {
        let mut rng = Lcg(7);
        let mut pairs = std::collections::HashSet::new();
        for round in 0..150 {
            let n = 2 + rng.below(12);
            let extras: Vec<String> = (0..n)
                .map(|i| {
                    let mut extra = format!("priority = {}\n", rng.below(3));
                    if i > 0 && rng.below(3) > 0 {
                        extra += &format!("needs = ['j{}', 'j{}']\n", rng.below(i), rng.below(i));
                    }
                    if rng.below(2) == 0 {
                        extra += "retry = { max = 2, delay = \"1s\", jitter = 0.5, on_exit_codes = [1] }\n";
                    }
                    if rng.below(3) == 0 {
                        extra += &format!("resources = {{ cpu = {} }}\n", 1 + rng.below(4));
                    }
                    extra
                })
                .collect();
            let ids: Vec<String> = (0..n).map(|i| format!("j{i}")).collect();
            let jobs: Vec<(&str, &str)> = ids
                .iter()
                .map(String::as_str)
                .zip(extras.iter().map(String::as_str))
                .collect();
            let dispositions: Vec<Disposition> = (0..n)
                .map(|_| match rng.below(6) {
                    0 => Disposition::Skip(SkipReason::Flag),
                    _ => Disposition::Run,
                })
                .collect();
            let config = Config {
                max_parallel: 1 + rng.below(4),
                continue_on_error: rng.below(2) == 0,
                capacity: Resources {
                    cpu: 3.0,
                    memory: 0,
                },
            };
            let mut r = Sim::with(&jobs, config, &dispositions);
            let mut now = 0.0;
            r.start(now);
            let mut running = Vec::new();
            let mut steps = 0;
            while !r.s.is_done() {
                steps += 1;
                assert!(steps < 10_000, "round {round} does not end");
                running.extend(r.next_all(now));
                // The runner sleeps until the wakeup, and there asks again: what it is told
                // then must lie ahead, or it would poll without sleeping.
                if let Some(wake) = r.s.next_wakeup().map(|w| w.as_secs_f64())
                    && !running.is_empty()
                    && wake < now + 0.25
                {
                    now = wake.max(now);
                    running.extend(r.next_all(now));
                    let again = r.s.next_wakeup();
                    assert!(
                        again.is_none_or(|a| a.as_secs_f64() > now),
                        "round {round}: woken at {now}s, told to wake at {again:?}"
                    );
                }
                if running.is_empty() {
                    let wake =
                        r.s.next_wakeup()
                            .unwrap_or_else(|| panic!("round {round} stalled"));
                    now = wake.as_secs_f64().max(now);
                    continue;
                }
                if rng.below(40) == 0 {
                    r.cancel(now, "interrupted");
                }
                let id = running.swap_remove(rng.below(running.len()));
                now += 0.25;
                let outcome = match rng.below(8) {
                    0 | 1 => exit(1),
                    2 => exit(2),
                    3 => timed_out(),
                    4 if rng.below(4) == 0 => Outcome::PreCheckFailed { reason: "x".into() },
                    5 if rng.below(10) == 0 => Outcome::Cancelled,
                    _ => Outcome::Success,
                };
                let sample = f64::from(u32::try_from(rng.below(1000)).expect("small")) / 1000.0;
                r.finish_with(&id, outcome, now, sample);
            }
            assert_ne!(r.s.run_state(), RunState::Running);
            assert_eq!(r.s.running(), 0);
            pairs.extend(r.log.iter().map(|t| (t.from, t.to)));
        }
        // The rounds exercised every transition the scheduler makes: all of the table but
        // QUEUED -> SKIPPED, since only PENDING jobs are ever skipped.
        for from in JobState::ALL {
            for to in JobState::ALL {
                let expected =
                    allowed(from, to) && (from, to) != (JobState::Queued, JobState::Skipped);
                assert_eq!(pairs.contains(&(from, to)), expected, "{from} -> {to}");
            }
        }
    }

    /// Run with `cargo test --release --lib -- --ignored --nocapture scheduler`.
    #[test]
    #[ignore = "timing report, run in release"]
    fn timing_100k_independent_jobs() {
        let n = 100_000;
        let mut p = pipeline(&[("a", "")]);
        let template = p.jobs.remove(0);
        p.jobs = (0..n)
            .map(|i| Job {
                id: crate::model::JobId(format!("j{i}")),
                description: None,
                command: Text::Static("true".into()),
                needs: vec![],
                timeout: None,
                timeout_grace: template.timeout_grace,
                env: vec![],
                retry: template.retry.clone(),
                pre_checks: vec![],
                post_checks: vec![],
                priority: i64::try_from(i % 7).expect("small"),
                resources: Resources::default(),
                inputs: vec![],
                outputs: vec![],
                enabled: true,
                log_dir: template.log_dir.clone(),
                matrix: vec![],
            })
            .collect();
        p.dag = Dag::new(&vec![vec![]; n]).expect("no cycle");
        let dispositions = vec![Disposition::Run; n];
        let started = Instant::now();
        let mut s = Scheduler::new(&p, &dispositions, config(8, false));
        let mut transitions = s.start(Duration::ZERO).len();
        let mut running = std::collections::VecDeque::new();
        loop {
            while let Some((job, _)) = s.next(Duration::ZERO) {
                running.push_back(job);
                transitions += 1;
            }
            let Some(job) = running.pop_front() else {
                break;
            };
            transitions += s.finish(job, Outcome::Success, Duration::ZERO, 0.0).len();
        }
        let elapsed = started.elapsed();
        assert!(s.is_done());
        assert_eq!(transitions, 3 * n);
        println!("100k independent jobs, max_parallel 8: new+start+next+finish in {elapsed:?}");
    }
}
