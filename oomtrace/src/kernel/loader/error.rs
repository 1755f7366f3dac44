//! What can go wrong while loading: the tracer as a whole ([`LoaderError`]),
//! one hook ([`AttachError`]) and one map ([`MapError`]).
//!
//! An [`AttachError`]'s text goes into `HookStatus.error` of the start
//! record, so it says on its own what is missing on this kernel.
use std::path::PathBuf;

use aya::programs::ProgramError;

use crate::kernel::{btf, tracefs};

/// Why the tracer did not start, or the charge hook did not move.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "oomtrace needs root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8) to load and attach its eBPF programs: run it with sudo (see deploy/ for the capability set)"
    )]
    NotRoot,
    #[error(
        "kernel BTF not found at {0} (the kernel needs CONFIG_DEBUG_INFO_BTF=y): oomtrace reads kernel structure layouts from it"
    )]
    NoBtf(PathBuf),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("loading the eBPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    /// A hook the chosen backend cannot do without. (Boxed: an
    /// [`AttachError`] is large, and every `Result` here would carry it.)
    #[error("hook {hook}: {source}")]
    Hook {
        hook: String,
        #[source]
        source: Box<AttachError>,
    },
    #[error(transparent)]
    Map(#[from] MapError),
    /// Arming or disarming the on-demand fexit on the charge function.
    #[error("fexit/{function}: {source}")]
    ChargeHook {
        function: &'static str,
        #[source]
        source: Box<AttachError>,
    },
}

/// Why one hook is not attached (or the charge hook did not move).
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("tracepoint {category}:{name} does not exist on this kernel")]
    NoTracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// The raw hook reads the task from the first argument, which 5.x
    /// kernels do not pass.
    #[error(
        "this kernel's {tracepoint} tracepoint does not pass the task (BTF btf_trace_{tracepoint})"
    )]
    NoTaskArgument { tracepoint: &'static str },
    #[error("{function} is not in the kernel's BTF (inlined or absent on this kernel)")]
    NotInBtf { function: &'static str },
    #[error(
        "{function} takes ({}) here, oomtrace expects {expected} parameter(s)",
        params.join(", ")
    )]
    Signature {
        function: &'static str,
        params: Vec<String>,
        expected: usize,
    },
    #[error(
        "{function} is not in /proc/kallsyms under its own name (inlined or cloned, and its arguments are read)"
    )]
    NotExactSymbol { function: &'static str },
    #[error("{function} is not in /proc/kallsyms (inlined, or kallsyms hidden)")]
    NoSymbol { function: &'static str },
    #[error("reading BTF for fentry: {0}")]
    FentryBtf(#[source] aya::BtfError),
    #[error("program {0} is missing from the eBPF object")]
    MissingProgram(&'static str),
    /// Loading, attaching or detaching `program` failed. Not a `#[source]`:
    /// the text already holds the whole chain, with the verifier log cut to
    /// its ends, which printing the source again would undo.
    #[error("{}", error_chain(error))]
    Program {
        program: &'static str,
        error: ProgramError,
    },
    #[error(transparent)]
    Map(#[from] MapError),
}

/// A map the collector needs, missing or not of the expected type.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("eBPF map {0} is missing from the object")]
    Missing(&'static str),
    #[error("eBPF map {name}: {source}")]
    Access {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

impl MapError {
    /// For `map_err`: an aya map error on map `name`.
    pub(super) fn access(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Access { name, source }
    }
}

impl AttachError {
    /// For `map_err`: an aya program error on `program`.
    pub(super) fn program(program: &'static str) -> impl FnOnce(ProgramError) -> Self {
        move |error| Self::Program { program, error }
    }
}

/// "outer: inner: innermost" — aya's errors carry the verifier log or errno
/// in their sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    let text = text
        .trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end()
        .to_owned();
    shorten_verifier_log(text)
}

/// Verifier logs are long: keeps the start (what was loaded) and the end
/// (why the verifier refused it).
fn shorten_verifier_log(text: String) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 3000 {
        return text;
    }
    let head: String = chars[..600].iter().collect();
    let tail: String = chars[chars.len() - 2400..].iter().collect();
    format!("{head} … {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_what_is_missing() {
        let signature = AttachError::Signature {
            function: "oom_badness",
            params: vec!["p".into(), "totalpages".into(), "extra".into()],
            expected: 2,
        };
        assert_eq!(
            signature.to_string(),
            "oom_badness takes (p, totalpages, extra) here, oomtrace expects 2 parameter(s)"
        );
        let no_task = AttachError::NoTaskArgument {
            tracepoint: "mark_victim",
        };
        assert_eq!(
            no_task.to_string(),
            "this kernel's mark_victim tracepoint does not pass the task (BTF btf_trace_mark_victim)"
        );
        let hook = LoaderError::Hook {
            hook: "tracepoint/oom/mark_victim".into(),
            source: Box::new(AttachError::NoTracepoint {
                category: "oom",
                name: "mark_victim",
            }),
        };
        assert_eq!(
            hook.to_string(),
            "hook tracepoint/oom/mark_victim: tracepoint oom:mark_victim does not exist on this kernel"
        );
    }

    #[test]
    fn program_errors_carry_their_sources() {
        let error = AttachError::program("kprobe_out_of_memory")(ProgramError::KProbeError(
            aya::programs::kprobe::KProbeError::FileError {
                filename: "/sys/bus/event_source/devices/kprobe/type".into(),
                io_error: std::io::Error::from_raw_os_error(libc::ENOENT),
            },
        ));
        assert_eq!(
            error.to_string(),
            "`/sys/bus/event_source/devices/kprobe/type`: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn long_verifier_logs_keep_both_ends() {
        let log = format!("start{}end", "x".repeat(5000));
        let short = shorten_verifier_log(log);
        assert_eq!(short.chars().count(), 600 + 3 + 2400);
        assert!(short.starts_with("start") && short.ends_with("end"));
    }
}
