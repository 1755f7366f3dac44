//! Short factual sentences, each computed from the decision's data, in a
//! fixed order: whose limit fired, what the sources covered, the victim,
//! the ranking, then the memory's composition and the ranking's patterns.
mod container;
mod coverage;
mod input;
mod limit;
mod memory;
mod ranking;
mod selection;
mod victim;

use crate::report::KernelReport;

pub(crate) use container::explain_container;
pub(crate) use input::ExplainInput;

/// Short factual sentences, each computed from the decision's data.
pub(crate) fn explain(out: &mut Vec<String>, x: ExplainInput<'_>) {
    limit::whose_limit_fired(out, &x);
    if coverage::report_gaps(out, &x).is_break() {
        return;
    }
    limit::no_killable_process(out, &x);
    if let Some(v) = x.victim {
        victim::victim_share(out, &x, v);
        victim::score_adjustment(out, &x, v);
    }
    ranking::candidates(out, &x);
    coverage::tracepoint_only(out, &x);
    if let Some(report) = x.report {
        explain_memory(out, &x, report);
    }
}

/// Memory-composition and ranking patterns: page cache vs anon, huge pages,
/// pages-not-kB, old-kernel selection, many small tasks, why not the biggest.
pub(crate) fn explain_memory(out: &mut Vec<String>, x: &ExplainInput<'_>, report: &KernelReport) {
    memory::composition(out, x, report);
    memory::huge_pages(out, report);
    memory::pages_not_kb(out, x, report);
    selection::old_kernel_selection(out, x, report);
    let Some(v) = x.victim else { return };
    ranking::many_small_tasks(out, x, v);
    ranking::why_not_the_biggest(out, x, v, report);
}
