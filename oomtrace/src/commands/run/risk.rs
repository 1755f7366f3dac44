//! What wakes the risk model (`model::risk`) for a memcg: on cgroup v1, the
//! kernel's usage threshold notification (`cgroup.event_control`, an
//! eventfd per memcg) at [`watch_threshold`] of its limit; on cgroup v2,
//! which has no usage threshold, a PSI trigger on `memory.pressure`
//! ([`PSI_TRIGGER`]) and an inotify watch on `memory.events` (its `high`
//! and `max` counts). A thread of its own blocks in `poll()` on them without
//! a timeout, so a node whose memcgs stay quiet costs no wake-up at all; it
//! hands the loop at most one batch a second ([`MIN_WAKE_INTERVAL`]).
//!
//! The thresholds are registered at start for the memcgs of the `--cgroup`
//! scope that have a limit (at most [`MAX_REGISTERED`]); memcgs created or
//! limits changed later are not seen (docs/early-warning.md).
use std::{
    collections::HashMap,
    fs,
    io::Write,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use oomtrace_core::{
    cgroup::{CgroupVersion, MemoryHierarchy, ScopeCgroup, subtree},
    model::risk::watch_threshold,
};
use tokio::sync::Notify;

/// Bound on the memcgs given a threshold (two descriptors each).
pub const MAX_REGISTERED: usize = 256;

/// The v2 PSI trigger: some task of the memcg stalled on memory for 150 ms
/// within 2 s. The kernel signals a trigger at most once per window, and a
/// memcg that reclaims nothing (below its limits) never stalls. The window
/// is 2 s because a tracer without CAP_SYS_RESOURCE may only write
/// multiples of it (the kernel refuses 1 s with EINVAL).
pub const PSI_TRIGGER: &str = "some 150000 2000000";

/// The thread hands crossings to the loop at most this often: `memory.events`
/// can change every few milliseconds in a memcg held at its `memory.high`,
/// and the model samples a watched memcg once a second anyway.
pub const MIN_WAKE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the thread reads the `memory.current` of the v2 memcgs: v2 has
/// no usage threshold notification, and an anonymous leak neither stalls
/// nor passes a `memory.high` before its limit, seconds before the kill.
/// One wake-up per interval for all of them; none on v1.
pub const USAGE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The notifications of one run: which memcgs crossed their threshold.
pub struct RiskWatch {
    crossed: Arc<Mutex<Vec<String>>>,
    notify: Arc<Notify>,
    /// Registered but not yet handed to the thread (it starts after the
    /// privilege drop), and memcgs already above their threshold at start.
    pending: Option<Sources>,
    initially_above: Vec<String>,
}

/// What the thread polls.
#[derive(Default)]
struct Sources {
    registered: Vec<Registered>,
    events: Option<EventsWatch>,
    usage: Vec<UsageCheck>,
}

/// A v2 memcg's stand-in for the v1 threshold: its `memory.current`, read
/// every [`USAGE_CHECK_INTERVAL`]; a rise past the threshold is a crossing.
struct UsageCheck {
    memcg: String,
    current: PathBuf,
    threshold: u64,
    above: bool,
}

struct Registered {
    memcg: String,
    dir: PathBuf,
    /// An eventfd (v1, `POLLIN`) or a `memory.pressure` with a trigger (v2,
    /// `POLLPRI`).
    fd: OwnedFd,
    events: i16,
    /// v1: `memory.usage_in_bytes`, open while the notification is registered.
    _usage: Option<fs::File>,
}

/// One inotify instance for every v2 memcg's `memory.events` (instances are
/// few per user, watches many).
struct EventsWatch {
    fd: OwnedFd,
    memcgs: HashMap<i32, String>,
}

impl RiskWatch {
    /// Registers the thresholds (v1) or the triggers and watches (v2) of the
    /// scope's memcgs that have a limit; `None` when none has one.
    pub fn register(hierarchy: &MemoryHierarchy, scope: &[ScopeCgroup]) -> Option<Self> {
        let roots: Vec<PathBuf> = if scope.is_empty() {
            vec![hierarchy.mount.clone()]
        } else {
            scope.iter().map(|s| s.path.clone()).collect()
        };
        let mut sources = Sources::default();
        let mut initially_above = Vec::new();
        let dirs = roots
            .into_iter()
            .flat_map(|root| subtree(root, MAX_REGISTERED));
        for (count, dir) in dirs.enumerate() {
            if count >= MAX_REGISTERED {
                break;
            }
            let Some(memcg) = hierarchy.relative(&dir) else {
                continue;
            };
            let above = match hierarchy.version {
                CgroupVersion::V1 => register_threshold(&dir, memcg, &mut sources),
                CgroupVersion::V2 => register_v2(&dir, memcg, &mut sources),
            };
            if let Some(memcg) = above {
                initially_above.push(memcg);
            }
        }
        let watching = !sources.registered.is_empty()
            || sources
                .events
                .as_ref()
                .is_some_and(|e| !e.memcgs.is_empty());
        watching.then(|| Self {
            crossed: Arc::default(),
            notify: Arc::default(),
            pending: Some(sources),
            initially_above,
        })
    }

    /// Starts the thread that waits on the notifications.
    pub fn start(&mut self) -> std::io::Result<()> {
        let Some(sources) = self.pending.take() else {
            return Ok(());
        };
        let crossed = self.crossed.clone();
        let notify = self.notify.clone();
        std::thread::Builder::new()
            .name("oomtrace-risk".into())
            .spawn(move || wait(sources, &crossed, &notify))?;
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

/// One v1 memcg's threshold; returns the memcg when usage is above it now.
fn register_threshold(dir: &Path, memcg: String, sources: &mut Sources) -> Option<String> {
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
    sources.registered.push(Registered {
        memcg: memcg.clone(),
        dir: dir.to_owned(),
        fd: eventfd,
        events: libc::POLLIN,
        _usage: Some(usage),
    });
    above.then_some(memcg)
}

/// One v2 memcg with a `memory.max` or `memory.high`: its PSI trigger and
/// its `memory.events` watch, whichever the kernel gives (a kernel without
/// PSI still has `memory.events`), and its usage check. Returns the memcg
/// when usage is at [`watch_threshold`] of its limit already.
fn register_v2(dir: &Path, memcg: String, sources: &mut Sources) -> Option<String> {
    let number = |name: &str| -> Option<u64> {
        fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
    };
    let limit = number("memory.max")
        .into_iter()
        .chain(number("memory.high"))
        .min()?;
    if let Ok(fd) = psi_trigger(&dir.join("memory.pressure")) {
        sources.registered.push(Registered {
            memcg: memcg.clone(),
            dir: dir.to_owned(),
            fd,
            events: libc::POLLPRI,
            _usage: None,
        });
    }
    if sources.events.is_none() {
        sources.events = EventsWatch::new().ok();
    }
    if let Some(events) = sources.events.as_mut() {
        // A failed watch leaves the trigger; neither leaves the memcg unwatched.
        let _ = events.add(&dir.join("memory.events"), memcg.clone());
    }
    let threshold = watch_threshold(limit);
    let above = number("memory.current").is_some_and(|u| u >= threshold);
    sources.usage.push(UsageCheck {
        memcg: memcg.clone(),
        current: dir.join("memory.current"),
        threshold,
        above,
    });
    above.then_some(memcg)
}

/// Opens a PSI file and writes a trigger on it ([`PSI_TRIGGER`]); the
/// descriptor then polls `POLLPRI` at each stall of the window, `POLLERR`
/// once the cgroup is removed.
pub fn psi_trigger(path: &Path) -> std::io::Result<OwnedFd> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    // The kernel takes the trigger only from one write holding all of it.
    file.write_all(format!("{PSI_TRIGGER}\0").as_bytes())?;
    Ok(file.into())
}

impl EventsWatch {
    fn new() -> std::io::Result<Self> {
        // SAFETY: inotify_init1 takes no pointers; a non-negative result is ours.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            memcgs: HashMap::new(),
        })
    }

    /// Watches a `memory.events`: the kernel notifies a modification at
    /// each change of its counts (`high`, `max`, `oom`...).
    fn add(&mut self, file: &Path, memcg: String) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(file.as_os_str().as_bytes())?;
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        let wd =
            unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.memcgs.insert(wd, memcg);
        Ok(())
    }

    /// Drains the pending events: the memcgs whose `memory.events` changed,
    /// and forgets those removed (`IN_IGNORED`).
    fn drain(&mut self, changed: &mut Vec<String>) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote whole events; the header is in bounds
                // (read unaligned: the buffer is bytes).
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                at += header + event.len as usize;
                if event.mask & libc::IN_IGNORED != 0 {
                    self.memcgs.remove(&event.wd);
                } else if let Some(memcg) = self.memcgs.get(&event.wd) {
                    changed.push(memcg.clone());
                }
            }
        }
    }
}

