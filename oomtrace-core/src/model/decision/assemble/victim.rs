//! The victim, preferring the kernel's own numbers: its rss from the
//! `Killed process` line, else read the way this kernel's killer read it
//! (`model::exact`); the rest from the tracepoint's kB fields, then the
//! victim-task hook's, then the kill line's and the task table's; the pids
//! killed; the container it ran in.
use std::borrow::Cow;

use oomtrace_ebpf::{
    MarkVictimEvent, VictimTaskEvent, mark_victim_field as mark_field, victim_valid,
};

use crate::{
    cgroup::{container::Container, runtimes},
    events::comm_str,
    model::{
        decision::{
            assemble::candidates::{Scoring, score},
            env::Environment,
            pending::Pending,
            record::{Candidate, Victim},
        },
        exact::{self, RssSource},
        score::{BadnessInput, Implausible},
    },
    report::{KillLine, TaskRow},
};

pub(super) fn victim(
    p: &Pending,
    candidates: &[Candidate],
    scoring: Scoring,
    memcg: Option<String>,
    implausible: &mut Vec<(u32, Implausible)>,
) -> Option<Victim> {
    if p.victim_pid == 0 {
        return None;
    }
    let seen = Seen {
        mark: p.mark.as_ref(),
        task: p.task.as_deref(),
        kill: p.kill_line(),
        row: p
            .report
            .as_ref()
            .and_then(|r| r.tasks.as_ref())
            .and_then(|t| t.rows.iter().find(|r| r.pid == p.victim_pid)),
        page_size: scoring.page_size,
    };
    let memory = seen.memory(scoring);
    let (points, points_source) = victim_points(p, candidates, scoring, &memory, implausible);
    Some(Victim {
        pid: p.victim_pid,
        tgid: seen.tgid(),
        comm: seen.comm(),
        uid: seen.uid(),
        memcg,
        points,
        rss_anon_bytes: memory.rss_anon_bytes,
        rss_file_bytes: memory.rss_file_bytes,
        rss_shmem_bytes: memory.rss_shmem_bytes,
        swap_bytes: memory.swap_bytes,
        pgtables_bytes: memory.pgtables_bytes,
        total_vm_bytes: seen.total_vm_bytes(),
        oom_score_adj: memory.oom_score_adj,
        rss_source: memory.rss_source.map(RssSource::label),
        points_source,
        cmdline: None,
        cmdline_truncated: false,
    })
}

/// What each source saw of the victim.
struct Seen<'a> {
    mark: Option<&'a MarkVictimEvent>,
    task: Option<&'a VictimTaskEvent>,
    kill: Option<&'a KillLine>,
    row: Option<&'a TaskRow>,
    page_size: u64,
}

/// The victim's memory as the badness counts it, in bytes.
struct VictimMemory {
    rss_anon_bytes: Option<u64>,
    rss_file_bytes: Option<u64>,
    rss_shmem_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    pgtables_bytes: Option<u64>,
    oom_score_adj: Option<i32>,
    /// Where the three rss numbers come from.
    rss_source: Option<RssSource>,
}

/// kB (from the kernel's lines or events) in bytes; saturating, so a
/// forged value stays huge (and implausible) instead of wrapping small.
fn kb(value: Option<u64>) -> Option<u64> {
    value.map(|v| v.saturating_mul(1024))
}

