//! What the kill freed (the victim's memory, the reaper, its exit) and the
//! memcg reclaim that came before it.
use std::borrow::Cow;

use oomtrace_ebpf::{reaper_step, victim_valid};

use crate::model::decision::{
    env::Environment,
    pending::{Pending, Sources},
    record::{Freed, ReclaimSummary, Victim},
};

pub(super) fn freed(p: &Pending, sources: Sources, victim: Option<&Victim>) -> Freed {
    Freed {
        // Old kernels report no shmem split (file-rss included it): sum what was reported.
        rss_bytes: victim.and_then(|v| {
            let parts = [v.rss_anon_bytes, v.rss_file_bytes, v.rss_shmem_bytes];
            parts.iter().any(Option::is_some).then(|| {
                parts
                    .iter()
                    .flatten()
                    .fold(0u64, |s, &b| s.saturating_add(b))
            })
        }),
        swap_bytes: victim.and_then(|v| v.swap_bytes),
        pgtables_bytes: victim.and_then(|v| v.pgtables_bytes),
        reaper: reaper_state(p).map(Cow::Borrowed),
        anon_rss_after_reap_bytes: p
            .reaped
            .as_ref()
            .map(|r| r.anon_rss_kb.saturating_mul(1024)),
        exited: (sources.exit_hook || p.exit.is_some()).then_some(p.exit.is_some()),
        exit_after_ms: p.exit.as_ref().map(|e| {
            let from = p.kill_boot_ns().unwrap_or(e.marked_boot_ns);
            e.header.boot_ns.saturating_sub(from) as f64 / 1e6
        }),
    }
}

/// How far the OOM reaper got with the victim.
fn reaper_state(p: &Pending) -> Option<&'static str> {
    let reaper_done = |step: u32| p.reaper_events.iter().any(|e| e.step == step);
    if reaper_done(reaper_step::FINISH) || p.reaped.is_some() {
        Some("reaped")
    } else if reaper_done(reaper_step::SKIP) {
        Some("skipped")
    } else if !p.reaper_events.is_empty() {
        Some("queued")
    } else {
        None
    }
}

/// Reclaim in the allocating task's memcg, counted since tracing began.
pub(super) fn reclaim(
    p: &Pending,
    trigger_memcg: Option<String>,
    page_size: u64,
    env: &dyn Environment,
) -> Option<ReclaimSummary> {
    let task = p
        .task
        .as_deref()
        .filter(|t| t.valid & victim_valid::TRIGGER_MEMCG != 0)?;
    let stats = env.reclaim_stats(task.trigger_memcg_id)?;
    Some(ReclaimSummary {
        memcg: trigger_memcg,
        passes: stats.passes,
        empty_passes: stats.empty_passes,
        reclaimed_bytes: stats.pages_reclaimed.saturating_mul(page_size),
        time_ms: stats.total_ns as f64 / 1e6,
    })
}
