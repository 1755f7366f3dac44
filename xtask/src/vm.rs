//! `cargo xtask vm-test`: oomtrace on real Debian kernels (5.10, 6.1, 6.12,
//! the newest in Debian and its cloud flavour) booted under QEMU (TCG), each decision checked against the kernel's own
//! OOM report in the guest's kernel log.
//!
//! Per kernel and backend: one boot runs the cgroup-v2 memcg scenarios, one
//! the cgroup-v1 ones (where the kernel has v1), and a smaller one the global
//! OOM. The guest side is tests/vm/init; the checks are in vm/check.rs.
pub(crate) mod check;
mod guest;
pub(crate) mod initramfs;
pub(crate) mod kernels;
mod oracle;
mod pagefault;
mod scale;
mod warning;

use std::{
    cell::RefCell,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

pub use crate::arch::Arch;
use crate::target_dir;
use check::{KernelLog, TracerRun};
use guest::{GuestOutput, ScenarioOutput};
pub use kernels::Series;
use kernels::{Kernel, KernelCache};
use oomtrace_core::base::hooks::HookStatus;
use oracle::Report;
/// The early-warning scenario's memcgs and window, for the bench's tally.
pub use warning::{
    NEGATIVES as WARN_NEGATIVES, POSITIVES as WARN_POSITIVES, WINDOW as WARN_WINDOW,
    check_window as check_warn_window, watched as warn_watched,
};

/// Debian packages the VM tests need on the host (the initramfs is written
/// by xtask itself, so no cpio tool); another architecture's guests add
/// their QEMU and cross toolchain when they run.
pub const PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

/// Guest RAM for the memcg scenarios and for the global OOM.
const MEMCG_VM_MIB: u32 = 512;
const GLOBAL_VM_MIB: u32 = 256;
/// A guest that has not powered off by then is killed and fails: boot and
/// the kernel log, plus each scenario's own limit (the guest's watchdog
/// stops a scenario after 90 s).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(100);
/// The guest watchdog's limit per scenario, in seconds (tests/vm/init).
const GUEST_SCENARIO_LIMIT: u32 = 90;

pub struct Options {
    pub arch: Arch,
    pub kernels: Vec<Series>,
    /// `oomtrace --backend` values; every scenario runs once per backend.
    pub backends: Vec<String>,
    /// Only these scenarios (`v2-single`, `global`, ...); empty: all.
    pub only: Vec<String>,
    /// Only these (kernel, backend) pairs of the kernels × backends; empty: all.
    pub pairs: Vec<(Series, &'static str)>,
    /// How long the early warning's scenario watches (`WARN_WINDOW` but for
    /// the bench's longer watch of its negatives).
    pub warn_window: Duration,
}

/// The arm64 part of `cargo xtask test`: the scenarios that matter most in
/// two guests booted side by side, each proving what differs on arm64:
/// 6.12 with kprobes (arm64's `pt_regs`), and the newest kernel in its
/// 16 KiB-page flavour with fentry (arm64's BPF trampolines; page counts
/// that are not 4 KiB). Left out, for `cargo xtask vm-test --arch arm64`
/// (docs/arm64.md has what passed and the times): the other pairs of these
/// kernels and backends, tracepoint (its records are the same on every
/// architecture), 6.1 and 5.10, the other scenarios, cgroup v1 and the
/// global OOM.
pub fn ci_arm64() -> Options {
    Options {
        arch: Arch::Arm64,
        kernels: vec![Series::V6_12, Series::Newest16k],
        backends: vec!["kprobe".into(), "fentry".into()],
        only: [
            "v2-single",
            "v2-hierarchy",
            "v2-group",
            "v2-unkillable",
            "v2-pfleak",
        ]
        .map(String::from)
        .to_vec(),
        pairs: vec![(Series::V6_12, "kprobe"), (Series::Newest16k, "fentry")],
        warn_window: WARN_WINDOW,
    }
}

/// The `oomtrace --backend` values.
const BACKENDS: &[&str] = &["auto", "fentry", "kprobe", "tracepoint"];

impl Options {
    /// A backend or scenario name that is not one is an error: a typo would
    /// otherwise run nothing and pass.
    pub fn check(&self) -> Result<()> {
        ensure!(!self.backends.is_empty(), "no backend given");
        warning::check_window(self.warn_window)?;
        for backend in &self.backends {
            ensure!(
                BACKENDS.contains(&backend.as_str()),
                "unknown backend {backend:?} ({})",
                BACKENDS.join(", ")
            );
        }
        let known = scenario_names();
        for name in &self.only {
            ensure!(
                known.contains(name),
                "unknown scenario {name:?} ({})",
                known.join(", ")
            );
        }
        Ok(())
    }
}

/// Every scenario name a guest knows: `v2-<memcg scenario>`,
/// `v1-<memcg scenario>`, `global`.
fn scenario_names() -> Vec<String> {
    let mut names = Vec::new();
    for (label, v1) in [("v2", false), ("v1", true)] {
        names.extend(
            MEMCG_SCENARIOS
                .iter()
                .filter(|&&(_, on_v1, on_v2, _)| if v1 { on_v1 } else { on_v2 })
                .map(|(name, ..)| format!("{label}-{name}")),
        );
    }
    names.push("global".to_owned());
    names
}

/// Memcg scenarios: (name, runs on v1, runs on v2, check).
type ScenarioSpec = (&'static str, bool, bool, fn(&Ctx) -> Result<()>);
const MEMCG_SCENARIOS: &[ScenarioSpec] = &[
    // First: should its storms run long, their reports wrap only its own log.
    ("thp", false, true, check_thp),
    ("pfleak", false, true, pagefault::check_pfleak),
    ("single", true, true, check_single),
    ("hierarchy", true, true, check_hierarchy),
    ("many", true, true, check_many),
    ("group", false, true, check_group),
    ("minus1000", true, true, check_minus1000),
    ("unkillable", true, true, check_unkillable),
    ("stall", true, false, check_stall),
    ("doctor", false, true, check_doctor),
    ("tasks2000", false, true, scale::check_tasks2000),
    // Last: it loads brd and holds most of the guest's memory.
    ("warn", false, true, warning::check_warn),
];

struct Scenario {
    /// Guest name: `v2-single`, `v1-stall`, `global`.
    name: String,
    check: fn(&Ctx) -> Result<()>,
    /// Why it is not run on this kernel (reported as SKIP).
    skip: Option<String>,
}

/// One guest boot: its scenarios run in order.
struct BootPlan {
    label: &'static str,
    memory_mib: u32,
    scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

struct Row {
    kernel: String,
    scenario: String,
    backend: String,
    verdict: Verdict,
    seconds: Option<f64>,
    notes: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    options.check()?;
    let started = Instant::now();
    let root = crate::workspace_root();
    crate::apt_install(PACKAGES)?;
    crate::apt_install(&[options.arch.qemu_package()])?;
    let mut cache = KernelCache::new(root.join(".cache/vm"), options.arch);
    let kernels = resolve_kernels(&mut cache, options)?;
    let schema = check::Schema::new()?;
    let work = target_dir().join(match options.arch {
        Arch::X86_64 => "vm-test".to_owned(),
        arch => format!("vm-test-{}", arch.name()),
    });
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let jobs = plan_jobs(options, &kernels, &work)?;
    let initrd = work.join("initrd.gz");
    let userland = userland(&mut cache, options.arch)?;
    let modules = warning::modules(&mut cache, &jobs)?;
    let extra: Vec<(&str, &Path)> = modules
        .iter()
        .map(|(guest, host)| (guest.as_str(), host.as_path()))
        .collect();
    initramfs::build_release(&userland, &initrd, &root.join("tests/vm/init"), &extra)?;
    let outcomes = boot_all(&jobs, &initrd, options.warn_window);
    let judged = judge_all(&jobs, outcomes, &schema);
    print_summary(&judged, &kernels, &work, started);
    let failed = judged.failed();
    if failed > 0 {
        bail!("{failed} VM scenario(s) failed");
    }
    Ok(())
}

/// The guest's busybox: the host's, or Debian's build for another architecture.
pub(crate) fn userland(cache: &mut KernelCache, arch: Arch) -> Result<initramfs::Userland> {
    if arch == Arch::X86_64 {
        return Ok(initramfs::Userland::host());
    }
    let host_version = crate::run_output(std::process::Command::new("dpkg-query").args([
        "-W",
        "-f=${Version}",
        "busybox-static",
    ]))?;
    Ok(initramfs::Userland {
        arch,
        busybox: cache.busybox(host_version.trim())?,
    })
}

/// Each asked-for kernel series, fetched (or taken from the cache).
fn resolve_kernels(cache: &mut KernelCache, options: &Options) -> Result<Vec<Kernel>> {
    let mut kernels = Vec::new();
    for series in &options.kernels {
        let kernel = cache.get(*series)?;
        eprintln!(
            "xtask: kernel {} {}: {} {}",
            options.arch.name(),
            series.name(),
            kernel.package,
            kernel.version
        );
        kernels.push(kernel);
    }
    Ok(kernels)
}

/// One boot of one kernel with one backend, its scenarios and its log folder.
type Job<'a> = (&'a str, &'a Kernel, BootPlan, PathBuf);

/// The boots to make: backend × kernel × plan, keeping only the asked-for
/// scenarios.
fn plan_jobs<'a>(options: &'a Options, kernels: &'a [Kernel], work: &Path) -> Result<Vec<Job<'a>>> {
    let mut jobs = Vec::new();
    for backend in &options.backends {
        for kernel in kernels {
            if !options.pairs.is_empty()
                && !options
                    .pairs
                    .iter()
                    .any(|&(series, b)| series == kernel.series && b == backend)
            {
                continue;
            }
            for mut plan in plan(kernel, backend)? {
                if !options.only.is_empty() {
                    plan.scenarios.retain(|s| options.only.contains(&s.name));
                } else {
                    plan.scenarios.retain(|s| {
                        !warning::is_early_warning(&s.name)
                            || warning::in_default_matrix(kernel.series, backend)
                    });
                }
                if plan.scenarios.is_empty() {
                    continue;
                }
                if plan
                    .scenarios
                    .iter()
                    .any(|s| warning::is_early_warning(&s.name))
                {
                    plan.memory_mib = plan.memory_mib.max(warning::GUEST_MIB);
                }
                let dir = work.join(format!("{backend}/{}-{}", kernel.series.name(), plan.label));
                jobs.push((backend.as_str(), kernel, plan, dir));
            }
        }
    }
    Ok(jobs)
}

/// The rows of every boot, the guests' `uname -r` and the boots that failed.
struct Judged {
    rows: Vec<Row>,
    releases: Vec<String>,
    boot_errors: Vec<String>,
}

impl Judged {
    fn count(&self, pick: fn(&Verdict) -> bool) -> usize {
        self.rows.iter().filter(|r| pick(&r.verdict)).count()
    }

    fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail(_)))
    }
}

fn judge_all(
    jobs: &[Job<'_>],
    outcomes: Vec<Result<GuestOutput>>,
    schema: &check::Schema,
) -> Judged {
    let mut judged = Judged {
        rows: Vec::new(),
        releases: Vec::new(),
        boot_errors: Vec::new(),
    };
    for ((backend, kernel, plan, dir), outcome) in jobs.iter().zip(outcomes) {
        match &outcome {
            Ok(guest) => {
                if let Some(release) = guest.info("kernel")
                    && !judged.releases.contains(&release.to_owned())
                {
                    judged.releases.push(release.to_owned());
                }
            }
            Err(error) => judged.boot_errors.push(format!(
                "{} {} boot ({backend}): {error:#}",
                kernel.series.name(),
                plan.label
            )),
        }
        judged.rows.extend(judge(
            kernel,
            &plan.scenarios,
            outcome,
            dir,
            schema,
            backend,
        ));
    }
    judged
}

fn print_summary(judged: &Judged, kernels: &[Kernel], work: &Path, started: Instant) {
    print_table(&judged.rows);
    for error in &judged.boot_errors {
        eprintln!("boot failure: {error}");
    }
    eprintln!();
    for kernel in kernels {
        eprintln!(
            "kernel {}: {} {}",
            kernel.series.name(),
            kernel.package,
            kernel.version
        );
    }
    eprintln!("guest uname -r: {}", judged.releases.join(", "));
    eprintln!("logs: {}", work.display());
    eprintln!(
        "vm-test wall time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // The closing line test runners print, for whoever reads the log.
    println!(
        "vm-test: {} passed, {} failed, {} skipped",
        judged.count(|v| matches!(v, Verdict::Pass)),
        judged.failed(),
        judged.count(|v| matches!(v, Verdict::Skip(_)))
    );
}

/// Boots every planned guest, as many at a time as the host has cores: each
/// guest runs its vCPUs on one host thread (see `Boot::run`), so two guests
/// keep a two-core machine as busy as one multi-threaded guest did.
fn boot_all(jobs: &[Job<'_>], initrd: &Path, warn_window: Duration) -> Vec<Result<GuestOutput>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<_> = jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((backend, kernel, plan, dir)) = jobs.get(i) else {
                        break;
                    };
                    let boot = Boot {
                        kernel,
                        initrd,
                        dir,
                        memory_mib: plan.memory_mib,
                        backend,
                        warn_window,
                    };
                    let outcome = boot.run(&plan.scenarios);
                    *outcomes[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                }
            });
        }
    });
    outcomes
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(anyhow::anyhow!("the guest was never booted")))
        })
        .collect()
}

