//! Loading the kernel programs and attaching them for one backend.
//!
//! [`Tracer::start`] runs in steps: preflight (root, BTF offsets, tracepoint
//! layouts) → load the object with them → fill the cgroup filter → attach
//! the tracepoints every backend has → choose the OOM-path backend (the first
//! whose required hooks all attach) → load its charge hook → take the maps.
//! A backend is a table of hooks (`hooks.rs`); this kernel allows
//! tracepoints and raw tracepoints only, and the fentry and kprobe backends
//! add their own tables without changing the rest.
mod attach;
mod charge_hook;
mod error;
mod hooks;
mod maps;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
};
use oomtrace_ebpf::{ChargeFailureKey, ChargeFailureState, Config, MemcgReclaimStats, kind};

pub use error::{AttachError, LoaderError, MapError};
pub use hooks::Backend;
pub use oomtrace_core::base::hooks::HookStatus;

use self::{
    attach::Targets,
    charge_hook::ChargeHook,
    hooks::{Hook, PROCESS_EXEC, RAW_MARK_VICTIM, TRACEPOINT_HOOKS},
    maps::Maps,
};
use crate::kernel::{btf, percpu, tracefs};

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// When the on-demand fexit on the charge function is attached: while a
/// memcg's reclaim falls short of its target, never, or for the whole run
/// (to measure it).
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

impl BackendRequest {
    /// The OOM-path backends to try, best first (none: tracepoints only).
    fn candidates(self) -> &'static [Backend] {
        match self {
            BackendRequest::Auto => &[Backend::Fentry, Backend::Kprobe],
            BackendRequest::Only(Backend::Tracepoint) => &[],
            BackendRequest::Only(Backend::Fentry) => &[Backend::Fentry],
            BackendRequest::Only(Backend::Kprobe) => &[Backend::Kprobe],
        }
    }
}

pub struct TraceOptions {
    pub backend: BackendRequest,
    /// cgroup ids of `--cgroup` directories (empty: no filter).
    pub cgroup_ids: Vec<u64>,
    pub btf_path: PathBuf,
    /// Attach the exec hook (command lines are read): not with `--no-cmdline`.
    pub cmdline: bool,
}

/// Loaded and attached programs with the maps the collector reads.
pub struct Tracer {
    // Owns the programs and links: dropping it detaches everything. In a
    // RefCell so the charge hook can be armed while the maps are being read.
    ebpf: RefCell<Ebpf>,
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
    /// on demand (None: not available here).
    charge_hook: RefCell<Option<ChargeHook>>,
}

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace-ebpf"));

/// Root, or a non-root process holding what loading and attaching needs:
/// CAP_BPF and CAP_PERFMON (5.8+), or CAP_SYS_ADMIN. The rest (tracefs,
/// the kernel log, self-protection) is checked where it is used, so a
/// missing extra is one clear error or warning there.
pub fn ensure_privileges() -> Result<(), LoaderError> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let held = crate::kernel::facts::effective_capabilities().unwrap_or(0);
    let has = |cap: u32| held & (1 << cap) != 0;
    if (has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    Err(LoaderError::NotRoot)
}

