//! A run's journal: the file its exe appends each batch of the run's facts to before acting
//! on them, and the folding of those facts into the tables.
//!
//! Persist first, cheaply. A chain's step needs its facts on record between one job's end
//! and the next job's start. A commit to `SQLite` there, with its statements run on caches
//! the job has just emptied, cost about 70 µs a step; one `write` of the batch to a file
//! costs a few. The file is `<database>-run-<id>` beside the database. Once written, a
//! batch survives a crash of exe, as a WAL commit with `synchronous=NORMAL` does; with
//! `--durability full` it is also flushed to the disk (`fdatasync`) before the run acts on it.
//!
//! The facts reach the tables in batches ([`Store::fold`]), at most [`FOLD_EVERY`] after they
//! were journaled and when the run ends, in one transaction that also moves the run's
//! `journal_at` (how many bytes of the journal are in the tables). So a batch is folded
//! exactly once: by its exe, or, when that exe died, by the next one ([`Store::fold_left`]),
//! before it closes the run. A finished run's journal is removed, and a long run's is
//! emptied whenever it is all in the tables and past [`RESTART_AT`].
//!
//! The journal is a list of frames, one per batch: the batch's records as a JSON array, on
//! one line. A frame cut short (exe killed, or the disk full, in the middle of a `write`)
//! is the last one, and was never acted on: it is left out. A line that does not parse
//! before the end means the file was damaged; what comes before it is folded, and the file
//! is kept.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{OptionalExtension as _, params};
use serde::Deserialize;

use super::error::classify;
use super::immediate::Immediate;
use super::write::write_batch;
use super::{Durability, JobFingerprint, Record, Store, StoreError, side_file};
use crate::process::Usage;
use crate::state::{self, JobState};

/// The longest a journaled fact waits for the tables while its run goes on: what `exe show`
/// and `exe runs` may be behind a running exe.
pub const FOLD_EVERY: Duration = Duration::from_millis(100);

/// A journal all in the tables is emptied once it is this long, so that a long run's
/// journal stays small (about 6,000 jobs' worth).
const RESTART_AT: u64 = 4 << 20;

/// The journal of `run` in the history at `db`.
fn path_of(db: &Path, run: i64) -> PathBuf {
    side_file(db, &format!("-run-{run}"))
}

/// The journal a running exe appends to; see the module's documentation.
#[derive(Debug)]
pub struct Journal {
    run: i64,
    path: PathBuf,
    /// The history database, named in errors.
    db: PathBuf,
    /// None for a history in memory (tests, `--dry-run`), which no crash survives anyway.
    file: Option<File>,
    sync: bool,
    /// Bytes appended, and bytes of those in the tables.
    written: u64,
    folded: u64,
    /// The frame being written, kept between appends.
    frame: Vec<u8>,
}

impl Journal {
    /// Creates the journal of `run`, being recorded in the history at `db` (see
    /// [`Store::start_run`]). A history in memory gets a journal without a file.
    pub(super) fn create(
        db: &Path,
        durability: Durability,
        run: i64,
    ) -> Result<Journal, StoreError> {
        let path = path_of(db, run);
        let file = if db == Path::new(":memory:") {
            None
        } else {
            move_aside(db, &path, run)?;
            let file = File::options()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io_error(db, &path, &e))?;
            if durability == Durability::Full {
                // The file's name must reach the disk too.
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                File::open(dir.unwrap_or(Path::new(".")))
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_error(db, &path, &e))?;
            }
            Some(file)
        };
        Ok(Journal {
            run,
            path,
            db: db.to_path_buf(),
            file,
            sync: durability == Durability::Full,
            written: 0,
            folded: 0,
            frame: Vec::new(),
        })
    }

    /// Appends `batch` as one frame. Once this returns, the batch survives a crash of exe.
    pub fn append(&mut self, batch: &[Record<'_>]) -> Result<(), StoreError> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        self.frame.clear();
        serde_json::to_writer(&mut self.frame, batch).map_err(|e| StoreError::Io {
            path: self.db.clone(),
            detail: format!("cannot encode a batch for the run journal: {e}"),
        })?;
        self.frame.push(b'\n');
        let written = file
            .write_all(&self.frame)
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        written.map_err(|e| io_error(&self.db, &self.path, &e))?;
        self.written += self.frame.len() as u64;
        Ok(())
    }

    /// Whether everything appended is in the tables.
    pub fn is_folded(&self) -> bool {
        self.folded == self.written
    }

    /// Removes the file, once its run is finished (everything in it is in the tables).
    pub fn remove(self) {
        if self.file.is_some()
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "the run journal was not removed");
        }
    }
}

