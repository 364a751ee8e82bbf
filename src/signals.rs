//! SIGINT, SIGTERM and SIGHUP as messages on a channel, for the one coordinator that owns
//! them (the runner in `apply`, the watch loop in `watch`). The handler only wakes a thread,
//! which sends the message; the coordinator acts on it.
//!
//! SIGHUP (the terminal closed, an SSH session dropped) stops a run as Ctrl-C does: by
//! default it would kill exe at once and leave its jobs, which run in their own process
//! groups and so get no SIGHUP of their own, running unrecorded. A SIGHUP that exe inherited
//! as ignored (`nohup exe apply ...`) stays ignored: that user asked for the run to outlive
//! the terminal.
#![allow(unsafe_code)]

use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// Whether exe started with `signal` ignored (`SIG_IGN`, as `nohup` leaves SIGHUP).
fn inherited_as_ignored(signal: i32) -> bool {
    // SAFETY: all-zero bytes are a valid `sigaction` (a null handler, an empty mask).
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`, a live local of
    // the type sigaction writes; `signal` is a plain integer.
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), &raw mut current) };
    read == 0 && current.sa_sigaction == libc::SIG_IGN
}

/// Makes a write past the file-size limit (`ulimit -f`) an error exe reports, not a
/// SIGXFSZ that kills it between a job's start and its record. A handler that does nothing
/// (not `SIG_IGN`) is reset to the default in the jobs exe starts, as `exec` does with every
/// handler, so a job still gets the signal. One inherited as ignored stays ignored.
pub fn survive_file_size_limit() {
    extern "C" fn nothing(_: libc::c_int) {}
    if inherited_as_ignored(libc::SIGXFSZ) {
        return;
    }
    // SAFETY: all-zero bytes are a valid `sigaction`; the handler is an async-signal-safe
    // function that does nothing, and lives as long as the program.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGXFSZ, &raw const action, std::ptr::null_mut());
    }
}

/// Sends a message for every SIGINT, SIGTERM or SIGHUP while it lives.
pub struct Forward {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Calls `deliver` for every SIGINT, SIGTERM or SIGHUP (unless SIGHUP was inherited as
    /// ignored), until it returns false (its receiver is gone).
    pub fn start(deliver: impl Fn() -> bool + Send + 'static) -> std::io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        if !inherited_as_ignored(SIGHUP) {
            signals.add_signal(SIGHUP)?;
        }
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                if !deliver() {
                    break;
                }
            }
        });
        Ok(Forward {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
