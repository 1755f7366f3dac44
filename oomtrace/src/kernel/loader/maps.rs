//! Getting typed maps out of the loaded object.
use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf},
};
use oomtrace_ebpf::{ChargeFailureKey, ChargeFailureState, MemcgReclaimStats};

use super::error::MapError;

/// Takes map `name` out of the object as `M`. The map lives on in the kernel
/// while a loaded program uses it; the caller owns its fd from now on.
pub(super) fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, MapError>
where
    M: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(MapError::Missing(name))?;
    M::try_from(map).map_err(MapError::access(name))
}

/// Borrows map `name` as `M`, leaving it in the object: programs not loaded
/// yet still refer to it by the fd the object holds.
pub(super) fn map_mut<'a, M>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<M, MapError>
where
    M: TryFrom<&'a mut Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(MapError::Missing(name))?;
    M::try_from(map).map_err(MapError::access(name))
}

/// Restricts the programs to the `--cgroup` ids (the filter is on when any).
pub(super) fn fill_cgroup_filter(ebpf: &mut Ebpf, cgroup_ids: &[u64]) -> Result<(), MapError> {
    const FILTER: &str = "CGROUP_FILTER";
    let mut filter: BpfHashMap<&mut MapData, u64, u8> = map_mut(ebpf, FILTER)?;
    for id in cgroup_ids {
        filter.insert(id, 1, 0).map_err(MapError::access(FILTER))?;
    }
    Ok(())
}

/// Sets the programs' `RSS_RULE` switch (an `oomtrace_ebpf::rss_rule`
/// value). Borrowed, not taken: the candidate hooks keep using it.
pub(super) fn set_rss_rule(ebpf: &mut Ebpf, rule: u32) -> Result<(), MapError> {
    const RSS_RULE: &str = "RSS_RULE";
    let mut array: Array<&mut MapData, u32> = map_mut(ebpf, RSS_RULE)?;
    array.set(0, rule, 0).map_err(MapError::access(RSS_RULE))
}

/// The maps the collector reads while tracing.
pub(super) struct Maps {
    pub events: RingBuf<MapData>,
    pub drops: PerCpuArray<MapData, u64>,
    pub reclaim_stats: BpfHashMap<MapData, u64, MemcgReclaimStats>,
    pub charge_failures: BpfHashMap<MapData, ChargeFailureKey, ChargeFailureState>,
}

impl Maps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, MapError> {
        Ok(Self {
            events: take_map(ebpf, "EVENTS")?,
            drops: take_map(ebpf, "DROPS")?,
            reclaim_stats: take_map(ebpf, "RECLAIM_STATS")?,
            charge_failures: take_map(ebpf, "CHARGE_FAILURES")?,
        })
    }
}
