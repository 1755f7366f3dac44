//! `cargo xtask bench`: what oomtrace costs on the memory-charge hot path.
//!
//! One QEMU guest (TCG, `-icount shift=0,align=off,sleep=off`, one vCPU)
//! runs a 4 KiB page-fault storm in a memcg far below its limit, without
//! and with oomtrace attached, alternating (tests/vm/bench-init). Under
//! `-icount` the guest clock advances one nanosecond per instruction, so the
//! storm's pages/s counts instructions per fault, not host speed: a ratio
//! measured side by side in one boot is repeatable. This is a measurement,
//! not a test: it fails only when the guest could not measure, never because
//! of the overhead it found. docs/bench.md records results.
//!
//! `cache-base` and `cache` put a memcg at its limit full of page cache
//! beside the storm (a reader streaming a RAM block device, the `brd`
//! module of the kernel's package); `cache` is compared with `cache-base`,
//! and the share of the storm during which oomtrace had its on-demand charge
//! hook attached is reported from its `charge_hook` records.
//!
//! `exec-base`, `exec` and `exec-nocmd` measure something else: the cost of
//! reading command lines at exec. A loop of short-lived execs (busybox's
//! `true` with a service's command line, `oomtrace-hog execstorm`) without
//! oomtrace, with it, and with `--no-cmdline`; execs/s in guest time, in a
//! table of their own.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::{
    target_dir,
    vm::{
        self, Series, initramfs,
        kernels::{Kernel, KernelCache},
        run_with_timeout,
    },
};

mod idle;
mod oom_storm;
mod warning;
pub use oom_storm::StormShape;

/// The budget for oomtrace on the 4 KiB storm.
const BUDGET_PERCENT: f64 = 1.0;
const VM_MIB: u32 = 512;
/// The storm maps this much at most at once: the rest of the guest's RAM
/// holds the kernel, the initramfs and the tracer.
const MAX_STORM_MIB: u64 = 256;
/// Configurations bench-init knows; [`TRACED`] are the ones with oomtrace
/// running, and those of the fault storm the ones the budget applies to.
const CONFIGS: &[&str] = &[
    "baseline",
    "auto",
    "kprobe",
    "fentry",
    "tracepoint",
    "armed",
    "control",
    "cache-base",
    "cache",
    "exec-base",
    "exec",
    "exec-nocmd",
    "watched-base",
    "watched",
];
const TRACED: &[&str] = &[
    "auto",
    "kprobe",
    "fentry",
    "tracepoint",
    "cache",
    "exec",
    "exec-nocmd",
    "watched",
];

/// The exec loop's configurations, not the fault storm's.
fn is_exec(config: &str) -> bool {
    config.starts_with("exec")
}

/// The configuration a ratio is taken against: the same storm without
/// oomtrace, and with whatever else shares the guest.
fn reference(config: &str) -> &'static str {
    match config {
        "cache" => "cache-base",
        "exec" | "exec-nocmd" => "exec-base",
        "watched" => "watched-base",
        _ => "baseline",
    }
}

pub struct Options {
    /// The guest's architecture (arm64: `qemu-system-aarch64`, TCG, whose
    /// `-icount` counts aarch64 instructions the same way).
    pub arch: vm::Arch,
    pub kernel: Series,
    pub mib: u64,
    pub rounds: u64,
    pub reps: u32,
    /// Execs per run of the exec configurations.
    pub execs: u64,
    pub configs: Vec<String>,
    /// The OOM storm after the overhead runs (None: none).
    pub storm: Option<StormShape>,
    /// Isolated OOMs before the storm, for the quiet node's latency (None: none).
    pub isolated: Option<StormShape>,
    /// Seconds of an idle node for oomtrace's wake-ups (None: not measured).
    pub idle: Option<u64>,
    /// Runs of the VM scenario v2-warn for the early warning's lead times
    /// and false warnings (0: none).
    pub warning_runs: u32,
    /// How long each of those runs watches (the scenario's own window, or
    /// longer for the negatives' false warnings per hour).
    pub warn_window: Duration,
}

