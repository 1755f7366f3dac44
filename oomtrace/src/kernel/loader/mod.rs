//! Loading the kernel programs and attaching them for one backend.
//!
//! A backend is a list of hooks (program name, attach point, required or
//! not). This kernel allows tracepoints and raw tracepoints only; the fentry
//! and kprobe backends add their own lists without changing the rest.
use std::path::{Path, PathBuf};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{FEntry, FExit, KProbe, ProgramError, RawTracePoint, TracePoint},
};
use oomtrace_ebpf::{ChargeFailureKey, ChargeFailureState, Config, MemcgReclaimStats, kind};

pub use oomtrace_core::base::hooks::HookStatus;

use crate::kernel::{btf, percpu, tracefs};

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

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

/// When the on-demand fexit on the charge function is attached: while a
/// memcg reclaims at its limit, never, or for the whole run (to measure it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeHookMode {
    OnDemand,
    Off,
    Always,
}

/// What `--backend` asks for: one backend, or the best that attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendRequest {
    Auto,
    Only(Backend),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "oomtrace needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN to load eBPF programs and read /dev/kmsg): run it with sudo"
    )]
    NotRoot,
    #[error(
        "kernel BTF not found at {0} (the kernel needs CONFIG_DEBUG_INFO_BTF=y): oomtrace reads kernel structure layouts from it"
    )]
    NoBtf(PathBuf),
    #[error("{0}")]
    Btf(#[from] btf::BtfError),
    #[error("{0}")]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("loading the eBPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("hook {hook}: {reason}")]
    Hook { hook: String, reason: String },
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
}

enum AttachPoint {
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

struct Hook {
    program: &'static str,
    point: AttachPoint,
    required: bool,
}

impl Hook {
    fn label(&self) -> String {
        match self.point {
            AttachPoint::TracePoint { category, name } => format!("tracepoint/{category}/{name}"),
            AttachPoint::RawTracePoint { name } => format!("raw_tracepoint/{name}"),
            AttachPoint::FEntry { function } => format!("fentry/{function}"),
            AttachPoint::FExit { function } => format!("fexit/{function}"),
            AttachPoint::KProbe { function } => format!("kprobe/{function}"),
            AttachPoint::KRetProbe { function } => format!("kretprobe/{function}"),
        }
    }

    fn function(&self) -> Option<&'static str> {
        match self.point {
            AttachPoint::FEntry { function }
            | AttachPoint::FExit { function }
            | AttachPoint::KProbe { function }
            | AttachPoint::KRetProbe { function } => Some(function),
            _ => None,
        }
    }
}

