//! Raw tracepoint `mark_victim(struct task_struct *task, uid_t uid)` (6.x):
//! the victim read through BTF offsets — identity, rss counters in pages,
//! page tables, oom_score_adj — plus its memcg chain and the memcg of the task
//! that ran the killer (the allocating task). Filtered by `--cgroup` here.
use aya_ebpf::{
    helpers::generated::bpf_get_current_task, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use oomtrace_ebpf::{UNAVAILABLE, VictimTaskEvent, kind, victim_valid as valid};

use super::{
    common::{CONFIG, OFFSETS, VICTIMS, global, read_kernel, reserve, write_header},
    memcg::{css_cgroup_id, fill_chain, in_scope, task_memcg_css},
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

    let pid: Option<u32> = read_kernel(task, global!(OFFSETS.task_pid));
    let tgid: Option<u32> = read_kernel(task, global!(OFFSETS.task_tgid));
    let comm: Option<[u8; 16]> = read_kernel(task, global!(OFFSETS.task_comm));
    if pid.is_some() && tgid.is_some() && comm.is_some() {
        flags |= valid::IDENTITY;
    }
    let signal: u64 = read_kernel(task, global!(OFFSETS.task_signal)).unwrap_or(0);
    let adj: Option<i16> = read_kernel(signal, global!(OFFSETS.signal_oom_score_adj));
    if adj.is_some() {
        flags |= valid::OOM_SCORE_ADJ;
    }
    let mm: u64 = read_kernel(task, global!(OFFSETS.task_mm)).unwrap_or(0);
    let file = rss_counter(mm, global!(OFFSETS.mm_filepages));
    let anon = rss_counter(mm, global!(OFFSETS.mm_anonpages));
    let shmem = rss_counter(mm, global!(OFFSETS.mm_shmempages));
    let swap = rss_counter(mm, global!(OFFSETS.mm_swapents));
    if file.is_some() && anon.is_some() && shmem.is_some() {
        flags |= valid::RSS;
    }
    if swap.is_some() {
        flags |= valid::SWAPENTS;
    }
    let pgtables: Option<i64> = read_kernel(mm, global!(OFFSETS.mm_pgtables_bytes));
    if pgtables.is_some() {
        flags |= valid::PGTABLES;
    }
    let total_vm: Option<u64> = read_kernel(mm, global!(OFFSETS.mm_total_vm));
    if total_vm.is_some() {
        flags |= valid::TOTAL_VM;
    }
    let current = unsafe { bpf_get_current_task() };
    let trigger_memcg = task_memcg_css(current).and_then(css_cgroup_id);
    if trigger_memcg.is_some() {
        flags |= valid::TRIGGER_MEMCG;
    }
    unsafe {
        (*event).victim_pid = pid.unwrap_or(0);
        (*event).victim_tgid = tgid.unwrap_or(0);
        (*event).victim_comm = comm.unwrap_or([0; 16]);
        (*event).oom_score_adj = adj.unwrap_or(0) as i32;
        (*event).rss_file_pages = file.unwrap_or(0);
        (*event).rss_anon_pages = anon.unwrap_or(0);
        (*event).rss_shmem_pages = shmem.unwrap_or(0);
        (*event).swapents = swap.unwrap_or(0);
        (*event).pgtables_bytes = pgtables.unwrap_or(0);
        (*event).total_vm_pages = total_vm.unwrap_or(0);
        (*event).trigger_memcg_id = trigger_memcg.unwrap_or(0);
        (*event)._pad0 = 0;
        let depth = fill_chain(css, &raw mut (*event).memcg);
        if depth > 0 {
            flags |= valid::MEMCG;
        }
        (*event).memcg_depth = depth;
        (*event).valid = flags;
    }
    entry.submit(0);
    if let Some(pid) = pid {
        // Lets `victim_exit` report when (and whether) the victim went away.
        let _ = VICTIMS.insert(pid, marked_ns, 0);
    }
    0
}

/// `mm->rss_stat[index]` as the OOM killer reads it (`get_mm_counter`: the
/// counter's central value, without summing per-CPU deltas).
#[inline(always)]
pub fn rss_counter(mm: u64, index: u32) -> Option<i64> {
    let base = global!(OFFSETS.mm_rss_stat);
    let stride = global!(OFFSETS.mm_rss_stride);
    let value = global!(OFFSETS.mm_rss_value);
    if index == UNAVAILABLE || base == UNAVAILABLE || stride == UNAVAILABLE || value == UNAVAILABLE
    {
        return None;
    }
    read_kernel(mm, base + index * stride + value)
}
