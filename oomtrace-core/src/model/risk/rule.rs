//! The rule: unreclaimable memory that grew in every segment of the window,
//! fast enough to reach the limit within the horizon. Why these numbers:
//! docs/early-warning.md.
use super::history::History;

/// The window is [`SEGMENTS`] segments of this length; the memory must grow
/// in each of them (a start-up burst grows in one, a GC sawtooth falls in one).
pub const SEGMENT_MS: u64 = 3_000;
pub const SEGMENTS: u64 = 3;
/// Growth slower than this in any segment is not a leak worth a warning.
pub const MIN_GROWTH_BYTES_PER_S: u64 = 512 << 10;
/// Warn when the limit is projected this close (seconds).
pub const HORIZON_S: f64 = 120.0;

/// What the rule says of a memcg now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Mean growth of the unreclaimable memory over the window.
    pub growth_bytes_per_s: f64,
    /// Time left before the unreclaimable memory reaches the limit at that
    /// growth; `None` without a limit or growth.
    pub eta_seconds: Option<f64>,
    /// It grew in every segment of the window.
    pub sustained: bool,
    /// It grew in the last segment (the memcg's tasks are worth reading).
    pub growing: bool,
}

impl Assessment {
    /// The warning's condition.
    pub fn at_risk(&self) -> bool {
        self.sustained && self.eta_seconds.is_some_and(|eta| eta <= HORIZON_S)
    }
}

/// The rule on `history` (unreclaimable bytes) against `limit`; `None`
/// without a sample. Until the window is covered nothing is sustained.
pub fn assess(history: &History, limit: Option<u64>) -> Option<Assessment> {
    let (now, current) = history.last()?;
    let segment_min = MIN_GROWTH_BYTES_PER_S * SEGMENT_MS / 1000;
    let grew = |k: u64| -> Option<bool> {
        let end = now.checked_sub(k * SEGMENT_MS)?;
        let start = end.checked_sub(SEGMENT_MS)?;
        Some(history.at(end)? >= history.at(start)?.saturating_add(segment_min))
    };
    let growing = grew(0).unwrap_or(false);
    let window_ms = SEGMENTS * SEGMENT_MS;
    let start = now.saturating_sub(window_ms);
    let (first_ms, first) = match history.at(start) {
        Some(bytes) => (start, bytes),
        None => history.first()?,
    };
    let sustained = (0..SEGMENTS).all(|k| grew(k) == Some(true));
    let span_ms = now.saturating_sub(first_ms).max(1);
    let growth = (current as f64 - first as f64) * 1000.0 / span_ms as f64;
    let eta_seconds = limit
        .filter(|_| growth > 0.0)
        .map(|limit| limit.saturating_sub(current) as f64 / growth);
    Some(Assessment {
        growth_bytes_per_s: growth,
        eta_seconds,
        sustained,
        growing,
    })
}
