//! What the coordinator sleeps on: a [`Waker`] that other threads ring, and the pidfds of
//! the attempts it started itself.
//!
//! A job that ends wakes the coordinator directly, through its pidfd, as it would wake make
//! in `wait`: no thread stands between the process and the scheduler. Threads that have
//! something to say (the signal thread, a worker) send it on the coordinator's channel and
//! then ring the waker; one ring may stand for several messages, so the coordinator drains
//! the channel after every wake-up.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};

/// An eventfd: any thread may ring it; the coordinator's [`wait`] returns when it rings.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new waker, not rung.
    ///
    /// # Errors
    ///
    /// The `eventfd` error (out of file descriptors).
    pub fn new() -> io::Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self { fd })
    }

    /// Wakes the coordinator (or makes its next [`wait`] return at once).
    pub fn wake(&self) {
        // The counter only saturates after 2^64 - 2 rings without a read; a failed write
        // (EAGAIN then) still leaves the waker rung.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Resets the waker after a wake-up.
    fn reset(&self) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut count);
    }
}

/// What [`wait`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The waker rang: messages are waiting on the channel.
    pub woken: bool,
    /// The indexes (into the `pidfds` given) of the processes that exited.
    pub exited: Vec<usize>,
}

/// Sleeps until the waker rings, one of the processes exits, or `timeout` passes (`None`:
/// no timeout).
///
/// # Errors
///
/// The `poll` error, except EINTR, which returns as if nothing happened.
pub fn wait(waker: &Waker, pidfds: &[&OwnedFd], timeout: Option<Duration>) -> io::Result<Ready> {
    let mut fds = Vec::with_capacity(pidfds.len() + 1);
    fds.push(PollFd::new(&waker.fd, PollFlags::IN));
    fds.extend(
        pidfds
            .iter()
            .map(|fd| PollFd::from_borrowed_fd(fd.as_fd(), PollFlags::IN)),
    );
    // A timeout too long for a timespec waits as long as one can.
    let timeout = timeout.map(|t| {
        Timespec::try_from(t).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        })
    });
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Ready::default()),
        Err(e) => return Err(e.into()),
    }
    let woken = !fds[0].revents().is_empty();
    let exited = fds[1..]
        .iter()
        .enumerate()
        .filter(|(_, fd)| !fd.revents().is_empty())
        .map(|(i, _)| i)
        .collect();
    if woken {
        waker.reset();
    }
    Ok(Ready { woken, exited })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let waker = Waker::new().unwrap();
        waker.wake();
        waker.wake();
        let ready = wait(&waker, &[], Some(Duration::from_secs(5))).unwrap();
        assert!(ready.woken);
        // Both rings were consumed by the one wake-up.
        let ready = wait(&waker, &[], Some(Duration::from_millis(1))).unwrap();
        assert!(!ready.woken);
    }

    #[test]
    fn an_exiting_process_wakes_the_wait() {
        let waker = Waker::new().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        let t0 = Instant::now();
        let ready = wait(&waker, &[&pidfd], Some(Duration::from_secs(5))).unwrap();
        assert_eq!(ready.exited, [0]);
        assert!(t0.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();
    }

    #[test]
    fn the_timeout_ends_the_wait() {
        let waker = Waker::new().unwrap();
        let t0 = Instant::now();
        let ready = wait(&waker, &[], Some(Duration::from_millis(20))).unwrap();
        assert_eq!(ready, Ready::default());
        assert!(t0.elapsed() >= Duration::from_millis(20));
    }
}
