//! Recent OOMs per memcg, so a run of them reads as a crash loop or a leak.
use std::collections::{HashMap, VecDeque};

use crate::{base::units::human_bytes as hb, model::decision::record::Decision};

/// OOMs of one memcg this close together count as a repeat.
const REPEAT_WINDOW_SECONDS: f64 = 600.0;
const REPEAT_MIN: usize = 3;
const HISTORY_PER_MEMCG: usize = 64;
const HISTORY_MEMCGS: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct History {
    per_memcg: HashMap<String, VecDeque<HistoryEntry>>,
}

#[derive(Debug, Clone, Copy)]
struct HistoryEntry {
    at: f64,
    /// memcg usage once the victim was gone (measured live, else usage − victim rss).
    usage_after: Option<u64>,
}

impl History {
    /// Remembers this OOM and explains a run of them in the same memcg.
    pub(super) fn note_repeats(&mut self, decision: &mut Decision) {
        let (Some(memcg), Some(at)) = (
            decision.oom_memcg.as_ref().and_then(|m| m.path.clone()),
            decision.kernel_seconds,
        ) else {
            return;
        };
        let usage = decision.oom_memcg.as_ref().and_then(|m| m.usage_bytes);
        let victim_rss = decision.freed.rss_bytes;
        let usage_after = decision
            .oom_memcg
            .as_ref()
            .and_then(|m| m.usage_after_kill_bytes)
            .or_else(|| Some(usage?.saturating_sub(victim_rss?)));
        let (previous, entries) = self.remember(&memcg, HistoryEntry { at, usage_after });
        let count = entries.len();
        if count < REPEAT_MIN {
            return;
        }
        let span = at - entries.front().map_or(at, |e| e.at);
        let rate = previous.and_then(|p| {
            let dt = at - p.at;
            let refill = usage?.checked_sub(p.usage_after?)?;
            (dt > 0.0).then(|| refill as f64 / dt)
        });
        decision.explanation.push(format!(
            "{memcg} has hit its limit {count} times in {span:.1} s (a crash loop or a leak){}.",
            rate.map_or(String::new(), |r| format!(
                "; since the previous kill it refilled at {}/s",
                hb(r as u64)
            ))
        ));
    }

    /// Adds the entry within the window and the bounds; returns the memcg's
    /// previous entry and its entries now.
    fn remember(
        &mut self,
        memcg: &str,
        entry: HistoryEntry,
    ) -> (Option<HistoryEntry>, &VecDeque<HistoryEntry>) {
        let at = entry.at;
        if self.per_memcg.len() >= HISTORY_MEMCGS && !self.per_memcg.contains_key(memcg) {
            self.per_memcg
                .retain(|_, h| h.back().is_some_and(|e| at - e.at < REPEAT_WINDOW_SECONDS));
        }
        let entries = self.per_memcg.entry(memcg.to_owned()).or_default();
        while entries
            .front()
            .is_some_and(|e| at - e.at > REPEAT_WINDOW_SECONDS)
        {
            entries.pop_front();
        }
        let previous = entries.back().copied();
        entries.push_back(entry);
        if entries.len() > HISTORY_PER_MEMCG {
            entries.pop_front();
        }
        (previous, entries)
    }
}
