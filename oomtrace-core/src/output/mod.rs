//! Output: JSON Lines (one record per line, `type` first) or text for a
//! person. Sizes are bytes in JSON and human units on screen.
//!
//! - `records`: the collector's own records (`start`, `lost`, `charge_hook`)
//!   and the one-line text of those and of the charge-failure summary;
//! - `card`: the multi-line cards (decision, candidate table, stall, charge
//!   failure);
//! - `sink`: [`RecordSink`], what receives every record of a run (the seam
//!   for outputs and exporters);
//! - `file`: [`RotatingFile`], `--output FILE` with size-based rotation;
//! - `queue`: [`QueuedOutput`], the live run's sink: lines written by a
//!   thread of its own through a bounded backlog, drops counted;
//! - `target`: [`LineTarget`], where the output thread puts lines;
//! - `retry`: [`RetryingFile`], `--output` surviving failed writes (lines
//!   lost and counted, retries with backoff, a `lost` record on recovery);
//! - `writer`: [`Render`] (any record as a JSON line or as its text) and
//!   [`Output`], the synchronous sink; the one runtime-warning line;
//! - `metrics`: [`metrics::Metrics`], the records as Prometheus series
//!   (`--metrics`), a sink too;
//! - `summary`: the fleet view of many nodes' dumps (`report --summary`).
mod card;
mod file;
pub mod metrics;
mod queue;
mod records;
mod retry;
mod sink;
pub mod summary;
mod target;
mod writer;

pub use crate::base::units::human_bytes;
pub use card::{render_candidate_table, render_card};
pub use file::{
    DEFAULT_OUTPUT_KEEP, DEFAULT_OUTPUT_MAX_BYTES, OutputFileConfig, OutputFileError, RotatingFile,
};
pub use queue::{OUTPUT_BACKLOG, OUTPUT_BACKLOG_BYTES, OutputState, QueuedOutput};
pub use records::{ChargeHookRecord, LostRecord, RecoveryStatus, StartRecord};
pub use retry::{Backoff, FileHealth, OUTPUT_WRITE, Reopen, RetryingFile};
pub use sink::{Fanout, Record, RecordSink};
pub use target::LineTarget;
pub use writer::{Output, Render, print_warning};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
