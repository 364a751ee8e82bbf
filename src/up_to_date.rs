//! Which jobs are up to date, and for the others, what changed since their last success.
//!
//! A job with `inputs` that would run is up to date, and is skipped (reason "up to date"),
//! when all of these hold:
//! - its last recorded start, in any earlier run of a pipeline with the same name, is now
//!   SUCCESS (a job marked successful by hand counts, with what it started with);
//! - it started then with the fingerprint it has now: command, environment, inputs;
//! - every `outputs` pattern matches an existing path;
//! - none of its needs runs now, and none started again after it did.
//!
//! Otherwise it runs, and every reason found is kept for `exe plan` to show. The last
//! rule makes a rerun carry down the graph: a job that runs makes all its dependents run.
//! A job without `inputs` is never up to date, so it always runs (and so do the jobs that
//! need it). Jobs the selection already skips (`--skip`, `--only`, `when`, `--resume`) are
//! left as they are, and do not make their dependents run.
//!
//! [`decide`] is the pure part (the rules above over what is known); [`check`] gathers what
//! is known from the history and the file system.

use crate::fingerprint::{Diff, Fingerprinter, Manifest};
use crate::model::Pipeline;
use crate::selection::{Disposition, SkipReason};
use crate::store::{LastStart, Store, StoreError};

/// One reason a job with `inputs` is not up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// No start of it is recorded (or there is no history).
    NeverSucceeded,
    /// Its last start did not end in SUCCESS.
    NotSucceeded {
        /// The run of that start.
        run: i64,
        /// The job's state in that run.
        state: String,
    },
    /// Its fingerprint could not be taken when it last started.
    NotFingerprinted {
        /// The run of that start.
        run: i64,
    },
    /// Its fingerprint cannot be taken now (an input cannot be read).
    Unreadable(String),
    /// The rendered command differs.
    Command,
    /// These variables were changed, added or removed (empty if the names are unknown).
    Environment(Vec<String>),
    /// These input files changed, are new, or are gone.
    Inputs(Diff),
    /// This `outputs` pattern matches nothing.
    OutputMissing(String),
    /// A job it needs runs now.
    NeedRuns(String),
    /// A job it needs started again (in this run) after it last did.
    NeedRanAgain {
        /// The job needed.
        need: String,
        /// The run that job started in.
        run: i64,
    },
}

/// How many file names a change lists before "and N more".
const NAMES_SHOWN: usize = 5;

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::NeverSucceeded => f.write_str("never succeeded"),
            Change::NotSucceeded { run, state } => {
                write!(f, "did not succeed in run {run} ({state})")
            }
            Change::NotFingerprinted { run } => {
                write!(
                    f,
                    "its inputs could not be read when it started in run {run}"
                )
            }
            Change::Unreadable(why) => f.write_str(why),
            Change::Command => f.write_str("command changed"),
            Change::Environment(names) if names.is_empty() => f.write_str("environment changed"),
            Change::Environment(names) => write!(f, "environment changed: {}", names.join(", ")),
            Change::Inputs(diff) => {
                let names: Vec<String> = diff
                    .changed
                    .iter()
                    .cloned()
                    .chain(diff.added.iter().map(|n| format!("{n} (new)")))
                    .chain(diff.removed.iter().map(|n| format!("{n} (removed)")))
                    .collect();
                f.write_str("inputs changed")?;
                if !names.is_empty() {
                    write!(f, ": {}", names[..names.len().min(NAMES_SHOWN)].join(", "))?;
                }
                if names.len() > NAMES_SHOWN {
                    write!(f, " and {} more", names.len() - NAMES_SHOWN)?;
                }
                Ok(())
            }
            Change::OutputMissing(pattern) => write!(f, "output missing: {pattern}"),
            Change::NeedRuns(need) => write!(f, "needs `{need}`, which runs"),
            Change::NeedRanAgain { need, run } => {
                write!(f, "needs `{need}`, which ran again in run {run}")
            }
        }
    }
}

/// The dispositions with up-to-date jobs skipped, and why the others run.
#[derive(Debug)]
pub struct Verdicts {
    /// One per job, by index.
    pub dispositions: Vec<Disposition>,
    /// Per job: for one with `inputs` that the selection runs, what changed (empty when
    /// it is up to date); `None` for every other job.
    pub changes: Vec<Option<Vec<Change>>>,
}

