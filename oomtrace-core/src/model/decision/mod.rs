//! Rebuilding the kernel's decision from what each source saw: eBPF events
//! (the victim, its memcg chain, reaper steps, its exit) and the kernel's own
//! OOM report (trigger, limit, the task table). Pieces are matched by victim
//! pid and a decision is emitted once it is complete or its deadline passes.
use std::time::{Duration, Instant, SystemTime};

use oomtrace_ebpf::{
    MarkVictimEvent, MemcgReclaimStats, VictimExitEvent, VictimTaskEvent, mark_victim_field,
    reaper_step, victim_valid,
};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use crate::base::{Envelope, SCHEMA_VERSION, time::rfc3339};
use crate::{
    cgroup::{MemcgFiles, MemcgSnapshot, ScopeCgroup},
    events::{Event, comm_str},
    model::{
        exact::{self, RssSource},
        score::{BadnessInput, BadnessModel, badness, expected_choice},
    },
    report::{KernelReport, KillLine, ReapedLine, ReportItem, TaskRow},
};

/// How long a decision waits for the victim's exit once everything else is in.
const WAIT_FOR_EXIT: Duration = Duration::from_secs(1);
/// Grace after the last awaited piece, for memory.oom.group sweep lines and reaper steps.
const SETTLE: Duration = Duration::from_millis(100);
/// A decision is emitted with what it has at the latest this long after its first piece.
const DEADLINE: Duration = Duration::from_secs(3);
/// Bound on decisions in flight (an OOM storm on a big node).
const MAX_PENDING: usize = 4096;

/// What the collector knows about the machine; a trait so the rebuild can be
/// tested without root and reused on saved logs.
pub trait Environment {
    fn memcg_path(&mut self, cgroup_id: u64) -> Option<String>;
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles>;
    fn swap_total_pages(&self) -> Option<u64>;
    fn mem_total_pages(&self) -> Option<u64>;
    fn page_size(&self) -> u64;
    fn kernel_release(&self) -> Option<String>;
    fn reclaim_stats(&self, memcg_id: u64) -> Option<MemcgReclaimStats>;
    /// Wall-clock time of a `bpf_ktime_get_boot_ns` value.
    fn wall_time_of_boot_ns(&self, boot_ns: u64) -> Option<SystemTime>;
    /// Wall-clock time of a kernel log timestamp (seconds since boot).
    fn wall_time_of_log_seconds(&self, seconds: f64) -> Option<SystemTime>;
    /// The memcg's files as read while its OOM was handled, with the
    /// `boot_ns` of the read (live mode only).
    fn memcg_snapshot(&self, _relative: &str) -> Option<(MemcgSnapshot, u64)> {
        None
    }
}

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
const ANON_KEYS: &[&str] = &["total_rss", "anon", "rss"];
const FILE_KEYS: &[&str] = &["total_cache", "file", "cache"];
const SHMEM_KEYS: &[&str] = &["total_shmem", "shmem"];
const ACTIVE_FILE_KEYS: &[&str] = &["total_active_file", "active_file"];
const INACTIVE_FILE_KEYS: &[&str] = &["total_inactive_file", "inactive_file"];

impl MemcgStat {
    /// Picks the essentials out of `memory.stat` keys (v1 or v2 names).
    fn from_keys(
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
    pub constraint: Option<Cow<'static, str>>,
    pub backend: Cow<'static, str>,
    pub trigger: Trigger,
    pub oom_memcg: Option<OomMemcg>,
    pub totalpages: Option<u64>,
    pub page_size: u64,
    pub badness_model: Option<BadnessModel>,
    pub candidates: Vec<Candidate>,
    pub candidates_source: Cow<'static, str>,
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
    pub killed: Vec<u32>,
    /// The container (or systemd unit) the victim's memcg belongs to; derived
    /// from the path, so recomputed rather than read back from dumps.
    #[serde(default, skip_deserializing)]
    pub container: Option<crate::cgroup::container::Container>,
    pub oom_group: Option<String>,
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
}

#[derive(Debug, Default)]
struct Pending {
    id: u64,
    created: Option<Instant>,
    victim_pid: u32,
    mark: Option<MarkVictimEvent>,
    task: Option<Box<VictimTaskEvent>>,
    report: Option<KernelReport>,
    /// Kill line when no report carried it (rate-limited storms).
    kill: Option<KillLine>,
    oom_group: Option<String>,
    group_kills: Vec<u32>,
    reaper_events: Vec<oomtrace_ebpf::ReaperEvent>,
    reaped: Option<ReapedLine>,
    exit: Option<VictimExitEvent>,
    /// The killer's own evaluation (fentry/kprobe backends).
    invocation: Option<Invocation>,
    complete_since: Option<Instant>,
}

/// One `out_of_memory` call as the OOM-path hooks saw it.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub oom_seq: u64,
    /// The task that ran the killer (the allocating task).
    pub trigger_pid: u32,
    pub trigger_comm: [u8; 16],
    pub candidates: Vec<oomtrace_ebpf::OomCandidateEvent>,
    pub choice: Option<oomtrace_ebpf::OomChoiceEvent>,
    pub end: Option<oomtrace_ebpf::OomEndEvent>,
}

impl Pending {
    fn kill_line(&self) -> Option<&KillLine> {
        self.report
            .as_ref()
            .and_then(|r| r.kill.as_ref())
            .or(self.kill.as_ref())
    }
}

/// Which hooks feed the builder: it only waits for pieces that can come.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    pub backend: &'static str,
    pub victim_task_hook: bool,
    pub exit_hook: bool,
    /// The OOM killer's functions are hooked: candidates come from the kernel.
    pub oom_path_hooks: bool,
}

impl Sources {
    /// Decisions rebuilt from a saved kernel log alone (`oomtrace report`).
    pub const KERNEL_REPORT: Sources = Sources {
        backend: "kernel_report",
        victim_task_hook: false,
        exit_hook: false,
        oom_path_hooks: false,
    };
}

pub struct Builder {
    sources: Sources,
    scope: Vec<ScopeCgroup>,
    pending: Vec<Pending>,
    next_id: u64,
    seq: u64,
    /// The pending decision whose memory.oom.group sweep is being printed.
    group_sweep: Option<u64>,
    /// Pids killed by recent memory.oom.group sweeps (their own events are not decisions).
    recent_group_kills: std::collections::VecDeque<u32>,
    /// OOM invocations in progress (candidates arriving), by oom_seq.
    invocations: Vec<Invocation>,
    /// Invocations aborted because an earlier victim was still exiting, per memcg id.
    aborted: std::collections::HashMap<u64, u64>,
    /// Recent OOMs per memcg, for crash-loop / leak detection.
    history: std::collections::HashMap<String, std::collections::VecDeque<HistoryEntry>>,
    /// Decisions given up on because `MAX_PENDING` was reached.
    pub evicted: u64,
    /// The rss read this kernel's OOM killer uses, once a decision learned it.
    rss_rule: Option<exact::RssRule>,
}

#[derive(Debug, Clone, Copy)]
struct HistoryEntry {
    at: f64,
    /// memcg usage once the victim was gone (measured live, else usage − victim rss).
    usage_after: Option<u64>,
}

/// OOMs of one memcg this close together count as a repeat.
const REPEAT_WINDOW_SECONDS: f64 = 600.0;
const REPEAT_MIN: usize = 3;
const HISTORY_PER_MEMCG: usize = 64;
const HISTORY_MEMCGS: usize = 4096;

impl Builder {
    pub fn new(sources: Sources, scope: Vec<ScopeCgroup>) -> Self {
        Self {
            sources,
            scope,
            pending: Vec::new(),
            next_id: 1,
            seq: 0,
            group_sweep: None,
            recent_group_kills: Default::default(),
            history: Default::default(),
            invocations: Vec::new(),
            aborted: Default::default(),
            evicted: 0,
            rss_rule: None,
        }
    }

