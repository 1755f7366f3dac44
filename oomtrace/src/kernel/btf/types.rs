//! Walking BTF types: through typedefs and qualifiers, their sizes, names,
//! and the corrupt-file errors a walk can meet.
use btf_rs::{BtfType, Type};

use super::{BtfError, KernelBtf, MAX_DEPTH};

impl KernelBtf {
    /// The type `id`, through typedefs, `volatile`, `const`, `restrict` and
    /// type tags.
    pub(super) fn strip(&self, mut id: u32) -> Result<Type, BtfError> {
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
    pub(super) fn type_size(&self, id: u32) -> Result<Option<u64>, BtfError> {
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

    pub(super) fn type_by_id(&self, id: u32) -> Result<Type, BtfError> {
        self.btf.resolve_type_by_id(id).map_err(|e| self.corrupt(e))
    }

    /// Type `id`, or `None` past the last type (for scanning all types).
    pub(super) fn type_by_id_opt(&self, id: u32) -> Result<Option<Type>, BtfError> {
        match self.btf.resolve_type_by_id(id) {
            Ok(t) => Ok(Some(t)),
            Err(btf_rs::Error::InvalidType(_)) => Ok(None),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    pub(super) fn type_id_of(&self, t: &dyn BtfType) -> Result<u32, BtfError> {
        t.get_type_id()
            .ok_or_else(|| self.corrupt_msg("type reference missing".into()))
    }

    pub(super) fn name_of(&self, t: &dyn BtfType) -> Result<String, BtfError> {
        self.btf.resolve_name(t).map_err(|e| self.corrupt(e))
    }

    pub(super) fn corrupt(&self, e: btf_rs::Error) -> BtfError {
        self.corrupt_msg(e.to_string())
    }

    pub(super) fn corrupt_msg(&self, reason: String) -> BtfError {
        BtfError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}
