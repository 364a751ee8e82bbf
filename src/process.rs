//! Runs one attempt of a shell job and owns the process-group primitives around it.
//!
//! An attempt is `/bin/sh -c <command>` (or the program itself, when the command is plain words;
//! see [`spawn`]) started with std's `Command`, with exactly the environment it
//! is given, in its working directory, with stdin from `/dev/null` and stdout and stderr both
//! appended to one log file. The coordinator waits on its pidfd ([`Running::pidfd`],
//! [`Running::try_exit`]), or a worker blocks in [`Running::wait`]; deadlines belong to the
//! coordinator, which ends an attempt early with [`kill_group`] on its pgid.
//!
//! Invariants:
//! - Every attempt leads its own process group (pgid == pid of `sh`), set in the child before
//!   `exec`. So a signal to the group reaches the job and everything it started that stayed in
//!   the group, and never reaches exe.
//! - Output goes to a file, never to a pipe: a grandchild that keeps stdout open cannot make
//!   exe wait, and exe never holds job output in memory. Both streams share one open file
//!   description in append mode, so their interleaving is kept.
//! - When [`Running::wait`] returns, the group's leftovers have had SIGTERM, then SIGKILL after
//!   the grace period, and those re-parented to exe have been reaped. With
//!   [`become_subreaper`] called at start, no process of the group is left (not even a zombie).
//! - [`kill_group`], [`group_alive`] and [`reap_group`] refuse pgids below 2: `killpg(0, _)`
//!   would signal exe's own group and `killpg(1, _)` every process exe may signal.
//! - The main process is reaped only by [`Running`] (`wait4` on its pid, which also gives its
//!   [`Usage`]); [`reap_group`] only reaps inside one job's group, and only after that; a
//!   `waitpid(-1)` could steal the exit status of an attempt still being waited on.
//!
//! Limits: a job that leaves its group (`setsid`, `set -m`) escapes the group kill, and if it
//! is orphaned to exe as subreaper its zombie is not reaped (only `waitpid(-1)` would find it);
//! this machine has cgroups v1 only, so nothing tracks it. A pgid is a number: once the group is gone
//! and reaped, the kernel may hand it to a new process, so the coordinator must stop signalling a
//! pgid once the attempt's `wait` has returned (the window is a pid wrap-around, not a race in
//! practice).
//!
//! # Unsafe
//!
//! The crate denies `unsafe_code` (`deny`, not `forbid`: a module-level `allow` cannot relax
//! `forbid`); this module allows it for four libc calls that have no safe wrapper in std:
//! `killpg`, `waitpid`, `wait4` and `prctl`. Each passes only integers (and, for the waits,
//! pointers to locals of the types they write), so none can violate memory safety; each block
//! says why in a `// SAFETY:` comment. (std's `Child::wait` reaps too, but drops the usage.)
#![allow(unsafe_code)]

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags};

use crate::logs;

pub mod members;
mod peak;

/// How long to wait for the group to vanish after SIGKILL. SIGKILL cannot be caught, so this
/// only covers the kernel tearing processes down and us reaping them; a process stuck in
/// uninterruptible sleep is left behind rather than blocking the worker forever.
const KILL_SETTLE: Duration = Duration::from_secs(1);

/// Longest pause between two checks of whether a group is gone; short, so a finished group is
/// noticed within a few milliseconds, without spinning.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(20);

/// What to run for one attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSpec<'a> {
    /// Shell text, run as `/bin/sh -c <command>`.
    pub command: &'a str,
    /// The complete environment of the job: nothing of exe's own environment is inherited.
    pub env: &'a [(String, String)],
    /// Directory the job starts in; it must exist.
    pub working_dir: &'a Path,
    /// File that receives stdout and stderr, appended to; missing parent directories are created.
    /// A relative path is resolved against exe's current directory, not `working_dir`.
    pub log_path: &'a Path,
}

/// A running attempt: the leader of its own process group.
#[derive(Debug)]
pub struct Running {
    /// The pid of the main process, which is also its group's id.
    pgid: i32,
}

/// How the attempt's main process ended, and what it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code or signal.
    pub exit: Exit,
    /// What the kernel counted for it.
    pub usage: Usage,
}