impl Tracer {
    pub fn start(options: &TraceOptions) -> Result<Self, LoaderError> {
        let kernel = Preflight::run(options)?;
        let mut ebpf = load(&kernel, !options.cgroup_ids.is_empty())?;
        maps::fill_cgroup_filter(&mut ebpf, &options.cgroup_ids)?;
        let mut targets = Targets::new(&kernel.signatures, &options.btf_path, &kernel.tracefs_root);
        let mut hooks = attach_tracepoints(
            &mut ebpf,
            &mut targets,
            kernel.victim_task_hook,
            options.cmdline,
        )?;
        let backend = choose_backend(&mut ebpf, &mut targets, options.backend, &mut hooks)?;
        let charge_hook = load_charge_hook(&mut ebpf, &mut targets, backend, &mut hooks);
        let maps = Maps::take(&mut ebpf)?;
        // Free what only the start-up needed (aya's BTF, kallsyms), then trim.
        drop(targets);
        let (unavailable, victim_task_hook) = (kernel.unavailable(), kernel.victim_task_hook);
        drop(kernel);
        release_start_up_memory();
        Ok(Self {
            ebpf: RefCell::new(ebpf),
            backend,
            hooks,
            unavailable,
            victim_task_hook,
            events: Some(maps.events),
            drops: maps.drops,
            reclaim_stats: maps.reclaim_stats,
            charge_failures: maps.charge_failures,
            charge_hook: RefCell::new(charge_hook),
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

    /// Memcg reclaim passes the kernel counted so far, over every memcg:
    /// (all passes, those that fell short of their target).
    pub fn reclaim_pass_counts(&self) -> (u64, u64) {
        self.reclaim_stats
            .iter()
            .filter_map(Result::ok)
            .fold((0, 0), |(all, short), (_, s)| {
                (
                    all.wrapping_add(s.passes),
                    short.wrapping_add(s.short_passes),
                )
            })
    }

    /// Charge-failure counts per memcg (cgroup id), reported or rate-limited.
    pub fn charge_failure_counts(&self) -> Vec<(ChargeFailureKey, ChargeFailureState)> {
        self.charge_failures.iter().filter_map(Result::ok).collect()
    }

    /// Whether the on-demand charge hook exists, and whether it is armed now.
    pub fn charge_hook_state(&self) -> Option<bool> {
        self.charge_hook.borrow().as_ref().map(ChargeHook::is_armed)
    }

    /// Attaches (`armed`) or detaches the fexit on the charge function.
    /// Without a charge hook there is nothing to do.
    pub fn set_charge_hook(&self, armed: bool) -> Result<(), LoaderError> {
        let mut hook = self.charge_hook.borrow_mut();
        let Some(hook) = hook.as_mut() else {
            return Ok(());
        };
        let function = hook.function;
        hook.set_armed(&mut self.ebpf.borrow_mut(), armed)
            .map_err(|source| LoaderError::ChargeHook {
                function,
                source: Box::new(source),
            })
    }

    /// Gives up on the charge hook (it could not be attached or detached).
    pub fn drop_charge_hook(&self) {
        self.charge_hook.borrow_mut().take();
    }

    /// Tells the candidate hooks which rss read this kernel's OOM killer
    /// uses (an `oomtrace_ebpf::rss_rule` value, learned from its own
    /// numbers): with `COUNTER` they stop summing per-CPU counters.
    pub fn set_rss_rule(&self, rule: u32) -> Result<(), LoaderError> {
        Ok(maps::set_rss_rule(&mut self.ebpf.borrow_mut(), rule)?)
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

/// What the kernel says before anything is loaded: the struct offsets and
/// tracepoint layouts the programs are built with, and where to attach.
struct Preflight {
    /// The signatures of the functions the backends hook.
    signatures: btf::Signatures,
    offsets: btf::ResolvedOffsets,
    /// Where the per-CPU rss counters live, for the programs' sums.
    percpu: percpu::ResolvedPercpu,
    tracefs_root: PathBuf,
    layout: tracefs::LayoutReport,
    /// The raw `mark_victim` tracepoint passes the task (6.8+).
    victim_task_hook: bool,
}

impl Preflight {
    fn run(options: &TraceOptions) -> Result<Self, LoaderError> {
        ensure_privileges()?;
        if !options.btf_path.exists() {
            return Err(LoaderError::NoBtf(options.btf_path.clone()));
        }
        let btf = btf::KernelBtf::open(&options.btf_path)?;
        let offsets = btf.resolve_offsets()?;
        let percpu = percpu::resolve(&btf, &offsets.offsets)?;
        let tracefs_root = tracefs::tracefs_root()?;
        let layout = tracefs::read_layout(&tracefs_root)?;
        let victim_task_hook = btf
            .raw_tracepoint_first_arg_is_task("mark_victim")
            .unwrap_or(false);
        let signatures = btf.signatures(hooks::OOM_SIGNATURES.iter().map(|&(f, _)| f));
        // The parsed BTF is the largest thing oomtrace ever holds: freed
        // here, before aya parses the file its own way to load the programs.
        drop(btf);
        Ok(Self {
            signatures,
            offsets,
            percpu,
            tracefs_root,
            layout,
            victim_task_hook,
        })
    }

    /// Kernel fields (BTF), then tracepoint fields (tracefs), then what keeps
    /// the per-CPU rss sums off, that this kernel lacks.
    fn unavailable(&self) -> Vec<String> {
        let fields = self.offsets.unavailable.iter().map(|f| f.to_string());
        fields
            .chain(self.layout.missing_fields.iter().cloned())
            .chain(self.percpu.unavailable.iter().cloned())
            .collect()
    }
}

/// Loads the object with the offsets, layouts and configuration as globals
/// (read-only to the programs, so the verifier prunes what they disable).
fn load(kernel: &Preflight, cgroup_filter: bool) -> Result<Ebpf, LoaderError> {
    let config = Config {
        filter_enabled: u32::from(cgroup_filter),
        raw_mark_victim_has_task: u32::from(kernel.victim_task_hook),
    };
    raise_memlock_limit();
    EbpfLoader::new()
        // The object has no CO-RE relocations (Rust eBPF cannot emit them;
        // offsets come from btf/ as globals), so the loader needs no kernel
        // BTF: this frees the copy new() parsed. fentry parses its own, after.
        .btf(None)
        .override_global("OFFSETS", &kernel.offsets.offsets, true)
        .override_global("LAYOUT", &kernel.layout.layout, true)
        .override_global("CONFIG", &config, true)
        .override_global("PERCPU", &kernel.percpu.layout, true)
        .load(EBPF_OBJECT)
        .map_err(LoaderError::Object)
}

/// Attaches the hooks every backend has; a required one that fails stops
/// the start.
fn attach_tracepoints(
    ebpf: &mut Ebpf,
    targets: &mut Targets,
    victim_task_hook: bool,
    cmdline: bool,
) -> Result<Vec<HookStatus>, LoaderError> {
    let mut statuses = Vec::new();
    for hook in TRACEPOINT_HOOKS {
        if hook.program == PROCESS_EXEC && !cmdline {
            continue;
        }
        let outcome = if hook.program == RAW_MARK_VICTIM && !victim_task_hook {
            Err(AttachError::NoTaskArgument {
                tracepoint: "mark_victim",
            })
        } else {
            targets.attach(ebpf, hook)
        };
        statuses.push(status(hook, &outcome));
        if let Err(source) = outcome
            && hook.required
        {
            return Err(LoaderError::Hook {
                hook: hook.label(),
                source: Box::new(source),
            });
        }
    }
    Ok(statuses)
}

/// The OOM killer's own path: the first candidate whose required hooks all
/// attach wins; every attempt is reported in `hooks`. With none, the
/// tracepoints alone are the backend.
fn choose_backend(
    ebpf: &mut Ebpf,
    targets: &mut Targets,
    request: BackendRequest,
    hooks: &mut Vec<HookStatus>,
) -> Result<Backend, LoaderError> {
    for &candidate in request.candidates() {
        let attempt = attach_backend(ebpf, targets, candidate);
        hooks.extend(attempt.statuses);
        let Some(failed) = attempt.failed_required else {
            return Ok(candidate);
        };
        // A partial OOM path is worse than none.
        attach::unload(ebpf, &attempt.attached);
        if request == BackendRequest::Only(candidate) {
            return Err(failed);
        }
    }
    Ok(Backend::Tracepoint)
}

/// One backend's try at the OOM path.
struct Attempt {
    /// Programs attached, to unload if the backend is given up.
    attached: Vec<&'static str>,
    statuses: Vec<HookStatus>,
    /// The first required hook that failed.
    failed_required: Option<LoaderError>,
}

fn attach_backend(ebpf: &mut Ebpf, targets: &mut Targets, backend: Backend) -> Attempt {
    let mut attempt = Attempt {
        attached: Vec::new(),
        statuses: Vec::new(),
        failed_required: None,
    };
    for hook in hooks::oom_path_hooks(backend) {
        let outcome = targets.attach(ebpf, hook);
        attempt.statuses.push(status(hook, &outcome));
        match outcome {
            Ok(()) => attempt.attached.push(hook.program),
            Err(source) if hook.required && attempt.failed_required.is_none() => {
                attempt.failed_required = Some(LoaderError::Hook {
                    hook: hook.label(),
                    source: Box::new(source),
                });
            }
            Err(_) => {}
        }
    }
    attempt
}

/// The charge hook exists with the fentry backend only (it is an fexit).
fn load_charge_hook(
    ebpf: &mut Ebpf,
    targets: &mut Targets,
    backend: Backend,
    hooks: &mut Vec<HookStatus>,
) -> Option<ChargeHook> {
    if backend != Backend::Fentry {
        return None;
    }
    let (hook, status) = ChargeHook::load(ebpf, targets);
    hooks.push(status);
    hook
}

fn status(hook: &Hook, outcome: &Result<(), AttachError>) -> HookStatus {
    HookStatus {
        hook: hook.label(),
        attached: outcome.is_ok(),
        required: hook.required,
        error: outcome.as_ref().err().map(ToString::to_string),
    }
}

/// The start-up parsed the kernel BTF (ours, then aya's) and freed it; glibc
/// keeps freed heap memory for reuse unless asked to give it back: without
/// this the idle tracer held 29 MiB instead of 8 (docs/bench.md).
fn release_start_up_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every program a hook table names is in the embedded object (its
    /// name is in the ELF symbol table): a typo would otherwise show up
    /// only as a hook that never attaches.
    #[test]
    fn hook_tables_name_programs_of_the_object() {
        let all = TRACEPOINT_HOOKS
            .iter()
            .chain(hooks::oom_path_hooks(Backend::Fentry))
            .chain(hooks::oom_path_hooks(Backend::Kprobe))
            .map(|h| h.program)
            .chain([hooks::CHARGE_HOOK_PROGRAM]);
        for program in all {
            let symbol = format!("\0{program}\0");
            assert!(
                EBPF_OBJECT
                    .windows(symbol.len())
                    .any(|w| w == symbol.as_bytes()),
                "{program} is not in the eBPF object"
            );
        }
    }

    #[test]
    fn auto_tries_fentry_then_kprobe() {
        assert_eq!(
            BackendRequest::Auto.candidates(),
            [Backend::Fentry, Backend::Kprobe]
        );
        assert!(
            BackendRequest::Only(Backend::Tracepoint)
                .candidates()
                .is_empty()
        );
    }
}
