//! The memcgs involved: the victim's and the chain above it, the one whose
//! limit fired and its state at the OOM, and the kernel's totalpages.
use oomtrace_ebpf::{MemcgLevel, victim_valid};

use crate::{
    cgroup::MemcgSnapshot,
    model::decision::{
        env::Environment,
        pending::Pending,
        record::{MemcgStat, OomMemcg},
    },
    report::{CounterLine, KernelReport},
};

/// The victim's memcg and the chain above it, from the kernel.
pub(super) fn victim_chain(p: &Pending) -> Vec<MemcgLevel> {
    p.task
        .as_deref()
        .filter(|t| t.valid & victim_valid::MEMCG != 0)
        .map(|t| t.memcg[..(t.memcg_depth as usize).min(t.memcg.len())].to_vec())
        .unwrap_or_default()
}

pub(super) fn victim_memcg(
    p: &Pending,
    chain: &[MemcgLevel],
    env: &mut dyn Environment,
) -> Option<String> {
    chain
        .first()
        .and_then(|level| env.memcg_path(level.cgroup_id))
        .or_else(|| {
            p.report.as_ref().and_then(|r| {
                r.constraint
                    .as_ref()
                    .and_then(|c| c.task_memcg.clone())
                    .or_else(|| r.task_in_line.as_ref().map(|(task, _)| task.clone()))
            })
        })
}

/// Which memcg hit its limit: the kernel report says; without it, the
/// level of the chain closest to its limit.
pub(super) fn oom_memcg(
    p: &Pending,
    constraint: Option<&str>,
    chain: &[MemcgLevel],
    page_size: u64,
    env: &mut dyn Environment,
) -> Option<OomMemcg> {
    if constraint != Some("memcg") {
        return None;
    }
    let report = p.report.as_ref();
    let report_path = report.and_then(reported_oom_path);
    if let Some(counter) = report.and_then(|r| r.counter("memory")) {
        return Some(OomMemcg::bare(
            report_path,
            Some(counter.limit_kb.saturating_mul(1024)),
            Some(counter.usage_kb.saturating_mul(1024)),
            "kernel_report",
        ));
    }
    match closest_to_limit(chain, page_size) {
        // Pages from the chain; `swap` and `memsw` share an offset, so which
        // one its swap counter is depends on the hierarchy: left unset.
        Some(level) => Some(OomMemcg::bare(
            env.memcg_path(level.cgroup_id).or(report_path),
            Some(level.max_pages.saturating_mul(page_size)),
            Some(level.usage_pages.saturating_mul(page_size)),
            "bpf",
        )),
        None => report_path.map(|path| OomMemcg::bare(Some(path), None, None, "kernel_report")),
    }
}

/// The level of a victim's memcg chain closest to its limit: the one whose
/// limit fired, when no report names it.
pub fn closest_to_limit(chain: &[MemcgLevel], page_size: u64) -> Option<&MemcgLevel> {
    chain
        .iter()
        .filter(|l| l.max_pages > 0 && l.max_pages < (u64::MAX / page_size.max(1)))
        .min_by_key(|l| l.max_pages.saturating_sub(l.usage_pages))
}

fn reported_oom_path(r: &KernelReport) -> Option<String> {
    r.constraint
        .as_ref()
        .and_then(|c| c.oom_memcg.clone())
        .or_else(|| {
            // Journals cut long lines: an oom path that stops inside the
            // task's own path component is that same memcg.
            r.task_in_line
                .as_ref()
                .map(|(task, oom)| match task.strip_prefix(oom.as_str()) {
                    Some(rest) if !rest.is_empty() && !rest.starts_with('/') => task.clone(),
                    _ => oom.clone(),
                })
        })
        // A report without a victim has no constraint line; the memcg stats
        // header names the memcg whose limit was hit.
        .or_else(|| r.memcg_stats_for.clone())
}

impl OomMemcg {
    fn bare(
        path: Option<String>,
        limit_bytes: Option<u64>,
        usage_bytes: Option<u64>,
        source: &'static str,
    ) -> Self {
        OomMemcg {
            path,
            limit_bytes,
            usage_bytes,
            source: source.into(),
            usage_after_kill_bytes: None,
            swap_usage_bytes: None,
            swap_limit_bytes: None,
            memsw_limit_bytes: None,
            stat: None,
        }
    }
}

/// The OOM memcg's state: usage after the kill, swap, and what its memory
/// was made of.
pub(super) fn memcg_state(mut m: OomMemcg, p: &Pending, env: &dyn Environment) -> OomMemcg {
    let report = p.report.as_ref();
    let snapshot = m.path.as_deref().and_then(|path| env.memcg_snapshot(path));
    if let Some(files) = m.path.as_deref().and_then(|path| env.memcg_files(path)) {
        m.usage_after_kill_bytes = files.usage_bytes;
    }
    // Swap: the kernel's own lines first.
    if let Some(r) = report {
        swap_from_report(&mut m, r);
    }
    if let Some((snap, _)) = &snapshot {
        swap_from_snapshot(&mut m, snap);
    }
    // Composition: the report's stats were printed at the OOM itself; the
    // files read during the OOM stand in when the report is missing.
    m.stat = report
        .and_then(stat_from_report)
        .or_else(|| stat_from_snapshot(snapshot.as_ref()?, p.kill_boot_ns()));
    m
}

