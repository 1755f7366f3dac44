//! Which hooks each backend has: program name, attach point, and whether the
//! backend is worth anything without it. Data only; attaching is `attach.rs`.

/// Where the kernel runs the OOM killer's path is hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// fentry/fexit on the OOM killer's functions: every candidate with the
    /// kernel's own points (BPF trampolines; most distro kernels).
    Fentry,
    /// The same hooks as kprobes/kretprobes (kernels without trampolines).
    Kprobe,
    /// Tracepoints and raw tracepoints plus the kernel's OOM report (works
    /// where fentry and kprobes are locked down).
    Tracepoint,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fentry => "fentry",
            Backend::Kprobe => "kprobe",
            Backend::Tracepoint => "tracepoint",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttachPoint {
    TracePoint {
        category: &'static str,
        name: &'static str,
    },
    RawTracePoint {
        name: &'static str,
    },
    FEntry {
        function: &'static str,
    },
    FExit {
        function: &'static str,
    },
    KProbe {
        function: &'static str,
    },
    KRetProbe {
        function: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hook {
    pub program: &'static str,
    pub point: AttachPoint,
    /// A backend whose required hook fails is not used at all.
    pub required: bool,
}

impl Hook {
    /// `kind/target`, as the start record names the hook.
    pub fn label(&self) -> String {
        match self.point {
            AttachPoint::TracePoint { category, name } => format!("tracepoint/{category}/{name}"),
            AttachPoint::RawTracePoint { name } => format!("raw_tracepoint/{name}"),
            AttachPoint::FEntry { function } => format!("fentry/{function}"),
            AttachPoint::FExit { function } => format!("fexit/{function}"),
            AttachPoint::KProbe { function } => format!("kprobe/{function}"),
            AttachPoint::KRetProbe { function } => format!("kretprobe/{function}"),
        }
    }

    const fn new(program: &'static str, point: AttachPoint, required: bool) -> Self {
        Self {
            program,
            point,
            required,
        }
    }
}

const REQUIRED: bool = true;
const OPTIONAL: bool = false;

const fn tp(
    program: &'static str,
    category: &'static str,
    name: &'static str,
    required: bool,
) -> Hook {
    Hook::new(
        program,
        AttachPoint::TracePoint { category, name },
        required,
    )
}

const fn raw_tp(program: &'static str, name: &'static str, required: bool) -> Hook {
    Hook::new(program, AttachPoint::RawTracePoint { name }, required)
}

const fn fentry(program: &'static str, function: &'static str, required: bool) -> Hook {
    Hook::new(program, AttachPoint::FEntry { function }, required)
}

const fn fexit(program: &'static str, function: &'static str, required: bool) -> Hook {
    Hook::new(program, AttachPoint::FExit { function }, required)
}

const fn kprobe(program: &'static str, function: &'static str, required: bool) -> Hook {
    Hook::new(program, AttachPoint::KProbe { function }, required)
}

const fn kretprobe(program: &'static str, function: &'static str, required: bool) -> Hook {
    Hook::new(program, AttachPoint::KRetProbe { function }, required)
}

/// The raw `mark_victim` hook reads the victim (and its memcg) in the
/// kernel; it needs a kernel that passes the task (6.8+).
pub(super) const RAW_MARK_VICTIM: &str = "raw_mark_victim";

/// Every backend has these; `oom/mark_victim` is the one the tracepoint
/// backend cannot do without.
#[rustfmt::skip] // one hook a line
pub(super) const TRACEPOINT_HOOKS: &[Hook] = &[
    tp("oom_mark_victim",         "oom",    "mark_victim",                   REQUIRED),
    raw_tp(RAW_MARK_VICTIM,                 "mark_victim",                   OPTIONAL),
    tp("oom_wake_reaper",         "oom",    "wake_reaper",                   OPTIONAL),
    tp("oom_start_task_reaping",  "oom",    "start_task_reaping",            OPTIONAL),
    tp("oom_finish_task_reaping", "oom",    "finish_task_reaping",           OPTIONAL),
    tp("oom_skip_task_reaping",   "oom",    "skip_task_reaping",             OPTIONAL),
    tp("memcg_reclaim_begin",     "vmscan", "mm_vmscan_memcg_reclaim_begin", OPTIONAL),
    tp("memcg_reclaim_end",       "vmscan", "mm_vmscan_memcg_reclaim_end",   OPTIONAL),
    tp("sched_process_exit",      "sched",  "sched_process_exit",            OPTIONAL),
    tp(PROCESS_EXEC,              "sched",  "sched_process_exec",            OPTIONAL),
];

/// The exec hook whose events make the collector read command lines; not
/// attached with `--no-cmdline`.
pub(super) const PROCESS_EXEC: &str = "sched_process_exec";

/// The OOM killer's own path as fentry/fexit. An fexit sees the arguments
/// too, so one exit hook does where kprobes need an entry and an exit.
#[rustfmt::skip] // one hook a line
const FENTRY_HOOKS: &[Hook] = &[
    fentry("fentry_out_of_memory",              "out_of_memory",              REQUIRED),
    fexit("fexit_out_of_memory",                "out_of_memory",              REQUIRED),
    fentry("fentry_oom_evaluate_task",          "oom_evaluate_task",          REQUIRED),
    fexit("fexit_oom_evaluate_task",            "oom_evaluate_task",          REQUIRED),
    fexit("fexit_oom_badness",                  "oom_badness",                REQUIRED),
    fentry("fentry_oom_kill_process",           "oom_kill_process",           REQUIRED),
    fentry("fentry_pagefault_out_of_memory",    "pagefault_out_of_memory",    OPTIONAL),
    fexit("fexit_mem_cgroup_out_of_memory",     "mem_cgroup_out_of_memory",   OPTIONAL),
    fentry("fentry_mem_cgroup_oom_synchronize", "mem_cgroup_oom_synchronize", OPTIONAL),
    fexit("fexit_mem_cgroup_oom_synchronize",   "mem_cgroup_oom_synchronize", OPTIONAL),
];

/// The same path as kprobes/kretprobes.
#[rustfmt::skip] // one hook a line
const KPROBE_HOOKS: &[Hook] = &[
    kprobe("kprobe_out_of_memory",                    "out_of_memory",              REQUIRED),
    kretprobe("kretprobe_out_of_memory",              "out_of_memory",              REQUIRED),
    kprobe("kprobe_oom_evaluate_task",                "oom_evaluate_task",          REQUIRED),
    kretprobe("kretprobe_oom_evaluate_task",          "oom_evaluate_task",          REQUIRED),
    kretprobe("kretprobe_oom_badness",                "oom_badness",                REQUIRED),
    kprobe("kprobe_oom_kill_process",                 "oom_kill_process",           REQUIRED),
    kprobe("kprobe_pagefault_out_of_memory",          "pagefault_out_of_memory",    OPTIONAL),
    kprobe("kprobe_mem_cgroup_out_of_memory",         "mem_cgroup_out_of_memory",   OPTIONAL),
    kretprobe("kretprobe_mem_cgroup_out_of_memory",   "mem_cgroup_out_of_memory",   OPTIONAL),
    kprobe("kprobe_mem_cgroup_oom_synchronize",       "mem_cgroup_oom_synchronize", OPTIONAL),
    kretprobe("kretprobe_mem_cgroup_oom_synchronize", "mem_cgroup_oom_synchronize", OPTIONAL),
];

/// The OOM killer's path for one backend (none for tracepoints).
pub(super) fn oom_path_hooks(backend: Backend) -> &'static [Hook] {
    match backend {
        Backend::Fentry => FENTRY_HOOKS,
        Backend::Kprobe => KPROBE_HOOKS,
        Backend::Tracepoint => &[],
    }
}

/// Parameter counts the OOM-path programs assume (an fexit reads the return
/// value right after the arguments). Checked against BTF: a kernel whose
/// signature moved gets the hook reported as unavailable.
pub(super) const OOM_SIGNATURES: &[(&str, usize)] = &[
    ("out_of_memory", 1),
    ("oom_evaluate_task", 2),
    ("oom_badness", 2),
    ("oom_kill_process", 2),
    ("pagefault_out_of_memory", 0),
    ("mem_cgroup_out_of_memory", 3),
    ("mem_cgroup_oom_synchronize", 1),
    ("try_charge_memcg", 3),
    ("try_charge", 3),
];

/// The charge function: `try_charge_memcg` since 5.15, `try_charge` before.
pub(super) const CHARGE_FUNCTIONS: &[&str] = &["try_charge_memcg", "try_charge"];
/// The on-demand charge hook's program (an fexit, whichever the function).
pub(super) const CHARGE_HOOK_PROGRAM: &str = "fexit_try_charge_memcg";

/// Functions whose kprobe must hit the function itself: a compiler clone
/// (`.constprop`, `.isra`) may take its arguments differently, and these
/// hooks read arguments.
pub(super) const EXACT_KPROBE: &[&str] = &["mem_cgroup_out_of_memory"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_oom_path_function_has_a_checked_signature() {
        for hook in FENTRY_HOOKS.iter().chain(KPROBE_HOOKS) {
            let (AttachPoint::FEntry { function }
            | AttachPoint::FExit { function }
            | AttachPoint::KProbe { function }
            | AttachPoint::KRetProbe { function }) = hook.point
            else {
                panic!("{} is not on a function", hook.label());
            };
            assert!(
                OOM_SIGNATURES.iter().any(|(f, _)| *f == function),
                "{function} has no expected signature"
            );
        }
    }

    #[test]
    fn program_names_are_unique_and_labels_as_before() {
        let all: Vec<&Hook> = TRACEPOINT_HOOKS
            .iter()
            .chain(FENTRY_HOOKS)
            .chain(KPROBE_HOOKS)
            .collect();
        let mut names: Vec<_> = all.iter().map(|h| h.program).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(TRACEPOINT_HOOKS[0].label(), "tracepoint/oom/mark_victim");
        assert_eq!(TRACEPOINT_HOOKS[1].label(), "raw_tracepoint/mark_victim");
        assert_eq!(FENTRY_HOOKS[1].label(), "fexit/out_of_memory");
        assert_eq!(KPROBE_HOOKS[1].label(), "kretprobe/out_of_memory");
    }
}
