//! Kernel struct offsets from BTF.
//!
//! Rust eBPF programs cannot carry CO-RE relocations, so the collector reads
//! the running kernel's BTF (`/sys/kernel/btf/vmlinux`) once at start-up,
//! resolves the byte offsets the programs need and hands them over as the
//! `OFFSETS` global ([`KernelOffsets`]). A field the kernel does not have (or
//! has with a shape the programs cannot read) stays [`UNAVAILABLE`] and is
//! named in [`ResolvedOffsets::unavailable`]: offsets are never guessed.

use std::path::{Path, PathBuf};

use btf_rs::{Btf, BtfType, Struct, Type};
use oomtrace_ebpf::{COMM_LEN, KernelOffsets, UNAVAILABLE};

/// Default location of the running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How deep typedef/qualifier chains and anonymous member nesting are followed
/// before the BTF is considered corrupt (real kernels need a handful).
const MAX_DEPTH: usize = 32;

/// Errors opening or walking a BTF file.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file is missing or unreadable.
    #[error("cannot read kernel BTF {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid BTF (bad magic, truncated, dangling type ids...).
    #[error("corrupt kernel BTF {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// [`KernelOffsets`] plus the fields that could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedOffsets {
    pub offsets: KernelOffsets,
    /// Kernel-style names (`"mm_struct.pgtables_bytes"`, `"enum MM_SHMEMPAGES"`)
    /// of every [`KernelOffsets`] field left [`UNAVAILABLE`].
    pub unavailable: Vec<&'static str>,
}

/// Opens and parses `btf_path` and resolves every [`KernelOffsets`] field.
pub fn resolve_offsets(btf_path: &Path) -> Result<ResolvedOffsets, BtfError> {
    KernelBtf::open(btf_path)?.resolve_offsets()
}

/// A parsed kernel BTF, opened once and queried by the backends.
pub struct KernelBtf {
    btf: Btf,
    path: PathBuf,
}

/// Where a struct member sits: absolute byte offset from the start of the
/// outermost struct, and its type id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MemberLoc {
    offset: u32,
    type_id: u32,
}

/// Why a member lookup did not produce an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Miss {
    /// No such struct or member on this kernel.
    Absent,
    /// The member exists but has a shape the programs cannot use.
    Unusable(String),
}

type Lookup<T> = Result<Result<T, Miss>, BtfError>;