/// What the kernel counted for a finished process (`wait4`): the process itself and every
/// child it waited for (a `sh -c 'a | b'` counts `a` and `b`), but not children it left
/// running or did not wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Peak resident memory of the largest of those processes, in KiB; `None` when it is
    /// not above exe's own peak, which the kernel folds into it (see [`peak`]).
    pub max_rss_kib: Option<u64>,
    /// CPU time in user mode.
    pub user_cpu: Duration,
    /// CPU time in the kernel on its behalf.
    pub system_cpu: Duration,
}

/// How the attempt's main process ended. Data, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `sh` exited with this status code (127: command not found).
    Code(i32),
    /// `sh` was ended by this signal number (for example 15 for SIGTERM, 9 for SIGKILL).
    Signal(i32),
}

/// Something exe itself could not do while running an attempt.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The working directory is missing, unreadable or not a directory.
    #[error("working directory {} is not usable", path.display())]
    WorkingDir {
        /// The directory the job should have started in.
        path: PathBuf,
        /// Why it is not usable.
        source: io::Error,
    },
    /// The log file or its parent directories could not be created or opened.
    #[error("cannot open log file {}", path.display())]
    LogFile {
        /// The log file the attempt should have written to.
        path: PathBuf,
        /// Why it could not be opened.
        source: io::Error,
    },
    /// `/bin/sh` could not be started (missing shell, out of processes).
    #[error("cannot start /bin/sh")]
    Spawn {
        /// The error from spawning.
        source: io::Error,
    },
    /// Waiting for the attempt's main process failed.
    #[error("cannot wait for the job in process group {pgid}")]
    Wait {
        /// The attempt's process group.
        pgid: i32,
        /// The error from waiting.
        source: io::Error,
    },
    /// The processes a job left behind could not be signalled.
    #[error("cannot end the leftover processes of process group {pgid}")]
    Cleanup {
        /// The attempt's process group.
        pgid: i32,
        /// The error from `killpg`.
        source: io::Error,
    },
}

/// Starts one attempt in its own process group, output appended to the log file.
///
/// # Errors
///
/// [`ProcessError::WorkingDir`] if the working directory is not a usable directory,
/// [`ProcessError::LogFile`] if the log cannot be opened, [`ProcessError::Spawn`] if `sh`
/// cannot be started. A command that `sh` cannot find is not an error: it ends with
/// [`Exit::Code`]`(127)`.
pub fn spawn(spec: &AttemptSpec<'_>) -> Result<Running, ProcessError> {
    // Checked here because the spawn error for a bad directory names neither the directory nor
    // the reason in a way a user can act on.
    check_working_dir(spec.working_dir)?;
    let log = open_log(spec.log_path)?;
    if let Some(words) = direct_words(spec.command, spec.env) {
        // Any failure to start it directly (not found, not executable, ...) goes through
        // `sh -c` instead, so the message and exit code (127, 126) are exactly the shell's.
        let log = log.try_clone().map_err(|source| ProcessError::LogFile {
            path: spec.log_path.to_path_buf(),
            source,
        })?;
        if let Some(program) = find_program(words[0], spec.env)
            && let Ok(running) = start(&program, &words[1..], spec, log)
        {
            return Ok(running);
        }
    }
    // An absolute shell path: the job's PATH (which may be absent) must not pick the shell.
    start(Path::new("/bin/sh"), &["-c", spec.command], spec, log)
        .map_err(|source| ProcessError::Spawn { source })
}

/// Shell words that change the shell itself, or read shell state, rather than run a program,
/// and builtins that read their arguments otherwise than the program of the same name
/// (`echo -e x`, `printf --version`): such a command must go through `sh` to mean what it
/// says.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if",
    "in", "select", "then", "until", "while", ".", ":", "alias", "bg", "break", "cd", "command",
    "continue", "echo", "eval", "exec", "exit", "export", "fg", "getopts", "hash", "jobs", "kill",
    "local", "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test",
    "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait",
];

/// Builtins that mean the same as their program only without arguments (`true --help`
/// prints help as a program, nothing as a builtin).
const SAME_WITHOUT_ARGUMENTS: &[&str] = &["true", "false"];

