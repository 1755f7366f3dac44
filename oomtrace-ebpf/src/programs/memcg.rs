//! Walking a task's memory cgroup and its ancestors through BTF offsets.
use oomtrace_ebpf::{MEMCG_CHAIN_MAX, MemcgLevel, UNAVAILABLE};

use super::common::{CGROUP_FILTER, CONFIG, OFFSETS, global, read_or_zero};

/// Deepest hierarchy the scope check climbs (kubepods trees are ~5 levels).
const MAX_SCOPE_DEPTH: usize = 16;

/// `task->cgroups->subsys[memory_cgrp_id]`: the task's memcg css.
#[inline(always)]
pub fn task_memcg_css(task: u64) -> Option<u64> {
    let subsys = global!(OFFSETS.css_set_subsys);
    let memory_id = global!(OFFSETS.memory_cgrp_id);
    if subsys == UNAVAILABLE || memory_id == UNAVAILABLE {
        return None;
    }
    let cgroups: u64 = read_or_zero(task, global!(OFFSETS.task_cgroups));
    let css: u64 = read_or_zero(cgroups, subsys + memory_id * 8);
    (cgroups != 0 && css != 0).then_some(css)
}

/// `css->cgroup->kn->id`: the cgroup id, which is the cgroup directory's inode number.
#[inline(always)]
pub fn css_cgroup_id(css: u64) -> Option<u64> {
    let cgroup: u64 = read_or_zero(css, global!(OFFSETS.css_cgroup));
    let kn: u64 = read_or_zero(cgroup, global!(OFFSETS.cgroup_kn));
    let id: u64 = read_or_zero(kn, global!(OFFSETS.kernfs_node_id));
    (id != 0).then_some(id)
}

#[inline(always)]
fn css_parent(css: u64) -> u64 {
    read_or_zero(css, global!(OFFSETS.css_parent))
}

/// Whether `css` or one of its ancestors was named with `--cgroup` (always
/// true without a filter).
#[inline(always)]
pub fn in_scope(css: u64) -> bool {
    if global!(CONFIG.filter_enabled) == 0 {
        return true;
    }
    let mut css = css;
    for _ in 0..MAX_SCOPE_DEPTH {
        if css == 0 {
            return false;
        }
        let id = css_cgroup_id(css).unwrap_or(0);
        if unsafe { CGROUP_FILTER.get(id) }.is_some() {
            return true;
        }
        css = css_parent(css);
    }
    false
}

/// Fills `levels` from `css` upwards (own memcg first) with each memcg's page
/// counters; returns how many levels were filled. Unfilled levels are zeroed.
#[inline(always)]
pub fn fill_chain(css: u64, levels: *mut [MemcgLevel; MEMCG_CHAIN_MAX]) -> u32 {
    let memcg_css = global!(OFFSETS.memcg_css);
    let memory = global!(OFFSETS.memcg_memory);
    let swap = global!(OFFSETS.memcg_swap);
    let usage = global!(OFFSETS.page_counter_usage);
    let max = global!(OFFSETS.page_counter_max);
    let mut css = css;
    let mut depth = 0u32;
    for i in 0..MEMCG_CHAIN_MAX {
        let level = unsafe { &mut (*levels)[i] };
        *level = MemcgLevel::default();
        if css == 0 || memcg_css == UNAVAILABLE {
            continue;
        }
        let memcg = css - memcg_css as u64;
        level.cgroup_id = css_cgroup_id(css).unwrap_or(0);
        level.usage_pages = page_counter_field(memcg, memory, usage);
        level.max_pages = page_counter_field(memcg, memory, max);
        level.swap_usage_pages = page_counter_field(memcg, swap, usage);
        level.swap_max_pages = page_counter_field(memcg, swap, max);
        depth += 1;
        css = css_parent(css);
    }
    depth
}

/// `memcg->counter.field` (pages), 0 when either offset is unavailable.
#[inline(always)]
pub fn page_counter_field(memcg: u64, counter: u32, field: u32) -> u64 {
    if counter == UNAVAILABLE || field == UNAVAILABLE {
        return 0;
    }
    read_or_zero(memcg, counter + field)
}