pub fn run(options: &Options) -> Result<()> {
    let started = Instant::now();
    check_options(options)?;
    let configs = configs_to_run(options);
    let root = crate::workspace_root();
    crate::apt_install(crate::vm::PACKAGES)?;
    crate::apt_install(&[options.arch.qemu_package()])?;
    let mut cache = KernelCache::new(root.join(".cache/vm"), options.arch);
    let kernel = cache.get(options.kernel)?;
    let work = target_dir().join(match options.arch {
        vm::Arch::X86_64 => "bench".to_owned(),
        arch => format!("bench-{}", arch.name()),
    });
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let initrd = build_initrd(&root, &mut cache, &kernel, &configs, &work)?;
    let console = work.join("console.log");
    let results = work.join("results.log");
    let status = boot(options, &configs, &kernel, &initrd, (&console, &results))?;
    let raw = fs::read(&results).context("reading the guest's results")?;
    let guest = parse(&String::from_utf8_lossy(&raw));
    let mut report = report_header(options, &configs, &kernel, &guest)?;
    let table = table(&guest, &configs, false)?;
    report.push_str(&table.text);
    let execs = match configs.iter().any(|c| is_exec(c)) {
        true => table_of_execs(&mut report, &guest, &configs, options.execs)?,
        false => None,
    };
    let shapes = (options.isolated, options.storm);
    let storm_missing = footprint(&mut report, &guest, &configs, shapes, &raw)?;
    let idle_missing = early_warning_cost(&mut report, &guest, options.idle)?;
    if options.warning_runs > 0 {
        // After the bench guest: its own logs are read by then.
        writeln!(report)?;
        report.push_str(&warning::run(
            options.kernel,
            options.warning_runs,
            options.warn_window,
        )?);
    }
    print!("{report}");
    fs::write(work.join("table.txt"), &report)?;
    for skip in &guest.skips {
        println!("skipped: {skip}");
    }
    for failure in &guest.failures {
        eprintln!("failed: {failure}");
    }
    eprintln!(
        "logs: {}; bench wall time {:.0} s",
        work.display(),
        started.elapsed().as_secs_f64()
    );
    ensure!(
        guest.done,
        "the guest stopped before the end of its script (qemu {status}); console: {}",
        tail(&console, 8)
    );
    if !guest.failures.is_empty() {
        bail!(
            "{} measurement(s) failed in the guest",
            guest.failures.len()
        );
    }
    if let Some(missing) = table.missing.or(execs) {
        bail!("no measurement for {missing}");
    }
    if let Some(why) = storm_missing.or(idle_missing) {
        bail!("no measurement for the {why}");
    }
    Ok(())
}

fn check_options(options: &Options) -> Result<()> {
    ensure!(
        (1..=MAX_STORM_MIB).contains(&options.mib),
        "--mib must be 1..={MAX_STORM_MIB} (the guest has {VM_MIB} MiB)"
    );
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    ensure!(options.reps >= 1, "--reps must be at least 1");
    ensure!(options.execs >= 1, "--execs must be at least 1");
    vm::check_warn_window(options.warn_window)?;
    for config in &options.configs {
        ensure!(
            CONFIGS.contains(&config.as_str()),
            "unknown configuration {config:?} (known: {})",
            CONFIGS.join(", ")
        );
    }
    Ok(())
}

/// Every ratio is to the baseline (or the configuration's reference)
/// measured in the same boot; each configuration once per repetition.
fn configs_to_run(options: &Options) -> Vec<String> {
    let mut configs = vec!["baseline".to_owned()];
    for config in &options.configs {
        let base = reference(config).to_owned();
        if !configs.contains(&base) {
            configs.push(base);
        }
        if !configs.contains(config) {
            configs.push(config.clone());
        }
    }
    configs
}

/// The bench guest's initramfs, with the RAM block device module when a
/// page-cache configuration needs it.
fn build_initrd(
    root: &Path,
    cache: &mut KernelCache,
    kernel: &Kernel,
    configs: &[String],
    work: &Path,
) -> Result<PathBuf> {
    let brd = match configs.iter().any(|c| c.starts_with("cache")) {
        true => Some(cache.module(kernel, "brd")?),
        false => None,
    };
    let initrd = work.join("initrd.gz");
    let extra: Vec<(&str, &Path)> = brd
        .iter()
        .map(|path| ("lib/modules/brd.ko", path.as_path()))
        .collect();
    let userland = vm::userland(cache, kernel.arch)?;
    initramfs::build_release(
        &userland,
        &initrd,
        &root.join("tests/vm/bench-init"),
        &extra,
    )?;
    Ok(initrd)
}