/// The command's words when it can be started without a shell and mean the same: plain
/// words only (no quotes, `$`, globs, pipes, redirections, `;`, `&`, `~`, `#`, newlines),
/// not starting with an assignment or a shell keyword/builtin, naming a program on the
/// job's PATH or by absolute path. make starts recipes the same way, for the same reason:
/// a shell per job costs as much as the job when the job is `true`.
fn direct_words<'c>(command: &'c str, env: &[(String, String)]) -> Option<Vec<&'c str>> {
    let plain =
        |b: u8| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b) || b == b' ' || b == b'\t';
    if !command.bytes().all(plain) {
        return None;
    }
    let words: Vec<&str> = command
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    let program = *words.first()?;
    let named = !program.contains('/') && env.iter().any(|(k, _)| k == "PATH");
    // `sh` leaves a variable whose name it cannot hold (`my-var`) out of the environment
    // it passes on; started directly, the program would get it.
    if env.iter().any(|(k, _)| !crate::spec::is_variable_name(k)) {
        return None;
    }
    if program.contains('=')
        || SHELL_WORDS.contains(&program)
        || (SAME_WITHOUT_ARGUMENTS.contains(&program) && words.len() > 1)
        || !(named || program.starts_with('/'))
    {
        return None;
    }
    Some(words)
}

/// The executable `name` names: itself when absolute, else the first match on the job's
/// PATH. Resolving it here (not in the child) lets std start the job with `posix_spawn`
/// instead of a full `fork`, which is most of the cost of a short job.
fn find_program(name: &str, env: &[(String, String)]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.starts_with('/') {
        return Some(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())?;
    // A relative or empty entry (the working folder) is searched by `sh` from the folder it
    // runs in: left to it, so that the same program runs either way.
    for dir in path.split(':') {
        if !dir.starts_with('/') {
            return None;
        }
        let candidate = Path::new(dir).join(name);
        if executable(&candidate) {
            return Some(candidate);
        }
    }
    None
}

fn start(program: &Path, args: &[&str], spec: &AttemptSpec<'_>, log: File) -> io::Result<Running> {
    let stderr = log.try_clone()?;
    let child = Command::new(program)
        .args(args)
        .current_dir(spec.working_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        // Two descriptors of one open file description: appends from both streams keep their order.
        .stdout(log)
        .stderr(stderr)
        // pgid 0 means "a new group named after the child's pid".
        .process_group(0)
        .spawn()?;
    #[expect(
        clippy::cast_possible_wrap,
        reason = "std got this pid as a positive pid_t and widened it to u32; Linux pids stay below 2^22"
    )]
    let pgid = child.id() as i32;
    // The `Child` is dropped without waiting: [`Running`] reaps the pid itself with `wait4`,
    // which (unlike `Child::wait`) also returns what the process used.
    Ok(Running { pgid })
}

impl Running {
    /// The attempt's process group id, for [`kill_group`] from the coordinator.
    #[must_use]
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Blocks until the main process exits. Then sends SIGTERM to whatever is still left in
    /// the process group (a job's background children end with it), waits up to
    /// `leftover_grace`, then sends SIGKILL, and reaps. Returns how the main process ended.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Wait`] if waiting fails, [`ProcessError::Cleanup`] if the leftovers
    /// cannot be signalled.
    pub fn wait(self, leftover_grace: Duration) -> Result<Finished, ProcessError> {
        let finished = self
            .reap(0)?
            .ok_or_else(|| self.wait_error(io::Error::other("wait4 returned no child")))?;
        end_leftovers(self.pgid, leftover_grace)?;
        Ok(finished)
    }

    /// A pidfd of the main process: readable once it has exited, so the coordinator can
    /// wait for many attempts at once, on its own thread.
    ///
    /// # Errors
    ///
    /// The `pidfd_open` error (out of file descriptors, or a kernel older than 5.3).
    pub fn pidfd(&self) -> io::Result<OwnedFd> {
        let pid = Pid::from_raw(self.pgid).ok_or_else(|| io::Error::other("no pid"))?;
        Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
    }

    /// How the main process ended, if it has (without blocking); it is reaped then. What it
    /// left in its group is not touched: see [`leftovers_alive`] and [`end_leftovers`].
    ///
    /// # Errors
    ///
    /// [`ProcessError::Wait`] if asking fails.
    pub fn try_exit(&self) -> Result<Option<Finished>, ProcessError> {
        self.reap(libc::WNOHANG)
    }