/// The boots for one kernel: cgroup v2 scenarios, cgroup v1 scenarios, the
/// global OOM. v1 and v2 are separate boots: handing the memory controller
/// from cgroup2 to a v1 hierarchy fails (EBUSY) while removed memcgs are
/// still dying, which takes as long as any page charged to them lives.
///
/// What the kernel's config lacks is a skip with the reason: the v1 memory
/// controller, transparent huge pages (thp), kprobes or BTF for a backend
/// forced to them.
fn plan(kernel: &Kernel, backend: &str) -> Result<Vec<BootPlan>> {
    let has_v1 = kernel.has_memcg_v1()?;
    let has_thp = kernel.has("CONFIG_TRANSPARENT_HUGEPAGE")?;
    let no_backend = match backend {
        "kprobe" if !kernel.has("CONFIG_KPROBES")? => {
            Some("kernel built without CONFIG_KPROBES: no kprobe backend")
        }
        "fentry" if !kernel.has("CONFIG_DEBUG_INFO_BTF")? => {
            Some("kernel built without CONFIG_DEBUG_INFO_BTF: no fentry backend")
        }
        // fentry on a kernel function needs a BPF trampoline called from the
        // function's ftrace site: arm64 has it from 6.4 (Debian's 6.12 and
        // newest), not in Debian's 5.10 and 6.1.
        "fentry" if !kernel.has("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")? => Some(
            "kernel built without CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS: no BPF trampolines on kernel functions, no fentry backend",
        ),
        _ => None,
    };
    let skip = |name: &str, v1: bool| -> Option<String> {
        if let Some(reason) = no_backend {
            return Some(reason.to_owned());
        }
        if v1 && !has_v1 {
            return Some(
                "kernel built without CONFIG_MEMCG_V1: no cgroup-v1 memory controller".to_owned(),
            );
        }
        (name == "thp" && !has_thp)
            .then(|| "kernel built without CONFIG_TRANSPARENT_HUGEPAGE".to_owned())
    };
    let boot = |label, v1: bool| BootPlan {
        label,
        memory_mib: MEMCG_VM_MIB,
        scenarios: MEMCG_SCENARIOS
            .iter()
            .filter(|&&(_, on_v1, on_v2, _)| if v1 { on_v1 } else { on_v2 })
            .map(|&(name, _, _, check)| Scenario {
                name: format!("{label}-{name}"),
                check,
                skip: skip(name, v1),
            })
            .collect(),
    };
    Ok(vec![
        boot("v2", false),
        boot("v1", true),
        BootPlan {
            label: "global",
            memory_mib: GLOBAL_VM_MIB,
            scenarios: vec![Scenario {
                name: "global".into(),
                check: check_global,
                skip: skip("global", false),
            }],
        },
    ])
}

