//! `sched:sched_process_exit`: reports the exit of tasks marked as OOM
//! victims. Runs for every exiting task, so it does one hash lookup and
//! nothing else for tasks that are not victims.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use oomtrace_ebpf::{VictimExitEvent, kind};

use super::common::{VICTIMS, reserve, write_header};

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(&marked_ns) = (unsafe { VICTIMS.get(tid) }) else {
        return 0;
    };
    let _ = VICTIMS.remove(tid);
    let Some(mut entry) = reserve::<VictimExitEvent>(kind::VICTIM_EXIT) else {
        return 0;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::VICTIM_EXIT);
    unsafe { (*event).marked_boot_ns = marked_ns };
    entry.submit(0);
    0
}
