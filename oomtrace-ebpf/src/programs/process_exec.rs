//! `sched:sched_process_exec`: tells the collector that a task in scope
//! has a new command line, which it reads from `/proc` while the task
//! lives (after an OOM kill it is gone). Off the memory-charge path; one
//! small record per exec, a failed reserve counted as a drop.
use aya_ebpf::{
    helpers::generated::bpf_get_current_task, macros::tracepoint, programs::TracePointContext,
};
use oomtrace_ebpf::{ProcessExecEvent, kind};

use super::{
    common::{CONFIG, global, reserve, write_header},
    memcg::{in_scope, task_memcg_css},
};

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let task = unsafe { bpf_get_current_task() };
    // Without `--cgroup` every exec is in scope, even where the memcg
    // offsets are missing.
    let scoped = match task_memcg_css(task) {
        Some(css) => in_scope(css),
        None => global!(CONFIG.filter_enabled) == 0,
    };
    if !scoped {
        return 0;
    }
    let Some(mut entry) = reserve::<ProcessExecEvent>(kind::PROCESS_EXEC) else {
        return 0;
    };
    write_header(
        unsafe { &raw mut (*entry.as_mut_ptr()).header },
        kind::PROCESS_EXEC,
    );
    entry.submit(0);
    0
}