fn swap_from_report(m: &mut OomMemcg, r: &KernelReport) {
    let memory = r.counter("memory");
    for c in &r.counters {
        match c.name.as_str() {
            "swap" => {
                m.swap_usage_bytes = Some(c.usage_kb.saturating_mul(1024));
                m.swap_limit_bytes = Some(c.limit_kb.saturating_mul(1024));
            }
            "memory+swap" => {
                m.memsw_limit_bytes = Some(c.limit_kb.saturating_mul(1024));
                m.swap_usage_bytes =
                    memory.map(|mem| c.usage_kb.saturating_sub(mem.usage_kb).saturating_mul(1024));
            }
            _ => {}
        }
    }
}

fn swap_from_snapshot(m: &mut OomMemcg, snap: &MemcgSnapshot) {
    m.swap_usage_bytes = m.swap_usage_bytes.or(snap.swap_usage_bytes);
    if m.swap_limit_bytes.is_none() && m.memsw_limit_bytes.is_none() {
        // v1 (kmem counter, `total_*` keys): the files' swap limit is memsw's.
        match snap.kmem_usage_bytes.is_some() || snap.stat.iter().any(|(k, _)| k == "total_rss") {
            true => m.memsw_limit_bytes = snap.files.swap_limit_bytes,
            false => m.swap_limit_bytes = snap.files.swap_limit_bytes,
        }
    }
}

fn stat_from_report(r: &KernelReport) -> Option<MemcgStat> {
    if r.memcg_stats.is_empty() {
        return None;
    }
    let kmem = r.counter("kmem").map(|c| c.usage_kb.saturating_mul(1024));
    MemcgStat::from_keys("kernel_report", None, |k| r.memcg_stat(k), kmem)
}

fn stat_from_snapshot(
    (snap, read_ns): &(MemcgSnapshot, u64),
    kill_boot_ns: Option<u64>,
) -> Option<MemcgStat> {
    let after = kill_boot_ns.map(|kill| (*read_ns as f64 - kill as f64) / 1e6);
    let stat = |k: &str| snap.stat.iter().find(|(key, _)| key == k).map(|&(_, v)| v);
    MemcgStat::from_keys("memcg_files", after, stat, snap.kmem_usage_bytes)
}

/// totalpages as the kernel computed it for this OOM.
pub(super) struct Totalpages {
    pub(super) pages: Option<u64>,
    /// Computed without knowing the host's swap: no swap assumed.
    pub(super) swap_assumed: bool,
}

pub(super) fn totalpages(
    p: &Pending,
    constraint: Option<&str>,
    oom_memcg: Option<&OomMemcg>,
    page_size: u64,
    env: &dyn Environment,
) -> Totalpages {
    let swap_total = env.swap_total_pages();
    let computed = match constraint {
        Some("memcg") => oom_memcg.and_then(|m| m.limit_bytes).map(|limit| {
            let limit_pages = limit / page_size.max(1);
            limit_pages.saturating_add(
                swap_allowance(p.report.as_ref(), limit_pages, page_size)
                    .min(swap_total.unwrap_or(0)),
            )
        }),
        // The report's own Mem-Info (RAM less reserved, plus swap) is the
        // machine that OOMed; the live host's is the fallback.
        Some("global") => p
            .report
            .as_ref()
            .and_then(|r| r.global_totalpages(page_size))
            .or_else(|| {
                env.mem_total_pages()
                    .map(|ram| ram.saturating_add(swap_total.unwrap_or(0)))
            }),
        _ => None,
    };
    let end = p.end();
    // The kernel's own totalpages when the killer was hooked.
    let pages = end.map(|e| e.totalpages).filter(|&t| t > 0).or(computed);
    let from_report = constraint == Some("global")
        && p.report
            .as_ref()
            .is_some_and(|r| r.global_totalpages(page_size).is_some());
    Totalpages {
        pages,
        swap_assumed: end.is_none() && swap_total.is_none() && pages.is_some() && !from_report,
    }
}

/// The swap a memcg may use on top of its memory limit, in pages.
fn swap_allowance(report: Option<&KernelReport>, limit_pages: u64, page_size: u64) -> u64 {
    let allowance = |c: &CounterLine| match c.name.as_str() {
        "memory+swap" => {
            Some((c.limit_kb.saturating_mul(1024) / page_size.max(1)).saturating_sub(limit_pages))
        }
        "swap" => Some(c.limit_kb.saturating_mul(1024) / page_size.max(1)),
        _ => None,
    };
    report
        .and_then(|r| r.counters.iter().find_map(allowance))
        .unwrap_or(0)
}