struct Boot<'a> {
    kernel: &'a Kernel,
    initrd: &'a Path,
    dir: &'a Path,
    memory_mib: u32,
    backend: &'a str,
    warn_window: Duration,
}

impl Boot<'_> {
    /// Boots the guest for `scenarios`; Err when it did not power off in time
    /// or stopped before the end of its script.
    fn run(&self, scenarios: &[Scenario]) -> Result<GuestOutput> {
        fs::create_dir_all(self.dir)?;
        let names: Vec<&str> = scenarios
            .iter()
            .filter(|s| s.skip.is_none())
            .map(|s| s.name.as_str())
            .collect();
        if names.is_empty() {
            return Ok(GuestOutput::default());
        }
        let console = self.dir.join("console.log");
        let results = self.dir.join("results.log");
        let arch = self.kernel.arch;
        let append = format!(
            "console={} log_buf_len=8M panic=-1 quiet oomtrace_vm.results={} oomtrace_vm.scenario_limit={} oomtrace_vm.warn_window={} oomtrace_vm.run={} oomtrace_vm.backend={}",
            arch.console(),
            arch.results_device(),
            GUEST_SCENARIO_LIMIT * arch.slowdown(),
            self.warn_window.as_secs(),
            names.join(","),
            self.backend
        );
        let mut command = qemu_command(
            self.kernel,
            self.initrd,
            &append,
            self.memory_mib,
            (&console, &results),
        );
        // Two vCPUs, scheduled on one host thread: under multi-threaded TCG
        // (QEMU 7.2) a 7.x guest now and then runs a byte of kernel text
        // another vCPU has just patched back from int3 and dies with
        // "Oops: int3" outside any code of ours; one thread keeps code
        // patching coherent, and boot_all runs guests side by side instead.
        command.args([
            "-accel",
            "tcg,thread=single",
            "-cpu",
            arch.cpu(),
            "-smp",
            "2",
        ]);
        eprintln!(
            "xtask: booting {} ({} MiB, backend {}): {}",
            self.kernel.package,
            self.memory_mib,
            self.backend,
            names.join(" ")
        );
        // The early warning's scenario watches for its window on top.
        let windows = names
            .iter()
            .filter(|n| warning::is_early_warning(n))
            .count() as u32;
        let timeout = (BOOT_TIMEOUT + SCENARIO_TIMEOUT * names.len() as u32) * arch.slowdown()
            + self.warn_window * windows;
        let Some(status) = run_with_timeout(&mut command, timeout)? else {
            let guest = guest::parse(&fs::read(&results).unwrap_or_default());
            bail!(
                "the guest did not finish within {timeout:?} (last scenario started: {}); console: {}",
                guest.scenarios.last().map_or("none", |s| s.name.as_str()),
                console_tail(&console)
            );
        };
        let guest = guest::parse(&fs::read(&results).context("reading the guest's results")?);
        ensure!(
            guest.done,
            "the guest stopped before the end of its script (qemu {status}); console: {}",
            console_tail(&console)
        );
        Ok(guest)
    }
}

/// The QEMU command line of the VM tests and the bench (which add their own
/// accelerator and CPU options): no devices but two serial ports written to
/// files, `(console, results)`, the kernel and the initramfs.
pub(crate) fn qemu_command(
    kernel: &Kernel,
    initrd: &Path,
    append: &str,
    memory_mib: u32,
    (console, results): (&Path, &Path),
) -> Command {
    let mut command = kernel.arch.qemu_command(console, results);
    command
        .args(["-m", &format!("{memory_mib}M")])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::null());
    command
}

/// Runs a guest for at most `timeout`; `None` when it had to be killed.
pub(crate) fn run_with_timeout(
    command: &mut Command,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(status) => {
            let status = status.context("waiting for qemu")?;
            eprintln!(
                "xtask: guest finished in {:.0} s ({status})",
                started.elapsed().as_secs_f64()
            );
            Ok(Some(status))
        }
        Err(_) => {
            // Our own child, by pid.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let _ = rx.recv();
            Ok(None)
        }
    }
}

fn console_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// What a check sees of one scenario.
struct Ctx<'a> {
    scenario: &'a ScenarioOutput,
    tracer: &'a TracerRun,
    log: &'a KernelLog,
    schema: &'a check::Schema,
    /// The kernel's config has the cgroup-v1 memory controller.
    memcg_v1: bool,
    /// The kernel's config has BPF trampolines on kernel functions
    /// (`CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS`): fentry can attach.
    trampolines: bool,
    /// Which hooked functions the guest's kernel has.
    functions: KernelFunctions<'a>,
    /// Printed under the scenario's row.
    notes: RefCell<Vec<String>>,
    /// Checks the scenario could not make here: the row is a SKIP with
    /// these reasons, however well the rest went.
    unchecked: RefCell<Vec<String>>,
}

/// The guest's lists of the functions oomtrace hooks that its kernel has
/// (`info kallsyms`, `info btf_names`: names separated by spaces; a guest
/// lists only what its backend can use, none for tracepoint).
#[derive(Clone, Copy, Default)]
struct KernelFunctions<'a> {
    /// In /proc/kallsyms: what a kprobe can go on.
    kallsyms: Option<&'a str>,
    /// In /sys/kernel/btf/vmlinux: what an fentry/fexit can go on.
    btf: Option<&'a str>,
}

impl<'a> KernelFunctions<'a> {
    fn of(guest: &'a GuestOutput) -> Self {
        Self {
            kallsyms: guest.info("kallsyms"),
            btf: guest.info("btf_names"),
        }
    }

    /// The list a backend's hooks depend on, and its name.
    fn for_backend(&self, backend: &str) -> (Vec<&'a str>, &'static str) {
        let (list, source) = match backend {
            "fentry" => (self.btf, "BTF"),
            _ => (self.kallsyms, "kallsyms"),
        };
        (
            list.unwrap_or_default().split_whitespace().collect(),
            source,
        )
    }
}

/// Backends with hooks on the OOM path's optional functions.
const OOM_PATH_BACKENDS: &[&str] = &["fentry", "kprobe"];
/// The on-demand charge hook is an fexit (fentry backend only).
const CHARGE_HOOK_BACKENDS: &[&str] = &["fentry"];

