//! Charges that failed, seen from the memcg OOM slow path only (a hook per
//! successful charge would cost the hot path; see docs/bench.md):
//! `mem_cgroup_out_of_memory` returning false (nothing could be killed) and
//! `mem_cgroup_oom_synchronize`, where a page fault whose charge failed in an
//! OOM-disabled cgroup-v1 memcg waits. Shared by the fentry and kprobe wrappers.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_task},
    macros::map,
    maps::LruHashMap,
};
use oomtrace_ebpf::{
    ChargeFailureEvent, ChargeFailureState, MemcgOomArgs, OomWaitEvent, OomWaiter, UNAVAILABLE,
    UNAVAILABLE_U64, UNKNOWN_GFP, UNKNOWN_ORDER, charge_failure_reason, kind, oom_wait_phase,
};

use super::{
    common::{OFFSETS, global, read_or_zero, reserve, write_header},
    memcg::{css_cgroup_id, in_scope, page_counter_field},
};

/// At most one event per memcg in this interval; the rest are counted in
/// `CHARGE_FAILURES` and reported with the next event (a memcg stuck at its
/// limit can fail thousands of charges a second).
const REPORT_INTERVAL_NS: u64 = 100_000_000;

/// Charge-failure counts and rate limit per memcg (cgroup id).
#[map]
pub static CHARGE_FAILURES: LruHashMap<u64, ChargeFailureState> =
    LruHashMap::with_max_entries(4096, 0);
/// Tasks waiting in `mem_cgroup_oom_synchronize` (tid -> since when, which memcg).
#[map]
static OOM_WAITERS: LruHashMap<u32, OomWaiter> = LruHashMap::with_max_entries(8192, 0);
/// `mem_cgroup_out_of_memory` arguments per tid, for the kretprobe.
#[map]
static MEMCG_OOM_ARGS: LruHashMap<u32, MemcgOomArgs> = LruHashMap::with_max_entries(1024, 0);

fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// The cgroup id of a `struct mem_cgroup *`, 0 when unknown.
#[inline(always)]
fn memcg_id(memcg: u64) -> u64 {
    let memcg_css = global!(OFFSETS.memcg_css);
    if memcg == 0 || memcg_css == UNAVAILABLE {
        return 0;
    }
    css_cgroup_id(memcg + memcg_css as u64).unwrap_or(0)
}

#[inline(always)]
fn memcg_in_scope(memcg: u64) -> bool {
    let memcg_css = global!(OFFSETS.memcg_css);
    memcg != 0 && memcg_css != UNAVAILABLE && in_scope(memcg + memcg_css as u64)
}

/// Counts one failure of `memcg_id`; true when it should be reported now.
#[inline(always)]
fn count_failure(memcg_id: u64, now: u64) -> Option<u64> {
    let state = match CHARGE_FAILURES.get_ptr_mut(memcg_id) {
        Some(state) => state,
        None => {
            let _ = CHARGE_FAILURES.insert(memcg_id, ChargeFailureState::default(), 0);
            CHARGE_FAILURES.get_ptr_mut(memcg_id)?
        }
    };
    // Plain updates: two CPUs failing the same memcg at once may lose a count,
    // acceptable for a rate limit and cheaper than atomics.
    unsafe {
        (*state).failures_total += 1;
        let due = (*state).reported == 0
            || now.saturating_sub((*state).last_report_ns) >= REPORT_INTERVAL_NS;
        if !due {
            return None;
        }
        (*state).last_report_ns = now;
        (*state).reported += 1;
        Some((*state).failures_total)
    }
}

#[inline(always)]
fn report_failure(memcg: u64, gfp_mask: u32, order: i32, reason: u32) {
    if !memcg_in_scope(memcg) {
        return;
    }
    let id = memcg_id(memcg);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(failures_total) = count_failure(id, now) else {
        return;
    };
    let Some(mut entry) = reserve::<ChargeFailureEvent>(kind::CHARGE_FAILURE) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::CHARGE_FAILURE);
    let memory = global!(OFFSETS.memcg_memory);
    let usage = global!(OFFSETS.page_counter_usage);
    let max = global!(OFFSETS.page_counter_max);
    let counters = memory != UNAVAILABLE && usage != UNAVAILABLE && max != UNAVAILABLE;
    unsafe {
        (*event).memcg_id = id;
        (*event).usage_pages = if counters {
            page_counter_field(memcg, memory, usage)
        } else {
            UNAVAILABLE_U64
        };
        (*event).max_pages = if counters {
            page_counter_field(memcg, memory, max)
        } else {
            UNAVAILABLE_U64
        };
        (*event).failures_total = failures_total;
        (*event).gfp_mask = gfp_mask;
        (*event).order = order;
        (*event).reason = reason;
        (*event)._pad0 = 0;
    }
    entry.submit(0);
}

