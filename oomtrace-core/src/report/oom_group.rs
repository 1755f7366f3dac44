//! The `memory.oom.group` sweep: with `memory.oom.group` set, the kernel
//! kills every task of the memcg after the victim, one "Killed process" line
//! each (the victim's a second time), announced by one line naming the
//! memcg. Those kill lines come after the report has ended, so each is a
//! `ReportItem::Kill` of its own.

/// "Tasks in /grp are going to be killed due to memory.oom.group set": the memcg.
pub(super) fn parse_sweep(t: &str) -> Option<String> {
    t.strip_prefix("Tasks in ")
        .and_then(|r| r.split_once(" are going to be killed due to memory.oom.group set"))
        .map(|m| m.0.to_string())
}
