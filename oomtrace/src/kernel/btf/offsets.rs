//! Every [`KernelOffsets`] field, resolved one struct group at a time. The
//! groups run in a fixed order, which is the order of
//! [`ResolvedOffsets::unavailable`] in the start record.
use oomtrace_ebpf::{KernelOffsets, UNAVAILABLE};

use super::{BtfError, KernelBtf, Miss, ResolvedOffsets};

impl ResolvedOffsets {
    /// The offset `lookup` found, or [`UNAVAILABLE`] with `name` listed.
    pub(super) fn record(&mut self, name: &'static str, lookup: Result<u32, Miss>) -> u32 {
        match lookup {
            Ok(offset) => return offset,
            Err(Miss::Absent) => log::debug!("BTF: {name} is absent"),
            Err(Miss::Unusable(why)) => log::debug!("BTF: {name} is unusable: {why}"),
        }
        self.unavailable.push(name);
        UNAVAILABLE
    }
}

impl KernelBtf {
    /// Resolves every [`KernelOffsets`] field. Fields this kernel lacks are
    /// left [`UNAVAILABLE`] and listed; an `Err` means the BTF itself is
    /// broken (a type id that points nowhere, a reference loop).
    pub fn resolve_offsets(&self) -> Result<ResolvedOffsets, BtfError> {
        let mut r = ResolvedOffsets {
            offsets: KernelOffsets::UNRESOLVED,
            unavailable: Vec::new(),
        };
        self.task_identity(&mut r)?;
        self.mm_usage(&mut r)?;
        self.cgroup_tree(&mut r)?;
        self.memcg_counters(&mut r)?;
        self.mm_counter_indexes(&mut r)?;
        self.oom_task_credentials(&mut r)?;
        self.oom_control(&mut r)?;
        self.memcg_v1_oom_wait(&mut r)?;
        self.pending_signals(&mut r)?;
        self.reclaim_target(&mut r)?;
        Ok(r)
    }

    /// task_struct and signal_struct: who a task is and where its memory,
    /// cgroups and OOM score live.
    fn task_identity(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        const TASK: &str = "task_struct";
        let pid = self.int_field(TASK, "pid", &[4])?;
        r.offsets.task_pid = r.record("task_struct.pid", pid);
        let tgid = self.int_field(TASK, "tgid", &[4])?;
        r.offsets.task_tgid = r.record("task_struct.tgid", tgid);
        let comm = self.comm_field()?;
        r.offsets.task_comm = r.record("task_struct.comm", comm);
        let signal = self.ptr_field(TASK, "signal")?;
        r.offsets.task_signal = r.record("task_struct.signal", signal);
        let mm = self.ptr_field(TASK, "mm")?;
        r.offsets.task_mm = r.record("task_struct.mm", mm);
        let cgroups = self.ptr_field(TASK, "cgroups")?;
        r.offsets.task_cgroups = r.record("task_struct.cgroups", cgroups);
        let score_adj = self.int_field("signal_struct", "oom_score_adj", &[2])?;
        r.offsets.signal_oom_score_adj = r.record("signal_struct.oom_score_adj", score_adj);
        Ok(())
    }

    /// mm_struct: the RSS counters, page tables and virtual size the
    /// kernel's report prints per task.
    fn mm_usage(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        match self.rss_stat()? {
            Ok(rss) => {
                r.offsets.mm_rss_stat = rss.offset;
                r.offsets.mm_rss_stride = rss.stride;
                r.offsets.mm_rss_value = rss.value;
            }
            // One layout or none: the three are listed together.
            Err(miss) => {
                r.offsets.mm_rss_stat = r.record("mm_struct.rss_stat", Err(miss.clone()));
                r.offsets.mm_rss_stride = r.record("mm_struct.rss_stat stride", Err(miss.clone()));
                r.offsets.mm_rss_value = r.record("mm_struct.rss_stat count", Err(miss));
            }
        }
        // atomic_long_t: a typedef of struct { s64 counter; }.
        let pgtables = self.sized_field("mm_struct", &["pgtables_bytes"], 8)?;
        r.offsets.mm_pgtables_bytes = r.record("mm_struct.pgtables_bytes", pgtables);
        let total_vm = self.int_field("mm_struct", "total_vm", &[8])?;
        r.offsets.mm_total_vm = r.record("mm_struct.total_vm", total_vm);
        Ok(())
    }

