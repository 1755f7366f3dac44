//! Recent OOMs per memcg, so a run of them reads as a crash loop or a leak.
use std::collections::{HashMap, VecDeque};

use crate::{
    base::{bounds, units::human_bytes as hb},
    model::decision::record::Decision,
};

/// OOMs of one memcg this close together count as a repeat.
const REPEAT_WINDOW_SECONDS: f64 = 600.0;
const REPEAT_MIN: usize = 3;
const HISTORY_PER_MEMCG: usize = 64;

#[derive(Debug)]
pub(super) struct History {
    per_memcg: HashMap<String, VecDeque<HistoryEntry>>,
    /// Estimated heap bytes of `per_memcg` ([`History::cost`] per memcg).
    bytes: usize,
    budget: usize,
    /// Memcgs forgotten for room while their OOMs were still recent.
    pub(super) evicted: u64,
}

impl Default for History {
    fn default() -> Self {
        Self::with_budget(bounds::HISTORY)
    }
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

    fn with_budget(budget: usize) -> Self {
        Self {
            per_memcg: HashMap::new(),
            bytes: 0,
            budget,
            evicted: 0,
        }
    }

    /// Heap bytes one memcg costs: its path and a full ring of entries
    /// (reserved up front, so its cost never changes).
    fn cost(memcg: &str) -> usize {
        bounds::text(memcg)
            + std::mem::size_of::<VecDeque<HistoryEntry>>()
            + (HISTORY_PER_MEMCG + 1) * std::mem::size_of::<HistoryEntry>()
    }

    /// Makes room for a memcg costing `need`: memcgs whose OOMs are all
    /// past the window go first (nothing lost), then the least recent
    /// (counted).
    fn make_room(&mut self, need: usize, at: f64) {
        if self.bytes + need <= self.budget {
            return;
        }
        let stale: Vec<String> = self
            .per_memcg
            .iter()
            .filter(|(_, h)| h.back().is_none_or(|e| at - e.at >= REPEAT_WINDOW_SECONDS))
            .map(|(k, _)| k.clone())
            .collect();
        for memcg in stale {
            self.forget(&memcg);
        }
        while self.bytes + need > self.budget {
            let Some(oldest) = self
                .per_memcg
                .iter()
                .min_by(|a, b| {
                    let last = |h: &VecDeque<HistoryEntry>| h.back().map_or(f64::MIN, |e| e.at);
                    last(a.1).total_cmp(&last(b.1))
                })
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            self.forget(&oldest);
            self.evicted += 1;
        }
    }

    fn forget(&mut self, memcg: &str) {
        if self.per_memcg.remove(memcg).is_some() {
            self.bytes -= Self::cost(memcg);
        }
    }

    /// Adds the entry within the window and the bounds; returns the memcg's
    /// previous entry and its entries now.
    fn remember(
        &mut self,
        memcg: &str,
        entry: HistoryEntry,
    ) -> (Option<HistoryEntry>, &VecDeque<HistoryEntry>) {
        let at = entry.at;
        if !self.per_memcg.contains_key(memcg) {
            let need = Self::cost(memcg);
            self.make_room(need, at);
            self.bytes += need;
            self.per_memcg.insert(
                memcg.to_owned(),
                VecDeque::with_capacity(HISTORY_PER_MEMCG + 1),
            );
        }
        let entries = self.per_memcg.get_mut(memcg).expect("just ensured");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: f64) -> HistoryEntry {
        HistoryEntry {
            at,
            usage_after: None,
        }
    }

    #[test]
    fn bounded_in_bytes_stale_memcgs_go_first_and_evictions_are_counted() {
        let room = History::cost("/a") * 3;
        let mut h = History::with_budget(room);
        h.remember("/a", entry(0.0));
        h.remember("/b", entry(1.0));
        h.remember("/c", entry(REPEAT_WINDOW_SECONDS + 2.0));
        // Full: "/a" and "/b" are past the window at "/d"'s time, nothing lost.
        h.remember("/d", entry(REPEAT_WINDOW_SECONDS + 3.0));
        assert_eq!(h.evicted, 0);
        assert!(h.bytes <= room);
        assert_eq!(h.per_memcg.len(), 2);
        h.remember("/e", entry(REPEAT_WINDOW_SECONDS + 4.0));
        h.remember("/f", entry(REPEAT_WINDOW_SECONDS + 5.0));
        // "/c" was recent: forgetting it loses a possible repeat, counted.
        assert_eq!(h.evicted, 1);
        assert!(!h.per_memcg.contains_key("/c"));
        assert!(h.bytes <= room);
        let sum: usize = h.per_memcg.keys().map(|k| History::cost(k)).sum();
        assert_eq!(sum, h.bytes, "the estimate follows the contents");
        // Many entries of one memcg never grow its cost.
        for i in 0..1000 {
            h.remember(
                "/f",
                entry(REPEAT_WINDOW_SECONDS + 6.0 + f64::from(i) * 0.001),
            );
        }
        assert!(h.bytes <= room && h.per_memcg["/f"].len() <= HISTORY_PER_MEMCG);
    }
}
