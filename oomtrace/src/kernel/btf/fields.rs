//! The shape a member must have for the programs to read it: a pointer, an
//! integer of some size, an embedded struct... A member of another shape is
//! [`Miss::Unusable`], with the reason.
use btf_rs::{Array, Struct, Type};
use oomtrace_ebpf::COMM_LEN;

use super::{KernelBtf, Lookup, MemberLoc, Miss};

/// Where `mm_struct`'s per-type RSS counters are: the array's offset, the
/// distance between two counters and the value's offset inside one.
#[derive(Clone, Copy, Debug)]
pub(super) struct RssLayout {
    pub offset: u32,
    pub stride: u32,
    pub value: u32,
}

fn unusable<T>(why: impl Into<String>) -> Lookup<T> {
    Ok(Err(Miss::Unusable(why.into())))
}

impl KernelBtf {
    /// Runs `check` on the first of `names` that `struct <st>` has.
    fn with_member<T>(
        &self,
        st: &str,
        names: &[&str],
        check: impl FnOnce(MemberLoc) -> Lookup<T>,
    ) -> Lookup<T> {
        match self.member(st, names)? {
            Ok(loc) => check(loc),
            Err(miss) => Ok(Err(miss)),
        }
    }

    /// A pointer member.
    pub(super) fn ptr_field(&self, st: &str, field: &str) -> Lookup<u32> {
        self.with_member(st, &[field], |loc| match self.strip(loc.type_id)? {
            Type::Ptr(_) => Ok(Ok(loc.offset)),
            other => unusable(format!("is a {}, not a pointer", other.name())),
        })
    }

    /// An integer (or enum) member of one of `sizes` bytes.
    pub(super) fn int_field(&self, st: &str, field: &str, sizes: &[u64]) -> Lookup<u32> {
        self.with_member(st, &[field], |loc| match self.strip(loc.type_id)? {
            Type::Int(i) if sizes.contains(&(i.size() as u64)) => Ok(Ok(loc.offset)),
            Type::Enum(e) if sizes.contains(&(e.size() as u64)) => Ok(Ok(loc.offset)),
            other => {
                let size = self.type_size(loc.type_id)?;
                unusable(format!(
                    "is a {} of {size:?} bytes, expected an integer of {sizes:?} bytes",
                    other.name()
                ))
            }
        })
    }

    /// Any member of exactly `size` bytes (e.g. `atomic_long_t` or `long`).
    pub(super) fn sized_field(&self, st: &str, names: &[&str], size: u64) -> Lookup<u32> {
        self.with_member(st, names, |loc| match self.type_size(loc.type_id)? {
            Some(s) if s == size => Ok(Ok(loc.offset)),
            other => unusable(format!("has size {other:?}, expected {size}")),
        })
    }

    /// An embedded `struct <type_name>` member.
    pub(super) fn struct_field(&self, st: &str, names: &[&str], type_name: &str) -> Lookup<u32> {
        self.with_member(st, names, |loc| match self.strip(loc.type_id)? {
            Type::Struct(s) if self.name_of(&s)? == type_name => Ok(Ok(loc.offset)),
            other => unusable(format!("is a {}, not struct {type_name}", other.name())),
        })
    }

    /// `task_struct.comm`: a `char[N]` array with N >= [`COMM_LEN`].
    pub(super) fn comm_field(&self) -> Lookup<u32> {
        self.with_member("task_struct", &["comm"], |loc| {
            let Type::Array(arr) = self.strip(loc.type_id)? else {
                return unusable("is not an array");
            };
            let elem = self.type_size(self.type_id_of(&arr)?)?;
            if elem == Some(1) && arr.len() >= COMM_LEN {
                return Ok(Ok(loc.offset));
            }
            unusable(format!(
                "is an array of {} elements of {elem:?} bytes, expected char[>= {COMM_LEN}]",
                arr.len()
            ))
        })
    }

    /// `css_set.subsys`: an array of pointers long enough to index by
    /// `memory_cgrp_id`.
    pub(super) fn css_set_subsys(&self, memory_cgrp_id: Option<u32>) -> Lookup<u32> {
        self.with_member("css_set", &["subsys"], |loc| {
            let Type::Array(arr) = self.strip(loc.type_id)? else {
                return unusable("is not an array");
            };
            if !matches!(self.strip(self.type_id_of(&arr)?)?, Type::Ptr(_)) {
                return unusable("is not an array of pointers");
            }
            if let Some(id) = memory_cgrp_id.filter(|&id| arr.len() <= id as usize) {
                return unusable(format!("has {} entries, memory_cgrp_id is {id}", arr.len()));
            }
            Ok(Ok(loc.offset))
        })
    }

    /// `mm_struct.rss_stat`, 6.2+ `struct percpu_counter rss_stat[N]` or
    /// older `struct mm_rss_stat { atomic_long_t count[N]; } rss_stat`.
    pub(super) fn rss_stat(&self) -> Lookup<RssLayout> {
        self.with_member("mm_struct", &["rss_stat"], |loc| {
            match self.strip(loc.type_id)? {
                Type::Array(arr) => self.percpu_rss_stat(loc, &arr),
                Type::Struct(rss) => self.atomic_rss_stat(loc, &rss),
                other => unusable(format!("is a {}", other.name())),
            }
        })
    }

    /// `struct percpu_counter rss_stat[NR_MM_COUNTERS]` (6.2+): the value is
    /// the counter's `count`.
    fn percpu_rss_stat(&self, loc: MemberLoc, arr: &Array) -> Lookup<RssLayout> {
        let Type::Struct(elem) = self.strip(self.type_id_of(arr)?)? else {
            return unusable("array element is not a struct");
        };
        let Ok(count) = self.member_in(&elem, &["count"])? else {
            return unusable("element has no `count`");
        };
        if self.type_size(count.type_id)? != Some(8) {
            return unusable("element `count` is not 8 bytes");
        }
        Ok(Ok(RssLayout {
            offset: loc.offset,
            stride: elem.size() as u32,
            value: count.offset,
        }))
    }

    /// `struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }` (before
    /// 6.2): the counters are adjacent 8-byte values.
    fn atomic_rss_stat(&self, loc: MemberLoc, rss: &Struct) -> Lookup<RssLayout> {
        let Ok(count) = self.member_in(rss, &["count"])? else {
            return unusable("mm_rss_stat has no `count`");
        };
        let Type::Array(arr) = self.strip(count.type_id)? else {
            return unusable("mm_rss_stat.count is not an array");
        };
        let elem = self.type_size(self.type_id_of(&arr)?)?;
        if elem != Some(8) {
            return unusable(format!(
                "mm_rss_stat.count elements are {elem:?} bytes, expected 8"
            ));
        }
        Ok(Ok(RssLayout {
            offset: loc.offset,
            stride: 8,
            value: count.offset,
        }))
    }
}