/// The thread: `poll()` without a timeout on every source; a signalled
/// one is a crossing (either way), handed to the loop. A memcg removed
/// signals its source too (then the model finds it gone), and is dropped
/// here. Handing over is paced to [`MIN_WAKE_INTERVAL`].
fn wait(mut sources: Sources, crossed: &Mutex<Vec<String>>, notify: &Notify) {
    let mut last_wake: Option<Instant> = None;
    let mut next_check = Instant::now() + USAGE_CHECK_INTERVAL;
    loop {
        let inotify = sources.events.as_ref().filter(|e| !e.memcgs.is_empty());
        if sources.registered.is_empty() && inotify.is_none() && sources.usage.is_empty() {
            return;
        }
        // A stalling memcg must not starve the others' usage checks.
        let timeout = if sources.usage.is_empty() {
            -1
        } else {
            let left = next_check.saturating_duration_since(Instant::now());
            left.as_millis() as libc::c_int
        };
        let mut fds: Vec<libc::pollfd> = sources
            .registered
            .iter()
            .map(|r| (r.fd.as_raw_fd(), r.events))
            .chain(inotify.map(|e| (e.fd.as_raw_fd(), libc::POLLIN)))
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let mut changed = Vec::new();
        if !sources.usage.is_empty() && Instant::now() >= next_check {
            check_usage(&mut sources.usage, &mut changed);
            next_check = Instant::now() + USAGE_CHECK_INTERVAL;
        }
        if n == 0 && changed.is_empty() {
            continue;
        }
        if let Some(last) = last_wake {
            std::thread::sleep(MIN_WAKE_INTERVAL.saturating_sub(last.elapsed()));
        }
        let mut gone = Vec::new();
        for (i, r) in sources.registered.iter().enumerate() {
            let revents = fds[i].revents;
            if revents == 0 {
                continue;
            }
            if r.events == libc::POLLIN {
                let mut count = [0u8; 8];
                // SAFETY: reads 8 bytes into `count`, the size of an eventfd counter.
                unsafe { libc::read(fds[i].fd, count.as_mut_ptr().cast(), 8) };
            }
            changed.push(r.memcg.clone());
            let broken = revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            if broken || !r.dir.exists() {
                gone.push(i);
            }
        }
        let inotify_ready =
            fds.len() > sources.registered.len() && fds.last().is_some_and(|f| f.revents != 0);
        if let Some(events) = sources.events.as_mut().filter(|_| inotify_ready) {
            events.drain(&mut changed);
        }
        for i in gone.into_iter().rev() {
            sources.registered.swap_remove(i);
        }
        changed.sort();
        changed.dedup();
        if changed.is_empty() {
            continue;
        }
        crossed.lock().unwrap().extend(changed);
        last_wake = Some(Instant::now());
        notify.notify_one();
    }
}