impl Ctx<'_> {
    /// Leaves `what` unchecked for `why`: the row becomes a SKIP.
    fn not_checked(&self, what: &str, why: String) {
        self.unchecked
            .borrow_mut()
            .push(format!("{what} not checked: {why}"));
    }

    /// Whether oomtrace's hook on `functions` (any one of them, as the
    /// kernel names it) is there to check `what` with. A backend without such
    /// a hook, or a kernel without the function (its own kallsyms for kprobes,
    /// its BTF for fentry; not the loader's word), leaves `what` unchecked; a
    /// hook the backend has on a function the kernel has that did not attach
    /// is a failure.
    fn hook(&self, functions: &[&str], backends: &[&str], what: &str) -> Result<bool> {
        let backend = self.tracer.backend().unwrap_or("none");
        let names = functions.join("/");
        if !backends.contains(&backend) {
            self.not_checked(
                what,
                format!("the {backend} backend has no hook on {names}"),
            );
            return Ok(false);
        }
        let statuses: Vec<&HookStatus> = self
            .tracer
            .hooks
            .iter()
            .filter(|h| functions.contains(&hooked_function(&h.hook)))
            .filter(|h| hook_backend(&h.hook) == backend)
            .collect();
        if !statuses.is_empty() && statuses.iter().all(|h| h.attached) {
            return Ok(true);
        }
        let (present, source) = self.functions.for_backend(backend);
        ensure!(
            present.contains(&"out_of_memory"),
            "the guest did not list its kernel's functions ({source}: {present:?})"
        );
        if !functions.iter().any(|f| present.contains(f)) {
            self.not_checked(what, format!("this kernel has no {names} ({source})"));
            return Ok(false);
        }
        let failed = check::failures(statuses.iter().copied());
        bail!(
            "the {backend} backend's hook on {names} (in the kernel's {source}) did not attach: {}",
            if failed.is_empty() {
                "not in the start record".to_owned()
            } else {
                failed.join("; ")
            }
        )
    }
}

/// The function a start record's hook is on: `fexit/try_charge_memcg (on
/// demand)` → `try_charge_memcg`.
fn hooked_function(hook: &str) -> &str {
    let target = hook.rsplit('/').next().unwrap_or(hook);
    target.strip_suffix(" (on demand)").unwrap_or(target)
}

/// The backend a start record's hook belongs to: `fexit/out_of_memory` →
/// `fentry`, `kretprobe/out_of_memory` → `kprobe`. `auto` lists the hooks
/// of every backend it tried (on arm64 5.10 and 6.1, fentry's, none
/// attached, before kprobe's).
fn hook_backend(hook: &str) -> &str {
    match hook.split('/').next().unwrap_or_default() {
        "fentry" | "fexit" => "fentry",
        "kprobe" | "kretprobe" => "kprobe",
        other => other,
    }
}

/// Every record oomtrace printed in the guest matches docs/schema.json
/// (kept as `<scenario>.tracer.jsonl` beside the logs).
fn check_schema(
    schema: &check::Schema,
    dir: &Path,
    scenario: &str,
    output: &ScenarioOutput,
) -> Result<()> {
    let records = output.file("tracer.out").unwrap_or_default();
    fs::write(dir.join(format!("{scenario}.tracer.jsonl")), records)?;
    schema.check_lines(records)
}

/// Turns one boot's output into table rows.
fn judge(
    kernel: &Kernel,
    scenarios: &[Scenario],
    outcome: Result<GuestOutput>,
    dir: &Path,
    schema: &check::Schema,
    backend: &str,
) -> Vec<Row> {
    let row = |scenario: &Scenario, verdict, seconds, used: Option<&str>, notes| Row {
        kernel: kernel.series.name().to_owned(),
        scenario: scenario.name.clone(),
        backend: match used {
            Some(used) if used != backend => format!("{used} ({backend})"),
            _ => backend.to_owned(),
        },
        verdict,
        seconds,
        notes,
    };
    let skipped = |s: &Scenario| {
        s.skip
            .as_ref()
            .map(|reason| row(s, Verdict::Skip(reason.clone()), None, None, vec![]))
    };
    let fail_all = |reason: String| -> Vec<Row> {
        scenarios
            .iter()
            .map(|s| {
                skipped(s)
                    .unwrap_or_else(|| row(s, Verdict::Fail(reason.clone()), None, None, vec![]))
            })
            .collect()
    };
    let Ok(guest) = outcome else {
        return fail_all("boot failed (below)".into());
    };
    let logs = match kernel_logs(&guest, scenarios, dir) {
        Ok(logs) => logs,
        Err(error) => return fail_all(format!("kernel log: {error:#}")),
    };
    scenarios
        .iter()
        .zip(logs)
        .map(|(scenario, log)| {
            if let Some(skip) = skipped(scenario) {
                return skip;
            }
            let Some(output) = guest.scenario(&scenario.name) else {
                let never = Verdict::Fail("the guest never ran it".into());
                return row(scenario, never, None, None, vec![]);
            };
            let judged = judge_scenario(
                kernel,
                scenario,
                (
                    output,
                    KernelFunctions::of(&guest),
                    guest.info("page_size").and_then(|p| p.parse().ok()),
                ),
                log,
                (dir, schema),
            );
            row(
                scenario,
                judged.verdict,
                output.seconds,
                judged.backend.as_deref(),
                judged.notes,
            )
        })
        .collect()
}

/// One scenario's verdict, the backend oomtrace used and the notes for its row.
struct ScenarioJudged {
    verdict: Verdict,
    backend: Option<String>,
    notes: Vec<String>,
}

