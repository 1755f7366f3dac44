//! What wakes the risk model (`model::risk`) for a memcg: on cgroup v1, the
//! kernel's usage threshold notification (`cgroup.event_control`, an
//! eventfd per memcg) at [`watch_threshold`] of its limit. A thread of its
//! own blocks in `poll()` on them without a timeout, so a node whose memcgs
//! stay below their thresholds costs no wake-up at all.
//!
//! The thresholds are registered at start for the memcgs of the `--cgroup`
//! scope that have a limit (at most [`MAX_REGISTERED`]); memcgs created or
//! limits changed later are not seen (docs/early-warning.md).
use std::{
    fs,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use oomtrace_core::{
    cgroup::{CgroupVersion, MemoryHierarchy, ScopeCgroup, subtree},
    model::risk::watch_threshold,
};
use tokio::sync::Notify;

/// Bound on the memcgs given a threshold (two descriptors each).
pub const MAX_REGISTERED: usize = 256;

/// The notifications of one run: which memcgs crossed their threshold.
pub struct RiskWatch {
    crossed: Arc<Mutex<Vec<String>>>,
    notify: Arc<Notify>,
    /// Registered but not yet handed to the thread (it starts after the
    /// privilege drop), and memcgs already above their threshold at start.
    pending: Option<Vec<Registered>>,
    initially_above: Vec<String>,
}

struct Registered {
    memcg: String,
    dir: PathBuf,
    eventfd: OwnedFd,
    /// `memory.usage_in_bytes`, open while the notification is registered.
    _usage: fs::File,
}

impl RiskWatch {
    /// Registers the thresholds (cgroup v1 only; `None` elsewhere or when no
    /// memcg of the scope has a limit).
    pub fn register(hierarchy: &MemoryHierarchy, scope: &[ScopeCgroup]) -> Option<Self> {
        if hierarchy.version != CgroupVersion::V1 {
            return None;
        }
        let roots: Vec<PathBuf> = if scope.is_empty() {
            vec![hierarchy.mount.clone()]
        } else {
            scope.iter().map(|s| s.path.clone()).collect()
        };
        let mut registered = Vec::new();
        let mut initially_above = Vec::new();
        let dirs = roots
            .into_iter()
            .flat_map(|root| subtree(root, MAX_REGISTERED));
        for dir in dirs {
            if registered.len() >= MAX_REGISTERED {
                break;
            }
            let Some(memcg) = hierarchy.relative(&dir) else {
                continue;
            };
            if let Some((r, above)) = register_one(&dir, memcg) {
                if above {
                    initially_above.push(r.memcg.clone());
                }
                registered.push(r);
            }
        }
        (!registered.is_empty()).then(|| Self {
            crossed: Arc::default(),
            notify: Arc::default(),
            pending: Some(registered),
            initially_above,
        })
    }

    /// Starts the thread that waits on the notifications.
    pub fn start(&mut self) -> std::io::Result<()> {
        let Some(registered) = self.pending.take() else {
            return Ok(());
        };
        let crossed = self.crossed.clone();
        let notify = self.notify.clone();
        std::thread::Builder::new()
            .name("oomtrace-risk".into())
            .spawn(move || wait(registered, &crossed, &notify))?;
        Ok(())
    }

    /// Wakes the loop when a memcg crossed its threshold.
    pub fn notified(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// The memcgs that crossed their threshold since the last call (and, the
    /// first time, those above it at start).
    pub fn take_crossed(&mut self) -> Vec<String> {
        let mut crossed = std::mem::take(&mut self.initially_above);
        crossed.extend(std::mem::take(&mut *self.crossed.lock().unwrap()));
        crossed
    }
}

/// One memcg's threshold; returns it and whether usage is above it now.
fn register_one(dir: &std::path::Path, memcg: String) -> Option<(Registered, bool)> {
    let number = |name: &str| -> Option<u64> {
        fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
    };
    let limit = number("memory.limit_in_bytes").filter(|&l| l < 1 << 62)?;
    let threshold = watch_threshold(limit);
    let usage = fs::File::open(dir.join("memory.usage_in_bytes")).ok()?;
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let line = format!("{} {} {threshold}", eventfd.as_raw_fd(), usage.as_raw_fd());
    fs::write(dir.join("cgroup.event_control"), line).ok()?;
    let above = number("memory.usage_in_bytes").is_some_and(|u| u >= threshold);
    Some((
        Registered {
            memcg,
            dir: dir.to_owned(),
            eventfd,
            _usage: usage,
        },
        above,
    ))
}

/// The thread: `poll()` without a timeout on every eventfd; a readable one
/// is a crossing (either way), handed to the loop. A memcg removed signals
/// its eventfd too (then the model finds it gone), and is dropped here.
fn wait(mut registered: Vec<Registered>, crossed: &Mutex<Vec<String>>, notify: &Notify) {
    while !registered.is_empty() {
        let mut fds: Vec<libc::pollfd> = registered
            .iter()
            .map(|r| libc::pollfd {
                fd: r.eventfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let mut gone = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents & libc::POLLIN == 0 {
                continue;
            }
            let mut count = [0u8; 8];
            // SAFETY: reads 8 bytes into `count`, the size of an eventfd counter.
            unsafe { libc::read(fd.fd, count.as_mut_ptr().cast(), 8) };
            let memcg = &registered[i].memcg;
            crossed.lock().unwrap().push(memcg.clone());
            if !registered[i].dir.exists() {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            registered.swap_remove(i);
        }
        notify.notify_one();
    }
}
