//! Raw tracepoint `mark_victim(struct task_struct *task, uid_t uid)` (6.x):
//! the victim read through BTF offsets — identity, rss counters in pages
//! (central counts and per-CPU sums), page tables, oom_score_adj — plus its
//! memcg chain and the memcg of the task
//! that ran the killer (the allocating task). Filtered by `--cgroup` here.
use aya_ebpf::{
    helpers::generated::bpf_get_current_task, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use oomtrace_ebpf::{UNAVAILABLE, VictimTaskEvent, kind, victim_valid as valid};

use super::{
    common::{CONFIG, OFFSETS, VICTIMS, global, read_or_zero, reserve, write_header},
    memcg::{css_cgroup_id, fill_chain, in_scope, task_memcg_css},
    percpu::{counters_atomic, rss_sums},
    rss::{rss_counter, rss_counters_available},
};

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn raw_mark_victim(ctx: RawTracePointContext) -> i32 {
    if global!(CONFIG.raw_mark_victim_has_task) == 0 {
        return 0;
    }
    let task: u64 = ctx.arg(0);
    let css = task_memcg_css(task).unwrap_or(0);
    if !in_scope(css) {
        return 0;
    }
    let Some(mut entry) = reserve::<VictimTaskEvent>(kind::VICTIM_TASK) else {
        return 0;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::VICTIM_TASK);
    let marked_ns = unsafe { (*event).header.boot_ns };
    let mut flags = 0u32;

    // Reads are branch-free (zero on failure); validity comes from the offsets
    // this kernel has and from the pointers being non-null.
    let pid: u32 = read_or_zero(task, global!(OFFSETS.task_pid));
    let tgid: u32 = read_or_zero(task, global!(OFFSETS.task_tgid));
    let comm: [u8; 16] = read_or_zero(task, global!(OFFSETS.task_comm));
    if pid != 0 {
        flags |= valid::IDENTITY;
    }
    let signal: u64 = read_or_zero(task, global!(OFFSETS.task_signal));
    let adj: i16 = read_or_zero(signal, global!(OFFSETS.signal_oom_score_adj));
    if signal != 0 && global!(OFFSETS.signal_oom_score_adj) != UNAVAILABLE {
        flags |= valid::OOM_SCORE_ADJ;
    }
    let mm: u64 = read_or_zero(task, global!(OFFSETS.task_mm));
    let counters = mm != 0 && rss_counters_available();
    if counters {
        flags |= valid::RSS | valid::SWAPENTS;
        if counters_atomic() {
            flags |= valid::RSS_ATOMIC;
        }
    }
    // Not a hot path: summed on every kill, whichever read the kernel uses.
    let sums = if counters { rss_sums(mm) } else { None };
    if sums.is_some() {
        flags |= valid::RSS_SUM;
    }
    if mm != 0 && global!(OFFSETS.mm_pgtables_bytes) != UNAVAILABLE {
        flags |= valid::PGTABLES;
    }
    if mm != 0 && global!(OFFSETS.mm_total_vm) != UNAVAILABLE {
        flags |= valid::TOTAL_VM;
    }
    let current = unsafe { bpf_get_current_task() };
    let trigger_memcg = task_memcg_css(current).and_then(css_cgroup_id).unwrap_or(0);
    if trigger_memcg != 0 {
        flags |= valid::TRIGGER_MEMCG;
    }
    unsafe {
        (*event).victim_pid = pid;
        (*event).victim_tgid = tgid;
        (*event).victim_comm = comm;
        (*event).oom_score_adj = adj as i32;
        (*event).rss_file_pages = rss_counter(mm, global!(OFFSETS.mm_filepages));
        (*event).rss_anon_pages = rss_counter(mm, global!(OFFSETS.mm_anonpages));
        (*event).rss_shmem_pages = rss_counter(mm, global!(OFFSETS.mm_shmempages));
        (*event).swapents = rss_counter(mm, global!(OFFSETS.mm_swapents));
        (*event).pgtables_bytes = read_or_zero(mm, global!(OFFSETS.mm_pgtables_bytes));
        (*event).total_vm_pages = read_or_zero(mm, global!(OFFSETS.mm_total_vm));
        (*event).trigger_memcg_id = trigger_memcg;
        (*event)._pad0 = 0;
        let depth = fill_chain(css, &raw mut (*event).memcg);
        if depth > 0 {
            flags |= valid::MEMCG;
        }
        (*event).memcg_depth = depth;
        (*event).sums = sums.unwrap_or_default();
        (*event).valid = flags;
    }
    entry.submit(0);
    if pid != 0 {
        // Lets `victim_exit` report when (and whether) the victim went away.
        let _ = VICTIMS.insert(pid, marked_ns, 0);
    }
    0
}
