//! Charges that failed, seen from the memcg OOM slow path (a hook per
//! successful charge costs the hot path; see docs/bench.md):
//! `mem_cgroup_out_of_memory` returning false (nothing could be killed) and
//! `mem_cgroup_oom_synchronize`, where a page fault whose charge failed in an
//! OOM-disabled cgroup-v1 memcg waits; shared by the fentry and kprobe
//! wrappers. Plus the fexit on `try_charge_memcg` that the collector attaches
//! only while some memcg's reclaim falls short of its target
//! (`memcg_at_limit` asks for it), for failures that never reach the OOM path.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_task},
    macros::map,
    maps::LruHashMap,
};
use oomtrace_ebpf::{
    ChargeFailureEvent, ChargeFailureKey, ChargeFailureState, MemcgAtLimitEvent, MemcgOomArgs,
    OomWaitEvent, OomWaiter, UNAVAILABLE, UNAVAILABLE_U64, UNKNOWN_GFP, UNKNOWN_ORDER,
    charge_failure_reason, kind, oom_wait_phase,
};

use super::{
    common::{OFFSETS, global, read_or_zero, reserve, write_header},
    memcg::{css_cgroup_id, in_scope, page_counter_field},
};

/// At most one event per memcg and reason in this interval; the rest are counted in
/// `CHARGE_FAILURES` and reported with the next event (a memcg stuck at its
/// limit can fail thousands of charges a second).
const REPORT_INTERVAL_NS: u64 = 100_000_000;

/// Charge-failure counts and rate limit per memcg (cgroup id) and reason.
#[map]
pub static CHARGE_FAILURES: LruHashMap<ChargeFailureKey, ChargeFailureState> =
    LruHashMap::with_max_entries(4096, 0);
