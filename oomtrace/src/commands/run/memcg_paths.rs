//! Cgroup id → path lookups off the event loop. The loop only reads what
//! the scans found so far ([`IdCache`]) and queues the ids they have not
//! seen; a worker thread walks the hierarchy for them, once for all the ids
//! queued, as soon as asked but paced by [`rescan_delay`] (a storm of new
//! ids shares scans), and wakes the loop. An id a scan
//! did not find is absent from then on: asking again costs nothing. The
//! decisions that name a queued id wait for it (`Environment::memcg_paths_ready`).
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    thread,
    time::{Duration, Instant},
};

use oomtrace_core::cgroup::{
    IdCache, IdLookup, MemcgSnapshot, MemoryHierarchy, rescan_delay, scan,
};
use tokio::sync::Notify;

/// Ids waiting for a scan, at most; what does not fit is a `lost` record
/// (`memcg_path_queue`) and resolves to no path.
const QUEUE: usize = 256;
/// Snapshots read by the worker and not yet taken by the loop, at most.
const MAX_SNAPSHOTS: usize = 256;

/// An OOM memcg's files, read by the worker as soon as its path was known.
pub type Snapshot = (String, MemcgSnapshot, u64);

#[derive(Default)]
struct Shared {
    ids: IdCache,
    /// Queued and not yet answered by a scan; true: its files are wanted too.
    pending: HashMap<u64, bool>,
    snapshots: Vec<Snapshot>,
}

/// The loop's side: lookups that never touch the hierarchy.
pub struct MemcgPaths {
    shared: Arc<Mutex<Shared>>,
    queue: SyncSender<u64>,
    /// Lookups the full queue dropped.
    dropped: u64,
    /// Notified after every scan that answered something.
    answered: Arc<Notify>,
}

impl MemcgPaths {
    /// Scans once now (before the loop runs: the cgroups of the moment),
    /// then starts the worker for the ids seen later.
    pub fn start(hierarchy: MemoryHierarchy) -> std::io::Result<Self> {
        let mut ids = IdCache::default();
        ids.merge(scan(&hierarchy), &[]);
        let shared = Arc::new(Mutex::new(Shared {
            ids,
            ..Shared::default()
        }));
        let answered = Arc::new(Notify::new());
        let (queue, requests) = sync_channel(QUEUE);
        let worker = Worker {
            shared: Arc::clone(&shared),
            hierarchy,
            answered: Arc::clone(&answered),
            last_scan_took: Duration::ZERO,
            last_scan_end: Instant::now(),
        };
        thread::Builder::new()
            .name("memcg-paths".into())
            .spawn(move || worker.run(requests))?;
        Ok(Self {
            shared,
            queue,
            dropped: 0,
            answered,
        })
    }

    /// Completes when a scan answered lookups (the loop waits on it).
    pub fn answered(&self) -> Arc<Notify> {
        Arc::clone(&self.answered)
    }

    /// The path of `id` if a scan found it; an id no scan looked for yet is
    /// queued (with `files`, its memcg's files are read once found).
    pub fn lookup(&mut self, id: u64, files: bool) -> Option<String> {
        let mut shared = lock(&self.shared);
        match shared.ids.lookup(id) {
            IdLookup::Path(path) => Some(path),
            IdLookup::Absent => None,
            IdLookup::Unknown => {
                if let Some(wanted) = shared.pending.get_mut(&id) {
                    *wanted |= files;
                    return None;
                }
                match self.queue.try_send(id) {
                    Ok(()) => {
                        shared.pending.insert(id, files);
                    }
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        self.dropped += 1;
                    }
                }
                None
            }
        }
    }

    /// None of `ids` is unknown or queued (queuing those that are unknown).
    pub fn ready(&mut self, ids: &[u64]) -> bool {
        let unanswered: Vec<u64> = {
            let shared = lock(&self.shared);
            ids.iter()
                .copied()
                .filter(|&id| match shared.ids.lookup(id) {
                    // Found, but its files are still being read.
                    IdLookup::Path(_) => shared.pending.contains_key(&id),
                    IdLookup::Absent => false,
                    IdLookup::Unknown => true,
                })
                .collect()
        };
        for &id in &unanswered {
            self.lookup(id, false);
        }
        unanswered.is_empty()
    }

    /// The OOM memcgs' files the worker read since the last call.
    pub fn take_snapshots(&self) -> Vec<Snapshot> {
        std::mem::take(&mut lock(&self.shared).snapshots)
    }

    /// Cgroups left out of the cache for lack of room.
    pub fn uncached(&self) -> u64 {
        lock(&self.shared).ids.uncached
    }

    /// Lookups dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The shared state; a worker that panicked left nothing half-written
/// that a lookup could not read.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The worker's side: the scans.
struct Worker {
    shared: Arc<Mutex<Shared>>,
    hierarchy: MemoryHierarchy,
    answered: Arc<Notify>,
    last_scan_took: Duration,
    last_scan_end: Instant,
}