    /// `wait4` on the main process: `None` when `flags` has `WNOHANG` and it is still running.
    fn reap(&self, flags: libc::c_int) -> Result<Option<Finished>, ProcessError> {
        let mut status: libc::c_int = 0;
        // SAFETY: all-zero bytes are a valid `rusage` (integers and timevals only).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `status` and `usage` are live, writable locals of the types wait4 writes
            // for the whole call; the pid is our own unreaped child (pgid >= 2, see `start`).
            let reaped = unsafe { libc::wait4(self.pgid, &raw mut status, flags, &raw mut usage) };
            match reaped {
                0 => return Ok(None),
                pid if pid == self.pgid => break,
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(self.wait_error(error));
                    }
                }
            }
        }
        let status = std::process::ExitStatus::from_raw(status);
        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // A wait without WUNTRACED only reports exits and deaths by signal.
            (None, None) => {
                return Err(
                    self.wait_error(io::Error::other(format!("unexpected wait status {status}")))
                );
            }
        };
        let mut usage = Usage::from(&usage);
        usage.max_rss_kib = usage.max_rss_kib.and_then(peak::jobs_own);
        Ok(Some(Finished { exit, usage }))
    }

    fn wait_error(&self, source: io::Error) -> ProcessError {
        ProcessError::Wait {
            pgid: self.pgid,
            source,
        }
    }
}

impl From<&libc::rusage> for Usage {
    fn from(usage: &libc::rusage) -> Self {
        let time = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        Usage {
            // Linux reports ru_maxrss in KiB.
            max_rss_kib: u64::try_from(usage.ru_maxrss).ok(),
            user_cpu: time(usage.ru_utime),
            system_cpu: time(usage.ru_stime),
        }
    }
}

/// After the group's main process was reaped: reaps what the job left that exe inherited,
/// and says whether anything of the group is still there.
#[must_use]
pub fn leftovers_alive(pgid: i32) -> bool {
    reap_group(pgid);
    group_alive(pgid)
}

/// Sends `signal` (`libc::SIGTERM`, `libc::SIGKILL`, or 0 to probe) to every process in the
/// group. A group that is already gone (ESRCH) is not an error.
///
/// # Errors
///
/// `InvalidInput` for a pgid below 2 (see the module invariants), otherwise the `killpg` error.
pub fn kill_group(pgid: i32, signal: i32) -> io::Result<()> {
    check_pgid(pgid)?;
    // SAFETY: killpg takes two integers and touches no memory of ours; pgid >= 2 was checked, so
    // it cannot address exe's own group (0) or every process (1).
    if unsafe { libc::killpg(pgid, signal) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(error)
    }
}

/// Sends `signal` to jobs: each one's process group, and the groups its processes made of
/// their own below it ([`members::Tree::escaped_groups`]), which a signal to the group alone
/// would miss. `/proc` is read once for all of them. A group that is gone is skipped.
pub fn signal_jobs(pgids: &[i32], signal: i32) {
    if pgids.is_empty() {
        return;
    }
    let tree = members::Tree::read();
    for &pgid in pgids {
        for escaped in tree.escaped_groups(pgid) {
            let _ = kill_group(escaped, signal);
        }
        let _ = kill_group(pgid, signal);
    }
}

/// Is any process of this group still there (`killpg(pgid, 0)`)? Zombies count: a group whose
/// members are all unreaped zombies is still alive until they are reaped.
#[must_use]
pub fn group_alive(pgid: i32) -> bool {
    if check_pgid(pgid).is_err() {
        return false;
    }
    // SAFETY: signal 0 only checks existence and permission; the arguments are plain integers and
    // pgid >= 2 was checked.
    if unsafe { libc::killpg(pgid, 0) } == 0 {
        return true;
    }
    // EPERM: the group exists but we may not signal it (a member changed its user id).
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Is any process of this group still running, its zombies aside? A zombie has ended; only its
/// parent can reap it. When exe dies, its jobs' parent becomes PID 1, and a PID 1 that is slow
/// to reap (a container without an init) can leave the zombies of a finished group for seconds,
/// or for ever, which [`group_alive`] would take for a live group. Where `/proc` shows none of
/// the group's processes (no `/proc`, or one that hides other users'), answers as
/// [`group_alive`].
#[must_use]
pub fn group_running(pgid: i32) -> bool {
    if !group_alive(pgid) {
        return false;
    }
    match members::of_group(pgid) {
        Some(members) if !members.is_empty() => members.iter().any(|m| !m.exited()),
        _ => true,
    }
}

/// The soft limit on open files exe raises its own to, at most.
const OPEN_FILES: u64 = 65_536;

/// Raises the soft limit on open files toward the hard limit, up to [`OPEN_FILES`]. Each
/// running job holds a few descriptors (its pidfd, its log, the pipes of its output), so the
/// usual soft limit of 1,024 made jobs fail to start at about 300 at once. Jobs inherit the
/// raised limit; it is capped because some programs loop over every possible descriptor.
/// A failure here leaves the limit as it was.
pub fn raise_open_files_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let wanted = limit
        .maximum
        .map_or(OPEN_FILES, |hard| hard.min(OPEN_FILES));
    if limit.current.is_some_and(|soft| soft < wanted) {
        let raised = rustix::process::Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised);
    }
}

