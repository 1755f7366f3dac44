//! Kernels this machine does not run, described in hand-made BTF.
use super::*;

/// Minimal BTF encoder, to describe kernels this machine does not run.
#[derive(Default)]
struct BtfBuilder {
    types: Vec<u8>,
    strs: Vec<u8>,
    next_id: u32,
}

const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;

impl BtfBuilder {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            strs: vec![0],
            next_id: 1,
        }
    }
    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }
    fn words(&mut self, w: &[u32]) {
        for x in w {
            self.types.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// Appends a type; `extra` is its kind-specific trailer.
    fn ty(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kflag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let n = self.name(name);
        let info = ((kflag as u32) << 31) | (kind << 24) | vlen;
        self.words(&[n, info, size_or_type]);
        self.words(extra);
        self.next_id += 1;
        self.next_id - 1
    }
    fn int(&mut self, name: &str, size: u32) -> u32 {
        self.ty(name, INT, 0, false, size, &[size * 8])
    }
    fn ptr(&mut self, to: u32) -> u32 {
        self.ty("", PTR, 0, false, to, &[])
    }
    fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        self.ty("", ARRAY, 0, false, 0, &[elem, index, n])
    }
    /// `members`: (name, type, byte offset); a `Some(bits)` bitfield sets kind_flag.
    fn record(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, Option<u32>)],
    ) -> u32 {
        let kflag = members.iter().any(|m| m.3.is_some());
        let mut extra = Vec::new();
        for &(n, t, off, bits) in members {
            let n = self.name(n);
            let off = (off * 8) | bits.map_or(0, |b| b << 24);
            extra.extend([n, t, off]);
        }
        self.ty(name, kind, members.len() as u32, kflag, size, &extra)
    }
    fn enm(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
        let mut extra = Vec::new();
        for &(n, v) in values {
            let n = self.name(n);
            extra.extend([n, v]);
        }
        self.ty(name, ENUM, values.len() as u32, false, 4, &extra)
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9f_u16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let tl = self.types.len() as u32;
        for w in [24, 0, tl, tl, self.strs.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}

/// A 5.10-like kernel: `struct mm_rss_stat`, `union kernfs_node_id`, only
/// `memsw`, no `pgtables_bytes`, `mark_victim(int pid)`; plus nesting,
/// a forward declaration and a bitfield.
fn old_kernel_btf() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let short = b.int("short int", 2);
    let long = b.int("long int", 8);
    let u32_ = b.int("unsigned int", 4);
    let u64_ = b.int("long long unsigned int", 8);
    let char_ = b.int("char", 1);
    let void_ptr = b.ptr(0);
    let pid_t = b.ty("pid_t", TYPEDEF, 0, false, int, &[]);
    let comm = b.array(char_, int, 16);
    let atomic = b.record(STRUCT, "", 8, &[("counter", long, 0, None)]);
    let atomic_long_t = b.ty("atomic_long_t", TYPEDEF, 0, false, atomic, &[]);
    let _fwd = b.ty("task_struct", FWD, 0, false, 0, &[]);
    let ids = b.record(
        STRUCT,
        "",
        8,
        &[("pid", pid_t, 0, None), ("tgid", pid_t, 4, None)],
    );
    let inner_union = b.record(UNION, "", 8, &[("", ids, 0, None), ("both", u64_, 0, None)]);
    b.record(
        STRUCT,
        "task_struct",
        3000,
        &[
            ("state", long, 0, None),
            ("", inner_union, 1000, None),
            ("comm", comm, 1500, None),
            ("signal", void_ptr, 1600, None),
            ("mm", void_ptr, 1608, None),
            ("cgroups", void_ptr, 1616, None),
            ("flag", u32_, 1624, Some(1)),
        ],
    );
    b.record(
        STRUCT,
        "signal_struct",
        1000,
        &[("oom_score_adj", short, 700, None)],
    );
    let counts = b.array(atomic_long_t, int, 4);
    let rss = b.record(STRUCT, "mm_rss_stat", 32, &[("count", counts, 0, None)]);
    b.record(
        STRUCT,
        "mm_struct",
        1000,
        &[("total_vm", long, 200, None), ("rss_stat", rss, 800, None)],
    );
    let subsys = b.array(void_ptr, int, 14);
    b.record(STRUCT, "css_set", 200, &[("subsys", subsys, 0, None)]);
    let css = b.record(
        STRUCT,
        "cgroup_subsys_state",
        0xe0,
        &[
            ("cgroup", void_ptr, 0, None),
            ("parent", void_ptr, 0xd0, None),
        ],
    );
    b.record(STRUCT, "cgroup", 0x200, &[("kn", void_ptr, 0x100, None)]);
    let ino = b.record(
        STRUCT,
        "",
        8,
        &[("ino", u32_, 0, None), ("generation", u32_, 4, None)],
    );
    let kid = b.record(
        UNION,
        "kernfs_node_id",
        8,
        &[("", ino, 0, None), ("id", u64_, 0, None)],
    );
    b.record(
        STRUCT,
        "kernfs_node",
        0x80,
        &[("parent", void_ptr, 8, None), ("id", kid, 0x50, None)],
    );
    let pc = b.record(
        STRUCT,
        "page_counter",
        0x80,
        &[("usage", atomic_long_t, 0, None), ("max", long, 0x40, None)],
    );
    b.record(
        STRUCT,
        "mem_cgroup",
        0x400,
        &[
            ("css", css, 0, None),
            ("memory", pc, 0x100, None),
            ("memsw", pc, 0x200, None),
        ],
    );
    b.enm(
        "cgroup_subsys_id",
        &[
            ("cpuset_cgrp_id", 0),
            ("memory_cgrp_id", 4),
            ("CGROUP_SUBSYS_COUNT", 14),
        ],
    );
    b.enm(
        "",
        &[
            ("MM_FILEPAGES", 0),
            ("MM_ANONPAGES", 1),
            ("MM_SWAPENTS", 2),
            ("MM_SHMEMPAGES", 3),
            ("NR_MM_COUNTERS", 4),
        ],
    );
    // typedef void (*btf_trace_mark_victim)(void *, int pid);
    let n_data = b.name("__data");
    let n_pid = b.name("pid");
    let proto = b.ty("", FUNC_PROTO, 2, false, 0, &[n_data, void_ptr, n_pid, int]);
    let proto_ptr = b.ptr(proto);
    b.ty("btf_trace_mark_victim", TYPEDEF, 0, false, proto_ptr, &[]);
    let kproto = b.ty("", FUNC_PROTO, 0, false, 0, &[]);
    b.ty("oom_kill_process", FUNC, 0, false, kproto, &[]);
    b.bytes()
}

