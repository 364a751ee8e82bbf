//! Job and run states, and the one table of transitions between job states.
//!
//! This module owns the answer to "may a job go from this state to that one?". The
//! table is [`allowed`], and a [`Transition`] can only be made through
//! [`Transition::try_new`] or [`Transition::new`], which consult it, so every transition
//! the scheduler returns, the store records and the user reads is one the format allows
//! (FORMAT.md, "States and retries"). Nothing here reads a clock: a transition's time is
//! passed in as the time since the run started.

use std::fmt;
use std::time::Duration;

/// Where one job is in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its needs to be done.
    Pending,
    /// Its needs are done; waiting for a free slot and resources, or for a retry's delay.
    Queued,
    /// An attempt is running.
    Running,
    /// The last attempt succeeded. Final.
    Success,
    /// The last attempt failed (non-zero exit, signal, failed check). Final unless retried.
    Failed,
    /// The last attempt ran past its timeout. Final unless retried.
    Timeout,
    /// Not run: skipped by the user, by `when`, or because a need failed. Final.
    Skipped,
    /// Not run, or killed, because the run was cancelled or stopped. Final.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Queued,
        JobState::Running,
        JobState::Success,
        JobState::Failed,
        JobState::Timeout,
        JobState::Skipped,
        JobState::Cancelled,
    ];

    /// The name users read and the history stores: `"PENDING"`, `"QUEUED"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Queued => "QUEUED",
            JobState::Running => "RUNNING",
            JobState::Success => "SUCCESS",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::Skipped => "SKIPPED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    /// The state named `name` (as [`JobState::as_str`] writes it), if it is one.
    pub fn from_name(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the job is finished in this state. FAILED and TIMEOUT count as final: a
    /// retry leaves them again, but only in the same step that entered them.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobState::Pending | JobState::Queued | JobState::Running
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a job may go from `from` to `to`. This is the whole table; no other
/// transition exists.
pub fn allowed(from: JobState, to: JobState) -> bool {
    use JobState::{Cancelled, Failed, Pending, Queued, Running, Skipped, Success, Timeout};
    match from {
        Pending => matches!(to, Queued | Skipped | Cancelled),
        Queued => matches!(to, Running | Skipped | Cancelled),
        Running => matches!(to, Success | Failed | Timeout | Cancelled),
        // A retry.
        Failed | Timeout => to == Queued,
        Success | Skipped | Cancelled => false,
    }
}

/// Where a whole run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Some job is not final yet.
    Running,
    /// Every job succeeded or was skipped by choice.
    Success,
    /// A job ended FAILED or TIMEOUT (others may have been skipped or cancelled for it).
    Failed,
    /// The run was cancelled (Ctrl-C, a signal) before it finished.
    Cancelled,
}

impl RunState {
    /// Every run state, in the order a run goes through them.
    pub const ALL: [RunState; 4] = [
        RunState::Running,
        RunState::Success,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The name users read and the history stores: `"RUNNING"`, `"SUCCESS"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Success => "SUCCESS",
            RunState::Failed => "FAILED",
            RunState::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job changing state, with why and when. Always allowed by [`allowed`].
///
/// The fields are public to read; a private field keeps code outside this module from
/// building one without [`Transition::new`] or [`Transition::try_new`].
// `#[non_exhaustive]` would only stop other crates; the private field stops other modules.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The job's index in the pipeline.
    pub job: usize,
    /// The state it left.
    pub from: JobState,
    /// The state it entered.
    pub to: JobState,
    /// Why, for the user: `"retry 2 of 4 in 1.5s (exit code 1)"`, `"upstream failed: build"`.
    pub reason: String,
    /// Time since the run started.
    pub at: Duration,
    /// Proof that the table was consulted.
    sealed: (),
}

/// A transition the table does not allow, from [`Transition::try_new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job}: no transition from {from} to {to}")]
pub struct InvalidTransition {
    /// The job's index.
    pub job: usize,
    /// The state it would leave.
    pub from: JobState,
    /// The state it would enter.
    pub to: JobState,
}

impl Transition {
    /// A transition, if the table allows it. For data from outside the scheduler (the
    /// history, a resumed run), where a bad pair is an error to report.
    pub fn try_new(
        job: usize,
        from: JobState,
        to: JobState,
        reason: impl Into<String>,
        at: Duration,
    ) -> Result<Transition, InvalidTransition> {
        if !allowed(from, to) {
            return Err(InvalidTransition { job, from, to });
        }
        Ok(Transition {
            job,
            from,
            to,
            reason: reason.into(),
            at,
            sealed: (),
        })
    }

    /// A transition the caller knows is allowed: the scheduler, whose tests walk every
    /// transition it returns through the table.
    ///
    /// # Panics
    ///
    /// Panics if the table does not allow it, which is a bug in the caller, never a
    /// consequence of user input.
    pub fn new(
        job: usize,
        from: JobState,
        to: JobState,
        reason: impl Into<String>,
        at: Duration,
    ) -> Transition {
        match Transition::try_new(job, from, to, reason, at) {
            Ok(t) => t,
            Err(e) => panic!("bug: {e} (see state::allowed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::{Cancelled, Failed, Pending, Queued, Running, Skipped, Success, Timeout};

    #[test]
    fn table_is_exactly_the_format() {
        let expected = [
            (Pending, Queued),
            (Queued, Running),
            (Running, Success),
            (Running, Failed),
            (Running, Timeout),
            (Failed, Queued),
            (Timeout, Queued),
            (Pending, Skipped),
            (Queued, Skipped),
            (Pending, Cancelled),
            (Queued, Cancelled),
            (Running, Cancelled),
        ];
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(
                    allowed(from, to),
                    expected.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn names_and_finality() {
        let names: Vec<String> = JobState::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "PENDING",
                "QUEUED",
                "RUNNING",
                "SUCCESS",
                "FAILED",
                "TIMEOUT",
                "SKIPPED",
                "CANCELLED"
            ]
        );
        let finals: Vec<JobState> = JobState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Success, Failed, Timeout, Skipped, Cancelled]);
        assert_eq!(RunState::Cancelled.to_string(), "CANCELLED");
        assert_eq!(RunState::Running.as_str(), "RUNNING");
    }

    #[test]
    fn only_allowed_transitions_can_be_made() {
        let t = Transition::new(3, Failed, Queued, "retry", Duration::from_secs(2));
        assert_eq!(
            (t.job, t.from, t.to, t.at),
            (3, Failed, Queued, Duration::from_secs(2))
        );
        assert_eq!(
            Transition::try_new(1, Success, Queued, "", Duration::ZERO),
            Err(InvalidTransition {
                job: 1,
                from: Success,
                to: Queued
            })
        );
    }

    #[test]
    #[should_panic(expected = "bug: job 0: no transition from PENDING to RUNNING")]
    fn new_panics_on_a_bug() {
        let _ = Transition::new(0, Pending, Running, "", Duration::ZERO);
    }
}
