//! The page-fault OOM path (`pagefault_out_of_memory`) against the guest
//! kernel's own log: the v2 `pfleak` scenario (a fault leaked by a memcg OOM
//! that found nothing to kill, retried by the kernel) and the v1 stall (a
//! fault that waits for the OOM-disabled memcg).
use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::{
    Ctx, OOM_PATH_BACKENDS,
    check::{limit, pid},
};

const HOOK: &str = "pagefault_out_of_memory";
const LEAK_LINE: &str = "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF";
const NO_KILLABLE: &str = "Out of memory and no killable processes";

/// The `pagefault_oom` records of one task.
fn faults_of<'a>(ctx: &'a Ctx, task: u64) -> Vec<&'a Value> {
    ctx.tracer
        .records("pagefault_oom")
        .into_iter()
        .filter(|r| r["task"]["pid"].as_u64() == Some(task))
        .collect()
}

/// Whether the hook is there to check the faults with (see `Ctx::hook`);
/// without it, no record may claim a fault.
fn hooked(ctx: &Ctx) -> Result<bool> {
    if ctx.hook(&[HOOK], OOM_PATH_BACKENDS, "the pagefault_oom records")? {
        return Ok(true);
    }
    ensure!(
        ctx.tracer.records("pagefault_oom").is_empty(),
        "pagefault_oom records without the hook"
    );
    Ok(false)
}

