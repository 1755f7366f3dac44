//! What the loader asks of the kernel's functions and tracepoints before
//! attaching to them, and the struct questions of resolvers outside this
//! directory (`kernel::percpu`).
use btf_rs::{BtfType, Type};

use super::{BtfError, KernelBtf};

impl KernelBtf {
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

    /// The parameter names of each of `functions`, read now so that the
    /// parsed BTF can be freed before the programs are loaded.
    pub fn signatures(&self, functions: impl IntoIterator<Item = &'static str>) -> Signatures {
        Signatures(
            functions
                .into_iter()
                .map(|f| (f, self.func_params(f)))
                .collect(),
        )
    }

    // ---- queries for resolvers outside this directory (kernel::percpu) -----

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
}

/// Function signatures read from BTF ([`KernelBtf::signatures`]): what the
/// loader checks before attaching, without keeping the parsed BTF (tens of
/// MiB) alive.
#[derive(Clone, Debug, Default)]
pub struct Signatures(Vec<(&'static str, Option<Vec<String>>)>);

impl Signatures {
    /// Parameter names of `function` (None: not in BTF, or not asked for).
    pub fn params(&self, function: &str) -> Option<&[String]> {
        self.0
            .iter()
            .find(|(f, _)| *f == function)
            .and_then(|(_, params)| params.as_deref())
    }
}
