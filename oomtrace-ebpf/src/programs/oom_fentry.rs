//! fentry/fexit wrappers for the OOM path (kernels with BPF trampolines).
//! Argument positions are checked against BTF by the loader before attaching:
//! `out_of_memory(oc)`, `oom_evaluate_task(task, arg)`, `oom_badness(p, totalpages)`,
//! `oom_kill_process(oc, message)`; an fexit's return value follows the arguments.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

use super::{charge_failure, oom_path};

#[fentry(function = "out_of_memory")]
pub fn fentry_out_of_memory(ctx: FEntryContext) -> i32 {
    oom_path::oom_enter(ctx.arg(0));
    0
}

#[fexit(function = "out_of_memory")]
pub fn fexit_out_of_memory(ctx: FExitContext) -> i32 {
    oom_path::oom_exit(ctx.arg(0), ctx.arg(1));
    0
}

#[fentry(function = "oom_evaluate_task")]
pub fn fentry_oom_evaluate_task(ctx: FEntryContext) -> i32 {
    oom_path::evaluate_enter(ctx.arg(0));
    0
}

#[fexit(function = "oom_evaluate_task")]
pub fn fexit_oom_evaluate_task(ctx: FExitContext) -> i32 {
    oom_path::evaluate_exit(ctx.arg(0), ctx.arg::<u64>(2) as i32);
    0
}

#[fexit(function = "oom_badness")]
pub fn fexit_oom_badness(ctx: FExitContext) -> i32 {
    oom_path::badness_exit(ctx.arg(0), ctx.arg::<u64>(2) as i64);
    0
}

#[fentry(function = "oom_kill_process")]
pub fn fentry_oom_kill_process(ctx: FEntryContext) -> i32 {
    oom_path::kill_enter(ctx.arg(0));
    0
}

#[fentry(function = "pagefault_out_of_memory")]
pub fn fentry_pagefault_out_of_memory(_ctx: FEntryContext) -> i32 {
    oom_path::pagefault_oom();
    0
}

// Charge failures on the memcg OOM path (`charge_failure`):
// `mem_cgroup_out_of_memory(memcg, gfp_mask, order)` -> bool and
// `mem_cgroup_oom_synchronize(handle)` -> bool.

#[fexit(function = "mem_cgroup_out_of_memory")]
pub fn fexit_mem_cgroup_out_of_memory(ctx: FExitContext) -> i32 {
    let killed = ctx.arg::<u64>(3) & 0xff != 0;
    charge_failure::memcg_oom_exit(
        ctx.arg(0),
        ctx.arg::<u64>(1) as u32,
        ctx.arg::<u64>(2) as i32,
        killed,
    );
    0
}

#[fentry(function = "mem_cgroup_oom_synchronize")]
pub fn fentry_mem_cgroup_oom_synchronize(_ctx: FEntryContext) -> i32 {
    charge_failure::oom_synchronize_enter();
    0
}

#[fexit(function = "mem_cgroup_oom_synchronize")]
pub fn fexit_mem_cgroup_oom_synchronize(_ctx: FExitContext) -> i32 {
    charge_failure::oom_synchronize_exit();
    0
}

/// Attached by the collector only while some memcg's reclaim falls short of
/// its target (`try_charge` before 5.15: same arguments, same program).
#[fexit(function = "try_charge_memcg")]
pub fn fexit_try_charge_memcg(ctx: FExitContext) -> i32 {
    charge_failure::try_charge_exit(
        ctx.arg(0),
        ctx.arg::<u64>(1) as u32,
        ctx.arg::<u64>(2) as u32,
        ctx.arg::<u64>(3) as i32,
    );
    0
}
