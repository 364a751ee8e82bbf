//! Where each attempt's output goes, and making those files ahead of the jobs.
//!
//! An attempt writes to `<log_dir>/<run>/<job>.log` (`<job>@<n>.log` from the second
//! attempt on). Creating a file costs tens of microseconds on a journalled file system
//! such as ext4 (an inode and a directory entry), and the coordinator paid it between one
//! job's end and the next one's start: 5% of a 200-job chain (`docs/performance.md`). So a
//! thread of the run creates the first attempts' files in advance, in file order, while
//! the jobs run; the coordinator then opens a file that is already there. Files made for
//! jobs that never started (skipped for a failed need, or the run was stopped) are
//! removed at the end of the run.
//!
//! Invariants: this thread only ever creates files that did not exist, and only those are
//! removed, and only when their job made no attempt in the run; it gives up on the first
//! error (the coordinator reports it, with the job, when it opens the file itself).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::{Job, JobId};

/// The log of attempt `attempt` (from 1) of `job` in run `run`.
#[must_use]
pub fn path(job: &Job, run: i64, attempt: u32) -> PathBuf {
    Owner::of(0, job).path(run, attempt)
}

/// What names a job's logs, apart from the run and the attempt; it can go to another thread.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The job's index.
    pub job: usize,
    id: &'a JobId,
    log_dir: &'a Path,
}

impl<'a> Owner<'a> {
    /// Job `index` of a pipeline, which is `job`.
    #[must_use]
    pub fn of(index: usize, job: &'a Job) -> Self {
        Owner {
            job: index,
            id: &job.id,
            log_dir: &job.log_dir,
        }
    }

    fn path(&self, run: i64, attempt: u32) -> PathBuf {
        let name = if attempt <= 1 {
            format!("{}.log", self.id)
        } else {
            format!("{}@{attempt}.log", self.id)
        };
        self.log_dir.join(run.to_string()).join(name)
    }
}

/// Opens a log to append to, creating it (and its folders) if needed.
///
/// # Errors
///
/// The error of creating the folder or opening the file.
pub fn open(path: &Path) -> io::Result<fs::File> {
    let open = || OpenOptions::new().create(true).append(true).open(path);
    match open() {
        // The run's log folder is made by its first attempt; the others find it there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            open()
        }
        opened => opened,
    }
}

/// Creates the first attempt's log of each of `jobs`, in that order, until all exist or
/// `stop` is set. Returns those whose file it created (not those found already there).
pub fn create_ahead<'a>(run: i64, jobs: &[Owner<'a>], stop: &AtomicBool) -> Vec<Owner<'a>> {
    let mut made = Vec::new();
    for owner in jobs {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let path = owner.path(run, 1);
        let create = || OpenOptions::new().write(true).create_new(true).open(&path);
        let created = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => path
                .parent()
                .map_or(Err(e), fs::create_dir_all)
                .and_then(|()| create()),
            created => created,
        };
        match created {
            Ok(_) => made.push(*owner),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => break,
        }
    }
    made
}

/// Removes the logs [`create_ahead`] made for jobs that did not start in the run.
pub fn remove_unused(run: i64, made: &[Owner<'_>], started: impl Fn(usize) -> bool) {
    for owner in made.iter().filter(|owner| !started(owner.job)) {
        // Nothing was written to it; if it is already gone, so much the better.
        let _ = fs::remove_file(owner.path(run, 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pipeline;
    use crate::validate::{Options, from_toml};

    /// Jobs `a`, `b` and `c`, logging under `log_dir`.
    fn pipeline(log_dir: &Path) -> Pipeline {
        let mut text = format!("log_dir = {:?}\n", log_dir.display().to_string());
        for id in ["a", "b", "c"] {
            text += &format!("[jobs.{id}]\ncommand = \"true\"\n");
        }
        from_toml(&text, &Options::default())
    }

    fn owners(p: &Pipeline) -> Vec<Owner<'_>> {
        p.jobs
            .iter()
            .enumerate()
            .map(|(i, job)| Owner::of(i, job))
            .collect()
    }

    #[test]
    fn paths_name_the_run_the_job_and_later_attempts() {
        let p = pipeline(Path::new("/l"));
        assert_eq!(path(&p.jobs[0], 7, 1), Path::new("/l/7/a.log"));
        assert_eq!(path(&p.jobs[1], 7, 3), Path::new("/l/7/b@3.log"));
    }

    #[test]
    fn files_made_ahead_are_kept_only_for_jobs_that_started() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let p = pipeline(dir.path());
        // `b` was opened by the coordinator first: not made here, so never removed here.
        fs::create_dir_all(dir.path().join("4")).expect("the run's folder");
        fs::write(dir.path().join("4/b.log"), "output").expect("b's log");
        let made = create_ahead(4, &owners(&p), &AtomicBool::new(false));
        assert_eq!(made.iter().map(|o| o.job).collect::<Vec<_>>(), [0, 2]);
        remove_unused(4, &made, |job| job == 0);
        assert!(dir.path().join("4/a.log").exists(), "a started");
        assert!(dir.path().join("4/b.log").exists(), "b was not made ahead");
        assert!(!dir.path().join("4/c.log").exists(), "c never started");
    }

    #[test]
    fn a_stopped_run_makes_nothing_more() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let p = pipeline(dir.path());
        assert!(create_ahead(1, &owners(&p), &AtomicBool::new(true)).is_empty());
        assert!(!dir.path().join("1").exists());
    }

    #[test]
    fn an_unwritable_log_dir_stops_it_quietly() {
        let p = pipeline(Path::new("/proc/no-logs-here"));
        assert!(create_ahead(1, &owners(&p), &AtomicBool::new(false)).is_empty());
    }
}
