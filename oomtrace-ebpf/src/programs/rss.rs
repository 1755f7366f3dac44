//! The mm's rss counters read as `get_mm_counter()` reads them: the central
//! value of each `mm->rss_stat[]` entry. Shared by the victim and the
//! candidate hooks, and the base that `percpu` adds the per-CPU deltas to.
use oomtrace_ebpf::UNAVAILABLE;

use super::common::{OFFSETS, global, read_or_zero};

/// Whether this kernel's rss counters could be resolved (offsets and enum values).
#[inline(always)]
pub fn rss_counters_available() -> bool {
    global!(OFFSETS.mm_rss_stat) != UNAVAILABLE
        && global!(OFFSETS.mm_rss_stride) != UNAVAILABLE
        && global!(OFFSETS.mm_rss_value) != UNAVAILABLE
        && global!(OFFSETS.mm_filepages) != UNAVAILABLE
        && global!(OFFSETS.mm_anonpages) != UNAVAILABLE
        && global!(OFFSETS.mm_shmempages) != UNAVAILABLE
        && global!(OFFSETS.mm_swapents) != UNAVAILABLE
}

/// `mm->rss_stat[index]` as `get_mm_counter` reads it (the counter's central
/// value, without per-CPU deltas: what 6.x OOM reports print; see
/// `rss_sums` in percpu.rs for 7.x); 0 when unknown.
#[inline(always)]
pub fn rss_counter(mm: u64, index: u32) -> i64 {
    let base = global!(OFFSETS.mm_rss_stat);
    let stride = global!(OFFSETS.mm_rss_stride);
    let value = global!(OFFSETS.mm_rss_value);
    if index == UNAVAILABLE || base == UNAVAILABLE || stride == UNAVAILABLE || value == UNAVAILABLE
    {
        return 0;
    }
    read_or_zero(mm, base + index * stride + value)
}