/// Parameter counts the OOM-path wrappers assume (they read the return value
/// of an fexit right after the arguments). Checked against BTF: a kernel
/// whose signature moved gets the hook reported as unavailable.
const OOM_SIGNATURES: &[(&str, usize)] = &[
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
const CHARGE_FUNCTIONS: &[&str] = &["try_charge_memcg", "try_charge"];
/// The armed charge hook's program.
const CHARGE_HOOK_PROGRAM: &str = "fexit_try_charge_memcg";

/// Functions whose kprobe must hit the function itself: a compiler clone
/// (`.constprop`, `.isra`) may take its arguments differently, and these
/// hooks read arguments.
const EXACT_KPROBE: &[&str] = &["mem_cgroup_out_of_memory"];

/// The OOM killer's path for one backend; `required` hooks make the backend.
fn oom_path_hooks(backend: Backend) -> Vec<Hook> {
    let hook = |program, point, required| Hook {
        program,
        point,
        required,
    };
    match backend {
        Backend::Fentry => vec![
            hook(
                "fentry_out_of_memory",
                AttachPoint::FEntry {
                    function: "out_of_memory",
                },
                true,
            ),
            hook(
                "fexit_out_of_memory",
                AttachPoint::FExit {
                    function: "out_of_memory",
                },
                true,
            ),
            hook(
                "fentry_oom_evaluate_task",
                AttachPoint::FEntry {
                    function: "oom_evaluate_task",
                },
                true,
            ),
            hook(
                "fexit_oom_evaluate_task",
                AttachPoint::FExit {
                    function: "oom_evaluate_task",
                },
                true,
            ),
            hook(
                "fexit_oom_badness",
                AttachPoint::FExit {
                    function: "oom_badness",
                },
                true,
            ),
            hook(
                "fentry_oom_kill_process",
                AttachPoint::FEntry {
                    function: "oom_kill_process",
                },
                true,
            ),
            hook(
                "fentry_pagefault_out_of_memory",
                AttachPoint::FEntry {
                    function: "pagefault_out_of_memory",
                },
                false,
            ),
            hook(
                "fexit_mem_cgroup_out_of_memory",
                AttachPoint::FExit {
                    function: "mem_cgroup_out_of_memory",
                },
                false,
            ),
            hook(
                "fentry_mem_cgroup_oom_synchronize",
                AttachPoint::FEntry {
                    function: "mem_cgroup_oom_synchronize",
                },
                false,
            ),
            hook(
                "fexit_mem_cgroup_oom_synchronize",
                AttachPoint::FExit {
                    function: "mem_cgroup_oom_synchronize",
                },
                false,
            ),
        ],
        Backend::Kprobe => vec![
            hook(
                "kprobe_out_of_memory",
                AttachPoint::KProbe {
                    function: "out_of_memory",
                },
                true,
            ),
            hook(
                "kretprobe_out_of_memory",
                AttachPoint::KRetProbe {
                    function: "out_of_memory",
                },
                true,
            ),
            hook(
                "kprobe_oom_evaluate_task",
                AttachPoint::KProbe {
                    function: "oom_evaluate_task",
                },
                true,
            ),
            hook(
                "kretprobe_oom_evaluate_task",
                AttachPoint::KRetProbe {
                    function: "oom_evaluate_task",
                },
                true,
            ),
            hook(
                "kretprobe_oom_badness",
                AttachPoint::KRetProbe {
                    function: "oom_badness",
                },
                true,
            ),
            hook(
                "kprobe_oom_kill_process",
                AttachPoint::KProbe {
                    function: "oom_kill_process",
                },
                true,
            ),
            hook(
                "kprobe_pagefault_out_of_memory",
                AttachPoint::KProbe {
                    function: "pagefault_out_of_memory",
                },
                false,
            ),
            hook(
                "kprobe_mem_cgroup_out_of_memory",
                AttachPoint::KProbe {
                    function: "mem_cgroup_out_of_memory",
                },
                false,
            ),
            hook(
                "kretprobe_mem_cgroup_out_of_memory",
                AttachPoint::KRetProbe {
                    function: "mem_cgroup_out_of_memory",
                },
                false,
            ),
            hook(
                "kprobe_mem_cgroup_oom_synchronize",
                AttachPoint::KProbe {
                    function: "mem_cgroup_oom_synchronize",
                },
                false,
            ),
            hook(
                "kretprobe_mem_cgroup_oom_synchronize",
                AttachPoint::KRetProbe {
                    function: "mem_cgroup_oom_synchronize",
                },
                false,
            ),
        ],
        Backend::Tracepoint => Vec::new(),
    }
}

const fn tp(
    program: &'static str,
    category: &'static str,
    name: &'static str,
    required: bool,
) -> Hook {
    Hook {
        program,
        point: AttachPoint::TracePoint { category, name },
        required,
    }
}

fn tracepoint_hooks() -> Vec<Hook> {
    vec![
        tp("oom_mark_victim", "oom", "mark_victim", true),
        Hook {
            program: "raw_mark_victim",
            point: AttachPoint::RawTracePoint {
                name: "mark_victim",
            },
            required: false,
        },
        tp("oom_wake_reaper", "oom", "wake_reaper", false),
        tp("oom_start_task_reaping", "oom", "start_task_reaping", false),
        tp(
            "oom_finish_task_reaping",
            "oom",
            "finish_task_reaping",
            false,
        ),
        tp("oom_skip_task_reaping", "oom", "skip_task_reaping", false),
        tp(
            "memcg_reclaim_begin",
            "vmscan",
            "mm_vmscan_memcg_reclaim_begin",
            false,
        ),
        tp(
            "memcg_reclaim_end",
            "vmscan",
            "mm_vmscan_memcg_reclaim_end",
            false,
        ),
        tp("sched_process_exit", "sched", "sched_process_exit", false),
    ]
}

pub struct TraceOptions {
    pub backend: BackendRequest,
    /// cgroup ids of `--cgroup` directories (empty: no filter).
    pub cgroup_ids: Vec<u64>,
    pub btf_path: PathBuf,
}

/// Loaded and attached programs with the maps the collector reads.
pub struct Tracer {
    // Owns the programs and links: dropping it detaches everything. In a
    // RefCell so the charge hook can be armed while the maps are being read.
    ebpf: std::cell::RefCell<Ebpf>,
    pub backend: Backend,
    pub hooks: Vec<HookStatus>,
    /// Kernel fields (BTF) or tracepoint fields (tracefs) this kernel lacks.
    pub unavailable: Vec<String>,
    /// Whether the raw `mark_victim` hook reads the victim (and its memcg) in the kernel.
    pub victim_task_hook: bool,
    /// Taken by the event loop.
    pub events: Option<RingBuf<MapData>>,
    drops: PerCpuArray<MapData, u64>,
    reclaim_stats: BpfHashMap<MapData, u64, MemcgReclaimStats>,
    charge_failures: BpfHashMap<MapData, ChargeFailureKey, ChargeFailureState>,
    /// The fexit on the charge function, loaded at start and attached only
    /// while a memcg reclaims at its limit (None: not available here).
    charge_hook: std::cell::RefCell<Option<ChargeHook>>,
}

/// Attached, the hook runs on every charge: it is armed only on demand.
struct ChargeHook {
    function: &'static str,
    link: Option<aya::programs::fexit::FExitLinkId>,
    armed_flag: aya::maps::Array<MapData, u32>,
}

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace-ebpf"));

pub fn ensure_root() -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LoadError::NotRoot);
    }
    Ok(())
}