/// Applies the rules of the module docs to `dispositions`. `own[job]` holds the job's
/// own changes (history and files, not its needs) for each job to decide; `last_run[job]`
/// the run of its last recorded start.
pub fn decide(
    pipeline: &Pipeline,
    mut dispositions: Vec<Disposition>,
    last_run: &[Option<i64>],
    mut own: Vec<Option<Vec<Change>>>,
) -> Verdicts {
    let dag = &pipeline.dag;
    let mut changes = vec![None; dispositions.len()];
    // Needs come first in this order, so their dispositions are final when read.
    for &job in dag.order() {
        let Some(mut found) = own[job].take() else {
            continue;
        };
        if dispositions[job] != Disposition::Run {
            continue;
        }
        for &need in dag.needs(job) {
            let id = pipeline.jobs[need].id.0.clone();
            if dispositions[need] == Disposition::Run {
                found.push(Change::NeedRuns(id));
            } else if let (Some(theirs), Some(mine)) = (last_run[need], last_run[job])
                && theirs > mine
            {
                found.push(Change::NeedRanAgain {
                    need: id,
                    run: theirs,
                });
            }
        }
        if found.is_empty() {
            dispositions[job] = Disposition::Skip(SkipReason::UpToDate);
        }
        changes[job] = Some(found);
    }
    Verdicts {
        dispositions,
        changes,
    }
}

/// Decides with what the history (if any) recorded and what the files say now. Only jobs
/// with a recorded success are fingerprinted: the others run whatever their files hold.
pub fn check(
    pipeline: &Pipeline,
    dispositions: Vec<Disposition>,
    history: Option<&Store>,
    fingerprinter: &Fingerprinter<'_>,
) -> Result<Verdicts, StoreError> {
    let with_inputs: Vec<usize> = (0..pipeline.jobs.len())
        .filter(|&j| !pipeline.jobs[j].inputs.is_empty())
        .collect();
    if with_inputs.is_empty() {
        // Nothing to decide: no query, no fingerprint.
        return Ok(Verdicts {
            dispositions,
            changes: vec![None; pipeline.jobs.len()],
        });
    }
    let mut starts: Vec<Option<LastStart>> = vec![None; pipeline.jobs.len()];
    if let Some(store) = history {
        let ids: Vec<&str> = with_inputs
            .iter()
            .map(|&j| pipeline.jobs[j].id.0.as_str())
            .collect();
        for (&job, start) in with_inputs
            .iter()
            .zip(store.last_starts(&pipeline.name, &ids)?)
        {
            starts[job] = start;
        }
    }
    let mut own = vec![None; pipeline.jobs.len()];
    for &job in &with_inputs {
        if dispositions[job] == Disposition::Run {
            own[job] = Some(own_changes(
                job,
                starts[job].as_ref(),
                history,
                fingerprinter,
            )?);
        }
    }
    let last_run: Vec<Option<i64>> = starts.iter().map(|s| s.as_ref().map(|s| s.run)).collect();
    Ok(decide(pipeline, dispositions, &last_run, own))
}

