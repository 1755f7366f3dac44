//! A victim's exit, passed on once its whole process is gone.
//!
//! The victim's exit is one of the pieces a decision waits for, and once it
//! is complete the OOM memcg's usage is read as what the kill left
//! (`usage_after_kill_bytes`). The kernel's exit event comes too early for
//! that read: since 6.16 `sched_process_exit` fires before `exit_mm`, and a
//! multithreaded victim's memory goes only with its last thread. A pidfd
//! turns readable once every thread of the process has exited, each after
//! its `exit_mm`, so the event is held until then (at most
//! [`HOLD_AT_MOST`]: a thread stuck in the kernel must not hold the
//! decision back past the builder's own wait for the exit).
use std::{
    os::fd::{FromRawFd, OwnedFd},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use oomtrace_core::events::Event;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::Notify,
};

const HOLD_AT_MOST: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct VictimExits {
    held: Arc<Mutex<Vec<Held>>>,
    released: Arc<Notify>,
    next_key: u64,
}

struct Held {
    key: u64,
    event: Event,
    gone: bool,
}

impl VictimExits {
    /// `event`, the exit of a thread of process `tgid`: back now when the
    /// process is gone already (reaped, or no pidfd to watch it with),
    /// else held until it is.
    pub fn hold(&mut self, tgid: u32, event: Event) -> Option<Event> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Some(event);
        };
        let Some(pidfd) = pidfd_open(tgid) else {
            return Some(event);
        };
        let key = self.next_key;
        self.next_key += 1;
        lock(&self.held).push(Held {
            key,
            event,
            gone: false,
        });
        let (held, released) = (self.held.clone(), self.released.clone());
        runtime.spawn(async move {
            let _ = tokio::time::timeout(HOLD_AT_MOST, process_gone(pidfd)).await;
            if let Some(h) = lock(&held).iter_mut().find(|h| h.key == key) {
                h.gone = true;
            }
            released.notify_one();
        });
        None
    }

    /// Notified when a held exit can go on.
    pub fn released(&self) -> Arc<Notify> {
        self.released.clone()
    }

    /// The held exits whose process is gone, in the order they came;
    /// `all`: every one (the run ends).
    pub fn take(&self, all: bool) -> Vec<Event> {
        let mut held = lock(&self.held);
        let (out, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut *held)
            .into_iter()
            .partition(|h| all || h.gone);
        *held = keep;
        out.into_iter().map(|h| h.event).collect()
    }
}

fn lock(held: &Mutex<Vec<Held>>) -> std::sync::MutexGuard<'_, Vec<Held>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn process_gone(pidfd: OwnedFd) {
    // SAFETY: the OwnedFd moves into the AsyncFd and stays open with it.
    if let Ok(fd) = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
        let _ = fd.readable().await;
    }
}

/// A pidfd of process `pid`; `None` when it is gone (ESRCH) or the kernel
/// has none (before 5.3).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_ebpf::VictimExitEvent;

    fn exit_of(tgid: u32) -> Event {
        // SAFETY: a plain-old-data event, all zeroes is valid.
        let mut event: VictimExitEvent = unsafe { std::mem::zeroed() };
        event.header.tgid = tgid;
        Event::VictimExit(event)
    }

    /// Held while the process runs, released once it has exited, before
    /// anyone reaped it.
    #[tokio::test]
    async fn an_exit_is_held_until_the_process_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let mut exits = VictimExits::default();
        let released = exits.released();
        assert!(exits.hold(child.id(), exit_of(child.id())).is_none());
        assert!(exits.take(false).is_empty());
        child.kill().unwrap();
        released.notified().await;
        assert_eq!(exits.take(false).len(), 1);
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_reaped_process_passes_at_once() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(VictimExits::default().hold(pid, exit_of(pid)).is_some());
    }

    #[test]
    fn at_the_end_every_held_exit_goes_out() {
        let exits = VictimExits::default();
        lock(&exits.held).push(Held {
            key: 0,
            event: exit_of(1),
            gone: false,
        });
        assert!(exits.take(false).is_empty());
        assert_eq!(exits.take(true).len(), 1);
    }
}