impl Tracer {
    pub fn start(options: &TraceOptions) -> Result<Self, LoadError> {
        ensure_root()?;
        if !options.btf_path.exists() {
            return Err(LoadError::NoBtf(options.btf_path.clone()));
        }
        let kernel_btf = btf::KernelBtf::open(&options.btf_path)?;
        let resolved = kernel_btf.resolve_offsets()?;
        let percpu = percpu::resolve(&kernel_btf, &resolved.offsets)?;
        let tracefs_root = tracefs::tracefs_root()?;
        let layout = tracefs::read_layout(&tracefs_root)?;
        let victim_task_hook = kernel_btf
            .raw_tracepoint_first_arg_is_task("mark_victim")
            .unwrap_or(false);
        let config = Config {
            filter_enabled: u32::from(!options.cgroup_ids.is_empty()),
            raw_mark_victim_has_task: u32::from(victim_task_hook),
        };
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &resolved.offsets, true)
            .override_global("LAYOUT", &layout.layout, true)
            .override_global("CONFIG", &config, true)
            .override_global("PERCPU", &percpu.layout, true)
            .load(EBPF_OBJECT)
            .map_err(LoadError::Object)?;

        {
            let mut filter: BpfHashMap<_, u64, u8> = map(&mut ebpf, "CGROUP_FILTER")?;
            for id in &options.cgroup_ids {
                filter.insert(id, 1, 0).map_err(|source| LoadError::Map {
                    name: "CGROUP_FILTER",
                    source,
                })?;
            }
        }

        let mut hooks = Vec::new();
        let mut unavailable: Vec<String> =
            resolved.unavailable.iter().map(|f| f.to_string()).collect();
        unavailable.extend(layout.missing_fields.iter().cloned());
        unavailable.extend(percpu.unavailable);
        for hook in tracepoint_hooks() {
            let skip_reason = match hook.point {
                AttachPoint::RawTracePoint { name: "mark_victim" } if !victim_task_hook => Some(
                    "this kernel's mark_victim tracepoint does not pass the task (BTF btf_trace_mark_victim)"
                        .to_string(),
                ),
                AttachPoint::TracePoint { category, name }
                    if !tracefs::event_exists(&tracefs_root, category, name) =>
                {
                    Some(format!("tracepoint {category}:{name} does not exist on this kernel"))
                }
                _ => None,
            };
            let outcome = match skip_reason {
                Some(reason) => Err(reason),
                None => attach(&mut ebpf, &hook, None).map_err(|e| error_chain(&e)),
            };
            if let (Err(reason), true) = (&outcome, hook.required) {
                return Err(LoadError::Hook {
                    hook: hook.label(),
                    reason: reason.clone(),
                });
            }
            hooks.push(status(&hook, outcome));
        }