/// Makes exe a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): orphaned grandchildren of jobs
/// are re-parented to exe instead of PID 1, so [`reap_group`] can reap them at once and a group
/// is gone as soon as it is killed. Call once at start, before any attempt runs.
///
/// # Errors
///
/// The `prctl` error (only on kernels older than 3.4).
pub fn become_subreaper() -> io::Result<()> {
    // prctl is variadic, so the arguments need their exact C type.
    let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
    // SAFETY: PR_SET_CHILD_SUBREAPER reads only its integer argument; the unused trailing
    // arguments are passed as zero, as prctl(2) asks.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on, unused, unused, unused) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps, without blocking, every finished child of exe in this process group: the job's
/// orphans that were re-parented to exe by [`become_subreaper`].
///
/// Call it only after the group's main `sh` has been reaped (that is, from or after
/// [`Running::wait`]): before that, `waitpid(-pgid)` could reap `sh` itself and take its exit
/// status and usage from [`Running`].
pub fn reap_group(pgid: i32) {
    if check_pgid(pgid).is_err() {
        return;
    }
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live, writable c_int for the whole call; WNOHANG keeps the call
        // from blocking; -pgid (pgid >= 2) selects only children in that one group.
        let reaped = unsafe { libc::waitpid(-pgid, &raw mut status, libc::WNOHANG) };
        match reaped {
            // One zombie reaped; there may be more.
            reaped if reaped > 0 => {}
            // Our children in the group are all still running, or there are none (ECHILD).
            0 => return,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// TERM, grace, KILL for what the job left in its group after its main process was reaped.
/// It blocks for up to the grace period: a worker calls it, never the coordinator.
///
/// # Errors
///
/// [`ProcessError::Cleanup`] if the leftovers cannot be signalled.
pub fn end_leftovers(pgid: i32, grace: Duration) -> Result<(), ProcessError> {
    end_group(pgid, grace, group_alive).map(|_| ())
}

/// TERM, grace, KILL for a group exe does not own: a dead run's, found by crash recovery.
/// The group is ended once none of its processes runs ([`group_running`]): its zombies are
/// their parent's to reap, and no signal removes them. Returns whether it ended.
///
/// # Errors
///
/// [`ProcessError::Cleanup`] if the group cannot be signalled.
pub fn end_orphaned_group(pgid: i32, grace: Duration) -> Result<bool, ProcessError> {
    end_group(pgid, grace, group_running)
}

/// SIGTERM, then SIGKILL after `grace`, until `alive` says the group is not; returns
/// whether it is gone.
fn end_group(pgid: i32, grace: Duration, alive: fn(i32) -> bool) -> Result<bool, ProcessError> {
    let cleanup = |source| ProcessError::Cleanup { pgid, source };
    reap_group(pgid);
    if !alive(pgid) {
        return Ok(true);
    }
    kill_group(pgid, libc::SIGTERM).map_err(cleanup)?;
    if wait_until_gone(pgid, grace, alive) {
        return Ok(true);
    }
    kill_group(pgid, libc::SIGKILL).map_err(cleanup)?;
    Ok(wait_until_gone(pgid, KILL_SETTLE, alive))
}

/// Reaps and checks the group until `alive` says it is gone or `within` has passed; returns
/// whether it is gone. It polls because the kernel has no call that waits for a whole process
/// group with a timeout (`waitpid(-pgid)` blocks without one, and sees only members that are
/// our children).
fn wait_until_gone(pgid: i32, within: Duration, alive: fn(i32) -> bool) -> bool {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(1);
    loop {
        reap_group(pgid);
        if !alive(pgid) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_POLL_PAUSE);
    }
}

fn check_pgid(pgid: i32) -> io::Result<()> {
    if pgid >= 2 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ))
    }
}

