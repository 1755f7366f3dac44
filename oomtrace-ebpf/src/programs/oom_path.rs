//! The OOM killer's own path, shared by the fentry/fexit and kprobe/kretprobe
//! wrappers: `out_of_memory` brackets one invocation, `oom_evaluate_task`
//! visits each candidate, `oom_badness` scores it, `oom_kill_process` takes
//! the choice. Runs only while the killer runs, never on a charge.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_task},
    macros::map,
    maps::LruHashMap,
};
use oomtrace_ebpf::{
    OomCandidateEvent, OomChoiceEvent, OomEndEvent, OomState, PagefaultOomEvent, UNAVAILABLE,
    candidate_flag as flag, kind, pagefault_flag,
};

use super::{
    common::{OFFSETS, global, read_or_zero, reserve, write_header},
    memcg::{css_cgroup_id, in_scope, task_memcg_css},
    percpu::{counters_atomic, rss_sums, sum_candidates},
    rss::{rss_counter, rss_counters_available},
};

/// `PF_KTHREAD` (include/linux/sched.h): stable since 2.6.
const PF_KTHREAD: u32 = 0x0020_0000;
/// SIGKILL (9) in a `sigset_t`: bit `sig - 1`.
const SIGKILL_BIT: u64 = 1 << 8;

/// One entry per task inside `out_of_memory` (the OOM lock allows one per memcg).
#[map]
static OOM_STATE: LruHashMap<u32, OomState> = LruHashMap::with_max_entries(1024, 0);

fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
pub fn oom_enter(oc: u64) {
    let state = OomState {
        oom_seq: unsafe { bpf_ktime_get_boot_ns() },
        oc,
        ..OomState::default()
    };
    let _ = OOM_STATE.insert(tid(), state, 0);
}

#[inline(always)]
pub fn evaluate_enter(task: u64) {
    if let Some(state) = OOM_STATE.get_ptr_mut(tid()) {
        unsafe {
            (*state).cur_task = task;
            (*state).cur_scored = 0;
        }
    }
}

// Kernel pointers are passed as plain u64 with 0 for "not known here" (a
// kretprobe): an `Option` would split into two registers, and the verifier
// rejects the uninitialised half across a BPF-to-BPF call.

/// `oom_badness` returned `points` for `task` (0 from a kretprobe: the task being evaluated).
#[inline(always)]
pub fn badness_exit(task: u64, points: i64) {
    if let Some(state) = OOM_STATE.get_ptr_mut(tid()) {
        unsafe {
            if task == 0 || task == (*state).cur_task {
                (*state).cur_points = points;
                (*state).cur_scored = 1;
            }
        }
    }
}

/// `oom_evaluate_task` returned `ret` for `task` (0 from a kretprobe: the task from entry).
#[inline(always)]
pub fn evaluate_exit(task: u64, ret: i32) {
    let Some(state) = OOM_STATE.get_ptr_mut(tid()) else {
        return;
    };
    let (task, scored, points, seq, index) = unsafe {
        (
            if task != 0 { task } else { (*state).cur_task },
            (*state).cur_scored,
            (*state).cur_points,
            (*state).oom_seq,
            (*state).candidates + (*state).dropped,
        )
    };
    let Some(mut entry) = reserve::<OomCandidateEvent>(kind::OOM_CANDIDATE) else {
        unsafe { (*state).dropped += 1 };
        return;
    };
    unsafe { (*state).candidates += 1 };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::OOM_CANDIDATE);
    let mut flags = 0;
    if scored != 0 {
        flags |= flag::SCORED;
    }
    if ret == 1 {
        flags |= flag::ABORTED;
    }
    let task_flags: u32 = read_or_zero(task, global!(OFFSETS.task_flags));
    if task_flags & PF_KTHREAD != 0 {
        flags |= flag::KTHREAD;
    }
    let signal: u64 = read_or_zero(task, global!(OFFSETS.task_signal));
    let oom_mm: u64 = read_or_zero(signal, global!(OFFSETS.signal_oom_mm));
    if oom_mm != 0 {
        flags |= flag::OOM_VICTIM;
    }
    let mm: u64 = read_or_zero(task, global!(OFFSETS.task_mm));
    if mm == 0 {
        flags |= flag::NO_MM;
    }
    if mm != 0 && rss_counters_available() {
        flags |= flag::MEMORY;
        if counters_atomic() {
            flags |= flag::MEMORY_ATOMIC;
        }
    }
    let sums = if flags & flag::MEMORY != 0 && sum_candidates() {
        rss_sums(mm)
    } else {
        None
    };
    if sums.is_some() {
        flags |= flag::MEMORY_SUM;
    }
    let cred: u64 = read_or_zero(task, global!(OFFSETS.task_real_cred));
    unsafe {
        (*event).oom_seq = seq;
        (*event).pid = read_or_zero(task, global!(OFFSETS.task_pid));
        (*event).tgid = read_or_zero(task, global!(OFFSETS.task_tgid));
        (*event).comm = read_or_zero(task, global!(OFFSETS.task_comm));
        (*event).uid = if cred != 0 && global!(OFFSETS.cred_uid) != UNAVAILABLE {
            read_or_zero(cred, global!(OFFSETS.cred_uid))
        } else {
            u32::MAX
        };
        (*event).oom_score_adj =
            read_or_zero::<i16>(signal, global!(OFFSETS.signal_oom_score_adj)) as i32;
        (*event).points = if scored != 0 { points } else { 0 };
        (*event).rss_file_pages = rss_counter(mm, global!(OFFSETS.mm_filepages));
        (*event).rss_anon_pages = rss_counter(mm, global!(OFFSETS.mm_anonpages));
        (*event).rss_shmem_pages = rss_counter(mm, global!(OFFSETS.mm_shmempages));
        (*event).swapents = rss_counter(mm, global!(OFFSETS.mm_swapents));
        (*event).pgtables_bytes = read_or_zero(mm, global!(OFFSETS.mm_pgtables_bytes));
        (*event).memcg_id = task_memcg_css(task).and_then(css_cgroup_id).unwrap_or(0);
        (*event).sums = sums.unwrap_or_default();
        (*event).flags = flags;
        (*event).index = index;
    }
    entry.submit(0);
}

