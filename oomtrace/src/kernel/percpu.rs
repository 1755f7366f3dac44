//! Where per-CPU data lives, so that the programs can sum `mm->rss_stat[]`
//! over every possible CPU as `percpu_counter_sum()` does ([`PercpuLayout`]).
//!
//! Since 6.2 the rss counters are `struct percpu_counter`: a central `count`
//! plus an `s32` delta per CPU. 7.x OOM reports and `oom_badness` read the
//! sum (`get_mm_counter_sum`), earlier ones the central count
//! (`get_mm_counter`); docs/rss-counters.md has the details. Nothing is
//! guessed: the counters' layout comes from BTF, the `__per_cpu_offset[]`
//! array from `/proc/kallsyms`, the possible CPUs from sysfs. Whatever is
//! missing leaves the sums off and is named.
use oomtrace_ebpf::{KernelOffsets, MAX_CPUS, PercpuLayout, UNAVAILABLE};

use crate::kernel::btf::{BtfError, KernelBtf};

pub const KALLSYMS: &str = "/proc/kallsyms";
pub const POSSIBLE_CPUS: &str = "/sys/devices/system/cpu/possible";

/// [`PercpuLayout`] plus what kept it off, for the start record's
/// `unavailable_fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPercpu {
    pub layout: PercpuLayout,
    /// Empty when the sums are on, or when the kernel's rss counters are not
    /// per-CPU (before 6.2: nothing to sum).
    pub unavailable: Vec<String>,
}

/// Resolves the layout on the running kernel.
pub fn resolve(btf: &KernelBtf, offsets: &KernelOffsets) -> Result<ResolvedPercpu, BtfError> {
    let kallsyms = std::fs::read_to_string(KALLSYMS).ok();
    let possible = std::fs::read_to_string(POSSIBLE_CPUS).ok();
    resolve_from(btf, offsets, kallsyms.as_deref(), possible.as_deref())
}

/// [`resolve`] on given `/proc/kallsyms` and `cpu/possible` texts (`None`:
/// unreadable).
pub fn resolve_from(
    btf: &KernelBtf,
    offsets: &KernelOffsets,
    kallsyms: Option<&str>,
    possible: Option<&str>,
) -> Result<ResolvedPercpu, BtfError> {
    let mut out = ResolvedPercpu {
        layout: PercpuLayout::UNRESOLVED,
        unavailable: Vec::new(),
    };
    if offsets.mm_rss_stride == UNAVAILABLE || offsets.mm_rss_value == UNAVAILABLE {
        return Ok(out);
    }
    // Before 6.2: `struct mm_rss_stat { atomic_long_t count[]; }`, whole
    // values 8 bytes apart. 6.2+: `struct percpu_counter rss_stat[]`, whose
    // `count` the programs read and whose `counters` they sum.
    if btf.member_is_struct("mm_struct", "rss_stat", "mm_rss_stat")? {
        out.layout.atomic_counters = 1;
        return Ok(out);
    }
    let per_cpu_counters = btf.struct_size("percpu_counter")?
        == Some(u64::from(offsets.mm_rss_stride))
        && btf.member_offset("percpu_counter", "count")? == Some(offsets.mm_rss_value);
    if !per_cpu_counters {
        out.unavailable
            .push("mm_struct.rss_stat (neither atomic_long_t nor percpu_counter)".into());
        return Ok(out);
    }
    match btf.pointer_member("percpu_counter", "counters")? {
        Some(offset) => out.layout.counters = offset,
        None => out
            .unavailable
            .push("percpu_counter.counters (rss per-CPU sums)".into()),
    }
    match kallsyms.and_then(|text| symbol_address(text, "__per_cpu_offset")) {
        Some(address) => out.layout.per_cpu_offset = address,
        None => out.unavailable.push(
            "__per_cpu_offset (rss per-CPU sums: not in /proc/kallsyms, or its address hidden)"
                .into(),
        ),
    }
    match possible.map(str::trim).map(possible_cpus) {
        Some(Ok(cpus)) => out.layout.cpus = cpus,
        Some(Err(reason)) => out
            .unavailable
            .push(format!("possible CPUs (rss per-CPU sums: {reason})")),
        None => out.unavailable.push(format!(
            "possible CPUs (rss per-CPU sums: {POSSIBLE_CPUS} unreadable)"
        )),
    }
    if !out.unavailable.is_empty() {
        out.layout = PercpuLayout::UNRESOLVED;
    }
    debug_assert_eq!(out.layout.atomic_counters, 0);
    Ok(out)
}

