//! What the risk thread polls, one memcg at a time: the v1 usage threshold
//! eventfd, or the v2 PSI trigger, `memory.events` watch and usage check.
//! A memcg is registered at start, when it appears, and again when its
//! limit is written (its threshold is a fraction of the limit).
use std::{
    fs,
    io::Write,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::{Path, PathBuf},
};

use oomtrace_core::{cgroup::CgroupVersion, model::risk::watch_threshold};

use super::{MAX_REGISTERED, PSI_TRIGGER, inotify::Inotify};

/// What the thread polls.
#[derive(Default)]
pub(super) struct Sources {
    pub registered: Vec<Registered>,
    pub usage: Vec<UsageCheck>,
}

/// A v2 memcg's stand-in for the v1 threshold: its `memory.current`, read
/// every [`super::USAGE_CHECK_INTERVAL`]; a rise past the threshold is a
/// crossing.
pub(super) struct UsageCheck {
    pub memcg: String,
    current: PathBuf,
    threshold: u64,
    above: bool,
}

pub(super) struct Registered {
    pub memcg: String,
    pub dir: PathBuf,
    /// An eventfd (v1, `POLLIN`) or a `memory.pressure` with a trigger (v2,
    /// `POLLPRI`).
    pub fd: OwnedFd,
    pub events: i16,
    /// v1: `memory.usage_in_bytes`, open while the notification is registered.
    _usage: Option<fs::File>,
}

/// Why a memcg with a limit could not be registered.
#[derive(Debug, thiserror::Error)]
pub(super) enum RegisterError {
    #[error("more than {MAX_REGISTERED} memcgs with a limit: {0} is not watched")]
    Full(String),
    #[error("{memcg}: its usage threshold could not be registered: {error}")]
    Threshold {
        memcg: String,
        error: std::io::Error,
    },
}

impl Sources {
    /// Registers (or registers again, after its limit changed) one memcg.
    /// `Ok(true)` when its usage is above its threshold already; `Ok(false)`
    /// too for a memcg without a limit (nothing to watch).
    pub fn register(
        &mut self,
        version: CgroupVersion,
        dir: &Path,
        memcg: &str,
        inotify: Option<&mut Inotify>,
    ) -> Result<bool, RegisterError> {
        self.forget(memcg);
        let limit = match version {
            CgroupVersion::V1 => number(dir, "memory.limit_in_bytes").filter(|&l| l < 1 << 62),
            CgroupVersion::V2 => number(dir, "memory.max")
                .into_iter()
                .chain(number(dir, "memory.high"))
                .min(),
        };
        let Some(limit) = limit else {
            return Ok(false);
        };
        if self.memcgs() >= MAX_REGISTERED {
            return Err(RegisterError::Full(memcg.to_owned()));
        }
        let threshold = watch_threshold(limit);
        match version {
            CgroupVersion::V1 => self.register_threshold(dir, memcg, threshold),
            CgroupVersion::V2 => Ok(self.register_v2(dir, memcg, threshold, inotify)),
        }
        .map_err(|error| RegisterError::Threshold {
            memcg: memcg.to_owned(),
            error,
        })
    }

    /// Drops a memcg's threshold (closing a v1 eventfd unregisters it).
    pub fn forget(&mut self, memcg: &str) {
        self.registered.retain(|r| r.memcg != memcg);
        self.usage.retain(|u| u.memcg != memcg);
    }

    /// Memcgs registered: a v1 memcg has its threshold, a v2 one its usage
    /// check (and a PSI trigger where the kernel has PSI).
    fn memcgs(&self) -> usize {
        self.registered.len().max(self.usage.len())
    }

    /// One v1 memcg's usage threshold notification; true when its usage is
    /// above the threshold already.
    fn register_threshold(
        &mut self,
        dir: &Path,
        memcg: &str,
        threshold: u64,
    ) -> std::io::Result<bool> {
        let usage = fs::File::open(dir.join("memory.usage_in_bytes"))?;
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        let line = format!("{} {} {threshold}", eventfd.as_raw_fd(), usage.as_raw_fd());
        fs::write(dir.join("cgroup.event_control"), line)?;
        self.registered.push(Registered {
            memcg: memcg.to_owned(),
            dir: dir.to_owned(),
            fd: eventfd,
            events: libc::POLLIN,
            _usage: Some(usage),
        });
        Ok(number(dir, "memory.usage_in_bytes").is_some_and(|u| u >= threshold))
    }

    /// One v2 memcg with a `memory.max` or `memory.high`: its PSI trigger and
    /// its `memory.events` watch, whichever the kernel gives (a kernel
    /// without PSI still has `memory.events`), and its usage check; true
    /// when its usage is above the threshold already.
    fn register_v2(
        &mut self,
        dir: &Path,
        memcg: &str,
        threshold: u64,
        inotify: Option<&mut Inotify>,
    ) -> bool {
        if let Ok(fd) = psi_trigger(&dir.join("memory.pressure")) {
            self.registered.push(Registered {
                memcg: memcg.to_owned(),
                dir: dir.to_owned(),
                fd,
                events: libc::POLLPRI,
                _usage: None,
            });
        }
        // A failed watch leaves the trigger and the usage check.
        if let Some(inotify) = inotify {
            let _ = inotify.watch_events(dir, memcg);
        }
        let above = number(dir, "memory.current").is_some_and(|u| u >= threshold);
        self.usage.push(UsageCheck {
            memcg: memcg.to_owned(),
            current: dir.join("memory.current"),
            threshold,
            above,
        });
        above
    }
}

fn number(dir: &Path, name: &str) -> Option<u64> {
    fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
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

/// The v2 memcgs whose usage rose past their threshold since the last
/// check; a memcg removed (its file gone) is dropped.
pub(super) fn check_usage(checks: &mut Vec<UsageCheck>, changed: &mut Vec<String>) {
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
}
