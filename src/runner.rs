//! The coordinator: runs a pipeline's jobs and owns everything about the run while it runs.
//!
//! One thread (this one) owns the scheduler, the table of attempts in flight, every deadline
//! and every kill. It waits on the pidfds of the commands of jobs without checks (see
//! [`crate::events`]), so a job that ends wakes it directly, as a process wakes make. It
//! spawns such a command itself when nothing else is in flight (a chain); otherwise a
//! worker spawns it (spawning blocks until the program is loaded) and hands it back.
//! Attempts with pre- or post-checks, and the TERM-grace-KILL of what a finished job left
//! in its group, block too: workers (started as they are needed, then reused) run those
//! inside `std::thread::scope` and report over a channel, as does a signal thread for
//! SIGINT/SIGTERM (or, for a run given a [`Cancel`], its holder); each rings the
//! coordinator's waker. So there is no shared mutable run state and no polling: the loop
//! sleeps until the next event or deadline.
//!
//! Invariants:
//! - every state change goes through [`Runner::record`], which the scheduler has already
//!   checked against the transition table; it is shown (and, with history, stored) in order;
//! - nothing starts before the transitions that start it are committed (persist first);
//! - a process group is signalled only while its attempt is in flight (its pgid may be
//!   reused once it has been reaped);
//! - on timeout or cancel: TERM to the group, then KILL after the job's grace period; a
//!   second Ctrl-C sends KILL at once.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::SIGTERM;

use crate::attempt::{self, Attempt, Ended};
use crate::events::{self, Ready, Waker};
use crate::fingerprint::Fingerprinter;
use crate::logs;
use crate::model::Pipeline;
use crate::process::{self, AttemptSpec, Exit, Finished, Running, Usage};
use crate::progress::Progress;
use crate::scheduler::{Config, Outcome, Scheduler};
use crate::secrets::Masker;
use crate::selection::Disposition;
use crate::signals;
use crate::spec::format_duration;
use crate::state::{JobState, RunState, Transition};
use crate::store::{FOLD_EVERY, JobFingerprint, Journal, Record, Store, StoreError};

/// One attempt, ready to start once its RUNNING transition is committed.
struct Work<'a> {
    job: usize,
    attempt: Attempt<'a>,
    /// Set when `{{ run.id }}`/`{{ attempt }}` could not be rendered: nothing runs.
    unrenderable: Option<String>,
}

/// What a worker does: the parts of an attempt that block.
enum Task<'a> {
    /// A whole attempt of a job with checks: pre-checks, the command, post-checks.
    Attempt { job: usize, attempt: Attempt<'a> },
    /// Start the command of a job without checks and hand it back to the coordinator,
    /// which waits on it: spawning blocks until the program is loaded, so while other jobs
    /// run, spawns go to workers and the coordinator keeps recording.
    Spawn { job: usize, attempt: Attempt<'a> },
    /// Wait for a command the coordinator started but cannot watch (no pidfd), then end
    /// what it left in its group.
    Wait {
        job: usize,
        running: Box<Running>,
        grace: Duration,
    },
    /// The command ended as `finished` says but left processes in its group: TERM, grace,
    /// KILL.
    Leftovers {
        job: usize,
        pgid: i32,
        grace: Duration,
        finished: Finished,
    },
}

/// What the coordinator hears from workers and the signal thread.
#[derive(Debug)]
enum Event {
    /// A worker started a process group for this job's attempt.
    Started { job: usize, pgid: i32 },
    /// A worker's attempt ended.
    Ended { job: usize, ended: Ended },
    /// A worker started this job's command for the coordinator to wait on.
    Spawned {
        job: usize,
        running: Box<Running>,
        pidfd: OwnedFd,
    },
    /// SIGINT or SIGTERM, or a [`Cancel`].
    Stop(StopBy),
}

/// Who stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBy {
    /// Ctrl-C or SIGTERM (or a caller passing one on): the second one kills at once.
    Signal,
    /// `exe watch` starting again after a change: jobs are stopped gracefully, and it
    /// does not count as a first Ctrl-C.
    Restart,
}

/// Why the coordinator is stopping an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Cancel,
}

/// An attempt in flight.
struct Live {
    attempt: u32,
    started: Duration,
    pgid: Option<i32>,
    /// When the job's timeout expires.
    deadline: Option<Instant>,
    /// Set once the attempt is being stopped.
    stop: Option<Stop>,
    /// The command, when the coordinator started it itself and waits on its pidfd.
    own: Option<(Running, OwnedFd)>,
}

/// An attempt being stopped: TERM was sent (or will be, once its pgid is known).
#[derive(Debug, Clone, Copy)]
struct Stop {
    reason: KillReason,
    /// When TERM turns into KILL; `None` once KILL was sent.
    kill_at: Option<Instant>,
}

/// One finished attempt, for the summary (and, with history, the store).
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The job's index.
    pub job: usize,
    /// 1 for the first attempt.
    pub number: u32,
    /// Since the run started.
    pub started: Duration,
    /// Since the run started.
    pub ended: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code or signal, when the command ran.
    pub exit: Option<Exit>,
    /// Its output.
    pub log: PathBuf,
}