impl Seen<'_> {
    fn mark_has(&self, bit: u32) -> Option<&MarkVictimEvent> {
        self.mark.filter(|m| m.present & bit != 0)
    }

    fn task_has(&self, bit: u32) -> Option<&VictimTaskEvent> {
        self.task.filter(|t| t.valid & bit != 0)
    }

    /// The kill line's rss first, else the kernel's read (`model::exact`);
    /// swap as the kernel's rule counts it, else the task table's.
    fn memory(&self, scoring: Scoring) -> VictimMemory {
        let rss = exact::victim_rss(
            self.kill,
            self.mark,
            self.task,
            scoring.rss_rule,
            self.page_size,
        );
        VictimMemory {
            rss_anon_bytes: rss.anon_bytes,
            rss_file_bytes: rss.file_bytes,
            rss_shmem_bytes: rss.shmem_bytes,
            swap_bytes: rss.swap_bytes.or(self
                .row
                .and_then(|r| r.swapents)
                .map(|n| n.saturating_mul(self.page_size))),
            pgtables_bytes: self.pgtables_bytes(),
            oom_score_adj: self.oom_score_adj(),
            rss_source: rss.source,
        }
    }

    fn pgtables_bytes(&self) -> Option<u64> {
        let row = self.row.and_then(|r| {
            r.pgtables_bytes.or(r.nr_ptes.map(|n| {
                n.saturating_add(r.nr_pmds.unwrap_or(0))
                    .saturating_mul(self.page_size)
            }))
        });
        kb(self.mark_has(mark_field::PGTABLES).map(|m| m.pgtables_kb))
            .or(self
                .task_has(victim_valid::PGTABLES)
                .map(|t| t.pgtables_bytes.max(0) as u64))
            .or(row)
            .or(kb(self.kill.and_then(|k| k.pgtables_kb)))
    }

    fn oom_score_adj(&self) -> Option<i32> {
        self.mark_has(mark_field::OOM_SCORE_ADJ)
            .map(|m| i32::from(m.oom_score_adj))
            .or(self
                .task_has(victim_valid::OOM_SCORE_ADJ)
                .map(|t| t.oom_score_adj))
            .or(self.kill.and_then(|k| k.oom_score_adj))
            .or(self.row.map(|r| r.oom_score_adj))
    }

    fn tgid(&self) -> Option<u32> {
        self.task_has(victim_valid::IDENTITY)
            .map(|t| t.victim_tgid)
            .or(self.row.map(|r| r.tgid))
    }

    fn comm(&self) -> Option<String> {
        self.task_has(victim_valid::IDENTITY)
            .map(|t| comm_str(&t.victim_comm))
            .or(self.mark_has(mark_field::COMM).map(|m| comm_str(&m.comm)))
            .or(self.kill.map(|k| k.comm.clone()))
    }

    fn uid(&self) -> Option<u32> {
        self.mark_has(mark_field::UID)
            .map(|m| m.uid)
            .or(self.kill.and_then(|k| k.uid))
            .or(self.row.map(|r| r.uid))
    }

    fn total_vm_bytes(&self) -> Option<u64> {
        kb(self.mark_has(mark_field::TOTAL_VM).map(|m| m.total_vm_kb))
            .or(kb(self.kill.and_then(|k| k.total_vm_kb)))
    }
}

/// The killer's own points for its choice, else the candidate's, else the
/// kernel's rule applied to the victim's counters; and which of these
/// (`points_source`: `kernel` or `recomputed`).
fn victim_points(
    p: &Pending,
    candidates: &[Candidate],
    scoring: Scoring,
    memory: &VictimMemory,
    implausible: &mut Vec<(u32, Implausible)>,
) -> (Option<i64>, Option<Cow<'static, str>>) {
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
    if let Some((points, source)) = kernel_points {
        return (Some(points), Some(source));
    }
    let recomputed = (|| {
        let rule = (scoring.model?, scoring.totalpages?);
        let page_size = scoring.page_size.max(1);
        let rss = memory
            .rss_anon_bytes?
            .saturating_add(memory.rss_file_bytes?)
            .saturating_add(memory.rss_shmem_bytes?);
        let input = BadnessInput {
            rss_pages: rss / page_size,
            swap_pages: memory.swap_bytes.unwrap_or(0) / page_size,
            pgtable_pages: memory.pgtables_bytes.unwrap_or(0) / page_size,
            oom_score_adj: memory.oom_score_adj?,
            uid: 1,
        };
        score(rule, input, p.victim_pid, implausible)
    })();
    (recomputed, recomputed.map(|_| Cow::Borrowed("recomputed")))
}

/// The victim's candidate row carries the victim's memcg.
pub(super) fn with_victim_memcg(
    mut candidates: Vec<Candidate>,
    victim: Option<&Victim>,
) -> Vec<Candidate> {
    if let Some(v) = victim {
        for c in candidates.iter_mut().filter(|c| c.victim) {
            c.memcg = v.memcg.clone();
        }
    }
    candidates
}

/// The victim, then the tasks a memory.oom.group sweep killed with it.
pub(super) fn killed(p: &Pending) -> Vec<u32> {
    let mut killed = Vec::new();
    if p.victim_pid != 0 {
        killed.push(p.victim_pid);
    }
    for pid in &p.group_kills {
        if !killed.contains(pid) {
            killed.push(*pid);
        }
    }
    killed
}

/// The container (or systemd unit) the victim's memcg belongs to, with the
/// names its runtime and Kubernetes keep on the node.
pub(super) fn container(victim: Option<&Victim>, env: &mut dyn Environment) -> Option<Container> {
    let memcg = victim.and_then(|v| v.memcg.as_deref())?;
    runtimes::owner(
        memcg,
        env,
        |env, found| env.runtime_names(found, memcg),
        |env, c| env.kubernetes_names(c, memcg),
    )
}
