//! The risk thread: `poll()` on every memcg's source and on the inotify
//! instance. A signalled source is a crossing (either way), handed to the
//! loop; a directory created in the scope is watched and its memcg
//! registered; a limit written registers its memcg again. Handing over is
//! paced to [`MIN_WAKE_INTERVAL`].
use std::{
    collections::HashSet,
    os::fd::AsRawFd,
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use oomtrace_core::cgroup::{MemoryHierarchy, subtree};
use tokio::sync::Notify;

use super::{
    MAX_DIRS, MIN_WAKE_INTERVAL, USAGE_CHECK_INTERVAL,
    inotify::{Change, Inotify},
    sources::{Sources, check_usage},
};

/// What the thread hands the loop.
#[derive(Default)]
pub(super) struct Shared {
    pub crossed: Mutex<Vec<String>>,
    pub notices: Mutex<Vec<String>>,
    pub notify: Arc<Notify>,
}

pub(super) struct Watcher {
    hierarchy: MemoryHierarchy,
    sources: Sources,
    inotify: Option<Inotify>,
    shared: Arc<Shared>,
    /// The directory bound was reached (said once).
    dirs_full: bool,
    /// Memcgs and directories whose failure was said ([`Self::notice_once`]),
    /// bounded like the directories.
    failed: HashSet<String>,
}

impl Watcher {
    pub fn new(hierarchy: MemoryHierarchy, shared: Arc<Shared>) -> Self {
        let inotify = Inotify::new();
        if let Err(error) = &inotify {
            shared.notices.lock().unwrap().push(format!(
                "early warning: no inotify instance ({error}): memcgs created later are not watched"
            ));
        }
        Self {
            hierarchy,
            sources: Sources::default(),
            inotify: inotify.ok(),
            shared,
            dirs_full: false,
            failed: HashSet::new(),
        }
    }

    /// Whether anything can ever signal.
    pub fn watching(&self) -> bool {
        !self.sources.registered.is_empty()
            || !self.sources.usage.is_empty()
            || self.inotify.is_some()
    }

    /// Watches a directory and those below it, and registers their memcgs;
    /// returns those above their threshold already. Watching comes before
    /// reading: a child or a limit written in between is seen by the next
    /// drain.
    pub fn add_subtree(&mut self, root: &Path) -> Vec<String> {
        let mut above = Vec::new();
        for dir in subtree(root.to_owned(), MAX_DIRS) {
            self.watch_dir(&dir);
            above.extend(self.register(&dir));
        }
        above
    }

    fn watch_dir(&mut self, dir: &Path) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        if inotify.dirs() >= MAX_DIRS {
            if !std::mem::replace(&mut self.dirs_full, true) {
                self.notice(format!(
                    "early warning: more than {MAX_DIRS} cgroups in scope: those created beyond are not watched"
                ));
            }
            return;
        }
        match inotify.watch_dir(dir) {
            Ok(()) => {}
            // Removed meanwhile: nothing to watch.
            Err(_) if !dir.exists() => {}
            // Out of watches (fs.inotify.max_user_watches), for one.
            Err(error) => {
                let line = format!(
                    "early warning: cannot watch {} ({error}): memcgs created in it are not watched",
                    dir.display()
                );
                self.notice_once(dir.display().to_string(), line);
            }
        }
    }

    /// Registers a directory's memcg; returns it when its usage is above
    /// its threshold already.
    fn register(&mut self, dir: &Path) -> Option<String> {
        let memcg = self.hierarchy.relative(dir)?;
        let version = self.hierarchy.version;
        match self
            .sources
            .register(version, dir, &memcg, self.inotify.as_mut())
        {
            Ok(above) => above.then_some(memcg),
            // Gone before it could be read: not a failure.
            Err(_) if !dir.exists() => None,
            Err(error) => {
                self.notice_once(memcg, format!("early warning: {error}"));
                None
            }
        }
    }

    /// A failure said once per memcg or directory: some agents rewrite
    /// limits periodically.
    fn notice_once(&mut self, key: String, line: String) {
        if self.failed.len() < MAX_DIRS && self.failed.insert(key) {
            self.notice(line);
        }
    }

    fn notice(&mut self, line: String) {
        self.shared.notices.lock().unwrap().push(line);
        self.shared.notify.notify_one();
    }

    /// Polls until nothing is left to poll.
    pub fn run(mut self) {
        let mut last_wake: Option<Instant> = None;
        let mut next_check = Instant::now() + USAGE_CHECK_INTERVAL;
        while self.watching() {
            // A stalling memcg must not starve the others' usage checks.
            let timeout = if self.sources.usage.is_empty() {
                -1
            } else {
                let left = next_check.saturating_duration_since(Instant::now());
                left.as_millis() as libc::c_int
            };
            let mut fds = self.pollfds();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            let mut crossed = Vec::new();
            if !self.sources.usage.is_empty() && Instant::now() >= next_check {
                check_usage(&mut self.sources.usage, &mut crossed);
                next_check = Instant::now() + USAGE_CHECK_INTERVAL;
            }
            if n > 0 {
                self.signalled(&fds, &mut crossed);
            }
            crossed.sort();
            crossed.dedup();
            if crossed.is_empty() {
                continue;
            }
            if let Some(last) = last_wake {
                std::thread::sleep(MIN_WAKE_INTERVAL.saturating_sub(last.elapsed()));
            }
            self.shared.crossed.lock().unwrap().extend(crossed);
            last_wake = Some(Instant::now());
            self.shared.notify.notify_one();
        }
    }

    /// The sources in order, then the inotify instance.
    fn pollfds(&self) -> Vec<libc::pollfd> {
        self.sources
            .registered
            .iter()
            .map(|r| (r.fd.as_raw_fd(), r.events))
            .chain(self.inotify.as_ref().map(|i| (i.raw_fd(), libc::POLLIN)))
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect()
    }

    /// The memcgs whose source signalled; a memcg removed signals its
    /// source too (then the model finds it gone), and is dropped here.
    fn signalled(&mut self, fds: &[libc::pollfd], crossed: &mut Vec<String>) {
        let mut gone = Vec::new();
        for (r, fd) in self.sources.registered.iter().zip(fds) {
            if fd.revents == 0 {
                continue;
            }
            if r.events == libc::POLLIN {
                let mut count = [0u8; 8];
                // SAFETY: reads 8 bytes into `count`, the size of an eventfd counter.
                unsafe { libc::read(fd.fd, count.as_mut_ptr().cast(), 8) };
            }
            crossed.push(r.memcg.clone());
            let broken = fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
            if broken || !r.dir.exists() {
                gone.push(r.memcg.clone());
            }
        }
        for memcg in gone {
            self.sources.forget(&memcg);
        }
        let inotify_ready =
            fds.len() > self.sources.registered.len() && fds.last().is_some_and(|f| f.revents != 0);
        let mut changes = Vec::new();
        if let Some(inotify) = self.inotify.as_mut().filter(|_| inotify_ready) {
            inotify.drain(&mut changes);
        }
        for change in changes {
            self.apply(change, crossed);
        }
    }

    fn apply(&mut self, change: Change, crossed: &mut Vec<String>) {
        match change {
            Change::Events(memcg) => crossed.push(memcg),
            Change::Created(dir) => crossed.extend(self.add_subtree(&dir)),
            Change::LimitWritten(dir) => crossed.extend(self.register(&dir)),
            Change::Removed(dir) => self.forget_subtree(&dir),
        }
    }

    fn forget_subtree(&mut self, dir: &Path) {
        if let Some(inotify) = self.inotify.as_mut() {
            inotify.forget_dir(dir);
        }
        if let Some(memcg) = self.hierarchy.relative(dir) {
            self.sources.forget(&memcg);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use oomtrace_core::cgroup::CgroupVersion;

    use super::{super::MAX_REGISTERED, *};

    /// A v2 tree in a temporary directory (plain files stand in for the
    /// cgroup files; the kernel's part is tested by the host test and the
    /// VM scenario `v2-warn`).
    fn tree() -> (tempfile::TempDir, Watcher) {
        let root = tempfile::tempdir().unwrap();
        let hierarchy = MemoryHierarchy {
            mount: root.path().to_owned(),
            version: CgroupVersion::V2,
        };
        let watcher = Watcher::new(hierarchy, Arc::default());
        (root, watcher)
    }

    fn memcg(dir: &Path, max: &str, current: u64) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("memory.current"), current.to_string()).unwrap();
        fs::write(dir.join("memory.max"), max).unwrap();
    }

    /// Drains what the directories' watches saw, as the thread does.
    fn settle(watcher: &mut Watcher) -> Vec<String> {
        let mut changes = Vec::new();
        watcher.inotify.as_mut().unwrap().drain(&mut changes);
        let mut crossed = Vec::new();
        for change in changes {
            watcher.apply(change, &mut crossed);
        }
        crossed
    }

    fn checked(watcher: &Watcher) -> Vec<&str> {
        let mut names: Vec<&str> = watcher
            .sources
            .usage
            .iter()
            .map(|u| u.memcg.as_str())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn memcgs_created_or_limited_after_start_are_registered() {
        let (root, mut watcher) = tree();
        memcg(&root.path().join("pods"), "max", 0);
        memcg(&root.path().join("pods/old"), "1000", 500);
        assert_eq!(watcher.add_subtree(root.path()), ["/pods/old"]);
        assert_eq!(checked(&watcher), ["/pods/old"]);

        // A runtime makes the directory, then writes the limit.
        memcg(&root.path().join("pods/new"), "max", 900);
        assert!(settle(&mut watcher).is_empty());
        fs::write(root.path().join("pods/new/memory.max"), "1000").unwrap();
        assert_eq!(settle(&mut watcher), ["/pods/new"]);
        assert_eq!(checked(&watcher), ["/pods/new", "/pods/old"]);

        // A limit raised moves the threshold: registered once, not above it.
        fs::write(root.path().join("pods/new/memory.max"), "100000").unwrap();
        assert!(settle(&mut watcher).is_empty());
        assert_eq!(checked(&watcher), ["/pods/new", "/pods/old"]);

        fs::remove_dir_all(root.path().join("pods/old")).unwrap();
        settle(&mut watcher);
        assert_eq!(checked(&watcher), ["/pods/new"]);
        assert!(watcher.shared.notices.lock().unwrap().is_empty());
    }

    #[test]
    fn memcgs_beyond_the_bound_are_said_once() {
        let (root, mut watcher) = tree();
        for i in 0..MAX_REGISTERED {
            memcg(&root.path().join(format!("m{i}")), "1000", 0);
        }
        watcher.add_subtree(root.path());
        memcg(&root.path().join("late"), "1000", 0);
        settle(&mut watcher);
        fs::write(root.path().join("late/memory.max"), "2000").unwrap();
        settle(&mut watcher);
        let notices = watcher.shared.notices.lock().unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("/late is not watched"), "{notices:?}");
    }
}
