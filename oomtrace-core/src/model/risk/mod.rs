//! The early warning: per memcg, whether it is heading for an OOM kill, from
//! signals cheap to read (docs/early-warning.md has the rule's measurements).
//!
//! Risk is unreclaimable memory (anon, shmem, kernel) growing towards the
//! limit: page cache is what reclaim frees, so a memcg full of it is not at
//! risk. A memcg is sampled only once its usage passed [`WATCH_FRACTION`] of
//! its limit (a kernel threshold notification tells when), and its tasks
//! only while its unreclaimable memory grows. Free of I/O: the host is
//! reached through [`RiskEnvironment`].
mod env;
mod growers;
mod history;
mod link;
mod monitor;
mod record;
mod rule;
mod signals;
#[cfg(test)]
mod tests;

pub use env::RiskEnvironment;
pub use growers::Grower;
pub use link::{kill_boot_ms, link_decision};
pub use monitor::{RiskMonitor, RiskRecord, WarningLink};
pub use record::{OomWarning, OomWarningClear, Signal};
pub use rule::{Assessment, HORIZON_S, MIN_GROWTH_BYTES_PER_S, SEGMENT_MS, SEGMENTS};
pub use signals::{MemcgSample, StatFields, parse_stat};

/// A memcg is watched (sampled once a second) while its usage is at least
/// this fraction of its limit: below it, even the fastest leak we warn of
/// has time to be seen growing.
pub const WATCH_FRACTION: f64 = 0.25;

/// The usage at which a memcg of this limit starts to be watched.
pub fn watch_threshold(limit_bytes: u64) -> u64 {
    (limit_bytes as f64 * WATCH_FRACTION) as u64
}