/// What changed for one job since its last start, leaving its needs aside.
fn own_changes(
    job: usize,
    start: Option<&LastStart>,
    history: Option<&Store>,
    fingerprinter: &Fingerprinter<'_>,
) -> Result<Vec<Change>, StoreError> {
    let (Some(start), Some(store)) = (start, history) else {
        return Ok(vec![Change::NeverSucceeded]);
    };
    if start.state != "SUCCESS" {
        return Ok(vec![Change::NotSucceeded {
            run: start.run,
            state: start.state.clone(),
        }]);
    }
    let Some(recorded) = &start.digests else {
        return Ok(vec![Change::NotFingerprinted { run: start.run }]);
    };
    let now = match fingerprinter.job(job) {
        Ok(now) => now,
        Err(why) => return Ok(vec![Change::Unreadable(why)]),
    };
    let before = |digest: &[u8]| -> Result<Option<Manifest>, StoreError> {
        Ok(store
            .manifest(digest)?
            .as_deref()
            .and_then(Manifest::decode))
    };
    let mut changes = Vec::new();
    let (command, env, inputs) = now.matches(recorded);
    if !command {
        changes.push(Change::Command);
    }
    if !env {
        let names = before(&recorded.env)?.map_or_else(Vec::new, |old| {
            let d = old.diff(&now.env);
            let mut names = [d.changed, d.added, d.removed].concat();
            names.sort();
            names
        });
        changes.push(Change::Environment(names));
    }
    if !inputs {
        let diff =
            before(&recorded.inputs)?.map_or_else(Diff::default, |old| old.diff(&now.inputs));
        changes.push(Change::Inputs(diff));
    }
    changes.extend(
        fingerprinter
            .missing_outputs(job)
            .into_iter()
            .map(|p| Change::OutputMissing(p.to_owned())),
    );
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Options, from_toml};

    /// a -> b -> c, and d alone; every job has inputs.
    fn pipeline() -> Pipeline {
        let text = "[jobs.a]\ncommand = \"true\"\ninputs = [\"x\"]\n\
                    [jobs.b]\ncommand = \"true\"\ninputs = [\"x\"]\nneeds = [\"a\"]\n\
                    [jobs.c]\ncommand = \"true\"\ninputs = [\"x\"]\nneeds = [\"b\"]\n\
                    [jobs.d]\ncommand = \"true\"\ninputs = [\"x\"]\n";
        from_toml(text, &Options::default())
    }

    const RUN: Disposition = Disposition::Run;
    const FRESH: Disposition = Disposition::Skip(SkipReason::UpToDate);

    /// A job to decide whose own fingerprint and outputs are as they were.
    const UP_TO_DATE: Option<Vec<Change>> = Some(Vec::new());

    #[test]
    fn a_rerun_carries_down_to_every_dependent() {
        let p = pipeline();
        let own = vec![
            Some(vec![Change::Command]),
            UP_TO_DATE,
            UP_TO_DATE,
            UP_TO_DATE,
        ];
        let v = decide(&p, vec![RUN; 4], &[Some(1); 4], own);
        assert_eq!(v.dispositions, [RUN, RUN, RUN, FRESH]);
        assert_eq!(v.changes[1], Some(vec![Change::NeedRuns("a".into())]));
        assert_eq!(v.changes[2], Some(vec![Change::NeedRuns("b".into())]));
        assert_eq!(v.changes[3], Some(vec![]));
        assert_eq!(
            v.changes[2].as_ref().unwrap()[0].to_string(),
            "needs `b`, which runs"
        );
    }

    #[test]
    fn jobs_the_selection_skips_stay_skipped_and_do_not_carry_a_rerun() {
        let p = pipeline();
        let skipped = Disposition::Skip(SkipReason::Flag);
        let own = vec![None, UP_TO_DATE, UP_TO_DATE, None];
        let v = decide(&p, vec![skipped.clone(), RUN, RUN, RUN], &[Some(1); 4], own);
        assert_eq!(v.dispositions, [skipped, FRESH, FRESH, RUN]);
        assert_eq!(v.changes[0], None);
        assert_eq!(
            v.changes[3], None,
            "no own changes given: not decided (no inputs)"
        );
    }

    #[test]
    fn a_need_that_started_again_since_makes_a_job_stale() {
        let p = pipeline();
        // `a` ran (alone, with --only) in run 5, after b's last start in run 3.
        let own = vec![UP_TO_DATE, UP_TO_DATE, UP_TO_DATE, UP_TO_DATE];
        let v = decide(&p, vec![RUN; 4], &[Some(5), Some(3), Some(3), None], own);
        assert_eq!(v.dispositions, [FRESH, RUN, RUN, FRESH]);
        assert_eq!(
            v.changes[1].as_ref().unwrap()[0].to_string(),
            "needs `a`, which ran again in run 5"
        );
        assert_eq!(v.changes[2], Some(vec![Change::NeedRuns("b".into())]));
    }

    #[test]
    fn changes_read_as_short_phrases() {
        let diff = Diff {
            changed: vec!["sql/load.sql".into()],
            added: (1..=5).map(|i| format!("n{i}")).collect(),
            removed: vec!["old.sql".into()],
        };
        assert_eq!(
            Change::Inputs(diff).to_string(),
            "inputs changed: sql/load.sql, n1 (new), n2 (new), n3 (new), n4 (new) and 2 more"
        );
        let one = Diff {
            changed: vec!["sql/load.sql".into()],
            ..Diff::default()
        };
        assert_eq!(
            Change::Inputs(one).to_string(),
            "inputs changed: sql/load.sql"
        );
        assert_eq!(
            Change::Inputs(Diff::default()).to_string(),
            "inputs changed"
        );
        assert_eq!(
            Change::Environment(vec!["A".into(), "B_TOKEN".into()]).to_string(),
            "environment changed: A, B_TOKEN"
        );
        assert_eq!(
            Change::NotSucceeded {
                run: 7,
                state: "FAILED".into()
            }
            .to_string(),
            "did not succeed in run 7 (FAILED)"
        );
        assert_eq!(
            Change::OutputMissing("out/x.csv".into()).to_string(),
            "output missing: out/x.csv"
        );
    }
}