/// Boots the bench guest under `-icount` and waits for it (or its timeout).
fn boot(
    options: &Options,
    configs: &[String],
    kernel: &Kernel,
    initrd: &Path,
    (console, results): (&Path, &Path),
) -> Result<ExitStatus> {
    // cryptomgr.notests: the crypto self-tests otherwise run in the
    // background for the first seconds after boot, half a second of the
    // vCPU in the middle of the first storms.
    let append = format!(
        "console={} panic=-1 quiet transparent_hugepage=never cryptomgr.notests \
         oomtrace_bench.results={} \
         oomtrace_bench.mib={} oomtrace_bench.rounds={} oomtrace_bench.reps={} \
         oomtrace_bench.execs={} oomtrace_bench.configs={} oomtrace_bench.storm={} \
         oomtrace_bench.isolated={} oomtrace_bench.idle={}",
        kernel.arch.console(),
        kernel.arch.results_device(),
        options.mib,
        options.rounds,
        options.reps,
        options.execs,
        configs.join(","),
        options.storm.map_or("off".to_owned(), |s| s.arg()),
        options.isolated.map_or("off".to_owned(), |s| s.arg()),
        options.idle.map_or("off".to_owned(), |s| s.to_string())
    );
    let mut qemu = vm::qemu_command(kernel, initrd, &append, VM_MIB, (console, results));
    qemu
        // icount needs single-threaded TCG; shift=0: one instruction is one
        // virtual nanosecond; sleep=off: an idle guest jumps to its next
        // timer instead of waiting for the host's clock.
        .args(["-accel", "tcg,thread=single"])
        .args(["-icount", "shift=0,align=off,sleep=off"])
        .args(["-cpu", kernel.arch.cpu(), "-smp", "1"]);
    let runs = 1 + configs.len() as u64 * u64::from(options.reps);
    // Pages per run: the measured rounds and the settling one (an exec
    // counted as 50 pages: a run of the exec loop is timed as the larger).
    let pages = (options.mib * 256 * (options.rounds + 1)).max(options.execs * 50);
    let timeout = timeout(runs, pages) * kernel.arch.slowdown()
        + Duration::from_secs(options.storm.map_or(0, |s| s.timeout_secs()))
        + Duration::from_secs(options.isolated.map_or(0, |s| s.timeout_secs()))
        + Duration::from_secs(options.idle.map_or(0, |s| 2 * s + 120));
    eprintln!(
        "xtask: booting {} {} for {runs} storms of {} MiB x {} rounds (timeout {} s)",
        kernel.package,
        kernel.version,
        options.mib,
        options.rounds,
        timeout.as_secs()
    );
    eprintln!("xtask: running {qemu:?}");
    let finished = run_with_timeout(&mut qemu, timeout).and_then(|status| {
        status.with_context(|| format!("timed out after {} s", timeout.as_secs()))
    });
    finished.with_context(|| {
        format!(
            "the bench guest did not finish; console: {}",
            tail(console, 8)
        )
    })
}

/// The lines above the table: the command that reproduces it, the kernel,
/// the guest and the storm.
fn report_header(
    options: &Options,
    configs: &[String],
    kernel: &Kernel,
    guest: &GuestResults,
) -> Result<String> {
    let mut report = String::new();
    let qemu_version = qemu_version(options.arch);
    writeln!(
        report,
        "cargo xtask bench{} --kernel {} --mib {} --rounds {} --reps {} --execs {} --config {} --storm {} --isolated {} --idle {} --warning {}{}",
        match options.arch {
            vm::Arch::X86_64 => String::new(),
            arch => format!(" --arch {}", arch.name()),
        },
        options.kernel.name(),
        options.mib,
        options.rounds,
        options.reps,
        options.execs,
        configs[1..].join(","),
        options.storm.map_or("off".to_owned(), |s| s.arg()),
        options.isolated.map_or(0, |s| s.kills),
        options.idle.unwrap_or(0),
        options.warning_runs,
        match options.warn_window {
            vm::WARN_WINDOW => String::new(),
            window => format!(" --warn-window {}", window.as_secs()),
        }
    )?;
    writeln!(
        report,
        "kernel {} {} (uname -r {}), {qemu_version}",
        kernel.package,
        kernel.version,
        guest.info("kernel").unwrap_or("?"),
    )?;
    writeln!(
        report,
        "guest: 1 vCPU ({}), {VM_MIB} MiB, THP {}, meltdown: {}",
        guest.info("cpu").unwrap_or("?"),
        guest.info("thp").unwrap_or("?"),
        guest.info("meltdown").unwrap_or("?"),
    )?;
    writeln!(
        report,
        "storm: {} MiB x {} rounds of 4 KiB faults in a memcg with a {} MiB limit; {} alternating repetitions after a warm-up",
        options.mib,
        options.rounds,
        guest
            .info("memcg_limit")
            .and_then(|l| l.parse::<u64>().ok())
            .map_or("?".to_owned(), |l| (l >> 20).to_string()),
        options.reps
    )?;
    writeln!(report)?;
    Ok(report)
}

/// oomtrace's memory per traced run and the tables of the isolated OOMs and
/// of the OOM storm, appended to the report. Returns why a series that was
/// asked for has no valid record (the bench fails on it once the report is
/// printed).
fn footprint(
    report: &mut String,
    guest: &GuestResults,
    configs: &[String],
    (isolated, storm): (Option<StormShape>, Option<StormShape>),
    raw: &[u8],
) -> Result<Option<String>> {
    writeln!(report)?;
    report.push_str(&oom_storm::memory_table(&guest.samples, configs)?);
    let text = String::from_utf8_lossy(raw);
    let series = [
        ("isolated", "isolated OOMs", isolated),
        ("storm", "OOM storm", storm),
    ];
    let mut missing = None;
    for (name, title, shape) in series {
        let Some(shape) = shape else {
            continue;
        };
        writeln!(report)?;
        let table = oom_storm::parse(&text, name)
            .with_context(|| format!("no @@storm name={name} record"))
            .and_then(|record| match name {
                "isolated" => oom_storm::isolated_table(&record, &shape),
                _ => oom_storm::storm_table(&record, &shape),
            });
        match table {
            Ok(table) => report.push_str(&table),
            Err(e) => {
                writeln!(report, "{title}: no measurement ({e:#})")?;
                missing.get_or_insert(format!("{title}: {e:#}"));
            }
        }
    }
    Ok(missing)
}

