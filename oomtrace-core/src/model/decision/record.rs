//! The decision as it is serialized: docs/schema.json describes these types.
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::{base::Envelope, model::score::BadnessModel};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trigger {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub memcg: Option<String>,
    pub gfp_mask: Option<String>,
    pub gfp_flags: Option<String>,
    pub order: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OomMemcg {
    pub path: Option<String>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Where limit/usage come from: "kernel_report" or "bpf" (page counters read at the kill).
    pub source: Cow<'static, str>,
    /// memcg usage read from its files once the victim was gone (live mode only).
    pub usage_after_kill_bytes: Option<u64>,
    /// Swap the memcg used: the kernel report's `swap:`/`memory+swap:` line,
    /// the page counters read at the kill, or its files during the OOM.
    #[serde(default)]
    pub swap_usage_bytes: Option<u64>,
    /// v2 `memory.swap.max` (v1 has no swap-only limit: see `memsw_limit_bytes`).
    #[serde(default)]
    pub swap_limit_bytes: Option<u64>,
    /// v1 `memory.memsw.limit_in_bytes` (memory + swap together).
    #[serde(default)]
    pub memsw_limit_bytes: Option<u64>,
    /// What the memcg's memory was made of at the OOM.
    #[serde(default)]
    pub stat: Option<MemcgStat>,
}

/// `memory.stat` essentials of the OOM memcg, in bytes (v1: hierarchical
/// `total_*` values). Null fields: this kernel does not report them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemcgStat {
    /// `kernel_report` (the report's "Memory cgroup stats", printed before the
    /// kill) or `memcg_files` (read by oomtrace while the OOM was handled).
    pub source: Cow<'static, str>,
    /// `memcg_files`: when the files were read, relative to the kill (ms;
    /// negative: before it).
    pub read_after_kill_ms: Option<f64>,
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub active_file_bytes: Option<u64>,
    pub inactive_file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    /// Kernel memory charged to the memcg (v2 `kernel`, 5.18+; v1 kmem usage).
    pub kernel_bytes: Option<u64>,
}

/// `memory.stat` keys of each essential, first match wins: v1's hierarchical
/// `total_*`, then v2's names, then v1's own-level ones.
pub(super) const ANON_KEYS: &[&str] = &["total_rss", "anon", "rss"];
pub(super) const FILE_KEYS: &[&str] = &["total_cache", "file", "cache"];
pub(super) const SHMEM_KEYS: &[&str] = &["total_shmem", "shmem"];
pub(super) const ACTIVE_FILE_KEYS: &[&str] = &["total_active_file", "active_file"];
pub(super) const INACTIVE_FILE_KEYS: &[&str] = &["total_inactive_file", "inactive_file"];

