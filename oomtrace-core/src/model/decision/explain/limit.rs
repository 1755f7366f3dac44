//! Whose limit fired, and what the failing allocation's caller sees when
//! nothing could be killed.
use crate::{
    base::units::human_bytes as hb,
    model::decision::{explain::input::ExplainInput, record::Trigger},
};

pub(super) fn whose_limit_fired(out: &mut Vec<String>, x: &ExplainInput<'_>) {
    match (x.constraint, x.oom_memcg) {
        (Some("memcg"), Some(m)) => {
            let path = m.path.as_deref().unwrap_or("(unknown memcg)");
            let limit = m.limit_bytes.map_or("an unknown limit".to_owned(), hb);
            let usage = m
                .usage_bytes
                .map_or(String::new(), |u| format!(", {} in use", hb(u)));
            match x.victim_memcg {
                Some(own) if own != path => out.push(format!(
                    "An ancestor's limit fired: {path} reached its limit of {limit}{usage}; the victim lives in {own}, below it."
                )),
                _ => out.push(format!(
                    "The memcg's own limit fired: {path} reached its limit of {limit}{usage}."
                )),
            }
            if let Some(trigger_memcg) = &x.trigger.memcg
                && trigger_memcg != path
                && x.victim_memcg != Some(trigger_memcg.as_str())
            {
                out.push(format!(
                    "The failing charge came from {trigger_memcg}, a different memcg under {path}."
                ));
            }
        }
        (Some("memcg"), None) => out.push(
            "A memory cgroup limit fired; the report does not name the memcg or its limit."
                .to_owned(),
        ),
        (Some("global"), _) => out.push(
            "System-wide OOM: no cgroup limit was involved; the whole machine ran out of memory."
                .to_owned(),
        ),
        (Some(other), _) => out.push(format!("The OOM was constrained by {other}.")),
        _ => {}
    }
}

pub(super) fn no_killable_process(out: &mut Vec<String>, x: &ExplainInput<'_>) {
    // A report cut off in its task table has no victim either, but the
    // kernel said nothing of the kind: that is a gap, not "no killable".
    let cut_off = x.report.is_some_and(|r| r.cut_off());
    if x.report.is_some_and(|r| r.no_killable)
        || (x.victim.is_none() && !x.candidates.is_empty() && !cut_off)
    {
        out.push(
            "The kernel found no killable process: every task left is unkillable (oom_score_adj -1000) or already exiting; the allocation fails instead."
                .to_owned(),
        );
        out.push(failed_allocation(x.trigger));
    }
}

/// What the caller of a failed charge sees, from the allocation's gfp flags.
fn failed_allocation(trigger: &Trigger) -> String {
    let flags = trigger.gfp_flags.as_deref().unwrap_or("");
    let what = if flags.contains("ACCOUNT") {
        "a kernel-memory allocation charged to the memcg (e.g. fork's stacks and page tables, sockets, dentries): the system call fails with ENOMEM — fork reports 'Cannot allocate memory'"
    } else if flags.contains("HIGHUSER") {
        "user memory (a page fault or an explicit populate): an madvise/mlock/mmap(MAP_POPULATE) caller gets ENOMEM; a plain page fault retries the OOM path"
    } else {
        "an allocation whose caller gets ENOMEM"
    };
    format!(
        "{} (pid {}) asked for {} (order {}): {what}.",
        trigger.comm.as_deref().unwrap_or("The allocating task"),
        trigger.pid.map_or("?".to_owned(), |p| p.to_string()),
        trigger
            .gfp_flags
            .as_deref()
            .or(trigger.gfp_mask.as_deref())
            .unwrap_or("memory"),
        trigger.order.map_or("?".to_owned(), |o| o.to_string()),
    )
}