/// The v2 memcgs whose usage rose past their threshold since the last
/// check; a memcg removed (its file gone) is dropped.
fn check_usage(checks: &mut Vec<UsageCheck>, changed: &mut Vec<String>) {
    checks.retain_mut(|check| {
        let Some(usage) = fs::read_to_string(&check.current)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            return false;
        };
        let above = usage >= check.threshold;
        if above && !check.above {
            changed.push(check.memcg.clone());
        }
        check.above = above;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel takes the trigger line as written (a PSI file refuses a
    /// malformed or too-short window with EINVAL); the node-wide file stands
    /// in for a v2 memcg's on a v1 host.
    #[test]
    fn the_kernel_takes_the_psi_trigger() {
        let path = Path::new("/proc/pressure/memory");
        assert!(
            path.exists(),
            "this kernel has no PSI (CONFIG_PSI, psi=1): cannot check the trigger"
        );
        psi_trigger(path).expect("the kernel refused the PSI trigger");
    }

    /// A modification of a watched file wakes the poll and names its memcg.
    #[test]
    fn a_changed_events_file_names_its_memcg() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        fs::write(&file, "max 0\n").unwrap();
        let mut watch = EventsWatch::new().unwrap();
        watch.add(&file, "/leaker".into()).unwrap();
        fs::write(&file, "max 1\n").unwrap();
        let mut fds = [libc::pollfd {
            fd: watch.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd; the event is queued already, 5 s bounds a failure.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
        assert_eq!(n, 1, "no inotify event for the write");
        let mut changed = Vec::new();
        watch.drain(&mut changed);
        assert_eq!(changed, ["/leaker"]);
    }
}
