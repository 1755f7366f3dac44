//! Which read of the rss counters the kernel's OOM killer used, and the
//! numbers that agree with it exactly (docs/rss-counters.md).
//!
//! Since 6.2 `mm->rss_stat[]` are `percpu_counter`s: a central `count` plus
//! an `s32` delta per CPU. 6.x kernels (6.12, 6.18) score and print
//! `get_mm_counter()` (the central count, [`RssRule::Counter`]); 7.x ones
//! (7.3; the change was queued for 7.0, and may reach 6.x stable kernels)
//! `get_mm_counter_sum()` (count plus every CPU's delta, [`RssRule::Sum`]).
//! Both are clamped at 0. The kernel programs report both reads; which one
//! the running kernel uses is decided here from the kernel's own numbers,
//! never from its version: the points `oom_badness` returned, the
//! `Killed process` line, the task table. Before 6.2 the counters are whole (`atomic_long_t`)
//! and both reads are the same.
use std::borrow::Cow;

use oomtrace_ebpf::{
    MarkVictimEvent, OomCandidateEvent, RssSums, VictimTaskEvent, candidate_flag,
    mark_victim_field, rss_rule, victim_valid,
};

use crate::report::{KillLine, TaskRow};

/// How the kernel read an rss counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssRule {
    /// `get_mm_counter()`: `percpu_counter_read_positive()`, the central count.
    Counter,
    /// `get_mm_counter_sum()`: `percpu_counter_sum_positive()`.
    Sum,
}

impl RssRule {
    /// The kernel function's name, as decisions report it (`rss_rule`).
    pub fn name(self) -> &'static str {
        match self {
            RssRule::Counter => "get_mm_counter",
            RssRule::Sum => "get_mm_counter_sum",
        }
    }

    /// The rule a decision names (`rss_rule`).
    pub fn from_name(name: &str) -> Option<Self> {
        [RssRule::Counter, RssRule::Sum]
            .into_iter()
            .find(|r| r.name() == name)
    }

    /// The value of the programs' `RSS_RULE` map.
    pub fn map_value(self) -> u32 {
        match self {
            RssRule::Counter => rss_rule::COUNTER,
            RssRule::Sum => rss_rule::SUM,
        }
    }
}

/// Where a task's rss numbers come from (`rss_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssSource {
    /// The kernel's own report (the `Killed process` line, the task table).
    KernelReport,
    /// Read in the kernel the way the killer read them.
    BpfExact,
    /// Read in the kernel, but this kernel's read could not be matched: the
    /// central counts, which may lag the kernel's per-CPU sums.
    BpfApprox,
}

impl RssSource {
    pub fn name(self) -> &'static str {
        match self {
            RssSource::KernelReport => "kernel_report",
            RssSource::BpfExact => "bpf_exact",
            RssSource::BpfApprox => "bpf_approx",
        }
    }

    pub fn label(self) -> Cow<'static, str> {
        Cow::Borrowed(self.name())
    }
}

/// One task's rss counters in pages, `get_mm_counter*` style (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RssPages {
    pub file: u64,
    pub anon: u64,
    pub swap: u64,
    pub shmem: u64,
}

impl RssPages {
    fn clamped(file: i64, anon: i64, swap: i64, shmem: i64) -> Self {
        Self {
            file: file.max(0) as u64,
            anon: anon.max(0) as u64,
            swap: swap.max(0) as u64,
            shmem: shmem.max(0) as u64,
        }
    }

    fn of_sums(s: &RssSums) -> Self {
        Self::clamped(s.file_pages, s.anon_pages, s.swapents, s.shmem_pages)
    }

    /// rss (anon + file + shmem), as `get_mm_rss*` adds them.
    pub fn rss(&self) -> u64 {
        self.file
            .saturating_add(self.anon)
            .saturating_add(self.shmem)
    }
}

/// The two reads of a candidate's counters: (central, sums if summed).
fn candidate_reads(c: &OomCandidateEvent) -> (RssPages, Option<RssPages>) {
    let counter = RssPages::clamped(
        c.rss_file_pages,
        c.rss_anon_pages,
        c.swapents,
        c.rss_shmem_pages,
    );
    let sums = (c.flags & candidate_flag::MEMORY_SUM != 0).then(|| RssPages::of_sums(&c.sums));
    (counter, sums)
}