impl Worker {
    /// Until the loop's side is dropped: the queued ids, one scan for all of
    /// them (made after they were asked for: every id on the queue came after
    /// the last scan's drain), their memcgs' files where wanted, then the
    /// answer. Blocked on the queue while nothing is asked: no wake-ups.
    fn run(mut self, requests: Receiver<u64>) {
        while let Ok(first) = requests.recv() {
            thread::sleep(rescan_delay(
                self.last_scan_took,
                self.last_scan_end.elapsed(),
            ));
            let asked: Vec<u64> = std::iter::once(first).chain(requests.try_iter()).collect();
            let started = Instant::now();
            let found = scan(&self.hierarchy);
            self.last_scan_end = Instant::now();
            self.last_scan_took = self.last_scan_end - started;
            let files_of: Vec<String> = {
                let mut shared = lock(&self.shared);
                shared.ids.merge(found, &asked);
                asked
                    .iter()
                    .filter(|id| shared.pending.get(id) == Some(&true))
                    .filter_map(|&id| match shared.ids.lookup(id) {
                        IdLookup::Path(path) => Some(path),
                        _ => None,
                    })
                    .collect()
            };
            let snapshots: Vec<Snapshot> = files_of
                .into_iter()
                .filter_map(|path| {
                    let read_ns = boot_ns_now();
                    let snapshot = self.hierarchy.snapshot(&path)?;
                    Some((path, snapshot, read_ns))
                })
                .collect();
            let mut shared = lock(&self.shared);
            let room = MAX_SNAPSHOTS.saturating_sub(shared.snapshots.len());
            shared.snapshots.extend(snapshots.into_iter().take(room));
            for id in &asked {
                shared.pending.remove(id);
            }
            drop(shared);
            self.answered.notify_one();
        }
    }
}

/// CLOCK_BOOTTIME now, in nanoseconds: the clock of the kernel's events
/// (`env` has the loop's own; a module below it may not import it).
fn boot_ns_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt, time::Duration};

    use oomtrace_core::cgroup::CgroupVersion;

    use super::*;

    fn hierarchy(root: &std::path::Path) -> MemoryHierarchy {
        MemoryHierarchy {
            mount: root.to_owned(),
            version: CgroupVersion::V2,
        }
    }

    /// Waits for the worker's answer the way the loop does: on its notify.
    fn wait_answer(paths: &MemcgPaths) {
        let notify = paths.answered();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), notify.notified()).await
            })
            .expect("the worker answers");
    }

    #[test]
    fn a_cgroup_made_after_the_start_is_found_off_the_caller_and_an_absent_one_stays_cheap() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("before")).unwrap();
        let ino = |p: &str| fs::metadata(root.path().join(p)).unwrap().ino();
        let mut paths = MemcgPaths::start(hierarchy(root.path())).unwrap();
        assert_eq!(
            paths.lookup(ino("before"), false).as_deref(),
            Some("/before")
        );

        fs::create_dir(root.path().join("after")).unwrap();
        let after = ino("after");
        let absent = u64::MAX - 1;
        // The caller is never made to scan: unknown now, queued.
        assert_eq!(paths.lookup(after, false), None);
        assert!(!paths.ready(&[after, absent]));
        // One scan or two (the worker may have started on the first id).
        while !paths.ready(&[after, absent]) {
            wait_answer(&paths);
        }
        assert_eq!(paths.lookup(after, false).as_deref(), Some("/after"));
        // Not found by a scan made after it was asked for: absent, and
        // asking again queues nothing (no notify, nothing pending).
        assert_eq!(paths.lookup(absent, false), None);
        assert!(lock(&paths.shared).pending.is_empty());
        assert_eq!(paths.dropped(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let root = tempfile::tempdir().unwrap();
        let mut paths = MemcgPaths::start(hierarchy(root.path())).unwrap();
        // More unknown ids than two drains of the queue take (the worker
        // idles at least `RESCAN_MIN_GAP` after a scan), faster than that.
        for id in 1_000_000..1_000_000 + 3 * QUEUE as u64 + 2 {
            paths.lookup(id, false);
        }
        assert!(paths.dropped() >= QUEUE as u64, "{}", paths.dropped());
    }

    #[test]
    fn the_files_of_an_oom_memcg_found_late_are_read_by_the_worker() {
        let root = tempfile::tempdir().unwrap();
        let mut paths = MemcgPaths::start(hierarchy(root.path())).unwrap();
        let dir = root.path().join("late");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("memory.stat"), "anon 4096\nfile 8192\n").unwrap();
        fs::write(dir.join("memory.current"), "12288\n").unwrap();
        let id = fs::metadata(&dir).unwrap().ino();
        assert_eq!(paths.lookup(id, true), None);
        wait_answer(&paths);
        let snapshots = paths.take_snapshots();
        assert_eq!(snapshots.len(), 1);
        let (path, snapshot, _) = &snapshots[0];
        assert_eq!(path, "/late");
        assert_eq!(snapshot.files.usage_bytes, Some(12288));
        assert!(snapshot.stat.contains(&("anon".to_owned(), 4096)));
    }
}
