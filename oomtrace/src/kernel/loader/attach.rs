//! Attaching one hook by kind, after checking that its attach point exists
//! on this kernel: the tracepoint in tracefs, the function's signature in
//! BTF, the kprobe symbol in kallsyms.
use std::path::Path;

use aya::{
    Btf, Ebpf,
    programs::{FEntry, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint},
};

use super::{
    error::AttachError,
    hooks::{AttachPoint, EXACT_KPROBE, Hook, OOM_SIGNATURES},
};
use crate::kernel::{btf::Signatures, tracefs};

/// What attaching needs from the kernel. aya's parse of the BTF for fentry
/// and kallsyms are read on first use: the tracepoint backend needs neither.
pub(super) struct Targets<'k> {
    signatures: &'k Signatures,
    btf_path: &'k Path,
    tracefs_root: &'k Path,
    fentry_btf: Option<Btf>,
    kallsyms: Option<Vec<String>>,
}

impl<'k> Targets<'k> {
    pub fn new(signatures: &'k Signatures, btf_path: &'k Path, tracefs_root: &'k Path) -> Self {
        Self {
            signatures,
            btf_path,
            tracefs_root,
            fentry_btf: None,
            kallsyms: None,
        }
    }

    pub fn signatures(&self) -> &'k Signatures {
        self.signatures
    }

    /// Loads `hook`'s program and attaches it where the hook says.
    pub fn attach(&mut self, ebpf: &mut Ebpf, hook: &Hook) -> Result<(), AttachError> {
        let program = hook.program;
        let failed = AttachError::program(program);
        match hook.point {
            AttachPoint::TracePoint { category, name } => {
                if !tracefs::event_exists(self.tracefs_root, category, name) {
                    return Err(AttachError::NoTracepoint { category, name });
                }
                let p: &mut TracePoint = program_mut(ebpf, program)?;
                p.load()
                    .and_then(|()| p.attach(category, name))
                    .map_err(failed)?;
            }
            AttachPoint::RawTracePoint { name } => {
                let p: &mut RawTracePoint = program_mut(ebpf, program)?;
                p.load().and_then(|()| p.attach(name)).map_err(failed)?;
            }
            AttachPoint::FEntry { function } => {
                let btf = self.fentry_btf(function)?;
                let p: &mut FEntry = program_mut(ebpf, program)?;
                p.load(function, btf)
                    .and_then(|()| p.attach())
                    .map_err(failed)?;
            }
            AttachPoint::FExit { function } => {
                let btf = self.fentry_btf(function)?;
                let p: &mut FExit = program_mut(ebpf, program)?;
                p.load(function, btf)
                    .and_then(|()| p.attach())
                    .map_err(failed)?;
            }
            AttachPoint::KProbe { function } | AttachPoint::KRetProbe { function } => {
                check_signature(self.signatures, function)?;
                let symbol = kprobe_symbol(self.kallsyms(), function)?;
                let p: &mut KProbe = program_mut(ebpf, program)?;
                p.load()
                    .and_then(|()| p.attach(symbol, 0))
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// The BTF fentry/fexit programs are loaded against, once `function`'s
    /// signature is checked.
    pub fn fentry_btf(&mut self, function: &'static str) -> Result<&Btf, AttachError> {
        check_signature(self.signatures, function)?;
        let btf = match self.fentry_btf.take() {
            Some(btf) => btf,
            None => Btf::parse_file(self.btf_path, aya::Endianness::default())
                .map_err(AttachError::FentryBtf)?,
        };
        Ok(self.fentry_btf.insert(btf))
    }

    fn kallsyms(&mut self) -> &[String] {
        self.kallsyms.get_or_insert_with(read_kallsyms)
    }
}

/// Program `name` of the object as its kind `P`.
pub(super) fn program_mut<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut P, AttachError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or(AttachError::MissingProgram(name))?;
    program.try_into().map_err(AttachError::program(name))
}

/// Detaches and unloads the programs of a backend that was given up: a
/// partial OOM path is worse than none.
pub(super) fn unload(ebpf: &mut Ebpf, programs: &[&'static str]) {
    for &name in programs {
        let unloaded = match ebpf.program_mut(name) {
            Some(Program::FEntry(p)) => p.unload(),
            Some(Program::FExit(p)) => p.unload(),
            Some(Program::KProbe(p)) => p.unload(),
            _ => Ok(()),
        };
        if let Err(e) = unloaded {
            log::debug!("unloading {name}: {e}");
        }
    }
}

/// Whether `function` takes the parameters its programs read.
pub(super) fn check_signature(
    signatures: &Signatures,
    function: &'static str,
) -> Result<(), AttachError> {
    let Some(&(_, expected)) = OOM_SIGNATURES.iter().find(|(f, _)| *f == function) else {
        return Ok(());
    };
    match signatures.params(function) {
        None => Err(AttachError::NotInBtf { function }),
        Some(params) if params.len() != expected => Err(AttachError::Signature {
            function,
            params: params.to_vec(),
            expected,
        }),
        Some(_) => Ok(()),
    }
}

fn read_kallsyms() -> Vec<String> {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// The symbol a kprobe attaches to: the function itself, else a compiler
/// clone of it (`name.isra.0`, `name.constprop.0`, `name.part.0`); never a
/// `.cold` fragment, which is not the function's entry.
fn kprobe_symbol<'s>(
    kallsyms: &'s [String],
    function: &'static str,
) -> Result<&'s str, AttachError> {
    if let Some(exact) = kallsyms.iter().find(|s| *s == function) {
        return Ok(exact);
    }
    if EXACT_KPROBE.contains(&function) {
        return Err(AttachError::NotExactSymbol { function });
    }
    let prefix = format!("{function}.");
    kallsyms
        .iter()
        .find(|s| s.starts_with(&prefix) && !s.contains(".cold"))
        .map(String::as_str)
        .ok_or(AttachError::NoSymbol { function })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kprobes_prefer_the_function_then_a_clone_never_a_cold_part() {
        let syms = symbols(&["oom_badness.cold", "oom_badness.isra.0", "out_of_memory"]);
        assert_eq!(
            kprobe_symbol(&syms, "out_of_memory").unwrap(),
            "out_of_memory"
        );
        assert_eq!(
            kprobe_symbol(&syms, "oom_badness").unwrap(),
            "oom_badness.isra.0"
        );
        let cold_only = symbols(&["oom_kill_process.cold"]);
        assert!(matches!(
            kprobe_symbol(&cold_only, "oom_kill_process"),
            Err(AttachError::NoSymbol { .. })
        ));
    }

    #[test]
    fn argument_reading_kprobes_refuse_clones() {
        let syms = symbols(&["mem_cgroup_out_of_memory.constprop.0"]);
        let err = kprobe_symbol(&syms, "mem_cgroup_out_of_memory").unwrap_err();
        assert!(matches!(err, AttachError::NotExactSymbol { .. }));
        assert!(err.to_string().contains("under its own name"), "{err}");
    }
}
