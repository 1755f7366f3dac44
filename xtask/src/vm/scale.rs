//! One memcg with 2,000 tasks (issue #6): every candidate the killer visited
//! is in the decision, row for row with the kernel's task table, or the
//! ones missing are exactly the ones counted as dropped — never a silent cap.
use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};

use super::{Ctx, check::first, memcg_kill};

/// Sleepers forked by the scenario, plus their parent (same name).
const SLEEPERS: usize = 2000 + 1;

pub fn check_tasks2000(ctx: &Ctx) -> Result<()> {
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    let table = report.tasks.as_ref().context("report has no task table")?;
    let printed = table.rows.iter().filter(|r| r.name == "sleeper").count();
    ensure!(
        printed == SLEEPERS,
        "the kernel printed {printed} sleeper rows, the guest forked {SLEEPERS}"
    );
    let dropped = decision.candidates_dropped.unwrap_or(0) as usize;
    if dropped == 0 {
        // Nothing capped: the whole table, row for row, and the kill.
        memcg_kill(ctx, "grower2k", "/tasks2000", "/tasks2000")?;
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
        // Capped: exactly the missing rows are counted, and a lost record says so.
        let ours: BTreeSet<u32> = decision.candidates.iter().map(|c| c.pid).collect();
        let missing = table.rows.iter().filter(|r| !ours.contains(&r.pid)).count();
        ensure!(
            missing == dropped,
            "{missing} rows of the kernel's table missing, {dropped} counted as dropped"
        );
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