impl MemcgStat {
    /// Picks the essentials out of `memory.stat` keys (v1 or v2 names).
    pub(super) fn from_keys(
        source: &'static str,
        read_after_kill_ms: Option<f64>,
        stat: impl Fn(&str) -> Option<u64>,
        kernel: Option<u64>,
    ) -> Option<Self> {
        let first = |keys: &[&str]| keys.iter().find_map(|k| stat(k));
        let out = Self {
            source: source.into(),
            read_after_kill_ms,
            anon_bytes: first(ANON_KEYS),
            file_bytes: first(FILE_KEYS),
            active_file_bytes: first(ACTIVE_FILE_KEYS),
            inactive_file_bytes: first(INACTIVE_FILE_KEYS),
            shmem_bytes: first(SHMEM_KEYS),
            kernel_bytes: stat("kernel").or(kernel),
        };
        (out.anon_bytes.is_some() || out.file_bytes.is_some()).then_some(out)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub pid: u32,
    pub tgid: Option<u32>,
    pub uid: Option<u32>,
    pub comm: String,
    pub memcg: Option<String>,
    pub rss_bytes: u64,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub oom_score_adj: i32,
    /// The badness points; null when the kernel never picks the task (oom_score_adj -1000).
    pub points: Option<i64>,
    pub eligible: bool,
    pub victim: bool,
    /// Why the killer passed over the task without scoring it (fentry/kprobe
    /// backends): `oom_score_adj_min`, `already_victim`, `victim_exiting`
    /// (the OOM was aborted), `kernel_thread`, `no_mm`, `not_eligible`.
    pub skip_reason: Option<Cow<'static, str>>,
    /// Where the rss/swap numbers come from: `kernel_report`, `bpf_exact`
    /// (read as the killer read them), `bpf_approx` (central counts that
    /// may lag the kernel's per-CPU sums); see `model::exact`.
    #[serde(default)]
    pub rss_source: Option<Cow<'static, str>>,
    /// `kernel` (oom_badness's own return value) or `recomputed` (the
    /// kernel's rule applied to the numbers above); null without points.
    #[serde(default)]
    pub points_source: Option<Cow<'static, str>>,
    /// Its command line, secrets masked (`base::scrub`); absent when not
    /// read (gone before it could be, `--no-cmdline`, a saved log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<Vec<String>>,
    /// An argument of `cmdline` was shortened or its tail left out (`…`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cmdline_truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Victim {
    pub pid: u32,
    pub tgid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub memcg: Option<String>,
    pub points: Option<i64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub total_vm_bytes: Option<u64>,
    pub oom_score_adj: Option<i32>,
    /// Where `rss_anon/file/shmem_bytes` come from: `kernel_report` (the
    /// `Killed process` line), `bpf_exact`, `bpf_approx`; see `model::exact`.
    #[serde(default)]
    pub rss_source: Option<Cow<'static, str>>,
    /// `kernel` (oc->chosen_points or oom_badness) or `recomputed`.
    #[serde(default)]
    pub points_source: Option<Cow<'static, str>>,
    /// Its command line as read while it lived, secrets masked
    /// (`base::scrub`); null when not read (`--no-cmdline`, a saved log,
    /// a process gone before any read).
    #[serde(default)]
    pub cmdline: Option<Vec<String>>,
    /// An argument of `cmdline` was shortened or its tail left out (`…`).
    #[serde(default)]
    pub cmdline_truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Freed {
    /// The victim's resident memory at the kill (anon + file + shmem).
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    /// "reaped", "skipped", "queued" (woken but no outcome seen) or null (reaper not involved).
    pub reaper: Option<Cow<'static, str>>,
    /// anon rss left after the reaper, from "oom_reaper: reaped process" (kB line).
    pub anon_rss_after_reap_bytes: Option<u64>,
    /// null when no hook can see the exit (rebuilt from a log).
    pub exited: Option<bool>,
    pub exit_after_ms: Option<f64>,
}

/// Memcg reclaim in the allocating task's memcg, counted in the kernel since
/// tracing began: passes that reclaimed nothing are the steps before a charge fails.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReclaimSummary {
    pub memcg: Option<String>,
    pub passes: u64,
    pub empty_passes: u64,
    pub reclaimed_bytes: u64,
    pub time_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    /// `time` is null when unknown (a log without usable timestamps).
    #[serde(flatten)]
    pub envelope: Envelope<Option<String>>,
    pub seq: u64,
    /// The OOM episode this decision ends (`model::episode`), shared with
    /// the memcg's charge failures and stall; null until assigned.
    #[serde(default)]
    pub oom_id: Option<String>,
    pub constraint: Option<Cow<'static, str>>,
    pub backend: Cow<'static, str>,
    pub trigger: Trigger,
    pub oom_memcg: Option<OomMemcg>,
    pub totalpages: Option<u64>,
    pub page_size: u64,
    pub badness_model: Option<BadnessModel>,
    pub candidates: Vec<Candidate>,
    pub candidates_source: Cow<'static, str>,
    /// With `candidates_source` `proc_snapshot`: how long after the kill
    /// the OOM memcg's tasks were read from /proc, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates_snapshot_after_kill_ms: Option<f64>,
    /// How this kernel's OOM killer read the rss counters, learned from its
    /// own points and kill line: `get_mm_counter` (central count, 6.x)
    /// or `get_mm_counter_sum` (per-CPU sum, 7.x); null when nothing
    /// told them apart (or the counters have no per-CPU part).
    #[serde(default)]
    pub rss_rule: Option<Cow<'static, str>>,
    /// Candidates the killer visited that are missing from `candidates`
    /// (ring buffer full); null when the source cannot tell.
    #[serde(default)]
    pub candidates_dropped: Option<u32>,
    pub victim: Option<Victim>,
    /// The victim's runtime heap setting (JVM, Node, Go) against the OOM
    /// memcg's limit (`model::runtime_heap`); null when none is known.
    #[serde(default)]
    pub runtime_heap: Option<crate::model::runtime_heap::RuntimeHeap>,
    pub killed: Vec<u32>,
    /// The container (or systemd unit) the victim's memcg belongs to; derived
    /// from the path, so recomputed rather than read back from dumps.
    #[serde(default, skip_deserializing)]
    pub container: Option<crate::cgroup::container::Container>,
    /// The names a saved record's container carried, Kubernetes' and a
    /// runtime's (they come from the node's files, not the path): read
    /// back, never written.
    #[serde(
        rename = "container",
        default,
        skip_serializing,
        deserialize_with = "crate::cgroup::runtimes::saved::SavedNames::deserialize_lenient"
    )]
    pub saved_names: Option<crate::cgroup::runtimes::saved::SavedNames>,
    pub oom_group: Option<String>,
    /// The `oom_warning` that came before this kill (`model::risk`); absent
    /// when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<PriorWarning>,
    /// How long before the kill it was warned, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_ms: Option<u64>,
    /// The page fault of the trigger task that reached `pagefault_out_of_memory`
    /// before this OOM (fentry/kprobe backends): on cgroup v1 with the OOM
    /// killer disabled, the wait this kill ended; null when none.
    #[serde(default)]
    pub pagefault_oom: Option<crate::model::pagefault::PagefaultJoin>,
    pub freed: Freed,
    pub reclaim: Option<ReclaimSummary>,
    /// "complete", "incomplete" (cut short) or "missing" (rate-limited or not seen).
    pub kernel_report: Cow<'static, str>,
    pub explanation: Vec<String>,
    /// The kernel's report lines, as evidence (for dumps); not in the live JSON.
    #[serde(skip)]
    pub report_lines: Vec<String>,
    /// The kernel events this decision was built from (for dumps).
    #[serde(skip)]
    pub evidence: Vec<serde_json::Value>,
    /// Kernel clock of the kill in seconds (BPF boot time or log timestamp), for rates.
    #[serde(skip)]
    pub kernel_seconds: Option<f64>,
    /// Rebuilt at start-up from the kernel log of a kill that happened while
    /// oomtrace was not running (`--state-dir`); absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    /// Where the decision begins in the kernel log: its report's first line,
    /// else its kill line (the `/dev/kmsg` sequence number live).
    #[serde(skip)]
    pub log_line: Option<usize>,
}

/// The early warning a decision follows (`oom_warning`, same `oom_id`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PriorWarning {
    /// When it was emitted (RFC 3339).
    pub time: String,
    pub growth_bytes_per_s: u64,
    /// The first of its `top_growers`.
    pub grower_pid: Option<u32>,
    pub grower_comm: Option<String>,
    pub grower_growth_bytes_per_s: Option<i64>,
}
