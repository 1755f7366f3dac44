//! The memory hog used by `oomtrace demo` and the integration tests, and the
//! throw-away cgroup the demo runs it in.
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{
    cgroup::{CgroupVersion, MemoryHierarchy},
    cli::HogArgs,
};

/// Allocates and touches memory 1 MiB at a time; never returns unless `--mib` is set.
pub fn hog(args: &HogArgs) -> Result<()> {
    if let Some(dir) = &args.join {
        fs::write(dir.join("cgroup.procs"), "0")
            .with_context(|| format!("joining cgroup {}", dir.display()))?;
    }
    if let Some(adj) = args.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string()).context("setting oom_score_adj")?;
    }
    let page = page_size();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        if args.mib.is_some_and(|limit| chunks.len() as u64 >= limit) {
            break;
        }
        let mut chunk = vec![0u8; 1 << 20];
        // Touch every page so it is charged now, not at first use.
        for offset in (0..chunk.len()).step_by(page) {
            chunk[offset] = 1;
        }
        std::hint::black_box(&chunk);
        chunks.push(chunk);
    }
    if args.announce {
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&chunks);
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}

/// A memory cgroup created for a demo or test, removed on drop.
pub struct ThrowawayCgroup {
    pub path: PathBuf,
}

impl ThrowawayCgroup {
    /// Creates `<hierarchy>/<name>` with a memory limit and no swap.
    pub fn create(hierarchy: &MemoryHierarchy, name: &str, limit_bytes: u64) -> Result<Self> {
        let path = hierarchy.mount.join(name);
        if path.exists() {
            remove_cgroup(&path);
        }
        fs::create_dir(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
        let cgroup = Self { path };
        cgroup.set_limit(hierarchy.version, limit_bytes)?;
        Ok(cgroup)
    }

    pub fn set_limit(&self, version: CgroupVersion, limit_bytes: u64) -> Result<()> {
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

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    fs::write(dir.join(file), value)
        .with_context(|| format!("writing {value} to {}", dir.join(file).display()))
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