/// What [`Store::fold_left`] found in a dead run's journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Records folded into the tables.
    pub records: usize,
    /// Why the rest of the journal was not folded, when it could not be: it is kept.
    pub damaged: Option<String>,
}

impl Store {
    /// Adds `batch`, the records appended to `journal` since its last fold, to the tables,
    /// and moves the run's `journal_at` past them, in one transaction. The fold, at `at_ms`,
    /// is also the run's latest sign of life (`heartbeat_at`): what a listing shows a run
    /// whose exe died as lasting until, between heartbeats. Fails with
    /// [`StoreError::RunFinished`] when another exe closed the run meanwhile (it took this
    /// exe for dead), writing nothing.
    pub fn fold(
        &mut self,
        journal: &mut Journal,
        batch: &[Record<'_>],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let run = journal.run;
        let Store { conn, path, .. } = self;
        let tx = Immediate::begin(conn).map_err(|e| classify(path, "recording", e))?;
        let moved = tx
            .prepare_cached(
                "UPDATE runs SET journal_at = ?3, heartbeat_at = ?4
                 WHERE id = ?1 AND ended_at IS NULL AND COALESCE(journal_at, 0) = ?2",
            )
            .and_then(|mut st| {
                st.execute(params![
                    run,
                    offset(journal.folded),
                    offset(journal.written),
                    at_ms
                ])
            })
            .map_err(|e| classify(path, "recording", e))?;
        if moved == 0 {
            drop(tx);
            self.run(run)?;
            return Err(StoreError::RunFinished { id: run });
        }
        if let Err(refused) = write_batch(&tx, run, batch) {
            drop(tx);
            return Err(self.refused(run, refused));
        }
        tx.commit()
            .map_err(|e| classify(path, "committing records", e))?;
        journal.folded = journal.written;
        if journal.written >= RESTART_AT {
            self.restart(journal)?;
        }
        Ok(())
    }

    /// Empties `journal`, all of which is in the tables, and moves the run's `journal_at`
    /// back to 0. In that order: an exe that dies in between leaves an empty journal with a
    /// `journal_at` past its end, from which nothing is folded, where the other order would
    /// leave a `journal_at` of 0 with the journal's batches, folded a second time.
    fn restart(&mut self, journal: &mut Journal) -> Result<(), StoreError> {
        if let Some(file) = &journal.file {
            file.set_len(0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&self.path, &journal.path, &e))?;
        }
        let moved = self
            .conn
            .prepare_cached("UPDATE runs SET journal_at = 0 WHERE id = ?1 AND journal_at = ?2")
            .and_then(|mut st| st.execute(params![journal.run, offset(journal.written)]))
            .map_err(|e| self.err("recording", e))?;
        if moved == 0 {
            return Err(StoreError::RunFinished { id: journal.run });
        }
        journal.written = 0;
        journal.folded = 0;
        Ok(())
    }