fn task_reads(t: &VictimTaskEvent) -> (RssPages, Option<RssPages>) {
    let counter = RssPages::clamped(
        t.rss_file_pages,
        t.rss_anon_pages,
        t.swapents,
        t.rss_shmem_pages,
    );
    let sums = (t.valid & victim_valid::RSS_SUM != 0).then(|| RssPages::of_sums(&t.sums));
    (counter, sums)
}

/// Tallies which read reproduces each piece of evidence.
#[derive(Default)]
struct Votes {
    counter: u32,
    sum: u32,
}

impl Votes {
    fn add(&mut self, counter_matches: bool, sum_matches: bool) {
        match (counter_matches, sum_matches) {
            (true, false) => self.counter = self.counter.saturating_add(1),
            (false, true) => self.sum = self.sum.saturating_add(1),
            // Both (the per-CPU deltas were zero) or neither (the task's
            // memory moved between the kernel's read and ours): no evidence.
            _ => {}
        }
    }

    /// The read every decisive piece of evidence agrees on.
    fn verdict(&self) -> Option<RssRule> {
        match (self.counter, self.sum) {
            (0, 0) => None,
            (_, 0) => Some(RssRule::Counter),
            (0, _) => Some(RssRule::Sum),
            _ => None,
        }
    }
}

/// The read that reproduces the points `oom_badness` returned for the
/// candidates of one OOM (`points = rss + swapents + pgtables_bytes /
/// PAGE_SIZE + oom_score_adj * (totalpages / 1000)`, 5.9+). `None` when no
/// scored candidate tells the reads apart.
pub fn rule_from_points(
    candidates: &[OomCandidateEvent],
    totalpages: u64,
    page_size: u64,
) -> Option<RssRule> {
    let mut votes = Votes::default();
    for c in candidates {
        let scored = c.flags & candidate_flag::SCORED != 0
            && c.flags & candidate_flag::MEMORY != 0
            && c.points != i64::MIN;
        let (counter, Some(sums)) = candidate_reads(c) else {
            continue;
        };
        if !scored || page_size == 0 {
            continue;
        }
        // Saturating: forged counters must not wrap into a match.
        let fixed = (c.pgtables_bytes.max(0) / page_size as i64).saturating_add(
            i64::from(c.oom_score_adj)
                .saturating_mul((totalpages / 1000).min(i64::MAX as u64) as i64),
        );
        let points = |r: RssPages| {
            (r.rss().saturating_add(r.swap).min(i64::MAX as u64) as i64).saturating_add(fixed)
        };
        votes.add(c.points == points(counter), c.points == points(sums));
    }
    votes.verdict()
}

/// The read that reproduces the `Killed process` line's anon, file and
/// shmem rss from the victim's counters as read at `mark_victim`.
pub fn rule_from_kill(task: &VictimTaskEvent, kill: &KillLine, page_size: u64) -> Option<RssRule> {
    if task.valid & victim_valid::RSS == 0 || task.victim_pid != kill.pid {
        return None;
    }
    let (counter, Some(sums)) = task_reads(task) else {
        return None;
    };
    let line = [kill.anon_rss_kb?, kill.file_rss_kb?, kill.shmem_rss_kb?]
        .map(|kb| kb.saturating_mul(1024));
    let bytes = |r: RssPages| [r.anon, r.file, r.shmem].map(|p| p.saturating_mul(page_size));
    let mut votes = Votes::default();
    votes.add(bytes(counter) == line, bytes(sums) == line);
    votes.verdict()
}

/// The read that reproduces the kernel's task table (`dump_tasks`, printed
/// with every report that is not rate-limited, also when nothing could be
/// killed) from the candidates' two reads, row by row (rss, swapents).
pub fn rule_from_table(candidates: &[OomCandidateEvent], rows: &[TaskRow]) -> Option<RssRule> {
    let mut votes = Votes::default();
    for c in candidates {
        let (counter, Some(sums)) = candidate_reads(c) else {
            continue;
        };
        let Some(row) = rows.iter().find(|r| r.pid == c.pid) else {
            continue;
        };
        let printed = |r: RssPages| {
            row.rss_pages == r.rss()
                && row.swapents.is_none_or(|s| s == r.swap)
                && row.rss_anon_pages.is_none_or(|a| a == r.anon)
                && row.rss_file_pages.is_none_or(|f| f == r.file)
                && row.rss_shmem_pages.is_none_or(|s| s == r.shmem)
        };
        votes.add(printed(counter), printed(sums));
    }
    votes.verdict()
}

