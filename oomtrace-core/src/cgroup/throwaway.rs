//! A memory cgroup made for the demo or a test, removed on drop.
use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{CgroupVersion, MemoryHierarchy};

/// A memory cgroup created for a demo or test, removed on drop.
pub struct ThrowawayCgroup {
    pub path: PathBuf,
}

impl ThrowawayCgroup {
    /// Creates `<hierarchy>/<name>` with a memory limit and no swap.
    pub fn create(hierarchy: &MemoryHierarchy, name: &str, limit_bytes: u64) -> io::Result<Self> {
        let path = hierarchy.mount.join(name);
        if path.exists() {
            remove_cgroup(&path);
        }
        fs::create_dir(&path).map_err(|e| with_path(e, "creating cgroup", &path))?;
        let cgroup = Self { path };
        cgroup.set_limit(hierarchy.version, limit_bytes)?;
        Ok(cgroup)
    }

    pub fn set_limit(&self, version: CgroupVersion, limit_bytes: u64) -> io::Result<()> {
        let limit = limit_bytes.to_string();
        match version {
            CgroupVersion::V1 => {
                write(&self.path, "memory.limit_in_bytes", &limit)?;
                // Keep the demo from swapping where memsw accounting exists.
                let memsw = self.path.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&self.path, "memory.memsw.limit_in_bytes", &limit)?;
                }
            }
            CgroupVersion::V2 => {
                write(&self.path, "memory.max", &limit)?;
                if self.path.join("memory.swap.max").exists() {
                    write(&self.path, "memory.swap.max", "0")?;
                }
            }
        }
        Ok(())
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|e| with_path(e, &format!("writing {value} to"), &path))
}

impl Drop for ThrowawayCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.path);
    }
}

/// Kills what is left in the cgroup (and below) and removes it, deepest first.
pub fn remove_cgroup(path: &Path) {
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    for _ in 0..100 {
        let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill with a pid read from the cgroup; at worst ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if fs::remove_dir(path).is_ok() || !path.exists() {
            return;
        }
        // Tasks take a moment to leave after SIGKILL; rmdir fails with EBUSY until then.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The error with what was being done, and where.
fn with_path(error: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{doing} {}: {error}", path.display()))
}