    /// Folds what the journal of `run`, a run whose exe died, holds beyond what that exe
    /// folded. Several exe may do this at once after a crash: the transaction reads
    /// `journal_at` under the write lock, so each record goes in once.
    pub(crate) fn fold_left(&mut self, run: i64) -> Result<Left, StoreError> {
        let journal = path_of(&self.path, run);
        // Looked at before it is opened: a named pipe there would block the open for good.
        let unreadable = |why: String| {
            Ok(Left {
                records: 0,
                damaged: Some(format!(
                    "its journal {} cannot be read: {why}",
                    journal.display()
                )),
            })
        };
        match std::fs::metadata(&journal) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Left::default()),
            Err(e) => return unreadable(e.to_string()),
            Ok(meta) if !meta.is_file() => return unreadable("it is not a file".to_owned()),
            Ok(_) => {}
        }
        let mut file = match File::open(&journal) {
            Ok(file) => file,
            Err(e) => return unreadable(e.to_string()),
        };
        let Store { conn, path, .. } = self;
        let tx = Immediate::begin(conn).map_err(|e| classify(path, "closing a run", e))?;
        let state = tx
            .prepare_cached(
                "SELECT ended_at IS NULL, COALESCE(journal_at, 0) FROM runs WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.query_row(params![run], |row| {
                    Ok((row.get::<_, bool>(0)?, row.get::<_, i64>(1)?))
                })
                .optional()
            })
            .map_err(|e| classify(path, "reading a run", e))?;
        let Some((true, from)) = state else {
            return Ok(Left::default());
        };
        let mut bytes = Vec::new();
        if let Err(e) = file
            .seek(SeekFrom::Start(u64::try_from(from).unwrap_or(0)))
            .and_then(|_| file.read_to_end(&mut bytes))
        {
            drop(tx);
            return unreadable(e.to_string());
        }
        let frames = Frames::read(&bytes);
        let records: Vec<Record<'_>> = frames.entries.iter().map(Entry::record).collect();
        let mut damaged = frames.damaged;
        if let Err(refused) = write_batch(&tx, run, &records) {
            drop(tx);
            let why = self.refused(run, refused);
            return Ok(Left {
                records: 0,
                damaged: Some(why.to_string()),
            });
        }
        let to = from + offset(frames.used as u64);
        tx.prepare_cached("UPDATE runs SET journal_at = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![run, to]))
            .map_err(|e| classify(path, "closing a run", e))?;
        tx.commit()
            .map_err(|e| classify(path, "committing a run's journal", e))?;
        if damaged.is_none() && frames.torn {
            // Cut short in the middle of a write that never returned: never acted on.
            tracing::debug!(run, "the last frame of the journal was cut short; left out");
        }
        if let Some(why) = &mut damaged {
            *why = format!("{why} (at byte {to} of {})", journal.display());
        }
        Ok(Left {
            records: records.len(),
            damaged,
        })
    }

    /// Removes the journal of `run`, a run closed with all of its journal in the tables.
    pub(crate) fn remove_journal(&self, run: i64) {
        let path = path_of(&self.path, run);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "the run journal was not removed");
            }
            _ => {}
        }
    }

    /// Removes the journals left beside the database by runs that are finished and whose
    /// journal is all in the tables (an exe stopped between the run's end and the removal).
    pub(crate) fn remove_finished_journals(&self) {
        for (run, path) in journals_beside(&self.path) {
            let len = std::fs::metadata(&path).map_or(-1, |m| offset(m.len()));
            let done = self
                .conn
                .prepare_cached(
                    "SELECT ended_at IS NOT NULL AND journal_at IS ?2 FROM runs WHERE id = ?1",
                )
                .and_then(|mut st| st.query_row(params![run, len], |row| row.get::<_, bool>(0)))
                .unwrap_or(false);
            if done {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The runs with a journal beside the history `db`, and those journals' paths.
pub fn journals_beside(db: &Path) -> Vec<(i64, PathBuf)> {
    let prefix = format!(
        "{}-run-",
        db.file_name().unwrap_or_default().to_string_lossy()
    );
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    let Ok(entries) = std::fs::read_dir(dir.unwrap_or(Path::new("."))) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let run = name.to_str()?.strip_prefix(&prefix)?.parse::<i64>().ok()?;
            Some((run, entry.path()))
        })
        .collect()
}

/// Moves whatever is at `path`, where run `run`'s journal goes, aside: a run id is handed
/// out once per history, so it is the journal of a history deleted since, or something
/// else. It is neither mixed into this run nor lost: it goes to the first free name of
/// `<path>.old`, `<path>.old2`, ...
fn move_aside(db: &Path, path: &Path, run: i64) -> Result<(), StoreError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(db, path, &e)),
        Ok(_) => {}
    }
    let name = |n: u32| {
        side_file(
            path,
            &if n == 1 {
                ".old".to_owned()
            } else {
                format!(".old{n}")
            },
        )
    };
    let in_the_way = |aside: PathBuf, source| StoreError::JournalInTheWay {
        run,
        path: path.to_path_buf(),
        aside,
        source,
    };
    let Some(aside) = (1..=1000)
        .map(name)
        .find(|aside| std::fs::symlink_metadata(aside).is_err())
    else {
        let taken = std::io::Error::other("it and the next 999 names are taken");
        return Err(in_the_way(name(1), taken));
    };
    std::fs::rename(path, &aside).map_err(|source| in_the_way(aside.clone(), source))?;
    tracing::warn!(
        path = %path.display(),
        aside = %aside.display(),
        "a file in the way of a run's journal was moved aside"
    );
    Ok(())
}

