//! The badness model and the candidates: the killer's own evaluation when
//! hooked, else the kernel's task table scored with the kernel's rule.
use std::borrow::Cow;

use oomtrace_ebpf::{OomCandidateEvent, candidate_flag as flag};

use crate::{
    base::units::human_bytes,
    cgroup::tasks::TaskSnapshot,
    events::comm_str,
    model::{
        decision::{
            env::Environment,
            pending::{Invocation, Pending},
            record::{Candidate, Victim},
        },
        exact::{self, RssRule, RssSource},
        score::{BadnessInput, BadnessModel, Implausible, OOM_SCORE_ADJ_MIN, try_badness},
    },
    report::{TaskRow, TaskTable},
};

/// How points are computed for this OOM.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scoring {
    pub(super) model: Option<BadnessModel>,
    pub(super) totalpages: Option<u64>,
    pub(super) page_size: u64,
    /// Which read of the rss counters this kernel's killer used, learned
    /// from its own numbers (`model::exact::rss_rule`).
    pub(super) rss_rule: Option<RssRule>,
}

impl Scoring {
    pub(super) fn new(
        model: Option<BadnessModel>,
        totalpages: Option<u64>,
        page_size: u64,
        rss_rule: Option<RssRule>,
    ) -> Self {
        Self {
            model,
            totalpages,
            page_size,
            rss_rule,
        }
    }

    fn rule(self) -> Option<(BadnessModel, u64)> {
        Some((self.model?, self.totalpages?))
    }
}

pub(super) fn badness_model(p: &Pending, env: &dyn Environment) -> Option<BadnessModel> {
    let report = p.report.as_ref();
    let release = report
        .and_then(|r| r.kernel_release.clone())
        .or_else(|| env.kernel_release());
    // Without a release, a task table with an oom_adj column dates the
    // kernel before 3.10 (per-mille scoring).
    release
        .as_deref()
        .and_then(BadnessModel::for_release)
        .or_else(|| {
            report
                .and_then(|r| r.tasks.as_ref())
                .filter(|t| t.columns.iter().any(|c| c == "oom_adj"))
                .map(|_| BadnessModel::PerMille)
        })
}

/// The candidates and where they come from.
pub(super) struct Ranked {
    pub(super) candidates: Vec<Candidate>,
    pub(super) source: &'static str,
    /// Some when points were recomputed (oom_badness unseen): the kernel's
    /// `oc->chosen_points`, if known.
    pub(super) points_recomputed: Option<Option<i64>>,
    /// Candidates the killer visited that were not reported.
    pub(super) dropped: Option<u32>,
    /// Candidates whose numbers no kernel prints (pid, why): left unscored.
    pub(super) implausible: Vec<(u32, Implausible)>,
    /// With a /proc snapshot: how long after the kill it was read, in ms.
    pub(super) snapshot_after_kill_ms: Option<f64>,
    /// With the kernel's table and a snapshot of the same OOM: how close
    /// the snapshot came to the table (the kernel's own), in one sentence.
    pub(super) snapshot_check: Option<String>,
}

/// The kernel's rule, with an impossible input noted instead of scored.
pub(super) fn score(
    (model, total): (BadnessModel, u64),
    input: BadnessInput,
    pid: u32,
    implausible: &mut Vec<(u32, Implausible)>,
) -> Option<i64> {
    try_badness(model, input, total).unwrap_or_else(|why| {
        implausible.push((pid, why));
        None
    })
}

/// The killer's own evaluation when hooked, else the kernel's printed
/// table, else (a rate-limited report) the OOM memcg's tasks as /proc showed
/// them just after the kill.
pub(super) fn candidates(p: &Pending, scoring: Scoring, env: &mut dyn Environment) -> Ranked {
    let table = p.report.as_ref().and_then(|r| r.tasks.as_ref());
    if let Some(inv) = p.invocation.as_ref().filter(|i| !i.candidates.is_empty()) {
        return hooked_candidates(inv, p.victim_pid, scoring, env);
    }
    let mut implausible = Vec::new();
    let snapshot = (p.victim_pid != 0)
        .then(|| env.task_snapshot(p.victim_pid))
        .flatten();
    if let Some(table) = table {
        return Ranked {
            candidates: table_candidates(table, p.victim_pid, scoring, &mut implausible),
            source: "kernel_report",
            points_recomputed: None,
            dropped: None,
            implausible,
            snapshot_after_kill_ms: None,
            snapshot_check: snapshot.map(|s| snapshot_check(&s, table, p, scoring.page_size)),
        };
    }
    match snapshot {
        Some(snapshot) => snapshot_candidates(&snapshot, p, scoring),
        None => Ranked {
            candidates: Vec::new(),
            source: "none",
            points_recomputed: None,
            dropped: None,
            implausible,
            snapshot_after_kill_ms: None,
            snapshot_check: None,
        },
    }
}

