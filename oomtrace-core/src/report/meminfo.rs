//! The memory summary of a global OOM (show_mem's "Mem-Info:"): the lines
//! that size the machine.

use serde::Serialize;

use super::numbers::{MAX_PLAUSIBLE_PAGES, parse_kb};

/// Global OOM: the lines of Mem-Info that size the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlobalMemInfo {
    pub ram_pages: Option<u64>,
    pub reserved_pages: Option<u64>,
    pub total_swap_kb: Option<u64>,
    pub free_swap_kb: Option<u64>,
}

/// A Mem-Info line that sizes the machine, or the summary's first line.
pub(super) enum MemInfoLine {
    Start,
    RamPages(u64),
    ReservedPages(u64),
    TotalSwap(u64),
    FreeSwap(u64),
}

impl GlobalMemInfo {
    pub(super) fn record(&mut self, line: MemInfoLine) {
        match line {
            MemInfoLine::Start => {}
            MemInfoLine::RamPages(n) => self.ram_pages = Some(n),
            MemInfoLine::ReservedPages(n) => self.reserved_pages = Some(n),
            MemInfoLine::TotalSwap(n) => self.total_swap_kb = Some(n),
            MemInfoLine::FreeSwap(n) => self.free_swap_kb = Some(n),
        }
    }
}

/// "Mem-Info:", "N pages RAM", "N pages reserved", "Total swap = NkB",
/// "Free swap  = NkB".
pub(super) fn parse_meminfo(t: &str) -> Option<MemInfoLine> {
    if t.starts_with("Mem-Info:") {
        return Some(MemInfoLine::Start);
    }
    let pages = |n: &str| n.parse().ok().filter(|&n| n <= MAX_PLAUSIBLE_PAGES);
    if let Some(n) = t.strip_suffix(" pages RAM").and_then(pages) {
        return Some(MemInfoLine::RamPages(n));
    }
    if let Some(n) = t.strip_suffix(" pages reserved").and_then(pages) {
        return Some(MemInfoLine::ReservedPages(n));
    }
    if let Some(n) = parse_swap_total(t, "Total swap") {
        return Some(MemInfoLine::TotalSwap(n));
    }
    parse_swap_total(t, "Free swap").map(MemInfoLine::FreeSwap)
}

/// "Total swap = 0kB" / "Free swap  = 0kB".
fn parse_swap_total(t: &str, key: &str) -> Option<u64> {
    let rest = t.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    parse_kb(rest.trim())
}
