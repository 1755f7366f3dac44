//! What the sources covered: a missing or cut-off report, a tracepoint-only
//! kernel.
use std::ops::ControlFlow;

use crate::model::decision::explain::input::ExplainInput;

/// Breaks when nothing more can be said: no report and no candidates.
pub(super) fn report_gaps(out: &mut Vec<String>, x: &ExplainInput<'_>) -> ControlFlow<()> {
    match x.report {
        None if x.victim.is_some() && x.candidates.is_empty() => {
            out.push(
                "The kernel printed no report for this kill (dump_header is rate-limited to 10 per 5 s, or the log was not readable): the candidate list is unknown."
                    .to_owned(),
            );
            return ControlFlow::Break(());
        }
        None if x.victim.is_some() => out.push(
            "The kernel printed no report for this kill (dump_header is rate-limited to 10 per 5 s); the hooks saw the whole evaluation."
                .to_owned(),
        ),
        Some(report) if !report.complete => out.push(
            "The kernel's report is incomplete (cut off before its end): what it does not show is unknown."
                .to_owned(),
        ),
        _ => {}
    }
    ControlFlow::Continue(())
}

pub(super) fn tracepoint_only(out: &mut Vec<String>, x: &ExplainInput<'_>) {
    if x.sources.backend == "tracepoint" && !x.candidates.is_empty() {
        out.push(
            "This kernel allows only tracepoints: the candidate list comes from the kernel's report, not from the killer's own evaluation."
                .to_owned(),
        );
    }
}