    /// From a task's css_set to its memory cgroup, up the hierarchy, and to
    /// the cgroup id (the kernfs node id).
    fn cgroup_tree(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        let memory_cgrp_id = self.enum_value(Some("cgroup_subsys_id"), "memory_cgrp_id")?;
        r.offsets.memory_cgrp_id = r.record("enum memory_cgrp_id", memory_cgrp_id.clone());
        let subsys = self.css_set_subsys(memory_cgrp_id.ok())?;
        r.offsets.css_set_subsys = r.record("css_set.subsys", subsys);
        let cgroup = self.ptr_field("cgroup_subsys_state", "cgroup")?;
        r.offsets.css_cgroup = r.record("cgroup_subsys_state.cgroup", cgroup);
        let parent = self.ptr_field("cgroup_subsys_state", "parent")?;
        r.offsets.css_parent = r.record("cgroup_subsys_state.parent", parent);
        let kn = self.ptr_field("cgroup", "kn")?;
        r.offsets.cgroup_kn = r.record("cgroup.kn", kn);
        // Before 5.5 `id` is `union kernfs_node_id`: not a plain 64-bit cgroup id.
        let id = self.int_field("kernfs_node", "id", &[8])?;
        r.offsets.kernfs_node_id = r.record("kernfs_node.id", id);
        Ok(())
    }

    /// mem_cgroup and its page_counters: a memcg's usage and limit, memory
    /// and swap (`memsw` on cgroup v1-only kernels).
    fn memcg_counters(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        const MEMCG: &str = "mem_cgroup";
        let css = self.struct_field(MEMCG, &["css"], "cgroup_subsys_state")?;
        r.offsets.memcg_css = r.record("mem_cgroup.css", css);
        let memory = self.struct_field(MEMCG, &["memory"], "page_counter")?;
        r.offsets.memcg_memory = r.record("mem_cgroup.memory", memory);
        let swap = self.struct_field(MEMCG, &["swap", "memsw"], "page_counter")?;
        r.offsets.memcg_swap = r.record("mem_cgroup.swap", swap);
        let usage = self.sized_field("page_counter", &["usage"], 8)?;
        r.offsets.page_counter_usage = r.record("page_counter.usage", usage);
        let max = self.sized_field("page_counter", &["max"], 8)?;
        r.offsets.page_counter_max = r.record("page_counter.max", max);
        Ok(())
    }

    /// The indexes of the RSS counters: an anonymous enum on most kernels,
    /// so found by constant.
    fn mm_counter_indexes(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        let [file, anon, swap, shmem] = self.mm_counters()?;
        r.offsets.mm_filepages = r.record("enum MM_FILEPAGES", file);
        r.offsets.mm_anonpages = r.record("enum MM_ANONPAGES", anon);
        r.offsets.mm_swapents = r.record("enum MM_SWAPENTS", swap);
        r.offsets.mm_shmempages = r.record("enum MM_SHMEMPAGES", shmem);
        Ok(())
    }

    /// What the OOM path (fentry/kprobe backends) reads of a candidate
    /// beyond its identity: flags, owner uid, whether its mm is the OOM's.
    fn oom_task_credentials(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        let flags = self.int_field("task_struct", "flags", &[4])?;
        r.offsets.task_flags = r.record("task_struct.flags", flags);
        let real_cred = self.ptr_field("task_struct", "real_cred")?;
        r.offsets.task_real_cred = r.record("task_struct.real_cred", real_cred);
        // kuid_t: struct { uid_t val; }.
        let uid = self.sized_field("cred", &["uid"], 4)?;
        r.offsets.cred_uid = r.record("cred.uid", uid);
        let oom_mm = self.ptr_field("signal_struct", "oom_mm")?;
        r.offsets.signal_oom_mm = r.record("signal_struct.oom_mm", oom_mm);
        Ok(())
    }