/// The rule of one OOM: from the killer's points when they tell, else from
/// the kill line, else from the task table.
pub fn rss_rule(
    candidates: &[OomCandidateEvent],
    totalpages: Option<u64>,
    task: Option<&VictimTaskEvent>,
    kill: Option<&KillLine>,
    table: Option<&[TaskRow]>,
    page_size: u64,
) -> Option<RssRule> {
    totalpages
        .and_then(|total| rule_from_points(candidates, total, page_size))
        .or_else(|| rule_from_kill(task?, kill?, page_size))
        .or_else(|| rule_from_table(candidates, table?))
}

/// A candidate's counters read the way the killer read them, and how sure that is.
pub fn candidate_rss(c: &OomCandidateEvent, rule: Option<RssRule>) -> (RssPages, RssSource) {
    let (counter, sums) = candidate_reads(c);
    select(
        counter,
        sums,
        c.flags & candidate_flag::MEMORY_ATOMIC != 0,
        rule,
    )
}

/// The choice shared by candidates and the victim: whole counters are
/// exact; otherwise the read the kernel used, if known and read; the two
/// reads are interchangeable where they agree.
fn select(
    counter: RssPages,
    sums: Option<RssPages>,
    atomic: bool,
    rule: Option<RssRule>,
) -> (RssPages, RssSource) {
    match (atomic, rule, sums) {
        (true, _, _) => (counter, RssSource::BpfExact),
        (_, Some(RssRule::Counter), _) => (counter, RssSource::BpfExact),
        (_, Some(RssRule::Sum), Some(sums)) => (sums, RssSource::BpfExact),
        (_, None, Some(sums)) if sums == counter => (counter, RssSource::BpfExact),
        _ => (counter, RssSource::BpfApprox),
    }
}

/// The victim's rss in bytes (anon, file, shmem), its swap in bytes, and
/// where the rss came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VictimRss {
    pub anon_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub shmem_bytes: Option<u64>,
    /// Swap entries the kernel's rule counts (not in the kill line).
    pub swap_bytes: Option<u64>,
    pub source: Option<RssSource>,
}

impl VictimRss {
    /// anon, file and shmem counted in `unit`s (kB or pages), in bytes.
    fn scaled(
        [anon, file, shmem]: [Option<u64>; 3],
        unit: u64,
        swap_bytes: Option<u64>,
        source: Option<RssSource>,
    ) -> Self {
        let bytes = |n: Option<u64>| n.map(|n| n.saturating_mul(unit));
        VictimRss {
            anon_bytes: bytes(anon),
            file_bytes: bytes(file),
            shmem_bytes: bytes(shmem),
            swap_bytes,
            source,
        }
    }
}

/// The victim's numbers: the `Killed process` line when it carries them
/// (the kernel's own words, never rate-limited), else the kernel programs'
/// reads by `rule`: the `oom:mark_victim` record and the central counts
/// are `get_mm_counter()` on every kernel so far, the sums
/// `get_mm_counter_sum()`.
pub fn victim_rss(
    kill: Option<&KillLine>,
    mark: Option<&MarkVictimEvent>,
    task: Option<&VictimTaskEvent>,
    rule: Option<RssRule>,
    page_size: u64,
) -> VictimRss {
    let task = task.filter(|t| t.valid & victim_valid::RSS != 0);
    let bpf = task.map(|t| {
        let (counter, sums) = task_reads(t);
        select(counter, sums, t.valid & victim_valid::RSS_ATOMIC != 0, rule)
    });
    let swap_bytes = task
        .filter(|t| t.valid & victim_valid::SWAPENTS != 0)
        .and(bpf)
        .map(|(pages, _)| pages.swap.saturating_mul(page_size));
    if let Some(k) = kill
        && let (Some(anon), Some(file), Some(shmem)) =
            (k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb)
    {
        return VictimRss::scaled(
            [Some(anon), Some(file), Some(shmem)],
            1024,
            swap_bytes,
            Some(RssSource::KernelReport),
        );
    }
    // The tracepoint's kB fields are get_mm_counter() reads: exact when the
    // kernel is known to use them, or its counters are whole.
    let mark_counter = mark.filter(|m| {
        let all = mark_victim_field::ANON_RSS
            | mark_victim_field::FILE_RSS
            | mark_victim_field::SHMEM_RSS;
        m.present & all == all
    });
    if let Some(m) = mark_counter
        && (rule == Some(RssRule::Counter) || bpf.is_none())
    {
        let source = match (rule, task) {
            (Some(RssRule::Counter), _) => RssSource::BpfExact,
            (_, Some(t)) if t.valid & victim_valid::RSS_ATOMIC != 0 => RssSource::BpfExact,
            _ => RssSource::BpfApprox,
        };
        return VictimRss::scaled(
            [
                Some(m.anon_rss_kb),
                Some(m.file_rss_kb),
                Some(m.shmem_rss_kb),
            ],
            1024,
            swap_bytes,
            Some(source),
        );
    }
    match bpf {
        Some((pages, source)) => VictimRss::scaled(
            [Some(pages.anon), Some(pages.file), Some(pages.shmem)],
            page_size,
            swap_bytes,
            Some(source),
        ),
        // A kill line with some of its fields: what it has.
        None => VictimRss::scaled(
            [
                kill.and_then(|k| k.anon_rss_kb),
                kill.and_then(|k| k.file_rss_kb),
                kill.and_then(|k| k.shmem_rss_kb),
            ],
            1024,
            swap_bytes,
            kill.filter(|k| k.anon_rss_kb.is_some() || k.file_rss_kb.is_some())
                .map(|_| RssSource::KernelReport),
        ),
    }
}

