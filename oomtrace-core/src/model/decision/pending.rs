//! The pieces of one decision in flight, and which hooks can supply them.
use std::time::Instant;

use oomtrace_ebpf::{
    MarkVictimEvent, OomCandidateEvent, OomChoiceEvent, OomEndEvent, ReaperEvent, VictimExitEvent,
    VictimTaskEvent,
};

use crate::{
    base::bounds::ENTRY_OVERHEAD,
    model::pagefault::PagefaultJoin,
    report::{KernelReport, KillLine, ReapedLine},
};

#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) created: Option<Instant>,
    pub(super) victim_pid: u32,
    pub(super) mark: Option<MarkVictimEvent>,
    pub(super) task: Option<Box<VictimTaskEvent>>,
    pub(super) report: Option<KernelReport>,
    /// Kill line when no report carried it (rate-limited storms).
    pub(super) kill: Option<KillLine>,
    pub(super) oom_group: Option<String>,
    /// In the order the sweep printed them; the set answers "swept?" at once.
    pub(super) group_kills: Vec<u32>,
    pub(super) group_kill_set: std::collections::HashSet<u32>,
    pub(super) reaper_events: Vec<ReaperEvent>,
    pub(super) reaped: Option<ReapedLine>,
    pub(super) exit: Option<VictimExitEvent>,
    /// The killer's own evaluation (fentry/kprobe backends).
    pub(super) invocation: Option<Invocation>,
    pub(super) complete_since: Option<Instant>,
    /// When the last line of its memory.oom.group sweep was read.
    pub(super) sweep_read_at: Option<Instant>,
    /// The fault this no-victim OOM leaked to the #PF handler, joined as it came.
    pub(super) fault: Option<PagefaultJoin>,
    /// Its trigger went on to another OOM: no fault of this one will come.
    pub(super) trigger_moved_on: bool,
}

/// One `out_of_memory` call as the OOM-path hooks saw it.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub oom_seq: u64,
    /// The task that ran the killer (the allocating task).
    pub trigger_pid: u32,
    pub trigger_comm: [u8; 16],
    pub candidates: Vec<OomCandidateEvent>,
    pub choice: Option<OomChoiceEvent>,
    pub end: Option<OomEndEvent>,
}

impl Invocation {
    /// Upper bound of its heap use: the candidates dominate.
    pub(super) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.candidates.len() * std::mem::size_of::<OomCandidateEvent>()
    }
}

impl Pending {
    pub(super) fn kill_line(&self) -> Option<&KillLine> {
        self.report
            .as_ref()
            .and_then(|r| r.kill.as_ref())
            .or(self.kill.as_ref())
    }

    /// Whether a fault of `pid`, read from the ring now, is the one this
    /// no-victim OOM leaked: its trigger's, none joined yet, the task not on
    /// to another OOM. The ring keeps one task's events in the order it
    /// wrote them, so the fault comes after this OOM's end (its timestamp,
    /// from another CPU's clock, need not).
    pub(super) fn awaits_fault(&self, pid: u32) -> bool {
        self.victim_pid == 0
            && self.fault.is_none()
            && !self.trigger_moved_on
            && self
                .invocation
                .as_ref()
                .is_some_and(|i| i.trigger_pid == pid && i.end.is_some())
    }

    /// The OOM reaper was woken for the victim or is reaping it: its pass
    /// (and its `oom_reaper:` line) is still to come. On 5.x the reaper is
    /// woken at the kill; since 6.0 only if the victim has not exited 2 s
    /// later, so a quick exit leaves nothing to wait for.
    pub(super) fn reaper_busy(&self) -> bool {
        self.reaper_events.last().is_some_and(|r| {
            r.step == oomtrace_ebpf::reaper_step::WAKE
                || r.step == oomtrace_ebpf::reaper_step::START
        })
    }

    /// How the killer's invocation ended (OOM-path hooks).
    /// The cgroup ids the decision will name (its victim's memcg chain, the
    /// trigger's memcg, the OOM memcg, the candidates' memcgs), without 0s
    /// or repeats.
    pub(super) fn memcg_ids(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        if let Some(t) = self.task.as_deref() {
            let depth = (t.memcg_depth as usize).min(t.memcg.len());
            ids.extend(t.memcg[..depth].iter().map(|l| l.cgroup_id));
            ids.push(t.trigger_memcg_id);
        }
        if let Some(i) = &self.invocation {
            ids.extend(i.end.map(|e| e.memcg_id));
            ids.extend(i.candidates.iter().map(|c| c.memcg_id));
        }
        ids.retain(|&id| id != 0);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub(super) fn end(&self) -> Option<OomEndEvent> {
        self.invocation.as_ref().and_then(|i| i.end)
    }

    /// Kernel clock of the kill (`boot_ns`), from the BPF events.
    pub(super) fn kill_boot_ns(&self) -> Option<u64> {
        self.mark
            .map(|m| m.header.boot_ns)
            .or(self.task.as_ref().map(|t| t.header.boot_ns))
    }

    /// Upper bound of its heap use (`base::bounds::PENDING`).
    pub(super) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let line = |l: &KillLine| 2 * l.source.text.len() + size_of::<KillLine>();
        size_of::<Self>()
            + self
                .task
                .as_ref()
                .map_or(0, |_| size_of::<VictimTaskEvent>())
            + self.report.as_ref().map_or(0, KernelReport::heap_bytes)
            + self.kill.as_ref().map_or(0, line)
            + self.oom_group.as_ref().map_or(0, |g| g.len())
            + self.fault.as_ref().map_or(0, |f| {
                f.time.len()
                    + f.kernel_action.len()
                    + f.in_oom_memcg.as_ref().map_or(0, |m| m.len())
            })
            + self.group_kills.len() * (size_of::<u32>() + ENTRY_OVERHEAD)
            + self.reaper_events.len() * size_of::<ReaperEvent>()
            + self
                .reaped
                .as_ref()
                .map_or(0, |r| 2 * r.source.text.len() + size_of::<ReapedLine>())
            + self.invocation.as_ref().map_or(0, Invocation::heap_bytes)
    }

    /// Where it begins in the kernel log: its report's first line, else its
    /// kill line (a `/dev/kmsg` sequence number live).
    pub(super) fn first_log_line(&self) -> Option<usize> {
        self.report
            .as_ref()
            .and_then(|r| r.lines.first())
            .or(self.kill_line().map(|k| &k.source))
            .map(|l| l.line_no)
    }

    /// Kernel log timestamp of the report (else of the kill line), in seconds.
    pub(super) fn log_seconds(&self) -> Option<f64> {
        self.report
            .as_ref()
            .and_then(|r| r.lines.first())
            .or(self.kill_line().map(|k| &k.source))
            .and_then(|l| l.timestamp)
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
    /// `pagefault_out_of_memory` is hooked: a no-victim OOM of a page fault
    /// waits for the fault it leaks.
    pub pagefault_hook: bool,
}

impl Sources {
    /// Decisions rebuilt from a saved kernel log alone (`oomtrace report`).
    pub const KERNEL_REPORT: Sources = Sources {
        backend: "kernel_report",
        victim_task_hook: false,
        exit_hook: false,
        oom_path_hooks: false,
        pagefault_hook: false,
    };
}