    /// oom_control: the OOM killer's own view of one invocation.
    fn oom_control(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        const OC: &str = "oom_control";
        let memcg = self.ptr_field(OC, "memcg")?;
        r.offsets.oc_memcg = r.record("oom_control.memcg", memcg);
        let gfp_mask = self.int_field(OC, "gfp_mask", &[4])?;
        r.offsets.oc_gfp_mask = r.record("oom_control.gfp_mask", gfp_mask);
        let order = self.int_field(OC, "order", &[4])?;
        r.offsets.oc_order = r.record("oom_control.order", order);
        let totalpages = self.int_field(OC, "totalpages", &[8])?;
        r.offsets.oc_totalpages = r.record("oom_control.totalpages", totalpages);
        let chosen = self.ptr_field(OC, "chosen")?;
        r.offsets.oc_chosen = r.record("oom_control.chosen", chosen);
        let points = self.int_field(OC, "chosen_points", &[8])?;
        r.offsets.oc_chosen_points = r.record("oom_control.chosen_points", points);
        let constraint = self.int_field(OC, "constraint", &[4])?;
        r.offsets.oc_constraint = r.record("oom_control.constraint", constraint);
        Ok(())
    }

    /// cgroup v1 OOM-disabled waits (CONFIG_MEMCG_V1; gone from kernels
    /// without it, and the gfp/order pair left once the wait stopped
    /// invoking the killer).
    fn memcg_v1_oom_wait(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        const TASK: &str = "task_struct";
        let in_oom = self.ptr_field(TASK, "memcg_in_oom")?;
        r.offsets.task_memcg_in_oom = r.record("task_struct.memcg_in_oom", in_oom);
        let gfp_mask = self.int_field(TASK, "memcg_oom_gfp_mask", &[4])?;
        r.offsets.task_memcg_oom_gfp_mask = r.record("task_struct.memcg_oom_gfp_mask", gfp_mask);
        let order = self.int_field(TASK, "memcg_oom_order", &[4])?;
        r.offsets.task_memcg_oom_order = r.record("task_struct.memcg_oom_order", order);
        Ok(())
    }

    /// `task_struct.pending.signal`, for `fatal_signal_pending()` at the
    /// page-fault OOM path.
    fn pending_signals(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        let pending = self.struct_field("task_struct", &["pending"], "sigpending")?;
        let signal = self.sized_field("sigpending", &["signal"], 8)?;
        let sum = pending.and_then(|p| signal.map(|s| p + s));
        r.offsets.task_pending_signal = r.record("task_struct.pending.signal", sum);
        Ok(())
    }

    /// The target of the memcg reclaim pass in progress: `current->reclaim_state`
    /// points into its `struct scan_control` (private to mm/vmscan.c, in BTF),
    /// whose `nr_to_reclaim` says how much the pass aims for.
    fn reclaim_target(&self, r: &mut ResolvedOffsets) -> Result<(), BtfError> {
        const SC: &str = "scan_control";
        let in_task = self.ptr_field("task_struct", "reclaim_state")?;
        r.offsets.task_reclaim_state = r.record("task_struct.reclaim_state", in_task);
        let state = self.struct_field(SC, &["reclaim_state"], "reclaim_state")?;
        r.offsets.scan_control_reclaim_state = r.record("scan_control.reclaim_state", state);
        let target = self.int_field(SC, "nr_to_reclaim", &[8])?;
        r.offsets.scan_control_nr_to_reclaim = r.record("scan_control.nr_to_reclaim", target);
        Ok(())
    }
}