/// The early warning's own cost: its reads while the storm's memcg is
/// watched, and the idle node's wake-ups. Returns what was asked for and
/// is missing.
fn early_warning_cost(
    report: &mut String,
    guest: &GuestResults,
    idle: Option<u64>,
) -> Result<Option<String>> {
    if let Some(reads) = idle::watched_reads(&guest.samples) {
        writeln!(report)?;
        report.push_str(&reads);
    }
    let Some(seconds) = idle else {
        return Ok(None);
    };
    writeln!(report)?;
    match idle::idle_table(&guest.idles, seconds) {
        Ok(table) => {
            report.push_str(&table);
            Ok(None)
        }
        Err(e) => {
            writeln!(report, "idle node: no measurement ({e:#})")?;
            Ok(Some(format!("idle node: {e:#}")))
        }
    }
}

/// Ten times what this takes on a 2-core development machine: boot, and per
/// run a tracer start and the storm at ~50 us of host time per page (TCG
/// runs ~200 million guest instructions a second; a fault, with its share
/// of the unmap, is ~8,600 of them).
fn timeout(runs: u64, pages_per_run: u64) -> Duration {
    Duration::from_secs(180 + runs * (60 + pages_per_run / 2000))
}

fn qemu_version(arch: vm::Arch) -> String {
    Command::new(arch.qemu())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.replace("QEMU emulator version", "QEMU"))
        })
        .unwrap_or_else(|| "QEMU ?".to_owned())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// One storm: `@@run <config> <rep> pages=N ns=N cpu_ns=N [key=value...]`
/// (`execs=N` for the exec loop).
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    config: String,
    rep: u32,
    /// Pages faulted, or execs run (the exec configurations).
    ops: u64,
    /// Guest CLOCK_MONOTONIC over the storm: instructions run on the vCPU.
    ns: u64,
    /// The storm's own CPU time: without what other tasks ran meanwhile.
    cpu_ns: Option<u64>,
    /// backend, hooks, tracer_cpu_ns, tracer_exit, hook.
    fields: Vec<(String, String)>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops as f64 * 1e9 / self.ns as f64
    }

    fn cpu_rate(&self) -> Option<f64> {
        Some(self.ops as f64 * 1e9 / self.cpu_ns.filter(|&n| n > 0)? as f64)
    }

    /// The tracer's CPU time over the storm's, in percent.
    fn tracer_cpu_percent(&self) -> Option<f64> {
        let tracer: u64 = self.field("tracer_cpu_ns")?.parse().ok()?;
        Some(tracer as f64 * 100.0 / self.ns as f64)
    }

    /// The share of the storm, in percent, during which oomtrace had its
    /// charge hook attached, from its `charge_hook` records of this run
    /// (`hooks`, any order). None without a start time (not traced).
    fn armed_percent(&self, hooks: &[Hook]) -> Option<f64> {
        let start: u64 = self.field("start_ns")?.parse().ok()?;
        let end = start + self.ns;
        let mut events: Vec<&Hook> = hooks
            .iter()
            .filter(|h| h.config == self.config && h.rep == self.rep)
            .collect();
        events.sort_by_key(|h| h.time_ns);
        let mut armed_since: Option<u64> = None;
        let mut armed = 0u64;
        for hook in events {
            match (hook.armed, armed_since) {
                (true, None) => armed_since = Some(hook.time_ns),
                (false, Some(since)) => {
                    armed += overlap(since, hook.time_ns, start, end);
                    armed_since = None;
                }
                _ => {}
            }
        }
        if let Some(since) = armed_since {
            armed += overlap(since, end, start, end);
        }
        Some(armed as f64 * 100.0 / self.ns as f64)
    }

    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Nanoseconds of `[a, b)` inside `[start, end)`.
fn overlap(a: u64, b: u64, start: u64, end: u64) -> u64 {
    b.min(end).saturating_sub(a.max(start))
}

/// `@@hook <config> <rep> armed|disarmed <time>`: one of oomtrace's
/// `charge_hook` records in that run.
#[derive(Debug, Clone, PartialEq)]
struct Hook {
    config: String,
    rep: u32,
    armed: bool,
    /// Since the epoch (the record's RFC 3339 time).
    time_ns: u64,
}

fn parse_hook(rest: &str) -> Option<Hook> {
    let mut words = rest.split_whitespace();
    let config = words.next()?.to_owned();
    let rep = words.next()?.parse().ok()?;
    let armed = match words.next()? {
        "armed" => true,
        "disarmed" => false,
        _ => return None,
    };
    let time_ns = rfc3339_utc_ns(words.next()?)?;
    Some(Hook {
        config,
        rep,
        armed,
        time_ns,
    })
}

