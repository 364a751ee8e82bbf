//! SIGINT and SIGTERM as messages on a channel, for the one coordinator that owns them (the
//! runner in `apply`, the watch loop in `watch`). The handler only wakes a thread, which
//! sends the message; the coordinator acts on it.

use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// Sends a message for every SIGINT or SIGTERM while it lives.
pub struct Forward {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Starts sending `message()` into `tx` for every SIGINT or SIGTERM.
    pub fn start<M: Send + 'static>(tx: &Sender<M>, message: fn() -> M) -> std::io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let tx = tx.clone();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                if tx.send(message()).is_err() {
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
