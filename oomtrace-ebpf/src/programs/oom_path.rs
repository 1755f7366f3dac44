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
    candidate_flag as flag, kind,
};

use super::{
    common::{OFFSETS, global, read_kernel, reserve, write_header},
    mark_victim_raw::rss_counter,
    memcg::{css_cgroup_id, task_memcg_css},
};

/// `PF_KTHREAD` (include/linux/sched.h): stable since 2.6.
const PF_KTHREAD: u32 = 0x0020_0000;

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
    let task_flags: u32 = read_kernel(task, global!(OFFSETS.task_flags)).unwrap_or(0);
    if task_flags & PF_KTHREAD != 0 {
        flags |= flag::KTHREAD;
    }
    let signal: u64 = read_kernel(task, global!(OFFSETS.task_signal)).unwrap_or(0);
    let oom_mm: u64 = read_kernel(signal, global!(OFFSETS.signal_oom_mm)).unwrap_or(0);
    if oom_mm != 0 {
        flags |= flag::OOM_VICTIM;
    }
    let mm: u64 = read_kernel(task, global!(OFFSETS.task_mm)).unwrap_or(0);
    if mm == 0 {
        flags |= flag::NO_MM;
    }
    let file = rss_counter(mm, global!(OFFSETS.mm_filepages));
    let anon = rss_counter(mm, global!(OFFSETS.mm_anonpages));
    let shmem = rss_counter(mm, global!(OFFSETS.mm_shmempages));
    if file.is_some() && anon.is_some() && shmem.is_some() {
        flags |= flag::MEMORY;
    }
    let cred: u64 = read_kernel(task, global!(OFFSETS.task_real_cred)).unwrap_or(0);
    unsafe {
        (*event).oom_seq = seq;
        (*event).pid = read_kernel(task, global!(OFFSETS.task_pid)).unwrap_or(0);
        (*event).tgid = read_kernel(task, global!(OFFSETS.task_tgid)).unwrap_or(0);
        (*event).comm = read_kernel(task, global!(OFFSETS.task_comm)).unwrap_or([0; 16]);
        (*event).uid = read_kernel(cred, global!(OFFSETS.cred_uid)).unwrap_or(u32::MAX);
        (*event).oom_score_adj =
            read_kernel::<i16>(signal, global!(OFFSETS.signal_oom_score_adj)).unwrap_or(0) as i32;
        (*event).points = if scored != 0 { points } else { 0 };
        (*event).rss_file_pages = file.unwrap_or(0);
        (*event).rss_anon_pages = anon.unwrap_or(0);
        (*event).rss_shmem_pages = shmem.unwrap_or(0);
        (*event).swapents = rss_counter(mm, global!(OFFSETS.mm_swapents)).unwrap_or(0);
        (*event).pgtables_bytes = read_kernel(mm, global!(OFFSETS.mm_pgtables_bytes)).unwrap_or(0);
        (*event).memcg_id = task_memcg_css(task).and_then(css_cgroup_id).unwrap_or(0);
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
    let chosen: u64 = read_kernel(oc, global!(OFFSETS.oc_chosen)).unwrap_or(0);
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
        (*event).pid = read_kernel(chosen, global!(OFFSETS.task_pid)).unwrap_or(0);
        (*event).tgid = read_kernel(chosen, global!(OFFSETS.task_tgid)).unwrap_or(0);
        (*event).comm = read_kernel(chosen, global!(OFFSETS.task_comm)).unwrap_or([0; 16]);
        (*event).points = read_kernel(oc, global!(OFFSETS.oc_chosen_points)).unwrap_or(0);
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
    let memcg: u64 = read_kernel(oc, global!(OFFSETS.oc_memcg)).unwrap_or(0);
    let memcg_css = global!(OFFSETS.memcg_css);
    let chosen: u64 = read_kernel(oc, global!(OFFSETS.oc_chosen)).unwrap_or(0);
    unsafe {
        (*event).oom_seq = state.oom_seq;
        (*event).memcg_id = if memcg != 0 && memcg_css != UNAVAILABLE {
            css_cgroup_id(memcg + memcg_css as u64).unwrap_or(0)
        } else {
            0
        };
        (*event).totalpages = read_kernel(oc, global!(OFFSETS.oc_totalpages)).unwrap_or(0);
        (*event).chosen_points = read_kernel(oc, global!(OFFSETS.oc_chosen_points)).unwrap_or(0);
        (*event).gfp_mask = read_kernel(oc, global!(OFFSETS.oc_gfp_mask)).unwrap_or(0);
        (*event).order = read_kernel(oc, global!(OFFSETS.oc_order)).unwrap_or(-1);
        (*event).constraint = read_kernel(oc, global!(OFFSETS.oc_constraint)).unwrap_or(u32::MAX);
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

#[inline(always)]
pub fn pagefault_oom() {
    let Some(mut entry) = reserve::<PagefaultOomEvent>(kind::PAGEFAULT_OOM) else {
        return;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::PAGEFAULT_OOM);
    let current = unsafe { bpf_get_current_task() };
    unsafe { (*event).memcg_id = task_memcg_css(current).and_then(css_cgroup_id).unwrap_or(0) };
    entry.submit(0);
}
