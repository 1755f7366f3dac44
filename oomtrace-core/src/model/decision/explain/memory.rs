//! What the memcg's memory was made of at the OOM, and how to read the
//! task table's numbers.
use crate::{
    base::units::human_bytes as hb,
    model::decision::{
        explain::input::ExplainInput,
        record::{ACTIVE_FILE_KEYS, ANON_KEYS, FILE_KEYS, INACTIVE_FILE_KEYS, SHMEM_KEYS},
    },
    report::KernelReport,
};

/// The first of these `memory.stat` keys the report has.
fn stat(report: &KernelReport, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| report.memcg_stat(k))
}

/// Anonymous memory against page cache (v1 prefers the hierarchical
/// total_*), and kernel memory when it is a large share.
pub(super) fn composition(out: &mut Vec<String>, x: &ExplainInput<'_>, report: &KernelReport) {
    let (Some(anon), Some(file)) = (stat(report, ANON_KEYS), stat(report, FILE_KEYS)) else {
        return;
    };
    let shmem = stat(report, SHMEM_KEYS).unwrap_or(0);
    let usage = x
        .oom_memcg
        .and_then(|m| m.usage_bytes)
        .filter(|&u| u > 0)
        .unwrap_or(anon.saturating_add(file));
    let pct = |v: u64| v as f64 * 100.0 / usage.max(1) as f64;
    let lru = match (
        stat(report, ACTIVE_FILE_KEYS),
        stat(report, INACTIVE_FILE_KEYS),
    ) {
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
    if let Some(kernel) = stat(report, &["kernel"]).filter(|&k| k.saturating_mul(10) >= usage) {
        out.push(format!(
            "Kernel memory (slab, stacks, page tables, sockets) charged to the memcg was {} ({:.0}% of usage): no task's rss shows it, and killing a task frees only part of it.",
            hb(kernel),
            pct(kernel)
        ));
    }
}

pub(super) fn huge_pages(out: &mut Vec<String>, report: &KernelReport) {
    if let Some(huge) = stat(report, &["total_rss_huge", "anon_thp", "rss_huge"]).filter(|&h| h > 0)
    {
        out.push(format!(
            "{} of the anonymous memory was transparent huge pages (2 MiB each).",
            hb(huge)
        ));
    }
}

/// The task table is in pages, a classic misreading.
pub(super) fn pages_not_kb(out: &mut Vec<String>, x: &ExplainInput<'_>, report: &KernelReport) {
    let Some(v) = x.victim else { return };
    let Some(row) = report
        .tasks
        .as_ref()
        .and_then(|t| t.rows.iter().find(|r| r.pid == v.pid))
    else {
        return;
    };
    out.push(format!(
        "The kernel's task table counts memory in pages of {}: {}'s rss column {} means {}, not {} kB.",
        hb(x.page_size),
        v.comm.as_deref().unwrap_or("the victim"),
        row.rss_pages,
        hb(row.rss_pages.saturating_mul(x.page_size)),
        row.rss_pages
    ));
}