/// How the /proc snapshot compares with the kernel's own table of the same
/// OOM (the victim aside: its snapshot row is torn down): the tasks both
/// list, those only one lists, and the largest rss difference.
fn snapshot_check(snapshot: &TaskSnapshot, table: &TaskTable, p: &Pending, page: u64) -> String {
    let others = |pid: u32| pid != p.victim_pid;
    let rows: Vec<&TaskRow> = table.rows.iter().filter(|r| others(r.pid)).collect();
    let tasks: Vec<_> = snapshot.tasks.iter().filter(|t| others(t.pid)).collect();
    let mut both = 0usize;
    let mut max_diff = 0u64;
    for task in &tasks {
        if let Some(row) = rows.iter().find(|r| r.pid == task.pid) {
            both += 1;
            let ours = task.rss_anon_bytes + task.rss_file_bytes + task.rss_shmem_bytes;
            max_diff = max_diff.max(ours.abs_diff(row.rss_pages.saturating_mul(page)));
        }
    }
    let (table_only, snapshot_only) = (rows.len() - both, tasks.len() - both);
    let after = p
        .kill_boot_ns()
        .map(|killed| snapshot.read_boot_ns.saturating_sub(killed) as f64 / 1e6)
        .map_or_else(String::new, |ms| format!(" {ms:.1} ms after the kill"));
    if table_only == 0 && snapshot_only == 0 {
        format!(
            "A /proc snapshot of the OOM memcg read{after} listed the same {both} other task(s) as the kernel's table, their rss within {} of it.",
            human_bytes(max_diff)
        )
    } else {
        format!(
            "A /proc snapshot of the OOM memcg read{after} differed from the kernel's table: {both} task(s) in both (rss within {}), {table_only} only in the table, {snapshot_only} only in the snapshot.",
            human_bytes(max_diff)
        )
    }
}

/// The tasks of the OOM memcg read from /proc after the kill, scored with
/// the kernel's rule; the victim's own row is added from the kernel's
/// numbers at the kill (`with_victim_row`): its /proc entry may be gone.
fn snapshot_candidates(snapshot: &TaskSnapshot, p: &Pending, scoring: Scoring) -> Ranked {
    let mut implausible = Vec::new();
    let page_size = scoring.page_size.max(1);
    let candidates = snapshot
        .tasks
        .iter()
        .filter(|t| t.pid != p.victim_pid)
        .map(|t| {
            let input = BadnessInput {
                rss_pages: (t.rss_anon_bytes + t.rss_file_bytes + t.rss_shmem_bytes) / page_size,
                swap_pages: t.swap_bytes / page_size,
                pgtable_pages: t.pgtables_bytes / page_size,
                oom_score_adj: t.oom_score_adj,
                uid: t.uid,
            };
            let points = scoring
                .rule()
                .and_then(|rule| score(rule, input, t.pid, &mut implausible));
            Candidate {
                pid: t.pid,
                tgid: Some(t.tgid),
                uid: Some(t.uid),
                comm: t.comm.clone(),
                memcg: None,
                rss_bytes: t.rss_anon_bytes + t.rss_file_bytes + t.rss_shmem_bytes,
                rss_anon_bytes: Some(t.rss_anon_bytes),
                rss_file_bytes: Some(t.rss_file_bytes),
                rss_shmem_bytes: Some(t.rss_shmem_bytes),
                swap_bytes: Some(t.swap_bytes),
                pgtables_bytes: Some(t.pgtables_bytes),
                oom_score_adj: t.oom_score_adj,
                points,
                eligible: t.oom_score_adj > OOM_SCORE_ADJ_MIN,
                victim: false,
                skip_reason: (t.oom_score_adj <= OOM_SCORE_ADJ_MIN)
                    .then_some(Cow::Borrowed("oom_score_adj_min")),
                rss_source: Some(Cow::Borrowed("proc_status")),
                points_source: points.map(|_| Cow::Borrowed("recomputed")),
                cmdline: None,
                cmdline_truncated: false,
            }
        })
        .collect();
    let after_kill_ms = p
        .kill_boot_ns()
        .map(|killed| snapshot.read_boot_ns.saturating_sub(killed) as f64 / 1e6);
    Ranked {
        candidates,
        source: "proc_snapshot",
        points_recomputed: None,
        dropped: Some(snapshot.cut),
        implausible,
        snapshot_after_kill_ms: after_kill_ms,
        snapshot_check: None,
    }
}

