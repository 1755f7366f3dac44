//! The resolver on this machine's BTF, cross-checked against pahole, and on
//! corrupt files. A machine without kernel BTF or pahole fails these tests
//! with the reason: oomtrace needs the first, `cargo xtask setup` installs
//! the second.
use std::io::Write;
use std::process::Command;

use btf_rs::{BtfType, Type};
use oomtrace_ebpf::{COMM_LEN, UNAVAILABLE};

use super::*;

mod synthetic;

fn vmlinux() -> KernelBtf {
    let path = Path::new(VMLINUX_BTF);
    assert!(
        path.exists(),
        "needs kernel BTF: {VMLINUX_BTF} is absent (kernel built without CONFIG_DEBUG_INFO_BTF)"
    );
    KernelBtf::open(path).expect("parse vmlinux BTF")
}

fn kernel_version() -> (u32, u32) {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn offset_of(k: &KernelBtf, st: &str, names: &[&str]) -> MemberLoc {
    k.member(st, names)
        .unwrap()
        .unwrap_or_else(|m| panic!("{st}.{names:?}: {m:?}"))
}

#[test]
fn resolves_every_field_on_this_kernel() {
    let k = vmlinux();
    let r = k.resolve_offsets().unwrap();
    eprintln!("{:#?}\nunavailable: {:?}", r.offsets, r.unavailable);
    // Every field exists on 6.2+ kernels (pgtables_bytes needs CONFIG_MMU,
    // kernfs_node.id a 64-bit id since 5.5).
    // task_struct.memcg_in_oom exists only with the cgroup-v1 memory
    // controller (CONFIG_MEMCG_V1 on 6.12+), mounted on this machine; its
    // gfp/order companions left once the v1 wait stopped invoking the killer.
    let v1_memcg = std::path::Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists();
    let missing: Vec<_> = r
        .unavailable
        .iter()
        .filter(|f| v1_memcg || **f != "task_struct.memcg_in_oom")
        .filter(|f| {
            ![
                "task_struct.memcg_oom_gfp_mask",
                "task_struct.memcg_oom_order",
            ]
            .contains(f)
        })
        .collect();
    if kernel_version() >= (6, 2) {
        assert!(missing.is_empty(), "unavailable: {missing:?}");
    }
    let o = r.offsets;
    let all = [
        o.task_pid,
        o.task_tgid,
        o.task_comm,
        o.task_signal,
        o.task_mm,
        o.task_cgroups,
        o.signal_oom_score_adj,
        o.mm_rss_stat,
        o.mm_rss_stride,
        o.mm_rss_value,
        o.mm_pgtables_bytes,
        o.mm_total_vm,
        o.css_set_subsys,
        o.css_cgroup,
        o.css_parent,
        o.cgroup_kn,
        o.kernfs_node_id,
        o.memcg_css,
        o.memcg_memory,
        o.memcg_swap,
        o.page_counter_usage,
        o.page_counter_max,
        o.memory_cgrp_id,
        o.mm_filepages,
        o.mm_anonpages,
        o.mm_swapents,
        o.mm_shmempages,
        o.task_flags,
        o.task_real_cred,
        o.cred_uid,
        o.signal_oom_mm,
        o.oc_memcg,
        o.oc_gfp_mask,
        o.oc_order,
        o.oc_totalpages,
        o.oc_chosen,
        o.oc_chosen_points,
        o.oc_constraint,
        o.task_memcg_in_oom,
        o.task_memcg_oom_gfp_mask,
        o.task_memcg_oom_order,
        o.task_pending_signal,
        o.task_reclaim_state,
        o.scan_control_reclaim_state,
        o.scan_control_nr_to_reclaim,
    ];
    assert_eq!(
        all.iter().filter(|&&v| v == UNAVAILABLE).count(),
        r.unavailable.len(),
        "unavailable list and UNAVAILABLE slots disagree"
    );
}

/// This machine's BTF and the offsets resolved from it.
fn resolved() -> (KernelBtf, KernelOffsets) {
    let k = vmlinux();
    let offsets = k.resolve_offsets().unwrap().offsets;
    (k, offsets)
}

#[test]
fn task_offsets_are_consistent() {
    let (k, o) = resolved();
    // task_struct: `pid_t pid; pid_t tgid;` are adjacent; all pointers aligned.
    assert_eq!(o.task_tgid, o.task_pid + 4);
    let ts = k.find_struct("task_struct").unwrap().unwrap().size() as u32;
    for (name, off) in [
        ("signal", o.task_signal),
        ("mm", o.task_mm),
        ("cgroups", o.task_cgroups),
    ] {
        assert_eq!(off % 8, 0, "task_struct.{name} misaligned");
        assert!(off + 8 <= ts, "task_struct.{name} outside the struct");
    }
    assert!(o.task_comm + COMM_LEN as u32 <= ts);
    let comm = offset_of(&k, "task_struct", &["comm"]);
    let Type::Array(arr) = k.strip(comm.type_id).unwrap() else {
        panic!("comm not an array")
    };
    assert_eq!(arr.len(), COMM_LEN);
    match k.strip(arr.get_type_id().unwrap()).unwrap() {
        Type::Int(i) => assert_eq!(i.size(), 1),
        t => panic!("comm element is {}", t.name()),
    }

    // signal_struct: oom_score_adj is a short followed by oom_score_adj_min.
    assert_eq!(
        offset_of(&k, "signal_struct", &["oom_score_adj_min"]).offset,
        o.signal_oom_score_adj + 2
    );
}

#[test]
fn mm_offsets_are_consistent() {
    let (k, o) = resolved();
    // mm_struct rss counters.
    let ms = k.find_struct("mm_struct").unwrap().unwrap().size() as u32;
    let counters = [
        o.mm_filepages,
        o.mm_anonpages,
        o.mm_swapents,
        o.mm_shmempages,
    ];
    let mut sorted = counters;
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [0, 1, 2, 3],
        "MM_* counters are 0..=3 in some order"
    );
    assert!(o.mm_rss_stat + 4 * o.mm_rss_stride <= ms);
    if kernel_version() >= (6, 2) {
        let pcc = k.find_struct("percpu_counter").unwrap().unwrap();
        assert_eq!(o.mm_rss_stride as usize, pcc.size());
        assert_eq!(
            o.mm_rss_value,
            offset_of(&k, "percpu_counter", &["count"]).offset
        );
        let rss = offset_of(&k, "mm_struct", &["rss_stat"]);
        let Type::Array(arr) = k.strip(rss.type_id).unwrap() else {
            panic!()
        };
        assert!(arr.len() > *sorted.last().unwrap() as usize);
        assert_eq!(
            k.enum_value(None, "NR_MM_COUNTERS").unwrap(),
            Ok(arr.len() as u32)
        );
    }
    assert_eq!(o.mm_pgtables_bytes % 8, 0);
    assert_eq!(o.mm_total_vm % 8, 0);
}

