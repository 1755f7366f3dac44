//! What the decision was built from: the kernel's report lines and events,
//! the kernel clock of the kill, and how complete the report was.
use crate::{
    events::{Event, to_json},
    model::decision::pending::Pending,
};

/// "complete", "incomplete" (cut short) or "missing" (rate-limited or not seen).
pub(super) fn report_state(p: &Pending) -> &'static str {
    match &p.report {
        Some(r) if r.complete => "complete",
        Some(_) => "incomplete",
        None => "missing",
    }
}

pub(super) fn report_lines(p: &Pending) -> Vec<String> {
    p.report
        .as_ref()
        .map(|r| r.lines.iter().map(|l| l.text.clone()).collect())
        .unwrap_or_default()
}

/// The BPF events of the decision, in kernel time order.
pub(super) fn evidence(p: &Pending) -> Vec<serde_json::Value> {
    let mut events: Vec<Event> = Vec::new();
    events.extend(p.mark.map(Event::MarkVictim));
    events.extend(p.task.clone().map(Event::VictimTask));
    events.extend(p.reaper_events.iter().copied().map(Event::Reaper));
    events.extend(p.exit.map(Event::VictimExit));
    events.sort_by_key(|e| e.header().boot_ns);
    events.iter().map(to_json).collect()
}

/// Kernel clock of the kill in seconds: BPF boot time, else the log's.
pub(super) fn kernel_seconds(p: &Pending) -> Option<f64> {
    p.kill_boot_ns()
        .map(|ns| ns as f64 / 1e9)
        .or_else(|| p.log_seconds())
}
