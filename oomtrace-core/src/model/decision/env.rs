//! What the collector knows about the host, behind a trait.
use std::time::SystemTime;

use oomtrace_ebpf::MemcgReclaimStats;

use crate::cgroup::{MemcgFiles, MemcgSnapshot};

/// What the collector knows about the machine; a trait so the rebuild can be
/// tested without root and reused on saved logs. What a saved log cannot
/// tell defaults to unknown: the live environment implements every method.
pub trait Environment {
    fn memcg_path(&mut self, _cgroup_id: u64) -> Option<String> {
        None
    }
    /// Whether the paths of these cgroup ids are as known as they will get
    /// (found, or looked for and absent); a live session looks for the
    /// others off its loop, and a decision waits for them (its deadline
    /// still holds).
    fn memcg_paths_ready(&mut self, _cgroup_ids: &[u64]) -> bool {
        true
    }
    fn memcg_files(&self, _relative: &str) -> Option<MemcgFiles> {
        None
    }
    fn swap_total_pages(&self) -> Option<u64> {
        None
    }
    fn mem_total_pages(&self) -> Option<u64> {
        None
    }
    fn page_size(&self) -> u64;
    fn kernel_release(&self) -> Option<String> {
        None
    }
    fn reclaim_stats(&self, _memcg_id: u64) -> Option<MemcgReclaimStats> {
        None
    }
    /// Wall-clock time of a `bpf_ktime_get_boot_ns` value.
    fn wall_time_of_boot_ns(&self, _boot_ns: u64) -> Option<SystemTime> {
        None
    }
    /// Wall-clock time of a kernel log timestamp (seconds since boot).
    fn wall_time_of_log_seconds(&self, _seconds: f64) -> Option<SystemTime> {
        None
    }
    /// The memcg's files as read while its OOM was handled, with the
    /// `boot_ns` of the read (live mode only).
    fn memcg_snapshot(&self, _relative: &str) -> Option<(MemcgSnapshot, u64)> {
        None
    }
    /// The tasks of the victim's OOM memcg read from /proc as its kill was
    /// seen (live mode, without the killer's hooks only).
    fn task_snapshot(&self, _victim_pid: u32) -> Option<crate::cgroup::tasks::TaskSnapshot> {
        None
    }
    /// A process's command line (and allowlisted environment) as read
    /// while it lived (live mode only, not with `--no-cmdline`).
    fn process_args(&self, _pid: u32) -> Option<crate::cgroup::process::ProcessArgs> {
        None
    }
    /// The Kubernetes names of a container found under a kubelet pod cgroup,
    /// attributed from `memcg` (live mode only: they come from the node's
    /// runtime and kubelet files).
    fn kubernetes_names(
        &mut self,
        _container: &crate::cgroup::container::Container,
        _memcg: &str,
    ) -> Option<crate::cgroup::kubernetes::KubeNames> {
        None
    }
    /// What Docker's, Podman's or containerd's own state says of the
    /// container the memcg belongs to (`container`: what its path said, if
    /// anything), live mode only.
    fn runtime_names(
        &mut self,
        _container: Option<&crate::cgroup::container::Container>,
        _memcg: &str,
    ) -> Option<crate::cgroup::runtimes::RuntimeNames> {
        None
    }
}

/// What is known when rebuilding from a saved kernel log: only the log
/// (and the kernel release, where the caller knows it).
#[derive(Debug, Default)]
pub struct OfflineEnv {
    pub page_size: u64,
    pub kernel_release: Option<String>,
}

impl OfflineEnv {
    pub fn new(page_size: u64) -> Self {
        Self {
            page_size,
            kernel_release: None,
        }
    }
}

impl Environment for OfflineEnv {
    fn page_size(&self) -> u64 {
        self.page_size
    }
    fn kernel_release(&self) -> Option<String> {
        self.kernel_release.clone()
    }
}
