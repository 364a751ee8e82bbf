//! `exe watch`: apply a pipeline, then apply it again whenever the pipeline or a job's
//! inputs change.
//!
//! One thread (this one) owns the loop. It hears changes (notify's thread), SIGINT/SIGTERM
//! (a signal thread) and the end of a run (the run's thread) over one channel, and it is
//! the only owner of those signals while it runs: the run it starts listens to none and is
//! stopped through its [`Cancel`], the path a signal takes in `apply`. Changes gather into
//! a burst until they pause for the debounce time; one burst, one rerun. Every run reloads
//! the pipeline, so an edit is linted, and the rules of what to watch follow it.

mod folders;
mod globs;
mod rules;

use std::io::{IsTerminal as _, Write as _};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use indexmap::IndexSet;

use crate::cli::OnBusy;
use crate::diagnostic::{Diagnostic, render_human};
use crate::error::{EXIT_INTERRUPTED, Error};
use crate::model::Pipeline;
use crate::runner::Cancel;
use crate::signals;

use folders::{Folders, Notice};
pub use folders::{WatchError, identity};
use rules::Rules;

/// Paths named when saying what changed; the rest are counted.
const NAMED: usize = 3;

/// A loaded pipeline and the files it was read from.
pub struct Loaded {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The pipeline file and every file it includes.
    pub files: Vec<PathBuf>,
}

/// A pipeline that could not be loaded.
pub struct Broken {
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
    /// The files involved, to watch for the fix.
    pub files: Vec<PathBuf>,
}

/// How the watch behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The history database (ignored, with its `-wal` and `-shm` files).
    pub db: PathBuf,
    /// How long changes must pause before a rerun.
    pub debounce: Duration,
    /// What a change during a run does.
    pub on_busy: OnBusy,
    /// Errors only.
    pub quiet: bool,
    /// Colour on stderr.
    pub color: bool,
}

/// What the loop hears.
enum Msg {
    Notice(Notice),
    Signal,
    /// The run's thread finished with this.
    Ended(Result<i32, Error>),
}

/// How a run's phase ended.
enum After {
    /// Run again at once (the changes were already announced).
    Again,
    /// Wait for changes.
    Wait,
    /// Stop watching with this exit code.
    Stop(i32),
}

/// Applies, then applies again on every burst of changes, until Ctrl-C. `load` loads the
/// pipeline; `apply` runs it once, on its own thread, stopped through the [`Cancel`].
pub fn run<L, A>(settings: &Settings, mut load: L, mut apply: A) -> Result<i32, Error>
where
    L: FnMut() -> Result<Loaded, Broken>,
    A: FnMut(&Pipeline, Cancel) -> Result<i32, Error> + Send,
{
    let (tx, rx) = mpsc::channel();
    let signal_tx = tx.clone();
    let _signals = signals::Forward::start(move || {
        // A commit waiting for another process's lock must not hold the stop up.
        crate::store::stop_waiting();
        signal_tx.send(Msg::Signal).is_ok()
    })
    .map_err(|e| Error::Run(format!("cannot handle signals: {e}")))?;
    let notices = tx.clone();
    let mut folders = Folders::new(move |notice| {
        let _ = notices.send(Msg::Notice(notice));
    })?;
    let mut watch = Watch {
        settings,
        rules: Rules::new(None, &[], &settings.db),
        burst: Burst::default(),
        cwd: std::env::current_dir().unwrap_or_default(),
    };
    loop {
        let pipeline = match load() {
            Ok(loaded) => {
                watch.rules = Rules::new(Some(&loaded.pipeline), &loaded.files, &settings.db);
                Some(loaded.pipeline)
            }
            Err(broken) => {
                stderr!("{}", render_human(&broken.diagnostics, settings.color));
                // Until it loads, only its files count; those of the last good load too.
                let mut files: Vec<PathBuf> = watch.rules.files().map(Path::to_path_buf).collect();
                files.extend(broken.files);
                watch.rules = Rules::new(None, &files, &settings.db);
                None
            }
        };
        folders.sync(watch.rules.folders())?;
        tracing::debug!(
            folders = folders.len(),
            loaded = pipeline.is_some(),
            "watching"
        );
        let after = match &pipeline {
            Some(pipeline) => watch.run(&tx, &rx, |cancel| apply(pipeline, cancel))?,
            None => After::Wait,
        };
        match after {
            After::Again => continue,
            After::Stop(code) => return Ok(code),
            After::Wait => {}
        }
        let n = folders.len();
        let paths = if n == 1 { "path" } else { "paths" };
        watch.say(&format!("watching {n} {paths} (Ctrl-C to stop)"));
        match watch.wait(&rx)? {
            Some(changed) => {
                let named = watch.name(&changed);
                watch.say(&format!("change detected: {named}; running again"));
            }
            None => return Ok(EXIT_INTERRUPTED),
        }
    }
}

/// The loop's state between messages.
struct Watch<'s> {
    settings: &'s Settings,
    rules: Rules,
    burst: Burst,
    cwd: PathBuf,
}