        // The OOM killer's own path: the first backend whose required hooks
        // all attach wins; every attempt is reported.
        let candidates: &[Backend] = match options.backend {
            BackendRequest::Auto => &[Backend::Fentry, Backend::Kprobe],
            BackendRequest::Only(Backend::Tracepoint) => &[],
            BackendRequest::Only(Backend::Fentry) => &[Backend::Fentry],
            BackendRequest::Only(Backend::Kprobe) => &[Backend::Kprobe],
        };
        let mut backend = Backend::Tracepoint;
        let mut aya_btf = None;
        for &candidate in candidates {
            let (attached, statuses) = attach_backend(
                &mut ebpf,
                candidate,
                &kernel_btf,
                &options.btf_path,
                &mut aya_btf,
            );
            let failed_required = statuses.iter().find(|h| h.required && !h.attached).cloned();
            hooks.extend(statuses);
            match failed_required {
                None => {
                    backend = candidate;
                    break;
                }
                Some(failed) => {
                    // Detach what this backend did attach: a partial OOM path is worse than none.
                    for program in attached {
                        if let Some(p) = ebpf.program_mut(program) {
                            let _ = unload_program(p);
                        }
                    }
                    if options.backend == BackendRequest::Only(candidate) {
                        return Err(LoadError::Hook {
                            hook: failed.hook,
                            reason: failed.error.unwrap_or_default(),
                        });
                    }
                }
            }
        }

        let events = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or(LoadError::MissingMap("EVENTS"))?,
        )
        .map_err(|source| LoadError::Map {
            name: "EVENTS",
            source,
        })?;
        let drops = PerCpuArray::try_from(
            ebpf.take_map("DROPS")
                .ok_or(LoadError::MissingMap("DROPS"))?,
        )
        .map_err(|source| LoadError::Map {
            name: "DROPS",
            source,
        })?;
        let reclaim_stats = BpfHashMap::try_from(
            ebpf.take_map("RECLAIM_STATS")
                .ok_or(LoadError::MissingMap("RECLAIM_STATS"))?,
        )
        .map_err(|source| LoadError::Map {
            name: "RECLAIM_STATS",
            source,
        })?;
        let charge_hook = match backend {
            Backend::Fentry => {
                let (hook, status) = load_charge_hook(&mut ebpf, &kernel_btf, aya_btf.as_ref());
                hooks.push(status);
                hook
            }
            _ => None,
        };
        let charge_failures = BpfHashMap::try_from(
            ebpf.take_map("CHARGE_FAILURES")
                .ok_or(LoadError::MissingMap("CHARGE_FAILURES"))?,
        )
        .map_err(|source| LoadError::Map {
            name: "CHARGE_FAILURES",
            source,
        })?;
        Ok(Self {
            ebpf: std::cell::RefCell::new(ebpf),
            backend,
            hooks,
            unavailable,
            victim_task_hook,
            events: Some(events),
            drops,
            reclaim_stats,
            charge_failures,
            charge_hook: std::cell::RefCell::new(charge_hook),
        })
    }

    /// Ring-buffer reserves that failed so far, per event kind (summed over CPUs).
    pub fn drops(&self) -> Vec<(u32, u64)> {
        (0..kind::COUNT)
            .map(|k| {
                let total = self
                    .drops
                    .get(&k, 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .unwrap_or(0);
                (k, total)
            })
            .collect()
    }

    pub fn reclaim_stats(&self, memcg_id: u64) -> Option<MemcgReclaimStats> {
        self.reclaim_stats.get(&memcg_id, 0).ok()
    }

    /// Charge-failure counts per memcg (cgroup id), reported or rate-limited.
    pub fn charge_failure_counts(&self) -> Vec<(ChargeFailureKey, ChargeFailureState)> {
        self.charge_failures.iter().filter_map(Result::ok).collect()
    }

    /// Gives up on the charge hook (it could not be attached or detached).
    pub fn drop_charge_hook(&self) {
        self.charge_hook.borrow_mut().take();
    }

    /// The most recent end of a memcg reclaim pass (boot ns), any memcg.
    pub fn latest_reclaim_boot_ns(&self) -> Option<u64> {
        self.reclaim_stats
            .iter()
            .filter_map(Result::ok)
            .map(|(_, stats)| stats.last_end_boot_ns)
            .max()
    }

    /// Whether the on-demand charge hook exists, and whether it is armed now.
    pub fn charge_hook_state(&self) -> Option<bool> {
        self.charge_hook.borrow().as_ref().map(|h| h.link.is_some())
    }

    /// Attaches (`armed`) or detaches the fexit on the charge function.
    /// The kernel-side flag follows, so the OOM path does not report a
    /// failure twice.
    pub fn set_charge_hook(&self, armed: bool) -> Result<(), String> {
        let mut hook = self.charge_hook.borrow_mut();
        let Some(hook) = hook.as_mut() else {
            return Ok(());
        };
        if hook.link.is_some() == armed {
            return Ok(());
        }
        let mut ebpf = self.ebpf.borrow_mut();
        let program: &mut FExit = ebpf
            .program_mut(CHARGE_HOOK_PROGRAM)
            .ok_or("charge hook program missing")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        let function = hook.function;
        let flag_error = |e: aya::maps::MapError| format!("arming fexit/{function}: {e}");
        if armed {
            let link = program.attach().map_err(|e| error_chain(&e))?;
            hook.link = Some(link);
            hook.armed_flag.set(0, 1, 0).map_err(flag_error)?;
        } else {
            // Flag first: a failure in between is then reported by the OOM path.
            hook.armed_flag.set(0, 0, 0).map_err(flag_error)?;
            if let Some(link) = hook.link.take() {
                program.detach(link).map_err(|e| error_chain(&e))?;
            }
        }
        Ok(())
    }

    /// Tells the candidate hooks which rss read this kernel's OOM killer
    /// uses (an `oomtrace_ebpf::rss_rule` value, learned from its own
    /// numbers): with `COUNTER` they stop summing per-CPU counters.
    pub fn set_rss_rule(&self, rule: u32) -> Result<(), String> {
        let mut ebpf = self.ebpf.borrow_mut();
        let map = ebpf.map_mut("RSS_RULE").ok_or("map RSS_RULE missing")?;
        let mut array: aya::maps::Array<&mut MapData, u32> =
            aya::maps::Array::try_from(map).map_err(|e| e.to_string())?;
        array.set(0, rule, 0).map_err(|e| e.to_string())
    }

    /// How many of the hooks on `function` attached (entry and exit count apart).
    pub fn attached_hooks_on(&self, function: &str) -> usize {
        let suffix = format!("/{function}");
        self.hooks
            .iter()
            .filter(|h| h.attached && h.hook.ends_with(&suffix))
            .count()
    }
}

