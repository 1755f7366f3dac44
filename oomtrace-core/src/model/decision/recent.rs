//! Pids seen recently, bounded in bytes and age, with O(1) lookups: the
//! victims of memory.oom.group sweeps and the victims already decided.
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

pub(super) struct RecentPids {
    order: VecDeque<(u32, Instant)>,
    /// Entries per pid in `order`, and when it was last inserted.
    counts: HashMap<u32, (u32, Instant)>,
    max: usize,
    max_age: Duration,
    /// Entries dropped for room before their age was up (`lost` records).
    pub(super) evicted: u64,
}

/// Heap bytes one entry costs: its place in `order` and in `counts`.
const ENTRY_BYTES: usize = std::mem::size_of::<(u32, Instant)>()
    + std::mem::size_of::<(u32, (u32, Instant))>()
    + crate::base::bounds::ENTRY_OVERHEAD;

impl RecentPids {
    /// At most `max_bytes` of entries, each for at most `max_age`.
    pub(super) fn new(max_bytes: usize, max_age: Duration) -> Self {
        Self {
            order: VecDeque::new(),
            counts: HashMap::new(),
            max: (max_bytes / ENTRY_BYTES).max(1),
            max_age,
            evicted: 0,
        }
    }

    /// Estimated heap bytes held.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.order.len() * ENTRY_BYTES
    }

    pub(super) fn insert(&mut self, now: Instant, pid: u32) {
        self.expire(now);
        if self.order.len() >= self.max {
            self.pop_oldest();
            self.evicted += 1;
        }
        self.order.push_back((pid, now));
        let entry = self.counts.entry(pid).or_insert((0, now));
        *entry = (entry.0 + 1, now);
    }

    pub(super) fn contains(&self, now: Instant, pid: u32) -> bool {
        self.counts
            .get(&pid)
            .is_some_and(|(_, last)| now.saturating_duration_since(*last) < self.max_age)
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= self.max_age)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((pid, _)) = self.order.pop_front()
            && let Some((count, _)) = self.counts.get_mut(&pid)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_age() {
        let t0 = Instant::now();
        let mut recent = RecentPids::new(2 * ENTRY_BYTES, Duration::from_secs(10));
        recent.insert(t0, 1);
        recent.insert(t0, 2);
        recent.insert(t0, 3);
        assert!(
            !recent.contains(t0, 1),
            "the oldest went when the bound was reached"
        );
        assert!(recent.contains(t0, 2) && recent.contains(t0, 3));
        assert_eq!(recent.evicted, 1, "evicted for room: counted");
        assert!(recent.heap_bytes() <= 2 * ENTRY_BYTES);
        assert!(!recent.contains(t0 + Duration::from_secs(10), 3), "too old");
        recent.insert(t0 + Duration::from_secs(11), 4);
        assert!(
            !recent.counts.contains_key(&2),
            "expired entries leave the index"
        );
        assert_eq!(recent.evicted, 1, "expiry loses nothing: not counted");
    }
}