impl Watch<'_> {
    /// Runs once on a thread of its own while hearing changes and signals: a burst during
    /// the run cancels it (`restart`) or waits for its end (`queue`).
    fn run<R>(&mut self, tx: &Sender<Msg>, rx: &Receiver<Msg>, apply: R) -> Result<After, Error>
    where
        R: FnOnce(Cancel) -> Result<i32, Error> + Send,
    {
        let cancel = Cancel::default();
        let mut queued = false;
        let mut cancelled = false;
        let mut stopping = false;
        let mut broke = None;
        let ended = std::thread::scope(|scope| {
            let (tx, run_cancel) = (tx.clone(), cancel.clone());
            scope.spawn(move || {
                // A bug that panics the run must still end this loop, not leave it waiting.
                let ended = std::panic::catch_unwind(AssertUnwindSafe(|| apply(run_cancel)))
                    .unwrap_or_else(|_| Err(Error::Run("the run stopped on a bug in exe".into())));
                let _ = tx.send(Msg::Ended(ended));
            });
            loop {
                let Some(msg) = self.next(rx) else {
                    let changed = self.burst.take();
                    if !stopping {
                        let named = self.name(&changed);
                        match self.settings.on_busy {
                            OnBusy::Restart if !cancelled => {
                                self.say(&format!("change detected: {named}, restarting"));
                                cancel.restart();
                                cancelled = true;
                            }
                            OnBusy::Restart => {}
                            OnBusy::Queue => self.say(&format!(
                                "change detected: {named}; running again when this run ends"
                            )),
                        }
                    }
                    queued = true;
                    continue;
                };
                match msg {
                    Msg::Notice(Notice::Changed(paths)) => self.heard(paths),
                    Msg::Notice(Notice::Failed(e)) => {
                        broke.get_or_insert(e);
                        if !stopping {
                            cancel.cancel();
                            stopping = true;
                        }
                    }
                    Msg::Signal => {
                        // Each one counts: the second kills at once, as in `apply`.
                        cancel.cancel();
                        stopping = true;
                    }
                    Msg::Ended(result) => break result,
                }
            }
        });
        if let Some(e) = broke {
            return Err(e.into());
        }
        if stopping {
            return Ok(After::Stop(EXIT_INTERRUPTED));
        }
        match ended {
            Ok(_) => {}
            // A pipeline that loads but cannot run (an unknown `--only`, a job too big for
            // the machine) is fixed in the file, like a broken one.
            Err(Error::Config(diagnostics)) => {
                stderr!("{}", render_human(&diagnostics, self.settings.color));
            }
            Err(e) => return Err(e),
        }
        if queued {
            // The rerun reads the files as they are now, half-gathered changes included.
            self.burst.take();
            Ok(After::Again)
        } else {
            Ok(After::Wait)
        }
    }

    /// Waits for a burst of changes; `None` on Ctrl-C.
    fn wait(&mut self, rx: &Receiver<Msg>) -> Result<Option<Vec<PathBuf>>, Error> {
        loop {
            match self.next(rx) {
                None => return Ok(Some(self.burst.take())),
                Some(Msg::Notice(Notice::Changed(paths))) => self.heard(paths),
                Some(Msg::Notice(Notice::Failed(e))) => return Err(e.into()),
                Some(Msg::Signal) => return Ok(None),
                Some(Msg::Ended(_)) => {}
            }
        }
    }

    /// The next message, or `None` when the burst is over.
    fn next(&self, rx: &Receiver<Msg>) -> Option<Msg> {
        match self.burst.due(self.settings.debounce) {
            Some(at) => rx
                .recv_timeout(at.saturating_duration_since(Instant::now()))
                .ok(),
            // The loop holds a sender, so this waits until something comes.
            None => rx.recv().ok(),
        }
    }

    fn heard(&mut self, paths: Vec<PathBuf>) {
        let now = Instant::now();
        for path in paths {
            if self.rules.triggers(&path) {
                self.burst.add(path, now);
            } else {
                tracing::trace!(path = %path.display(), "change ignored");
            }
        }
    }

    /// The first few changed paths, relative to the current folder where they are below it.
    fn name(&self, paths: &[PathBuf]) -> String {
        let mut named: Vec<String> = paths
            .iter()
            .take(NAMED)
            .map(|p| p.strip_prefix(&self.cwd).unwrap_or(p).display().to_string())
            .collect();
        if paths.len() > NAMED {
            named.push(format!("and {} more", paths.len() - NAMED));
        }
        named.join(", ")
    }

    /// A line from the watch itself (not with `-q`).
    fn say(&self, line: &str) {
        if self.settings.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        // A run's live status line may be showing: the line replaces it.
        let clear = if err.is_terminal() { "\r\x1b[2K" } else { "" };
        let _ = writeln!(err, "{clear}{line}");
    }
}

/// Changes gathered until they pause: one burst, one rerun.
#[derive(Debug, Default)]
struct Burst {
    paths: IndexSet<PathBuf>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// A burst that never pauses is still over after this many debounce times.
const LONGEST_BURST: u32 = 10;

impl Burst {
    fn add(&mut self, path: PathBuf, now: Instant) {
        self.paths.insert(path);
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the burst is over: `debounce` after its last change, and at the latest ten
    /// debounce times after its first. `None` while there is none.
    fn due(&self, debounce: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + debounce).min(first + debounce * LONGEST_BURST))
    }

    fn take(&mut self) -> Vec<PathBuf> {
        let burst = std::mem::take(self);
        burst.paths.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(100);

    #[test]
    fn a_burst_ends_when_changes_pause() {
        let t0 = Instant::now();
        let mut burst = Burst::default();
        assert_eq!(burst.due(D), None);
        burst.add("a".into(), t0);
        assert_eq!(burst.due(D), Some(t0 + D));
        burst.add("b".into(), t0 + D / 2);
        burst.add("a".into(), t0 + D / 2);
        assert_eq!(burst.due(D), Some(t0 + D * 3 / 2));
        assert_eq!(burst.take(), [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(burst.due(D), None);
    }

    #[test]
    fn a_burst_that_never_pauses_still_ends() {
        let t0 = Instant::now();
        let mut burst = Burst::default();
        for i in 0..100 {
            burst.add("a".into(), t0 + D / 2 * i);
        }
        assert_eq!(burst.due(D), Some(t0 + D * LONGEST_BURST));
    }
}