#[test]
fn old_kernel_layout_from_synthetic_btf() {
    let k = KernelBtf::from_bytes(&old_kernel_btf(), Path::new("synthetic")).unwrap();
    let r = k.resolve_offsets().unwrap();
    let o = r.offsets;
    // The synthetic kernel has no cred/oom_control types and no
    // task_struct.flags/real_cred or signal_struct.oom_mm members: those
    // are listed as unavailable, the rest resolves.
    assert_eq!(
        r.unavailable,
        [
            "mm_struct.pgtables_bytes",
            "kernfs_node.id",
            "task_struct.flags",
            "task_struct.real_cred",
            "cred.uid",
            "signal_struct.oom_mm",
            "oom_control.memcg",
            "oom_control.gfp_mask",
            "oom_control.order",
            "oom_control.totalpages",
            "oom_control.chosen",
            "oom_control.chosen_points",
            "oom_control.constraint",
            "task_struct.memcg_in_oom",
            "task_struct.memcg_oom_gfp_mask",
            "task_struct.memcg_oom_order",
            "task_struct.pending.signal",
            "task_struct.reclaim_state",
            "scan_control.reclaim_state",
            "scan_control.nr_to_reclaim",
        ]
    );
    assert_eq!(
        (o.mm_pgtables_bytes, o.kernfs_node_id),
        (UNAVAILABLE, UNAVAILABLE)
    );
    // Offsets through an anonymous union holding an anonymous struct.
    assert_eq!((o.task_pid, o.task_tgid, o.task_comm), (1000, 1004, 1500));
    assert_eq!(
        (o.task_signal, o.task_mm, o.task_cgroups),
        (1600, 1608, 1616)
    );
    assert_eq!(o.signal_oom_score_adj, 700);
    // Pre-6.2 rss counters: atomic_long_t array in struct mm_rss_stat.
    assert_eq!(
        (o.mm_rss_stat, o.mm_rss_stride, o.mm_rss_value),
        (800, 8, 0)
    );
    assert_eq!(o.mm_total_vm, 200);
    assert_eq!(
        (o.css_set_subsys, o.css_cgroup, o.css_parent, o.cgroup_kn),
        (0, 0, 0xd0, 0x100)
    );
    // No `swap`: falls back to `memsw`.
    assert_eq!(
        (o.memcg_css, o.memcg_memory, o.memcg_swap),
        (0, 0x100, 0x200)
    );
    assert_eq!((o.page_counter_usage, o.page_counter_max), (0, 0x40));
    assert_eq!(o.memory_cgrp_id, 4);
    assert_eq!(
        (
            o.mm_filepages,
            o.mm_anonpages,
            o.mm_swapents,
            o.mm_shmempages
        ),
        (0, 1, 2, 3)
    );
    // Both names of a renamed field.
    assert_eq!(
        k.member("kernfs_node", &["__parent", "parent"])
            .unwrap()
            .unwrap()
            .offset,
        8
    );
    let flag = k.member("task_struct", &["flag"]).unwrap();
    assert!(
        matches!(flag, Err(Miss::Unusable(ref w)) if w.contains("bitfield")),
        "{flag:?}"
    );
    assert_eq!(
        k.raw_tracepoint_first_arg_is_task("mark_victim"),
        Some(false)
    );
    assert_eq!(k.raw_tracepoint_first_arg_is_task("wake_reaper"), None);
    assert!(k.func_exists("oom_kill_process"));
    assert!(!k.func_exists("task_struct"));
}

