//! Rebuilding the kernel's decision from what each source saw: eBPF events
//! (the victim, its memcg chain, reaper steps, its exit) and the kernel's own
//! OOM report (trigger, limit, the task table). Pieces are matched by victim
//! pid and a decision is emitted once it is complete or its deadline passes.
use std::time::{Duration, Instant, SystemTime};

use oomtrace_ebpf::{
    MarkVictimEvent, MemcgReclaimStats, VictimExitEvent, VictimTaskEvent, mark_victim_field,
    reaper_step, victim_valid,
};
use serde::Serialize;

use crate::{
    cgroup::{MemcgFiles, ScopeCgroup},
    events::{Event, comm_str},
    report::{KernelReport, KillLine, ReapedLine, ReportItem, TaskRow},
    score::{BadnessInput, BadnessModel, badness, expected_choice},
};

pub const SCHEMA_VERSION: u32 = 1;

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
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trigger {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub memcg: Option<String>,
    pub gfp_mask: Option<String>,
    pub gfp_flags: Option<String>,
    pub order: Option<i32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OomMemcg {
    pub path: Option<String>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Where limit/usage come from: "kernel_report" or "bpf" (page counters read at the kill).
    pub source: &'static str,
    /// memcg usage read from its files once the victim was gone (live mode only).
    pub usage_after_kill_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Freed {
    /// The victim's resident memory at the kill (anon + file + shmem).
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    /// "reaped", "skipped", "queued" (woken but no outcome seen) or null (reaper not involved).
    pub reaper: Option<&'static str>,
    /// anon rss left after the reaper, from "oom_reaper: reaped process" (kB line).
    pub anon_rss_after_reap_bytes: Option<u64>,
    pub exited: bool,
    pub exit_after_ms: Option<f64>,
}

/// Memcg reclaim in the allocating task's memcg, counted in the kernel since
/// tracing began: passes that reclaimed nothing are the steps before a charge fails.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReclaimSummary {
    pub memcg: Option<String>,
    pub passes: u64,
    pub empty_passes: u64,
    pub reclaimed_bytes: u64,
    pub time_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    #[serde(rename = "type")]
    pub record_type: &'static str,
    pub schema_version: u32,
    pub seq: u64,
    pub time: String,
    pub constraint: Option<&'static str>,
    pub backend: &'static str,
    pub trigger: Trigger,
    pub oom_memcg: Option<OomMemcg>,
    pub totalpages: Option<u64>,
    pub page_size: u64,
    pub badness_model: Option<BadnessModel>,
    pub candidates: Vec<Candidate>,
    pub candidates_source: &'static str,
    pub victim: Option<Victim>,
    pub killed: Vec<u32>,
    pub oom_group: Option<String>,
    pub freed: Freed,
    pub reclaim: Option<ReclaimSummary>,
    /// "complete", "incomplete" (cut short) or "missing" (rate-limited or not seen).
    pub kernel_report: &'static str,
    pub explanation: Vec<String>,
    /// The kernel's report lines, as evidence (for dumps); not in the live JSON.
    #[serde(skip)]
    pub report_lines: Vec<String>,
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
    reaper_steps: Vec<u32>,
    reaped: Option<ReapedLine>,
    exit: Option<VictimExitEvent>,
    complete_since: Option<Instant>,
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
    /// Decisions given up on because `MAX_PENDING` was reached.
    pub evicted: u64,
}

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
            evicted: 0,
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
                    p.reaper_steps.push(reaper.step);
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
        }
    }

    /// Takes one item from the kernel log. Reports of OOMs that killed
    /// nothing are decisions on their own and come back at the next `poll`.
    pub fn on_report(&mut self, now: Instant, item: ReportItem) {
        match item {
            ReportItem::Report(report) => {
                self.group_sweep = None;
                let pid = report.kill.as_ref().map_or(0, |k| k.pid);
                let pending = self.pending_for(now, pid, |p| p.report.is_none() && pid != 0);
                pending.report = Some(report);
            }
            ReportItem::OomGroup { memcg, .. } => {
                if let Some(p) = self.pending.last_mut() {
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
        if p.victim_pid == 0 {
            // "no killable processes": the report is all there is.
            return p.report.is_some();
        }
        let has_kill = p.kill_line().is_some();
        let has_bpf = p.mark.is_some() && (p.task.is_some() || !self.sources.victim_task_hook);
        has_kill && has_bpf
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
            decisions.push(assemble(self.seq, self.sources, &pending, env));
        }
        decisions
    }

    fn in_scope(&self, p: &Pending) -> bool {
        if self.scope.is_empty() {
            return true;
        }
        if self.sources.victim_task_hook {
            // Filtered in the kernel: the raw event only exists for victims in scope.
            return p.task.is_some();
        }
        let report_paths = p.report.as_ref().and_then(|r| {
            r.constraint
                .as_ref()
                .and_then(|c| c.task_memcg.clone().or(c.oom_memcg.clone()))
                .or_else(|| r.task_in_line.as_ref().map(|(task, _)| task.clone()))
        });
        report_paths.is_some_and(|path: String| self.scope.iter().any(|s| s.contains(&path)))
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

fn rfc3339(time: SystemTime) -> String {
    let time: time::OffsetDateTime = time.into();
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
        })
        .unwrap_or_else(SystemTime::now);

    let constraint = report
        .and_then(|r| r.constraint.as_ref())
        .and_then(|c| constraint_name(&c.constraint))
        .or_else(|| kill.map(|k| if k.memcg_oom { "memcg" } else { "global" }));

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
        gfp_mask: header.map(|h| format!("{:#x}", h.gfp_mask)),
        gfp_flags: header.and_then(|h| h.gfp_flags.clone()),
        order: header.map(|h| h.order),
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
            report
                .and_then(|r| r.constraint.as_ref())
                .and_then(|c| c.task_memcg.clone())
        });

    // Which memcg hit its limit: the kernel report says; without it, the
    // level of the chain closest to its limit.
    let memory_counter = report.and_then(|r| r.counters.iter().find(|c| c.name == "memory"));
    let oom_memcg = if constraint == Some("memcg") {
        let report_path = report.and_then(|r| {
            r.constraint
                .as_ref()
                .and_then(|c| c.oom_memcg.clone())
                .or_else(|| r.task_in_line.as_ref().map(|(_, oom)| oom.clone()))
        });
        if let Some(counter) = memory_counter {
            Some(OomMemcg {
                path: report_path,
                limit_bytes: Some(counter.limit_kb * 1024),
                usage_bytes: Some(counter.usage_kb * 1024),
                source: "kernel_report",
                usage_after_kill_bytes: None,
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
                    source: "bpf",
                    usage_after_kill_bytes: None,
                }),
                None => report_path.map(|path| OomMemcg {
                    path: Some(path),
                    limit_bytes: None,
                    usage_bytes: None,
                    source: "kernel_report",
                    usage_after_kill_bytes: None,
                }),
            }
        }
    } else {
        None
    };
    let oom_memcg = oom_memcg.map(|mut m| {
        if let Some(files) = m.path.as_deref().and_then(|path| env.memcg_files(path)) {
            m.usage_after_kill_bytes = files.usage_bytes;
        }
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
    if swap_total.is_none() && totalpages.is_some() {
        explanation.push(
            "Swap size unknown: totalpages assumes no swap (it only matters for the oom_score_adj term)."
                .to_owned(),
        );
    }

    let release = report
        .and_then(|r| r.kernel_release.clone())
        .or_else(|| env.kernel_release());
    let model = release.as_deref().and_then(BadnessModel::for_release);

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
                        eligible: row.oom_score_adj > crate::score::OOM_SCORE_ADJ_MIN,
                        victim: row.pid == p.victim_pid && p.victim_pid != 0,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let candidates_source = if table.is_some() {
        "kernel_report"
    } else {
        "none"
    };

    // The victim, preferring the kernel's own numbers (tracepoint kB fields).
    let mark_has = |bit: u32| mark.filter(|m| m.present & bit != 0);
    let task_has = |bit: u32| task.filter(|t| t.valid & bit != 0);
    let victim_row = table.and_then(|t| t.rows.iter().find(|r| r.pid == p.victim_pid));
    let victim = (p.victim_pid != 0).then(|| {
        let rss_anon_bytes = kb(mark_has(mark_victim_field::ANON_RSS).map(|m| m.anon_rss_kb))
            .or(task_has(victim_valid::RSS).map(|t| pages(t.rss_anon_pages.max(0) as u64)))
            .or(kb(kill.and_then(|k| k.anon_rss_kb)));
        let rss_file_bytes = kb(mark_has(mark_victim_field::FILE_RSS).map(|m| m.file_rss_kb))
            .or(task_has(victim_valid::RSS).map(|t| pages(t.rss_file_pages.max(0) as u64)))
            .or(kb(kill.and_then(|k| k.file_rss_kb)));
        let rss_shmem_bytes = kb(mark_has(mark_victim_field::SHMEM_RSS).map(|m| m.shmem_rss_kb))
            .or(task_has(victim_valid::RSS).map(|t| pages(t.rss_shmem_pages.max(0) as u64)))
            .or(kb(kill.and_then(|k| k.shmem_rss_kb)));
        let swap_bytes = task_has(victim_valid::SWAPENTS)
            .map(|t| pages(t.swapents.max(0) as u64))
            .or(victim_row.and_then(|r| r.swapents).map(pages));
        let pgtables_bytes = kb(mark_has(mark_victim_field::PGTABLES).map(|m| m.pgtables_kb))
            .or(task_has(victim_valid::PGTABLES).map(|t| t.pgtables_bytes.max(0) as u64))
            .or(victim_row.and_then(|r| r.pgtables_bytes))
            .or(kb(kill.and_then(|k| k.pgtables_kb)));
        let oom_score_adj = mark_has(mark_victim_field::OOM_SCORE_ADJ)
            .map(|m| i32::from(m.oom_score_adj))
            .or(task_has(victim_valid::OOM_SCORE_ADJ).map(|t| t.oom_score_adj))
            .or(kill.and_then(|k| k.oom_score_adj))
            .or(victim_row.map(|r| r.oom_score_adj));
        let points = candidates
            .iter()
            .find(|c| c.victim)
            .and_then(|c| c.points)
            .or_else(|| {
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

    let reaper = if p.reaper_steps.contains(&reaper_step::FINISH) || p.reaped.is_some() {
        Some("reaped")
    } else if p.reaper_steps.contains(&reaper_step::SKIP) {
        Some("skipped")
    } else if !p.reaper_steps.is_empty() {
        Some("queued")
    } else {
        None
    };
    let marked_ns = mark
        .map(|m| m.header.boot_ns)
        .or(task.map(|t| t.header.boot_ns));
    let freed = Freed {
        rss_bytes: victim
            .as_ref()
            .and_then(|v| Some(v.rss_anon_bytes? + v.rss_file_bytes? + v.rss_shmem_bytes?)),
        swap_bytes: victim.as_ref().and_then(|v| v.swap_bytes),
        pgtables_bytes: victim.as_ref().and_then(|v| v.pgtables_bytes),
        reaper,
        anon_rss_after_reap_bytes: p.reaped.as_ref().map(|r| r.anon_rss_kb * 1024),
        exited: p.exit.is_some(),
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
            model,
            totalpages,
            page_size,
            report,
        },
    );

    candidates.sort_by(|a, b| b.points.cmp(&a.points).then(b.victim.cmp(&a.victim)));

    Decision {
        record_type: "decision",
        schema_version: SCHEMA_VERSION,
        seq,
        time: rfc3339(time),
        constraint,
        backend: sources.backend,
        trigger,
        oom_memcg,
        totalpages,
        page_size,
        badness_model: model,
        candidates,
        candidates_source,
        victim,
        killed,
        oom_group: p.oom_group.clone(),
        freed,
        reclaim,
        kernel_report,
        explanation,
        report_lines: report
            .map(|r| r.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default(),
    }
}

struct ExplainInput<'a> {
    sources: Sources,
    constraint: Option<&'static str>,
    oom_memcg: Option<&'a OomMemcg>,
    victim_memcg: Option<&'a str>,
    trigger: &'a Trigger,
    victim: Option<&'a Victim>,
    candidates: &'a [Candidate],
    model: Option<BadnessModel>,
    totalpages: Option<u64>,
    page_size: u64,
    report: Option<&'a KernelReport>,
}

/// Short factual sentences, each computed from the decision's data.
fn explain(out: &mut Vec<String>, x: ExplainInput<'_>) {
    use crate::output::human_bytes as hb;
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
        (Some("global"), _) => out.push(
            "System-wide OOM: no cgroup limit was involved; the whole machine ran out of memory."
                .to_owned(),
        ),
        (Some(other), _) => out.push(format!("The OOM was constrained by {other}.")),
        _ => {}
    }

    let Some(report) = x.report else {
        if x.victim.is_some() {
            out.push(
                "The kernel printed no report for this kill (dump_header is rate-limited to 10 per 5 s, or the log was not readable): the candidate list is unknown."
                    .to_owned(),
            );
        }
        return;
    };
    if report.no_killable {
        out.push(
            "The kernel found no killable process: every task left is unkillable (oom_score_adj -1000) or already exiting; the allocation fails instead."
                .to_owned(),
        );
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
            out.push(format!(
                "Candidates are the kernel's task table ({} tasks); points recomputed with the kernel's rule, {}, totalpages {total}.",
                x.candidates.len(),
                model.formula()
            ));
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
            if unkillable > 0 {
                out.push(format!(
                    "{unkillable} task(s) had oom_score_adj -1000 and could not be chosen."
                ));
            }
        }
    } else if x.victim.is_some() && report.tasks.is_none() {
        out.push("The kernel's report has no task table (vm.oom_dump_tasks=0?).".to_owned());
    }
    if x.sources.backend == "tracepoint" && !x.candidates.is_empty() {
        out.push(
            "This kernel allows only tracepoints: the candidate list comes from the kernel's report, not from the killer's own evaluation."
                .to_owned(),
        );
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
            "/../../shared/fixtures/kernel-reports"
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
        let sources = Sources {
            backend: "kernel_report",
            victim_task_hook: false,
            exit_hook: false,
        };
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
                }
            }
        }
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