/// An RFC 3339 time of oomtrace's records, in ns since the epoch (the
/// core's parser: one definition for product and harness).
fn rfc3339_utc_ns(text: &str) -> Option<u64> {
    let time = oomtrace_core::base::time::parse_rfc3339(text)?;
    u64::try_from(time.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos()).ok()
}

#[derive(Debug, Default)]
struct GuestResults {
    infos: Vec<(String, String)>,
    samples: Vec<Sample>,
    hooks: Vec<Hook>,
    /// `@@idle` records, unparsed (bench::idle reads them).
    idles: Vec<String>,
    failures: Vec<String>,
    skips: Vec<String>,
    done: bool,
}

impl GuestResults {
    fn info(&self, key: &str) -> Option<&str> {
        self.infos
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The records of tests/vm/bench-init; a malformed `@@run` is a failure.
fn parse(text: &str) -> GuestResults {
    let mut out = GuestResults::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "@@info" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                out.infos.push((key.to_owned(), value.trim().to_owned()));
            }
            "@@run" => match parse_run(rest) {
                Some(sample) => out.samples.push(sample),
                None => out.failures.push(format!("malformed record: {line}")),
            },
            "@@hook" => match parse_hook(rest) {
                Some(hook) => out.hooks.push(hook),
                None => out.failures.push(format!("malformed record: {line}")),
            },
            "@@idle" => out.idles.push(rest.to_owned()),
            "@@fail" => out.failures.push(rest.to_owned()),
            "@@skip" => out.skips.push(rest.to_owned()),
            "@@done" => out.done = true,
            _ => {}
        }
    }
    out
}

fn parse_run(rest: &str) -> Option<Sample> {
    let mut words = rest.split_whitespace();
    let config = words.next()?.to_owned();
    let rep = words.next()?.parse().ok()?;
    let fields: Vec<(String, String)> = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let number = |key: &str| fields.iter().find(|(k, _)| k == key)?.1.parse::<u64>().ok();
    let ops = match is_exec(&config) {
        true => number("execs")?,
        false => number("pages")?,
    };
    let (ns, cpu_ns) = (number("ns")?, number("cpu_ns"));
    (ops > 0 && ns > 0).then(|| Sample {
        config,
        rep,
        ops,
        ns,
        cpu_ns,
        fields: fields
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "pages" | "execs" | "ns" | "cpu_ns"))
            .collect(),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

struct Table {
    text: String,
    /// A configuration asked for that has no sample (and was not skipped).
    missing: Option<String>,
}

/// Per configuration: median pages/s, its ratio to the reference's (the
/// baseline; `cache-base` for `cache`), the overhead (1 - ratio, as the
/// issue's 117,595 -> 114,800 = 2.4%) and the spread (max - min over
/// median) that says how far to trust it; then the same overhead counted on
/// the storm's own CPU time (what hooks on its path cost it), the tracer's
/// own CPU time (its wakeups, paid on the same vCPU) and the share of the
/// storm with the charge hook attached. The budget applies to the first,
/// the whole cost. `execs`: the exec configurations' rows (execs/s), else
/// the fault storm's with their legend and the budget.
fn table(guest: &GuestResults, configs: &[String], execs: bool) -> Result<Table> {
    let mut text = String::new();
    let mut missing = None;
    writeln!(
        text,
        "{:<10} {:<10} {:>5} {:>4} {:>14} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "config",
        "backend",
        "hooks",
        "runs",
        match execs {
            true => "median execs/s",
            false => "median pages/s",
        },
        "ratio",
        "overhead",
        "spread",
        "on-cpu",
        "tracer",
        "armed"
    )?;
    // Median pages/s and pages per CPU-second of each measured configuration.
    let mut medians: Vec<(&str, f64, Option<f64>)> = Vec::new();
    let mut verdicts = Vec::new();
    for config in configs.iter().filter(|c| is_exec(c) == execs) {
        let samples: Vec<&Sample> = guest
            .samples
            .iter()
            .filter(|s| &s.config == config)
            .collect();
        if samples.is_empty() {
            let skipped = guest
                .skips
                .iter()
                .any(|s| s.starts_with(&format!("{config} ")));
            if !skipped {
                missing.get_or_insert_with(|| config.clone());
            }
            let why = match skipped {
                true => "skipped (below)",
                false => "no measurement",
            };
            writeln!(text, "{config:<10} ({why})")?;
            continue;
        }
        let m = measure(config, &samples, &medians, &guest.hooks);
        medians.push((config, m.median, m.cpu_median));
        let percent = |value: Option<f64>| match value {
            Some(v) => format!("{v:.2}%"),
            None => "-".to_owned(),
        };
        writeln!(
            text,
            "{config:<10} {:<10} {:>5} {:>4} {:>14.0} {:>7} {:>8} {:>6.2}% {:>7} {:>7} {:>7}",
            m.backend,
            m.hooks,
            samples.len(),
            m.median,
            m.ratio.map_or("1.0000".to_owned(), |r| format!("{r:.4}")),
            percent(m.overhead),
            m.spread,
            percent(m.cpu_overhead),
            percent(m.tracer),
            match m.armed {
                Some(a) => format!("{a:.1}%"),
                None => "-".to_owned(),
            },
        )?;
        if TRACED.contains(&config.as_str())
            && let Some(overhead) = m.overhead
        {
            verdicts.push((config.clone(), m.backend.to_owned(), overhead));
        }
    }
    if execs {
        return Ok(Table { text, missing });
    }
    writeln!(
        text,
        "\noverhead: 1 - ratio, pages/s in guest time (instructions), against baseline\n\
         (cache: against cache-base, the same page-cache reader without oomtrace);\n\
         spread: (max - min) / median\n\
         on-cpu: the same overhead on the storm's own CPU time (hooks on its path)\n\
         tracer: oomtrace's own CPU time during the storm, % of the storm's duration (median)\n\
         armed: share of the storm with the on-demand charge hook attached (median)"
    )?;
    writeln!(text)?;
    writeln!(text, "{}", budget_line(&verdicts))?;
    Ok(Table { text, missing })
}

/// One configuration's row: medians over its runs and, against its
/// reference's medians, the ratio and overheads.
struct Measured<'a> {
    median: f64,
    cpu_median: Option<f64>,
    spread: f64,
    ratio: Option<f64>,
    overhead: Option<f64>,
    cpu_overhead: Option<f64>,
    tracer: Option<f64>,
    armed: Option<f64>,
    backend: &'a str,
    hooks: &'a str,
}