/// Runs the scenario's checks on what the guest printed for it: the
/// tracer's records (and their schema), then the scenario's own check.
fn judge_scenario(
    kernel: &Kernel,
    scenario: &Scenario,
    (output, functions, page_size): (&ScenarioOutput, KernelFunctions<'_>, Option<u64>),
    log: KernelLog,
    (dir, schema): (&Path, &check::Schema),
) -> ScenarioJudged {
    let mut notes = Vec::new();
    let mut unchecked = Vec::new();
    let mut backend = None;
    let verdict = match output.status.as_deref() {
        None => Verdict::Fail("the guest did not finish it".into()),
        Some(status) if status != "ran" => Verdict::Fail(format!("guest: {status}")),
        Some(_) => {
            let result = check::tracer_run(output).and_then(|tracer| {
                backend = tracer.backend().map(str::to_owned);
                check_schema(schema, dir, &scenario.name, output)?;
                notes.extend(tracer.hook_failures());
                check::page_size_is_the_kernels(&tracer, page_size)?;
                let ctx = Ctx {
                    scenario: output,
                    tracer: &tracer,
                    log: &log,
                    schema,
                    memcg_v1: kernel.has_memcg_v1().unwrap_or(true),
                    trampolines: kernel
                        .has("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS")
                        .unwrap_or(true),
                    functions,
                    notes: RefCell::default(),
                    unchecked: RefCell::default(),
                };
                let result = (scenario.check)(&ctx);
                notes.extend(ctx.notes.into_inner());
                unchecked.extend(ctx.unchecked.into_inner());
                result
            });
            match result {
                Err(error) => Verdict::Fail(format!("{error:#}")),
                // What it did check passed; a PASS is for a row that checked all.
                Ok(()) if !unchecked.is_empty() => Verdict::Skip(unchecked.join("; ")),
                Ok(()) => Verdict::Pass,
            }
        }
    };
    ScenarioJudged {
        verdict,
        backend,
        notes,
    }
}

/// Each scenario's slice of the guest kernel log (kept as
/// `<scenario>.kernel.log`), read by the checks' own reader (vm/oracle.rs).
fn kernel_logs(guest: &GuestOutput, scenarios: &[Scenario], dir: &Path) -> Result<Vec<KernelLog>> {
    fs::write(dir.join("dmesg.log"), &guest.dmesg)?;
    let mut logs = Vec::new();
    for scenario in scenarios {
        let text = guest::kernel_log_of(&guest.dmesg, &scenario.name);
        fs::write(dir.join(format!("{}.kernel.log", scenario.name)), &text)?;
        logs.push(KernelLog::read(text));
    }
    Ok(logs)
}

fn print_table(rows: &[Row]) {
    eprintln!();
    eprintln!(
        "{:<7} {:<15} {:<20} {:<6} {:>8}  details",
        "kernel", "scenario", "backend", "result", "seconds"
    );
    for r in rows {
        let (result, detail) = match &r.verdict {
            Verdict::Pass => ("PASS", String::new()),
            Verdict::Fail(why) => ("FAIL", why.clone()),
            Verdict::Skip(why) => ("SKIP", why.clone()),
        };
        let seconds = r.seconds.map_or("-".to_owned(), |s| format!("{s:.1}"));
        eprintln!(
            "{:<7} {:<15} {:<20} {:<6} {:>8}  {detail}",
            r.kernel, r.scenario, r.backend, result, seconds
        );
        for note in &r.notes {
            eprintln!("{:<61}note: {note}", "");
        }
    }
}

// ------------------------------------------------------------------ checks

use check::{exit_status, first, kill_decision_matches, limit, pid};

/// Exactly one decision (the tracer ran with --count 1), from the backend
/// the start record names.
fn one_decision(ctx: &Ctx) -> Result<()> {
    ensure!(
        ctx.tracer.decisions.len() == 1,
        "{} decisions for --count 1",
        ctx.tracer.decisions.len()
    );
    let decision = &ctx.tracer.decisions[0];
    ensure!(
        ctx.tracer.backend() == Some(decision.backend.as_ref()),
        "decision from backend {}, start record says {:?}",
        decision.backend,
        ctx.tracer.backend()
    );
    Ok(())
}

/// A single memcg kill of `victim` in `memcg`, the limit that of `oom_memcg`.
fn memcg_kill(ctx: &Ctx, victim: &str, memcg: &str, oom_memcg: &str) -> Result<()> {
    one_decision(ctx)?;
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    kill_decision_matches(decision, report, &mut ctx.notes.borrow_mut())?;
    let v = decision.victim.as_ref().expect("checked");
    ensure!(
        v.pid == pid(ctx.scenario, victim)?,
        "the victim is {:?} (pid {}), not {victim}",
        v.comm,
        v.pid
    );
    ensure!(
        v.memcg.as_deref() == Some(memcg),
        "victim memcg {:?}, expected {memcg}",
        v.memcg
    );
    let task_memcg = report.oom_kill.as_ref().and_then(|o| o.get("task_memcg"));
    ensure!(
        task_memcg == Some(memcg),
        "kernel task_memcg {task_memcg:?}"
    );
    let fired = decision.oom_memcg.as_ref().expect("checked");
    ensure!(
        fired.path.as_deref() == Some(oom_memcg),
        "oom_memcg {:?}, expected {oom_memcg}",
        fired.path
    );
    ensure!(
        fired.limit_bytes == Some(limit(ctx.scenario, oom_memcg)?),
        "oom_memcg limit {:?}, the guest set {}",
        fired.limit_bytes,
        limit(ctx.scenario, oom_memcg)?
    );
    ensure!(
        exit_status(ctx.scenario, victim)? == "137",
        "{victim} ended with {}, not SIGKILL",
        exit_status(ctx.scenario, victim)?
    );
    Ok(())
}

fn check_single(ctx: &Ctx) -> Result<()> {
    memcg_kill(ctx, "hog64", "/single", "/single")
}

fn check_hierarchy(ctx: &Ctx) -> Result<()> {
    memcg_kill(ctx, "hierhog", "/parent/child", "/parent")?;
    ensure!(limit(ctx.scenario, "/parent")? < limit(ctx.scenario, "/parent/child")?);
    Ok(())
}

fn check_many(ctx: &Ctx) -> Result<()> {
    memcg_kill(ctx, "adj500", "/many", "/many")?;
    let (decision, _) = first(ctx.tracer, ctx.log)?;
    let kids = decision
        .candidates
        .iter()
        .filter(|c| c.comm == "manykid")
        .count();
    // 150 children and their parent.
    ensure!(kids == 151, "{kids} manykid candidates, expected 151");
    let victim = decision.victim.as_ref().expect("checked");
    ensure!(victim.oom_score_adj == Some(500));
    // oom_score_adj, not size, made the choice: the grower was bigger.
    let size = |name: &str| {
        decision
            .candidates
            .iter()
            .find(|c| c.comm == name)
            .map(|c| c.rss_bytes)
    };
    ensure!(
        size("grower") > size("adj500"),
        "grower rss {:?} not above adj500 rss {:?}",
        size("grower"),
        size("adj500")
    );
    Ok(())
}

fn check_group(ctx: &Ctx) -> Result<()> {
    one_decision(ctx)?;
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    kill_decision_matches(decision, report, &mut ctx.notes.borrow_mut())?;
    let pids = [
        pid(ctx.scenario, "grpA")?,
        pid(ctx.scenario, "grpB")?,
        pid(ctx.scenario, "grpC")?,
    ];
    let mut killed = decision.killed.clone();
    killed.sort_unstable();
    let mut expected = pids.to_vec();
    expected.sort_unstable();
    ensure!(
        killed == expected,
        "killed {killed:?}, the group is {expected:?}"
    );
    ensure!(
        decision.oom_group.as_deref() == Some("/grp"),
        "oom_group {:?}",
        decision.oom_group
    );
    ensure!(
        ctx.log.oom_groups.iter().any(|g| g == "/grp"),
        "the kernel did not announce the memory.oom.group sweep"
    );
    for (name, pid) in ["grpA", "grpB", "grpC"].iter().zip(pids) {
        ensure!(
            ctx.log.kills.iter().any(|k| k.pid == pid)
                || report.kill.as_ref().is_some_and(|k| k.pid == pid),
            "no Killed process line for {name} ({pid})"
        );
        ensure!(
            exit_status(ctx.scenario, name)? == "137",
            "{name} was not SIGKILLed"
        );
    }
    Ok(())
}

fn check_minus1000(ctx: &Ctx) -> Result<()> {
    memcg_kill(ctx, "normal", "/adj", "/adj")?;
    let (decision, _) = first(ctx.tracer, ctx.log)?;
    let protected = pid(ctx.scenario, "minus1000")?;
    let c = decision
        .candidates
        .iter()
        .find(|c| c.pid == protected)
        .context("the -1000 task is not a candidate")?;
    ensure!(c.oom_score_adj == -1000 && c.points.is_none() && !c.victim);
    ensure!(
        exit_status(ctx.scenario, "minus1000")? == "running",
        "the -1000 task did not survive"
    );
    Ok(())
}

fn check_unkillable(ctx: &Ctx) -> Result<()> {
    one_decision(ctx)?;
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    ensure!(
        report.no_killable,
        "the kernel's report does not end in \"no killable processes\""
    );
    ensure!(
        report.kill.is_none()
            && ctx.log.kills.is_empty()
            && !ctx.log.text.contains("Killed process"),
        "a kill line in a memcg whose only task is unkillable"
    );
    ensure!(
        decision.victim.is_none() && decision.killed.is_empty(),
        "a victim in a decision without a kill: {:?} {:?}",
        decision.victim,
        decision.killed
    );
    ensure!(
        decision.kernel_report == "complete",
        "kernel_report {}",
        decision.kernel_report
    );
    check::oom_memcg_matches_report(decision, report)?;
    let path = decision.oom_memcg.as_ref().and_then(|m| m.path.as_deref());
    ensure!(path == Some("/unkillable"), "oom_memcg {path:?}");
    check::candidates_match_table(decision, report)?;
    check_no_victim_charge_failure(ctx, report)?;
    // The charge failed and the hog got the error (ENOMEM from
    // MADV_POPULATE_WRITE; EAGAIN from mlock before 5.14): nobody was killed.
    let status = exit_status(ctx.scenario, "unkillable")?;
    let stderr = ctx.scenario.file("unkillable.err").unwrap_or_default();
    ensure!(
        status == "1"
            && (stderr.contains("Cannot allocate memory")
                || stderr.contains("Resource temporarily unavailable")),
        "the hog should have failed to allocate: exit {status}, stderr {stderr:?}"
    );
    Ok(())
}

/// The charge that found nothing to kill is a `charge_failure` record
/// (hooks on `mem_cgroup_out_of_memory`), number for number with the report.
fn check_no_victim_charge_failure(ctx: &Ctx, report: &Report) -> Result<()> {
    if !ctx.hook(
        &["mem_cgroup_out_of_memory"],
        OOM_PATH_BACKENDS,
        "the no-victim charge_failure",
    )? {
        return Ok(());
    }
    let failures = ctx.tracer.records("charge_failure");
    let failure = failures
        .iter()
        .find(|f| f["reason"] == "no_victim")
        .with_context(|| format!("no charge_failure record with reason no_victim: {failures:?}"))?;
    let header = report.header.as_ref().context("the report has no header")?;
    let memory = report.memory.context("the report has no memory: line")?;
    ensure!(
        failure["memcg"] == "/unkillable",
        "memcg {}",
        failure["memcg"]
    );
    ensure!(
        failure["task"]["pid"].as_u64() == Some(u64::from(pid(ctx.scenario, "unkillable")?)),
        "task {}",
        failure["task"]
    );
    ensure!(
        failure["gfp_mask"].as_str() == Some(format!("{:#x}", header.gfp_mask).as_str())
            && failure["order"].as_i64() == Some(i64::from(header.order)),
        "gfp/order {} {}, the kernel printed {:#x} order {}",
        failure["gfp_mask"],
        failure["order"],
        header.gfp_mask,
        header.order
    );
    if let Some(flags) = &header.gfp_flags {
        ensure!(
            failure["gfp_flags"] == flags.as_str(),
            "gfp_flags {}, the kernel printed {flags}",
            failure["gfp_flags"]
        );
    }
    ensure!(
        failure["limit_bytes"].as_u64() == Some(limit(ctx.scenario, "/unkillable")?)
            && failure["limit_bytes"].as_u64() == Some(memory.limit_kb * 1024)
            && failure["usage_bytes"].as_u64() == Some(memory.usage_kb * 1024),
        "usage/limit {}/{}, the kernel printed {} kB / {} kB",
        failure["usage_bytes"],
        failure["limit_bytes"],
        memory.usage_kb,
        memory.limit_kb
    );
    ensure!(
        failure["result"] == "enomem",
        "result {}",
        failure["result"]
    );
    // Every failure is counted, reported or rate-limited: as many as the
    // kernel's reports that found nothing to kill.
    let counted = failures
        .iter()
        .chain(ctx.tracer.records("charge_failure_summary").iter())
        .filter(|r| r["memcg"] == "/unkillable")
        .filter_map(|r| r["failures_total"].as_u64())
        .max()
        .unwrap_or(0);
    let reports = ctx
        .log
        .text
        .matches("Out of memory and no killable processes")
        .count() as u64;
    ensure!(
        counted == reports,
        "{counted} charge failures counted, the kernel printed {reports} no-killable reports"
    );
    Ok(())
}

/// With hooks on `mem_cgroup_oom_synchronize`: the failed charge and the
/// stall from the kernel's own begin and end of the wait.
fn check_stall_records(ctx: &Ctx) -> Result<()> {
    let stuck = u64::from(pid(ctx.scenario, "stuckhog")?);
    if !ctx.hook(
        &["mem_cgroup_oom_synchronize"],
        OOM_PATH_BACKENDS,
        "the stall's charge_failure and oom_stall records",
    )? {
        return Ok(());
    }
    let failures = ctx.tracer.records("charge_failure");
    let failure = failures
        .iter()
        .find(|f| f["reason"] == "oom_kill_disabled")
        .with_context(|| format!("no oom_kill_disabled charge_failure: {failures:?}"))?;
    ensure!(
        failure["memcg"] == "/stall"
            && failure["task"]["pid"].as_u64() == Some(stuck)
            && failure["result"] == "waits"
            && failure["limit_bytes"].as_u64() == Some(limit(ctx.scenario, "/stall")?),
        "charge_failure {failure}"
    );
    let stalls = ctx.tracer.records("oom_stall");
    let states: Vec<&str> = stalls.iter().filter_map(|s| s["state"].as_str()).collect();
    ensure!(
        states.first() == Some(&"stalled") && states.last() == Some(&"released"),
        "oom_stall states {states:?}"
    );
    for stall in &stalls {
        ensure!(
            stall["source"] == "bpf" && stall["memcg"] == "/stall",
            "oom_stall {stall}"
        );
        ensure!(
            stall["tasks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["pid"].as_u64() == Some(stuck))),
            "stuckhog is not among the stalled tasks: {stall}"
        );
    }
    // One OOM, one episode: the failed charges, the stall, the faults that
    // waited on it and the kill that ended it share an oom_id.
    let waits: Vec<&Value> = ctx
        .tracer
        .records("pagefault_oom")
        .into_iter()
        .filter(|r| r["kernel_action"] == "waits_for_memcg_oom")
        .collect();
    let ids: Vec<Option<&str>> = stalls
        .iter()
        .chain(failures.iter())
        .chain(waits.iter())
        .map(|r| r["oom_id"].as_str())
        .chain(ctx.tracer.decisions.iter().map(|d| d.oom_id.as_deref()))
        .collect();
    ensure!(
        ids.first().is_some_and(Option::is_some) && ids.iter().all(|id| *id == ids[0]),
        "the stall's records do not share one oom_id: {ids:?}"
    );
    let released = stalls.last().expect("checked");
    let waited = released["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["pid"].as_u64() == Some(stuck)))
        .and_then(|t| t["waited_ms"].as_f64())
        .unwrap_or(0.0);
    let stalled_ms = released["stalled_ms"].as_f64().unwrap_or(0.0);
    ensure!(
        waited > 0.0 && stalled_ms >= waited,
        "stuckhog waited {waited} ms of a {stalled_ms} ms stall"
    );
    Ok(())
}

fn check_stall(ctx: &Ctx) -> Result<()> {
    check_stall_records(ctx)?;
    pagefault::check_stall_faults(ctx)?;
    // "state=D wchan=... stack=...": parked where the v1 OOM killer waits.
    let stalled = ctx.scenario.info("stalled").unwrap_or_default();
    let field = |key: &str| {
        stalled
            .split(' ')
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
    };
    let parked = "mem_cgroup_oom_synchronize";
    ensure!(
        field("state") == Some("D")
            && (field("wchan") == Some(parked) || field("stack") == Some(parked)),
        "the hog was not seen parked in {parked}: {stalled:?}"
    );
    if field("wchan") != Some(parked) {
        ctx.notes.borrow_mut().push(format!(
            "wchan reads {:?} on this kernel; the stack showed {parked}",
            field("wchan").unwrap_or_default()
        ));
    }
    let control = ctx.scenario.file("oom_control.stalled").unwrap_or_default();
    ensure!(
        control.contains("oom_kill_disable 1") && control.contains("under_oom 1"),
        "memory.oom_control while stalled: {control:?}"
    );
    let (before, _) = ctx
        .log
        .text
        .split_once("oomtrace-vm: release stall")
        .context("no release mark in the kernel log")?;
    ensure!(
        !before.contains("invoked oom-killer") && !before.contains("Killed process"),
        "the kernel reported an OOM while the killer was disabled"
    );
    memcg_kill(ctx, "stuckhog", "/stall", "/stall")
}

/// Huge-page charges that give up (`__GFP_NORETRY`) in a memcg at its limit:
/// charge failures no OOM path sees, caught by the charge hook oomtrace arms
/// while the memcg's reclaim falls short of its target (fentry backend).
fn check_thp(ctx: &Ctx) -> Result<()> {
    // The guest runs the storms only once the hook has loaded.
    let hooked = ctx.hook(
        CHARGE_FUNCTIONS,
        CHARGE_HOOK_BACKENDS,
        "the huge-page charge failures (thp storms)",
    )?;
    let skipped = ctx.scenario.info("thp") == Some("skipped");
    ensure!(
        skipped != hooked,
        "the on-demand charge hook {}, the guest {} the storms",
        if hooked { "loaded" } else { "did not load" },
        if skipped { "skipped" } else { "ran" }
    );
    if skipped {
        return Ok(());
    }
    ensure!(
        ctx.tracer.decisions.iter().all(|d| d.victim.is_none())
            && !ctx.log.text.contains("Killed process"),
        "a kill in a memcg whose only task is unkillable"
    );
    check_armed_by_rule(ctx)?;
    let failures = ctx.tracer.records("charge_failure");
    let noretry: Vec<&&Value> = failures
        .iter()
        .filter(|f| f["reason"] == "noretry")
        .collect();
    ensure!(
        !noretry.is_empty(),
        "no noretry charge_failure: {failures:?}"
    );
    check_noretry_records(ctx, &noretry)?;
    check_fallbacks_counted(ctx, noretry.len() as u64)
}

/// The charge function the on-demand hook goes on: `try_charge_memcg` since
/// 5.15, `try_charge` before.
const CHARGE_FUNCTIONS: &[&str] = &["try_charge_memcg", "try_charge"];

/// The first charge_hook record arms it for /thp by the rule this kernel
/// allows: a short reclaim pass, unless its BTF hides the pass's target
/// (then any reclaim, as the start record says).
fn check_armed_by_rule(ctx: &Ctx) -> Result<()> {
    let armed = ctx.tracer.records("charge_hook");
    let target_hidden = ctx.tracer.start["unavailable_fields"]
        .as_array()
        .is_some_and(|f| {
            f.iter().any(|f| {
                f.as_str().is_some_and(|f| {
                    f.starts_with("scan_control.") || f == "task_struct.reclaim_state"
                })
            })
        });
    let rule = if target_hidden {
        "any_reclaim"
    } else {
        "short_reclaim"
    };
    ensure!(
        armed
            .first()
            .is_some_and(|r| r["state"] == "armed" && r["memcg"] == "/thp" && r["rule"] == rule),
        "charge_hook records {armed:?} (expected rule {rule})"
    );
    Ok(())
}

/// Each noretry failure is a thphog's huge-page charge under one of the
/// scenario's two limits, with less room left than a huge page.
fn check_noretry_records(ctx: &Ctx, noretry: &[&&Value]) -> Result<()> {
    let thphogs = [pid(ctx.scenario, "thphog")?, pid(ctx.scenario, "thphog2")?].map(u64::from);
    let limit_said = |key: &str| {
        ctx.scenario
            .named(key, "/thp")
            .and_then(|l| l.parse::<u64>().ok())
    };
    let raised = limit_said("raised_limit").context("the guest did not raise the limit")?;
    let first = limit_said("limit").context("the guest did not say the first limit")?;
    for f in noretry {
        ensure!(
            f["memcg"] == "/thp"
                && f["task"]["pid"]
                    .as_u64()
                    .is_some_and(|p| thphogs.contains(&p))
                && f["nr_pages"] == 512
                && f["order"] == 9
                && f["result"] == "enomem"
                && f["gfp_flags"]
                    .as_str()
                    .is_some_and(|g| g.contains("__GFP_NORETRY")),
            "noretry record {f}"
        );
        // Usually the raised limit; the first when a reclaim pass fell short
        // before the memcg was full (a charge rescued by draining the
        // per-CPU stock), arming the hook ahead of a huge-page fault there.
        let usage = f["usage_bytes"].as_u64().unwrap_or(0);
        let limit = f["limit_bytes"]
            .as_u64()
            .filter(|l| [first, raised].contains(l));
        ensure!(
            limit.is_some_and(|limit| limit - usage.min(limit) < 2 << 20),
            "limit {} usage {} (first {first}, raised to {raised})",
            f["limit_bytes"],
            f["usage_bytes"]
        );
    }
    Ok(())
}

/// Each failed huge-page charge is one THP_FAULT_FALLBACK_CHARGE: the kernel
/// counted at least as many as were reported.
fn check_fallbacks_counted(ctx: &Ctx, counted: u64) -> Result<()> {
    let fallback: Vec<u64> = ctx
        .scenario
        .info("thp_fault_fallback_charge")
        .unwrap_or_default()
        .split(' ')
        .filter_map(|n| n.parse().ok())
        .collect();
    ensure!(
        fallback.len() == 2,
        "thp_fault_fallback_charge {fallback:?}"
    );
    ensure!(
        fallback[1] - fallback[0] >= counted,
        "{counted} noretry failures reported, the kernel counted {} huge-page charge fallbacks",
        fallback[1] - fallback[0]
    );
    Ok(())
}

/// `oomtrace doctor` in the guest against the guest itself and the
/// tracer's own start records there.
fn check_doctor(ctx: &Ctx) -> Result<()> {
    let s = ctx.scenario;
    ensure!(
        s.info("doctor_exit") == Some("0") && s.info("kprobe_exit") == Some("0"),
        "doctor exited {:?}, the kprobe run {:?}: {} {}",
        s.info("doctor_exit"),
        s.info("kprobe_exit"),
        s.file("doctor.err").unwrap_or_default(),
        s.file("kprobe.err").unwrap_or_default()
    );
    let requested = s
        .info("tracer_args")
        .and_then(|args| {
            args.split_whitespace()
                .skip_while(|a| *a != "--backend")
                .nth(1)
        })
        .context("no tracer_args")?;
    check::doctor_matches_guest(
        &check::DoctorRun {
            doctor: s.file("doctor.json").context("no doctor.json")?,
            requested,
            start: &ctx.tracer.start,
            kprobe_run: s.file("kprobe.out").context("no kprobe.out")?,
            memcg_v1: ctx.memcg_v1,
            trampolines: ctx.trampolines,
            v1_probe: s.info("v1_memory").unwrap_or_default(),
            kernel_log: &ctx.log.text,
        },
        ctx.schema,
    )
}

fn check_global(ctx: &Ctx) -> Result<()> {
    one_decision(ctx)?;
    let (decision, report) = first(ctx.tracer, ctx.log)?;
    kill_decision_matches(decision, report, &mut ctx.notes.borrow_mut())?;
    ensure!(
        decision.constraint.as_deref() == Some("global"),
        "constraint {:?}",
        decision.constraint
    );
    let victim = decision.victim.as_ref().expect("checked");
    ensure!(
        victim.pid == pid(ctx.scenario, "globalhog")?,
        "the victim is {:?} (pid {})",
        victim.comm,
        victim.pid
    );
    ensure!(exit_status(ctx.scenario, "globalhog")? == "137");
    // One kill frees enough. A tracer that pins the victim's memory (a read
    // of its /proc files while the kernel allocates) makes the kernel kill
    // bystanders, then panic when none is left.
    let kills = ctx.log.text.matches("Killed process").count();
    ensure!(kills == 1, "the kernel killed {kills} times");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Ctx::hook` decides for a tracer on `backend` with `hooks` (the
    /// start record's) in a guest whose kernel has the `listed` functions: Ok(hooked)
    /// and the reasons left unchecked, or the failure.
    fn hook(
        backend: &str,
        hooks: Value,
        listed: &str,
        functions: &[&str],
    ) -> Result<(bool, Vec<String>)> {
        let start = serde_json::json!({"type": "start", "backend": backend, "hooks": hooks});
        let tracer = TracerRun {
            hooks: serde_json::from_value(start["hooks"].clone())?,
            start,
            decisions: Vec::new(),
            others: Vec::new(),
        };
        let ctx = Ctx {
            scenario: &ScenarioOutput::default(),
            tracer: &tracer,
            log: &KernelLog::default(),
            schema: &check::Schema::new()?,
            memcg_v1: true,
            trampolines: true,
            // The BTF's list for fentry, kallsyms for the others.
            functions: KernelFunctions {
                kallsyms: Some(listed).filter(|_| backend != "fentry"),
                btf: Some(listed).filter(|_| backend == "fentry"),
            },
            notes: RefCell::default(),
            unchecked: RefCell::default(),
        };
        let hooked = ctx.hook(functions, OOM_PATH_BACKENDS, "the records")?;
        Ok((hooked, ctx.unchecked.into_inner()))
    }

    const ALL: &str = "out_of_memory mem_cgroup_out_of_memory try_charge_memcg";

    fn status(hook: &str, attached: bool) -> Value {
        serde_json::json!({"hook": hook, "attached": attached, "required": false,
            "error": if attached { Value::Null } else { "it failed".into() }})
    }

    #[test]
    fn an_attached_hook_is_checked() {
        let hooks = serde_json::json!([
            status("kprobe/mem_cgroup_out_of_memory", true),
            status("kretprobe/mem_cgroup_out_of_memory", true),
        ]);
        let (hooked, unchecked) =
            hook("kprobe", hooks, ALL, &["mem_cgroup_out_of_memory"]).unwrap();
        assert!(hooked && unchecked.is_empty(), "{unchecked:?}");
    }

    #[test]
    fn the_hooks_of_a_backend_auto_gave_up_do_not_count() {
        let hooks = serde_json::json!([
            status("fentry/mem_cgroup_out_of_memory", false),
            status("fexit/mem_cgroup_out_of_memory", false),
            status("kprobe/mem_cgroup_out_of_memory", true),
            status("kretprobe/mem_cgroup_out_of_memory", true),
        ]);
        let (hooked, unchecked) =
            hook("kprobe", hooks, ALL, &["mem_cgroup_out_of_memory"]).unwrap();
        assert!(hooked && unchecked.is_empty(), "{unchecked:?}");
    }

    #[test]
    fn a_backend_without_the_hook_leaves_it_unchecked() {
        let (hooked, unchecked) = hook(
            "tracepoint",
            serde_json::json!([]),
            ALL,
            &["mem_cgroup_out_of_memory"],
        )
        .unwrap();
        assert!(!hooked);
        assert_eq!(
            unchecked,
            [
                "the records not checked: the tracepoint backend has no hook on mem_cgroup_out_of_memory"
            ]
        );
    }

    #[test]
    fn a_hook_that_did_not_attach_fails_unless_the_kernel_lacks_the_function() {
        let hooks = serde_json::json!([
            status("kprobe/mem_cgroup_out_of_memory", true),
            status("kretprobe/mem_cgroup_out_of_memory", false),
        ]);
        let error = hook("kprobe", hooks.clone(), ALL, &["mem_cgroup_out_of_memory"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("did not attach: kretprobe/mem_cgroup_out_of_memory: it failed"),
            "{error}"
        );
        // Missing from the start record altogether: a failure too.
        let error = hook(
            "fentry",
            serde_json::json!([]),
            ALL,
            &["mem_cgroup_out_of_memory"],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not in the start record"), "{error}");
        // The kernel has no such function: unchecked, with the reason.
        let (hooked, unchecked) = hook(
            "kprobe",
            hooks.clone(),
            "out_of_memory",
            &["mem_cgroup_out_of_memory"],
        )
        .unwrap();
        assert!(!hooked);
        assert_eq!(
            unchecked,
            ["the records not checked: this kernel has no mem_cgroup_out_of_memory (kallsyms)"]
        );
        // fentry goes by the BTF's list.
        let fexit = serde_json::json!([status("fexit/mem_cgroup_out_of_memory", false)]);
        let (_, unchecked) = hook(
            "fentry",
            fexit,
            "out_of_memory",
            &["mem_cgroup_out_of_memory"],
        )
        .unwrap();
        assert!(unchecked[0].ends_with("(BTF)"), "{unchecked:?}");
        // A guest that listed nothing cannot tell: a failure.
        assert!(hook("kprobe", hooks, "", &["mem_cgroup_out_of_memory"]).is_err());
    }

    #[test]
    fn the_on_demand_hook_is_named_by_its_function() {
        let hooks = serde_json::json!([status("fexit/try_charge_memcg (on demand)", true)]);
        let (hooked, _) = hook("fentry", hooks, ALL, CHARGE_FUNCTIONS).unwrap();
        assert!(hooked);
        assert_eq!(
            hooked_function("fexit/try_charge (on demand)"),
            "try_charge"
        );
    }

    #[test]
    fn the_arm64_ci_subset_names_known_scenarios_and_backends() {
        ci_arm64().check().unwrap();
    }

    #[test]
    fn unknown_names_are_errors() {
        let options = |backends: &[&str], only: &[&str]| Options {
            arch: Arch::Arm64,
            kernels: Vec::new(),
            backends: backends.iter().map(|s| s.to_string()).collect(),
            only: only.iter().map(|s| s.to_string()).collect(),
            pairs: Vec::new(),
            warn_window: WARN_WINDOW,
        };
        options(&["tracepoint", "auto"], &["v2-thp", "v1-stall", "global"])
            .check()
            .unwrap();
        let error = options(&["auto"], &["v2-singel"]).check().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown scenario \"v2-singel\"")
        );
        assert!(options(&["auto"], &["v1-thp"]).check().is_err());
        assert!(options(&["fenty"], &[]).check().is_err());
    }
}
