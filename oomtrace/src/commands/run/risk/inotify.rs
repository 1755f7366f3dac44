//! One inotify instance for the risk thread (instances are few per user,
//! watches many): the v2 memcgs' `memory.events` files, whose counts
//! (`high`, `max`) the kernel notifies as a modification, and the scope's
//! cgroup directories, where a new child memcg shows as a created directory
//! and a limit written as a modified `memory.limit_in_bytes`, `memory.max`
//! or `memory.high` (measured on 6.18: a write to a cgroup file notifies its
//! directory's watch; a directory only sees its own children).
use std::{
    collections::HashMap,
    ffi::OsStr,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

/// A limit file: writing it moves the memcg's threshold.
const LIMIT_FILES: &[&str] = &["memory.limit_in_bytes", "memory.max", "memory.high"];

pub(super) struct Inotify {
    fd: OwnedFd,
    watches: HashMap<i32, Watched>,
}

enum Watched {
    /// A v2 memcg's `memory.events`, and the memcg's directory.
    Events(String, PathBuf),
    /// A cgroup directory of the scope.
    Dir(PathBuf),
}

impl Watched {
    fn dir(&self) -> &Path {
        match self {
            Watched::Events(_, dir) | Watched::Dir(dir) => dir,
        }
    }
}

/// What a drain found.
#[derive(Debug, PartialEq)]
pub(super) enum Change {
    /// A watched memcg's `memory.events` counts changed.
    Events(String),
    /// A child cgroup appeared in a watched directory.
    Created(PathBuf),
    /// A limit of the cgroup was written.
    LimitWritten(PathBuf),
    /// A child cgroup was removed.
    Removed(PathBuf),
}

impl Inotify {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: inotify_init1 takes no pointers; a non-negative result is ours.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            watches: HashMap::new(),
        })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Watches a memcg's `memory.events` for modifications.
    pub fn watch_events(&mut self, dir: &Path, memcg: &str) -> std::io::Result<()> {
        let wd = self.add(&dir.join("memory.events"), libc::IN_MODIFY)?;
        self.watches
            .insert(wd, Watched::Events(memcg.to_owned(), dir.to_owned()));
        Ok(())
    }

    /// Watches a cgroup directory for children created and removed and for
    /// its limit files written.
    pub fn watch_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mask = libc::IN_CREATE | libc::IN_DELETE | libc::IN_MODIFY | libc::IN_ONLYDIR;
        let wd = self.add(dir, mask)?;
        self.watches.insert(wd, Watched::Dir(dir.to_owned()));
        Ok(())
    }

    /// Directories watched.
    pub fn dirs(&self) -> usize {
        self.watches
            .values()
            .filter(|w| matches!(w, Watched::Dir(_)))
            .count()
    }

    /// Removes the watches of a removed cgroup. The kernel does not: a
    /// cgroup's directory and files raise no `IN_DELETE_SELF`, and a watch
    /// holds their inode, so each container gone would leave one behind
    /// (measured on 6.18, in `/proc/PID/fdinfo`).
    pub fn forget_dir(&mut self, dir: &Path) {
        let fd = self.fd.as_raw_fd();
        self.watches.retain(|&wd, w| {
            let keep = !w.dir().starts_with(dir);
            if !keep {
                // SAFETY: removes one watch of our own instance; no pointers.
                unsafe { libc::inotify_rm_watch(fd, wd) };
            }
            keep
        });
    }

    fn add(&mut self, path: &Path, mask: u32) -> std::io::Result<i32> {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Drains the pending events into changes; forgets the watches the
    /// kernel dropped (`IN_IGNORED`).
    pub fn drain(&mut self, changes: &mut Vec<Change>) {
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
                let name_end = (at + header + event.len as usize).min(n as usize);
                let name = &buf[at + header..name_end];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                at += header + event.len as usize;
                self.change(&event, OsStr::from_bytes(name), changes);
            }
        }
    }

    fn change(&mut self, event: &libc::inotify_event, name: &OsStr, changes: &mut Vec<Change>) {
        if event.mask & libc::IN_IGNORED != 0 {
            self.watches.remove(&event.wd);
            return;
        }
        let is_dir = event.mask & libc::IN_ISDIR != 0;
        match self.watches.get(&event.wd) {
            Some(Watched::Events(memcg, _)) => changes.push(Change::Events(memcg.clone())),
            Some(Watched::Dir(dir)) if is_dir && event.mask & libc::IN_CREATE != 0 => {
                changes.push(Change::Created(dir.join(name)));
            }
            Some(Watched::Dir(dir)) if is_dir && event.mask & libc::IN_DELETE != 0 => {
                changes.push(Change::Removed(dir.join(name)));
            }
            Some(Watched::Dir(dir))
                if event.mask & libc::IN_MODIFY != 0
                    && LIMIT_FILES.iter().any(|f| name == OsStr::new(f)) =>
            {
                changes.push(Change::LimitWritten(dir.clone()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn drained(inotify: &mut Inotify) -> Vec<Change> {
        let mut fds = [libc::pollfd {
            fd: inotify.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd; the events are queued already, 5 s bounds a failure.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
        assert_eq!(n, 1, "no inotify event");
        let mut changes = Vec::new();
        inotify.drain(&mut changes);
        changes
    }

    /// A modification of a watched file names its memcg.
    #[test]
    fn a_changed_events_file_names_its_memcg() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        fs::write(&file, "max 0\n").unwrap();
        let mut inotify = Inotify::new().unwrap();
        inotify.watch_events(dir.path(), "/leaker").unwrap();
        fs::write(&file, "max 1\n").unwrap();
        assert_eq!(drained(&mut inotify), [Change::Events("/leaker".into())]);
    }

    /// A watched directory names a child created and removed and a limit
    /// written, and nothing else written in it.
    #[test]
    fn a_watched_directory_names_children_and_limits() {
        let root = tempfile::tempdir().unwrap();
        let mut inotify = Inotify::new().unwrap();
        inotify.watch_dir(root.path()).unwrap();
        let child = root.path().join("web");
        fs::create_dir(&child).unwrap();
        fs::write(root.path().join("cgroup.procs"), "1\n").unwrap();
        fs::write(root.path().join("memory.max"), "1000\n").unwrap();
        fs::remove_dir(&child).unwrap();
        assert_eq!(
            drained(&mut inotify),
            [
                Change::Created(child.clone()),
                Change::LimitWritten(root.path().to_owned()),
                Change::Removed(child),
            ]
        );
    }
}