/// A snapshot's candidates get the victim as the kernel saw it at the kill.
pub(super) fn with_victim_row(mut candidates: Vec<Candidate>, victim: &Victim) -> Vec<Candidate> {
    let rss = [
        victim.rss_anon_bytes,
        victim.rss_file_bytes,
        victim.rss_shmem_bytes,
    ];
    candidates.push(Candidate {
        pid: victim.pid,
        tgid: victim.tgid,
        uid: victim.uid,
        comm: victim.comm.clone().unwrap_or_default(),
        memcg: victim.memcg.clone(),
        rss_bytes: rss.iter().flatten().sum(),
        rss_anon_bytes: victim.rss_anon_bytes,
        rss_file_bytes: victim.rss_file_bytes,
        rss_shmem_bytes: victim.rss_shmem_bytes,
        swap_bytes: victim.swap_bytes,
        pgtables_bytes: victim.pgtables_bytes,
        oom_score_adj: victim.oom_score_adj.unwrap_or(0),
        points: victim.points,
        eligible: true,
        victim: true,
        skip_reason: None,
        rss_source: victim.rss_source.clone(),
        points_source: victim.points_source.clone(),
        cmdline: None,
        cmdline_truncated: false,
    });
    candidates
}

fn table_candidates(
    table: &TaskTable,
    victim_pid: u32,
    scoring: Scoring,
    implausible: &mut Vec<(u32, Implausible)>,
) -> Vec<Candidate> {
    let pages = |n: u64| n.saturating_mul(scoring.page_size);
    let row_candidate = |row: &TaskRow| {
        let points = scoring.rule().and_then(|rule| {
            score(
                rule,
                row_input(row, scoring.page_size),
                row.pid,
                implausible,
            )
        });
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
            pgtables_bytes: row.pgtables_bytes.or(row
                .nr_ptes
                .map(|n| pages(n.saturating_add(row.nr_pmds.unwrap_or(0))))),
            oom_score_adj: row.oom_score_adj,
            points,
            eligible: row.oom_score_adj > OOM_SCORE_ADJ_MIN,
            victim: row.pid == victim_pid && victim_pid != 0,
            skip_reason: (row.oom_score_adj <= OOM_SCORE_ADJ_MIN)
                .then_some(Cow::Borrowed("oom_score_adj_min")),
            rss_source: Some(RssSource::KernelReport.label()),
            points_source: points.map(|_| Cow::Borrowed("recomputed")),
            cmdline: None,
            cmdline_truncated: false,
        }
    };
    table.rows.iter().map(row_candidate).collect()
}

/// A task-table row as the badness input, in pages.
pub(crate) fn row_input(row: &TaskRow, page_size: u64) -> BadnessInput {
    let pgtable_pages = match row.pgtables_bytes {
        Some(bytes) => bytes / page_size,
        None => row
            .nr_ptes
            .unwrap_or(0)
            .saturating_add(row.nr_pmds.unwrap_or(0)),
    };
    BadnessInput {
        rss_pages: row.rss_pages,
        swap_pages: row.swapents.unwrap_or(0),
        pgtable_pages,
        oom_score_adj: row.oom_score_adj,
        uid: row.uid,
    }
}