#[test]
fn cgroup_offsets_are_consistent() {
    let (k, o) = resolved();
    // cgroups
    let subsys = offset_of(&k, "css_set", &["subsys"]);
    let Type::Array(arr) = k.strip(subsys.type_id).unwrap() else {
        panic!("subsys not an array")
    };
    assert!(arr.len() > o.memory_cgrp_id as usize);
    assert_eq!(
        k.enum_value(Some("cgroup_subsys_id"), "CGROUP_SUBSYS_COUNT")
            .unwrap(),
        Ok(arr.len() as u32)
    );
    assert_eq!(o.css_cgroup % 8, 0);
    assert_eq!(o.css_parent % 8, 0);
    assert_eq!(o.kernfs_node_id % 8, 0);
}

#[test]
fn memcg_offsets_are_consistent() {
    let (k, o) = resolved();
    // memcg: css comes first; swap and memsw share a union.
    assert_eq!(o.memcg_css, 0);
    let pc = k.find_struct("page_counter").unwrap().unwrap().size() as u32;
    assert!(
        o.memcg_memory
            >= o.memcg_css
                + k.find_struct("cgroup_subsys_state")
                    .unwrap()
                    .unwrap()
                    .size() as u32
    );
    assert!(o.memcg_swap >= o.memcg_memory + pc);
    if let Ok(memsw) = k.member("mem_cgroup", &["memsw"]).unwrap() {
        assert_eq!(memsw.offset, o.memcg_swap);
    }
    assert_eq!(o.page_counter_usage, 0);
    assert!(o.page_counter_max + 8 <= pc);
}

