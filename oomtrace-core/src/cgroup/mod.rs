//! The memory cgroup hierarchy: where it is mounted (v1 or v2), turning
//! `--cgroup` paths into cgroup ids for the in-kernel filter, cgroup ids back
//! into paths, and reading a memcg's own files.
pub mod container;
pub mod kubernetes;
pub mod process;
pub mod recent;
pub mod runtimes;
pub mod state_file;
pub mod tasks;
pub mod throwaway;

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The filesystem type of `path` (statfs `f_type`), following symlinks.
fn fs_magic(path: &Path) -> Option<i64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The hierarchy the memory controller is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryHierarchy {
    pub mount: PathBuf,
    pub version: CgroupVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no memory cgroup hierarchy is mounted (looked for cgroup v1 'memory' and cgroup2 with the memory controller in /proc/self/mountinfo)"
    )]
    NoMemoryHierarchy,
    #[error(
        "no memory cgroup hierarchy under {root} (looked for sys/fs/cgroup/memory, cgroup v1, and sys/fs/cgroup with the memory controller, cgroup v2)"
    )]
    NoMemoryHierarchyUnder { root: PathBuf },
    #[error("cannot read /proc/self/mountinfo: {0}")]
    Mountinfo(std::io::Error),
    #[error("cgroup {path}: does not exist")]
    Missing { path: PathBuf },
    #[error("cgroup {path}: not a directory")]
    NotDirectory { path: PathBuf },
    #[error("{path} is not in the memory cgroup hierarchy (mounted at {mount}, cgroup {version})")]
    OutsideHierarchy {
        path: PathBuf,
        mount: PathBuf,
        version: &'static str,
    },
    #[error("{path} is not a memory cgroup (no memory.stat in it)")]
    NotMemcg { path: PathBuf },
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MemoryHierarchy {
    /// Finds the memory controller's hierarchy from `/proc/self/mountinfo`:
    /// a v1 `memory` mount wins (it owns the controller when both exist),
    /// else a cgroup2 mount whose root lists `memory` in cgroup.controllers.
    pub fn detect() -> Result<Self, CgroupError> {
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
        Self::from_mountinfo(&mountinfo, |mount| {
            fs::read_to_string(mount.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().any(|c| c == "memory"))
                .unwrap_or(false)
        })
    }

    /// The hierarchy as seen under `host_root` (`--host-root`): `/` is
    /// [`detect`](Self::detect); else `<root>/sys/fs/cgroup/memory` (v1) or
    /// `<root>/sys/fs/cgroup` with the memory controller (v2), checked to be
    /// cgroup filesystems. Canonicalized, so that a bind mount or a symlink
    /// to the host's hierarchy both work.
    pub fn detect_under(host_root: &Path) -> Result<Self, CgroupError> {
        if host_root == Path::new("/") {
            return Self::detect();
        }
        let base = host_root.join("sys/fs/cgroup");
        let v1 = base.join("memory");
        if fs_magic(&v1) == Some(CGROUP_SUPER_MAGIC) && v1.join("memory.stat").is_file() {
            return Self::canonical(v1, CgroupVersion::V1);
        }
        let controllers = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        if fs_magic(&base) == Some(CGROUP2_SUPER_MAGIC)
            && controllers.split_whitespace().any(|c| c == "memory")
        {
            return Self::canonical(base, CgroupVersion::V2);
        }
        Err(CgroupError::NoMemoryHierarchyUnder {
            root: host_root.to_owned(),
        })
    }

    fn canonical(mount: PathBuf, version: CgroupVersion) -> Result<Self, CgroupError> {
        let mount = fs::canonicalize(&mount).map_err(|source| CgroupError::Io {
            path: mount,
            source,
        })?;
        Ok(Self { mount, version })
    }

    fn from_mountinfo(
        mountinfo: &str,
        v2_has_memory: impl Fn(&Path) -> bool,
    ) -> Result<Self, CgroupError> {
        let mut v2 = None;
        for line in mountinfo.lines() {
            // "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount) = left.split(' ').nth(4) else {
                continue;
            };
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let options = right.nth(1).unwrap_or_default();
            let mount = PathBuf::from(unescape_mountinfo(mount));
            if fstype == "cgroup" && options.split(',').any(|o| o == "memory") {
                return Ok(Self {
                    mount,
                    version: CgroupVersion::V1,
                });
            }
            if fstype == "cgroup2" && v2.is_none() && v2_has_memory(&mount) {
                v2 = Some(Self {
                    mount,
                    version: CgroupVersion::V2,
                });
            }
        }
        v2.ok_or(CgroupError::NoMemoryHierarchy)
    }

    /// Path of `abs` relative to the hierarchy, as the kernel prints it ("/a/b", "/").
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rest = abs.strip_prefix(&self.mount).ok()?;
        Some(format!("/{}", rest.display()).replace("//", "/"))
    }

    pub fn absolute(&self, relative: &str) -> PathBuf {
        self.mount.join(relative.trim_start_matches('/'))
    }

    /// Checks a `--cgroup` argument and returns it with its cgroup id.
    pub fn scope(&self, path: &Path) -> Result<ScopeCgroup, CgroupError> {
        let meta = fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CgroupError::Missing {
                path: path.to_owned(),
            },
            _ => CgroupError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        if !meta.is_dir() {
            return Err(CgroupError::NotDirectory {
                path: path.to_owned(),
            });
        }
        let abs = fs::canonicalize(path).map_err(|source| CgroupError::Io {
            path: path.to_owned(),
            source,
        })?;
        let relative = self
            .relative(&abs)
            .ok_or_else(|| CgroupError::OutsideHierarchy {
                path: abs.clone(),
                mount: self.mount.clone(),
                version: match self.version {
                    CgroupVersion::V1 => "v1",
                    CgroupVersion::V2 => "v2",
                },
            })?;
        if !abs.join("memory.stat").exists() {
            return Err(CgroupError::NotMemcg { path: abs });
        }
        Ok(ScopeCgroup {
            id: meta.ino(),
            relative,
            path: abs,
        })
    }

    /// Reads the memcg's limit, usage and swap from its files (None where a
    /// file is absent, e.g. the cgroup is gone).
    pub fn read_counters(&self, relative: &str) -> MemcgFiles {
        let dir = self.absolute(relative);
        let read = |name: &str| -> Option<String> {
            fs::read_to_string(dir.join(name))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let number = |name: &str| read(name).and_then(|s| parse_limit(&s));
        match self.version {
            CgroupVersion::V1 => MemcgFiles {
                limit_bytes: number("memory.limit_in_bytes"),
                usage_bytes: number("memory.usage_in_bytes"),
                swap_limit_bytes: number("memory.memsw.limit_in_bytes"),
                swappiness: number("memory.swappiness"),
            },
            CgroupVersion::V2 => MemcgFiles {
                limit_bytes: number("memory.max"),
                usage_bytes: number("memory.current"),
                swap_limit_bytes: number("memory.swap.max"),
                swappiness: number("memory.swappiness"),
            },
        }
    }
}

