//! How a statement waits for another process's lock: `SQLite`'s own back-off (1 ms,
//! growing to 100 ms a try) for up to [`BUSY_TIMEOUT`], then [`StoreError::Busy`].
//!
//! Once exe has been asked to stop ([`stop_waiting`]: Ctrl-C, SIGTERM, SIGHUP), a wait
//! lasts at most [`WAIT_WHEN_STOPPING`] and ends in [`StoreError::Interrupted`]: long enough
//! for another exe's commit (about a millisecond), short enough that a lock somebody keeps
//! does not hold a stopping run for ten seconds. The flag is process-wide, as the signals
//! are.
//!
//! [`StoreError::Busy`]: super::StoreError::Busy
//! [`StoreError::Interrupted`]: super::StoreError::Interrupted

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::BUSY_TIMEOUT;

/// How long a statement waits for a lock once exe is stopping.
const WAIT_WHEN_STOPPING: Duration = Duration::from_secs(1);

/// `SQLite`'s own delays between tries, in milliseconds; every later try waits the last.
const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

static STOPPING: AtomicBool = AtomicBool::new(false);

/// From now on, waits for another process's lock are cut short (see the module).
pub fn stop_waiting() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// Whether exe has been asked to stop, so that a lock it could not get is reported as
/// an interruption.
pub(super) fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// The busy handler: sleeps before try `tries + 1` and returns true, or returns false
/// (give up) once the waits so far reach the limit.
pub(super) fn wait_for_lock(tries: i32) -> bool {
    let limit = if stopping() {
        WAIT_WHEN_STOPPING
    } else {
        BUSY_TIMEOUT
    };
    match next_delay(usize::try_from(tries).unwrap_or(0), limit) {
        Some(delay) => {
            std::thread::sleep(delay);
            true
        }
        None => false,
    }
}

/// The sleep before try `tries + 1`, trimmed to end at `limit`; `None` once the
/// sleeps before it add up to `limit`.
fn next_delay(tries: usize, limit: Duration) -> Option<Duration> {
    let last = DELAYS_MS[DELAYS_MS.len() - 1];
    let delay = |n: usize| DELAYS_MS.get(n).copied().unwrap_or(last);
    let waited: u64 = (0..tries).map(delay).sum();
    let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    (waited < limit).then(|| Duration::from_millis(delay(tries).min(limit - waited)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(limit: Duration) -> (usize, Duration) {
        let mut tries = 0;
        let mut waited = Duration::ZERO;
        while let Some(delay) = next_delay(tries, limit) {
            waited += delay;
            tries += 1;
        }
        (tries, waited)
    }

    #[test]
    fn the_waits_back_off_as_sqlites_do_and_add_up_to_the_limit() {
        assert_eq!(next_delay(0, BUSY_TIMEOUT), Some(Duration::from_millis(1)));
        assert_eq!(
            next_delay(11, BUSY_TIMEOUT),
            Some(Duration::from_millis(100))
        );
        assert_eq!(next_delay(500, BUSY_TIMEOUT), None);
        // 328 ms for the first twelve tries, then 100 ms each; the last one trimmed.
        assert_eq!(total(BUSY_TIMEOUT), (109, BUSY_TIMEOUT));
        assert_eq!(total(WAIT_WHEN_STOPPING), (19, WAIT_WHEN_STOPPING));
    }
}
