//! Loading the kernel programs and attaching them for one backend.
//!
//! A backend is a list of hooks (program name, attach point, required or
//! not). This kernel allows tracepoints and raw tracepoints only; the fentry
//! and kprobe backends add their own lists without changing the rest.
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{ProgramError, RawTracePoint, TracePoint},
};
use oomtrace_ebpf::{Config, MemcgReclaimStats, kind};

use crate::{btf, tracefs};

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Tracepoints and raw tracepoints plus the kernel's OOM report (works
    /// where fentry/kprobes are locked down).
    Tracepoint,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Tracepoint => "tracepoint",
        }
    }
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

/// What happened to one hook; reported in the `start` record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookStatus {
    pub hook: String,
    pub attached: bool,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

enum AttachPoint {
    TracePoint {
        category: &'static str,
        name: &'static str,
    },
    RawTracePoint {
        name: &'static str,
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
        }
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
    pub backend: Backend,
    /// cgroup ids of `--cgroup` directories (empty: no filter).
    pub cgroup_ids: Vec<u64>,
    pub btf_path: PathBuf,
}

/// Loaded and attached programs with the maps the collector reads.
pub struct Tracer {
    // Owns the programs and links: dropping it detaches everything.
    _ebpf: Ebpf,
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
            let result = match skip_reason {
                Some(reason) => Err(reason),
                None => attach(&mut ebpf, &hook).map_err(|e| error_chain(&e)),
            };
            match result {
                Ok(()) => hooks.push(HookStatus {
                    hook: hook.label(),
                    attached: true,
                    required: hook.required,
                    error: None,
                }),
                Err(reason) if hook.required => {
                    return Err(LoadError::Hook {
                        hook: hook.label(),
                        reason,
                    });
                }
                Err(reason) => hooks.push(HookStatus {
                    hook: hook.label(),
                    attached: false,
                    required: false,
                    error: Some(reason),
                }),
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
        Ok(Self {
            _ebpf: ebpf,
            backend: options.backend,
            hooks,
            unavailable,
            victim_task_hook,
            events: Some(events),
            drops,
            reclaim_stats,
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
}

fn map<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<BpfHashMap<&'a mut MapData, u64, u8>, LoadError> {
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
    BpfHashMap::try_from(map).map_err(|source| LoadError::Map { name, source })
}

fn attach(ebpf: &mut Ebpf, hook: &Hook) -> Result<(), ProgramError> {
    let program = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| ProgramError::UnexpectedProgramType)?;
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
    // Verifier logs are long; the first lines say what failed.
    match text.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
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
