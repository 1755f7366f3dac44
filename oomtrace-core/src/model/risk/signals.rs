//! One reading of a memcg's counters: what the rule weighs.
use crate::cgroup::CgroupVersion;

/// A memcg's counters at one moment (`CLOCK_BOOTTIME` ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemcgSample {
    pub boot_ms: u64,
    /// `memory.usage_in_bytes` (v1), `memory.current` (v2).
    pub usage_bytes: u64,
    /// `memory.limit_in_bytes` / `memory.max`; `None`: no limit.
    pub limit_bytes: Option<u64>,
    /// `memory.high` (v2); `None`: none set.
    pub high_bytes: Option<u64>,
    pub stat: StatFields,
    /// `memory.failcnt` (v1), `max` of `memory.events` (v2).
    pub failcnt: Option<u64>,
    /// The in-kernel reclaim statistics: passes, and passes that fell short.
    pub reclaim_passes: Option<u64>,
    pub short_reclaim_passes: Option<u64>,
}

impl MemcgSample {
    /// What reclaim cannot free without swap: anon, shmem, kernel memory.
    pub fn unreclaimable_bytes(&self) -> u64 {
        self.stat
            .anon_bytes
            .saturating_add(self.stat.shmem_bytes)
            .saturating_add(self.stat.kernel_bytes)
    }

    /// Page cache reclaim can still free (shmem excluded).
    pub fn reclaimable_bytes(&self) -> u64 {
        self.stat.file_bytes
    }
}

/// The lines of `memory.stat` the rule uses, in bytes, hierarchical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFields {
    pub anon_bytes: u64,
    pub shmem_bytes: u64,
    /// Kernel memory (v2 `kernel`; v1 does not say it in `memory.stat`).
    pub kernel_bytes: u64,
    /// Page cache without shmem.
    pub file_bytes: u64,
    pub inactive_file_bytes: u64,
}

/// Reads `memory.stat`: v1's `total_*` lines (this memcg and its
/// descendants; `total_cache` counts shmem, which is taken out of the file
/// part), or v2's (already hierarchical).
pub fn parse_stat(text: &str, version: CgroupVersion) -> StatFields {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(key, _)| *key == name)
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    match version {
        CgroupVersion::V1 => {
            let shmem = field("total_shmem");
            StatFields {
                anon_bytes: field("total_rss"),
                shmem_bytes: shmem,
                kernel_bytes: 0,
                file_bytes: field("total_cache").saturating_sub(shmem),
                inactive_file_bytes: field("total_inactive_file"),
            }
        }
        CgroupVersion::V2 => StatFields {
            anon_bytes: field("anon"),
            shmem_bytes: field("shmem"),
            kernel_bytes: field("kernel"),
            file_bytes: field("file").saturating_sub(field("shmem")),
            inactive_file_bytes: field("inactive_file"),
        },
    }
}