/// A byte count as `SQLite` stores it.
fn offset(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// A failed read or write of the journal at `journal`, beside the history `db`.
fn io_error(db: &Path, journal: &Path, e: &std::io::Error) -> StoreError {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => StoreError::DiskFull {
            path: db.to_path_buf(),
        },
        Some(libc::EROFS | libc::EACCES | libc::EPERM) => StoreError::ReadOnly {
            path: db.to_path_buf(),
        },
        _ => StoreError::Io {
            path: db.to_path_buf(),
            detail: format!("the run journal {}: {e}", journal.display()),
        },
    }
}

/// The frames of a journal, read from its first unfolded byte.
struct Frames {
    entries: Vec<Entry>,
    /// Bytes of whole frames read.
    used: usize,
    /// The last frame was cut short.
    torn: bool,
    /// Why reading stopped before the end, when a whole line was not a frame.
    damaged: Option<String>,
}

impl Frames {
    fn read(bytes: &[u8]) -> Frames {
        let mut frames = Frames {
            entries: Vec::new(),
            used: 0,
            torn: false,
            damaged: None,
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                frames.torn = true;
                break;
            };
            let batch = serde_json::from_slice::<Vec<Entry>>(&rest[..end])
                .map_err(|e| e.to_string())
                .and_then(|batch| match batch.iter().find_map(Entry::impossible) {
                    Some(why) => Err(why),
                    None => Ok(batch),
                });
            match batch {
                Ok(batch) => frames.entries.extend(batch),
                Err(why) => {
                    frames.damaged = Some(format!("the run journal is damaged: {why}"));
                    break;
                }
            }
            frames.used += end + 1;
            rest = &rest[end + 1..];
        }
        frames
    }
}

/// A [`Record`] read back from a journal: the same shape, owning its text.
#[derive(Debug, Deserialize)]
enum Entry {
    Transition {
        job: usize,
        from: String,
        to: String,
        at_ms: i64,
        reason: String,
    },
    AttemptGroup {
        job: usize,
        number: u32,
        pgid: i32,
    },
    AttemptStarted {
        job: usize,
        number: u32,
        at_ms: i64,
        log_path: String,
        pgid: Option<i32>,
    },
    Fingerprint {
        job: usize,
        fingerprint: Option<JobFingerprint>,
    },
    AttemptEnded {
        job: usize,
        number: u32,
        at_ms: i64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        usage: Option<Usage>,
        outcome: String,
        reason: String,
        pgid: Option<i32>,
    },
}

impl Entry {
    /// What makes this entry one exe never writes, if anything: a transition the state
    /// table does not have, or an attempt's outcome that is not a final state.
    fn impossible(&self) -> Option<String> {
        match self {
            Entry::Transition { from, to, .. } => {
                match (JobState::from_name(from), JobState::from_name(to)) {
                    (Some(f), Some(t)) if state::allowed(f, t) => None,
                    _ => Some(format!(
                        "a transition from {from:?} to {to:?}, which no job makes"
                    )),
                }
            }
            Entry::AttemptEnded { outcome, .. }
                if !JobState::from_name(outcome).is_some_and(JobState::is_final) =>
            {
                Some(format!(
                    "an attempt that ended {outcome:?}, which is no final state"
                ))
            }
            _ => None,
        }
    }

