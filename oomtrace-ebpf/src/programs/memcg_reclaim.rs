//! `vmscan:mm_vmscan_memcg_reclaim_begin`/`_end`: charges that found a memcg at
//! its limit and had to reclaim. Only the slow path runs these; results are
//! aggregated per memcg in `RECLAIM_STATS` (a memcg living at its limit
//! reclaims constantly), and the collector reads them when it builds a decision.
//!
//! A pass that reclaims its target is the normal life of a memcg full of page
//! cache; one that falls short (`nr_reclaimed < nr_to_reclaim`) means too
//! little is left to reclaim, and charges start to fail: only those passes
//! (or, where the target cannot be read, every pass) ask the collector for
//! the charge hook (`memcg_at_limit`).
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use oomtrace_ebpf::{MemcgReclaimStats, ReclaimStart, UNAVAILABLE, UNAVAILABLE_U64};

use super::{
    common::{LAYOUT, OFFSETS, RECLAIM_START, RECLAIM_STATS, global, read_or_zero, read_record},
    memcg::{css_cgroup_id, in_scope, task_memcg_css},
};

#[tracepoint]
pub fn memcg_reclaim_begin(ctx: TracePointContext) -> u32 {
    let css = task_memcg_css(unsafe { bpf_get_current_task() }).unwrap_or(0);
    if css == 0 || !in_scope(css) {
        return 0;
    }
    let Some(memcg_id) = css_cgroup_id(css) else {
        return 0;
    };
    let start = ReclaimStart {
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        memcg_id,
        gfp_flags: read_gfp_flags(&ctx),
        order: read_record::<i32, _>(&ctx, global!(LAYOUT.reclaim_begin_order)).unwrap_or(-1),
        _pad0: 0,
    };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = RECLAIM_START.insert(tid, start, 0);
    0
}

#[tracepoint]
pub fn memcg_reclaim_end(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(&start) = (unsafe { RECLAIM_START.get(tid) }) else {
        return 0;
    };
    let _ = RECLAIM_START.remove(tid);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let reclaimed =
        read_record::<u64, _>(&ctx, global!(LAYOUT.reclaim_end_nr_reclaimed)).unwrap_or(0);
    let target = reclaim_target();
    let short = target != UNAVAILABLE_U64 && reclaimed < target;
    let stats = match RECLAIM_STATS.get_ptr_mut(start.memcg_id) {
        Some(stats) => stats,
        None => {
            let _ = RECLAIM_STATS.insert(start.memcg_id, MemcgReclaimStats::default(), 0);
            match RECLAIM_STATS.get_ptr_mut(start.memcg_id) {
                Some(stats) => stats,
                None => return 0,
            }
        }
    };
    // Plain adds: concurrent passes on two CPUs may lose an increment, which
    // is acceptable for statistics and cheaper than atomics on this path.
    unsafe {
        (*stats).passes += 1;
        if reclaimed == 0 {
            (*stats).empty_passes += 1;
        }
        (*stats).pages_reclaimed += reclaimed;
        (*stats).total_ns += now.saturating_sub(start.boot_ns);
        (*stats).last_end_boot_ns = now;
        (*stats).last_gfp_flags = start.gfp_flags;
        (*stats).last_order = start.order;
        if short {
            (*stats).short_passes += 1;
        }
    }
    // An unknown target cannot tell a short pass: every pass asks (the old rule).
    if short || target == UNAVAILABLE_U64 {
        let short_passes = unsafe { (*stats).short_passes };
        super::charge_failure::memcg_at_limit(start.memcg_id, reclaimed, target, short_passes);
    }
    0
}

/// The target of the pass ending now, `scan_control.nr_to_reclaim`:
/// `try_to_free_mem_cgroup_pages` points `current->reclaim_state` at its
/// `sc.reclaim_state` before the begin tracepoint and clears it after the
/// end one (5.10 to 6.18). [`UNAVAILABLE_U64`] where the offsets are unknown
/// or the pointer is not set: never guessed.
#[inline(always)]
fn reclaim_target() -> u64 {
    let in_task = global!(OFFSETS.task_reclaim_state);
    let state = global!(OFFSETS.scan_control_reclaim_state);
    let target = global!(OFFSETS.scan_control_nr_to_reclaim);
    if in_task == UNAVAILABLE || state == UNAVAILABLE || target == UNAVAILABLE {
        return UNAVAILABLE_U64;
    }
    let current = unsafe { bpf_get_current_task() } as u64;
    let reclaim_state: u64 = read_or_zero(current, in_task);
    if reclaim_state == 0 {
        return UNAVAILABLE_U64;
    }
    let scan_control = reclaim_state.wrapping_sub(u64::from(state));
    match read_or_zero::<u64>(scan_control, target) {
        0 => UNAVAILABLE_U64,
        nr_to_reclaim => nr_to_reclaim,
    }
}

/// `gfp_flags` is `unsigned long` on 6.x and `gfp_t` (4 bytes) on older kernels.
#[inline(always)]
fn read_gfp_flags(ctx: &TracePointContext) -> u64 {
    let offset = global!(LAYOUT.reclaim_begin_gfp_flags);
    match global!(LAYOUT.reclaim_begin_gfp_flags_size) {
        8 => read_record::<u64, _>(ctx, offset).unwrap_or(0),
        4 => read_record::<u32, _>(ctx, offset).map_or(0, u64::from),
        _ => 0,
    }
}