/// What the decision says about the rss read: the per-CPU sums when the
/// kernel used them, and candidates whose numbers may lag the kernel's.
pub fn explain<'a>(
    rule: Option<RssRule>,
    candidate_sources: impl Iterator<Item = Option<&'a str>>,
) -> Vec<String> {
    let mut out = Vec::new();
    if rule == Some(RssRule::Sum) {
        out.push(
            "This kernel's OOM killer counts rss as per-CPU sums (get_mm_counter_sum), as its own points and kill line show; the candidates' rss here are those sums.".to_owned(),
        );
    }
    let approx = candidate_sources
        .filter(|s| *s == Some(RssSource::BpfApprox.name()))
        .count();
    if approx > 0 {
        out.push(format!(
            "{approx} candidate(s) show central rss counts (bpf_approx): this kernel's read of its per-CPU counters could not be established, or their sums could not be read (see the start record's unavailable_fields); their points are still the kernel's own where points_source is kernel."
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SourceLine;

    const PAGE: u64 = 4096;

    /// A candidate whose central counts lag its per-CPU sums by `lag` anon pages.
    fn candidate(pid: u32, anon: i64, lag: i64, adj: i32, points: i64) -> OomCandidateEvent {
        OomCandidateEvent {
            pid,
            tgid: pid,
            oom_score_adj: adj,
            points,
            rss_anon_pages: anon,
            rss_file_pages: 3,
            rss_shmem_pages: 0,
            swapents: 0,
            pgtables_bytes: 8 * PAGE as i64,
            flags: candidate_flag::SCORED | candidate_flag::MEMORY | candidate_flag::MEMORY_SUM,
            sums: RssSums {
                file_pages: 3,
                anon_pages: anon + lag,
                swapents: 0,
                shmem_pages: 0,
            },
            ..Default::default()
        }
    }

    #[test]
    fn points_tell_the_read_apart() {
        let total = 16384;
        // 7.x: the points include the per-CPU deltas.
        let sum = [
            candidate(10, 1000, 18, 0, 1000 + 18 + 3 + 8),
            candidate(11, 50, 0, 0, 61),
        ];
        assert_eq!(rule_from_points(&sum, total, PAGE), Some(RssRule::Sum));
        // 6.x: they do not.
        let counter = [candidate(10, 1000, 18, 0, 1000 + 3 + 8)];
        assert_eq!(
            rule_from_points(&counter, total, PAGE),
            Some(RssRule::Counter)
        );
        // oom_score_adj counts in units of totalpages / 1000.
        let adj = [candidate(12, 100, 5, 500, 100 + 5 + 3 + 8 + 500 * 16)];
        assert_eq!(rule_from_points(&adj, total, PAGE), Some(RssRule::Sum));
        // Equal reads, or points neither read gives: no verdict.
        assert_eq!(
            rule_from_points(&[candidate(10, 1000, 0, 0, 1011)], total, PAGE),
            None
        );
        assert_eq!(
            rule_from_points(&[candidate(10, 1000, 7, 0, 5)], total, PAGE),
            None
        );
        // Contradicting candidates: no verdict either.
        let mixed = [
            candidate(10, 1000, 18, 0, 1029),
            candidate(11, 1000, 18, 0, 1011),
        ];
        assert_eq!(rule_from_points(&mixed, total, PAGE), None);
        // Unscored or unsummed candidates are no evidence.
        let mut unscored = candidate(10, 1000, 18, 0, 1029);
        unscored.flags &= !candidate_flag::SCORED;
        let mut unsummed = candidate(10, 1000, 18, 0, 1029);
        unsummed.flags &= !candidate_flag::MEMORY_SUM;
        assert_eq!(rule_from_points(&[unscored, unsummed], total, PAGE), None);
    }

    #[test]
    fn the_task_table_tells_the_read_apart() {
        let row = |pid: u32, anon: u64| TaskRow {
            pid,
            uid: 0,
            tgid: pid,
            total_vm_pages: 1,
            rss_pages: anon + 3,
            rss_anon_pages: Some(anon),
            rss_file_pages: Some(3),
            rss_shmem_pages: Some(0),
            pgtables_bytes: Some(8 * PAGE),
            nr_ptes: None,
            nr_pmds: None,
            swapents: Some(0),
            oom_score_adj: -1000,
            oom_adj: None,
            cpu: None,
            name: "hog".into(),
        };
        // A -1000 task alone: no points, no kill line; the table still tells.
        let mut c = candidate(10, 1000, 18, -1000, i64::MIN);
        c.flags &= !candidate_flag::SCORED;
        assert_eq!(rule_from_table(&[c], &[row(10, 1018)]), Some(RssRule::Sum));
        assert_eq!(
            rule_from_table(&[c], &[row(10, 1000)]),
            Some(RssRule::Counter)
        );
        assert_eq!(rule_from_table(&[c], &[row(11, 1000)]), None);
        assert_eq!(
            rss_rule(&[c], Some(16384), None, None, Some(&[row(10, 1018)]), PAGE),
            Some(RssRule::Sum)
        );
    }

    #[test]
    fn negative_reads_are_clamped_like_the_kernel() {
        // A central count below zero reads as 0 (`_positive`).
        let mut c = candidate(10, 1000, 18, 0, 18 + 3 + 8);
        c.rss_anon_pages = -40;
        c.sums.anon_pages = 18;
        assert_eq!(rule_from_points(&[c], 16384, PAGE), Some(RssRule::Sum));
        let (pages, _) = candidate_rss(&c, Some(RssRule::Counter));
        assert_eq!(pages.anon, 0);
    }

    fn kill_line(pid: u32, anon_kb: u64, file_kb: u64, shmem_kb: u64) -> KillLine {
        KillLine {
            memcg_oom: true,
            pid,
            comm: "hog".into(),
            uid: Some(0),
            total_vm_kb: Some(1),
            anon_rss_kb: Some(anon_kb),
            file_rss_kb: Some(file_kb),
            shmem_rss_kb: Some(shmem_kb),
            pgtables_kb: Some(4),
            oom_score_adj: Some(0),
            source: SourceLine {
                line_no: 1,
                timestamp: None,
                text: String::new(),
            },
        }
    }

    fn task(pid: u32, counter: [i64; 3], sums: [i64; 3]) -> VictimTaskEvent {
        VictimTaskEvent {
            victim_pid: pid,
            valid: victim_valid::RSS | victim_valid::SWAPENTS | victim_valid::RSS_SUM,
            rss_anon_pages: counter[0],
            rss_file_pages: counter[1],
            rss_shmem_pages: counter[2],
            sums: RssSums {
                anon_pages: sums[0],
                file_pages: sums[1],
                shmem_pages: sums[2],
                swapents: 0,
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_kill_line_tells_the_read_apart() {
        // Issue #8's numbers: 16320 vs 16338 anon, 0 vs 1 file, 130 vs 158 shmem pages.
        let t = task(7, [16320, 0, 130], [16338, 1, 158]);
        let line_7x = kill_line(7, 66_920_448 / 1024, 4, 647_168 / 1024);
        assert_eq!(rule_from_kill(&t, &line_7x, PAGE), Some(RssRule::Sum));
        let line_6x = kill_line(7, 16320 * 4, 0, 130 * 4);
        assert_eq!(rule_from_kill(&t, &line_6x, PAGE), Some(RssRule::Counter));
        // Another pid's line, or one the victim's exit moved: no verdict.
        assert_eq!(
            rule_from_kill(&t, &kill_line(8, 16320 * 4, 0, 520), PAGE),
            None
        );
        assert_eq!(rule_from_kill(&t, &kill_line(7, 4, 0, 0), PAGE), None);
    }

    #[test]
    fn the_victim_prefers_the_kill_line_then_the_kernels_read() {
        let t = task(7, [16320, 0, 130], [16338, 1, 158]);
        let line = kill_line(7, 66_920_448 / 1024, 4, 647_168 / 1024);
        let v = victim_rss(Some(&line), None, Some(&t), None, PAGE);
        assert_eq!(v.anon_bytes, Some(66_920_448));
        assert_eq!(v.file_bytes, Some(4096));
        assert_eq!(v.shmem_bytes, Some(647_168));
        assert_eq!(v.source, Some(RssSource::KernelReport));
        // Without the line: the sums when the kernel sums...
        let v = victim_rss(None, None, Some(&t), Some(RssRule::Sum), PAGE);
        assert_eq!(v.anon_bytes, Some(16338 * PAGE));
        assert_eq!(v.source, Some(RssSource::BpfExact));
        // ...the central counts when it does not...
        let v = victim_rss(None, None, Some(&t), Some(RssRule::Counter), PAGE);
        assert_eq!(v.anon_bytes, Some(16320 * PAGE));
        assert_eq!(v.source, Some(RssSource::BpfExact));
        // ...and the central counts, marked approximate, when unknown.
        let v = victim_rss(None, None, Some(&t), None, PAGE);
        assert_eq!(v.anon_bytes, Some(16320 * PAGE));
        assert_eq!(v.source, Some(RssSource::BpfApprox));
        // The tracepoint record is a get_mm_counter() read.
        let mark = MarkVictimEvent {
            pid: 7,
            anon_rss_kb: 16320 * 4,
            present: mark_victim_field::ANON_RSS
                | mark_victim_field::FILE_RSS
                | mark_victim_field::SHMEM_RSS,
            ..Default::default()
        };
        let v = victim_rss(None, Some(&mark), Some(&t), Some(RssRule::Counter), PAGE);
        assert_eq!(
            (v.anon_bytes, v.source),
            (Some(16320 * PAGE), Some(RssSource::BpfExact))
        );
        let v = victim_rss(None, Some(&mark), Some(&t), Some(RssRule::Sum), PAGE);
        assert_eq!(
            (v.anon_bytes, v.source),
            (Some(16338 * PAGE), Some(RssSource::BpfExact))
        );
        let v = victim_rss(None, Some(&mark), None, None, PAGE);
        assert_eq!(v.source, Some(RssSource::BpfApprox));
    }

    #[test]
    fn whole_counters_are_exact_whatever_the_rule() {
        let mut c = candidate(10, 1000, 0, 0, 1011);
        c.flags = candidate_flag::SCORED | candidate_flag::MEMORY | candidate_flag::MEMORY_ATOMIC;
        assert_eq!(candidate_rss(&c, None).1, RssSource::BpfExact);
        let lagging = candidate(10, 1000, 18, 0, 1029);
        assert_eq!(
            candidate_rss(&lagging, None),
            (
                RssPages {
                    file: 3,
                    anon: 1000,
                    swap: 0,
                    shmem: 0
                },
                RssSource::BpfApprox
            )
        );
        assert_eq!(candidate_rss(&lagging, Some(RssRule::Sum)).0.anon, 1018);
        let mut unsummed = lagging;
        unsummed.flags &= !candidate_flag::MEMORY_SUM;
        assert_eq!(
            candidate_rss(&unsummed, Some(RssRule::Sum)).1,
            RssSource::BpfApprox
        );
        assert_eq!(
            candidate_rss(&unsummed, Some(RssRule::Counter)).1,
            RssSource::BpfExact
        );
    }

    /// A 7.x OOM end to end through the decision builder: the killer's
    /// points reveal the per-CPU sums, the candidates show them, the victim
    /// shows its kill line.
    #[test]
    fn a_7x_oom_is_decided_with_the_sums() {
        use std::time::Instant;

        use oomtrace_ebpf::{EventHeader, OomChoiceEvent, OomEndEvent, kind};

        use crate::{
            events::Event,
            model::decision::{Builder, OfflineEnv, Sources},
            report::ReportItem,
        };

        let header = |k: u32| EventHeader {
            kind: k,
            pid: 10,
            tgid: 10,
            ..Default::default()
        };
        let total = 16384;
        // The victim: 1000 anon pages centrally, 18 more per CPU; a bystander
        // whose reads agree.
        let mut victim = candidate(10, 1000, 18, 0, 1000 + 18 + 3 + 8);
        victim.header = header(kind::OOM_CANDIDATE);
        victim.oom_seq = 1;
        let mut other = candidate(11, 50, 0, 0, 61);
        other.header = header(kind::OOM_CANDIDATE);
        other.oom_seq = 1;
        other.index = 1;
        let choice = OomChoiceEvent {
            header: header(kind::OOM_CHOICE),
            oom_seq: 1,
            pid: 10,
            tgid: 10,
            points: victim.points,
            ..Default::default()
        };
        let end = OomEndEvent {
            header: header(kind::OOM_END),
            oom_seq: 1,
            totalpages: total,
            chosen: 1,
            candidates: 2,
            ..Default::default()
        };
        let mut task = task(10, [1000, 3, 0], [1018, 3, 0]);
        task.header = header(kind::VICTIM_TASK);
        let sources = Sources {
            backend: "fentry",
            victim_task_hook: true,
            exit_hook: false,
            oom_path_hooks: true,
            pagefault_hook: false,
        };
        let mut builder = Builder::new(sources, Vec::new());
        let now = Instant::now();
        for event in [
            Event::OomCandidate(victim),
            Event::OomCandidate(other),
            Event::OomChoice(choice),
            Event::OomEnd(end),
            Event::MarkVictim(MarkVictimEvent {
                header: header(kind::MARK_VICTIM),
                pid: 10,
                anon_rss_kb: 4000,
                file_rss_kb: 12,
                present: mark_victim_field::ANON_RSS
                    | mark_victim_field::FILE_RSS
                    | mark_victim_field::SHMEM_RSS,
                ..Default::default()
            }),
            Event::VictimTask(Box::new(task)),
        ] {
            builder.on_event(now, event);
        }
        builder.on_report(now, ReportItem::Kill(kill_line(10, 1018 * 4, 12, 0)));
        let decisions = builder.flush(&mut OfflineEnv::new(PAGE));
        let [d] = decisions.as_slice() else {
            panic!("{decisions:?}")
        };
        assert_eq!(d.rss_rule.as_deref(), Some("get_mm_counter_sum"));
        let c = d.candidates.iter().find(|c| c.pid == 10).unwrap();
        assert_eq!(c.rss_anon_bytes, Some(1018 * PAGE));
        assert_eq!(c.rss_source.as_deref(), Some("bpf_exact"));
        assert_eq!(c.points, Some(1029));
        assert_eq!(c.points_source.as_deref(), Some("kernel"));
        let v = d.victim.as_ref().unwrap();
        assert_eq!(v.rss_anon_bytes, Some(1018 * PAGE));
        assert_eq!(v.rss_source.as_deref(), Some("kernel_report"));
        assert_eq!(v.points_source.as_deref(), Some("kernel"));
        assert!(
            d.explanation
                .iter()
                .any(|l| l.contains("get_mm_counter_sum")),
            "{:?}",
            d.explanation
        );
        assert!(!d.explanation.iter().any(|l| l.contains("bpf_approx")));

        // A later OOM with only a -1000 task and no report: nothing in it
        // tells the reads apart, the rule learned above still holds.
        let mut lone = candidate(12, 500, 9, -1000, i64::MIN);
        lone.flags &= !candidate_flag::SCORED;
        lone.header = header(kind::OOM_CANDIDATE);
        lone.oom_seq = 2;
        let end = OomEndEvent {
            oom_seq: 2,
            chosen: 0,
            ret: 0,
            candidates: 1,
            ..end
        };
        builder.on_event(now, Event::OomCandidate(lone));
        builder.on_event(now, Event::OomEnd(end));
        let decisions = builder.flush(&mut OfflineEnv::new(PAGE));
        let [d] = decisions.as_slice() else {
            panic!("{decisions:?}")
        };
        assert!(d.victim.is_none());
        assert_eq!(d.rss_rule.as_deref(), Some("get_mm_counter_sum"));
        let c = &d.candidates[0];
        assert_eq!(c.rss_anon_bytes, Some(509 * PAGE));
        assert_eq!(c.rss_bytes, 512 * PAGE);
        assert_eq!(c.rss_source.as_deref(), Some("bpf_exact"));
        assert_eq!(c.points, None);
    }
}