/// How a run ended.
#[derive(Debug)]
pub struct Report {
    /// Final state of every job, by index.
    pub states: Vec<JobState>,
    /// Every attempt, in the order they ended.
    pub attempts: Vec<AttemptRecord>,
    /// The run's state.
    pub run_state: RunState,
    /// How long the run took.
    pub elapsed: Duration,
    /// Each job's last transition reason, by index (why it failed, was skipped, ...).
    pub reasons: Vec<String>,
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The run's id in the history (in `{{ run.id }}`).
    pub run_id: i64,
    /// The run's folder in each log folder ([`logs::run_folder`]).
    pub log_folder: String,
    /// When the run started, in milliseconds since the Unix epoch (times are recorded so).
    pub started_at_ms: i64,
    /// Parallelism, failure policy, capacity.
    pub config: Config,
    /// Set when the caller owns SIGINT/SIGTERM and stops the run through this instead.
    pub cancel: Option<Cancel>,
    /// Takes what a job with `inputs` starts with, recorded with its first RUNNING.
    pub fingerprints: &'a Fingerprinter<'a>,
    /// Hides secret values in the reasons exe writes (a check's failure can quote one).
    pub masker: &'a Masker,
}

/// Stops a run from another thread; each call counts as one Ctrl-C (the second kills at
/// once). A call made before the run starts takes effect when it does.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Mutex<CancelSlot>>);

#[derive(Debug, Default)]
struct CancelSlot {
    run: Option<(Sender<Event>, Arc<Waker>)>,
    early: Vec<StopBy>,
}

impl Cancel {
    /// Stops the run as one Ctrl-C does.
    pub fn cancel(&self) {
        self.stop(StopBy::Signal);
    }

    /// Stops the run to start it again: like [`Cancel::cancel`], said so, and not counted
    /// as a Ctrl-C.
    pub fn restart(&self) {
        self.stop(StopBy::Restart);
    }

    fn stop(&self, by: StopBy) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &slot.run {
            Some((tx, waker)) => {
                let _ = tx.send(Event::Stop(by));
                waker.wake();
            }
            None => slot.early.push(by),
        }
    }

    fn attach(&self, tx: &Sender<Event>, waker: &Arc<Waker>) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for by in std::mem::take(&mut slot.early) {
            let _ = tx.send(Event::Stop(by));
        }
        waker.wake();
        slot.run = Some((tx.clone(), Arc::clone(waker)));
    }
}