#[test]
fn alternative_names_and_missing_fields() {
    let k = vmlinux();
    // 6.15 renamed kernfs_node.parent to __parent: either name resolves.
    let parent = k.ptr_field("kernfs_node", "__parent").unwrap();
    let either = k.member("kernfs_node", &["parent", "__parent"]).unwrap();
    assert!(either.is_ok());
    if let Ok(p) = parent {
        assert_eq!(either.unwrap().offset, p);
    }
    assert_eq!(
        k.member("task_struct", &["no_such_field"]).unwrap(),
        Err(Miss::Absent)
    );
    assert_eq!(
        k.member("no_such_struct_xyz", &["pid"]).unwrap(),
        Err(Miss::Absent)
    );
    // mm_struct fields sit in an anonymous struct on 6.18: found through it.
    assert!(k.member("mm_struct", &["total_vm"]).unwrap().is_ok());
    // Wrong shapes are rejected, not guessed.
    assert!(matches!(
        k.ptr_field("task_struct", "pid").unwrap(),
        Err(Miss::Unusable(_))
    ));
    assert!(matches!(
        k.int_field("task_struct", "pid", &[8]).unwrap(),
        Err(Miss::Unusable(_))
    ));
    assert_eq!(
        k.enum_value(None, "NO_SUCH_ENUM_CONSTANT_XYZ").unwrap(),
        Err(Miss::Absent)
    );
}

#[test]
fn bitfields_are_rejected() {
    let k = vmlinux();
    // task_struct has had the `sched_reset_on_fork` bitfield for ages.
    let r = k.member("task_struct", &["sched_reset_on_fork"]).unwrap();
    assert!(
        matches!(r, Err(Miss::Unusable(ref why)) if why.contains("bitfield")),
        "{r:?}"
    );
}

#[test]
fn unavailable_field_is_listed() {
    let k = vmlinux();
    // The code path of resolve_offsets, on a field and a struct no kernel has.
    let mut r = ResolvedOffsets {
        offsets: KernelOffsets::UNRESOLVED,
        unavailable: Vec::new(),
    };
    let a = r.record(
        "task_struct.bogus",
        k.int_field("task_struct", "bogus", &[4]).unwrap(),
    );
    let b = r.record(
        "bogus_struct.pid",
        k.ptr_field("bogus_struct", "pid").unwrap(),
    );
    assert_eq!((a, b), (UNAVAILABLE, UNAVAILABLE));
    assert_eq!(r.unavailable, ["task_struct.bogus", "bogus_struct.pid"]);
}

#[test]
fn raw_tracepoint_and_func_queries() {
    let k = vmlinux();
    assert!(k.func_exists("__oom_kill_process") || k.func_exists("oom_kill_process"));
    assert!(!k.func_exists("no_such_function_xyz"));
    assert!(!k.func_exists("task_struct"), "a struct is not a FUNC");
    if kernel_version() >= (6, 8) {
        // mark_victim(struct task_struct *, uid_t) since 6.8.
        assert_eq!(
            k.raw_tracepoint_first_arg_is_task("mark_victim"),
            Some(true)
        );
    }
    // sched_process_exit(struct task_struct *p[, bool group_dead]).
    assert_eq!(
        k.raw_tracepoint_first_arg_is_task("sched_process_exit"),
        Some(true)
    );
    // wake_reaper(int pid).
    assert_eq!(
        k.raw_tracepoint_first_arg_is_task("wake_reaper"),
        Some(false)
    );
    assert_eq!(k.raw_tracepoint_first_arg_is_task("no_such_tp_xyz"), None);
}