    fn record(&self) -> Record<'_> {
        match self {
            Entry::Transition {
                job,
                from,
                to,
                at_ms,
                reason,
            } => Record::Transition {
                job: *job,
                from,
                to,
                at_ms: *at_ms,
                reason,
            },
            Entry::AttemptGroup { job, number, pgid } => Record::AttemptGroup {
                job: *job,
                number: *number,
                pgid: *pgid,
            },
            Entry::AttemptStarted {
                job,
                number,
                at_ms,
                log_path,
                pgid,
            } => Record::AttemptStarted {
                job: *job,
                number: *number,
                at_ms: *at_ms,
                log_path,
                pgid: *pgid,
            },
            Entry::Fingerprint { job, fingerprint } => Record::Fingerprint {
                job: *job,
                fingerprint: fingerprint.as_ref(),
            },
            Entry::AttemptEnded {
                job,
                number,
                at_ms,
                exit_code,
                signal,
                usage,
                outcome,
                reason,
                pgid,
            } => Record::AttemptEnded {
                job: *job,
                number: *number,
                at_ms: *at_ms,
                exit_code: *exit_code,
                signal: *signal,
                usage: *usage,
                outcome,
                reason,
                pgid: *pgid,
            },
        }
    }
}

/// Bytes as lowercase hex in the journal (a JSON array of numbers would be four times as long).
pub(super) mod hex {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(text, "{b:02x}");
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let digits = text.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| D::Error::custom("not a hex digit"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{Access, NewRun, RunFilter};

    fn store_in(dir: &Path) -> Store {
        Store::open(
            &dir.join("history.db"),
            Access::ReadWrite,
            Durability::Normal,
        )
        .unwrap()
    }

    fn new_run(store: &mut Store, jobs: &[String]) -> (i64, Journal) {
        store
            .start_run(&NewRun {
                name: "p",
                file: "p.toml",
                digest: "",
                plan_json: "{}",
                host: "h",
                user: "u",
                pid: 4_194_305,
                exe_version: "0",
                resumed_from: None,
                started_at_ms: 0,
                jobs,
            })
            .unwrap()
    }

    fn queued(job: usize) -> Record<'static> {
        Record::Transition {
            job,
            from: "PENDING",
            to: "QUEUED",
            at_ms: 1,
            reason: "no needs",
        }
    }

    fn trail(store: &Store, run: i64) -> Vec<String> {
        (store.transitions(run).unwrap().into_iter())
            .map(|t| format!("{} {}>{}", t.job_id, t.from, t.to))
            .collect()
    }

