//! Kernel struct offsets from BTF.
//!
//! Rust eBPF programs cannot carry CO-RE relocations, so the collector reads
//! the running kernel's BTF (`/sys/kernel/btf/vmlinux`) once at start-up,
//! resolves the byte offsets the programs need and hands them over as the
//! `OFFSETS` global ([`KernelOffsets`]). A field the kernel does not have (or
//! has with a shape the programs cannot read) stays
//! [`UNAVAILABLE`](oomtrace_ebpf::UNAVAILABLE) and is
//! named in [`ResolvedOffsets::unavailable`]: offsets are never guessed.
//!
//! `offsets.rs` resolves one struct group at a time; `fields.rs` checks the
//! shape of a member; `members.rs` finds members and enum constants;
//! `types.rs` walks types; `queries.rs` answers the loader's questions about
//! functions and tracepoints.

mod fields;
mod header;
mod members;
mod offsets;
mod queries;
mod types;

use std::path::{Path, PathBuf};

use btf_rs::Btf;
use oomtrace_ebpf::KernelOffsets;

pub use queries::Signatures;

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
    /// of every [`KernelOffsets`] field left
    /// [`UNAVAILABLE`](oomtrace_ebpf::UNAVAILABLE).
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

/// The outer `Err` is a broken BTF; the inner one a field this kernel lacks.
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
        header::check_header(bytes).map_err(corrupt)?;
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
}

#[cfg(test)]
mod tests;