/// Loads (verifies) the charge hook without attaching it; reported in the
/// start record as `fexit/<function> (on demand)`.
fn load_charge_hook(
    ebpf: &mut Ebpf,
    kernel_btf: &btf::KernelBtf,
    aya_btf: Option<&Btf>,
) -> (Option<ChargeHook>, HookStatus) {
    let function = CHARGE_FUNCTIONS
        .iter()
        .copied()
        .find(|f| kernel_btf.func_params(f).is_some())
        .unwrap_or(CHARGE_FUNCTIONS[0]);
    let label = format!("fexit/{function} (on demand)");
    let outcome = (|| {
        check_signature(kernel_btf, function)?;
        let btf = aya_btf.ok_or("no BTF for fentry")?;
        let program: &mut FExit = ebpf
            .program_mut(CHARGE_HOOK_PROGRAM)
            .ok_or("program missing from the object")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        program.load(function, btf).map_err(|e| error_chain(&e))?;
        let map = ebpf
            .take_map("CHARGE_HOOK_ARMED")
            .ok_or("map CHARGE_HOOK_ARMED missing")?;
        let armed_flag = aya::maps::Array::try_from(map).map_err(|e| e.to_string())?;
        Ok::<_, String>(ChargeHook {
            function,
            link: None,
            armed_flag,
        })
    })();
    let status = HookStatus {
        hook: label,
        attached: outcome.is_ok(),
        required: false,
        error: outcome.as_ref().err().cloned(),
    };
    (outcome.ok(), status)
}

fn map<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<BpfHashMap<&'a mut MapData, u64, u8>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    BpfHashMap::try_from(map).map_err(|source| LoadError::Map { name, source })
}

fn status(hook: &Hook, outcome: Result<(), String>) -> HookStatus {
    HookStatus {
        hook: hook.label(),
        attached: outcome.is_ok(),
        required: hook.required,
        error: outcome.err(),
    }
}