/// Runs the pipeline.
pub fn run(
    pipeline: &Pipeline,
    dispositions: &[Disposition],
    options: &Options<'_>,
    progress: &Progress,
    store: &mut Store,
    journal: &mut Journal,
) -> Result<Report, RunError> {
    let (tx, rx) = mpsc::channel();
    let waker = Arc::new(Waker::new().map_err(RunError::Wakeup)?);
    let signals = if let Some(cancel) = &options.cancel {
        cancel.attach(&tx, &waker);
        None
    } else {
        let (tx, waker) = (tx.clone(), Arc::clone(&waker));
        let forward = signals::Forward::start(move || {
            // A commit waiting for another process's lock must not hold the stop up.
            crate::store::stop_waiting();
            let delivered = tx.send(Event::Stop(StopBy::Signal)).is_ok();
            waker.wake();
            delivered
        });
        Some(forward.map_err(RunError::Signals)?)
    };
    let logs_ahead = logs::Ahead::default();
    let mut runner = Runner {
        pipeline,
        options,
        progress,
        scheduler: Scheduler::new(pipeline, dispositions, options.config),
        live: HashMap::new(),
        attempts: Vec::new(),
        reasons: vec![String::new(); pipeline.jobs.len()],
        t0: Instant::now(),
        cancelling: false,
        cancelled_because: String::new(),
        signals: 0,
        rng: seed(),
        store,
        journal,
        pending: Vec::new(),
        unfolded: Vec::new(),
        fold_due: None,
        to_show: Vec::new(),
        history_error: None,
        next_heartbeat: Instant::now() + HEARTBEAT,
        groups_due: None,
        cwd: std::env::current_dir().unwrap_or_default(),
        force_next_commit: false,
        logs_ahead: &logs_ahead,
    };
    // Workers are started as blocking work needs them and then reused: one per task would
    // cost a thread (and its stack) each time.
    let (task_tx, task_rx) = mpsc::channel::<Task<'_>>();
    let task_rx = Mutex::new(task_rx);
    let mut idle_workers = 0usize;
    // The first attempts' logs are made ahead, on a thread of their own (see `logs`).
    let to_run: Vec<logs::Owner<'_>> = (pipeline.jobs.iter().enumerate())
        .filter(|&(index, _)| matches!(dispositions[index], Disposition::Run))
        .map(|(index, job)| logs::Owner::of(index, job))
        .collect();
    let made_logs = std::thread::scope(|scope| {
        let making_logs = (to_run.len() > 1).then(|| {
            let (to_run, ahead, run) = (&to_run, runner.logs_ahead, options.log_folder.as_str());
            scope.spawn(move || ahead.create(run, to_run))
        });
        let give = |task, idle_workers: &mut usize| {
            if *idle_workers == 0 {
                let (task_rx, tx, waker) = (&task_rx, tx.clone(), &*waker);
                scope.spawn(move || worker(task_rx, &tx, waker));
            } else {
                *idle_workers -= 1;
            }
            let _ = task_tx.send(task);
        };
        let start = runner.scheduler.start(runner.now());
        runner.record_all(&start);
        // One turn: schedule what can start, commit everything pending in one transaction
        // (persist first: RUNNING and the attempt rows are stored before any process
        // starts), start those jobs, then handle every event that is waiting.
        loop {
            let mut works = Vec::new();
            if !runner.cancelling {
                while let Some((job, transition)) = runner.scheduler.next(runner.now()) {
                    runner.record(&transition);
                    works.push(runner.launch(job));
                }
            }
            runner.flush();
            if runner.cancelling {
                // The history failed (or a signal came) while committing: start nothing.
                for work in &works {
                    runner.unstarted(work.job);
                }
                works.clear();
            }
            // An attempt that ended on the spot (it could not start) may free others: go
            // round again before sleeping.
            let mut ended_here = false;
            for work in works {
                match runner.start(work) {
                    Started::Here => {}
                    Started::Ended => ended_here = true,
                    Started::Elsewhere(task) => give(task, &mut idle_workers),
                }
            }
            if ended_here {
                continue;
            }
            if runner.scheduler.is_done() && runner.live.is_empty() {
                break;
            }
            let timeout = runner
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            for task in runner.wait(&waker, timeout) {
                give(task, &mut idle_workers);
            }
            // Events that arrived together are recorded together: one commit, not one each.
            while let Ok(event) = rx.try_recv() {
                match event {
                    Event::Started { job, pgid } => runner.started(job, pgid),
                    Event::Spawned {
                        job,
                        running,
                        pidfd,
                    } => {
                        idle_workers += 1;
                        runner.spawned(job, *running, pidfd);
                    }
                    Event::Ended { job, ended } => {
                        idle_workers += 1;
                        runner.ended(job, &ended);
                    }
                    Event::Stop(by) => runner.interrupted(by),
                }
            }
            runner.enforce_deadlines();
        }
        drop(task_tx);
        runner.logs_ahead.stop();
        making_logs.and_then(|thread| thread.join().ok())
    });
    if let Some(made) = made_logs {
        logs::remove_unused(&options.log_folder, &made, |job| {
            runner.scheduler.attempts(job) > 0
        });
    }
    logs::remove_if_empty(
        &options.log_folder,
        pipeline.jobs.iter().map(|j| j.log_dir.as_path()),
    );
    end_adopted(pipeline, progress);
    drop(signals);
    runner.force_next_commit = true;
    runner.flush();
    runner.fold();
    if let Some(error) = runner.history_error.take() {
        return Err(RunError::History(error));
    }
    let states = (0..pipeline.jobs.len())
        .map(|j| runner.scheduler.state(j))
        .collect();
    Ok(Report {
        states,
        attempts: runner.attempts,
        run_state: runner.scheduler.run_state(),
        elapsed: runner.t0.elapsed(),
        reasons: runner.reasons,
    })
}

/// Once every job has been reaped: what one left running in a group of its own (and so
/// past the ends of its group) was adopted by exe, a subreaper, and ends with the run: TERM,
/// then KILL after the longest `timeout_grace`.
fn end_adopted(pipeline: &Pipeline, progress: &Progress) {
    let grace = (pipeline.jobs.iter().map(|j| j.timeout_grace))
        .max()
        .unwrap_or_default();
    for pgid in process::members::adopted_groups() {
        // Those that have ended are only to be reaped.
        process::reap_group(pgid);
        if !process::group_alive(pgid) {
            continue;
        }
        progress.note(&format!(
            "ending process group {pgid}: a job left it running in a group of its own"
        ));
        let _ = process::end_leftovers(pgid, grace);
    }
}

/// Where [`Runner::start`] left an attempt.
enum Started<'a> {
    /// Its command runs; the coordinator waits on its pidfd.
    Here,
    /// It could not start, and has been recorded as ended.
    Ended,
    /// A worker must run (or wait for) it.
    Elsewhere(Task<'a>),
}

struct Runner<'a> {
    pipeline: &'a Pipeline,
    options: &'a Options<'a>,
    progress: &'a Progress,
    scheduler: Scheduler,
    live: HashMap<usize, Live>,
    attempts: Vec<AttemptRecord>,
    reasons: Vec<String>,
    t0: Instant,
    cancelling: bool,
    /// Why, once cancelling: the reason an attempt stopped for it is recorded with.
    cancelled_because: String,
    signals: u32,
    rng: u64,
    store: &'a mut Store,
    /// The run's journal: each batch of facts is appended to it before it is acted on.
    journal: &'a mut Journal,
    /// Facts not yet journaled; journaled (in one frame) before they are acted on.
    pending: Vec<Pending>,
    /// Facts journaled and not yet folded into the history's tables.
    unfolded: Vec<Pending>,
    /// When the facts journaled first since the last fold must be folded, at the latest.
    fold_due: Option<Instant>,
    /// What to show once committed, in order.
    to_show: Vec<Shown>,
    /// Set when the history could not be written: the run stops.
    history_error: Option<StoreError>,
    next_heartbeat: Instant,
    /// When the process groups waiting for a commit get one of their own.
    groups_due: Option<Instant>,
    /// The folder exe runs in, read once: relative log paths are recorded from it.
    cwd: PathBuf,
    /// Commit at the next flush even if only process groups are pending.
    force_next_commit: bool,
    /// Makes the first attempts' logs ahead of the jobs; told of each first start.
    logs_ahead: &'a logs::Ahead,
}

