//! One memcg with 2,000 tasks (issue #6): every candidate the killer visited
//! is in the decision, row for row with the kernel's task table, or the
//! ones missing are exactly the ones counted as dropped — never a silent cap.
//! Whatever was cut, the victim and every candidate kept match the kernel.
use anyhow::{Context, Result, ensure};

use super::{Ctx, check::first, memcg_kill};

/// Sleepers forked by the scenario, plus their parent (same name).
const SLEEPERS: usize = 2000 + 1;

pub fn check_tasks2000(ctx: &Ctx) -> Result<()> {
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    let table = report.table.as_ref().context("report has no task table")?;
    let printed = table.rows.iter().filter(|r| r.name == "sleeper").count();
    ensure!(
        printed == SLEEPERS,
        "the kernel printed {printed} sleeper rows, the guest forked {SLEEPERS}"
    );
    // The kill, the victim against the kill line and each kept candidate
    // against its row; missing rows only as many as were counted dropped.
    memcg_kill(ctx, "grower2k", "/tasks2000", "/tasks2000")?;
    let dropped = decision.candidates_dropped.unwrap_or(0) as usize;
    if dropped == 0 {
        let sleepers = decision
            .candidates
            .iter()
            .filter(|c| c.comm == "sleeper")
            .count();
        ensure!(
            sleepers == SLEEPERS,
            "{sleepers} sleeper candidates for {SLEEPERS} sleepers"
        );
    } else {
        ensure!(
            !ctx.tracer.records("lost").is_empty(),
            "{dropped} candidates dropped without a lost record"
        );
        ctx.notes
            .borrow_mut()
            .push(format!("{dropped} candidates dropped (ring buffer full)"));
    }
    Ok(())
}