/// Address of the data symbol `name` in `/proc/kallsyms` text; `None` when
/// absent or hidden (all-zero addresses under `kptr_restrict`).
fn symbol_address(kallsyms: &str, name: &str) -> Option<u64> {
    kallsyms.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let address = fields.next()?;
        let _kind = fields.next()?;
        (fields.next()? == name && fields.next().is_none())
            .then(|| u64::from_str_radix(address, 16).ok())
            .flatten()
            .filter(|&a| a != 0)
    })
}

/// `nr_cpu_ids` from the possible mask ("0-3", "0"): the programs walk CPUs
/// `0..n`, so the mask must be that range and at most [`MAX_CPUS`].
fn possible_cpus(mask: &str) -> Result<u32, String> {
    let (first, last) = match mask.split_once('-') {
        Some((a, b)) => (a.parse::<u32>(), b.parse::<u32>()),
        None => (mask.parse::<u32>(), mask.parse::<u32>()),
    };
    match (first, last) {
        (Ok(0), Ok(last)) if last < MAX_CPUS => Ok(last + 1),
        (Ok(0), Ok(last)) => Err(format!(
            "{} possible CPUs, more than the {MAX_CPUS} summed",
            u64::from(last) + 1
        )),
        _ => Err(format!("possible mask {mask:?} is not 0-N")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn possible_masks() {
        assert_eq!(possible_cpus("0-1"), Ok(2));
        assert_eq!(possible_cpus("0"), Ok(1));
        assert_eq!(possible_cpus("0-1023"), Ok(1024));
        assert!(
            possible_cpus("0-1024")
                .unwrap_err()
                .contains("1025 possible CPUs")
        );
        assert!(possible_cpus("0-3,8-11").is_err());
        assert!(possible_cpus("1-3").is_err());
        assert!(possible_cpus("").is_err());
    }

    #[test]
    fn kallsyms_addresses() {
        let text = "ffffffff81000000 T _stext\n\
                    ffffffff82c5d0a0 R __per_cpu_offset\n\
                    ffffffffc0a01000 t helper\t[some_module]\n";
        assert_eq!(
            symbol_address(text, "__per_cpu_offset"),
            Some(0xffff_ffff_82c5_d0a0)
        );
        assert_eq!(
            symbol_address(text, "helper"),
            None,
            "module symbols differ"
        );
        assert_eq!(symbol_address(text, "__per_cpu_start"), None);
        // kptr_restrict: names listed, addresses zeroed.
        let hidden = "0000000000000000 R __per_cpu_offset\n";
        assert_eq!(symbol_address(hidden, "__per_cpu_offset"), None);
    }

    /// On this machine's kernel (6.2+): the layout agrees with BTF and
    /// kallsyms. A kernel without CONFIG_KALLSYMS_ALL (this host's) lists
    /// no data symbols: then the sums are off and `__per_cpu_offset` is named.
    #[test]
    fn resolves_on_this_kernel() {
        let path = Path::new(crate::kernel::btf::VMLINUX_BTF);
        let btf = KernelBtf::open(path)
            .unwrap_or_else(|e| panic!("needs kernel BTF ({}): {e}", path.display()));
        assert!(
            btf.struct_size("percpu_counter").unwrap().is_some(),
            "needs a kernel with per-CPU rss counters (6.2+)"
        );
        let offsets = btf.resolve_offsets().expect("BTF").offsets;
        let kallsyms =
            std::fs::read_to_string(KALLSYMS).unwrap_or_else(|e| panic!("needs {KALLSYMS}: {e}"));
        assert!(
            symbol_address(&kallsyms, "_stext").is_some(),
            "needs root: {KALLSYMS} hides its addresses"
        );
        let resolved = resolve(&btf, &offsets).expect("BTF");
        match symbol_address(&kallsyms, "__per_cpu_offset") {
            Some(address) => {
                assert!(resolved.unavailable.is_empty(), "{resolved:?}");
                assert_eq!(
                    Some(resolved.layout.counters),
                    btf.pointer_member("percpu_counter", "counters").unwrap()
                );
                assert!(resolved.layout.cpus >= 1);
                assert_eq!(resolved.layout.per_cpu_offset, address);
            }
            None => {
                assert_eq!(resolved.layout, PercpuLayout::UNRESOLVED);
                assert_eq!(resolved.unavailable.len(), 1, "{resolved:?}");
                assert!(
                    resolved.unavailable[0].starts_with("__per_cpu_offset "),
                    "{resolved:?}"
                );
            }
        }
    }
}