/// A fact for the display, shown once its commit is done (so in the order recorded).
enum Shown {
    Transition(Transition),
    /// An attempt started writing to this log.
    Started {
        job: usize,
        attempt: u32,
        log: PathBuf,
    },
}

/// A fact waiting for the next commit.
enum Pending {
    Transition(Transition),
    Started {
        job: usize,
        number: u32,
        at: Duration,
        log: String,
    },
    Group {
        job: usize,
        number: u32,
        pgid: i32,
    },
    Fingerprint {
        job: usize,
        fingerprint: Option<JobFingerprint>,
    },
    Ended {
        job: usize,
        number: u32,
        at: Duration,
        exit: Option<Exit>,
        usage: Option<Usage>,
        outcome: &'static str,
        reason: String,
        /// The attempt's process group, when it was not committed before its end.
        group: Option<i32>,
    },
}

/// How often a running exe says it is alive, so a later exe can tell a dead run from a live one.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a new process group may wait to ride another commit before it gets its own: a
/// short job's group goes with its end, and a long job's is on record (for crash recovery
/// to find) within this time.
const GROUP_WAIT: Duration = Duration::from_millis(200);

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Signal handlers could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    /// The coordinator's waker could not be made (out of file descriptors).
    #[error("cannot wait for jobs: {0}")]
    Wakeup(std::io::Error),
    /// The history could not be written; the run was stopped so nothing runs unrecorded.
    #[error("the run was stopped because its history could not be written: {0}")]
    History(StoreError),
}

impl<'a> Runner<'a> {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The one place a state change goes: queued for the next commit, shown once committed.
    fn record(&mut self, transition: &Transition) {
        if !transition.reason.is_empty() {
            self.reasons[transition.job].clone_from(&transition.reason);
        }
        self.pending.push(Pending::Transition(transition.clone()));
        self.to_show.push(Shown::Transition(transition.clone()));
    }

    fn at_ms(&self, at: Duration) -> i64 {
        self.options.started_at_ms + i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
    }

    /// Journals what is pending in one frame, then shows it. If the history cannot be
    /// written, the run stops: nothing may run that is not recorded. Nothing is recorded
    /// after a failed write either (its records, and all that follow, are dropped): the
    /// history keeps what was journaled before it, as a whole, and the next exe folds that
    /// and closes the run as one whose exe stopped recording, rather than hold a later part
    /// of it without what came between.
    fn flush(&mut self) {
        if self.history_error.is_some() {
            // Not recorded, so not shown: the terminal never says more than the history.
            self.pending.clear();
            self.to_show.clear();
            return;
        }
        // A process group alone is not worth a commit of its own: it goes with the next one
        // (at the latest the heartbeat's, within 5 s).
        let only_groups = self
            .pending
            .iter()
            .all(|p| matches!(p, Pending::Group { .. }));
        if (!only_groups || self.force_next_commit)
            && let Err(e) = self.commit()
        {
            self.to_show.clear();
            self.stop_for_history(e);
        }
        for shown in self.to_show.drain(..) {
            match shown {
                Shown::Transition(t) => self.progress.transition(&t),
                Shown::Started { job, attempt, log } => {
                    self.progress.attempt_started(job, attempt, &log);
                }
            }
        }
    }

    /// Journals everything pending in one frame; it joins the facts to fold.
    fn commit(&mut self) -> Result<(), StoreError> {
        self.force_next_commit = false;
        self.groups_due = None;
        let mut pending = std::mem::take(&mut self.pending);
        let records: Vec<Record<'_>> = pending.iter().map(|p| self.to_record(p)).collect();
        let started = tracing::enabled!(tracing::Level::TRACE).then(Instant::now);
        let result = self.journal.append(&records);
        if let Some(started) = started {
            let us = started.elapsed().as_micros();
            tracing::trace!(records = records.len(), us, "journaled");
        }
        drop(records);
        if result.is_ok() {
            self.unfolded.append(&mut pending);
        }
        pending.clear();
        // The buffer is kept: a run journals once per event, and regrowing it each time
        // showed in profiles.
        self.pending = pending;
        self.fold_due
            .get_or_insert_with(|| Instant::now() + FOLD_EVERY);
        result
    }

    /// Folds the journaled facts into the history's tables (see [`Journal`]): at most
    /// [`FOLD_EVERY`] after they were journaled, and at the end of the run. If that fails,
    /// the run stops, as when journaling fails; what was journaled stays for the next exe.
    fn fold(&mut self) {
        self.fold_due = None;
        if self.unfolded.is_empty() || self.history_error.is_some() {
            return;
        }
        let mut unfolded = std::mem::take(&mut self.unfolded);
        let records: Vec<Record<'_>> = unfolded.iter().map(|p| self.to_record(p)).collect();
        let started = tracing::enabled!(tracing::Level::TRACE).then(Instant::now);
        let at = self.at_ms(self.now());
        let result = self.store.fold(self.journal, &records, at);
        if let Some(started) = started {
            let us = started.elapsed().as_micros();
            tracing::trace!(records = records.len(), us, "folded");
        }
        drop(records);
        unfolded.clear();
        self.unfolded = unfolded;
        if let Err(e) = result {
            self.stop_for_history(e);
        }
    }

