//! What wakes the risk model (`model::risk`) for a memcg: on cgroup v1, the
//! kernel's usage threshold notification (`cgroup.event_control`, an
//! eventfd per memcg) at `model::risk::watch_threshold` of its limit; on cgroup v2,
//! which has no usage threshold, a PSI trigger on `memory.pressure`
//! ([`PSI_TRIGGER`]) and an inotify watch on `memory.events` (its `high`
//! and `max` counts). A thread of its own blocks in `poll()` on them without
//! a timeout, so a node whose memcgs stay quiet costs no wake-up at all; it
//! hands the loop at most one batch a second ([`MIN_WAKE_INTERVAL`]).
//!
//! The thresholds are registered at start for the memcgs of the `--cgroup`
//! scope that have a limit, and the scope's directories watched (inotify):
//! a memcg created later is registered when it appears, and again when its
//! limit is written (at most [`MAX_REGISTERED`] memcgs, [`MAX_DIRS`]
//! directories; beyond them, a warning on stderr says what is not watched).
mod inotify;
mod sources;
mod watcher;

use std::{path::PathBuf, sync::Arc, time::Duration};

use oomtrace_core::cgroup::{MemoryHierarchy, ScopeCgroup};
use tokio::sync::Notify;

use self::watcher::{Shared, Watcher};

/// Bound on the memcgs given a threshold (two descriptors each).
pub const MAX_REGISTERED: usize = 256;

/// Bound on the cgroup directories watched for new memcgs and limits.
pub const MAX_DIRS: usize = 4 * MAX_REGISTERED;

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
    shared: Arc<Shared>,
    /// Set up but not yet polled: the thread starts after the privilege drop.
    pending: Option<Watcher>,
}

impl RiskWatch {
    /// Registers the thresholds (v1) or the triggers and watches (v2) of the
    /// scope's memcgs that have a limit, and watches the scope's directories
    /// for memcgs to come; `None` when there is nothing to watch.
    pub fn register(hierarchy: &MemoryHierarchy, scope: &[ScopeCgroup]) -> Option<Self> {
        let roots: Vec<PathBuf> = if scope.is_empty() {
            vec![hierarchy.mount.clone()]
        } else {
            scope.iter().map(|s| s.path.clone()).collect()
        };
        let shared = Arc::new(Shared::default());
        let mut watcher = Watcher::new(hierarchy.clone(), shared.clone());
        for root in roots {
            let above = watcher.add_subtree(&root);
            shared.crossed.lock().unwrap().extend(above);
        }
        watcher.watching().then(|| Self {
            shared,
            pending: Some(watcher),
        })
    }

    /// Starts the thread that waits on the notifications.
    pub fn start(&mut self) -> std::io::Result<()> {
        let Some(watcher) = self.pending.take() else {
            return Ok(());
        };
        std::thread::Builder::new()
            .name("oomtrace-risk".into())
            .spawn(move || watcher.run())?;
        Ok(())
    }

    /// Wakes the loop when a memcg crossed its threshold.
    pub fn notified(&self) -> Arc<Notify> {
        self.shared.notify.clone()
    }

    /// The memcgs that crossed their threshold since the last call (the
    /// first time, with those above it at start).
    pub fn take_crossed(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.shared.crossed.lock().unwrap())
    }

    /// What could not be watched since the last call, one line each.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.shared.notices.lock().unwrap())
    }
}
