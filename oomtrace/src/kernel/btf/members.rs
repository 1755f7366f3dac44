//! Finding struct members (through anonymous structs and unions) and enum
//! constants by name.
use btf_rs::{Struct, Type};

use super::{BtfError, KernelBtf, Lookup, MAX_DEPTH, MemberLoc, Miss};

impl KernelBtf {
    /// Finds a member of `struct <st>` (first complete definition), trying each
    /// of `names` in order and looking inside anonymous structs/unions.
    pub(super) fn member(&self, st: &str, names: &[&str]) -> Lookup<MemberLoc> {
        match self.find_struct(st)? {
            Some(s) => self.member_in(&s, names),
            None => Ok(Err(Miss::Absent)),
        }
    }

    /// The first complete (non-forward) struct or union named `name`.
    pub(super) fn find_struct(&self, name: &str) -> Result<Option<Struct>, BtfError> {
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
    pub(super) fn member_in(&self, s: &Struct, names: &[&str]) -> Lookup<MemberLoc> {
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

    /// Value of enum constant `constant`, looked up in `enum <enum_name>` when
    /// given and otherwise (or if that enum lacks it) in every enum.
    pub(super) fn enum_value(&self, enum_name: Option<&str>, constant: &str) -> Lookup<u32> {
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
    pub(super) fn mm_counters(&self) -> Result<[Result<u32, Miss>; 4], BtfError> {
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
}
