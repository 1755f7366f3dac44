//! When the OOM happened, what constrained it and which allocation failed.
use std::time::SystemTime;

use oomtrace_ebpf::victim_valid;

use crate::{
    events::comm_str,
    model::decision::{env::Environment, pending::Pending, record::Trigger},
};

/// When: the BPF event's clock, else the kernel log's.
pub(super) fn time(p: &Pending, env: &dyn Environment) -> Option<SystemTime> {
    p.kill_boot_ns()
        .and_then(|ns| env.wall_time_of_boot_ns(ns))
        .or_else(|| {
            p.log_seconds()
                .and_then(|s| env.wall_time_of_log_seconds(s))
        })
}

/// The killer's own constraint when hooked, else the report's line, else
/// what the report shows.
pub(super) fn constraint(p: &Pending) -> Option<&'static str> {
    // `enum oom_constraint`: NONE, CPUSET, MEMORY_POLICY, MEMCG since 2.6.35.
    let hooked = p.end().and_then(|e| {
        ["global", "cpuset", "mempolicy", "memcg"]
            .get(e.constraint as usize)
            .copied()
    });
    hooked
        .or_else(|| {
            p.report
                .as_ref()
                .and_then(|r| r.constraint.as_ref())
                .and_then(|c| constraint_name(&c.constraint))
        })
        .or_else(|| {
            if memcg_signs(p) {
                Some("memcg")
            } else {
                p.kill_line().map(|_| "global")
            }
        })
}

/// Older kernels print no constraint line: a memcg OOM still shows its
/// counters, a "Task in" line or the "Memory cgroup out of memory" prefix.
fn memcg_signs(p: &Pending) -> bool {
    p.report.as_ref().is_some_and(|r| {
        r.counter("memory").is_some()
            || r.task_in_line.is_some()
            || r.selected
                .as_ref()
                .is_some_and(|s| s.source.text.contains("Memory cgroup out of memory"))
    }) || p.kill_line().is_some_and(|k| k.memcg_oom)
}

fn constraint_name(kernel: &str) -> Option<&'static str> {
    Some(match kernel {
        "CONSTRAINT_MEMCG" => "memcg",
        "CONSTRAINT_NONE" => "global",
        "CONSTRAINT_CPUSET" => "cpuset",
        "CONSTRAINT_MEMORY_POLICY" => "mempolicy",
        _ => return None,
    })
}

/// The task that ran the killer is the one whose allocation failed.
pub(super) fn trigger(p: &Pending, env: &mut dyn Environment) -> Trigger {
    let (task, mark) = (p.task.as_deref(), p.mark.as_ref());
    let header = p.report.as_ref().and_then(|r| r.header.as_ref());
    let end = p.end();
    let memcg = task
        .filter(|t| t.valid & victim_valid::TRIGGER_MEMCG != 0)
        .and_then(|t| env.memcg_path(t.trigger_memcg_id));
    Trigger {
        pid: task
            .map(|t| t.header.pid)
            .or(mark.map(|m| m.header.pid))
            .or(p
                .report
                .as_ref()
                .and_then(|r| r.trigger.as_ref())
                .map(|t| t.pid)),
        comm: task
            .map(|t| comm_str(&t.header.comm))
            .or(mark.map(|m| comm_str(&m.header.comm)))
            .or(header.map(|h| h.comm.clone())),
        memcg,
        gfp_mask: header
            .map(|h| h.gfp_mask)
            .or(end.map(|e| u64::from(e.gfp_mask)))
            .map(|mask| format!("{mask:#x}")),
        gfp_flags: header.and_then(|h| h.gfp_flags.clone()),
        order: header.map(|h| h.order).or(end.map(|e| e.order)),
    }
}
