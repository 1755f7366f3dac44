//! The early warning on cgroup v2 (issue #18): a leak beside a steady task
//! is warned of before its kill, with the leaker first in `top_growers`, and
//! the kill itself is the kernel's (its report and `Killed process` line).
use anyhow::{Context, Result, ensure};

use super::{
    Ctx,
    check::{first, pid},
    kernels::Series,
    memcg_kill,
};

/// The early-warning scenarios.
pub fn is_early_warning(scenario: &str) -> bool {
    scenario.ends_with("-warnleak")
}

/// The default matrix runs them where the issue asks for PSI (6.12 and the
/// newest kernel), on the backend a node runs (`auto`): the rule reads
/// cgroup files and PSI, which no backend changes, and each run takes
/// about 35 s. `--scenario v2-warnleak` runs them on any kernel and backend.
pub fn in_default_matrix(series: Series, backend: &str) -> bool {
    matches!(series, Series::V6_12 | Series::Newest) && backend == "auto"
}

pub fn check_warnleak(ctx: &Ctx) -> Result<()> {
    memcg_kill(ctx, "leaker", "/warnleak", "/warnleak")?;
    let leaker = pid(ctx.scenario, "leaker")?;
    let warnings = ctx.tracer.records("oom_warning");
    let warning = warnings
        .iter()
        .find(|w| w["memcg"] == "/warnleak")
        .with_context(|| format!("no oom_warning for /warnleak; saw {warnings:?}"))?;
    let top = &warning["top_growers"][0]["pid"];
    ensure!(
        top.as_u64() == Some(u64::from(leaker)),
        "top_growers[0] is pid {top}, the leaker is {leaker}"
    );
    let (decision, _) = first(ctx.tracer, ctx.log)?;
    let lead_ms = decision
        .lead_ms
        .context("the decision carries no lead_ms")?;
    ensure!(
        decision.warning.is_some(),
        "the decision carries no warning"
    );
    ctx.notes
        .borrow_mut()
        .push(format!("warned {lead_ms} ms before the kill"));
    Ok(())
}
