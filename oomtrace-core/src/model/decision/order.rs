//! The order decisions go out in: the kernel's kill order within an OOM
//! domain, while the decisions of memcgs that cannot share an OOM do not
//! wait for one another. In a storm over many memcgs, one victim slow to
//! exit then holds back only the decisions of its own memcg.
use oomtrace_ebpf::victim_valid;

use crate::model::decision::{assemble::closest_to_limit, pending::Pending};

/// Where a decision's OOM happened, as far as its order is concerned: the
/// memcg whose limit fired and the victim's memcg chain.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Domain {
    oom_memcg: u64,
    /// The victim's memcg and its ancestors (the OOM memcg among them).
    chain: Vec<u64>,
}

impl Domain {
    /// The domain of a pending decision, if it is known and its OOM stays
    /// inside it. None (it keeps its place among all decisions): a global
    /// OOM, one without a victim (its report pairs by order), one with a
    /// memory.oom.group sweep (its kills may open pendings in other
    /// memcgs), or one whose victim's memcg chain is not known.
    pub(super) fn of(p: &Pending, page_size: u64) -> Option<Domain> {
        if p.victim_pid == 0 || p.oom_group.is_some() || !p.group_kills.is_empty() {
            return None;
        }
        let task = p
            .task
            .as_deref()
            .filter(|t| t.valid & victim_valid::MEMCG != 0)?;
        // A chain cut at its bound may miss an ancestor holding the other's OOM.
        let depth = task.memcg_depth as usize;
        if depth >= task.memcg.len() {
            return None;
        }
        let levels = &task.memcg[..depth];
        let oom_memcg = match p.end() {
            // The killer's own evaluation: 0 is a global OOM.
            Some(end) => end.memcg_id,
            // The level a decision without the report names (assemble::memcg).
            None => closest_to_limit(levels, page_size).map_or(0, |l| l.cgroup_id),
        };
        if oom_memcg == 0 || p.report.as_ref().is_some_and(|r| !is_memcg_oom(r)) {
            return None;
        }
        let chain: Vec<u64> = levels.iter().map(|l| l.cgroup_id).collect();
        // An OOM memcg outside the victim's chain, or a level without its id:
        // where it is is unknown.
        (chain.contains(&oom_memcg) && !chain.contains(&0)).then_some(Domain { oom_memcg, chain })
    }

    /// Two OOMs are independent when neither's OOM memcg holds the other's
    /// victim: their domains are disjoint subtrees, and no memcg's kills
    /// (nor its history of OOMs) mix with the other's.
    pub(super) fn independent_of(&self, other: &Domain) -> bool {
        !self.chain.contains(&other.oom_memcg) && !other.chain.contains(&self.oom_memcg)
    }
}

/// The report, where it came, says whether the OOM was a memcg's.
fn is_memcg_oom(report: &crate::report::KernelReport) -> bool {
    report
        .constraint
        .as_ref()
        .is_none_or(|c| c.oom_memcg.is_some())
}
