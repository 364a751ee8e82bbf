//! Where each attempt's output goes, and making those files ahead of the jobs.
//!
//! An attempt writes to `<log_dir>/<run>/<job>.log` (`<job>@<n>.log` from the second
//! attempt on); `<run>` is the run's id, or `<id>.<n>` when a folder of that name is already
//! there ([`run_folder`]). Creating a file costs tens of microseconds on a journalled file system
//! such as ext4 (an inode and a directory entry), and the coordinator paid it between one
//! job's end and the next one's start (`docs/performance.md`). So a thread of the run
//! ([`Ahead`]) creates the first attempts' files in advance, in file order, while the jobs
//! run; the coordinator then opens a file that is already there. Files made for jobs that
//! never started (skipped for a failed need, or the run was stopped) are removed at the
//! end of the run.
//!
//! Invariants: the thread only ever creates files that did not exist, and only those are
//! removed, and only when their job made no attempt in the run; it stays at most
//! [`LOOKAHEAD`] files ahead of the jobs started, so a run stopped early has little to
//! remove; it gives up on the first error (the coordinator reports it, with the job, when
//! it opens the file itself).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;

use crate::model::{Job, JobId};

/// The log of attempt `attempt` (from 1) of `job` in the run whose folder is `run`.
#[must_use]
pub fn path(job: &Job, run: &str, attempt: u32) -> PathBuf {
    file(&job.log_dir, &job.id, run, attempt)
}

fn file(log_dir: &Path, id: &JobId, run: &str, attempt: u32) -> PathBuf {
    let name = if attempt <= 1 {
        format!("{id}.log")
    } else {
        format!("{id}@{attempt}.log")
    };
    log_dir.join(run).join(name)
}

/// The name of run `run`'s folder in each log folder, made here: its id, or `<id>.<n>` (from
/// 2) when a folder of that name is already in one of them. That folder holds the logs of a
/// run of the same id in another history (a `--db` elsewhere, a history deleted without its
/// logs), which stay where that history recorded them. Each folder is claimed by making it
/// (`mkdir` fails if it is there), so two runs of the same id starting at once in two
/// histories cannot both take it. Where a folder cannot be made at all, the name is the
/// first one free, and opening the first log says why.
pub fn run_folder<'a>(run: i64, log_dirs: impl IntoIterator<Item = &'a Path>) -> String {
    let mut dirs: Vec<&Path> = log_dirs.into_iter().collect();
    dirs.sort_unstable();
    dirs.dedup();
    let names =
        std::iter::once(run.to_string()).chain((2..=u32::MAX).map(|n| format!("{run}.{n}")));
    for name in names {
        let mut made = Vec::new();
        let mut taken = false;
        for dir in &dirs {
            let folder = dir.join(&name);
            let claimed = fs::create_dir_all(dir).and_then(|()| fs::create_dir(&folder));
            match claimed {
                Ok(()) => made.push(folder),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    taken = true;
                    break;
                }
                // Not writable, not a folder: the first log's open reports it.
                Err(_) if fs::symlink_metadata(&folder).is_err() => {}
                Err(_) => {
                    taken = true;
                    break;
                }
            }
        }
        if !taken {
            return name;
        }
        for folder in made {
            let _ = fs::remove_dir(folder);
        }
    }
    run.to_string()
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

    fn first_log(&self, run: &str) -> PathBuf {
        file(self.log_dir, self.id, run, 1)
    }
}

/// Opens a log to append to, creating it (and its folders) if needed.
///
/// # Errors
///
/// The error of creating the folder or opening the file.
pub fn open(path: &Path) -> io::Result<fs::File> {
    in_folder(path, |p| {
        OpenOptions::new().create(true).append(true).open(p)
    })
}

/// `open(path)`, and if its folder is missing, the same again once the folder is made:
/// the run's log folder is made by whichever comes first, the others find it there.
fn in_folder(path: &Path, open: impl Fn(&Path) -> io::Result<fs::File>) -> io::Result<fs::File> {
    match open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            open(path)
        }
        opened => opened,
    }
}

/// How many logs [`Ahead`] makes beyond the jobs started: far more than any
/// `max_parallel` starts at once, few enough to remove quickly when a run stops early.
pub const LOOKAHEAD: usize = 256;

/// Makes the first attempts' logs ahead of the jobs, paced by the coordinator.
#[derive(Debug, Default)]
pub struct Ahead {
    started: AtomicUsize,
    stopped: AtomicBool,
    /// The thread running [`Ahead::create`], once it has started, to wake it.
    thread: OnceLock<Thread>,
}