fn check_working_dir(path: &Path) -> Result<(), ProcessError> {
    let error = |source| ProcessError::WorkingDir {
        path: path.to_path_buf(),
        source,
    };
    let metadata = fs::metadata(path).map_err(error)?;
    if metadata.is_dir() {
        Ok(())
    } else {
        Err(error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )))
    }
}

fn open_log(path: &Path) -> Result<File, ProcessError> {
    logs::open(path).map_err(|source| ProcessError::LogFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_plain_commands_skip_the_shell() {
        let env = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        assert_eq!(direct_words("true", &env), Some(vec!["true"]));
        assert_eq!(
            direct_words("make -j4 all CC=gcc", &env),
            Some(vec!["make", "-j4", "all", "CC=gcc"])
        );
        assert_eq!(
            direct_words("/bin/echo a,b", &env),
            Some(vec!["/bin/echo", "a,b"])
        );
        for shell in [
            "echo $HOME",
            "echo 'a'",
            "ls *.txt",
            "a | b",
            "a > f",
            "a; b",
            "a && b",
            "a &",
            "cd /tmp",
            "exit 3",
            "FOO=1 env",
            "./script.sh",
            "echo ~",
            "echo a # c",
            "pwd",
            "kill 1",
            "echo -e hello",
            "printf --version",
            "test -n x",
            "true --help",
            "",
        ] {
            assert_eq!(
                direct_words(shell, &env),
                None,
                "{shell:?} must go through sh"
            );
        }
        assert_eq!(
            direct_words("true", &[]),
            None,
            "without PATH, sh decides where programs are"
        );
        let odd_name = [env[0].clone(), ("my-var".to_owned(), "x".to_owned())];
        assert_eq!(direct_words("env", &odd_name), None, "sh drops `my-var`");
    }

    #[test]
    fn a_relative_or_empty_path_entry_is_left_to_sh() {
        let path = |p: &str| [("PATH".to_owned(), p.to_owned())];
        assert_eq!(
            find_program("sh", &path("/bin")),
            Some(PathBuf::from("/bin/sh"))
        );
        for searched_from_the_folder in ["tools:/bin", ":/bin", "/bin::", "/nonexistent:bin:/bin"] {
            assert_eq!(
                find_program("sh", &path(searched_from_the_folder)),
                if searched_from_the_folder.starts_with("/bin") {
                    Some(PathBuf::from("/bin/sh"))
                } else {
                    None
                },
                "{searched_from_the_folder}"
            );
        }
    }

    use super::*;

    use std::sync::Once;
    use tempfile::TempDir;

    const GRACE: Duration = Duration::from_millis(500);

    /// A job's directory and log, plus the environment tests usually want.
    struct Fixture {
        dir: TempDir,
        env: Vec<(String, String)>,
    }

    impl Fixture {
        fn new() -> Self {
            // Process-wide and idempotent; every test needs it for "group is gone" checks.
            static SUBREAPER: Once = Once::new();
            SUBREAPER.call_once(|| become_subreaper().unwrap());
            let path = std::env::var("PATH").unwrap();
            Self {
                dir: tempfile::tempdir().unwrap(),
                env: vec![("PATH".to_owned(), path)],
            }
        }

        fn log_path(&self) -> PathBuf {
            self.dir.path().join("logs/attempt.log")
        }

        fn spawn(&self, command: &str) -> Running {
            let log_path = self.log_path();
            spawn(&AttemptSpec {
                command,
                env: &self.env,
                working_dir: self.dir.path(),
                log_path: &log_path,
            })
            .unwrap()
        }

        fn run(&self, command: &str) -> Exit {
            self.spawn(command).wait(GRACE).unwrap().exit
        }

        fn log(&self) -> String {
            fs::read_to_string(self.log_path()).unwrap()
        }
    }

    /// Plays the coordinator: after `delay`, sends `signal` to the group.
    fn kill_after(pgid: i32, delay: Duration, signal: i32) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            thread::sleep(delay);
            kill_group(pgid, signal).unwrap();
        })
    }

    #[test]
    fn output_of_a_fast_exit_is_complete() {
        let fixture = Fixture::new();
        assert_eq!(fixture.run("seq 1 100000"), Exit::Code(0));
        let log = fixture.log();
        assert_eq!(log.lines().count(), 100_000);
        assert_eq!(log.lines().last(), Some("100000"));
    }

    #[test]
    fn stdout_and_stderr_append_to_one_log_in_order() {
        let fixture = Fixture::new();
        fixture.run("echo a; echo b >&2; echo c");
        fixture.run("echo a; echo b >&2; echo c");
        assert_eq!(fixture.log(), "a\nb\nc\na\nb\nc\n");
    }

    #[test]
    fn exit_codes_and_signals_are_reported() {
        let fixture = Fixture::new();
        assert_eq!(fixture.run("exit 3"), Exit::Code(3));
        assert_eq!(fixture.run("kill -TERM $$"), Exit::Signal(libc::SIGTERM));
        assert_eq!(fixture.run("no-such-command-exe-test"), Exit::Code(127));
    }

    #[test]
    fn group_kill_ends_the_job_and_its_background_children() {
        let fixture = Fixture::new();
        let running = fixture.spawn("sleep 100 & sleep 100");
        let pgid = running.pgid();
        let start = Instant::now();
        let killer = kill_after(pgid, Duration::from_millis(200), libc::SIGTERM);
        assert_eq!(
            running.wait(GRACE).unwrap().exit,
            Exit::Signal(libc::SIGTERM)
        );
        killer.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(!group_alive(pgid));
    }

    #[test]
    fn a_job_ignoring_term_dies_by_kill_after_a_grace() {
        let fixture = Fixture::new();
        let running = fixture.spawn(r#"trap "" TERM; sleep 100"#);
        let pgid = running.pgid();
        let coordinator = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            kill_group(pgid, libc::SIGTERM).unwrap();
            thread::sleep(Duration::from_millis(300));
            assert!(group_alive(pgid), "TERM was ignored, so the group lives");
            kill_group(pgid, libc::SIGKILL).unwrap();
        });
        assert_eq!(
            running.wait(GRACE).unwrap().exit,
            Exit::Signal(libc::SIGKILL)
        );
        coordinator.join().unwrap();
        assert!(!group_alive(pgid));
    }

    #[test]
    fn background_child_with_stdout_closed_does_not_hold_wait() {
        let fixture = Fixture::new();
        let start = Instant::now();
        let running = fixture.spawn("exec >&-; sleep 100 &");
        let pgid = running.pgid();
        assert_eq!(running.wait(GRACE).unwrap().exit, Exit::Code(0));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(!group_alive(pgid));
    }

    #[test]
    fn orphaned_grandchild_is_ended_with_the_job() {
        let fixture = Fixture::new();
        let start = Instant::now();
        let running = fixture.spawn("(sleep 100 &) ; echo done");
        let pgid = running.pgid();
        assert_eq!(running.wait(GRACE).unwrap().exit, Exit::Code(0));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(!group_alive(pgid));
        assert_eq!(fixture.log(), "done\n");
    }

    #[test]
    fn leftover_ignoring_term_is_killed_after_the_grace() {
        let fixture = Fixture::new();
        let grace = Duration::from_millis(200);
        let start = Instant::now();
        // The main shell lingers so the subshell has set its trap before the cleanup's TERM.
        let running = fixture.spawn(r#"(trap "" TERM; sleep 100) & sleep 0.2"#);
        let pgid = running.pgid();
        assert_eq!(running.wait(grace).unwrap().exit, Exit::Code(0));
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        assert!(!group_alive(pgid));
    }

    #[test]
    fn usage_is_the_commands_own() {
        let fixture = Fixture::new();
        let busy = fixture
            .spawn("i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done")
            .wait(GRACE)
            .unwrap();
        assert!(busy.usage.user_cpu + busy.usage.system_cpu >= Duration::from_millis(5));
        // `true` is far smaller than this test binary, whose peak the kernel folds in.
        let small = fixture.spawn("true").wait(GRACE).unwrap();
        assert_eq!(small.usage.max_rss_kib, None);
    }

    #[test]
    fn binary_output_is_byte_exact() {
        let fixture = Fixture::new();
        assert_eq!(fixture.run("head -c 100000 /dev/urandom"), Exit::Code(0));
        assert_eq!(fs::metadata(fixture.log_path()).unwrap().len(), 100_000);
    }

    #[test]
    fn large_output_goes_to_the_file() {
        let fixture = Fixture::new();
        assert_eq!(fixture.run("yes | head -c 200000000"), Exit::Code(0));
        assert_eq!(fs::metadata(fixture.log_path()).unwrap().len(), 200_000_000);
    }

    #[test]
    fn environment_is_exactly_the_given_one() {
        let mut fixture = Fixture::new();
        fixture.env.push(("A".to_owned(), "1".to_owned()));
        fixture.run(r#"echo "$A:$HOME""#);
        assert_eq!(fixture.log(), "1:\n");
    }

    #[test]
    fn shell_is_found_without_a_path_in_the_environment() {
        let mut fixture = Fixture::new();
        fixture.env.clear();
        assert_eq!(fixture.run("echo ok"), Exit::Code(0));
        assert_eq!(fixture.log(), "ok\n");
    }

    #[test]
    fn job_starts_in_the_working_dir() {
        let fixture = Fixture::new();
        fixture.run("pwd");
        let expected = fixture.dir.path().canonicalize().unwrap();
        assert_eq!(fixture.log().trim_end(), expected.to_str().unwrap());
    }

    #[test]
    fn fractional_kill_ends_the_attempt_promptly() {
        let fixture = Fixture::new();
        let start = Instant::now();
        let running = fixture.spawn("sleep 100");
        let killer = kill_after(running.pgid(), Duration::from_millis(300), libc::SIGTERM);
        assert_eq!(
            running.wait(GRACE).unwrap().exit,
            Exit::Signal(libc::SIGTERM)
        );
        killer.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn missing_working_dir_is_an_error_naming_it() {
        let fixture = Fixture::new();
        let missing = fixture.dir.path().join("missing");
        let log_path = fixture.log_path();
        let error = spawn(&AttemptSpec {
            command: "true",
            env: &fixture.env,
            working_dir: &missing,
            log_path: &log_path,
        })
        .unwrap_err();
        assert!(matches!(&error, ProcessError::WorkingDir { path, .. } if *path == missing));
        assert!(error.to_string().contains(missing.to_str().unwrap()));
    }

    #[test]
    fn unwritable_log_dir_is_an_error_naming_the_log() {
        let fixture = Fixture::new();
        let file = fixture.dir.path().join("file");
        fs::write(&file, "").unwrap();
        let log_path = file.join("logs/attempt.log");
        let error = spawn(&AttemptSpec {
            command: "true",
            env: &fixture.env,
            working_dir: fixture.dir.path(),
            log_path: &log_path,
        })
        .unwrap_err();
        assert!(matches!(&error, ProcessError::LogFile { path, .. } if *path == log_path));
        assert!(error.to_string().contains(log_path.to_str().unwrap()));
    }

    #[test]
    fn signalling_a_finished_group_is_ok() {
        let fixture = Fixture::new();
        let running = fixture.spawn("true");
        let pgid = running.pgid();
        running.wait(GRACE).unwrap();
        assert!(!group_alive(pgid));
        kill_group(pgid, libc::SIGTERM).unwrap();
    }

    #[test]
    fn a_group_of_unreaped_zombies_is_alive_but_not_running() {
        // A group whose one process has exited and is not reaped yet: as a dead exe's job
        // is left to a PID 1 that is slow to reap.
        let mut child = Command::new("true").process_group(0).spawn().unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_running(pgid) {
            assert!(Instant::now() < deadline, "`true` did not exit");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(group_alive(pgid), "the zombie still holds the group");
        child.wait().unwrap();
        assert!(!group_alive(pgid) && !group_running(pgid));
    }

    #[test]
    fn a_running_group_is_running() {
        let fixture = Fixture::new();
        let running = fixture.spawn("sleep 100");
        let pgid = running.pgid();
        assert!(group_running(pgid));
        kill_group(pgid, libc::SIGKILL).unwrap();
        running.wait(GRACE).unwrap();
        assert!(!group_running(pgid));
    }

    #[test]
    fn pgids_naming_ourselves_or_everyone_are_refused() {
        // Signal 0 only probes, so even a broken guard could not hurt anything.
        for pgid in [-5, 0, 1] {
            let error = kill_group(pgid, 0).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert!(!group_alive(pgid));
        }
    }
}