/// The memcg's state read from its files while an OOM is in progress (the
/// memcg may be gone seconds later).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemcgSnapshot {
    pub files: MemcgFiles,
    /// Swap used by the memcg (v2 `memory.swap.current`; v1 memsw minus memory usage).
    pub swap_usage_bytes: Option<u64>,
    /// `memory.stat`, as the file has it (bytes; v1 `total_*` keys are hierarchical).
    pub stat: Vec<(String, u64)>,
    /// v1 `memory.kmem.usage_in_bytes`.
    pub kmem_usage_bytes: Option<u64>,
}

impl MemoryHierarchy {
    pub fn snapshot(&self, relative: &str) -> Option<MemcgSnapshot> {
        let dir = self.absolute(relative);
        let stat_text = fs::read_to_string(dir.join("memory.stat")).ok()?;
        let stat = stat_text
            .lines()
            .filter_map(|l| {
                let (key, value) = l.split_once(' ')?;
                Some((key.to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        let number = |name: &str| -> Option<u64> {
            fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|s| parse_limit(s.trim()))
        };
        let files = self.read_counters(relative);
        let (swap_usage_bytes, kmem_usage_bytes) = match self.version {
            CgroupVersion::V1 => (
                number("memory.memsw.usage_in_bytes")
                    .zip(files.usage_bytes)
                    .map(|(memsw, memory)| memsw.saturating_sub(memory)),
                number("memory.kmem.usage_in_bytes"),
            ),
            CgroupVersion::V2 => (number("memory.swap.current"), None),
        };
        Some(MemcgSnapshot {
            files,
            swap_usage_bytes,
            stat,
            kmem_usage_bytes,
        })
    }
}

/// v2 writes "max" for no limit; v1 writes a huge number.
fn parse_limit(text: &str) -> Option<u64> {
    if text == "max" {
        Some(u64::MAX)
    } else {
        text.parse().ok()
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|octal| u8::from_str_radix(octal, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemcgFiles {
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// v1: memory+swap limit; v2: swap limit.
    pub swap_limit_bytes: Option<u64>,
    pub swappiness: Option<u64>,
}

/// A cgroup given with `--cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCgroup {
    pub path: PathBuf,
    /// As the kernel prints it, relative to the hierarchy root.
    pub relative: String,
    /// cgroup id = inode number of the directory = kernfs node id.
    pub id: u64,
}

impl ScopeCgroup {
    /// Whether a path the kernel printed (relative) is this cgroup or below it.
    pub fn contains(&self, relative: &str) -> bool {
        relative == self.relative
            || self.relative == "/"
            || relative
                .strip_prefix(&self.relative)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a cgroup id resolves to, as far as the scans so far tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdLookup {
    Path(String),
    /// A scan made after the id was asked for did not find it (gone, too
    /// deep, or left out of the cache): asking again costs nothing.
    Absent,
    /// No scan since it was asked for.
    Unknown,
}

/// Cgroup ids → paths, filled by scans of the hierarchy ([`scan`], I/O kept
/// apart so that the merge and its bounds are tested alone); ids a scan did
/// not find are remembered as absent, so an id that stays unknown costs no
/// further scan.
#[derive(Debug)]
pub struct IdCache {
    cache: HashMap<u64, String>,
    /// Estimated heap bytes of `cache` ([`entry_bytes`]), within `budget`.
    bytes: usize,
    budget: usize,
    absent: HashSet<u64>,
    /// Cgroups a scan found but left out of the cache for lack of room
    /// (their ids resolve to no path).
    pub uncached: u64,
}

fn entry_bytes(path: &str) -> usize {
    std::mem::size_of::<(u64, String)>() + crate::base::bounds::text(path)
}

/// The least idle time between two full rescans, whoever asks: a storm of
/// new ids shares scans instead of making one each.
pub const RESCAN_MIN_GAP: Duration = Duration::from_millis(10);

/// How long to wait before a rescan asked for after the last one started,
/// `since_last_end` after that one ended: at least as long as it took (a
/// large hierarchy keeps the scans to half of one thread) and at least
/// [`RESCAN_MIN_GAP`]; no longer, so a new cgroup's first lookup is
/// answered within about two scans.
pub fn rescan_delay(last_scan_took: Duration, since_last_end: Duration) -> Duration {
    last_scan_took
        .max(RESCAN_MIN_GAP)
        .saturating_sub(since_last_end)
}
/// Bound on the cache: a node running for months creates millions of cgroups.
const CACHE_MAX: usize = crate::base::bounds::MEMCG_PATHS;
/// Bound on the ids remembered as absent (cleared past it: asking again
/// costs one more scan, nothing is lost).
const ABSENT_MAX: usize = 4096;
const MAX_WALK_DEPTH: usize = 32;

impl Default for IdCache {
    fn default() -> Self {
        Self::with_budget(CACHE_MAX)
    }
}

impl IdCache {
    fn with_budget(budget: usize) -> Self {
        Self {
            cache: HashMap::new(),
            bytes: 0,
            budget,
            absent: HashSet::new(),
            uncached: 0,
        }
    }

    pub fn lookup(&self, id: u64) -> IdLookup {
        if id == 0 {
            return IdLookup::Absent;
        }
        match self.cache.get(&id) {
            Some(path) => IdLookup::Path(path.clone()),
            None if self.absent.contains(&id) => IdLookup::Absent,
            None => IdLookup::Unknown,
        }
    }

    /// Takes in a scan made after `asked` were asked for: every cgroup it
    /// found (within the byte budget), and the asked ids it did not find as
    /// absent.
    pub fn merge(&mut self, scan: Vec<(u64, String)>, asked: &[u64]) {
        // Past the budget, start over: the gone cgroups go, the scan re-adds the rest.
        if self.bytes > self.budget * 3 / 4 {
            self.cache.clear();
            self.bytes = 0;
        }
        for (id, relative) in scan {
            if self.cache.contains_key(&id) {
                continue;
            }
            let need = entry_bytes(&relative);
            if self.bytes + need > self.budget {
                self.uncached += 1;
            } else {
                self.bytes += need;
                self.absent.remove(&id);
                self.cache.insert(id, relative);
            }
        }
        for &id in asked {
            if !self.cache.contains_key(&id) {
                if self.absent.len() >= ABSENT_MAX {
                    self.absent.clear();
                }
                self.absent.insert(id);
            }
        }
    }
}

/// `root` and the directories below it, parents first, at most `max`.
pub fn subtree(root: PathBuf, max: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        if found.len() >= max {
            break;
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        found.push(dir);
    }
    found
}

/// Every cgroup of the hierarchy (to [`MAX_WALK_DEPTH`]) as (id, path
/// relative to the root): one walk of the tree, the cost [`IdCache`] and
/// its callers keep rare.
pub fn scan(hierarchy: &MemoryHierarchy) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let mut stack = vec![(hierarchy.mount.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        if let Some(relative) = hierarchy.relative(&dir) {
            found.push((meta.ino(), relative));
        }
        if depth >= MAX_WALK_DEPTH {
            continue;
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
25 1 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:14 - cgroup cgroup rw,cpu
37 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory
38 25 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_rescan_waits_as_long_as_the_last_scan_took_and_no_longer() {
        let took = RESCAN_MIN_GAP * 3;
        // Asked right after a slow scan: idle as long as it took.
        assert_eq!(rescan_delay(took, Duration::ZERO), took);
        assert_eq!(rescan_delay(took, took / 3), took - took / 3);
        // Asked long after: at once.
        assert_eq!(rescan_delay(took, took), Duration::ZERO);
        assert_eq!(rescan_delay(took, took * 10), Duration::ZERO);
        // A quick scan still leaves the least gap, then none.
        let quick = RESCAN_MIN_GAP / 10;
        assert_eq!(rescan_delay(quick, Duration::ZERO), RESCAN_MIN_GAP);
        assert_eq!(rescan_delay(quick, RESCAN_MIN_GAP), Duration::ZERO);
    }

    #[test]
    fn v1_memory_mount_wins_over_cgroup2() {
        let h = MemoryHierarchy::from_mountinfo(MOUNTINFO_V1, |_| true).unwrap();
        assert_eq!(h.mount, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(h.version, CgroupVersion::V1);
    }

    #[test]
    fn cgroup2_needs_the_memory_controller() {
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = MemoryHierarchy::from_mountinfo(v2, |_| true).unwrap();
        assert_eq!(h.version, CgroupVersion::V2);
        assert!(matches!(
            MemoryHierarchy::from_mountinfo(v2, |_| false),
            Err(CgroupError::NoMemoryHierarchy)
        ));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
    }

    #[test]
    fn relative_paths_match_the_kernel_format() {
        let h = MemoryHierarchy {
            mount: "/sys/fs/cgroup/memory".into(),
            version: CgroupVersion::V1,
        };
        assert_eq!(h.relative(Path::new("/sys/fs/cgroup/memory")).unwrap(), "/");
        assert_eq!(
            h.relative(Path::new("/sys/fs/cgroup/memory/a/b")).unwrap(),
            "/a/b"
        );
        assert_eq!(h.relative(Path::new("/sys/fs/cgroup/unified/a")), None);
    }

    #[test]
    fn scope_contains_descendants_only() {
        let scope = ScopeCgroup {
            path: "/x".into(),
            relative: "/fix-b".into(),
            id: 1,
        };
        assert!(scope.contains("/fix-b"));
        assert!(scope.contains("/fix-b/child"));
        assert!(!scope.contains("/fix-bb"));
        assert!(!scope.contains("/"));
    }

    #[test]
    fn the_id_cache_is_bounded_in_bytes_and_counts_what_it_left_out() {
        let root = std::env::temp_dir().join(format!("oomtrace-ids-{}", std::process::id()));
        for child in ["a", "b", "c", "d"] {
            fs::create_dir_all(root.join(child)).unwrap();
        }
        let ino = |p: &str| fs::metadata(root.join(p)).unwrap().ino();
        let hierarchy = MemoryHierarchy {
            mount: root.clone(),
            version: CgroupVersion::V2,
        };
        let found = scan(&hierarchy);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found.contains(&(ino("a"), "/a".to_owned())));
        // Room for the root and two children.
        let mut ids = IdCache::with_budget(entry_bytes("/") + 2 * entry_bytes("/a"));
        ids.merge(found, &[ino("a")]);
        assert!(ids.bytes <= ids.budget);
        assert_eq!(ids.cache.len(), 3);
        assert_eq!(ids.uncached, 2, "the scan's leftovers are counted");
        let sum: usize = ids.cache.values().map(|p| entry_bytes(p)).sum();
        assert_eq!(sum, ids.bytes);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_id_no_scan_found_is_absent_until_a_scan_finds_it() {
        let mut ids = IdCache::default();
        assert_eq!(ids.lookup(7), IdLookup::Unknown);
        assert_eq!(ids.lookup(0), IdLookup::Absent, "0 is no cgroup");
        ids.merge(vec![(1, "/".into()), (5, "/a".into())], &[5, 7]);
        assert_eq!(ids.lookup(5), IdLookup::Path("/a".into()));
        assert_eq!(ids.lookup(7), IdLookup::Absent);
        assert_eq!(ids.lookup(8), IdLookup::Unknown, "never asked");
        // A later scan that finds it (a cgroup made since) wins.
        ids.merge(vec![(7, "/b".into())], &[7]);
        assert_eq!(ids.lookup(7), IdLookup::Path("/b".into()));
        // The absent set is bounded.
        let many: Vec<u64> = (1000..1000 + ABSENT_MAX as u64 + 10).collect();
        ids.merge(Vec::new(), &many);
        assert!(ids.absent.len() <= ABSENT_MAX);
    }

    #[test]
    fn limits_parse_max_and_numbers() {
        assert_eq!(parse_limit("max"), Some(u64::MAX));
        assert_eq!(parse_limit("67108864"), Some(67108864));
        assert_eq!(parse_limit("junk"), None);
    }
}