impl Ahead {
    /// Creates the first attempt's log of each of `jobs` in run folder `run`, in that order, until
    /// all exist or [`Ahead::stop`] is called. Returns those whose file it created (not
    /// those found already there). Runs on a thread of its own.
    pub fn create<'a>(&self, run: &str, jobs: &[Owner<'a>]) -> Vec<Owner<'a>> {
        let _ = self.thread.set(std::thread::current());
        let mut made = Vec::new();
        for (i, owner) in jobs.iter().enumerate() {
            while !self.stopped.load(Ordering::Acquire)
                && i >= self.started.load(Ordering::Acquire) + LOOKAHEAD
            {
                std::thread::park();
            }
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            let created = in_folder(&owner.first_log(run), |p| {
                OpenOptions::new().write(true).create_new(true).open(p)
            });
            match created {
                Ok(_) => made.push(*owner),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) => break,
            }
        }
        made
    }

    /// A job's first attempt started: the thread may go one file further. It is woken
    /// once per half [`LOOKAHEAD`], not per job.
    pub fn job_started(&self) {
        let started = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        if started.is_multiple_of(LOOKAHEAD / 2) {
            self.wake();
        }
    }

    /// No more files: the run is over or stopping.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// Removes the logs [`Ahead::create`] made for jobs that did not start in the run.
pub fn remove_unused(run: &str, made: &[Owner<'_>], started: impl Fn(usize) -> bool) {
    for owner in made.iter().filter(|owner| !started(owner.job)) {
        // Nothing was written to it; if it is already gone, so much the better.
        let _ = fs::remove_file(owner.first_log(run));
    }
}

/// Removes run `run`'s folder from each log folder where it stayed empty (no job of the
/// run started): [`run_folder`] made it to claim the name.
pub fn remove_if_empty<'a>(run: &str, log_dirs: impl IntoIterator<Item = &'a Path>) {
    let mut dirs: Vec<&Path> = log_dirs.into_iter().collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        // Fails, as it should, on a folder that holds a log.
        let _ = fs::remove_dir(dir.join(run));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pipeline;
    use crate::validate::{Options, from_toml};

    /// Jobs `a`, `b` and `c`, logging under `log_dir`.
    fn pipeline(log_dir: &Path) -> Pipeline {
        jobs(log_dir, &["a", "b", "c"])
    }

    fn jobs(log_dir: &Path, ids: &[&str]) -> Pipeline {
        let mut text = format!("log_dir = {:?}\n", log_dir.display().to_string());
        for id in ids {
            text += &format!("[jobs.{id}]\ncommand = \"true\"\n");
        }
        from_toml(&text, &Options::default())
    }

    fn count(folder: &Path) -> usize {
        fs::read_dir(folder).map_or(0, Iterator::count)
    }

    /// Waits (up to 10 s) until `folder` holds `n` files; returns how many it holds.
    fn wait_for(folder: &Path, n: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count(folder) < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        count(folder)
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
        assert_eq!(path(&p.jobs[0], "7", 1), Path::new("/l/7/a.log"));
        assert_eq!(path(&p.jobs[1], "7", 3), Path::new("/l/7/b@3.log"));
    }

    #[test]
    fn files_made_ahead_are_kept_only_for_jobs_that_started() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let p = pipeline(dir.path());
        // `b` was opened by the coordinator first: not made here, so never removed here.
        fs::create_dir_all(dir.path().join("4")).expect("the run's folder");
        fs::write(dir.path().join("4/b.log"), "output").expect("b's log");
        let made = Ahead::default().create("4", &owners(&p));
        assert_eq!(made.iter().map(|o| o.job).collect::<Vec<_>>(), [0, 2]);
        remove_unused("4", &made, |job| job == 0);
        assert!(dir.path().join("4/a.log").exists(), "a started");
        assert!(dir.path().join("4/b.log").exists(), "b was not made ahead");
        assert!(!dir.path().join("4/c.log").exists(), "c never started");
    }

    #[test]
    fn it_stays_within_the_lookahead_of_the_jobs_started() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let ids: Vec<String> = (0..LOOKAHEAD * 2).map(|i| format!("j{i}")).collect();
        let p = jobs(
            dir.path(),
            &ids.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let (owners, folder) = (owners(&p), dir.path().join("9"));
        let ahead = Ahead::default();
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| ahead.create("9", &owners));
            assert_eq!(wait_for(&folder, LOOKAHEAD), LOOKAHEAD);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(count(&folder), LOOKAHEAD, "no further until jobs start");
            for _ in 0..LOOKAHEAD / 2 {
                ahead.job_started();
            }
            assert_eq!(wait_for(&folder, LOOKAHEAD * 3 / 2), LOOKAHEAD * 3 / 2);
            ahead.stop();
            assert_eq!(thread.join().expect("no panic").len(), LOOKAHEAD * 3 / 2);
        });
    }

    #[test]
    fn a_stopped_run_makes_nothing_more() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let p = pipeline(dir.path());
        let ahead = Ahead::default();
        ahead.stop();
        assert!(ahead.create("1", &owners(&p)).is_empty());
        assert!(!dir.path().join("1").exists());
    }

    #[test]
    fn an_unwritable_log_dir_stops_it_quietly() {
        let p = pipeline(Path::new("/proc/no-logs-here"));
        assert!(Ahead::default().create("1", &owners(&p)).is_empty());
    }
}
