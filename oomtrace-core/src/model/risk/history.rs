//! A memcg's unreclaimable memory over the last seconds, bounded.
use std::collections::VecDeque;

/// Kept for the rule's window and a little more.
const KEEP_MS: u64 = 30_000;
/// Bound on the points kept, whatever the sampling rate.
const MAX_POINTS: usize = 64;
/// A point stands for a moment this close to it (samples come about once a
/// second, never exactly on the second).
const TOLERANCE_MS: u64 = 600;

#[derive(Debug, Clone, Default)]
pub struct History {
    points: VecDeque<(u64, u64)>,
}

impl History {
    /// One sample (`boot_ms`, bytes); a sample older than the last is ignored.
    pub fn push(&mut self, boot_ms: u64, bytes: u64) {
        if self.points.back().is_some_and(|&(t, _)| t > boot_ms) {
            return;
        }
        self.points.push_back((boot_ms, bytes));
        while self.points.len() > MAX_POINTS
            || self
                .points
                .front()
                .is_some_and(|&(t, _)| boot_ms.saturating_sub(t) > KEEP_MS)
        {
            self.points.pop_front();
        }
    }

    /// The oldest sample kept.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.points.front().copied()
    }

    /// The latest sample.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.points.back().copied()
    }

    /// The value at `boot_ms`: the sample nearest to it, if one is close.
    pub fn at(&self, boot_ms: u64) -> Option<u64> {
        self.points
            .iter()
            .min_by_key(|&&(t, _)| t.abs_diff(boot_ms))
            .filter(|&&(t, _)| t.abs_diff(boot_ms) <= TOLERANCE_MS)
            .map(|&(_, v)| v)
    }

    pub fn clear(&mut self) {
        self.points.clear();
    }
}
