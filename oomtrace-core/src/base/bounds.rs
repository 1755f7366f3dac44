//! The collector's memory bounds, in bytes, in one place. Each structure
//! that grows with the node (reports, decisions in flight, anything keyed by
//! memcg or pid) estimates its own heap use and evicts past its budget —
//! the gone or the oldest first — counting what an eviction lost (`lost`
//! records). The estimates count the payload (text, rows, events) plus a
//! fixed per-entry overhead for the container ([`ENTRY_OVERHEAD`]); they are
//! upper bounds of what the data needs, not of allocator slack.
//!
//! [`TOTAL`] is what a unit's `MemoryMax` is chosen from (docs/architecture.md).

/// Per-entry overhead of a hash map / vector slot beyond the entry itself
/// (hashbrown control bytes, load factor, alignment), rounded up.
pub const ENTRY_OVERHEAD: usize = 32;

/// The kernel report being read (`report::ReportParser`): its lines and
/// parsed rows. A report past it is closed as incomplete and counted.
pub const OPEN_REPORT: usize = 16 << 20;

/// Decisions in flight (`model::decision::Builder`): their reports, BPF
/// events and the killer's candidates, plus invocations still collecting
/// candidates. The oldest is evicted past it, and counted.
pub const PENDING: usize = 32 << 20;

/// Per-memcg OOM history for repeat detection (`model::decision::history`).
pub const HISTORY: usize = 1 << 20;

/// Recently decided / swept pids (`model::decision::recent`), each of two sets.
pub const RECENT_PIDS: usize = 256 << 10;

/// Aborted OOM invocations per memcg waiting for their decision (builder).
pub const ABORTED: usize = 64 << 10;

/// Charge-failure totals already reported, per memcg and reason (`model::charge`).
pub const CHARGE_REPORTED: usize = 1 << 20;

/// OOM-disabled stalls (`model::charge` from BPF waits, `model::stall` from
/// the poll): their memcgs and waiting tasks.
pub const STALLS: usize = 1 << 20;

/// Cgroup id → path cache (`cgroup::IdCache`): about 70,000 cgroups.
/// Past it a rescan starts over (the gone leave); what still does not fit
/// resolves to no path.
pub const MEMCG_PATHS: usize = 8 << 20;

/// Task snapshots of OOM memcgs (`cgroup::tasks`), read at each kill on
/// backends without the killer's hooks, until their decision goes out: about
/// 30 snapshots of 512 tasks (`cgroup/tasks.rs`). The
/// oldest is evicted past it, and counted.
pub const TASK_SNAPSHOTS: usize = 2 << 20;

/// Command lines kept past their process's death (`cgroup::process`), read
/// at each exec, at start and at each kill: about 16,000 processes of 256
/// bytes. The oldest read is evicted past it, and counted.
pub const CMDLINES: usize = 4 << 20;

/// Sum of the budgets above.
pub const TOTAL: usize = OPEN_REPORT
    + PENDING
    + HISTORY
    + 2 * RECENT_PIDS
    + ABORTED
    + CHARGE_REPORTED
    + 2 * STALLS
    + MEMCG_PATHS
    + TASK_SNAPSHOTS
    + CMDLINES;

/// Heap bytes of a string's text plus its slot.
pub fn text(s: &str) -> usize {
    s.len() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The total a unit's `MemoryMax` is chosen from is the one documented.
    #[test]
    fn the_documented_total_is_the_sum_of_the_budgets() {
        let mib = TOTAL.div_ceil(1 << 20);
        let architecture = include_str!("../../../docs/architecture.md");
        let operations = include_str!("../../../docs/operations.md");
        assert!(
            architecture.contains(&format!("**≈ {mib} MiB**")),
            "docs/architecture.md's Memory bound total is not {mib} MiB"
        );
        assert!(
            operations.contains(&format!("about {mib} MiB together")),
            "docs/operations.md's Memory bound line is not {mib} MiB"
        );
    }
}