/// Tasks waiting in `mem_cgroup_oom_synchronize` (tid -> since when, which memcg).
#[map]
static OOM_WAITERS: LruHashMap<u32, OomWaiter> = LruHashMap::with_max_entries(8192, 0);
/// `mem_cgroup_out_of_memory` arguments per tid, for the kretprobe.
#[map]
static MEMCG_OOM_ARGS: LruHashMap<u32, MemcgOomArgs> = LruHashMap::with_max_entries(1024, 0);
/// A failure one hook has reported for a task, so that the other hook seeing
/// the same failure does not count it again: the OOM path and the armed
/// charge hook both see a no-victim failure, the charge hook and
/// `mem_cgroup_oom_synchronize` an OOM-disabled one. The OOM path always
/// reports: an fexit attached while a charge is in progress does not fire
/// for that charge, so a mark can outlive its failure; it matches only the
/// same allocation (gfp mask and size) shortly after.
#[map]
static REPORTED: LruHashMap<u32, ReportedMark> = LruHashMap::with_max_entries(1024, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct ReportedMark {
    at_ns: u64,
    what: u32,
    gfp_mask: u32,
    /// Allocation order; `UNKNOWN_ORDER` matches any size.
    order: i32,
    _pad0: u32,
}
const NO_VICTIM_REPORTED: u32 = 1;
const OOM_DISABLED_REPORTED: u32 = 2;
/// A mark older than this belongs to an earlier failure (the hooks of one
/// failure are microseconds apart).
const SAME_FAILURE_NS: u64 = 50_000_000;

#[inline(always)]
fn mark_reported(tid: u32, what: u32, gfp_mask: u32, order: i32) {
    let mark = ReportedMark {
        at_ns: unsafe { bpf_ktime_get_boot_ns() },
        what,
        gfp_mask,
        order,
        _pad0: 0,
    };
    let _ = REPORTED.insert(tid, mark, 0);
}

/// `get_order(nr_pages * PAGE_SIZE)`: the order the OOM path was given.
#[inline(always)]
fn order_of(nr_pages: u32) -> i32 {
    let mut order = 0;
    // Bounded for the verifier: charges are at most a PUD's worth of pages.
    while order < 18 && (1u32 << order) < nr_pages {
        order += 1;
    }
    order
}

/// Whether the other hook already reported this failure (and forgets it).
#[inline(always)]
fn take_reported(tid: u32, what: u32, gfp_mask: u32, order: i32) -> bool {
    let Some(&mark) = (unsafe { REPORTED.get(tid) }) else {
        return false;
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let same = mark.what == what
        && (mark.gfp_mask == gfp_mask || mark.gfp_mask == UNKNOWN_GFP || gfp_mask == UNKNOWN_GFP)
        && (mark.order == UNKNOWN_ORDER || order == UNKNOWN_ORDER || mark.order == order)
        && now.saturating_sub(mark.at_ns) < SAME_FAILURE_NS;
    if same {
        let _ = REPORTED.remove(tid);
    }
    same
}
/// Last `MEMCG_AT_LIMIT` sent per memcg (boot ns).
#[map]
static AT_LIMIT_NOTIFIED: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1024, 0);

/// Notifications at most this often per memcg: the first arms the hook,
/// later ones keep it armed (the collector disarms after 10 s without).
const NOTIFY_INTERVAL_NS: u64 = 1_000_000_000;

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

/// Counts one failure of `memcg_id` for `reason`; the running total when it
/// should be reported now.
#[inline(always)]
fn count_failure(memcg_id: u64, reason: u32, now: u64) -> Option<u64> {
    let key = ChargeFailureKey {
        memcg_id,
        reason,
        _pad0: 0,
    };
    let state = match CHARGE_FAILURES.get_ptr_mut(key) {
        Some(state) => state,
        None => {
            let _ = CHARGE_FAILURES.insert(key, ChargeFailureState::default(), 0);
            CHARGE_FAILURES.get_ptr_mut(key)?
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
fn report_failure(memcg: u64, gfp_mask: u32, order: i32, reason: u32, nr_pages: u32) {
    if !memcg_in_scope(memcg) {
        return;
    }
    let id = memcg_id(memcg);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(failures_total) = count_failure(id, reason, now) else {
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
        (*event).nr_pages = nr_pages;
    }
    entry.submit(0);
}

/// A reclaim pass of the current task's memcg fell short of its target, or
/// its target is unknown (from the reclaim end tracepoint): ask the collector
/// to arm the charge hook, or to keep it armed.
#[inline(always)]
pub fn memcg_at_limit(memcg_id: u64, nr_reclaimed: u64, nr_to_reclaim: u64, short_passes: u64) {
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(&last) = unsafe { AT_LIMIT_NOTIFIED.get(memcg_id) }
        && now.saturating_sub(last) < NOTIFY_INTERVAL_NS
    {
        return;
    }
    let _ = AT_LIMIT_NOTIFIED.insert(memcg_id, now, 0);
    let Some(mut entry) = reserve::<MemcgAtLimitEvent>(kind::MEMCG_AT_LIMIT) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::MEMCG_AT_LIMIT);
    unsafe {
        (*event).memcg_id = memcg_id;
        (*event).nr_reclaimed = nr_reclaimed;
        (*event).nr_to_reclaim = nr_to_reclaim;
        (*event).short_passes = short_passes;
    }
    entry.submit(0);
}

/// fexit `try_charge_memcg(memcg, gfp_mask, nr_pages)` returned `ret`
/// (attached only while armed: this runs once per charge then).
#[inline(always)]
pub fn try_charge_exit(memcg: u64, gfp_mask: u32, nr_pages: u32, ret: i32) {
    if ret == 0 {
        return;
    }
    let tid = tid();
    // The OOM path found nothing to kill and reported it already.
    if take_reported(tid, NO_VICTIM_REPORTED, gfp_mask, order_of(nr_pages)) {
        return;
    }
    let reason = if in_oom_disabled_wait() {
        // The wait sees the task's own gfp copy: match on the mask only.
        mark_reported(tid, OOM_DISABLED_REPORTED, gfp_mask, UNKNOWN_ORDER);
        charge_failure_reason::OOM_DISABLED
    } else {
        charge_failure_reason::ENOMEM
    };
    // `memcg` is the charged memcg (the one at its limit may be an ancestor);
    // the collector derives the order from nr_pages.
    report_failure(memcg, gfp_mask, UNKNOWN_ORDER, reason, nr_pages);
}

/// `current->memcg_in_oom` set: the charge failed in an OOM-disabled memcg.
#[inline(always)]
fn in_oom_disabled_wait() -> bool {
    let offset = global!(OFFSETS.task_memcg_in_oom);
    if offset == UNAVAILABLE {
        return false;
    }
    let current = unsafe { bpf_get_current_task() } as u64;
    read_or_zero::<u64>(current, offset) != 0
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
    if killed {
        return;
    }
    // Reported here; the armed charge hook must not count it again.
    mark_reported(tid(), NO_VICTIM_REPORTED, gfp_mask, order);
    report_failure(memcg, gfp_mask, order, charge_failure_reason::NO_VICTIM, 0);
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
    // The armed charge hook may have reported this failure already.
    let waiter_tid = tid();
    if !take_reported(waiter_tid, OOM_DISABLED_REPORTED, gfp_mask, UNKNOWN_ORDER) {
        report_failure(
            memcg,
            gfp_mask,
            order,
            charge_failure_reason::OOM_DISABLED,
            0,
        );
    }
    let id = memcg_id(memcg);
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let waiter = OomWaiter {
        begin_ns: now,
        memcg_id: id,
    };
    let _ = OOM_WAITERS.insert(waiter_tid, waiter, 0);
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