#[inline(always)]
pub fn kill_enter(oc: u64) {
    let seq = OOM_STATE
        .get_ptr(tid())
        .map_or(0, |state| unsafe { (*state).oom_seq });
    let chosen: u64 = read_or_zero(oc, global!(OFFSETS.oc_chosen));
    if chosen == 0 || chosen == u64::MAX {
        return;
    }
    let Some(mut entry) = reserve::<OomChoiceEvent>(kind::OOM_CHOICE) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::OOM_CHOICE);
    unsafe {
        (*event).oom_seq = seq;
        (*event).pid = read_or_zero(chosen, global!(OFFSETS.task_pid));
        (*event).tgid = read_or_zero(chosen, global!(OFFSETS.task_tgid));
        (*event).comm = read_or_zero(chosen, global!(OFFSETS.task_comm));
        (*event).points = read_or_zero(oc, global!(OFFSETS.oc_chosen_points));
    }
    entry.submit(0);
}

/// `out_of_memory` returned `ret`; `oc` 0 (a kretprobe) means the one from entry.
#[inline(always)]
pub fn oom_exit(oc: u64, ret: u64) {
    let tid = tid();
    let Some(state) = OOM_STATE.get_ptr(tid) else {
        return;
    };
    let state = unsafe { *state };
    let _ = OOM_STATE.remove(tid);
    let oc = if oc != 0 { oc } else { state.oc };
    let Some(mut entry) = reserve::<OomEndEvent>(kind::OOM_END) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::OOM_END);
    let memcg: u64 = read_or_zero(oc, global!(OFFSETS.oc_memcg));
    let memcg_css = global!(OFFSETS.memcg_css);
    let chosen: u64 = read_or_zero(oc, global!(OFFSETS.oc_chosen));
    unsafe {
        (*event).oom_seq = state.oom_seq;
        (*event).memcg_id = if memcg != 0 && memcg_css != UNAVAILABLE {
            css_cgroup_id(memcg + memcg_css as u64).unwrap_or(0)
        } else {
            0
        };
        (*event).totalpages = read_or_zero(oc, global!(OFFSETS.oc_totalpages));
        (*event).chosen_points = read_or_zero(oc, global!(OFFSETS.oc_chosen_points));
        (*event).gfp_mask = read_or_zero(oc, global!(OFFSETS.oc_gfp_mask));
        (*event).order = read_or_zero(oc, global!(OFFSETS.oc_order));
        (*event).constraint = if global!(OFFSETS.oc_constraint) != UNAVAILABLE {
            read_or_zero(oc, global!(OFFSETS.oc_constraint))
        } else {
            u32::MAX
        };
        (*event).chosen = match chosen {
            0 => 0,
            u64::MAX => 2,
            _ => 1,
        };
        // The chosen task may be gone by now; its pid comes from OOM_CHOICE.
        (*event).chosen_pid = 0;
        (*event).ret = (ret & 0xff) as u32;
        (*event).candidates = state.candidates;
        (*event).dropped = state.dropped;
    }
    entry.submit(0);
}

/// Entry of `pagefault_out_of_memory`: the faulting task, its memcg, and the
/// memcg OOM its charge left pending (cgroup v1 with the OOM killer disabled),
/// read before `mem_cgroup_oom_synchronize` clears it. Tasks outside
/// `--cgroup` are skipped.
#[inline(always)]
pub fn pagefault_oom() {
    let current = unsafe { bpf_get_current_task() } as u64;
    let Some(css) = task_memcg_css(current) else {
        return;
    };
    if !in_scope(css) {
        return;
    }
    let in_oom_offset = global!(OFFSETS.task_memcg_in_oom);
    let memcg_css = global!(OFFSETS.memcg_css);
    let (flags, in_oom_memcg_id) = if in_oom_offset == UNAVAILABLE || memcg_css == UNAVAILABLE {
        (0, 0)
    } else {
        let memcg: u64 = read_or_zero(current, in_oom_offset);
        let id = if memcg != 0 {
            css_cgroup_id(memcg + memcg_css as u64).unwrap_or(0)
        } else {
            0
        };
        (pagefault_flag::IN_OOM_KNOWN, id)
    };
    let signal_offset = global!(OFFSETS.task_pending_signal);
    let flags = if signal_offset == UNAVAILABLE {
        flags
    } else {
        let pending: u64 = read_or_zero(current, signal_offset);
        match pending & SIGKILL_BIT {
            0 => flags | pagefault_flag::SIGNAL_KNOWN,
            _ => flags | pagefault_flag::SIGNAL_KNOWN | pagefault_flag::FATAL_SIGNAL,
        }
    };
    let Some(mut entry) = reserve::<PagefaultOomEvent>(kind::PAGEFAULT_OOM) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::PAGEFAULT_OOM);
    unsafe {
        (*event).memcg_id = css_cgroup_id(css).unwrap_or(0);
        (*event).in_oom_memcg_id = in_oom_memcg_id;
        (*event).flags = flags;
        (*event)._pad0 = 0;
    }
    entry.submit(0);
}
