//! Numbers as the kernel prints them in its report, and the bounds past
//! which a number is not the kernel's (a corrupt or forged log).

/// The largest page count a kernel prints for a task or a machine: 2^44
/// pages is 64 PiB in 4 KiB pages, the whole of a 5-level-paging address
/// space. Larger numbers come from a corrupt or forged log.
pub const MAX_PLAUSIBLE_PAGES: u64 = 1 << 44;

/// The largest size in kB of a task or a machine (kill, reaper and swap
/// lines): [`MAX_PLAUSIBLE_PAGES`] 4 KiB pages, 64 PiB.
pub const MAX_PLAUSIBLE_KB: u64 = 1 << 46;

/// The largest memcg counter in kB: an unlimited memcg's limit is
/// `PAGE_COUNTER_MAX` pages, 9007199254740988 kB on 64-bit, just under
/// 2^53. In bytes it still fits a u64 (2^63).
pub const MAX_COUNTER_KB: u64 = 1 << 53;

/// The largest byte count of a task or a machine (page tables, memcg
/// stats other than limits): 64 PiB.
pub const MAX_PLAUSIBLE_BYTES: u64 = 1 << 56;

/// Leading ASCII digits as a number, and the rest.
pub(super) fn split_num<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Like [`split_num`] but with an optional leading '-'.
pub(super) fn split_signed<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let sign = usize::from(s.starts_with('-'));
    let end = sign + s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if end == sign {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// "65024kB" → 65024; `None` when the unit is missing (cut-off line) or the
/// value is beyond [`MAX_PLAUSIBLE_KB`] (not guessed either).
pub(super) fn parse_kb(s: &str) -> Option<u64> {
    s.strip_suffix("kB")?
        .parse()
        .ok()
        .filter(|&kb| kb <= MAX_PLAUSIBLE_KB)
}