/// `samples` is not empty; `medians` holds the configurations measured
/// before this one (its reference among them).
fn measure<'a>(
    config: &str,
    samples: &[&'a Sample],
    medians: &[(&str, f64, Option<f64>)],
    hooks: &[Hook],
) -> Measured<'a> {
    let mut rates: Vec<f64> = samples.iter().map(|s| s.rate()).collect();
    let median_rate = median(&mut rates);
    let spread = (rates[rates.len() - 1] - rates[0]) / median_rate * 100.0;
    let cpu_rates: Option<Vec<f64>> = samples.iter().map(|s| s.cpu_rate()).collect();
    let cpu_median = cpu_rates.map(|mut r| median(&mut r));
    // The baseline is its own reference: no ratio.
    let reference = medians
        .iter()
        .find(|(c, _, _)| *c == reference(config))
        .filter(|_| config != "baseline");
    let ratio = reference.map(|&(_, base, _)| median_rate / base);
    let tracer: Option<Vec<f64>> = samples.iter().map(|s| s.tracer_cpu_percent()).collect();
    let armed: Option<Vec<f64>> = match TRACED.contains(&config) || config == "armed" {
        true => samples.iter().map(|s| s.armed_percent(hooks)).collect(),
        false => None,
    };
    let first = samples[0];
    Measured {
        median: median_rate,
        cpu_median,
        spread,
        ratio,
        overhead: ratio.map(|r| (1.0 - r) * 100.0),
        cpu_overhead: reference
            .and_then(|&(_, _, cpu_base)| Some((1.0 - cpu_median? / cpu_base?) * 100.0)),
        tracer: tracer.map(|mut t| median(&mut t)),
        armed: armed.map(|mut a| median(&mut a)),
        backend: first
            .field("backend")
            .or(first.field("hook").map(|_| "kprobe-ev"))
            .unwrap_or("-"),
        hooks: first.field("hooks").unwrap_or("-"),
    }
}

/// The exec configurations' table and legend, appended to the report;
/// returns the one asked for that has no sample.
fn table_of_execs(
    report: &mut String,
    guest: &GuestResults,
    configs: &[String],
    execs: u64,
) -> Result<Option<String>> {
    let table = table(guest, configs, true)?;
    writeln!(
        report,
        "\ncommand lines at exec: {execs} runs of busybox's true with a JVM service's\n\
         command line (tests/vm/bench-init), one after another, per run\n"
    )?;
    report.push_str(&table.text);
    writeln!(
        report,
        "\nexec-base: no oomtrace; exec: oomtrace --json --backend auto (exec hook, command\n\
         lines read from /proc); exec-nocmd: the same with --no-cmdline;\n\
         overhead: 1 - ratio, execs/s in guest time, against exec-base;\n\
         on-cpu: the same on the loop's and its children's own CPU time"
    )?;
    Ok(table.missing)
}

