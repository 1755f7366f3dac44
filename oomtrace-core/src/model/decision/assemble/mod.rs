//! One decision from the pieces of one OOM. Each step fills a part of the
//! record from the best source that saw it: the BPF events (the kernel's own
//! values at the kill), then the kernel's report, then the host.
mod candidates;
mod evidence;
mod freed;
mod memcg;
mod process;
mod trigger;
mod victim;

use std::borrow::Cow;

use candidates::Scoring;

use crate::model::score::Implausible;

use crate::{
    base::{Envelope, time::rfc3339},
    model::decision::{
        env::Environment,
        explain::{ExplainInput, explain, explain_container},
        pending::{Pending, Sources},
        record::Decision,
        rss,
    },
};

#[cfg(test)]
pub(super) use candidates::row_input;
pub use memcg::closest_to_limit;

/// The decision of one pending set of pieces, numbered `seq`.
pub(super) fn assemble(
    seq: u64,
    sources: Sources,
    p: &Pending,
    env: &mut dyn Environment,
) -> Decision {
    let page_size = env.page_size();
    let time = trigger::time(p, env);
    let constraint = trigger::constraint(p);
    let trigger = trigger::trigger(p, env);
    let chain = memcg::victim_chain(p);
    let victim_memcg = memcg::victim_memcg(p, &chain, env);
    let oom_memcg = memcg::oom_memcg(p, constraint, &chain, page_size, env)
        .map(|m| memcg::memcg_state(m, p, env));
    let totals = memcg::totalpages(p, constraint, oom_memcg.as_ref(), page_size, env);
    let rss_rule = rss::rule_of(p, totals.pages, page_size);
    let scoring = Scoring::new(
        candidates::badness_model(p, env),
        totals.pages,
        page_size,
        rss_rule,
    );
    let mut ranked = candidates::candidates(p, scoring, env);
    let mut implausible = std::mem::take(&mut ranked.implausible);
    let snapshot_check = ranked.snapshot_check.take();
    let victim = victim::victim(
        p,
        &ranked.candidates,
        scoring,
        victim_memcg.clone(),
        &mut implausible,
    );
    let mut seen = std::collections::HashSet::new();
    implausible.retain(|(pid, _)| seen.insert(*pid));
    let reclaim = freed::reclaim(p, trigger.memcg.clone(), page_size, env);
    let listed = match (&victim, ranked.source) {
        (Some(victim), "proc_snapshot") => candidates::with_victim_row(ranked.candidates, victim),
        _ => ranked.candidates,
    };
    let mut decision = Decision {
        envelope: Envelope::new("decision", time.map(rfc3339)),
        seq,
        oom_id: None,
        constraint: constraint.map(Cow::Borrowed),
        backend: sources.backend.into(),
        trigger,
        oom_memcg,
        totalpages: totals.pages,
        page_size,
        badness_model: scoring.model,
        candidates: victim::with_victim_memcg(listed, victim.as_ref()),
        candidates_source: ranked.source.into(),
        candidates_snapshot_after_kill_ms: ranked.snapshot_after_kill_ms,
        rss_rule: rss_rule.map(|r| Cow::Borrowed(r.name())),
        candidates_dropped: ranked.dropped,
        killed: victim::killed(p),
        container: victim::container(victim.as_ref(), env),
        saved_names: None,
        oom_group: p.oom_group.clone(),
        warning: None,
        lead_ms: None,
        pagefault_oom: None,
        freed: freed::freed(p, sources, victim.as_ref()),
        victim,
        runtime_heap: None,
        reclaim,
        kernel_report: evidence::report_state(p).into(),
        explanation: Vec::new(),
        report_lines: evidence::report_lines(p),
        evidence: evidence::evidence(p),
        kernel_seconds: evidence::kernel_seconds(p),
        recovered: false,
        log_line: p.first_log_line(),
    };
    let extras = ExplainExtras {
        sources,
        victim_memcg: victim_memcg.as_deref(),
        points_recomputed: ranked.points_recomputed,
        swap_assumed: totals.swap_assumed,
        implausible: &implausible,
    };
    process::attach_cmdlines(&mut decision, env);
    decision.explanation = explanation(&decision, p, extras);
    let heap = decision.runtime_heap.as_ref();
    decision.explanation.extend(heap.map(|h| h.sentence()));
    decision.explanation.extend(snapshot_check);
    // Explained in the order the killer visited them; listed by points.
    decision
        .candidates
        .sort_by(|a, b| b.points.cmp(&a.points).then(b.victim.cmp(&a.victim)));
    decision
}

/// What the explanation needs beyond the record itself.
struct ExplainExtras<'a> {
    sources: Sources,
    victim_memcg: Option<&'a str>,
    points_recomputed: Option<Option<i64>>,
    swap_assumed: bool,
    /// Tasks left unscored because their numbers are impossible.
    implausible: &'a [(u32, Implausible)],
}

/// The sentences: a caveat on totalpages, the decision explained, then what
/// is seen from outside.
fn explanation(d: &Decision, p: &Pending, extras: ExplainExtras<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if extras.swap_assumed {
        out.push(
            "Swap size unknown here: totalpages assumes no swap (it only matters for the oom_score_adj term)."
                .to_owned(),
        );
    }
    explain(
        &mut out,
        ExplainInput {
            sources: extras.sources,
            constraint: d.constraint.as_deref(),
            oom_memcg: d.oom_memcg.as_ref(),
            victim_memcg: extras.victim_memcg,
            trigger: &d.trigger,
            victim: d.victim.as_ref(),
            candidates: &d.candidates,
            candidates_source: &d.candidates_source,
            snapshot: (d.candidates_source == "proc_snapshot").then_some((
                d.candidates_snapshot_after_kill_ms,
                d.candidates_dropped.unwrap_or(0),
            )),
            points_recomputed: extras.points_recomputed,
            model: d.badness_model,
            totalpages: d.totalpages,
            page_size: d.page_size,
            report: p.report.as_ref(),
        },
    );
    explain_container(&mut out, d.victim.as_ref(), d.container.as_ref());
    if let Some(sentence) = implausible_points(extras.implausible) {
        out.push(sentence);
    }
    out
}

/// One sentence for the tasks whose points were not computed because their
/// numbers describe no machine (rather than points wrapped into nonsense).
fn implausible_points(implausible: &[(u32, Implausible)]) -> Option<String> {
    let (pid, why) = implausible.first()?;
    let more = match implausible.len() {
        1 => String::new(),
        n => format!(" and {} more task(s)", n - 1),
    };
    Some(format!(
        "No points were computed for pid {pid}{more}: {why}, a value no kernel prints, so its points are left out rather than guessed."
    ))
}
