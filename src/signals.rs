//! SIGINT and SIGTERM as messages on a channel, for the one coordinator that owns them (the
//! runner in `apply`, the watch loop in `watch`). The handler only wakes a thread, which
//! sends the message; the coordinator acts on it.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// Sends a message for every SIGINT or SIGTERM while it lives.
pub struct Forward {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Calls `deliver` for every SIGINT or SIGTERM, until it returns false (its receiver is
    /// gone).
    pub fn start(deliver: impl Fn() -> bool + Send + 'static) -> std::io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
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