/// Each traced configuration's overhead against the budget.
fn budget_line(verdicts: &[(String, String, f64)]) -> String {
    if verdicts.is_empty() {
        return "budget: no oomtrace configuration was measured".to_owned();
    }
    let verdicts: Vec<String> = verdicts
        .iter()
        .map(|(config, backend, overhead)| {
            let name = match config == backend {
                true => config.clone(),
                false => format!("{config} ({backend})"),
            };
            let verdict = match *overhead <= BUDGET_PERCENT {
                true => "met",
                false => "NOT MET",
            };
            format!("{name} {overhead:.2}% {verdict}")
        })
        .collect();
    format!(
        "budget (oomtrace overhead <= {BUDGET_PERCENT}% on the 4 KiB storm): {}",
        verdicts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: &str = "@@info kernel 6.12.117+deb12-amd64\r\n\
        @@info thp always madvise [never]\r\n\
        @@run warmup 0 pages=1000 ns=10000000 cpu_ns=9000000\r\n\
        @@run baseline 1 pages=1000 ns=10000000 cpu_ns=9000000\r\n\
        @@run auto 1 pages=1000 ns=10100000 cpu_ns=9000000 backend=fentry hooks=12 tracer_cpu_ns=100000 tracer_exit=0\r\n\
        @@run baseline 2 pages=1000 ns=10000000 cpu_ns=9000000\r\n\
        @@run auto 2 pages=1000 ns=10100000 cpu_ns=9000000 backend=fentry hooks=12 tracer_cpu_ns=101000 tracer_exit=0\r\n\
        @@run baseline 3 pages=1000 ns=10010000 cpu_ns=9000000\r\n\
        @@run auto 3 pages=1000 ns=10300000 cpu_ns=9090000 backend=fentry hooks=12 tracer_cpu_ns=50000 tracer_exit=0\r\n\
        @@skip control no kprobe event on try_charge_memcg: No such file\r\n\
        @@run kprobe 1 pages=x ns=1\r\n\
        @@done\r\n";

    /// The cells of the table row that starts with `name`.
    fn row_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .split_whitespace()
            .collect()
    }

    #[test]
    fn records_become_samples_failures_and_skips() {
        let guest = parse(RESULTS);
        assert!(guest.done);
        assert_eq!(guest.info("thp"), Some("always madvise [never]"));
        assert_eq!(guest.samples.len(), 7);
        let auto = &guest.samples[2];
        assert_eq!((auto.config.as_str(), auto.rep), ("auto", 1));
        assert_eq!(auto.cpu_ns, Some(9_000_000));
        assert_eq!(auto.field("backend"), Some("fentry"));
        assert_eq!(auto.field("cpu_ns"), None);
        assert!((auto.rate() - 1000.0 / 0.0101).abs() < 1e-6);
        assert!((auto.tracer_cpu_percent().unwrap() - 0.990099).abs() < 1e-5);
        assert_eq!(
            guest.failures,
            ["malformed record: @@run kprobe 1 pages=x ns=1"]
        );
        assert_eq!(guest.skips.len(), 1);
    }

    #[test]
    fn table_gives_median_ratios_and_the_budget_verdict() {
        let guest = parse(RESULTS);
        let configs = ["baseline", "auto", "control", "kprobe"].map(str::to_owned);
        let table = table(&guest, &configs, false).unwrap();
        let row = |name: &str| row_of(&table.text, name);
        // The baseline median is 100,000 pages/s; auto's 99,010 (1 - 1/1.01),
        // the same on the CPU (median), the tracer at 1% of the vCPU.
        assert_eq!(
            row("baseline"),
            [
                "baseline", "-", "-", "3", "100000", "1.0000", "-", "0.10%", "-", "-", "-"
            ]
        );
        assert_eq!(
            row("auto"),
            [
                "auto", "fentry", "12", "3", "99010", "0.9901", "0.99%", "1.94%", "0.00%", "0.99%",
                "-"
            ]
        );
        assert!(
            table.text.contains("auto (fentry) 0.99% met"),
            "{}",
            table.text
        );
        // control was skipped; kprobe has no valid sample.
        assert_eq!(table.missing.as_deref(), Some("kprobe"));
    }

    #[test]
    fn a_storm_asked_for_without_its_record_is_missing() {
        let guest = parse(RESULTS);
        let configs = ["baseline", "auto"].map(str::to_owned);
        let shape = StormShape::parse("2x2x8").unwrap();
        let isolated = StormShape::isolated(3);
        for shapes in [(None, shape), (isolated, None)] {
            let mut report = String::new();
            let why = footprint(&mut report, &guest, &configs, shapes, RESULTS.as_bytes()).unwrap();
            assert!(why.is_some_and(|w| w.contains("@@storm")), "{report}");
            assert!(report.contains(": no measurement"), "{report}");
        }
        let mut report = String::new();
        let why = footprint(
            &mut report,
            &guest,
            &configs,
            (None, None),
            RESULTS.as_bytes(),
        )
        .unwrap();
        assert_eq!(why, None);
    }

    #[test]
    fn cache_is_compared_with_cache_base_and_its_armed_share_comes_from_the_hook_records() {
        // The storm of `cache` runs 2.0 s .. 2.0202 s after the epoch; the
        // hook was armed before it began and disarmed 10 ms into it.
        let results = "@@run baseline 1 pages=1000 ns=10000000 cpu_ns=9000000 start_ns=1\n\
            @@run cache-base 1 pages=1000 ns=20000000 cpu_ns=10000000 start_ns=1000000000\n\
            @@run cache 1 pages=1000 ns=20200000 cpu_ns=10100000 start_ns=2000000000 backend=fentry hooks=20 tracer_cpu_ns=0 tracer_exit=0\n\
            @@hook cache 1 armed 1970-01-01T00:00:01.5Z\n\
            @@hook cache 1 disarmed 1970-01-01T00:00:02.010Z\n\
            @@hook cache 1 armed 1970-01-01T00:00:03Z\n\
            @@done\n";
        let guest = parse(results);
        assert!(guest.failures.is_empty(), "{:?}", guest.failures);
        assert_eq!(guest.hooks.len(), 3);
        let cache = guest.samples.iter().find(|s| s.config == "cache").unwrap();
        let armed = cache.armed_percent(&guest.hooks).unwrap();
        assert!(
            (armed - 1e9 / 20.2e6).abs() < 1e-9 * 1e9 / 20.2e6 + 1e-9,
            "{armed}"
        );
        let configs = ["baseline", "cache-base", "cache"].map(str::to_owned);
        let table = table(&guest, &configs, false).unwrap();
        let row = |name: &str| row_of(&table.text, name);
        // cache-base at half the baseline's rate (the reader's share of the
        // vCPU); cache 1% under cache-base, on the CPU too; armed 49.5%.
        assert_eq!(row("cache-base")[5..7], ["0.5000", "50.00%"]);
        assert_eq!(
            row("cache")[5..],
            ["0.9901", "0.99%", "0.00%", "0.99%", "0.00%", "49.5%"]
        );
        assert!(
            table.text.contains("cache (fentry) 0.99% met"),
            "{}",
            table.text
        );
        // An untraced run has no armed share; a traced one without records 0.
        let base = guest
            .samples
            .iter()
            .find(|s| s.config == "cache-base")
            .unwrap();
        assert_eq!(base.armed_percent(&[]), Some(0.0));
    }

    #[test]
    fn exec_runs_count_execs_and_are_compared_with_exec_base_in_a_table_of_their_own() {
        let results = "@@run baseline 1 pages=1000 ns=10000000 cpu_ns=9000000\n\
            @@run exec-base 1 execs=100 ns=100000000 cpu_ns=90000000\n\
            @@run exec 1 execs=100 ns=125000000 cpu_ns=92000000 backend=fentry hooks=13 tracer_cpu_ns=20000000 tracer_exit=0\n\
            @@run exec-nocmd 1 execs=100 ns=101000000 cpu_ns=90000000 backend=fentry hooks=12 tracer_cpu_ns=0 tracer_exit=0\n\
            @@run exec 2 pages=100 ns=1\n\
            @@done\n";
        let guest = parse(results);
        assert_eq!(
            guest.failures,
            ["malformed record: @@run exec 2 pages=100 ns=1"]
        );
        let configs = ["baseline", "exec-base", "exec", "exec-nocmd"].map(str::to_owned);
        let faults = table(&guest, &configs, false).unwrap();
        assert!(row_of(&faults.text, "exec").is_empty(), "{}", faults.text);
        let mut report = String::new();
        let missing = table_of_execs(&mut report, &guest, &configs, 100).unwrap();
        assert_eq!(missing, None);
        assert!(report.contains("median execs/s"), "{report}");
        assert!(!report.contains("budget"), "{report}");
        // 1,000 execs/s without oomtrace; 800 with it (20% fewer), 16% of
        // the vCPU its own; 990.1 with --no-cmdline.
        assert_eq!(row_of(&report, "exec-base")[4..6], ["1000", "1.0000"]);
        assert_eq!(row_of(&report, "exec")[4..7], ["800", "0.8000", "20.00%"]);
        assert_eq!(row_of(&report, "exec")[9], "16.00%");
        assert_eq!(row_of(&report, "exec-nocmd")[5], "0.9901");
    }

    #[test]
    fn rfc3339_times_of_the_records() {
        assert_eq!(rfc3339_utc_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ns("2026-12-01T15:20:23.30587632Z"),
            Some(1_796_138_423_305_876_320)
        );
        assert_eq!(
            rfc3339_utc_ns("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000_000)
        );
        assert_eq!(
            rfc3339_utc_ns("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500_000_000)
        );
        assert_eq!(
            rfc3339_utc_ns("2024-02-29T23:59:59+01:00"),
            Some(1_709_247_599_000_000_000)
        );
        assert_eq!(rfc3339_utc_ns("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