fn hooked_candidates(
    inv: &Invocation,
    victim_pid: u32,
    scoring: Scoring,
    env: &mut dyn Environment,
) -> Ranked {
    let mut ordered = inv.candidates.clone();
    ordered.sort_by_key(|c| c.index);
    // Some builds inline oom_badness into oom_evaluate_task (Debian's 5.10):
    // the fexit on its out-of-line copy never fires for the killer. The
    // candidates' inputs are still the kernel's own; their points are then
    // recomputed with the kernel's rule (and the chosen task's checked
    // against oc->chosen_points in the explanation).
    let unscored = ordered.iter().all(|c| c.flags & flag::SCORED == 0);
    let recompute = scoring.rule().filter(|_| unscored);
    let mut implausible = Vec::new();
    Ranked {
        candidates: ordered
            .iter()
            .map(|c| {
                bpf_candidate(
                    c,
                    victim_pid,
                    scoring.page_size,
                    recompute,
                    scoring.rss_rule,
                    env,
                    &mut implausible,
                )
            })
            .collect(),
        source: "bpf",
        points_recomputed: recompute.map(|_| inv.end.map(|e| e.chosen_points)),
        dropped: inv.end.map(|e| e.dropped),
        implausible,
        snapshot_after_kill_ms: None,
        snapshot_check: None,
    }
}

/// A candidate as the killer evaluated it (fentry/kprobe backends).
/// `recompute`: oom_badness was not seen (inlined), so the points of a task
/// the killer could have scored are computed with the kernel's rule.
fn bpf_candidate(
    c: &OomCandidateEvent,
    victim_pid: u32,
    page_size: u64,
    recompute: Option<(BadnessModel, u64)>,
    rss_rule: Option<RssRule>,
    env: &mut dyn Environment,
    implausible: &mut Vec<(u32, Implausible)>,
) -> Candidate {
    let pages = |n: u64| n.saturating_mul(page_size);
    let memory = c.flags & flag::MEMORY != 0;
    // The counters as this kernel's killer read them (central or summed).
    let (rss, rss_source) = exact::candidate_rss(c, rss_rule);
    let before = implausible.len();
    let recomputed =
        recompute.and_then(|rule| recomputed_points(c, rss, rule, page_size, implausible));
    // Unscored because its numbers are impossible, not passed over by the killer.
    let impossible = implausible.len() > before;
    let (scored, points) = match recomputed {
        Some(points) => (points.is_some(), points.unwrap_or(i64::MIN)),
        None => (
            c.flags & flag::SCORED != 0 && c.points != i64::MIN,
            c.points,
        ),
    };
    let kernel_scored = c.flags & flag::SCORED != 0 || recomputed.is_some();
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
        eligible: scored || impossible,
        victim: c.pid == victim_pid && victim_pid != 0,
        skip_reason: (!scored && !impossible).then(|| Cow::Borrowed(skip_reason(c, kernel_scored))),
        rss_source: memory.then(|| rss_source.label()),
        points_source: scored.then_some(match recomputed {
            Some(_) => Cow::Borrowed("recomputed"),
            None => Cow::Borrowed("kernel"),
        }),
        cmdline: None,
        cmdline_truncated: false,
    }
}

/// The kernel's rule applied to a task the killer could have scored (its
/// counters `rss` as the killer read them); None for the ones it passes
/// over unscored.
fn recomputed_points(
    c: &OomCandidateEvent,
    rss: exact::RssPages,
    rule: (BadnessModel, u64),
    page_size: u64,
    implausible: &mut Vec<(u32, Implausible)>,
) -> Option<Option<i64>> {
    let has = |bit: u32| c.flags & bit != 0;
    let skipped_unscored =
        has(flag::ABORTED) || has(flag::OOM_VICTIM) || has(flag::KTHREAD) || has(flag::NO_MM);
    // The killer never scores init (oom_unkillable_task).
    if !has(flag::MEMORY) || skipped_unscored || c.tgid == 1 {
        return None;
    }
    let input = BadnessInput {
        rss_pages: rss.rss(),
        swap_pages: rss.swap,
        pgtable_pages: c.pgtables_bytes.max(0) as u64 / page_size.max(1),
        oom_score_adj: c.oom_score_adj,
        uid: c.uid,
    };
    Some(score(rule, input, c.pid, implausible))
}

/// Why the killer passed over a task it did not score.
fn skip_reason(c: &OomCandidateEvent, kernel_scored: bool) -> &'static str {
    let has = |bit: u32| c.flags & bit != 0;
    if has(flag::ABORTED) {
        "victim_exiting"
    } else if kernel_scored && c.oom_score_adj <= OOM_SCORE_ADJ_MIN {
        "oom_score_adj_min"
    } else if has(flag::OOM_VICTIM) {
        "already_victim"
    } else if has(flag::KTHREAD) {
        "kernel_thread"
    } else if has(flag::NO_MM) {
        "no_mm"
    } else {
        "not_eligible"
    }
}