/// Attaches one backend's OOM-path hooks; returns the programs attached and
/// every hook's status.
fn attach_backend(
    ebpf: &mut Ebpf,
    backend: Backend,
    kernel_btf: &btf::KernelBtf,
    btf_path: &Path,
    aya_btf: &mut Option<Btf>,
) -> (Vec<&'static str>, Vec<HookStatus>) {
    let mut attached = Vec::new();
    let mut statuses = Vec::new();
    let mut kallsyms = None;
    for hook in oom_path_hooks(backend) {
        let function = hook.function().expect("OOM-path hooks name a function");
        let outcome = check_signature(kernel_btf, function).and_then(|()| {
            let symbol = match hook.point {
                AttachPoint::KProbe { .. } | AttachPoint::KRetProbe { .. } => {
                    kprobe_symbol(kallsyms.get_or_insert_with(read_kallsyms), function)?
                }
                _ => function.to_owned(),
            };
            if matches!(
                hook.point,
                AttachPoint::FEntry { .. } | AttachPoint::FExit { .. }
            ) && aya_btf.is_none()
            {
                *aya_btf = Some(
                    Btf::parse_file(btf_path, aya::Endianness::default())
                        .map_err(|e| format!("reading BTF for fentry: {e}"))?,
                );
            }
            attach(ebpf, &hook, Some((&symbol, aya_btf.as_ref()))).map_err(|e| error_chain(&e))
        });
        if outcome.is_ok() {
            attached.push(hook.program);
        }
        statuses.push(status(&hook, outcome));
    }
    (attached, statuses)
}

fn check_signature(kernel_btf: &btf::KernelBtf, function: &str) -> Result<(), String> {
    let Some(&(_, expected)) = OOM_SIGNATURES.iter().find(|(f, _)| *f == function) else {
        return Ok(());
    };
    match kernel_btf.func_params(function) {
        None => Err(format!(
            "{function} is not in the kernel's BTF (inlined or absent on this kernel)"
        )),
        Some(params) if params.len() != expected => Err(format!(
            "{function} takes ({}) here, oomtrace expects {expected} parameter(s)",
            params.join(", ")
        )),
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
fn kprobe_symbol(kallsyms: &[String], function: &str) -> Result<String, String> {
    if kallsyms.iter().any(|s| s == function) {
        return Ok(function.to_owned());
    }
    if EXACT_KPROBE.contains(&function) {
        return Err(format!(
            "{function} is not in /proc/kallsyms under its own name (inlined or cloned, and its arguments are read)"
        ));
    }
    let prefix = format!("{function}.");
    kallsyms
        .iter()
        .find(|s| s.starts_with(&prefix) && !s.contains(".cold"))
        .cloned()
        .ok_or_else(|| format!("{function} is not in /proc/kallsyms (inlined, or kallsyms hidden)"))
}

fn unload_program(program: &mut aya::programs::Program) -> Result<(), ProgramError> {
    use aya::programs::Program;
    match program {
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::KProbe(p) => p.unload(),
        _ => Ok(()),
    }
}

fn attach(
    ebpf: &mut Ebpf,
    hook: &Hook,
    target: Option<(&str, Option<&Btf>)>,
) -> Result<(), ProgramError> {
    let program = ebpf
        .program_mut(hook.program)
        .ok_or(ProgramError::UnexpectedProgramType)?;
    match hook.point {
        AttachPoint::TracePoint { category, name } => {
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            program.attach(category, name)?;
        }
        AttachPoint::RawTracePoint { name } => {
            let program: &mut RawTracePoint = program.try_into()?;
            program.load()?;
            program.attach(name)?;
        }
        AttachPoint::FEntry { function } => {
            let btf = target
                .and_then(|(_, btf)| btf)
                .ok_or(ProgramError::UnexpectedProgramType)?;
            let program: &mut FEntry = program.try_into()?;
            program.load(function, btf)?;
            program.attach()?;
        }
        AttachPoint::FExit { function } => {
            let btf = target
                .and_then(|(_, btf)| btf)
                .ok_or(ProgramError::UnexpectedProgramType)?;
            let program: &mut FExit = program.try_into()?;
            program.load(function, btf)?;
            program.attach()?;
        }
        AttachPoint::KProbe { function } | AttachPoint::KRetProbe { function } => {
            let symbol = target.map_or(function, |(symbol, _)| symbol);
            let program: &mut KProbe = program.try_into()?;
            program.load()?;
            program.attach(symbol, 0)?;
        }
    }
    Ok(())
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
    // Verifier logs are long: keep the start (what was loaded) and the end
    // (why the verifier refused it).
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 3000 {
        return text;
    }
    let head: String = chars[..600].iter().collect();
    let tail: String = chars[chars.len() - 2400..].iter().collect();
    format!("{head} … {tail}")
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct; failure only matters on old kernels.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Path used for `--btf` default, kept here so the CLI and tests agree.
pub fn default_btf_path() -> &'static Path {
    Path::new(BTF_PATH)
}
