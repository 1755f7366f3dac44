//! The rss read of this kernel's OOM killer across decisions
//! (`model::exact`): learned once from any decision that can tell, it holds
//! for the OOMs that cannot tell on their own.
use std::borrow::Cow;

use oomtrace_ebpf::OomCandidateEvent;

use crate::model::{
    decision::{pending::Pending, record::Decision},
    exact::{self, RssRule, RssSource},
};

/// The read any of `batch` reveals (its killer's points, kill line or task
/// table), so that the batch's OOMs that cannot tell on their own get it
/// too, whichever is emitted first.
pub(super) fn learn<'a>(
    batch: impl IntoIterator<Item = &'a Pending>,
    page_size: u64,
) -> Option<RssRule> {
    batch.into_iter().find_map(|p| {
        let invocation = p.invocation.as_ref();
        exact::rss_rule(
            invocation.map_or(&[], |i| i.candidates.as_slice()),
            invocation.and_then(|i| i.end).map(|e| e.totalpages),
            p.task.as_deref(),
            p.kill_line(),
            p.report
                .as_ref()
                .and_then(|r| r.tasks.as_ref())
                .map(|t| t.rows.as_slice()),
            page_size,
        )
    })
}

/// Finishes a decision's rss: remembers in `known` the read it learned, or
/// applies the one learned before to its candidates that could not tell
/// (an OOM whose only candidates sit at -1000 and whose table was
/// rate-limited), then explains (see `model::exact`). `events` are the
/// decision's candidate events (empty when the candidates are the kernel's
/// table).
pub(super) fn settle(
    known: &mut Option<RssRule>,
    decision: &mut Decision,
    events: &[OomCandidateEvent],
) {
    match decision.rss_rule.as_deref().and_then(RssRule::from_name) {
        Some(rule) => *known = Some(rule),
        None => {
            if let Some(rule) = *known {
                decision.rss_rule = Some(Cow::Borrowed(rule.name()));
                let page = decision.page_size;
                for c in decision
                    .candidates
                    .iter_mut()
                    .filter(|c| c.rss_source.as_deref() == Some(RssSource::BpfApprox.name()))
                {
                    let Some(event) = events.iter().find(|e| e.pid == c.pid) else {
                        continue;
                    };
                    let (rss, source) = exact::candidate_rss(event, Some(rule));
                    c.rss_bytes = rss.rss() * page;
                    c.rss_anon_bytes = Some(rss.anon * page);
                    c.rss_file_bytes = Some(rss.file * page);
                    c.rss_shmem_bytes = Some(rss.shmem * page);
                    c.swap_bytes = Some(rss.swap * page);
                    c.rss_source = Some(source.label());
                }
            }
        }
    }
    let rule = decision.rss_rule.as_deref().and_then(RssRule::from_name);
    let lines = exact::explain(
        rule,
        decision.candidates.iter().map(|c| c.rss_source.as_deref()),
    );
    decision.explanation.extend(lines);
}
