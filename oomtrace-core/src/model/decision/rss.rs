//! The rss read of the kernel's OOM killer across decisions (`model::exact`):
//! learned once from any OOM's own numbers, it also settles the OOMs that
//! cannot tell on their own (only -1000 candidates, a rate-limited report).
use std::borrow::Cow;

use oomtrace_ebpf::OomCandidateEvent;

use crate::model::{
    decision::record::Decision,
    exact::{self, RssRule, RssSource},
};

/// Remembers in `known` the read `decision` learned, or applies the one
/// learned before to its candidates that could not tell; then explains.
/// `events` are the decision's candidate events (empty when its candidates
/// are the kernel's table).
pub(super) fn settle_rss(
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
                    let bytes = |pages: u64| pages.saturating_mul(page);
                    c.rss_bytes = bytes(rss.rss());
                    c.rss_anon_bytes = Some(bytes(rss.anon));
                    c.rss_file_bytes = Some(bytes(rss.file));
                    c.rss_shmem_bytes = Some(bytes(rss.shmem));
                    c.swap_bytes = Some(bytes(rss.swap));
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
