//! `oom:wake_reaper`, `oom:start_task_reaping`, `oom:finish_task_reaping`,
//! `oom:skip_task_reaping`: what the OOM reaper did with a victim's memory.
//! Rare events (one of each per kill at most), so not filtered in the kernel.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use oomtrace_ebpf::{ReaperEvent, kind, reaper_step};

use super::common::{LAYOUT, global, read_record, reserve, write_header};

#[inline(always)]
fn emit(ctx: &TracePointContext, pid_offset: u32, step: u32) -> u32 {
    let Some(mut entry) = reserve::<ReaperEvent>(kind::REAPER) else {
        return 0;
    };
    let event = entry.as_mut_ptr();
    write_header(unsafe { &raw mut (*event).header }, kind::REAPER);
    unsafe {
        (*event).pid = read_record::<i32, _>(ctx, pid_offset).unwrap_or(-1);
        (*event).step = step;
    }
    entry.submit(0);
    0
}

#[tracepoint]
pub fn oom_wake_reaper(ctx: TracePointContext) -> u32 {
    emit(&ctx, global!(LAYOUT.wake_reaper_pid), reaper_step::WAKE)
}

#[tracepoint]
pub fn oom_start_task_reaping(ctx: TracePointContext) -> u32 {
    emit(
        &ctx,
        global!(LAYOUT.start_task_reaping_pid),
        reaper_step::START,
    )
}

#[tracepoint]
pub fn oom_finish_task_reaping(ctx: TracePointContext) -> u32 {
    emit(
        &ctx,
        global!(LAYOUT.finish_task_reaping_pid),
        reaper_step::FINISH,
    )
}

#[tracepoint]
pub fn oom_skip_task_reaping(ctx: TracePointContext) -> u32 {
    emit(
        &ctx,
        global!(LAYOUT.skip_task_reaping_pid),
        reaper_step::SKIP,
    )
}