impl KernelBtf {
    /// Reads and parses a BTF file (e.g. [`VMLINUX_BTF`]).
    pub fn open(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses BTF bytes; `path` only names the origin in errors.
    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, BtfError> {
        let corrupt = |reason: String| BtfError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        check_header(bytes).map_err(corrupt)?;
        // btf-rs reports malformed input as errors; the catch is a last line of
        // defence so that a corrupt file can never take the collector down.
        let parsed = std::panic::catch_unwind(|| Btf::from_bytes(bytes))
            .map_err(|_| corrupt("BTF parser panicked".into()))?
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            btf: parsed,
            path: path.to_path_buf(),
        })
    }

    /// The file this BTF was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the kernel has a BTF `FUNC` named `name` (a traceable function).
    pub fn func_exists(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .map(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
            .unwrap_or(false)
    }

    /// For the raw tracepoint `tp`, whether its first argument is a
    /// `struct task_struct *` (6.x `mark_victim(struct task_struct *, uid_t)`)
    /// or something else (5.10 `mark_victim(int pid)`). Read from the typedef
    /// `btf_trace_<tp>`: a pointer to a `FUNC_PROTO` whose first parameter is
    /// the `void *` context and whose second is the tracepoint's first argument.
    /// `None` when the typedef is absent (or not of that shape).
    pub fn raw_tracepoint_first_arg_is_task(&self, tp: &str) -> Option<bool> {
        let name = format!("btf_trace_{tp}");
        let types = self.btf.resolve_types_by_name(&name).ok()?;
        let typedef = types.iter().find_map(|t| match t {
            Type::Typedef(td) => Some(td.clone()),
            _ => None,
        })?;
        let Type::Ptr(ptr) = self.btf.resolve_chained_type(&typedef).ok()? else {
            return None;
        };
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&ptr).ok()? else {
            return None;
        };
        let Some(arg) = proto.parameters.get(1) else {
            // A tracepoint without arguments: certainly not a task.
            return Some(false);
        };
        let arg_type = self.strip(arg.get_type_id()?).ok()?;
        let Type::Ptr(arg_ptr) = arg_type else {
            return Some(false);
        };
        let pointee = self.strip(arg_ptr.get_type_id()?).ok()?;
        Some(match pointee {
            Type::Struct(s) => self.btf.resolve_name(&s).ok().as_deref() == Some("task_struct"),
            Type::Fwd(f) => {
                f.is_struct() && self.btf.resolve_name(&f).ok().as_deref() == Some("task_struct")
            }
            _ => false,
        })
    }

    /// Resolves every [`KernelOffsets`] field. Fields this kernel lacks are
    /// left [`UNAVAILABLE`] and listed; an `Err` means the BTF itself is
    /// broken (a type id that points nowhere, a reference loop).
    pub fn resolve_offsets(&self) -> Result<ResolvedOffsets, BtfError> {
        let mut o = KernelOffsets::UNRESOLVED;
        let mut unavailable = Vec::new();
        let mut set = |slot: &mut u32, name: &'static str, r: Result<u32, Miss>| {
            record(slot, &mut unavailable, name, r)
        };

        // task_struct
        set(
            &mut o.task_pid,
            "task_struct.pid",
            self.int_field("task_struct", "pid", &[4])?,
        );
        set(
            &mut o.task_tgid,
            "task_struct.tgid",
            self.int_field("task_struct", "tgid", &[4])?,
        );
        set(&mut o.task_comm, "task_struct.comm", self.comm_field()?);
        set(
            &mut o.task_signal,
            "task_struct.signal",
            self.ptr_field("task_struct", "signal")?,
        );
        set(
            &mut o.task_mm,
            "task_struct.mm",
            self.ptr_field("task_struct", "mm")?,
        );
        set(
            &mut o.task_cgroups,
            "task_struct.cgroups",
            self.ptr_field("task_struct", "cgroups")?,
        );
        set(
            &mut o.signal_oom_score_adj,
            "signal_struct.oom_score_adj",
            self.int_field("signal_struct", "oom_score_adj", &[2])?,
        );

        // mm_struct
        match self.rss_stat()? {
            Ok(rss) => {
                o.mm_rss_stat = rss.offset;
                o.mm_rss_stride = rss.stride;
                o.mm_rss_value = rss.value;
            }
            Err(miss) => {
                for (slot, name) in [
                    (&mut o.mm_rss_stat, "mm_struct.rss_stat"),
                    (&mut o.mm_rss_stride, "mm_struct.rss_stat stride"),
                    (&mut o.mm_rss_value, "mm_struct.rss_stat count"),
                ] {
                    set(slot, name, Err(miss.clone()));
                }
            }
        }
        // atomic_long_t: a typedef of struct { s64 counter; }.
        set(
            &mut o.mm_pgtables_bytes,
            "mm_struct.pgtables_bytes",
            self.sized_field("mm_struct", &["pgtables_bytes"], 8)?,
        );
        set(
            &mut o.mm_total_vm,
            "mm_struct.total_vm",
            self.int_field("mm_struct", "total_vm", &[8])?,
        );

        // cgroups
        let memory_cgrp_id = self.enum_value(Some("cgroup_subsys_id"), "memory_cgrp_id")?;
        set(
            &mut o.memory_cgrp_id,
            "enum memory_cgrp_id",
            memory_cgrp_id.clone(),
        );
        set(
            &mut o.css_set_subsys,
            "css_set.subsys",
            self.css_set_subsys(memory_cgrp_id.ok())?,
        );
        set(
            &mut o.css_cgroup,
            "cgroup_subsys_state.cgroup",
            self.ptr_field("cgroup_subsys_state", "cgroup")?,
        );
        set(
            &mut o.css_parent,
            "cgroup_subsys_state.parent",
            self.ptr_field("cgroup_subsys_state", "parent")?,
        );
        set(
            &mut o.cgroup_kn,
            "cgroup.kn",
            self.ptr_field("cgroup", "kn")?,
        );
        // Before 5.5 `id` is `union kernfs_node_id`: not a plain 64-bit cgroup id.
        set(
            &mut o.kernfs_node_id,
            "kernfs_node.id",
            self.int_field("kernfs_node", "id", &[8])?,
        );

        // memcg
        set(
            &mut o.memcg_css,
            "mem_cgroup.css",
            self.struct_field("mem_cgroup", &["css"], "cgroup_subsys_state")?,
        );
        set(
            &mut o.memcg_memory,
            "mem_cgroup.memory",
            self.struct_field("mem_cgroup", &["memory"], "page_counter")?,
        );
        set(
            &mut o.memcg_swap,
            "mem_cgroup.swap",
            self.struct_field("mem_cgroup", &["swap", "memsw"], "page_counter")?,
        );
        set(
            &mut o.page_counter_usage,
            "page_counter.usage",
            self.sized_field("page_counter", &["usage"], 8)?,
        );
        set(
            &mut o.page_counter_max,
            "page_counter.max",
            self.sized_field("page_counter", &["max"], 8)?,
        );

        // mm counters: an anonymous enum on most kernels, so found by constant.
        let counters = self.mm_counters()?;
        for (i, (slot, name)) in [
            (&mut o.mm_filepages, "enum MM_FILEPAGES"),
            (&mut o.mm_anonpages, "enum MM_ANONPAGES"),
            (&mut o.mm_swapents, "enum MM_SWAPENTS"),
            (&mut o.mm_shmempages, "enum MM_SHMEMPAGES"),
        ]
        .into_iter()
        .enumerate()
        {
            set(slot, name, counters[i].clone());
        }

        // The OOM path (fentry/kprobe backends).
        set(
            &mut o.task_flags,
            "task_struct.flags",
            self.int_field("task_struct", "flags", &[4])?,
        );
        set(
            &mut o.task_real_cred,
            "task_struct.real_cred",
            self.ptr_field("task_struct", "real_cred")?,
        );
        // kuid_t: struct { uid_t val; }.
        set(
            &mut o.cred_uid,
            "cred.uid",
            self.sized_field("cred", &["uid"], 4)?,
        );
        set(
            &mut o.signal_oom_mm,
            "signal_struct.oom_mm",
            self.ptr_field("signal_struct", "oom_mm")?,
        );
        set(
            &mut o.oc_memcg,
            "oom_control.memcg",
            self.ptr_field("oom_control", "memcg")?,
        );
        set(
            &mut o.oc_gfp_mask,
            "oom_control.gfp_mask",
            self.int_field("oom_control", "gfp_mask", &[4])?,
        );
        set(
            &mut o.oc_order,
            "oom_control.order",
            self.int_field("oom_control", "order", &[4])?,
        );
        set(
            &mut o.oc_totalpages,
            "oom_control.totalpages",
            self.int_field("oom_control", "totalpages", &[8])?,
        );
        set(
            &mut o.oc_chosen,
            "oom_control.chosen",
            self.ptr_field("oom_control", "chosen")?,
        );
        set(
            &mut o.oc_chosen_points,
            "oom_control.chosen_points",
            self.int_field("oom_control", "chosen_points", &[8])?,
        );
        set(
            &mut o.oc_constraint,
            "oom_control.constraint",
            self.int_field("oom_control", "constraint", &[4])?,
        );

        // cgroup v1 OOM-disabled waits (CONFIG_MEMCG_V1; gone from kernels without it).
        set(
            &mut o.task_memcg_in_oom,
            "task_struct.memcg_in_oom",
            self.ptr_field("task_struct", "memcg_in_oom")?,
        );
        set(
            &mut o.task_memcg_oom_gfp_mask,
            "task_struct.memcg_oom_gfp_mask",
            self.int_field("task_struct", "memcg_oom_gfp_mask", &[4])?,
        );
        set(
            &mut o.task_memcg_oom_order,
            "task_struct.memcg_oom_order",
            self.int_field("task_struct", "memcg_oom_order", &[4])?,
        );

        Ok(ResolvedOffsets {
            offsets: o,
            unavailable,
        })
    }

    /// Parameter names of the BTF `FUNC` `name` (None if the function is not
    /// in BTF). Hooks check them before attaching: a signature that moved is
    /// reported, not read at the wrong place.
    pub fn func_params(&self, name: &str) -> Option<Vec<String>> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        let func = types.iter().find_map(|t| match t {
            Type::Func(f) => Some(f.clone()),
            _ => None,
        })?;
        let Type::FuncProto(proto) = self.btf.resolve_chained_type(&func).ok()? else {
            return None;
        };
        Some(
            proto
                .parameters
                .iter()
                .map(|p| self.btf.resolve_name(p).unwrap_or_default())
                .collect(),
        )
    }

    // ---- queries for resolvers outside this file (kernel::percpu) ----------

    /// Size of `struct <name>` (None: no such struct).
    pub fn struct_size(&self, name: &str) -> Result<Option<u64>, BtfError> {
        Ok(self.find_struct(name)?.map(|s| s.size() as u64))
    }

    /// Byte offset of member `field` of `struct <st>` (None: absent, or a bitfield).
    pub fn member_offset(&self, st: &str, field: &str) -> Result<Option<u32>, BtfError> {
        Ok(self.member(st, &[field])?.ok().map(|loc| loc.offset))
    }

    /// Whether member `field` of `struct <st>` is an embedded `struct <type_name>`.
    pub fn member_is_struct(
        &self,
        st: &str,
        field: &str,
        type_name: &str,
    ) -> Result<bool, BtfError> {
        Ok(self.struct_field(st, &[field], type_name)?.is_ok())
    }

    /// Byte offset of the pointer member `field` of `struct <st>` (None:
    /// absent, or not a pointer).
    pub fn pointer_member(&self, st: &str, field: &str) -> Result<Option<u32>, BtfError> {
        Ok(self.ptr_field(st, field)?.ok())
    }

    // ---- field shapes -------------------------------------------------------

    /// A pointer member.
    fn ptr_field(&self, st: &str, field: &str) -> Lookup<u32> {
        let loc = match self.member(st, &[field])? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        Ok(match self.strip(loc.type_id)? {
            Type::Ptr(_) => Ok(loc.offset),
            other => Err(Miss::Unusable(format!(
                "is a {}, not a pointer",
                other.name()
            ))),
        })
    }

    /// An integer (or enum) member of one of `sizes` bytes.
    fn int_field(&self, st: &str, field: &str, sizes: &[u64]) -> Lookup<u32> {
        let loc = match self.member(st, &[field])? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        Ok(match self.strip(loc.type_id)? {
            Type::Int(i) if sizes.contains(&(i.size() as u64)) => Ok(loc.offset),
            Type::Enum(e) if sizes.contains(&(e.size() as u64)) => Ok(loc.offset),
            other => {
                let size = self.type_size(loc.type_id)?;
                Err(Miss::Unusable(format!(
                    "is a {} of {size:?} bytes, expected an integer of {sizes:?} bytes",
                    other.name()
                )))
            }
        })
    }

    /// Any member of exactly `size` bytes (e.g. `atomic_long_t` or `long`).
    fn sized_field(&self, st: &str, names: &[&str], size: u64) -> Lookup<u32> {
        let loc = match self.member(st, names)? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        Ok(match self.type_size(loc.type_id)? {
            Some(s) if s == size => Ok(loc.offset),
            other => Err(Miss::Unusable(format!(
                "has size {other:?}, expected {size}"
            ))),
        })
    }

    /// An embedded `struct <type_name>` member.
    fn struct_field(&self, st: &str, names: &[&str], type_name: &str) -> Lookup<u32> {
        let loc = match self.member(st, names)? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        Ok(match self.strip(loc.type_id)? {
            Type::Struct(s) if self.name_of(&s)? == type_name => Ok(loc.offset),
            other => Err(Miss::Unusable(format!(
                "is a {}, not struct {type_name}",
                other.name()
            ))),
        })
    }

    /// `task_struct.comm`: a `char[N]` array with N >= [`COMM_LEN`].
    fn comm_field(&self) -> Lookup<u32> {
        let loc = match self.member("task_struct", &["comm"])? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        let Type::Array(arr) = self.strip(loc.type_id)? else {
            return Ok(Err(Miss::Unusable("is not an array".into())));
        };
        let elem = self.type_size(self.type_id_of(&arr)?)?;
        Ok(if elem == Some(1) && arr.len() >= COMM_LEN {
            Ok(loc.offset)
        } else {
            Err(Miss::Unusable(format!(
                "is an array of {} elements of {elem:?} bytes, expected char[>= {COMM_LEN}]",
                arr.len()
            )))
        })
    }

    /// `css_set.subsys`: an array of pointers long enough to index by
    /// `memory_cgrp_id`.
    fn css_set_subsys(&self, memory_cgrp_id: Option<u32>) -> Lookup<u32> {
        let loc = match self.member("css_set", &["subsys"])? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        let Type::Array(arr) = self.strip(loc.type_id)? else {
            return Ok(Err(Miss::Unusable("is not an array".into())));
        };
        if !matches!(self.strip(self.type_id_of(&arr)?)?, Type::Ptr(_)) {
            return Ok(Err(Miss::Unusable("is not an array of pointers".into())));
        }
        if let Some(id) = memory_cgrp_id.filter(|&id| arr.len() <= id as usize) {
            return Ok(Err(Miss::Unusable(format!(
                "has {} entries, memory_cgrp_id is {id}",
                arr.len()
            ))));
        }
        Ok(Ok(loc.offset))
    }

    /// `mm_struct.rss_stat`, 6.2+ `struct percpu_counter rss_stat[N]` or
    /// older `struct mm_rss_stat { atomic_long_t count[N]; } rss_stat`.
    fn rss_stat(&self) -> Lookup<RssLayout> {
        let loc = match self.member("mm_struct", &["rss_stat"])? {
            Ok(loc) => loc,
            Err(m) => return Ok(Err(m)),
        };
        match self.strip(loc.type_id)? {
            Type::Array(arr) => {
                // struct percpu_counter rss_stat[NR_MM_COUNTERS]
                let elem_id = self.type_id_of(&arr)?;
                let Type::Struct(elem) = self.strip(elem_id)? else {
                    return Ok(Err(Miss::Unusable("array element is not a struct".into())));
                };
                let count = match self.member_in(&elem, &["count"])? {
                    Ok(c) => c,
                    Err(_) => return Ok(Err(Miss::Unusable("element has no `count`".into()))),
                };
                if self.type_size(count.type_id)? != Some(8) {
                    return Ok(Err(Miss::Unusable("element `count` is not 8 bytes".into())));
                }
                Ok(Ok(RssLayout {
                    offset: loc.offset,
                    stride: elem.size() as u32,
                    value: count.offset,
                }))
            }
            Type::Struct(rss) => {
                // struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }
                let count = match self.member_in(&rss, &["count"])? {
                    Ok(c) => c,
                    Err(_) => return Ok(Err(Miss::Unusable("mm_rss_stat has no `count`".into()))),
                };
                let Type::Array(arr) = self.strip(count.type_id)? else {
                    return Ok(Err(Miss::Unusable(
                        "mm_rss_stat.count is not an array".into(),
                    )));
                };
                let elem = self.type_size(self.type_id_of(&arr)?)?;
                if elem != Some(8) {
                    return Ok(Err(Miss::Unusable(format!(
                        "mm_rss_stat.count elements are {elem:?} bytes, expected 8"
                    ))));
                }
                Ok(Ok(RssLayout {
                    offset: loc.offset,
                    stride: 8,
                    value: count.offset,
                }))
            }
            other => Ok(Err(Miss::Unusable(format!("is a {}", other.name())))),
        }
    }

    // ---- enums --------------------------------------------------------------

    /// Value of enum constant `constant`, looked up in `enum <enum_name>` when
    /// given and otherwise (or if that enum lacks it) in every enum.
    fn enum_value(&self, enum_name: Option<&str>, constant: &str) -> Lookup<u32> {
        if let Some(name) = enum_name {
            for t in self
                .btf
                .resolve_types_by_name(name)
                .map_err(|e| self.corrupt(e))?
            {
                if let Some(v) = self.constant_in(&t, constant)? {
                    return Ok(v);
                }
            }
        }
        let mut id = 1u32;
        while let Some(t) = self.type_by_id_opt(id)? {
            if let Some(v) = self.constant_in(&t, constant)? {
                return Ok(v);
            }
            id += 1;
        }
        Ok(Err(Miss::Absent))
    }

    /// The `MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES`
    /// values, all taken from the one enum that holds `MM_FILEPAGES`.
    fn mm_counters(&self) -> Result<[Result<u32, Miss>; 4], BtfError> {
        const NAMES: [&str; 4] = [
            "MM_FILEPAGES",
            "MM_ANONPAGES",
            "MM_SWAPENTS",
            "MM_SHMEMPAGES",
        ];
        let mut id = 1u32;
        while let Some(t) = self.type_by_id_opt(id)? {
            if self.constant_in(&t, NAMES[0])?.is_some() {
                let mut out = [const { Err(Miss::Absent) }; 4];
                for (slot, name) in out.iter_mut().zip(NAMES) {
                    *slot = self.constant_in(&t, name)?.unwrap_or(Err(Miss::Absent));
                }
                return Ok(out);
            }
            id += 1;
        }
        Ok([const { Err(Miss::Absent) }; 4])
    }

    /// `Some(value)` when `t` is an enum containing `constant`.
    fn constant_in(&self, t: &Type, constant: &str) -> Result<Option<Result<u32, Miss>>, BtfError> {
        match t {
            Type::Enum(e) => {
                for m in &e.members {
                    if self.name_of(m)? == constant {
                        return Ok(Some(Ok(m.val())));
                    }
                }
            }
            Type::Enum64(e) => {
                for m in &e.members {
                    if self.name_of(m)? == constant {
                        return Ok(Some(u32::try_from(m.val()).map_err(|_| {
                            Miss::Unusable(format!("{constant} = {} does not fit u32", m.val()))
                        })));
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }

    // ---- members ------------------------------------------------------------

    /// Finds a member of `struct <st>` (first complete definition), trying each
    /// of `names` in order and looking inside anonymous structs/unions.
    fn member(&self, st: &str, names: &[&str]) -> Lookup<MemberLoc> {
        match self.find_struct(st)? {
            Some(s) => self.member_in(&s, names),
            None => Ok(Err(Miss::Absent)),
        }
    }

    /// The first complete (non-forward) struct or union named `name`.
    fn find_struct(&self, name: &str) -> Result<Option<Struct>, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|e| self.corrupt(e))?;
        Ok(types.into_iter().find_map(|t| match t {
            Type::Struct(s) | Type::Union(s) => Some(s),
            _ => None,
        }))
    }

    /// Like [`Self::member`] on an already resolved struct or union.
    fn member_in(&self, s: &Struct, names: &[&str]) -> Lookup<MemberLoc> {
        for name in names {
            if let Some(loc) = self.find_member(s, name, 0, 0)? {
                return Ok(loc);
            }
        }
        Ok(Err(Miss::Absent))
    }

    /// Depth-first search of `name` in `s` (located at `base_bits`), entering
    /// anonymous struct/union members. C forbids a name from appearing twice
    /// across a struct and its anonymous members, so the first hit is the hit.
    fn find_member(
        &self,
        s: &Struct,
        name: &str,
        base_bits: u32,
        depth: usize,
    ) -> Result<Option<Result<MemberLoc, Miss>>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(self.corrupt_msg("anonymous members nested too deep".into()));
        }
        for m in &s.members {
            let bits = base_bits
                .checked_add(m.bit_offset())
                .ok_or_else(|| self.corrupt_msg("member offset overflows".into()))?;
            let type_id = self.type_id_of(m)?;
            let m_name = self.name_of(m)?;
            if m_name == name {
                if m.bitfield_size().is_some_and(|b| b != 0) || bits % 8 != 0 {
                    return Ok(Some(Err(Miss::Unusable("is a bitfield".into()))));
                }
                return Ok(Some(Ok(MemberLoc {
                    offset: bits / 8,
                    type_id,
                })));
            }
            if !m_name.is_empty() {
                continue;
            }
            // Anonymous struct/union: its members belong to `s`.
            let (Type::Struct(inner) | Type::Union(inner)) = self.strip(type_id)? else {
                continue;
            };
            if let Some(found) = self.find_member(&inner, name, bits, depth + 1)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    // ---- types --------------------------------------------------------------

    /// The type `id`, through typedefs, `volatile`, `const`, `restrict` and
    /// type tags.
    fn strip(&self, mut id: u32) -> Result<Type, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.type_by_id(id)?;
            match &t {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let inner = t
                        .as_btf_type()
                        .ok_or_else(|| self.corrupt_msg(format!("type {id}: no reference")))?;
                    id = self.type_id_of(inner)?;
                }
                _ => return Ok(t),
            }
        }
        Err(self.corrupt_msg(format!("type {id}: typedef/qualifier chain too long")))
    }

    /// Size in bytes of type `id` (through typedefs/qualifiers); `None` for
    /// types without a size (void, functions, forward declarations).
    fn type_size(&self, id: u32) -> Result<Option<u64>, BtfError> {
        self.type_size_depth(id, 0)
    }

    fn type_size_depth(&self, id: u32, depth: usize) -> Result<Option<u64>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(self.corrupt_msg(format!("type {id}: array nesting too deep")));
        }
        Ok(match self.strip(id)? {
            Type::Int(i) => Some(i.size() as u64),
            Type::Float(f) => Some(f.size() as u64),
            Type::Enum(e) => Some(e.size() as u64),
            Type::Enum64(e) => Some(e.size() as u64),
            Type::Struct(s) | Type::Union(s) => Some(s.size() as u64),
            // BPF only runs on 64-bit kernels here; BTF has no pointer size.
            Type::Ptr(_) => Some(8),
            Type::Array(a) => {
                let elem = self.type_id_of(&a)?;
                self.type_size_depth(elem, depth + 1)?
                    .and_then(|s| s.checked_mul(a.len() as u64))
            }
            _ => None,
        })
    }

    fn type_by_id(&self, id: u32) -> Result<Type, BtfError> {
        self.btf.resolve_type_by_id(id).map_err(|e| self.corrupt(e))
    }

    /// Type `id`, or `None` past the last type (for scanning all types).
    fn type_by_id_opt(&self, id: u32) -> Result<Option<Type>, BtfError> {
        match self.btf.resolve_type_by_id(id) {
            Ok(t) => Ok(Some(t)),
            Err(btf_rs::Error::InvalidType(_)) => Ok(None),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    fn type_id_of(&self, t: &dyn BtfType) -> Result<u32, BtfError> {
        t.get_type_id()
            .ok_or_else(|| self.corrupt_msg("type reference missing".into()))
    }

    fn name_of(&self, t: &dyn BtfType) -> Result<String, BtfError> {
        self.btf.resolve_name(t).map_err(|e| self.corrupt(e))
    }

    fn corrupt(&self, e: btf_rs::Error) -> BtfError {
        self.corrupt_msg(e.to_string())
    }

    fn corrupt_msg(&self, reason: String) -> BtfError {
        BtfError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Stores a lookup result in `slot`, or marks it [`UNAVAILABLE`] and lists
/// `name` in `unavailable`.
fn record(
    slot: &mut u32,
    unavailable: &mut Vec<&'static str>,
    name: &'static str,
    r: Result<u32, Miss>,
) {
    match r {
        Ok(v) => *slot = v,
        Err(Miss::Absent) => {
            log::debug!("BTF: {name} is absent");
            *slot = UNAVAILABLE;
            unavailable.push(name);
        }
        Err(Miss::Unusable(why)) => {
            log::debug!("BTF: {name} is unusable: {why}");
            *slot = UNAVAILABLE;
            unavailable.push(name);
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RssLayout {
    offset: u32,
    stride: u32,
    value: u32,
}

/// Checks the BTF header (magic, version, section bounds) against the file
/// size so that truncated files fail fast with a precise reason.
fn check_header(b: &[u8]) -> Result<(), String> {
    const HDR_MIN: usize = 24;
    if b.len() < HDR_MIN {
        return Err(format!("{} bytes, shorter than a BTF header", b.len()));
    }
    let u32_at = |o: usize, le: bool| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let le = match [b[0], b[1]] {
        [0x9f, 0xeb] => true,
        [0xeb, 0x9f] => false,
        m => return Err(format!("bad magic {:#04x}{:02x}, not BTF", m[0], m[1])),
    };
    if b[2] != 1 {
        return Err(format!("unsupported BTF version {}", b[2]));
    }
    let hdr_len = u32_at(4, le) as u64;
    let (type_off, type_len) = (u32_at(8, le) as u64, u32_at(12, le) as u64);
    let (str_off, str_len) = (u32_at(16, le) as u64, u32_at(20, le) as u64);
    let len = b.len() as u64;
    if hdr_len < HDR_MIN as u64 || hdr_len > len {
        return Err(format!(
            "header length {hdr_len} invalid for a {len}-byte file"
        ));
    }
    for (what, off, size) in [("type", type_off, type_len), ("string", str_off, str_len)] {
        let end = hdr_len + off + size;
        if end > len {
            return Err(format!(
                "{what} section ends at byte {end} but the file has {len} bytes (truncated?)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    fn vmlinux() -> Option<KernelBtf> {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!(
                "skipped: {VMLINUX_BTF} is absent (kernel built without CONFIG_DEBUG_INFO_BTF)"
            );
            return None;
        }
        Some(KernelBtf::open(path).expect("parse vmlinux BTF"))
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
        let Some(k) = vmlinux() else { return };
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
        ];
        assert_eq!(
            all.iter().filter(|&&v| v == UNAVAILABLE).count(),
            r.unavailable.len(),
            "unavailable list and UNAVAILABLE slots disagree"
        );
    }

    #[test]
    fn offsets_are_consistent() {
        let Some(k) = vmlinux() else { return };
        let r = k.resolve_offsets().unwrap();
        let o = r.offsets;

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
        let Some(k) = vmlinux() else { return };
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
        let Some(k) = vmlinux() else { return };
        // task_struct has had the `sched_reset_on_fork` bitfield for ages.
        let r = k.member("task_struct", &["sched_reset_on_fork"]).unwrap();
        assert!(
            matches!(r, Err(Miss::Unusable(ref why)) if why.contains("bitfield")),
            "{r:?}"
        );
    }

    #[test]
    fn unavailable_field_is_listed() {
        let Some(k) = vmlinux() else { return };
        // The code path of resolve_offsets, on a field and a struct no kernel has.
        let (mut a, mut b) = (0u32, 0u32);
        let mut unavailable = Vec::new();
        record(
            &mut a,
            &mut unavailable,
            "task_struct.bogus",
            k.int_field("task_struct", "bogus", &[4]).unwrap(),
        );
        record(
            &mut b,
            &mut unavailable,
            "bogus_struct.pid",
            k.ptr_field("bogus_struct", "pid").unwrap(),
        );
        assert_eq!((a, b), (UNAVAILABLE, UNAVAILABLE));
        assert_eq!(unavailable, ["task_struct.bogus", "bogus_struct.pid"]);
    }

    #[test]
    fn raw_tracepoint_and_func_queries() {
        let Some(k) = vmlinux() else { return };
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
        if let Ok(real) = std::fs::read(VMLINUX_BTF) {
            cases.push(("truncated half", real[..real.len() / 2].to_vec()));
            cases.push(("truncated header", real[..10].to_vec()));
            // Valid header, garbage body: parse must fail cleanly.
            let mut garbage = real[..24].to_vec();
            garbage.extend((0..real.len() - 24).map(|i| (i as u32).wrapping_mul(2654435761) as u8));
            cases.push(("garbage body", garbage));
        }
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

    /// Cross-check against pahole (an independent BTF reader), when installed.
    #[test]
    fn offsets_match_pahole() {
        let Some(k) = vmlinux() else { return };
        let probe = Command::new("pahole").arg("--version").output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: pahole is not installed (apt-get install dwarves)");
            return;
        }
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
        ];
        for &(st, field, ours) in checks {
            if ours == UNAVAILABLE {
                continue;
            }
            let out = Command::new("pahole")
                .args(["-C", st, VMLINUX_BTF])
                .output()
                .expect("run pahole");
            let text = String::from_utf8_lossy(&out.stdout);
            let theirs = pahole_offset(&text, field)
                .unwrap_or_else(|| panic!("pahole shows no {st}.{field}:\n{text}"));
            assert_eq!(ours, theirs, "{st}.{field}: ours {ours}, pahole {theirs}");
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
}