    fn to_record<'p>(&self, pending: &'p Pending) -> Record<'p> {
        match pending {
            Pending::Transition(t) => Record::Transition {
                job: t.job,
                from: t.from.as_str(),
                to: t.to.as_str(),
                at_ms: self.at_ms(t.at),
                reason: &t.reason,
            },
            Pending::Started {
                job,
                number,
                at,
                log,
            } => Record::AttemptStarted {
                job: *job,
                number: *number,
                at_ms: self.at_ms(*at),
                log_path: log,
                pgid: None,
            },
            Pending::Group { job, number, pgid } => Record::AttemptGroup {
                job: *job,
                number: *number,
                pgid: *pgid,
            },
            Pending::Fingerprint { job, fingerprint } => Record::Fingerprint {
                job: *job,
                fingerprint: fingerprint.as_ref(),
            },
            Pending::Ended {
                job,
                number,
                at,
                exit,
                usage,
                outcome,
                reason,
                group,
            } => Record::AttemptEnded {
                job: *job,
                number: *number,
                at_ms: self.at_ms(*at),
                exit_code: match exit {
                    Some(Exit::Code(c)) => Some(*c),
                    _ => None,
                },
                signal: match exit {
                    Some(Exit::Signal(s)) => Some(*s),
                    _ => None,
                },
                usage: *usage,
                outcome,
                reason,
                pgid: *group,
            },
        }
    }

    /// Cancelling begins (once): no job starts from now on, and no more logs are made ahead.
    /// Returns the transitions of the jobs that will not run, or None if it had begun.
    fn start_cancelling(&mut self, reason: &str) -> Option<Vec<Transition>> {
        if self.cancelling {
            return None;
        }
        self.cancelling = true;
        reason.clone_into(&mut self.cancelled_because);
        self.logs_ahead.stop();
        let now = self.now();
        Some(self.scheduler.cancel(now, reason))
    }

    /// The history failed: stop starting jobs and stop the running ones, as on Ctrl-C.
    fn stop_for_history(&mut self, error: StoreError) {
        if self.history_error.is_some() {
            return;
        }
        self.progress.note(&format!(
            "cannot write the run history: {error}; stopping the run"
        ));
        self.history_error = Some(error);
        // Nothing more is recorded (see `flush`), so the cancellations are not kept.
        let _ = self.start_cancelling("the run history could not be written");
        let mut groups = Vec::new();
        for (job, live) in &mut self.live {
            if live.stop.is_none() {
                let kill_at = Some(Instant::now() + self.pipeline.jobs[*job].timeout_grace);
                live.stop = Some(Stop {
                    reason: KillReason::Cancel,
                    kill_at,
                });
                groups.extend(live.pgid);
            }
        }
        process::signal_jobs(&groups, SIGTERM);
    }

    fn record_all(&mut self, transitions: &[Transition]) {
        for t in transitions {
            self.record(t);
        }
    }

    fn log_path(&self, job: usize, attempt: u32) -> PathBuf {
        logs::path(&self.pipeline.jobs[job], &self.options.log_folder, attempt)
    }

    /// Marks the attempt in flight and returns the work for a worker.
    fn launch(&mut self, job: usize) -> Work<'a> {
        let pipeline: &'a Pipeline = self.pipeline;
        let spec = &pipeline.jobs[job];
        let number = self.scheduler.attempts(job);
        let log_path = self.log_path(job, number);
        let now = self.now();
        self.live.insert(
            job,
            Live {
                attempt: number,
                started: now,
                pgid: None,
                deadline: spec.timeout.map(|t| Instant::now() + t),
                stop: None,
                own: None,
            },
        );
        // Recorded with the RUNNING transition, before the process starts (persist first).
        // Absolute, so that `exe logs` finds it from any folder.
        let recorded = self
            .cwd
            .join(log_path.strip_prefix(".").unwrap_or(&log_path));
        self.pending.push(Pending::Started {
            job,
            number,
            at: now,
            log: recorded.display().to_string(),
        });
        if number == 1 {
            self.logs_ahead.job_started();
            if let Some(fingerprint) = self.options.fingerprints.at_start(job) {
                self.pending.push(Pending::Fingerprint { job, fingerprint });
            }
        }
        self.to_show.push(Shown::Started {
            job,
            attempt: number,
            log: log_path.clone(),
        });
        let command = spec.command.for_attempt(self.options.run_id, number);
        Work {
            job,
            unrenderable: command
                .as_ref()
                .err()
                .map(|e| format!("cannot render the command: {}", e.message)),
            attempt: Attempt {
                job: spec,
                command: command.unwrap_or_default(),
                env: pipeline.job_env(spec),
                working_dir: &pipeline.working_dir,
                log_path,
            },
        }
    }

    /// Starts a launched attempt whose start is committed. A job without checks has its
    /// command started here; one with checks goes to a worker, which runs them in order.
    fn start(&mut self, work: Work<'a>) -> Started<'a> {
        let Work {
            job,
            attempt,
            unrenderable,
        } = work;
        if let Some(reason) = unrenderable {
            self.ended(job, &Ended::Error(reason));
            return Started::Ended;
        }
        let spec = attempt.job;
        if !spec.pre_checks.is_empty() || !spec.post_checks.is_empty() {
            return Started::Elsewhere(Task::Attempt { job, attempt });
        }
        if self.live.len() > 1 {
            // Others are in flight (or starting): spawn beside them, not in their way.
            return Started::Elsewhere(Task::Spawn { job, attempt });
        }
        let running = match spawn(&attempt) {
            Ok(running) => running,
            Err(e) => {
                self.ended(job, &Ended::Error(attempt::with_causes(&e)));
                return Started::Ended;
            }
        };
        if let Ok(pidfd) = running.pidfd() {
            self.spawned(job, running, pidfd);
            Started::Here
        } else {
            self.started(job, running.pgid());
            Started::Elsewhere(Task::Wait {
                job,
                running: Box::new(running),
                grace: spec.timeout_grace,
            })
        }
    }

    /// A command started for the coordinator: it is in flight, watched through its pidfd.
    fn spawned(&mut self, job: usize, running: Running, pidfd: OwnedFd) {
        self.started(job, running.pgid());
        if let Some(live) = self.live.get_mut(&job) {
            live.own = Some((running, pidfd));
        }
    }

    /// Sleeps until an event, a deadline or the end of a command started here; takes in
    /// those that ended. Returns the leftovers to end, for workers.
    fn wait(&mut self, waker: &Waker, timeout: Option<Duration>) -> Vec<Task<'a>> {
        let (jobs, pidfds): (Vec<usize>, Vec<&OwnedFd>) = self
            .live
            .iter()
            .filter_map(|(job, live)| live.own.as_ref().map(|(_, pidfd)| (*job, pidfd)))
            .unzip();
        let ready = events::wait(waker, &pidfds, timeout).unwrap_or_else(|_| {
            // poll(2) fails only without memory: look at every process after a short nap.
            std::thread::sleep(Duration::from_millis(1));
            Ready {
                woken: true,
                exited: (0..jobs.len()).collect(),
            }
        });
        ready
            .exited
            .into_iter()
            .filter_map(|i| self.reap(jobs[i]))
            .collect()
    }

    /// A command started here has exited (or may have): reaps it and ends the attempt, or
    /// returns the leftovers of its group for a worker to end first.
    fn reap(&mut self, job: usize) -> Option<Task<'a>> {
        let live = self.live.get_mut(&job)?;
        let (running, _) = live.own.as_ref()?;
        let ended = match running.try_exit() {
            Ok(None) => return None,
            Ok(Some(finished)) => {
                let pgid = running.pgid();
                live.own = None;
                if process::leftovers_alive(pgid) {
                    return Some(Task::Leftovers {
                        job,
                        pgid,
                        grace: self.pipeline.jobs[job].timeout_grace,
                        finished,
                    });
                }
                Ended::Exited(finished)
            }
            Err(e) => {
                live.own = None;
                Ended::Error(attempt::with_causes(&e))
            }
        };
        self.ended(job, &ended);
        None
    }

    /// A launched attempt that was never started (the run stopped first).
    fn unstarted(&mut self, job: usize) {
        self.ended(
            job,
            &Ended::Error("not started: the run was stopped".to_owned()),
        );
    }

    fn started(&mut self, job: usize, pgid: i32) {
        tracing::debug!(job = %self.pipeline.jobs[job].id, pgid, "process started");
        let Some(live) = self.live.get_mut(&job) else {
            return;
        };
        if live.pgid != Some(pgid) {
            // Each group the attempt starts (a check's, then its command's) is recorded for
            // crash recovery.
            self.pending.push(Pending::Group {
                job,
                number: live.attempt,
                pgid,
            });
            self.groups_due
                .get_or_insert_with(|| Instant::now() + GROUP_WAIT);
        }
        live.pgid = Some(pgid);
        // A process started after a kill was decided (a check, then the command) is stopped too.
        if let Some(stop) = live.stop {
            process::signal_jobs(&[pgid], libc_signal(stop.kill_at.is_none()));
        }
    }

    /// The first process group of `job`'s attempt `number`, if it is still waiting for a
    /// commit: it then goes with the attempt's end, one row update instead of two. Later
    /// groups still waiting are dropped: they are recorded to find survivors of an attempt
    /// that never ends in the history, and this one does.
    fn take_pending_group(&mut self, job: usize, number: u32) -> Option<i32> {
        let mut first = None;
        self.pending.retain(|p| match *p {
            Pending::Group {
                job: j,
                number: n,
                pgid,
            } if j == job && n == number => {
                first.get_or_insert(pgid);
                false
            }
            _ => true,
        });
        first
    }

    /// Why an attempt that ran out of time ended: its timeout, and whether it ignored
    /// SIGTERM for the whole grace period.
    /// Why a timed-out attempt ended; `kill_sent` when TERM's grace ran out (the job's
    /// first process may have ended on TERM while another of its processes had to be
    /// killed).
    fn timed_out(&self, job: usize, exit: Option<Exit>, kill_sent: bool) -> String {
        let spec = &self.pipeline.jobs[job];
        let after = spec
            .timeout
            .map(|t| format!(" after {}", format_duration(t)))
            .unwrap_or_default();
        if kill_sent || exit == Some(Exit::Signal(libc::SIGKILL)) {
            format!(
                "timed out{after}; still running {} after SIGTERM, so killed",
                format_duration(spec.timeout_grace)
            )
        } else {
            format!("timed out{after}")
        }
    }

    fn ended(&mut self, job: usize, ended: &Ended) {
        let Some(live) = self.live.remove(&job) else {
            return;
        };
        let now = self.now();
        let exited = match ended {
            Ended::Exited(done) => Some(done.exit),
            _ => None,
        };
        let kill_sent = live.stop.is_some_and(|s| s.kill_at.is_none());
        let (outcome, exit) = match (live.stop.map(|s| s.reason), ended) {
            // The timeout ran out in a pre-check: the command never ran, and a pre-check
            // that fails is not retried, however it fails.
            (Some(KillReason::Timeout), Ended::PreCheckFailed(reason)) => (
                Outcome::PreCheckFailed {
                    reason: format!(
                        "{} ({})",
                        self.timed_out(job, None, kill_sent),
                        self.options.masker.mask(reason)
                    ),
                },
                None,
            ),
            (Some(KillReason::Timeout), _) => (
                Outcome::TimedOut {
                    reason: self.timed_out(job, exited, kill_sent),
                },
                exited,
            ),
            (Some(KillReason::Cancel), _) => (Outcome::Cancelled, exited),
            (None, Ended::Exited(done)) => match done.exit {
                Exit::Code(0) => (Outcome::Success, Some(done.exit)),
                Exit::Code(code) => (
                    Outcome::Failed {
                        exit_code: Some(code),
                        reason: format!("exit code {code}"),
                    },
                    Some(done.exit),
                ),
                Exit::Signal(signal) => (
                    Outcome::Failed {
                        exit_code: None,
                        reason: format!("killed by signal {signal}"),
                    },
                    Some(done.exit),
                ),
            },
            // These reasons quote a check's path or command, or a rendering error: text a
            // secret can be in.
            (None, Ended::PostCheckFailed { reason, .. }) => (
                Outcome::Failed {
                    exit_code: Some(0),
                    reason: format!("post-check failed: {}", self.options.masker.mask(reason)),
                },
                Some(Exit::Code(0)),
            ),
            (None, Ended::PreCheckFailed(reason)) => (
                Outcome::PreCheckFailed {
                    reason: self.options.masker.mask(reason).into_owned(),
                },
                None,
            ),
            (None, Ended::Error(reason)) => (
                Outcome::Failed {
                    exit_code: None,
                    reason: self.options.masker.mask(reason).into_owned(),
                },
                None,
            ),
        };
        let log = self.log_path(job, live.attempt);
        let (state, reason) = match &outcome {
            Outcome::Success => ("SUCCESS", String::new()),
            Outcome::Failed { reason, .. } => ("FAILED", reason.clone()),
            Outcome::PreCheckFailed { reason } => ("FAILED", Outcome::pre_check_reason(reason)),
            Outcome::TimedOut { reason } => ("TIMEOUT", reason.clone()),
            Outcome::Cancelled => ("CANCELLED", self.cancelled_because.clone()),
        };
        tracing::debug!(
            job = %self.pipeline.jobs[job].id,
            attempt = live.attempt,
            state,
            reason = %reason,
            ms = (now.saturating_sub(live.started)).as_secs_f64() * 1000.0,
            "attempt ended"
        );
        let group = self.take_pending_group(job, live.attempt);
        self.pending.push(Pending::Ended {
            job,
            number: live.attempt,
            at: now,
            exit,
            usage: ended.usage(),
            outcome: state,
            reason,
            group,
        });
        self.progress.attempt_ended(job);
        let sample = self.random();
        let transitions = self.scheduler.finish(job, outcome.clone(), now, sample);
        self.attempts.push(AttemptRecord {
            job,
            number: live.attempt,
            started: live.started,
            ended: now,
            outcome,
            exit,
            log,
        });
        self.record_all(&transitions);
    }

    /// Ctrl-C or SIGTERM (or a restart): stop starting jobs and stop the running ones; a
    /// second signal kills.
    fn interrupted(&mut self, by: StopBy) {
        if by == StopBy::Signal {
            self.signals += 1;
        }
        let (reason, note) = match by {
            StopBy::Signal => (
                "interrupted",
                "interrupted: stopping running jobs (press Ctrl-C again to kill them now)",
            ),
            StopBy::Restart => (
                "restarted after a change",
                "stopping running jobs to start again",
            ),
        };
        if let Some(transitions) = self.start_cancelling(reason) {
            self.record_all(&transitions);
            self.progress.note(note);
        }
        let kill_now = self.signals >= 2;
        let mut groups = Vec::new();
        for (job, live) in &mut self.live {
            let grace = self.pipeline.jobs[*job].timeout_grace;
            if live.stop.is_none() || kill_now {
                let reason = live.stop.map_or(KillReason::Cancel, |s| s.reason);
                live.stop = Some(Stop {
                    reason,
                    kill_at: (!kill_now).then(|| Instant::now() + grace),
                });
                groups.extend(live.pgid);
            }
        }
        process::signal_jobs(&groups, libc_signal(kill_now));
    }

    fn next_deadline(&self) -> Option<Instant> {
        let live = self.live.values().filter_map(|l| match l.stop {
            Some(stop) => stop.kill_at,
            None => l.deadline,
        });
        // A retry's wait grows with its backoff, past what an Instant can hold: never then.
        let wakeup = (self.scheduler.next_wakeup()).and_then(|at| self.t0.checked_add(at));
        live.chain(wakeup)
            .chain(Some(self.next_heartbeat))
            .chain(self.groups_due)
            .chain(self.fold_due)
            .min()
    }

    /// Starts the stop of attempts past their timeout; KILLs those past their grace.
    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        // After a failed commit nothing more is written (see `flush`).
        if now >= self.next_heartbeat && self.history_error.is_none() {
            self.next_heartbeat = now + HEARTBEAT;
            let at = self.at_ms(self.now());
            if let Err(e) = self.store.heartbeat(self.options.run_id, at) {
                self.stop_for_history(e);
            }
            self.force_next_commit = true;
            self.flush();
        }
        if self.fold_due.is_some_and(|due| due <= now) {
            self.fold();
        }
        if self.groups_due.is_some_and(|due| due <= now) {
            self.groups_due = None;
            // Unless every group pending went with its attempt's end meanwhile.
            if self
                .pending
                .iter()
                .any(|p| matches!(p, Pending::Group { .. }))
            {
                self.force_next_commit = true;
                self.flush();
            }
        }
        let (mut term, mut kill) = (Vec::new(), Vec::new());
        for (job, live) in &mut self.live {
            match live.stop {
                None if live.deadline.is_some_and(|d| d <= now) => {
                    let kill_at = Some(now + self.pipeline.jobs[*job].timeout_grace);
                    live.stop = Some(Stop {
                        reason: KillReason::Timeout,
                        kill_at,
                    });
                    term.extend(live.pgid);
                }
                Some(Stop {
                    reason,
                    kill_at: Some(kill_at),
                }) if kill_at <= now => {
                    kill.extend(live.pgid);
                    live.stop = Some(Stop {
                        reason,
                        kill_at: None,
                    });
                }
                _ => {}
            }
        }
        for (groups, kill) in [(term, false), (kill, true)] {
            if !groups.is_empty() {
                process::signal_jobs(&groups, libc_signal(kill));
            }
        }
    }

    /// A number in [0, 1) for retry jitter (xorshift; jitter needs spread, not secrecy).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }
}

