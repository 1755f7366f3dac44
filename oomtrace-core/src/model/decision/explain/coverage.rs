//! What the sources covered: a missing, cut-off, interleaved or implausible
//! report, a tracepoint-only kernel.
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
        Some(report) if report.interleaved => out.push(
            "Two reports were interleaved in the log (their lines mixed with nothing to tell them apart): the candidate table is not trustworthy, so this decision is unsure."
                .to_owned(),
        ),
        Some(report) if report.implausible => out.push(
            "The report holds values no kernel prints (memory beyond any machine): they were left out, so this decision is unsure."
                .to_owned(),
        ),
        Some(report) if report.cut_off() && x.victim.is_none() => out.push(
            "The kernel's report was cut off before its kill line: it is incomplete, so which task was killed is unknown (this is not a report that no process was killable)."
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