    fn pending_for(
        &mut self,
        now: Instant,
        pid: u32,
        free: impl Fn(&Pending) -> bool,
    ) -> &mut Pending {
        if let Some(index) = self
            .pending
            .iter()
            .rposition(|p| p.victim_pid == pid && free(p))
        {
            return &mut self.pending[index];
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
            self.evicted += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push(Pending {
            id,
            created: Some(now),
            victim_pid: pid,
            ..Default::default()
        });
        self.pending.last_mut().expect("just pushed")
    }

    pub fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::MarkVictim(mark) => {
                let pid = mark.pid as u32;
                self.pending_for(now, pid, |p| p.mark.is_none()).mark = Some(mark);
            }
            Event::VictimTask(task) => {
                let pid = task.victim_pid;
                self.pending_for(now, pid, |p| p.task.is_none()).task = Some(task);
            }
            Event::Reaper(reaper) => {
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == reaper.pid as u32)
                {
                    p.reaper_events.push(reaper);
                }
            }
            Event::VictimExit(exit) => {
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == exit.header.pid && p.exit.is_none())
                {
                    p.exit = Some(exit);
                }
            }
            Event::OomCandidate(candidate) => {
                self.invocation(candidate.oom_seq, &candidate.header)
                    .candidates
                    .push(candidate);
            }
            Event::OomChoice(choice) => {
                self.invocation(choice.oom_seq, &choice.header).choice = Some(choice);
            }
            Event::OomEnd(end) => {
                self.invocation(end.oom_seq, &end.header).end = Some(end);
                let index = self
                    .invocations
                    .iter()
                    .position(|i| i.oom_seq == end.oom_seq)
                    .expect("just inserted");
                let invocation = self.invocations.remove(index);
                self.on_invocation(now, invocation);
            }
            // A fault whose charge failed; the OOM it leads to is reported by the hooks above.
            // Charge failures and OOM-disabled waits are records of their own (app, charge).
            Event::PagefaultOom(_)
            | Event::ChargeFailure(_)
            | Event::OomWait(_)
            | Event::MemcgAtLimit(_) => {}
        }
    }

    fn invocation(&mut self, oom_seq: u64, header: &oomtrace_ebpf::EventHeader) -> &mut Invocation {
        if let Some(index) = self.invocations.iter().position(|i| i.oom_seq == oom_seq) {
            return &mut self.invocations[index];
        }
        if self.invocations.len() >= MAX_PENDING {
            self.invocations.remove(0);
            self.evicted += 1;
        }
        self.invocations.push(Invocation {
            oom_seq,
            trigger_pid: header.pid,
            trigger_comm: header.comm,
            ..Invocation::default()
        });
        self.invocations.last_mut().expect("just pushed")
    }

    /// A finished `out_of_memory`: joins the decision of its victim, or is a
    /// decision of its own when nothing was killed.
    fn on_invocation(&mut self, now: Instant, invocation: Invocation) {
        let end = invocation.end.expect("finished invocations have an end");
        if let Some(choice) = invocation.choice {
            let pending = self.pending_for(now, choice.pid, |p| p.invocation.is_none());
            pending.invocation = Some(invocation);
            return;
        }
        match end.chosen {
            // Aborted: an earlier victim is still exiting; counted, not a decision.
            2 => *self.aborted.entry(end.memcg_id).or_default() += 1,
            // Nothing chosen and no progress: no killable task.
            0 if end.ret == 0 => {
                let trigger = invocation.trigger_pid;
                let index = self.pending.iter().position(|p| {
                    p.victim_pid == 0
                        && p.invocation.is_none()
                        && p.report
                            .as_ref()
                            .and_then(|r| r.trigger.as_ref())
                            .is_some_and(|t| t.pid == trigger)
                });
                let pending = match index {
                    Some(index) => &mut self.pending[index],
                    None => self.pending_for(now, 0, |_| false),
                };
                pending.invocation = Some(invocation);
            }
            // Progress without a kill (the allocating task was already dying).
            _ => {}
        }
    }

    /// Takes one item from the kernel log. Reports of OOMs that killed
    /// nothing are decisions on their own and come back at the next `poll`.
    pub fn on_report(&mut self, now: Instant, item: ReportItem) {
        match item {
            ReportItem::Report(report) => {
                self.group_sweep = None;
                let pid = report.kill.as_ref().map_or(0, |k| k.pid);
                let trigger = report.trigger.as_ref().map(|t| t.pid);
                // A report of an OOM that killed nothing pairs with the
                // oldest such invocation of its trigger: one task failing its
                // charge again and again leaves several pending, and the
                // kernel logs them in order.
                let same_trigger = |p: &Pending| {
                    p.invocation
                        .as_ref()
                        .is_some_and(|i| Some(i.trigger_pid) == trigger)
                };
                if pid == 0
                    && let Some(p) = self
                        .pending
                        .iter_mut()
                        .find(|p| p.victim_pid == 0 && p.report.is_none() && same_trigger(p))
                {
                    p.report = Some(report);
                    return;
                }
                let pending = self.pending_for(now, pid, |p| {
                    p.report.is_none()
                        && (pid != 0
                            || p.invocation
                                .as_ref()
                                .is_some_and(|i| Some(i.trigger_pid) == trigger))
                });
                pending.report = Some(report);
            }
            ReportItem::OomGroup { memcg, .. } => {
                // The sweep follows the kill line just read. The BPF events of
                // the tasks it kills may have opened later pendings already.
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.kill_line().is_some())
                {
                    p.oom_group = Some(memcg);
                    self.group_sweep = Some(p.id);
                }
            }
            ReportItem::Kill(kill) => {
                if let Some(id) = self.group_sweep
                    && let Some(p) = self.pending.iter_mut().find(|p| p.id == id)
                {
                    if !p.group_kills.contains(&kill.pid) {
                        p.group_kills.push(kill.pid);
                    }
                    return;
                }
                let pid = kill.pid;
                let pending = self.pending_for(now, pid, |p| p.kill_line().is_none());
                pending.kill = Some(kill);
            }
            ReportItem::Reaped(reaped) => {
                self.group_sweep = None;
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == reaped.pid)
                {
                    p.reaped = Some(reaped);
                }
            }
        }
    }

    fn is_complete(&self, p: &Pending) -> bool {
        let has_invocation = p.invocation.is_some() || !self.sources.oom_path_hooks;
        if p.victim_pid == 0 {
            // "no killable processes": the report (and the killer's evaluation) is all there is.
            return p.report.is_some() && has_invocation;
        }
        let has_kill = p.kill_line().is_some();
        let has_bpf = p.mark.is_some() && (p.task.is_some() || !self.sources.victim_task_hook);
        has_kill && has_bpf && has_invocation
    }

    /// Emits the decisions that are ready at `now`.
    pub fn poll(&mut self, now: Instant, env: &mut dyn Environment) -> Vec<Decision> {
        let mut ready = Vec::new();
        for index in 0..self.pending.len() {
            let complete = self.is_complete(&self.pending[index]);
            let p = &mut self.pending[index];
            if complete && p.complete_since.is_none() {
                p.complete_since = Some(now);
            }
            let waited = now.duration_since(p.created.unwrap_or(now));
            let exit_done = p.exit.is_some() || !self.sources.exit_hook || p.victim_pid == 0;
            let due = match p.complete_since {
                Some(since) if exit_done => now.duration_since(since) >= SETTLE,
                Some(since) => now.duration_since(since) >= WAIT_FOR_EXIT,
                None => false,
            } || waited >= DEADLINE;
            if due {
                ready.push(p.id);
            }
        }
        self.emit(&ready, env)
    }

    /// Emits everything still pending (shutdown).
    pub fn flush(&mut self, env: &mut dyn Environment) -> Vec<Decision> {
        let all: Vec<u64> = self.pending.iter().map(|p| p.id).collect();
        self.emit(&all, env)
    }

    fn emit(&mut self, ids: &[u64], env: &mut dyn Environment) -> Vec<Decision> {
        let mut decisions = Vec::new();
        // Learn the kernel's rss read from any decision of this batch first,
        // so that its OOMs that cannot tell on their own get it too.
        if self.rss_rule.is_none() {
            let page_size = env.page_size();
            self.rss_rule = ids
                .iter()
                .filter_map(|id| self.pending.iter().find(|p| p.id == *id))
                .find_map(|p| {
                    let invocation = p.invocation.as_ref();
                    exact::rss_rule(
                        invocation.map_or(&[], |i| i.candidates.as_slice()),
                        invocation.and_then(|i| i.end).map(|e| e.totalpages),
                        p.task.as_deref(),
                        p.kill_line(),
                        p.report
                            .as_ref()
                            .and_then(|r| r.tasks.as_ref())
                            .map(|t| t.rows.as_slice()),
                        page_size,
                    )
                });
        }
        for id in ids {
            let Some(index) = self.pending.iter().position(|p| p.id == *id) else {
                continue;
            };
            let pending = self.pending.remove(index);
            if self.group_sweep == Some(pending.id) {
                self.group_sweep = None;
            }
            // A task killed by another decision's memory.oom.group sweep is part of it.
            let swept = |pid: u32| {
                self.recent_group_kills.contains(&pid)
                    || self.pending.iter().any(|o| o.group_kills.contains(&pid))
            };
            if pending.report.is_none() && swept(pending.victim_pid) {
                continue;
            }
            for pid in &pending.group_kills {
                if self.recent_group_kills.len() >= MAX_PENDING {
                    self.recent_group_kills.pop_front();
                }
                self.recent_group_kills.push_back(*pid);
            }
            if !self.in_scope(&pending) {
                continue;
            }
            self.seq += 1;
            let mut decision = assemble(self.seq, self.sources, &pending, env);
            // The rss read is the kernel's: learned once, it holds for OOMs
            // that cannot tell on their own (model::exact).
            let events = pending
                .invocation
                .as_ref()
                .map_or(&[][..], |i| &i.candidates[..]);
            settle_rss(&mut self.rss_rule, &mut decision, events);
            self.note_repeats(&mut decision);
            if let Some(end) = pending.invocation.as_ref().and_then(|i| i.end) {
                if end.dropped > 0 {
                    decision.explanation.push(format!(
                        "{} candidate(s) were not reported: the ring buffer was full (see the lost records).",
                        end.dropped
                    ));
                }
                if let Some(aborted) = self.aborted.remove(&end.memcg_id) {
                    decision.explanation.push(format!(
                        "Before this kill, {aborted} OOM invocation(s) of the same memcg were aborted while an earlier victim was still exiting."
                    ));
                }
            }
            decisions.push(decision);
        }
        decisions
    }

    /// Remembers this OOM and explains a run of them in the same memcg.
    fn note_repeats(&mut self, decision: &mut Decision) {
        use crate::base::units::human_bytes as hb;
        let (Some(memcg), Some(at)) = (
            decision.oom_memcg.as_ref().and_then(|m| m.path.clone()),
            decision.kernel_seconds,
        ) else {
            return;
        };
        let usage = decision.oom_memcg.as_ref().and_then(|m| m.usage_bytes);
        let victim_rss = decision.freed.rss_bytes;
        let usage_after = decision
            .oom_memcg
            .as_ref()
            .and_then(|m| m.usage_after_kill_bytes)
            .or_else(|| Some(usage?.saturating_sub(victim_rss?)));
        if self.history.len() >= HISTORY_MEMCGS && !self.history.contains_key(&memcg) {
            self.history
                .retain(|_, h| h.back().is_some_and(|e| at - e.at < REPEAT_WINDOW_SECONDS));
        }
        let entries = self.history.entry(memcg.clone()).or_default();
        while entries
            .front()
            .is_some_and(|e| at - e.at > REPEAT_WINDOW_SECONDS)
        {
            entries.pop_front();
        }
        let previous = entries.back().copied();
        entries.push_back(HistoryEntry { at, usage_after });
        if entries.len() > HISTORY_PER_MEMCG {
            entries.pop_front();
        }
        let count = entries.len();
        if count < REPEAT_MIN {
            return;
        }
        let span = at - entries.front().map_or(at, |e| e.at);
        let rate = previous.and_then(|p| {
            let dt = at - p.at;
            let refill = usage?.checked_sub(p.usage_after?)?;
            (dt > 0.0).then(|| refill as f64 / dt)
        });
        decision.explanation.push(format!(
            "{memcg} has hit its limit {count} times in {span:.1} s (a crash loop or a leak){}.",
            rate.map_or(String::new(), |r| format!(
                "; since the previous kill it refilled at {}/s",
                hb(r as u64)
            ))
        ));
    }

    fn in_scope(&self, p: &Pending) -> bool {
        if self.scope.is_empty() || p.task.is_some() {
            // With a filter, the raw victim event only exists for victims in
            // scope (filtered in the kernel).
            return true;
        }
        // No kernel-side verdict (no victim, an older kernel, a dropped
        // event): the report's memcg paths decide.
        let report_paths = p.report.as_ref().map(|r| {
            let mut paths = Vec::new();
            if let Some(c) = &r.constraint {
                paths.extend(c.task_memcg.clone());
                paths.extend(c.oom_memcg.clone());
            }
            if let Some((task, oom)) = &r.task_in_line {
                paths.push(task.clone());
                paths.push(oom.clone());
            }
            // A report without a victim has no constraint line; its memcg
            // stats header names the memcg whose limit was hit.
            paths.extend(r.memcg_stats_for.clone());
            paths
        });
        let in_scope_path = |path: &String| self.scope.iter().any(|s| s.contains(path));
        match report_paths {
            // A victim the kernel filter saw nothing of is out of scope when the
            // filter ran; without the hook, its task memcg decides.
            Some(paths) if p.victim_pid != 0 && self.sources.victim_task_hook => {
                p.mark.is_none() && paths.first().is_some_and(in_scope_path)
            }
            Some(paths) => paths.iter().any(in_scope_path),
            None => false,
        }
    }
}

fn kb(value: Option<u64>) -> Option<u64> {
    value.map(|v| v * 1024)
}

