//! The rss counters summed over every possible CPU, as `percpu_counter_sum()`
//! reads them: 7.x kernels print and score with `get_mm_counter_sum()`,
//! not the central `count` that `get_mm_counter()` returns (see
//! docs/rss-counters.md). Shared by the victim and the candidate hooks.
use aya_ebpf::{macros::map, maps::Array};
use oomtrace_ebpf::{MAX_CPUS, PercpuLayout, RssSums, UNAVAILABLE, rss_rule};

use super::{
    common::{OFFSETS, global, read_or_zero},
    rss::rss_counter,
};

/// Where per-CPU data lives, filled by the collector before load.
#[unsafe(no_mangle)]
pub static PERCPU: PercpuLayout = PercpuLayout::UNRESOLVED;

/// Element 0: the [`rss_rule`] the collector learned from the kernel's own
/// numbers (its points and kill lines).
#[map]
pub static RSS_RULE: Array<u32> = Array::with_max_entries(1, 0);

/// Whether this kernel's counters can be summed (6.2+ `percpu_counter`,
/// layout resolved).
#[inline(always)]
pub fn sums_available() -> bool {
    global!(PERCPU.cpus) != 0
        && global!(PERCPU.counters) != UNAVAILABLE
        && global!(PERCPU.per_cpu_offset) != 0
        && global!(OFFSETS.mm_rss_stat) != UNAVAILABLE
        && global!(OFFSETS.mm_rss_stride) != UNAVAILABLE
}

/// Whether the rss counters are `atomic_long_t` (before 6.2): whole values.
#[inline(always)]
pub fn counters_atomic() -> bool {
    global!(PERCPU.atomic_counters) != 0
}

/// Whether the candidates of an OOM are worth summing: unless the collector
/// has seen this kernel's killer read the central counts.
#[inline(always)]
pub fn sum_candidates() -> bool {
    let rule = RSS_RULE.get(0).copied().unwrap_or(rss_rule::UNKNOWN);
    rule != rss_rule::COUNTER && sums_available()
}

/// `&mm->rss_stat[index]`'s per-CPU pointer (`counters`), 0 when unknown.
#[inline(always)]
fn counters(mm: u64, index: u32) -> u64 {
    let base = global!(OFFSETS.mm_rss_stat);
    let stride = global!(OFFSETS.mm_rss_stride);
    let field = global!(PERCPU.counters);
    if index == UNAVAILABLE || field == UNAVAILABLE {
        return 0;
    }
    read_or_zero(mm, base + index * stride + field)
}

/// `mm`'s four rss counters, each `count + Σ per-CPU delta` over CPUs
/// `0..nr_cpu_ids`; `None` when a per-CPU pointer or offset could not be
/// read. The kernel sums under the counter's spinlock; this reads without
/// it, so a fold racing with the read can count one batch twice (the
/// collector checks the result against the kernel's own numbers).
#[inline(always)]
pub fn rss_sums(mm: u64) -> Option<RssSums> {
    if mm == 0 || !sums_available() {
        return None;
    }
    let file = counters(mm, global!(OFFSETS.mm_filepages));
    let anon = counters(mm, global!(OFFSETS.mm_anonpages));
    let swap = counters(mm, global!(OFFSETS.mm_swapents));
    let shmem = counters(mm, global!(OFFSETS.mm_shmempages));
    if file == 0 || anon == 0 || swap == 0 || shmem == 0 {
        return None;
    }
    let mut sums = RssSums {
        file_pages: rss_counter(mm, global!(OFFSETS.mm_filepages)),
        anon_pages: rss_counter(mm, global!(OFFSETS.mm_anonpages)),
        swapents: rss_counter(mm, global!(OFFSETS.mm_swapents)),
        shmem_pages: rss_counter(mm, global!(OFFSETS.mm_shmempages)),
    };
    let cpus = global!(PERCPU.cpus);
    let offsets = global!(PERCPU.per_cpu_offset);
    let mut ok = true;
    for cpu in 0..MAX_CPUS {
        if cpu >= cpus {
            break;
        }
        let offset: u64 = read_or_zero(offsets + cpu as u64 * 8, 0);
        // Every possible CPU has its per-CPU area; a zero offset means the
        // array could not be read.
        ok &= offset != 0;
        sums.file_pages += read_or_zero::<i32>(file + offset, 0) as i64;
        sums.anon_pages += read_or_zero::<i32>(anon + offset, 0) as i64;
        sums.swapents += read_or_zero::<i32>(swap + offset, 0) as i64;
        sums.shmem_pages += read_or_zero::<i32>(shmem + offset, 0) as i64;
    }
    ok.then_some(sums)
}
