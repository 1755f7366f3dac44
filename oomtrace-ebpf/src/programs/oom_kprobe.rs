//! kprobe/kretprobe wrappers for the OOM path (kernels without fentry).
//! A kretprobe cannot see arguments: the task and `oc` come from the entry
//! state kept per task in `oom_path`.
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use super::{charge_failure, oom_path};

#[kprobe]
pub fn kprobe_out_of_memory(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<u64>(0) {
        oom_path::oom_enter(oc);
    }
    0
}

#[kretprobe]
pub fn kretprobe_out_of_memory(ctx: RetProbeContext) -> u32 {
    oom_path::oom_exit(0, ctx.ret::<u64>());
    0
}

#[kprobe]
pub fn kprobe_oom_evaluate_task(ctx: ProbeContext) -> u32 {
    if let Some(task) = ctx.arg::<u64>(0) {
        oom_path::evaluate_enter(task);
    }
    0
}

#[kretprobe]
pub fn kretprobe_oom_evaluate_task(ctx: RetProbeContext) -> u32 {
    oom_path::evaluate_exit(0, ctx.ret::<u64>() as i32);
    0
}

#[kretprobe]
pub fn kretprobe_oom_badness(ctx: RetProbeContext) -> u32 {
    oom_path::badness_exit(0, ctx.ret::<u64>() as i64);
    0
}

#[kprobe]
pub fn kprobe_oom_kill_process(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<u64>(0) {
        oom_path::kill_enter(oc);
    }
    0
}

#[kprobe]
pub fn kprobe_pagefault_out_of_memory(_ctx: ProbeContext) -> u32 {
    oom_path::pagefault_oom();
    0
}

// Charge failures on the memcg OOM path (`charge_failure`).

#[kprobe]
pub fn kprobe_mem_cgroup_out_of_memory(ctx: ProbeContext) -> u32 {
    if let (Some(memcg), Some(gfp), Some(order)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2))
    {
        charge_failure::memcg_oom_enter(memcg, gfp as u32, order as i32);
    }
    0
}

#[kretprobe]
pub fn kretprobe_mem_cgroup_out_of_memory(ctx: RetProbeContext) -> u32 {
    charge_failure::memcg_oom_return(ctx.ret::<u64>() & 0xff != 0);
    0
}

#[kprobe]
pub fn kprobe_mem_cgroup_oom_synchronize(_ctx: ProbeContext) -> u32 {
    charge_failure::oom_synchronize_enter();
    0
}

#[kretprobe]
pub fn kretprobe_mem_cgroup_oom_synchronize(_ctx: RetProbeContext) -> u32 {
    charge_failure::oom_synchronize_exit();
    0
}