    #[test]
    fn every_kind_of_record_reads_back_as_written() {
        let fingerprint = JobFingerprint {
            command: vec![0, 255, 16],
            env: vec![1],
            env_manifest: b"A=1\n".to_vec(),
            inputs: vec![],
            inputs_manifest: vec![7; 3],
        };
        let usage = Usage {
            max_rss_kib: Some(1024),
            user_cpu: Duration::from_micros(1500),
            system_cpu: Duration::from_micros(7),
        };
        let batch = [
            Record::Transition {
                job: 3,
                from: "QUEUED",
                to: "RUNNING",
                at_ms: 17,
                reason: "a \"quoted\"\nreason \u{1b}[31m",
            },
            Record::AttemptStarted {
                job: 3,
                number: 2,
                at_ms: 18,
                log_path: "logs/1/j@2.log",
                pgid: None,
            },
            Record::AttemptGroup {
                job: 3,
                number: 2,
                pgid: 4242,
            },
            Record::Fingerprint {
                job: 3,
                fingerprint: Some(&fingerprint),
            },
            Record::Fingerprint {
                job: 4,
                fingerprint: None,
            },
            Record::AttemptEnded {
                job: 3,
                number: 2,
                at_ms: 19,
                exit_code: None,
                signal: Some(9),
                usage: Some(usage),
                outcome: "TIMEOUT",
                reason: "ran past 1s",
                pgid: Some(4243),
            },
        ];
        let mut frame = serde_json::to_vec(&batch).unwrap();
        frame.push(b'\n');
        assert!(
            !frame[..frame.len() - 1].contains(&b'\n'),
            "one frame, one line"
        );
        let frames = Frames::read(&frame);
        assert_eq!(
            (frames.used, frames.torn, frames.damaged),
            (frame.len(), false, None)
        );
        let read: Vec<String> = frames
            .entries
            .iter()
            .map(|e| format!("{:?}", e.record()))
            .collect();
        let written: Vec<String> = batch.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn a_frame_cut_short_is_left_out_and_a_damaged_line_stops_the_reading() {
        let whole = b"[{\"AttemptGroup\":{\"job\":0,\"number\":1,\"pgid\":5}}]\n";
        let mut cut = whole.to_vec();
        cut.extend_from_slice(b"[{\"AttemptGroup\":{\"job\":0,");
        let frames = Frames::read(&cut);
        assert_eq!((frames.entries.len(), frames.used), (1, whole.len()));
        assert!(frames.torn && frames.damaged.is_none());

        let mut impossible = whole.to_vec();
        impossible.extend_from_slice(
            b"[{\"Transition\":{\"job\":0,\"from\":\"RUNNING\",\"to\":\"BOGUS\",\"at_ms\":1,\"reason\":\"\"}}]\n",
        );
        let frames = Frames::read(&impossible);
        assert_eq!((frames.entries.len(), frames.used), (1, whole.len()));
        assert!(
            frames
                .damaged
                .unwrap()
                .contains("\"BOGUS\", which no job makes")
        );

        let mut damaged = whole.to_vec();
        damaged.extend_from_slice(b"not json\n");
        damaged.extend_from_slice(whole);
        let frames = Frames::read(&damaged);
        assert_eq!((frames.entries.len(), frames.used), (1, whole.len()));
        assert!(!frames.torn);
        assert!(frames.damaged.unwrap().contains("damaged"));
    }

    #[test]
    fn a_dead_runs_journal_is_folded_once_from_where_its_exe_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        let jobs = ["a".to_owned(), "b".to_owned()];
        let (run, mut journal) = new_run(&mut store, &jobs);
        journal.append(&[queued(0)]).unwrap();
        store.fold(&mut journal, &[queued(0)], 1).unwrap();
        assert!(journal.is_folded());
        // Journaled, not folded, when its exe died; then a frame cut short by the kill.
        journal.append(&[queued(1)]).unwrap();
        assert!(!journal.is_folded());
        let path = path_of(store.path(), run);
        let mut file = File::options().append(true).open(&path).unwrap();
        file.write_all(b"[{\"Transition\":").unwrap();
        drop(journal);

        // Two exe recovering at once: the second finds nothing left to fold.
        let mut other = store_in(dir.path());
        let left = store.fold_left(run).unwrap();
        assert_eq!(
            left,
            Left {
                records: 1,
                damaged: None
            }
        );
        assert_eq!(other.fold_left(run).unwrap(), Left::default());
        assert_eq!(trail(&store, run), ["a PENDING>QUEUED", "b PENDING>QUEUED"]);

        // Once the run is finished, its journal goes.
        store.finish_run(run, "CANCELLED", 137, 2).unwrap();
        store.remove_journal(run);
        assert!(!path.exists());
        assert_eq!(journals_beside(store.path()), []);
    }

