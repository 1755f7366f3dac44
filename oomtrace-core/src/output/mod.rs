//! Output: JSON Lines (one record per line, `type` first) or text for a
//! person. Sizes are bytes in JSON and human units on screen.
//!
//! - `records`: the collector's own records (`start`, `lost`, `charge_hook`)
//!   and the one-line text of those and of the charge-failure summary;
//! - `card`: the multi-line cards (decision, candidate table, stall, charge
//!   failure);
//! - `summary`: the fleet view of many nodes' dumps (`report --summary`);
//! - `writer`: [`Output`], which writes any record as a JSON line or as its
//!   text, and is the one path for runtime warnings.
mod card;
mod records;
pub mod summary;
mod writer;

pub use crate::base::units::human_bytes;
pub use card::{render_candidate_table, render_card};
pub use records::{ChargeHookRecord, LostRecord, StartRecord};
pub use writer::Output;

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