/// A worker: runs blocking tasks from the queue until the coordinator closes it.
fn worker(tasks: &Mutex<Receiver<Task<'_>>>, tx: &Sender<Event>, waker: &Waker) {
    let send = |event| {
        let _ = tx.send(event);
        waker.wake();
    };
    loop {
        // Only one idle worker waits in `recv`; the others wait for the lock.
        let next = match tasks.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(task) = next else {
            return;
        };
        let (job, ended) = match task {
            Task::Attempt { job, attempt } => (
                job,
                attempt::run(&attempt, &|pgid| send(Event::Started { job, pgid })),
            ),
            Task::Spawn { job, attempt } => match spawn(&attempt) {
                Ok(running) => {
                    if let Ok(pidfd) = running.pidfd() {
                        send(Event::Spawned {
                            job,
                            running: Box::new(running),
                            pidfd,
                        });
                        continue;
                    }
                    // Not watchable: this worker waits for it instead.
                    send(Event::Started {
                        job,
                        pgid: running.pgid(),
                    });
                    (
                        job,
                        running
                            .wait(attempt.job.timeout_grace)
                            .map_or_else(|e| Ended::Error(attempt::with_causes(&e)), Ended::Exited),
                    )
                }
                Err(e) => (job, Ended::Error(attempt::with_causes(&e))),
            },
            Task::Wait {
                job,
                running,
                grace,
            } => (
                job,
                running
                    .wait(grace)
                    .map_or_else(|e| Ended::Error(attempt::with_causes(&e)), Ended::Exited),
            ),
            Task::Leftovers {
                job,
                pgid,
                grace,
                finished,
            } => (
                job,
                process::end_leftovers(pgid, grace).map_or_else(
                    |e| Ended::Error(attempt::with_causes(&e)),
                    |()| Ended::Exited(finished),
                ),
            ),
        };
        send(Event::Ended { job, ended });
    }
}

/// Starts the command of an attempt of a job without checks.
fn spawn(a: &Attempt<'_>) -> Result<Running, process::ProcessError> {
    process::spawn(&AttemptSpec {
        command: &a.command,
        env: &a.env,
        working_dir: a.working_dir,
        log_path: &a.log_path,
    })
}

fn libc_signal(kill: bool) -> i32 {
    if kill {
        signal_hook::consts::SIGKILL
    } else {
        SIGTERM
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos());
    #[allow(clippy::cast_possible_truncation)]
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    mixed | 1
}