    #[test]
    fn a_fold_into_a_run_another_exe_closed_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        let (run, mut journal) = new_run(&mut store, &["a".to_owned()]);
        journal.append(&[queued(0)]).unwrap();
        // Another exe took this one for dead and closed the run.
        let mut other = store_in(dir.path());
        assert!(other.close_dead_run(run, &[], "CANCELLED", 137, 5).unwrap());
        let err = store.fold(&mut journal, &[queued(0)], 1).unwrap_err();
        assert!(
            matches!(err, StoreError::RunFinished { id } if id == run),
            "{err}"
        );
        assert!(trail(&store, run).is_empty());
        assert_eq!(
            store.runs(&RunFilter::default()).unwrap()[0].state,
            "CANCELLED"
        );
    }

    #[test]
    fn a_long_runs_journal_is_emptied_once_folded_and_goes_on_from_0() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        let (run, mut journal) = new_run(&mut store, &["a".to_owned()]);
        let long = "x".repeat(usize::try_from(RESTART_AT).unwrap());
        let big = Record::Transition {
            job: 0,
            from: "PENDING",
            to: "QUEUED",
            at_ms: 1,
            reason: &long,
        };
        journal.append(&[big]).unwrap();
        store.fold(&mut journal, &[big], 1).unwrap();
        let path = path_of(store.path(), run);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied");
        // What follows is journaled from the start of the file, and folded from there.
        let running = Record::Transition {
            job: 0,
            from: "QUEUED",
            to: "RUNNING",
            at_ms: 2,
            reason: "attempt 1",
        };
        journal.append(&[running]).unwrap();
        drop(journal);
        assert_eq!(store.fold_left(run).unwrap().records, 1);
        assert_eq!(trail(&store, run), ["a PENDING>QUEUED", "a QUEUED>RUNNING"]);
    }

    #[test]
    fn what_is_in_the_way_of_a_new_journal_is_moved_aside_to_a_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("history.db-run-1");
        std::fs::write(&stale, "[]\n").unwrap();
        // An earlier one moved aside already stays as it is.
        std::fs::create_dir(dir.path().join("history.db-run-1.old")).unwrap();
        let mut store = store_in(dir.path());
        let (run, mut journal) = new_run(&mut store, &["a".to_owned()]);
        journal.append(&[queued(0)]).unwrap();
        assert!(dir.path().join("history.db-run-1.old").is_dir());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("history.db-run-1.old2")).unwrap(),
            "[]\n"
        );
        let text = std::fs::read_to_string(&stale).unwrap();
        assert!(
            text.lines().count() == 1 && text.contains("QUEUED"),
            "{text}"
        );
        assert_eq!(journals_beside(store.path()), [(run, stale)]);
    }

    #[test]
    fn a_dead_runs_journal_that_cannot_be_read_closes_nothing_and_blocks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        let jobs = ["a".to_owned()];
        let (folder, journal) = new_run(&mut store, &jobs);
        journal.remove();
        std::fs::create_dir(path_of(store.path(), folder)).unwrap();
        let (pipe, journal) = new_run(&mut store, &jobs);
        journal.remove();
        let made = std::process::Command::new("mkfifo")
            .arg(path_of(store.path(), pipe))
            .status()
            .unwrap();
        assert!(made.success());
        for (run, why) in [(folder, "it is not a file"), (pipe, "it is not a file")] {
            // A named pipe is not opened: that would wait for a writer for good.
            let left = store.fold_left(run).unwrap();
            assert_eq!(left.records, 0);
            assert!(left.damaged.unwrap().contains(why));
            assert!(trail(&store, run).is_empty());
        }
    }

    #[test]
    fn journals_of_finished_runs_left_behind_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        let jobs = ["a".to_owned()];
        let (finished, mut journal) = new_run(&mut store, &jobs);
        journal.append(&[queued(0)]).unwrap();
        store.fold(&mut journal, &[queued(0)], 1).unwrap();
        store.finish_run(finished, "SUCCESS", 0, 3).unwrap();
        // An exe stopped between the run's end and removing its journal; another run is going.
        let (going, mut other) = new_run(&mut store, &jobs);
        other.append(&[queued(0)]).unwrap();
        store.remove_finished_journals();
        let left: Vec<i64> = journals_beside(store.path())
            .into_iter()
            .map(|(run, _)| run)
            .collect();
        assert_eq!(left, [going]);
    }
}