#[test]
fn missing_file_is_a_clear_error() {
    let path = Path::new("/nonexistent/oomtrace/vmlinux");
    let err = resolve_offsets(path).unwrap_err();
    assert!(matches!(err, BtfError::Read { .. }));
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/oomtrace/vmlinux"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("bad magic", vec![0u8; 64]),
    ];
    let real = std::fs::read(VMLINUX_BTF)
        .unwrap_or_else(|e| panic!("needs kernel BTF ({VMLINUX_BTF}): {e}"));
    cases.push(("truncated half", real[..real.len() / 2].to_vec()));
    cases.push(("truncated header", real[..10].to_vec()));
    // Valid header, garbage body: parse must fail cleanly.
    let mut garbage = real[..24].to_vec();
    garbage.extend((0..real.len() - 24).map(|i| (i as u32).wrapping_mul(2654435761) as u8));
    cases.push(("garbage body", garbage));
    for (what, bytes) in cases {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f.flush().unwrap();
        let res = std::panic::catch_unwind(|| resolve_offsets(f.path()));
        let res = res.unwrap_or_else(|_| panic!("{what}: panicked"));
        let err = match res {
            Err(e) => e,
            Ok(r) => panic!("{what}: parsed as BTF: {:?}", r.unavailable),
        };
        let msg = err.to_string();
        assert!(matches!(err, BtfError::Corrupt { .. }), "{what}: {msg}");
        assert!(
            msg.contains(&f.path().display().to_string()),
            "{what}: {msg}"
        );
        assert!(!msg.contains('\n'), "{what}: {msg}");
    }
}

/// Cross-check against pahole (an independent BTF reader; `cargo xtask
/// setup` installs it).
#[test]
fn offsets_match_pahole() {
    let k = vmlinux();
    let probe = Command::new("pahole").arg("--version").output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "needs pahole (run `cargo xtask setup`, or apt-get install dwarves): {probe:?}"
    );
    let o = k.resolve_offsets().unwrap().offsets;
    let checks: &[(&str, &str, u32)] = &[
        ("task_struct", "pid", o.task_pid),
        ("task_struct", "tgid", o.task_tgid),
        ("task_struct", "comm", o.task_comm),
        ("task_struct", "signal", o.task_signal),
        ("task_struct", "mm", o.task_mm),
        ("task_struct", "cgroups", o.task_cgroups),
        ("signal_struct", "oom_score_adj", o.signal_oom_score_adj),
        ("mm_struct", "rss_stat", o.mm_rss_stat),
        ("mm_struct", "pgtables_bytes", o.mm_pgtables_bytes),
        ("mm_struct", "total_vm", o.mm_total_vm),
        ("css_set", "subsys", o.css_set_subsys),
        ("cgroup_subsys_state", "cgroup", o.css_cgroup),
        ("cgroup_subsys_state", "parent", o.css_parent),
        ("cgroup", "kn", o.cgroup_kn),
        ("kernfs_node", "id", o.kernfs_node_id),
        ("mem_cgroup", "css", o.memcg_css),
        ("mem_cgroup", "memory", o.memcg_memory),
        ("mem_cgroup", "swap", o.memcg_swap),
        ("page_counter", "usage", o.page_counter_usage),
        ("page_counter", "max", o.page_counter_max),
        ("percpu_counter", "count", o.mm_rss_value),
        ("task_struct", "reclaim_state", o.task_reclaim_state),
        (
            "scan_control",
            "reclaim_state",
            o.scan_control_reclaim_state,
        ),
        (
            "scan_control",
            "nr_to_reclaim",
            o.scan_control_nr_to_reclaim,
        ),
    ];
    for &(st, field, ours) in checks {
        let out = Command::new("pahole")
            .args(["-C", st, VMLINUX_BTF])
            .output()
            .expect("run pahole");
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs = pahole_offset(&text, field);
        // A field we call unavailable, pahole must not find either.
        let ours = (ours != UNAVAILABLE).then_some(ours);
        assert_eq!(
            ours, theirs,
            "{st}.{field}: ours {ours:?}, pahole {theirs:?}:\n{text}"
        );
    }
    if kernel_version() >= (6, 2) {
        let out = Command::new("pahole")
            .args(["-C", "percpu_counter", VMLINUX_BTF])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let size = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("/* size: ")?
                    .split(',')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .expect("pahole size line");
        assert_eq!(o.mm_rss_stride, size);
    }
}

/// Offset of member `field` in `pahole -C` output: lines look like
/// `\tpid_t   pid;   /*  1264     4 */` (anonymous members are expanded
/// inline with absolute offsets).
fn pahole_offset(text: &str, field: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let (decl, comment) = line.split_once("/*")?;
        let decl = decl.trim_end().strip_suffix(';')?;
        let decl = decl.split(" __attribute__").next()?;
        let last = decl.rsplit([' ', '\t', '*']).next()?;
        let ident = last.split('[').next()?;
        if ident != field {
            return None;
        }
        comment.split_whitespace().next()?.parse().ok()
    })
}