#[test]
fn too_small_css_set_subsys_is_rejected() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let p = b.ptr(0);
    let subsys = b.array(p, int, 3);
    b.record(STRUCT, "css_set", 24, &[("subsys", subsys, 0, None)]);
    b.enm("cgroup_subsys_id", &[("memory_cgrp_id", 4)]);
    let k = KernelBtf::from_bytes(&b.bytes(), Path::new("synthetic")).unwrap();
    let r = k.resolve_offsets().unwrap();
    assert_eq!(r.offsets.memory_cgrp_id, 4);
    assert_eq!(r.offsets.css_set_subsys, UNAVAILABLE);
    assert!(r.unavailable.contains(&"css_set.subsys"));
    assert!(r.unavailable.contains(&"task_struct.pid"));
}

#[test]
fn dangling_type_id_is_an_error() {
    let mut b = BtfBuilder::new();
    b.record(STRUCT, "task_struct", 8, &[("pid", 999, 0, None)]);
    let k = KernelBtf::from_bytes(&b.bytes(), Path::new("synthetic")).unwrap();
    let err = k.resolve_offsets().unwrap_err();
    assert!(matches!(err, BtfError::Corrupt { .. }), "{err}");
    // A typedef loop must not hang or overflow the stack.
    let mut b = BtfBuilder::new();
    b.ty("loop_t", TYPEDEF, 0, false, 2, &[]);
    b.ty("loop2_t", TYPEDEF, 0, false, 1, &[]);
    b.record(STRUCT, "task_struct", 8, &[("pid", 1, 0, None)]);
    let k = KernelBtf::from_bytes(&b.bytes(), Path::new("synthetic")).unwrap();
    assert!(matches!(k.resolve_offsets(), Err(BtfError::Corrupt { .. })));
}
