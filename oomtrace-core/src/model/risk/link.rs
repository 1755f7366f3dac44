//! The decision that follows a warning says so: when, how far ahead, and
//! who was growing.
use crate::{
    base::units::human_bytes,
    model::decision::{Decision, PriorWarning},
};

use super::WarningLink;

/// Gives `decision` its warning and lead time (`now_boot_ms`: the kill's
/// time where the decision does not carry the kernel's), and the warning's
/// OOM episode: a sample after the kill may have cleared the warning, and
/// closed its episode, before the decision came.
pub fn link_decision(decision: &mut Decision, link: WarningLink, now_boot_ms: u64) {
    let kill_ms = kill_boot_ms(decision, now_boot_ms);
    let lead_ms = kill_ms.saturating_sub(link.warned_boot_ms);
    let leader = link.leader.as_ref();
    let who = leader.map_or_else(
        || "its unreclaimable memory".to_owned(),
        |g| format!("{} (pid {})", g.comm, g.pid),
    );
    let rate = leader.map_or(link.growth_bytes_per_s, |g| {
        g.growth_bytes_per_s.max(0) as u64
    });
    decision.explanation.push(format!(
        "warned {:.0} s before: {who} was growing {}/s.",
        lead_ms as f64 / 1000.0,
        human_bytes(rate),
    ));
    decision.lead_ms = Some(lead_ms);
    if link.oom_id.is_some() {
        decision.oom_id = link.oom_id;
    }
    decision.warning = Some(PriorWarning {
        time: link.time,
        growth_bytes_per_s: link.growth_bytes_per_s,
        grower_pid: leader.map(|g| g.pid),
        grower_comm: leader.map(|g| g.comm.clone()),
        grower_growth_bytes_per_s: leader.map(|g| g.growth_bytes_per_s),
    });
}

/// When the decision's kill happened (boot ms): the kernel's timestamp of
/// it, else `now_boot_ms`.
pub fn kill_boot_ms(decision: &Decision, now_boot_ms: u64) -> u64 {
    decision
        .kernel_seconds
        .map_or(now_boot_ms, |s| (s * 1000.0) as u64)
}
