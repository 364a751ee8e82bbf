//! What a person sees while a run runs: job output, job events and a live status line.
//!
//! It runs on its own thread and reads job output from the log files (the files are the
//! record; nothing here can lose a line), so a job printing gigabytes slows only this
//! display, never the scheduling. Job output goes to stdout, prefixed with the job id and
//! only as whole lines, so two jobs never share a line; exe's own lines go to stderr.

use std::fs::File;
use std::io::{IsTerminal as _, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::OutputMode;
use crate::state::{JobState, Transition};

/// How often running jobs' logs are read and the status line redrawn.
const TICK: Duration = Duration::from_millis(100);
/// Output is read in pieces of this size.
const CHUNK: u64 = 1 << 20;
/// How long one job's output may be shown for in one tick before the others get a turn.
const TURN: Duration = Duration::from_millis(50);

/// How the display behaves.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Job output mode.
    pub output: OutputMode,
    /// Errors only (`-q`).
    pub quiet: bool,
    /// Colour on stderr.
    pub color: bool,
}

enum Msg {
    Transition {
        job: usize,
        to: JobState,
        reason: String,
    },
    Started {
        job: usize,
        attempt: u32,
        log: PathBuf,
    },
    Ended {
        job: usize,
    },
    Note(String),
}

/// The handle the coordinator talks to.
pub struct Progress {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the display thread for jobs with these ids.
    pub fn start(ids: Vec<String>, style: Style) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut display = Display::new(ids, style);
            // Messages are taken once per tick, not as they come: a run of short jobs sends
            // several per job, and waking this thread for each one would cost the jobs CPU.
            loop {
                // `finish` unparks this thread, so the end of a run never waits for a tick.
                std::thread::park_timeout(TICK);
                loop {
                    match rx.try_recv() {
                        Ok(msg) => display.handle(msg),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            display.close();
                            return;
                        }
                    }
                }
                display.tick();
            }
        });
        Progress {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }

    /// A job changed state.
    pub fn transition(&self, t: &Transition) {
        self.send(Msg::Transition {
            job: t.job,
            to: t.to,
            reason: t.reason.clone(),
        });
    }

    /// An attempt started writing to `log`.
    pub fn attempt_started(&self, job: usize, attempt: u32, log: &Path) {
        self.send(Msg::Started {
            job,
            attempt,
            log: log.to_path_buf(),
        });
    }

    /// An attempt's processes are gone: its log is complete.
    pub fn attempt_ended(&self, job: usize) {
        self.send(Msg::Ended { job });
    }

    /// A line from exe itself.
    pub fn note(&self, text: &str) {
        self.send(Msg::Note(text.to_owned()));
    }

    /// Shows what is left and stops the display.
    pub fn finish(mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A log being followed.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

struct Display {
    ids: Vec<String>,
    style: Style,
    /// Whether the live status line is drawn (on a terminal, without exe's own log).
    status_line: bool,
    states: Vec<JobState>,
    tails: Vec<Option<Tail>>,
    started: Instant,
    status_shown: bool,
}

impl Display {
    fn new(ids: Vec<String>, style: Style) -> Self {
        let n = ids.len();
        Display {
            ids,
            style,
            // exe's own log (`-v`, `EXE_LOG`) is written to stderr as it comes, and would
            // run into a status line: with it on, no status line is drawn.
            status_line: std::io::stderr().is_terminal()
                && !style.quiet
                && tracing::level_filters::LevelFilter::current()
                    <= tracing::level_filters::LevelFilter::WARN,
            states: vec![JobState::Pending; n],
            tails: (0..n).map(|_| None).collect(),
            started: Instant::now(),
            status_shown: false,
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Transition { job, to, reason } => {
                self.states[job] = to;
                self.event(job, to, &reason);
            }
            Msg::Started { job, attempt, log } => {
                if attempt > 1 && !self.style.quiet {
                    self.line_err(&format!("{} attempt {attempt}", self.ids[job]));
                }
                self.tails[job] = Some(Tail {
                    path: log,
                    offset: 0,
                    partial: Vec::new(),
                });
            }
            Msg::Ended { job } => self.drain(job, true),
            Msg::Note(text) => self.line_err(&text),
        }
    }

    fn event(&mut self, job: usize, to: JobState, reason: &str) {
        let id = &self.ids[job];
        let failed = matches!(to, JobState::Failed | JobState::Timeout);
        if self.style.quiet && !failed {
            return;
        }
        let line = match to {
            JobState::Running if !self.status_line => format!("{id} started"),
            JobState::Success => format!("{id} {}", self.paint("SUCCESS", "32")),
            JobState::Failed | JobState::Timeout => {
                let state = self.paint(to.as_str(), "31");
                if reason.is_empty() {
                    format!("{id} {state}")
                } else {
                    format!("{id} {state}: {reason}")
                }
            }
            JobState::Skipped | JobState::Cancelled => {
                format!("{id} {}: {reason}", self.paint(to.as_str(), "33"))
            }
            JobState::Queued if reason.starts_with("retry") => format!("{id} {reason}"),
            _ => return,
        };
        self.line_err(&line);
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.style.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn tick(&mut self) {
        for job in 0..self.tails.len() {
            if self.tails[job].is_some() {
                self.drain(job, false);
            }
        }
        self.status();
    }

    /// Shows new output of a job; `end` also shows a last line without a newline.
    fn drain(&mut self, job: usize, end: bool) {
        let Some(mut tail) = self.tails[job].take() else {
            return;
        };
        let mode = self.style.output;
        if mode == OutputMode::Quiet || (mode == OutputMode::Grouped && !end) {
            self.tails[job] = (!end).then_some(tail);
            return;
        }
        let prefix = format!("{} | ", self.ids[job]);
        if mode == OutputMode::Grouped {
            self.write_out(format!("── {} ──\n", self.ids[job]).as_bytes());
        }
        let turn_ends = Instant::now() + TURN;
        loop {
            let chunk = read_from(&tail.path, tail.offset, CHUNK);
            if chunk.is_empty() {
                break;
            }
            tail.offset += chunk.len() as u64;
            tail.partial.extend_from_slice(&chunk);
            let out = take_lines(&mut tail.partial, prefix.as_bytes());
            self.write_out(&out);
            if !end && Instant::now() >= turn_ends {
                break;
            }
        }
        if end && !tail.partial.is_empty() {
            let mut out = prefix.into_bytes();
            out.append(&mut tail.partial);
            out.push(b'\n');
            self.write_out(&out);
        }
        self.tails[job] = (!end).then_some(tail);
    }

    fn write_out(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.clear_status();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(String::from_utf8_lossy(bytes).as_bytes());
        let _ = stdout.flush();
    }

    fn line_err(&mut self, line: &str) {
        self.clear_status();
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn clear_status(&mut self) {
        if self.status_shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.status_shown = false;
        }
    }

    /// The live line on a terminal: done/running/failed/total, time, and what is running.
    fn status(&mut self) {
        if !self.status_line {
            return;
        }
        let count = |f: fn(JobState) -> bool| self.states.iter().filter(|s| f(**s)).count();
        let done = count(super::state::JobState::is_final);
        let running: Vec<&str> = self
            .states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == JobState::Running)
            .map(|(i, _)| self.ids[i].as_str())
            .collect();
        let failed = count(|s| matches!(s, JobState::Failed | JobState::Timeout));
        let secs = self.started.elapsed().as_secs();
        let mut line = format!(
            "{done}/{} done · {} running · {failed} failed · {:02}:{:02}",
            self.states.len(),
            running.len(),
            secs / 60,
            secs % 60
        );
        if !running.is_empty() {
            line.push_str(" · ");
            line.push_str(
                &running
                    .iter()
                    .take(4)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if running.len() > 4 {
                line.push_str(&format!(" +{}", running.len() - 4));
            }
        }
        let width = terminal_width();
        let line: String = line.chars().take(width.saturating_sub(1)).collect();
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
        self.status_shown = true;
    }

    fn close(&mut self) {
        for job in 0..self.tails.len() {
            self.drain(job, true);
        }
        self.clear_status();
    }
}

/// The longest line shown whole; longer ones (or output without newlines) are cut here.
const MAX_LINE: usize = 64 * 1024;

/// Moves every complete line out of `partial`, each with `prefix`; what is left is the
/// start of a line not yet ended (cut at [`MAX_LINE`], so binary output cannot grow it).
fn take_lines(partial: &mut Vec<u8>, prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(partial.len() + partial.len() / 16);
    let mut start = 0;
    while let Some(at) = partial[start..].iter().position(|&b| b == b'\n') {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&partial[start..=start + at]);
        start += at + 1;
    }
    while partial.len() - start >= MAX_LINE {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&partial[start..start + MAX_LINE]);
        out.push(b'\n');
        start += MAX_LINE;
    }
    partial.drain(..start);
    out
}

fn read_from(path: &Path, offset: u64, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.take(limit).read_to_end(&mut buf);
    }
    buf
}

/// The width of the terminal the status line is drawn on (stderr), read at each redraw
/// so a resized window is followed; `COLUMNS`, then 80, where it cannot be asked. A line
/// longer than the terminal would wrap, and `\r` with erase-line clears only its last row.
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&cols| cols > 0)
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_are_taken_and_the_rest_kept() {
        let mut partial = b"one\ntwo\nthr".to_vec();
        assert_eq!(take_lines(&mut partial, b"j | "), b"j | one\nj | two\n");
        assert_eq!(partial, b"thr");
    }

    #[test]
    fn output_without_newlines_is_cut_not_hoarded() {
        let mut partial = vec![b'x'; MAX_LINE * 2 + 5];
        let out = take_lines(&mut partial, b"");
        assert_eq!(out.len(), MAX_LINE * 2 + 2);
        assert_eq!(partial.len(), 5);
    }
}