fn constraint_name(kernel: &str) -> Option<&'static str> {
    Some(match kernel {
        "CONSTRAINT_MEMCG" => "memcg",
        "CONSTRAINT_NONE" => "global",
        "CONSTRAINT_CPUSET" => "cpuset",
        "CONSTRAINT_MEMORY_POLICY" => "mempolicy",
        _ => return None,
    })
}

/// A task-table row as the badness input, in pages.
fn row_input(row: &TaskRow, page_size: u64) -> BadnessInput {
    let pgtable_pages = match row.pgtables_bytes {
        Some(bytes) => bytes / page_size,
        None => row.nr_ptes.unwrap_or(0) + row.nr_pmds.unwrap_or(0),
    };
    BadnessInput {
        rss_pages: row.rss_pages,
        swap_pages: row.swapents.unwrap_or(0),
        pgtable_pages,
        oom_score_adj: row.oom_score_adj,
        uid: row.uid,
    }
}

fn assemble(seq: u64, sources: Sources, p: &Pending, env: &mut dyn Environment) -> Decision {
    let page_size = env.page_size();
    let pages = |n: u64| n * page_size;
    let report = p.report.as_ref();
    let kill = p.kill_line();
    let task = p.task.as_deref();
    let mark = p.mark.as_ref();
    let mut explanation = Vec::new();

    // When: the BPF event's clock, else the kernel log's.
    let time = mark
        .map(|m| m.header.boot_ns)
        .or(task.map(|t| t.header.boot_ns))
        .and_then(|ns| env.wall_time_of_boot_ns(ns))
        .or_else(|| {
            report
                .and_then(|r| r.lines.first())
                .or(kill.map(|k| &k.source))
                .and_then(|l| l.timestamp)
                .and_then(|s| env.wall_time_of_log_seconds(s))
        });

    // Older kernels print no constraint line: a memcg OOM still shows its
    // counters, a "Task in" line or the "Memory cgroup out of memory" prefix.
    let memcg_signs = report.is_some_and(|r| {
        r.counter("memory").is_some()
            || r.task_in_line.is_some()
            || r.selected
                .as_ref()
                .is_some_and(|s| s.source.text.contains("Memory cgroup out of memory"))
    }) || kill.is_some_and(|k| k.memcg_oom);
    // `enum oom_constraint`: NONE, CPUSET, MEMORY_POLICY, MEMCG since 2.6.35.
    let hooked_constraint = p.invocation.as_ref().and_then(|i| i.end).and_then(|e| {
        ["global", "cpuset", "mempolicy", "memcg"]
            .get(e.constraint as usize)
            .copied()
    });
    let constraint = hooked_constraint
        .or_else(|| {
            report
                .and_then(|r| r.constraint.as_ref())
                .and_then(|c| constraint_name(&c.constraint))
        })
        .or_else(|| {
            if memcg_signs {
                Some("memcg")
            } else {
                kill.map(|_| "global")
            }
        });

    // Trigger: the task that ran the killer is the one whose allocation failed.
    let header = report.and_then(|r| r.header.as_ref());
    let trigger_memcg = task
        .filter(|t| t.valid & victim_valid::TRIGGER_MEMCG != 0)
        .and_then(|t| env.memcg_path(t.trigger_memcg_id));
    let trigger = Trigger {
        pid: task
            .map(|t| t.header.pid)
            .or(mark.map(|m| m.header.pid))
            .or(report.and_then(|r| r.trigger.as_ref()).map(|t| t.pid)),
        comm: task
            .map(|t| comm_str(&t.header.comm))
            .or(mark.map(|m| comm_str(&m.header.comm)))
            .or(header.map(|h| h.comm.clone())),
        memcg: trigger_memcg,
        gfp_mask: header
            .map(|h| h.gfp_mask)
            .or(p
                .invocation
                .as_ref()
                .and_then(|i| i.end)
                .map(|e| u64::from(e.gfp_mask)))
            .map(|mask| format!("{mask:#x}")),
        gfp_flags: header.and_then(|h| h.gfp_flags.clone()),
        order: header.map(|h| h.order).or(p
            .invocation
            .as_ref()
            .and_then(|i| i.end)
            .map(|e| e.order)),
    };

    // The victim's memcg and the chain above it, from the kernel.
    let chain: Vec<_> = task
        .filter(|t| t.valid & victim_valid::MEMCG != 0)
        .map(|t| t.memcg[..(t.memcg_depth as usize).min(t.memcg.len())].to_vec())
        .unwrap_or_default();
    let victim_memcg = chain
        .first()
        .and_then(|level| env.memcg_path(level.cgroup_id))
        .or_else(|| {
            report.and_then(|r| {
                r.constraint
                    .as_ref()
                    .and_then(|c| c.task_memcg.clone())
                    .or_else(|| r.task_in_line.as_ref().map(|(task, _)| task.clone()))
            })
        });

    // Which memcg hit its limit: the kernel report says; without it, the
    // level of the chain closest to its limit.
    let memory_counter = report.and_then(|r| r.counters.iter().find(|c| c.name == "memory"));
    let oom_memcg = if constraint == Some("memcg") {
        let report_path = report.and_then(|r| {
            r.constraint
                .as_ref()
                .and_then(|c| c.oom_memcg.clone())
                .or_else(|| {
                    // Journals cut long lines: an oom path that stops inside
                    // the task's own path component is that same memcg.
                    r.task_in_line.as_ref().map(|(task, oom)| {
                        match task.strip_prefix(oom.as_str()) {
                            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                                task.clone()
                            }
                            _ => oom.clone(),
                        }
                    })
                })
                // A report without a victim has no constraint line; the
                // memcg stats header names the memcg whose limit was hit.
                .or_else(|| r.memcg_stats_for.clone())
        });
        if let Some(counter) = memory_counter {
            Some(OomMemcg {
                path: report_path,
                limit_bytes: Some(counter.limit_kb * 1024),
                usage_bytes: Some(counter.usage_kb * 1024),
                source: "kernel_report".into(),
                usage_after_kill_bytes: None,
                swap_usage_bytes: None,
                swap_limit_bytes: None,
                memsw_limit_bytes: None,
                stat: None,
            })
        } else {
            let limited = chain
                .iter()
                .filter(|l| l.max_pages > 0 && l.max_pages < (u64::MAX / page_size))
                .min_by_key(|l| l.max_pages.saturating_sub(l.usage_pages));
            match limited {
                Some(level) => Some(OomMemcg {
                    path: env.memcg_path(level.cgroup_id).or(report_path),
                    limit_bytes: Some(pages(level.max_pages)),
                    usage_bytes: Some(pages(level.usage_pages)),
                    source: "bpf".into(),
                    usage_after_kill_bytes: None,
                    // Pages from the chain; `swap` and `memsw` share an offset,
                    // so which one this is depends on the hierarchy.
                    swap_usage_bytes: None,
                    swap_limit_bytes: None,
                    memsw_limit_bytes: None,
                    stat: None,
                }),
                None => report_path.map(|path| OomMemcg {
                    path: Some(path),
                    limit_bytes: None,
                    usage_bytes: None,
                    source: "kernel_report".into(),
                    usage_after_kill_bytes: None,
                    swap_usage_bytes: None,
                    swap_limit_bytes: None,
                    memsw_limit_bytes: None,
                    stat: None,
                }),
            }
        }
    } else {
        None
    };
    let kill_boot_ns = mark
        .map(|m| m.header.boot_ns)
        .or(task.map(|t| t.header.boot_ns));
    let oom_memcg = oom_memcg.map(|mut m| {
        let snapshot = m.path.as_deref().and_then(|path| env.memcg_snapshot(path));
        if let Some(files) = m.path.as_deref().and_then(|path| env.memcg_files(path)) {
            m.usage_after_kill_bytes = files.usage_bytes;
        }
        // Swap: the kernel's own lines first.
        if let Some(r) = report {
            for c in &r.counters {
                match c.name.as_str() {
                    "swap" => {
                        m.swap_usage_bytes = Some(c.usage_kb * 1024);
                        m.swap_limit_bytes = Some(c.limit_kb * 1024);
                    }
                    "memory+swap" => {
                        m.memsw_limit_bytes = Some(c.limit_kb * 1024);
                        m.swap_usage_bytes = memory_counter
                            .map(|mem| c.usage_kb.saturating_sub(mem.usage_kb) * 1024);
                    }
                    _ => {}
                }
            }
        }
        if let Some((snap, _)) = &snapshot {
            m.swap_usage_bytes = m.swap_usage_bytes.or(snap.swap_usage_bytes);
            if m.swap_limit_bytes.is_none() && m.memsw_limit_bytes.is_none() {
                match snap.kmem_usage_bytes.is_some()
                    || snap.stat.iter().any(|(k, _)| k == "total_rss")
                {
                    true => m.memsw_limit_bytes = snap.files.swap_limit_bytes,
                    false => m.swap_limit_bytes = snap.files.swap_limit_bytes,
                }
            }
        }
        // Composition: the report's stats were printed at the OOM itself;
        // the files read during the OOM stand in when the report is missing.
        let kmem = report
            .and_then(|r| r.counters.iter().find(|c| c.name == "kmem"))
            .map(|c| c.usage_kb * 1024);
        m.stat = report
            .filter(|r| !r.memcg_stats.is_empty())
            .and_then(|r| MemcgStat::from_keys("kernel_report", None, |k| r.memcg_stat(k), kmem))
            .or_else(|| {
                let (snap, read_ns) = snapshot.as_ref()?;
                let after = kill_boot_ns.map(|kill| (*read_ns as f64 - kill as f64) / 1e6);
                let stat = |k: &str| snap.stat.iter().find(|(key, _)| key == k).map(|&(_, v)| v);
                MemcgStat::from_keys("memcg_files", after, stat, snap.kmem_usage_bytes)
            });
        m
    });

    // totalpages as the kernel computed it for this OOM.
    let swap_total = env.swap_total_pages();
    let totalpages = match constraint {
        Some("memcg") => oom_memcg.as_ref().and_then(|m| m.limit_bytes).map(|limit| {
            let limit_pages = limit / page_size;
            let swap_allowance = report
                .and_then(|r| {
                    r.counters.iter().find_map(|c| match c.name.as_str() {
                        "memory+swap" => {
                            Some((c.limit_kb * 1024 / page_size).saturating_sub(limit_pages))
                        }
                        "swap" => Some(c.limit_kb * 1024 / page_size),
                        _ => None,
                    })
                })
                .unwrap_or(0);
            limit_pages + swap_allowance.min(swap_total.unwrap_or(0))
        }),
        Some("global") => env
            .mem_total_pages()
            .map(|ram| ram + swap_total.unwrap_or(0)),
        _ => None,
    };
    let end = p.invocation.as_ref().and_then(|i| i.end);
    // The kernel's own totalpages when the killer was hooked.
    let totalpages = end.map(|e| e.totalpages).filter(|&t| t > 0).or(totalpages);
    let swap_assumed = end.is_none() && swap_total.is_none() && totalpages.is_some();

    let release = report
        .and_then(|r| r.kernel_release.clone())
        .or_else(|| env.kernel_release());
    // Without a release, a task table with an oom_adj column dates the
    // kernel before 3.10 (per-mille scoring).
    let model = release
        .as_deref()
        .and_then(BadnessModel::for_release)
        .or_else(|| {
            report
                .and_then(|r| r.tasks.as_ref())
                .filter(|t| t.columns.iter().any(|c| c == "oom_adj"))
                .map(|_| BadnessModel::PerMille)
        });

    // Candidates: from the kernel's task table on this backend.
    let table = report.and_then(|r| r.tasks.as_ref());
    let mut candidates: Vec<Candidate> = table
        .map(|t| {
            t.rows
                .iter()
                .map(|row| {
                    let input = row_input(row, page_size);
                    let points = match (model, totalpages) {
                        (Some(model), Some(total)) => badness(model, input, total),
                        _ => None,
                    };
                    Candidate {
                        pid: row.pid,
                        tgid: Some(row.tgid),
                        uid: Some(row.uid),
                        comm: row.name.clone(),
                        memcg: None,
                        rss_bytes: pages(row.rss_pages),
                        rss_anon_bytes: row.rss_anon_pages.map(pages),
                        rss_file_bytes: row.rss_file_pages.map(pages),
                        rss_shmem_bytes: row.rss_shmem_pages.map(pages),
                        swap_bytes: row.swapents.map(pages),
                        pgtables_bytes: row
                            .pgtables_bytes
                            .or(row.nr_ptes.map(|n| pages(n + row.nr_pmds.unwrap_or(0)))),
                        oom_score_adj: row.oom_score_adj,
                        points,
                        eligible: row.oom_score_adj > crate::model::score::OOM_SCORE_ADJ_MIN,
                        victim: row.pid == p.victim_pid && p.victim_pid != 0,
                        skip_reason: (row.oom_score_adj <= crate::model::score::OOM_SCORE_ADJ_MIN)
                            .then_some(Cow::Borrowed("oom_score_adj_min")),
                        rss_source: Some(RssSource::KernelReport.label()),
                        points_source: points.map(|_| Cow::Borrowed("recomputed")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut candidates_source = if table.is_some() {
        "kernel_report"
    } else {
        "none"
    };
    // The killer's own evaluation replaces the printed table when hooked.
    let invocation = p.invocation.as_ref().filter(|i| !i.candidates.is_empty());
    // Which rss read this kernel's killer used, from its own numbers.
    let rss_rule = exact::rss_rule(
        invocation.map_or(&[], |i| i.candidates.as_slice()),
        totalpages,
        task,
        kill,
        table.map(|t| t.rows.as_slice()),
        page_size,
    );
    let mut points_recomputed = None;
    if let Some(inv) = invocation {
        let mut ordered = inv.candidates.clone();
        ordered.sort_by_key(|c| c.index);
        // Some builds inline oom_badness into oom_evaluate_task (Debian's
        // 5.10): the fexit on its out-of-line copy never fires for the killer.
        // The candidates' inputs are still the kernel's own; their points are
        // then recomputed with the kernel's rule (and the chosen task's checked
        // against oc->chosen_points below).
        let unscored = ordered
            .iter()
            .all(|c| c.flags & oomtrace_ebpf::candidate_flag::SCORED == 0);
        let recompute = match (unscored, model, totalpages) {
            (true, Some(model), Some(total)) => Some((model, total)),
            _ => None,
        };
        points_recomputed = recompute.map(|_| inv.end.map(|e| e.chosen_points));
        candidates = ordered
            .iter()
            .map(|c| bpf_candidate(c, p.victim_pid, page_size, recompute, rss_rule, env))
            .collect();
        candidates_source = "bpf";
    }

    // The victim, preferring the kernel's own numbers (tracepoint kB fields).
    let mark_has = |bit: u32| mark.filter(|m| m.present & bit != 0);
    let task_has = |bit: u32| task.filter(|t| t.valid & bit != 0);
    let victim_row = table.and_then(|t| t.rows.iter().find(|r| r.pid == p.victim_pid));
    let victim = (p.victim_pid != 0).then(|| {
        // The kill line's numbers first, else the kernel's read (model::exact).
        let rss = exact::victim_rss(kill, mark, task, rss_rule, page_size);
        let (rss_anon_bytes, rss_file_bytes, rss_shmem_bytes) =
            (rss.anon_bytes, rss.file_bytes, rss.shmem_bytes);
        let swap_bytes = rss
            .swap_bytes
            .or(victim_row.and_then(|r| r.swapents).map(pages));
        let pgtables_bytes = kb(mark_has(mark_victim_field::PGTABLES).map(|m| m.pgtables_kb))
            .or(task_has(victim_valid::PGTABLES).map(|t| t.pgtables_bytes.max(0) as u64))
            .or(victim_row.and_then(|r| {
                r.pgtables_bytes
                    .or(r.nr_ptes.map(|n| pages(n + r.nr_pmds.unwrap_or(0))))
            }))
            .or(kb(kill.and_then(|k| k.pgtables_kb)));
        let oom_score_adj = mark_has(mark_victim_field::OOM_SCORE_ADJ)
            .map(|m| i32::from(m.oom_score_adj))
            .or(task_has(victim_valid::OOM_SCORE_ADJ).map(|t| t.oom_score_adj))
            .or(kill.and_then(|k| k.oom_score_adj))
            .or(victim_row.map(|r| r.oom_score_adj));
        let kernel_points = p
            .invocation
            .as_ref()
            .and_then(|i| i.choice)
            .filter(|c| c.pid == p.victim_pid)
            .map(|c| (c.points, Cow::Borrowed("kernel")))
            .or(candidates
                .iter()
                .find(|c| c.victim)
                .and_then(|c| Some((c.points?, c.points_source.clone()?))));
        let points_source = kernel_points.as_ref().map(|(_, source)| source.clone());
        let points = kernel_points.map(|(points, _)| points).or_else(|| {
            let (model, total) = (model?, totalpages?);
            let rss = rss_anon_bytes? + rss_file_bytes? + rss_shmem_bytes?;
            let input = BadnessInput {
                rss_pages: rss / page_size,
                swap_pages: swap_bytes.unwrap_or(0) / page_size,
                pgtable_pages: pgtables_bytes.unwrap_or(0) / page_size,
                oom_score_adj: oom_score_adj?,
                uid: 1,
            };
            badness(model, input, total)
        });
        Victim {
            pid: p.victim_pid,
            tgid: task_has(victim_valid::IDENTITY)
                .map(|t| t.victim_tgid)
                .or(victim_row.map(|r| r.tgid)),
            comm: task_has(victim_valid::IDENTITY)
                .map(|t| comm_str(&t.victim_comm))
                .or(mark_has(mark_victim_field::COMM).map(|m| comm_str(&m.comm)))
                .or(kill.map(|k| k.comm.clone())),
            uid: mark_has(mark_victim_field::UID)
                .map(|m| m.uid)
                .or(kill.and_then(|k| k.uid))
                .or(victim_row.map(|r| r.uid)),
            memcg: victim_memcg.clone(),
            points,
            rss_anon_bytes,
            rss_file_bytes,
            rss_shmem_bytes,
            swap_bytes,
            pgtables_bytes,
            total_vm_bytes: kb(mark_has(mark_victim_field::TOTAL_VM).map(|m| m.total_vm_kb))
                .or(kb(kill.and_then(|k| k.total_vm_kb))),
            oom_score_adj,
            rss_source: rss.source.map(RssSource::label),
            points_source: points_source.or_else(|| points.map(|_| Cow::Borrowed("recomputed"))),
        }
    });
    if let Some(v) = &victim {
        for c in candidates.iter_mut().filter(|c| c.victim) {
            c.memcg = v.memcg.clone();
        }
    }

    let mut killed = Vec::new();
    if p.victim_pid != 0 {
        killed.push(p.victim_pid);
    }
    for pid in &p.group_kills {
        if !killed.contains(pid) {
            killed.push(*pid);
        }
    }

    let reaper_done = |step: u32| p.reaper_events.iter().any(|e| e.step == step);
    let reaper = if reaper_done(reaper_step::FINISH) || p.reaped.is_some() {
        Some("reaped")
    } else if reaper_done(reaper_step::SKIP) {
        Some("skipped")
    } else if !p.reaper_events.is_empty() {
        Some("queued")
    } else {
        None
    };
    let marked_ns = mark
        .map(|m| m.header.boot_ns)
        .or(task.map(|t| t.header.boot_ns));
    let freed = Freed {
        // Old kernels report no shmem split (file-rss included it): sum what was reported.
        rss_bytes: victim.as_ref().and_then(|v| {
            let parts = [v.rss_anon_bytes, v.rss_file_bytes, v.rss_shmem_bytes];
            parts
                .iter()
                .any(Option::is_some)
                .then(|| parts.iter().flatten().sum())
        }),
        swap_bytes: victim.as_ref().and_then(|v| v.swap_bytes),
        pgtables_bytes: victim.as_ref().and_then(|v| v.pgtables_bytes),
        reaper: reaper.map(Cow::Borrowed),
        anon_rss_after_reap_bytes: p.reaped.as_ref().map(|r| r.anon_rss_kb * 1024),
        exited: (sources.exit_hook || p.exit.is_some()).then_some(p.exit.is_some()),
        exit_after_ms: p.exit.as_ref().map(|e| {
            let from = marked_ns.unwrap_or(e.marked_boot_ns);
            e.header.boot_ns.saturating_sub(from) as f64 / 1e6
        }),
    };

    let reclaim = task
        .filter(|t| t.valid & victim_valid::TRIGGER_MEMCG != 0)
        .and_then(|t| {
            let stats = env.reclaim_stats(t.trigger_memcg_id)?;
            Some(ReclaimSummary {
                memcg: trigger.memcg.clone(),
                passes: stats.passes,
                empty_passes: stats.empty_passes,
                reclaimed_bytes: pages(stats.pages_reclaimed),
                time_ms: stats.total_ns as f64 / 1e6,
            })
        });

    if swap_assumed {
        explanation.push(
            "Swap size unknown here: totalpages assumes no swap (it only matters for the oom_score_adj term)."
                .to_owned(),
        );
    }

    let kernel_report = match report {
        Some(r) if r.complete => "complete",
        Some(_) => "incomplete",
        None => "missing",
    };

    explain(
        &mut explanation,
        ExplainInput {
            sources,
            constraint,
            oom_memcg: oom_memcg.as_ref(),
            victim_memcg: victim_memcg.as_deref(),
            trigger: &trigger,
            victim: victim.as_ref(),
            candidates: &candidates,
            candidates_source,
            points_recomputed,
            model,
            totalpages,
            page_size,
            report,
        },
    );

    let container = victim
        .as_ref()
        .and_then(|v| v.memcg.as_deref())
        .and_then(crate::cgroup::container::attribute);
    explain_container(&mut explanation, victim.as_ref(), container.as_ref());

    candidates.sort_by(|a, b| b.points.cmp(&a.points).then(b.victim.cmp(&a.victim)));

    Decision {
        envelope: Envelope::new("decision", time.map(rfc3339)),
        seq,
        constraint: constraint.map(Cow::Borrowed),
        backend: sources.backend.into(),
        trigger,
        oom_memcg,
        totalpages,
        page_size,
        badness_model: model,
        candidates,
        candidates_source: candidates_source.into(),
        rss_rule: rss_rule.map(|r| Cow::Borrowed(r.name())),
        candidates_dropped: invocation.and_then(|i| i.end).map(|e| e.dropped),
        victim,
        killed,
        container,
        oom_group: p.oom_group.clone(),
        freed,
        reclaim,
        kernel_report: kernel_report.into(),
        explanation,
        report_lines: report
            .map(|r| r.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default(),
        evidence: evidence(p),
        kernel_seconds: marked_ns.map(|ns| ns as f64 / 1e9).or_else(|| {
            report
                .and_then(|r| r.lines.first())
                .or(kill.map(|k| &k.source))
                .and_then(|l| l.timestamp)
        }),
    }
}

fn evidence(p: &Pending) -> Vec<serde_json::Value> {
    use crate::events::to_json;
    let mut events: Vec<Event> = Vec::new();
    events.extend(p.mark.map(Event::MarkVictim));
    events.extend(p.task.clone().map(Event::VictimTask));
    events.extend(p.reaper_events.iter().copied().map(Event::Reaper));
    events.extend(p.exit.map(Event::VictimExit));
    events.sort_by_key(|e| e.header().boot_ns);
    events.iter().map(to_json).collect()
}

/// What a person sees from outside: exit status 137, the container it hit.
fn explain_container(
    out: &mut Vec<String>,
    victim: Option<&Victim>,
    container: Option<&crate::cgroup::container::Container>,
) {
    let Some(v) = victim else { return };
    let who = v.comm.as_deref().unwrap_or("the victim");
    out.push(format!(
        "{who} (pid {}) was sent SIGKILL: its parent sees exit status 137 (128 + 9) and it could log nothing.",
        v.pid
    ));
    let Some(c) = container else { return };
    let id = c.id.as_deref().map(|id| &id[..id.len().min(12)]);
    let what = match (c.runtime, id, &c.pod_uid, &c.unit) {
        (_, _, Some(pod), _) => format!(
            "Kubernetes pod {pod}{}{}",
            c.qos_class.map_or(String::new(), |q| format!(" (QoS {q})")),
            id.map_or(String::new(), |id| format!(
                ", {} container {id}",
                c.runtime
            ))
        ),
        (runtime, Some(id), _, _) => format!("{runtime} container {id}"),
        ("systemd", None, _, Some(unit)) => format!("systemd unit {unit}"),
        (runtime, None, _, _) => format!(
            "{runtime} {}",
            c.name
                .as_deref()
                .or(c.unit.as_deref())
                .unwrap_or("container")
        ),
    };
    if c.runtime == "systemd" {
        out.push(format!(
            "The victim belongs to {what}; systemd records the unit's result as 'oom-kill'."
        ));
    } else if c.monitor {
        out.push(format!(
            "The victim is the runtime's monitor process of {what}, not the container's payload."
        ));
    } else {
        out.push(format!(
            "The victim ran in {what}: if it was the container's main process the runtime reports exit code 137 and OOMKilled: true."
        ));
    }
}

/// Finishes a decision's rss: remembers in `known` the read it learned, or
/// applies the one learned before to its candidates that could not tell
/// (an OOM whose only candidates sit at -1000 and whose table was
/// rate-limited), then explains (see `model::exact`). `events` are the decision's candidate
/// events (empty when the candidates are the kernel's table).
fn settle_rss(
    known: &mut Option<exact::RssRule>,
    decision: &mut Decision,
    events: &[oomtrace_ebpf::OomCandidateEvent],
) {
    match decision
        .rss_rule
        .as_deref()
        .and_then(exact::RssRule::from_name)
    {
        Some(rule) => *known = Some(rule),
        None => {
            if let Some(rule) = *known {
                decision.rss_rule = Some(Cow::Borrowed(rule.name()));
                let page = decision.page_size;
                for c in decision
                    .candidates
                    .iter_mut()
                    .filter(|c| c.rss_source.as_deref() == Some(RssSource::BpfApprox.name()))
                {
                    let Some(event) = events.iter().find(|e| e.pid == c.pid) else {
                        continue;
                    };
                    let (rss, source) = exact::candidate_rss(event, Some(rule));
                    c.rss_bytes = rss.rss() * page;
                    c.rss_anon_bytes = Some(rss.anon * page);
                    c.rss_file_bytes = Some(rss.file * page);
                    c.rss_shmem_bytes = Some(rss.shmem * page);
                    c.swap_bytes = Some(rss.swap * page);
                    c.rss_source = Some(source.label());
                }
            }
        }
    }
    let rule = decision
        .rss_rule
        .as_deref()
        .and_then(exact::RssRule::from_name);
    let lines = exact::explain(
        rule,
        decision.candidates.iter().map(|c| c.rss_source.as_deref()),
    );
    decision.explanation.extend(lines);
}

/// A candidate as the killer evaluated it (fentry/kprobe backends).
/// `recompute`: oom_badness was not seen (inlined), so the points of a task
/// the killer could have scored are computed with the kernel's rule.
fn bpf_candidate(
    c: &oomtrace_ebpf::OomCandidateEvent,
    victim_pid: u32,
    page_size: u64,
    recompute: Option<(BadnessModel, u64)>,
    rss_rule: Option<exact::RssRule>,
    env: &mut dyn Environment,
) -> Candidate {
    use oomtrace_ebpf::candidate_flag as flag;
    let pages = |n: u64| n * page_size;
    let has = |bit: u32| c.flags & bit != 0;
    let memory = has(flag::MEMORY);
    // The counters as this kernel's killer read them (central or summed).
    let (rss, rss_source) = exact::candidate_rss(c, rss_rule);
    let skipped_unscored =
        has(flag::ABORTED) || has(flag::OOM_VICTIM) || has(flag::KTHREAD) || has(flag::NO_MM);
    // The killer never scores init (oom_unkillable_task).
    let recomputed = recompute
        .filter(|_| memory && !skipped_unscored && c.tgid != 1)
        .map(|(model, total)| {
            let input = BadnessInput {
                rss_pages: rss.rss(),
                swap_pages: rss.swap,
                pgtable_pages: c.pgtables_bytes.max(0) as u64 / page_size,
                oom_score_adj: c.oom_score_adj,
                uid: c.uid,
            };
            badness(model, input, total)
        });
    let (scored, points) = match recomputed {
        Some(points) => (points.is_some(), points.unwrap_or(i64::MIN)),
        None => (has(flag::SCORED) && c.points != i64::MIN, c.points),
    };
    let kernel_scored = has(flag::SCORED) || recomputed.is_some();
    let skip_reason = if scored {
        None
    } else if has(flag::ABORTED) {
        Some("victim_exiting")
    } else if kernel_scored && c.oom_score_adj <= crate::model::score::OOM_SCORE_ADJ_MIN {
        Some("oom_score_adj_min")
    } else if has(flag::OOM_VICTIM) {
        Some("already_victim")
    } else if has(flag::KTHREAD) {
        Some("kernel_thread")
    } else if has(flag::NO_MM) {
        Some("no_mm")
    } else {
        Some("not_eligible")
    };
    Candidate {
        pid: c.pid,
        tgid: Some(c.tgid),
        uid: (c.uid != u32::MAX).then_some(c.uid),
        comm: comm_str(&c.comm),
        memcg: env.memcg_path(c.memcg_id),
        rss_bytes: pages(rss.rss()),
        rss_anon_bytes: memory.then(|| pages(rss.anon)),
        rss_file_bytes: memory.then(|| pages(rss.file)),
        rss_shmem_bytes: memory.then(|| pages(rss.shmem)),
        swap_bytes: memory.then(|| pages(rss.swap)),
        pgtables_bytes: memory.then_some(c.pgtables_bytes.max(0) as u64),
        oom_score_adj: c.oom_score_adj,
        points: scored.then_some(points),
        eligible: scored,
        victim: c.pid == victim_pid && victim_pid != 0,
        skip_reason: skip_reason.map(Cow::Borrowed),
        rss_source: memory.then(|| rss_source.label()),
        points_source: scored.then_some(match recomputed {
            Some(_) => Cow::Borrowed("recomputed"),
            None => Cow::Borrowed("kernel"),
        }),
    }
}

struct ExplainInput<'a> {
    sources: Sources,
    /// Some when candidate points were recomputed (oom_badness unseen): the
    /// kernel's `oc->chosen_points`, if known.
    points_recomputed: Option<Option<i64>>,
    constraint: Option<&'static str>,
    oom_memcg: Option<&'a OomMemcg>,
    victim_memcg: Option<&'a str>,
    trigger: &'a Trigger,
    victim: Option<&'a Victim>,
    candidates: &'a [Candidate],
    candidates_source: &'a str,
    model: Option<BadnessModel>,
    totalpages: Option<u64>,
    page_size: u64,
    report: Option<&'a KernelReport>,
}

/// Short factual sentences, each computed from the decision's data.
fn explain(out: &mut Vec<String>, x: ExplainInput<'_>) {
    use crate::base::units::human_bytes as hb;
    match (x.constraint, x.oom_memcg) {
        (Some("memcg"), Some(m)) => {
            let path = m.path.as_deref().unwrap_or("(unknown memcg)");
            let limit = m.limit_bytes.map_or("an unknown limit".to_owned(), hb);
            let usage = m
                .usage_bytes
                .map_or(String::new(), |u| format!(", {} in use", hb(u)));
            match x.victim_memcg {
                Some(own) if own != path => out.push(format!(
                    "An ancestor's limit fired: {path} reached its limit of {limit}{usage}; the victim lives in {own}, below it."
                )),
                _ => out.push(format!(
                    "The memcg's own limit fired: {path} reached its limit of {limit}{usage}."
                )),
            }
            if let Some(trigger_memcg) = &x.trigger.memcg
                && trigger_memcg != path
                && x.victim_memcg != Some(trigger_memcg.as_str())
            {
                out.push(format!(
                    "The failing charge came from {trigger_memcg}, a different memcg under {path}."
                ));
            }
        }
        (Some("memcg"), None) => out.push(
            "A memory cgroup limit fired; the report does not name the memcg or its limit."
                .to_owned(),
        ),
        (Some("global"), _) => out.push(
            "System-wide OOM: no cgroup limit was involved; the whole machine ran out of memory."
                .to_owned(),
        ),
        (Some(other), _) => out.push(format!("The OOM was constrained by {other}.")),
        _ => {}
    }

    match x.report {
        None if x.victim.is_some() && x.candidates.is_empty() => {
            out.push(
                "The kernel printed no report for this kill (dump_header is rate-limited to 10 per 5 s, or the log was not readable): the candidate list is unknown."
                    .to_owned(),
            );
            return;
        }
        None if x.victim.is_some() => out.push(
            "The kernel printed no report for this kill (dump_header is rate-limited to 10 per 5 s); the hooks saw the whole evaluation."
                .to_owned(),
        ),
        Some(report) if !report.complete => out.push(
            "The kernel's report is incomplete (cut off before its end): what it does not show is unknown."
                .to_owned(),
        ),
        _ => {}
    }
    if x.report.is_some_and(|r| r.no_killable) || (x.victim.is_none() && !x.candidates.is_empty()) {
        out.push(
            "The kernel found no killable process: every task left is unkillable (oom_score_adj -1000) or already exiting; the allocation fails instead."
                .to_owned(),
        );
        out.push(failed_allocation(x.trigger));
    }

    if let Some(v) = x.victim {
        let counted = v
            .rss_anon_bytes
            .zip(v.rss_file_bytes)
            .zip(v.rss_shmem_bytes)
            .map(|((a, f), s)| {
                a + f + s + v.swap_bytes.unwrap_or(0) + v.pgtables_bytes.unwrap_or(0)
            });
        if let Some(counted) = counted {
            let share = x
                .oom_memcg
                .and_then(|m| m.limit_bytes)
                .filter(|&l| l > 0)
                .map_or(String::new(), |l| {
                    format!(
                        " ({:.1}% of the limit; file pages may be charged to another memcg)",
                        counted as f64 * 100.0 / l as f64
                    )
                });
            out.push(format!(
                "Victim {} (pid {}) counted {} toward its badness{share}: rss {} (anon {}, file {}, shmem {}), swap {}, page tables {}, oom_score_adj {}.",
                v.comm.as_deref().unwrap_or("?"),
                v.pid,
                hb(counted),
                hb(v.rss_anon_bytes.unwrap_or(0) + v.rss_file_bytes.unwrap_or(0) + v.rss_shmem_bytes.unwrap_or(0)),
                hb(v.rss_anon_bytes.unwrap_or(0)),
                hb(v.rss_file_bytes.unwrap_or(0)),
                hb(v.rss_shmem_bytes.unwrap_or(0)),
                v.swap_bytes.map_or("unknown".to_owned(), hb),
                v.pgtables_bytes.map_or("unknown".to_owned(), hb),
                v.oom_score_adj.map_or("unknown".to_owned(), |a| a.to_string()),
            ));
        }
        if let (Some(adj), Some(total)) = (v.oom_score_adj, x.totalpages)
            && adj != 0
        {
            let term = i64::from(adj) * (total / 1000) as i64;
            out.push(format!(
                "oom_score_adj {adj} {} {} points ({}) to its score.",
                if term >= 0 { "added" } else { "removed" },
                term.abs(),
                hb(term.unsigned_abs() * x.page_size)
            ));
        }
    }

    if !x.candidates.is_empty() {
        if let (Some(model), Some(total)) = (x.model, x.totalpages) {
            if let (true, Some(chosen_points)) = (x.candidates_source == "bpf", x.points_recomputed)
            {
                let victim_points = x
                    .candidates
                    .iter()
                    .find(|c| c.victim)
                    .and_then(|c| c.points);
                let check = match (chosen_points, victim_points) {
                    (Some(kernel), Some(ours)) if kernel == ours => format!(
                        " The victim's recomputed {ours} points equal the kernel's own oc->chosen_points."
                    ),
                    (Some(kernel), Some(ours)) => format!(
                        " The victim's recomputed {ours} points differ from the kernel's oc->chosen_points {kernel}."
                    ),
                    _ => String::new(),
                };
                out.push(format!(
                    "Candidates are the killer's own evaluation: {} tasks visited; oom_badness is inlined on this kernel (its hook never fired), so points are recomputed from each task's counters with the kernel's rule ({}, totalpages {total}).{check}",
                    x.candidates.len(),
                    model.formula()
                ));
            } else if x.candidates_source == "bpf" {
                out.push(format!(
                    "Candidates are the killer's own evaluation: {} tasks visited, {} scored; points are oom_badness's return values ({}, totalpages {total}).",
                    x.candidates.len(),
                    x.candidates.iter().filter(|c| c.points.is_some()).count(),
                    model.formula()
                ));
            } else {
                out.push(format!(
                    "Candidates are the kernel's task table ({} tasks); points recomputed with the kernel's rule, {}, totalpages {total}.",
                    x.candidates.len(),
                    model.formula()
                ));
            }
            let points: Vec<Option<i64>> = x.candidates.iter().map(|c| c.points).collect();
            let expected = expected_choice(model, &points).map(|i| &x.candidates[i]);
            let eligible = x.candidates.iter().filter(|c| c.points.is_some()).count();
            let unkillable = x.candidates.len() - eligible;
            let victim_points = x
                .victim
                .and_then(|v| x.candidates.iter().find(|c| c.pid == v.pid))
                .and_then(|c| c.points);
            let tied = x
                .candidates
                .iter()
                .filter(|c| c.points.is_some() && c.points == victim_points)
                .count();
            match (expected, x.victim) {
                (Some(top), Some(v)) if top.pid != v.pid && tied > 1 && victim_points == top.points => {
                    out.push(format!(
                        "The victim was one of {tied} candidates tied at {} points; the kernel compares per-CPU approximations of rss, so ties break by counters not shown in the report.",
                        victim_points.unwrap_or(0)
                    ));
                }
                (Some(top), Some(v)) if top.pid == v.pid => {
                    let runner_up = x
                        .candidates
                        .iter()
                        .filter(|c| c.pid != top.pid && c.points.is_some())
                        .max_by_key(|c| c.points);
                    let next = runner_up.map_or(String::new(), |r| {
                        format!(
                            "; next was {} (pid {}) with {} points",
                            r.comm,
                            r.pid,
                            r.points.unwrap_or(0)
                        )
                    });
                    out.push(format!(
                        "The victim had the most points ({}) of {eligible} eligible candidates{next}.",
                        top.points.unwrap_or(0)
                    ));
                }
                (Some(top), Some(v)) => out.push(format!(
                    "The kernel killed {} (pid {}) although {} (pid {}) scored higher ({} points): the choice was not by badness (memory.oom.group, oom_kill_allocating_task, an exiting task, or a report taken at a different moment).",
                    v.comm.as_deref().unwrap_or("?"),
                    v.pid,
                    top.comm,
                    top.pid,
                    top.points.unwrap_or(0)
                )),
                _ => {}
            }
            let skipped = |reason: &str| {
                x.candidates
                    .iter()
                    .filter(|c| c.skip_reason.as_deref() == Some(reason))
                    .count()
            };
            for (reason, text) in [
                (
                    "oom_score_adj_min",
                    "had oom_score_adj -1000 and could not be chosen",
                ),
                (
                    "already_victim",
                    "were earlier victims already being reaped",
                ),
                (
                    "victim_exiting",
                    "were earlier victims still exiting: the kernel aborted this OOM to let them go",
                ),
                ("kernel_thread", "were kernel threads"),
                ("no_mm", "had no memory left (exiting)"),
                ("not_eligible", "were not eligible (cpuset or mempolicy)"),
            ] {
                let n = skipped(reason);
                if n > 0 {
                    out.push(format!("{n} task(s) {text}."));
                }
            }
            if x.candidates_source != "bpf" && unkillable > skipped("oom_score_adj_min") {
                out.push(format!(
                    "{} task(s) could not be scored.",
                    unkillable - skipped("oom_score_adj_min")
                ));
            }
        }
    } else if x.victim.is_some() && x.report.is_some_and(|r| r.tasks.is_none()) {
        out.push("The kernel's report has no task table (vm.oom_dump_tasks=0?).".to_owned());
    }
    if x.sources.backend == "tracepoint" && !x.candidates.is_empty() {
        out.push(
            "This kernel allows only tracepoints: the candidate list comes from the kernel's report, not from the killer's own evaluation."
                .to_owned(),
        );
    }
    if let Some(report) = x.report {
        explain_memory(out, &x, report);
    }
}

/// What the caller of a failed charge sees, from the allocation's gfp flags.
fn failed_allocation(trigger: &Trigger) -> String {
    let flags = trigger.gfp_flags.as_deref().unwrap_or("");
    let what = if flags.contains("ACCOUNT") {
        "a kernel-memory allocation charged to the memcg (e.g. fork's stacks and page tables, sockets, dentries): the system call fails with ENOMEM — fork reports 'Cannot allocate memory'"
    } else if flags.contains("HIGHUSER") {
        "user memory (a page fault or an explicit populate): an madvise/mlock/mmap(MAP_POPULATE) caller gets ENOMEM; a plain page fault retries the OOM path"
    } else {
        "an allocation whose caller gets ENOMEM"
    };
    format!(
        "{} (pid {}) asked for {} (order {}): {what}.",
        trigger.comm.as_deref().unwrap_or("The allocating task"),
        trigger.pid.map_or("?".to_owned(), |p| p.to_string()),
        trigger
            .gfp_flags
            .as_deref()
            .or(trigger.gfp_mask.as_deref())
            .unwrap_or("memory"),
        trigger.order.map_or("?".to_owned(), |o| o.to_string()),
    )
}

/// Memory-composition and ranking patterns: page cache vs anon, huge pages,
/// pages-not-kB, many small tasks, why not the biggest, old-kernel selection.
fn explain_memory(out: &mut Vec<String>, x: &ExplainInput<'_>, report: &KernelReport) {
    use crate::base::units::human_bytes as hb;
    let stat = |keys: &[&str]| keys.iter().find_map(|k| report.memcg_stat(k));

    // What the memcg's usage was made of (v1 prefers the hierarchical total_*).
    let anon = stat(ANON_KEYS);
    let file = stat(FILE_KEYS);
    if let (Some(anon), Some(file)) = (anon, file) {
        let shmem = stat(SHMEM_KEYS).unwrap_or(0);
        let usage = x
            .oom_memcg
            .and_then(|m| m.usage_bytes)
            .filter(|&u| u > 0)
            .unwrap_or(anon + file);
        let pct = |v: u64| v as f64 * 100.0 / usage.max(1) as f64;
        let active = stat(ACTIVE_FILE_KEYS);
        let inactive = stat(INACTIVE_FILE_KEYS);
        let lru = match (active, inactive) {
            (Some(a), Some(i)) => format!(": {} active, {} inactive", hb(a), hb(i)),
            _ => String::new(),
        };
        out.push(format!(
            "At the OOM the memcg held {} anonymous memory ({:.0}% of usage) and {} page cache ({:.0}%{lru}){}. Usage counts page cache, but reclaim had already shrunk it to this before the kill; the killer ranks tasks by rss + swap + page tables, not by the memcg's usage.",
            hb(anon),
            pct(anon),
            hb(file),
            pct(file),
            if shmem > 0 { format!(", of which {} shmem/tmpfs (not reclaimable without swap)", hb(shmem)) } else { String::new() },
        ));
        if let Some(kernel) = stat(&["kernel"]).filter(|&k| k * 10 >= usage) {
            out.push(format!(
                "Kernel memory (slab, stacks, page tables, sockets) charged to the memcg was {} ({:.0}% of usage): no task's rss shows it, and killing a task frees only part of it.",
                hb(kernel),
                pct(kernel)
            ));
        }
    }
    if let Some(huge) = stat(&["total_rss_huge", "anon_thp", "rss_huge"]).filter(|&h| h > 0) {
        out.push(format!(
            "{} of the anonymous memory was transparent huge pages (2 MiB each).",
            hb(huge)
        ));
    }

    // The task table is in pages, a classic misreading.
    if let (Some(v), Some(row)) = (
        x.victim,
        report.tasks.as_ref().and_then(|t| {
            t.rows
                .iter()
                .find(|r| x.victim.is_some_and(|v| v.pid == r.pid))
        }),
    ) {
        out.push(format!(
            "The kernel's task table counts memory in pages of {}: {}'s rss column {} means {}, not {} kB.",
            hb(x.page_size),
            v.comm.as_deref().unwrap_or("the victim"),
            row.rss_pages,
            hb(row.rss_pages * x.page_size),
            row.rss_pages
        ));
    }

    // Old kernels: the selected task and the child sacrificed in its place.
    if let Some(selected) = &report.selected {
        let killed = report.kill.as_ref();
        let tasks = report.tasks.as_ref().map_or(String::new(), |t| {
            format!("{}{}", t.rows.len(), if t.elided_rows { "+" } else { "" })
        });
        let first = report.tasks.as_ref().and_then(|t| t.rows.first());
        if x.model == Some(BadnessModel::PerMille) && selected.score <= 1 {
            out.push(format!(
                "The kernel scored tasks per mille of the limit: every task under 0.1% of it gets the minimum score 1, so all {tasks} tasks tied and the first one found won — {} (pid {}){}.",
                selected.comm,
                selected.pid,
                if first.is_some_and(|f| f.pid == selected.pid) { ", the first row of the task table" } else { "" }
            ));
        } else {
            let ours = x
                .candidates
                .iter()
                .find(|c| c.pid == selected.pid)
                .and_then(|c| Some(c.points? * 1000 / x.totalpages.filter(|&t| t > 0)? as i64));
            out.push(format!(
                "The kernel selected {} (pid {}) with score {} (points × 1000 / totalpages){}.",
                selected.comm,
                selected.pid,
                selected.score,
                match ours {
                    Some(ours) if ours == selected.score => " — the recomputed points give the same score".to_owned(),
                    Some(ours) => format!(" — the recomputed points give {ours}: the report's numbers moved between scoring and printing"),
                    None => String::new(),
                }
            ));
        }
        if let Some(k) = killed.filter(|k| k.pid != selected.pid) {
            out.push(format!(
                "Kernels before 5.x sacrificed a child: {} (pid {}) was killed in place of {} (pid {}), so the selected process kept running.",
                k.comm, k.pid, selected.comm, selected.pid
            ));
        }
    }

    let eligible: Vec<&Candidate> = x.candidates.iter().filter(|c| c.points.is_some()).collect();
    let Some(v) = x.victim else { return };
    let limit = x.oom_memcg.and_then(|m| m.limit_bytes).filter(|&l| l > 0);

    // Many small tasks: no single kill frees much.
    if let Some(limit) = limit
        && eligible.len() >= 10
    {
        let share = |c: &Candidate| c.rss_bytes as f64 * 100.0 / limit as f64;
        let largest = eligible.iter().map(|c| share(c)).fold(0.0, f64::max);
        if largest < 20.0 {
            let victim_rss = x
                .candidates
                .iter()
                .find(|c| c.pid == v.pid)
                .map_or(0, |c| c.rss_bytes);
            out.push(format!(
                "{} eligible tasks and none above {largest:.1}% of the limit: killing the top one frees only {}. Many small workers leave the killer little to gain per kill (an OOM storm follows); memory.oom.group=1 kills the whole group instead.",
                eligible.len(),
                hb(victim_rss)
            ));
        }
    }

    // Why not the biggest task.
    if let Some(biggest) = x.candidates.iter().max_by_key(|c| c.rss_bytes)
        && biggest.pid != v.pid
        && biggest.rss_bytes > 0
    {
        let victim_adj = v.oom_score_adj.unwrap_or(0);
        let reason = if !biggest.eligible {
            format!(
                "has oom_score_adj {} and can never be chosen",
                biggest.oom_score_adj
            )
        } else if biggest.oom_score_adj < victim_adj {
            format!(
                "has oom_score_adj {} against the victim's {victim_adj}, which moved the victim ahead",
                biggest.oom_score_adj
            )
        } else if report.selected.as_ref().is_some_and(|s| s.pid != v.pid) {
            "was not the task the kernel selected (see the selection above)".to_owned()
        } else if biggest.points.is_none() {
            "could not be compared: the points are unknown for this report".to_owned()
        } else if x
            .candidates
            .iter()
            .find(|c| c.pid == v.pid)
            .and_then(|c| c.points)
            >= biggest.points
        {
            "has fewer points once swap and page tables are counted".to_owned()
        } else {
            "scored higher; the kernel's choice was not by badness here".to_owned()
        };
        out.push(format!(
            "The biggest task, {} (pid {}, rss {}), was not killed: it {reason}.",
            biggest.comm,
            biggest.pid,
            hb(biggest.rss_bytes)
        ));
    }
}

/// What is known when rebuilding from a saved kernel log: only the log.
#[derive(Debug, Default)]
pub struct OfflineEnv {
    pub page_size: u64,
}

impl Environment for OfflineEnv {
    fn memcg_path(&mut self, _cgroup_id: u64) -> Option<String> {
        None
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
    fn page_size(&self) -> u64 {
        self.page_size
    }
    fn kernel_release(&self) -> Option<String> {
        None
    }
    fn reclaim_stats(&self, _memcg_id: u64) -> Option<MemcgReclaimStats> {
        None
    }
    fn wall_time_of_boot_ns(&self, _boot_ns: u64) -> Option<SystemTime> {
        None
    }
    fn wall_time_of_log_seconds(&self, _seconds: f64) -> Option<SystemTime> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::report::parse_log;

    fn fixtures() -> Vec<PathBuf> {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/kernel-reports"
        ));
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        assert!(logs.len() >= 30, "fixtures missing in {}", dir.display());
        logs
    }

    fn items(path: &PathBuf) -> Vec<ReportItem> {
        parse_log(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Rebuilds decisions from a log the way `oomtrace report` does.
    fn decisions(path: &PathBuf) -> Vec<Decision> {
        let sources = Sources::KERNEL_REPORT;
        let mut builder = Builder::new(sources, Vec::new());
        let start = Instant::now();
        for item in items(path) {
            builder.on_report(start, item);
        }
        let mut env = OfflineEnv { page_size: 4096 };
        builder.poll(start + DEADLINE, &mut env)
    }

    /// For every complete report of every kernel, the candidate our scoring
    /// ranks first is the task the kernel killed: the kernel is the oracle.
    #[test]
    fn recomputed_ranking_picks_the_kernels_victim_in_every_fixture() {
        let mut checked = 0;
        for path in fixtures() {
            for item in items(&path) {
                let ReportItem::Report(report) = item else {
                    continue;
                };
                let (Some(kill), Some(table), Some(release)) =
                    (&report.kill, &report.tasks, &report.kernel_release)
                else {
                    continue;
                };
                let Some(memory) = report.counter("memory") else {
                    continue; // global OOM: totalpages needs the machine's RAM
                };
                let model = BadnessModel::for_release(release).unwrap();
                let totalpages = memory.limit_kb / 4;
                let points: Vec<Option<i64>> = table
                    .rows
                    .iter()
                    .map(|row| badness(model, row_input(row, 4096), totalpages))
                    .collect();
                let best = points.iter().flatten().max().copied();
                let killed_points = table
                    .rows
                    .iter()
                    .zip(&points)
                    .find(|(row, _)| row.pid == kill.pid || row.tgid == kill.pid)
                    .and_then(|(_, p)| *p);
                // Ties at the top are possible: the table is printed after the
                // choice and rss counters are per-CPU approximations, so equal
                // rows need not have been equal when the killer compared them.
                assert_eq!(
                    killed_points,
                    best,
                    "{}: kernel killed {} ({}) with {killed_points:?} points, the best is {best:?}",
                    path.display(),
                    kill.pid,
                    kill.comm,
                );
                assert!(expected_choice(model, &points).is_some());
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} reports checked");
    }

    #[test]
    fn decisions_from_logs_carry_the_reports_numbers() {
        for path in fixtures() {
            let raw_items = items(&path);
            let reports: Vec<&KernelReport> = raw_items
                .iter()
                .filter_map(|i| match i {
                    ReportItem::Report(r) => Some(r),
                    _ => None,
                })
                .collect();
            let built = decisions(&path);
            for report in reports.iter().filter(|r| r.kill.is_some()) {
                let kill = report.kill.as_ref().unwrap();
                let d = built
                    .iter()
                    .find(|d| d.victim.as_ref().is_some_and(|v| v.pid == kill.pid))
                    .unwrap_or_else(|| panic!("{}: no decision for {}", path.display(), kill.pid));
                let v = d.victim.as_ref().unwrap();
                assert_eq!(v.comm.as_deref(), Some(kill.comm.as_str()));
                assert_eq!(v.rss_anon_bytes, kill.anon_rss_kb.map(|k| k * 1024));
                assert_eq!(v.rss_file_bytes, kill.file_rss_kb.map(|k| k * 1024));
                assert_eq!(
                    d.candidates_source,
                    if report.tasks.is_some() {
                        "kernel_report"
                    } else {
                        "none"
                    }
                );
                if let Some(table) = &report.tasks {
                    assert_eq!(d.candidates.len(), table.rows.len());
                }
                if let (Some(memory), Some(constraint)) =
                    (report.counter("memory"), &report.constraint)
                {
                    let m = d.oom_memcg.as_ref().unwrap();
                    assert_eq!(m.limit_bytes, Some(memory.limit_kb * 1024));
                    assert_eq!(m.usage_bytes, Some(memory.usage_kb * 1024));
                    assert_eq!(m.path, constraint.oom_memcg);
                    assert_eq!(v.memcg, constraint.task_memcg);
                    if let Some(swap) = report.counter("swap") {
                        assert_eq!(m.swap_usage_bytes, Some(swap.usage_kb * 1024));
                        assert_eq!(m.swap_limit_bytes, Some(swap.limit_kb * 1024));
                    }
                    if let Some(memsw) = report.counter("memory+swap") {
                        assert_eq!(m.memsw_limit_bytes, Some(memsw.limit_kb * 1024));
                        let swap = (memsw.usage_kb - memory.usage_kb) * 1024;
                        assert_eq!(m.swap_usage_bytes, Some(swap));
                    }
                    let anon = ["total_rss", "anon", "rss"]
                        .iter()
                        .find_map(|k| report.memcg_stat(k));
                    if let Some(anon) = anon {
                        let stat = m.stat.as_ref().unwrap();
                        assert_eq!(stat.source, "kernel_report");
                        assert_eq!(stat.anon_bytes, Some(anon));
                    }
                }
            }
        }
    }

    /// Without the report's memcg stats (a storm, a lost kmsg record), the
    /// memcg's files read during the OOM say what its memory was made of.
    #[test]
    fn memcg_files_read_during_the_oom_stand_in_for_missing_stats() {
        struct SnapshotEnv(OfflineEnv);
        impl Environment for SnapshotEnv {
            fn memcg_path(&mut self, id: u64) -> Option<String> {
                self.0.memcg_path(id)
            }
            fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
                self.0.memcg_files(relative)
            }
            fn swap_total_pages(&self) -> Option<u64> {
                None
            }
            fn mem_total_pages(&self) -> Option<u64> {
                None
            }
            fn page_size(&self) -> u64 {
                4096
            }
            fn kernel_release(&self) -> Option<String> {
                None
            }
            fn reclaim_stats(&self, _: u64) -> Option<MemcgReclaimStats> {
                None
            }
            fn wall_time_of_boot_ns(&self, _: u64) -> Option<SystemTime> {
                None
            }
            fn wall_time_of_log_seconds(&self, _: f64) -> Option<SystemTime> {
                None
            }
            fn memcg_snapshot(&self, relative: &str) -> Option<(MemcgSnapshot, u64)> {
                (relative == "/oomtest").then(|| {
                    let stat = [
                        ("anon", 1 << 20),
                        ("file", 3 << 20),
                        ("active_file", 1 << 20),
                    ];
                    let snapshot = MemcgSnapshot {
                        stat: stat.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
                        swap_usage_bytes: Some(0),
                        ..Default::default()
                    };
                    (snapshot, 5)
                })
            }
        }
        let path = fixtures()
            .into_iter()
            .find(|p| p.ends_with("6.1.0-50-amd64-a-v2-single-hog.log"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // Drop the "Memory cgroup stats" block: the lines from its header to
        // the task table.
        let mut skipping = false;
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                if l.contains("Memory cgroup stats for") {
                    skipping = true;
                } else if l.contains("Tasks state") {
                    skipping = false;
                }
                !skipping
            })
            .collect();
        let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
        let start = Instant::now();
        for item in parse_log(kept.join("\n").as_bytes()).unwrap() {
            builder.on_report(start, item);
        }
        let built = builder.poll(
            start + DEADLINE,
            &mut SnapshotEnv(OfflineEnv { page_size: 4096 }),
        );
        let m = built[0].oom_memcg.as_ref().unwrap();
        let stat = m.stat.as_ref().unwrap();
        assert_eq!(stat.source, "memcg_files");
        assert_eq!(
            (stat.anon_bytes, stat.file_bytes),
            (Some(1 << 20), Some(3 << 20))
        );
        assert_eq!(stat.inactive_file_bytes, None);
        // Swap still comes from the report's own line.
        assert_eq!(m.swap_limit_bytes, Some(0));
    }

    #[test]
    fn hierarchy_fixture_names_the_parent() {
        for path in fixtures()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("hierarchy"))
        {
            let d = &decisions(&path)[0];
            let m = d.oom_memcg.as_ref().unwrap();
            let own = d.victim.as_ref().unwrap().memcg.clone().unwrap();
            let oom = m.path.clone().unwrap();
            assert!(own.starts_with(&format!("{oom}/")), "{}", path.display());
            assert!(
                d.explanation
                    .iter()
                    .any(|e| e.contains("ancestor's limit") && e.contains(&oom)),
                "{}: {:?}",
                path.display(),
                d.explanation
            );
        }
    }

    #[test]
    fn oom_group_sweep_is_one_decision_killing_the_group() {
        for path in fixtures()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("oom-group"))
        {
            let raw = items(&path);
            let group_kills: Vec<u32> = raw
                .iter()
                .filter_map(|i| match i {
                    ReportItem::Kill(k) => Some(k.pid),
                    _ => None,
                })
                .collect();
            let built = decisions(&path);
            assert_eq!(built.len(), 1, "{}", path.display());
            let d = &built[0];
            assert!(d.oom_group.is_some());
            for pid in group_kills {
                assert!(
                    d.killed.contains(&pid),
                    "{}: {pid} not in {:?}",
                    path.display(),
                    d.killed
                );
            }
        }
    }

    #[test]
    fn many_small_tasks_are_called_out() {
        let path = fixtures()
            .into_iter()
            .find(|p| {
                p.to_string_lossy()
                    .contains("6.1.0-50-amd64-c-v2-many-procs.log")
            })
            .unwrap();
        let raw = items(&path);
        let first_rows = raw
            .iter()
            .find_map(|i| match i {
                ReportItem::Report(r) => r.tasks.as_ref().map(|t| t.rows.len()),
                _ => None,
            })
            .unwrap();
        let d = &decisions(&path)[0];
        assert!(
            d.explanation
                .iter()
                .any(|e| e.starts_with(&format!("{first_rows} eligible tasks and none above"))),
            "{:?}",
            d.explanation
        );
    }

    #[test]
    fn kernel_memory_share_is_explained() {
        let report = KernelReport {
            complete: true,
            memcg_stats: vec![
                ("anon".into(), 40 << 20),
                ("file".into(), 4 << 20),
                ("kernel".into(), 20 << 20),
            ],
            ..KernelReport::default()
        };
        let oom_memcg = OomMemcg {
            path: Some("/app".into()),
            limit_bytes: Some(64 << 20),
            usage_bytes: Some(64 << 20),
            source: "kernel_report".into(),
            usage_after_kill_bytes: None,
            swap_usage_bytes: None,
            swap_limit_bytes: None,
            memsw_limit_bytes: None,
            stat: None,
        };
        let trigger = Trigger {
            pid: None,
            comm: None,
            memcg: None,
            gfp_mask: None,
            gfp_flags: None,
            order: None,
        };
        let mut out = Vec::new();
        let x = ExplainInput {
            sources: Sources::KERNEL_REPORT,
            points_recomputed: None,
            constraint: Some("memcg"),
            oom_memcg: Some(&oom_memcg),
            victim_memcg: Some("/app"),
            trigger: &trigger,
            victim: None,
            candidates: &[],
            candidates_source: "none",
            model: None,
            totalpages: None,
            page_size: 4096,
            report: Some(&report),
        };
        explain_memory(&mut out, &x, &report);
        assert!(
            out.iter()
                .any(|e| e.starts_with("Kernel memory") && e.contains("20.0 MiB (31% of usage)")),
            "{out:?}"
        );
    }

    #[test]
    fn storms_without_reports_say_the_table_is_missing() {
        let storm = fixtures()
            .into_iter()
            .find(|p| {
                p.to_string_lossy()
                    .contains("5.10.0-32-amd64-c-v2-many-procs.log")
            })
            .unwrap();
        let raw = items(&storm);
        let kills = raw
            .iter()
            .filter(|i| matches!(i, ReportItem::Kill(_)))
            .count();
        let built = decisions(&storm);
        let missing: Vec<&Decision> = built
            .iter()
            .filter(|d| d.kernel_report == "missing")
            .collect();
        assert_eq!(missing.len(), kills);
        for d in missing {
            assert_eq!(d.candidates_source, "none");
            assert!(d.explanation.iter().any(|e| e.contains("rate-limited")));
        }
    }

    /// One task failing its charge three times with nothing to kill: the
    /// killer's evaluations come first (ring buffer), the reports later
    /// (kernel log); each report goes with its own evaluation, in order.
    #[test]
    fn repeated_no_victim_reports_pair_with_their_own_invocations() {
        use oomtrace_ebpf::{EventHeader, OomCandidateEvent, OomEndEvent, kind};
        let log = std::fs::read(
            fixtures()
                .into_iter()
                .find(|p| {
                    std::fs::read_to_string(p)
                        .is_ok_and(|t| t.contains("Out of memory and no killable processes"))
                })
                .expect("a no-killable fixture"),
        )
        .unwrap();
        let reports: Vec<KernelReport> = parse_log(&log)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                ReportItem::Report(r) if r.no_killable => Some(r),
                _ => None,
            })
            .collect();
        let first = reports.first().expect("a no-killable report");
        let trigger = first.trigger.as_ref().unwrap().pid;
        let sources = Sources {
            backend: "fentry",
            victim_task_hook: true,
            exit_hook: false,
            oom_path_hooks: true,
        };
        let mut builder = Builder::new(sources, Vec::new());
        let now = Instant::now();
        let header = |k: u32| EventHeader {
            kind: k,
            pid: trigger,
            tgid: trigger,
            ..Default::default()
        };
        for seq in 1..=3u64 {
            builder.on_event(
                now,
                Event::OomCandidate(OomCandidateEvent {
                    header: header(kind::OOM_CANDIDATE),
                    oom_seq: seq,
                    pid: trigger,
                    tgid: trigger,
                    oom_score_adj: -1000,
                    rss_anon_pages: seq as i64 * 100,
                    flags: oomtrace_ebpf::candidate_flag::MEMORY,
                    ..Default::default()
                }),
            );
            builder.on_event(
                now,
                Event::OomEnd(OomEndEvent {
                    header: header(kind::OOM_END),
                    oom_seq: seq,
                    candidates: 1,
                    ..Default::default()
                }),
            );
        }
        for n in 1..=3 {
            let mut report = first.clone();
            report.lines.truncate(n);
            builder.on_report(now, ReportItem::Report(report));
        }
        let mut decisions = builder.flush(&mut OfflineEnv { page_size: 4096 });
        decisions.sort_by_key(|d| d.report_lines.len());
        let anon: Vec<Option<u64>> = decisions
            .iter()
            .map(|d| d.candidates[0].rss_anon_bytes)
            .collect();
        assert_eq!(
            anon,
            [Some(100 * 4096), Some(200 * 4096), Some(300 * 4096)],
            "report n goes with evaluation n"
        );
    }

    #[test]
    fn only_unkillable_reports_are_decisions_without_victim() {
        for path in fixtures()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("only-unkillable"))
        {
            let built = decisions(&path);
            assert!(!built.is_empty());
            for d in &built {
                assert!(d.victim.is_none());
                assert!(d.killed.is_empty());
                assert!(
                    d.explanation
                        .iter()
                        .any(|e| e.contains("no killable process"))
                );
            }
        }
    }
}