/// kprobe side: remember the arguments for the kretprobe.
#[inline(always)]
pub fn memcg_oom_enter(memcg: u64, gfp_mask: u32, order: i32) {
    let args = MemcgOomArgs {
        memcg,
        gfp_mask,
        order,
    };
    let _ = MEMCG_OOM_ARGS.insert(tid(), args, 0);
}

/// kretprobe side: the arguments come from [`memcg_oom_enter`].
#[inline(always)]
pub fn memcg_oom_return(killed: bool) {
    let tid = tid();
    let Some(&args) = (unsafe { MEMCG_OOM_ARGS.get(tid) }) else {
        return;
    };
    let _ = MEMCG_OOM_ARGS.remove(tid);
    memcg_oom_exit(args.memcg, args.gfp_mask, args.order, killed);
}

/// `mem_cgroup_out_of_memory(memcg, gfp_mask, order)` returned `killed`:
/// false means nothing was killed and nobody is exiting, so the charge that
/// called it fails (or, before Linux 5.16, is forced over the limit).
#[inline(always)]
pub fn memcg_oom_exit(memcg: u64, gfp_mask: u32, order: i32, killed: bool) {
    if !killed {
        report_failure(memcg, gfp_mask, order, charge_failure_reason::NO_VICTIM);
    }
}

/// Entry of `mem_cgroup_oom_synchronize`: with `current->memcg_in_oom` set,
/// the task's charge failed in an OOM-disabled memcg and it is about to wait.
#[inline(always)]
pub fn oom_synchronize_enter() {
    let offset = global!(OFFSETS.task_memcg_in_oom);
    if offset == UNAVAILABLE {
        return;
    }
    let current = unsafe { bpf_get_current_task() } as u64;
    let memcg: u64 = read_or_zero(current, offset);
    if memcg == 0 || !memcg_in_scope(memcg) {
        return;
    }
    // Newer kernels dropped these fields: report them as unknown.
    let gfp_offset = global!(OFFSETS.task_memcg_oom_gfp_mask);
    let order_offset = global!(OFFSETS.task_memcg_oom_order);
    let gfp_mask: u32 = if gfp_offset == UNAVAILABLE {
        UNKNOWN_GFP
    } else {
        read_or_zero(current, gfp_offset)
    };
    let order: i32 = if order_offset == UNAVAILABLE {
        UNKNOWN_ORDER
    } else {
        read_or_zero(current, order_offset)
    };
    report_failure(memcg, gfp_mask, order, charge_failure_reason::OOM_DISABLED);
    let id = memcg_id(memcg);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let waiter = OomWaiter {
        begin_ns: now,
        memcg_id: id,
    };
    let _ = OOM_WAITERS.insert(tid(), waiter, 0);
    emit_wait(id, oom_wait_phase::BEGIN, 0, gfp_mask, order);
}

/// Exit of `mem_cgroup_oom_synchronize`: the wait (if any) is over.
#[inline(always)]
pub fn oom_synchronize_exit() {
    let tid = tid();
    let Some(&waiter) = (unsafe { OOM_WAITERS.get(tid) }) else {
        return;
    };
    let _ = OOM_WAITERS.remove(tid);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    emit_wait(
        waiter.memcg_id,
        oom_wait_phase::END,
        now.saturating_sub(waiter.begin_ns),
        0,
        0,
    );
}

#[inline(always)]
fn emit_wait(memcg_id: u64, phase: u32, waited_ns: u64, gfp_mask: u32, order: i32) {
    let Some(mut entry) = reserve::<OomWaitEvent>(kind::OOM_WAIT) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::OOM_WAIT);
    unsafe {
        (*event).memcg_id = memcg_id;
        (*event).waited_ns = waited_ns;
        (*event).phase = phase;
        (*event).gfp_mask = gfp_mask;
        (*event).order = order;
        (*event)._pad0 = 0;
    }
    entry.submit(0);
}