/// `<name>: N callbacks suppressed` lines of the kernel's rate limit.
fn suppressed(text: &str, function: &str) -> u64 {
    let prefix = format!("{function}: ");
    text.lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .filter_map(|rest| rest.strip_suffix(" callbacks suppressed"))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// v2 pfleak: every no-killable memcg OOM of pfleak's faults leaked
/// VM_FAULT_OOM to the #PF handler once; each is one record, naming
/// pfleak and /pfleak with no memcg OOM pending, and joins its decision.
pub fn check_pfleak(ctx: &Ctx) -> Result<()> {
    let text = &ctx.log.text;
    let printed = text.matches(LEAK_LINE).count() as u64;
    let reports = text.matches(NO_KILLABLE).count() as u64;
    ensure!(
        printed >= 3,
        "the kernel logged {printed} leaks, the guest waited for 3"
    );
    ensure!(
        !text.contains("Killed process"),
        "a kill in a memcg whose only task is unkillable"
    );
    ensure!(
        limit(ctx.scenario, "/pfleak")?
            < ctx
                .scenario
                .named("raised_limit", "/pfleak")
                .and_then(|v| v.trim().parse().ok())
                .context("no raised limit")?
    );
    if !hooked(ctx)? {
        return Ok(());
    }
    let task = u64::from(pid(ctx.scenario, "pfleak")?);
    let faults = faults_of(ctx, task);
    // One leak per failed charge, and each failed charge of a fault is one
    // no-killable report (the kernel prints those without a rate limit).
    ensure!(
        faults.len() as u64 == reports,
        "{} pagefault_oom records for pfleak, the kernel printed {reports} no-killable reports",
        faults.len()
    );
    // The kernel's own count of leaks is rate-limited (10 per 5 s): what it
    // printed or said it suppressed is at most what happened. A "callbacks
    // suppressed" line counts the window before it: before this scenario's
    // first printed leak, that window may hold an earlier scenario's leaks.
    let after_first = text.split_once(LEAK_LINE).map_or("", |(_, rest)| rest);
    let counted = printed + suppressed(after_first, HOOK);
    ensure!(
        counted <= faults.len() as u64,
        "the kernel counted {counted} leaks, oomtrace {}",
        faults.len()
    );
    if counted < faults.len() as u64 {
        ctx.notes.borrow_mut().push(format!(
            "{} of {} leaks fell in the kernel's rate limit, not yet reported by it",
            faults.len() as u64 - counted,
            faults.len()
        ));
    }
    for fault in &faults {
        ensure!(
            fault["memcg"] == "/pfleak"
                && fault["fatal_signal_pending"] != true
                && fault["memcg_oom_in_progress"] != true
                && fault["in_oom_memcg"].is_null()
                && fault["kernel_action"] == "retries_fault",
            "pagefault_oom {fault}"
        );
    }
    pfleak_decisions_joined(ctx, task, &faults)
}

/// Every no-victim decision of pfleak carries the fault its OOM leaked:
/// pfleak's own retried fault, the decisions in order joining the records
/// in order, one each, and none left over (the limit was raised before the
/// tracer stopped, so the last fault completed). Each decision also has the
/// killer's own evaluation: a report paired with another OOM's invocation
/// would show as a decision from the report alone.
fn pfleak_decisions_joined(ctx: &Ctx, task: u64, faults: &[&Value]) -> Result<()> {
    let decisions: Vec<_> = ctx
        .tracer
        .decisions
        .iter()
        .filter(|d| d.trigger.pid.map(u64::from) == Some(task))
        .collect();
    ensure!(
        decisions.len() == faults.len(),
        "{} decisions of pfleak's OOMs, {} faults",
        decisions.len(),
        faults.len()
    );
    for (decision, fault) in decisions.iter().zip(faults) {
        ensure!(
            decision.victim.is_none(),
            "decision {} has a victim",
            decision.seq
        );
        let join = decision
            .pagefault_oom
            .as_ref()
            .with_context(|| format!("decision {} carries no fault", decision.seq))?;
        ensure!(
            u64::from(join.pid) == task
                && join.kernel_action == "retries_fault"
                && fault["time"].as_str() == Some(join.time.as_str()),
            "decision {} joined {join:?}, its fault is {fault}",
            decision.seq
        );
        ensure!(
            decision.candidates_source == "bpf",
            "decision {} has no evaluation of the killer's own (candidates from {})",
            decision.seq,
            decision.candidates_source
        );
    }
    Ok(())
}

/// v1 stall: the hog's fault reached the #PF handler with the OOM of
/// /stall pending; the kernel waited instead of logging a leak, and the
/// kill after the release carries the fault.
pub fn check_stall_faults(ctx: &Ctx) -> Result<()> {
    ensure!(
        !ctx.log.text.contains(LEAK_LINE),
        "the kernel logged a VM_FAULT_OOM leak while the memcg OOM was pending"
    );
    if !hooked(ctx)? {
        return Ok(());
    }
    let task = u64::from(pid(ctx.scenario, "stuckhog")?);
    // Waits while the killer is disabled; after the release and the kill,
    // the victim's own last fault can fail again and return at once.
    let (dying, faults): (Vec<&Value>, Vec<&Value>) = faults_of(ctx, task)
        .into_iter()
        .partition(|f| f["kernel_action"] == "task_dying");
    ensure!(!faults.is_empty(), "no pagefault_oom record for stuckhog");
    for fault in &faults {
        ensure!(
            fault["memcg"] == "/stall"
                && fault["memcg_oom_in_progress"] == true
                && fault["in_oom_memcg"] == "/stall"
                && fault["kernel_action"] == "waits_for_memcg_oom",
            "pagefault_oom {fault}"
        );
    }
    for fault in &dying {
        ensure!(
            fault["fatal_signal_pending"] == true && fault["memcg_oom_in_progress"] != true,
            "pagefault_oom {fault}"
        );
    }
    // Each fault is one wait in mem_cgroup_oom_synchronize (its own hook).
    let waits = ctx
        .tracer
        .records("oom_stall")
        .iter()
        .filter_map(|s| s["tasks"].as_array())
        .flatten()
        .filter(|t| t["pid"].as_u64() == Some(task))
        .filter_map(|t| t["waits"].as_u64())
        .max();
    if let Some(waits) = waits {
        ensure!(
            faults.len() as u64 == waits,
            "{} pagefault_oom records, {waits} waits of stuckhog",
            faults.len()
        );
    }
    let decision = ctx
        .tracer
        .decisions
        .first()
        .context("no decision after the release")?;
    let join = decision
        .pagefault_oom
        .as_ref()
        .context("the kill after the stall has no pagefault_oom")?;
    ensure!(
        u64::from(join.pid) == task
            && join.in_oom_memcg.as_deref() == Some("/stall")
            && join.kernel_action == "waits_for_memcg_oom",
        "the kill joined {join:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressed_counts_are_summed_per_function() {
        let log = "[1.0] pagefault_out_of_memory: 3 callbacks suppressed\n\
                   [1.1] Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF\n\
                   [6.2] other_function: 7 callbacks suppressed\n\
                   [6.3] pagefault_out_of_memory: 12 callbacks suppressed\n";
        assert_eq!(suppressed(log, HOOK), 15);
        let after_first = log.split_once(LEAK_LINE).map_or("", |(_, rest)| rest);
        assert_eq!(suppressed(after_first, HOOK), 12);
    }
}
