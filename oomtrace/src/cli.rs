//! The command line as typed (clap derive), resolved once into the options
//! the commands take (ripgrep's lowargs -> hiargs): clap types stop here.
//! [`pages`] renders the same definition as man pages and completions.
pub mod pages;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use oomtrace_core::{
    dump::DumpConfig,
    output::{DEFAULT_OUTPUT_KEEP, DEFAULT_OUTPUT_MAX_BYTES, OutputFileConfig},
};

use crate::{
    commands::{Invocation, doctor::DoctorOptions, run::RunOptions},
    kernel::loader::{Backend, BackendRequest, ChargeHookMode},
};

/// Explains Linux OOM kills from the kernel itself: who asked for memory,
/// whose limit fired, every candidate and its score, the victim, what was freed.
#[derive(Debug, Parser)]
#[command(name = "oomtrace", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Only OOM kills of tasks in this cgroup or below it (v1 or v2 directory;
    /// repeatable). Filtered in the kernel where the kernel allows it.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<PathBuf>,
    /// JSON Lines output: one record per line with a "type" field.
    #[arg(long)]
    pub json: bool,
    /// Write the records as JSON Lines to FILE (mode 0600, appended, rotated
    /// by size) instead of stdout. Refused if FILE is a symlink, not a
    /// regular file, hard-linked, or writable by anyone else, or if its
    /// directory is not ours or is writable by group or others. A full disk
    /// never stops it: records are counted lost until it can write again.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Rotate FILE once it would pass this size (default 100 MiB).
    #[arg(long, value_name = "BYTES", requires = "output",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub output_max_bytes: Option<u64>,
    /// Rotated files kept: FILE.1 (newest) .. FILE.N; 0 keeps none (default 5).
    #[arg(long, value_name = "N", requires = "output")]
    pub output_keep: Option<usize>,
    /// Exit after N decisions.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Kernel hooks to use. `auto` picks the best the kernel allows.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// The fexit on the charge function (fentry backend), which sees charge
    /// failures outside the OOM path: attached while a memcg reclaims at its
    /// limit (`on-demand`), never (`off`), or for the whole run (`always`:
    /// it then runs on every charge — for measuring its cost).
    #[arg(long, value_enum, default_value = "on-demand")]
    pub charge_hook: ChargeHookChoice,
    /// Candidates shown on the card (JSON always has all of them).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Write each decision as a self-contained JSON file (mode 0600) here.
    #[arg(long, value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,
    /// Keep at most N dump files (oldest removed first).
    #[arg(long, value_name = "N", requires = "dump_dir")]
    pub dump_max_files: Option<usize>,
    /// Keep dump files under this many bytes in total (oldest removed first).
    #[arg(long, value_name = "BYTES", requires = "dump_dir")]
    pub dump_max_bytes: Option<u64>,
    /// Keep the position in the kernel log here (a directory of our own,
    /// mode 0700), so that a restart recovers the OOM kills the kernel
    /// logged while oomtrace was not running (e.g. /var/lib/oomtrace).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The tracer's own oom_score_adj (-1000..1000), so that an OOM picks a
    /// workload rather than the witness. Lowering it needs CAP_SYS_RESOURCE.
    #[arg(long, value_name = "N", default_value_t = -900, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub oom_score_adj: i32,
    /// The tracer's own nice value (-20..19). In an OOM storm every CPU is
    /// busy with the workloads, and a tracer at their priority falls behind
    /// them (docs/bench.md). Raising it needs CAP_SYS_NICE; a higher
    /// priority already set (a unit's `Nice=`) is kept.
    #[arg(long, value_name = "N", default_value_t = -10, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,
    /// Serve Prometheus/OpenMetrics metrics at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9757). Nothing listens without it.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// The host's root directory, when oomtrace runs in a container with the
    /// host mounted there (e.g. /host): the memory cgroup hierarchy
    /// (sys/fs/cgroup), proc/meminfo, the container runtimes' state (run/)
    /// and the kubelet's logs (var/log/) are read under it. Not the BTF
    /// (--btf) nor /dev/kmsg.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// Kernel BTF to read struct layouts from.
    #[arg(long, value_name = "PATH", default_value = crate::kernel::loader::BTF_PATH)]
    pub btf: PathBuf,
    /// Do not install the seccomp allowlist after start-up (an escape hatch
    /// should a system call it lacks fail with EPERM; capabilities are
    /// still dropped and no_new_privs set).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Record no command line (nor the runtime memory settings read from
    /// the environment: GOMEMLIMIT, JAVA_TOOL_OPTIONS, NODE_OPTIONS, …).
    #[arg(long)]
    pub no_cmdline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// fentry/fexit where the kernel allows it, else kprobes, else tracepoints.
    Auto,
    /// fentry/fexit on the OOM killer's functions (fail if they cannot attach).
    Fentry,
    /// kprobes/kretprobes on the OOM killer's functions (fail if they cannot attach).
    Kprobe,
    /// Tracepoints and the kernel's printed report only.
    Tracepoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChargeHookChoice {
    OnDemand,
    Off,
    Always,
}

impl ChargeHookChoice {
    fn resolve(self) -> ChargeHookMode {
        match self {
            ChargeHookChoice::OnDemand => ChargeHookMode::OnDemand,
            ChargeHookChoice::Off => ChargeHookMode::Off,
            ChargeHookChoice::Always => ChargeHookMode::Always,
        }
    }
}

impl Cli {
    /// What to do, with every flag resolved.
    pub fn resolve(self) -> Invocation {
        let run = self.trace.resolve();
        match self.command {
            None => Invocation::Run(run),
            Some(Command::Demo { limit_mib, json }) => Invocation::Demo {
                limit_mib,
                run: RunOptions {
                    json,
                    demo: true,
                    ..run
                },
            },
            Some(Command::Report {
                paths,
                json,
                top,
                summary,
            }) => Invocation::Report {
                paths,
                json,
                top,
                summary,
            },
            Some(Command::Doctor { json }) => Invocation::Doctor(DoctorOptions {
                json,
                btf_path: run.btf_path,
                host_root: run.host_root,
            }),
        }
    }
}

impl TraceArgs {
    fn resolve(self) -> RunOptions {
        RunOptions {
            cgroups: self.cgroup,
            json: self.json,
            output: self.output.map(|path| OutputFileConfig {
                path,
                max_bytes: self.output_max_bytes.unwrap_or(DEFAULT_OUTPUT_MAX_BYTES),
                keep: self.output_keep.unwrap_or(DEFAULT_OUTPUT_KEEP),
            }),
            count: self.count,
            duration: self.duration.map(Duration::from_secs),
            backend: self.backend.resolve(),
            top: self.top,
            btf_path: self.btf,
            charge_hook: self.charge_hook.resolve(),
            oom_score_adj: Some(self.oom_score_adj),
            nice: Some(self.nice),
            metrics: self.metrics,
            host_root: self.host_root,
            seccomp: !self.no_seccomp,
            cmdline: !self.no_cmdline,
            demo: false,
            state_dir: self.state_dir,
            dump: self.dump_dir.map(|dir| DumpConfig {
                dir,
                max_files: self.dump_max_files,
                max_bytes: self.dump_max_bytes,
            }),
        }
    }
}

impl BackendChoice {
    fn resolve(self) -> BackendRequest {
        match self {
            BackendChoice::Auto => BackendRequest::Auto,
            BackendChoice::Fentry => BackendRequest::Only(Backend::Fentry),
            BackendChoice::Kprobe => BackendRequest::Only(Backend::Kprobe),
            BackendChoice::Tracepoint => BackendRequest::Only(Backend::Tracepoint),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a throw-away memory cgroup, trace it, run a memory hog in it
    /// until the kernel kills it, print the decision and clean up.
    Demo {
        /// Memory limit of the demo cgroup, in MiB.
        #[arg(long, default_value_t = 64)]
        limit_mib: u64,
        /// JSON Lines instead of the card.
        #[arg(long)]
        json: bool,
    },
    /// Say what this node allows (BTF, tracepoints, fentry, kprobes, the
    /// kernel log, lockdown, capabilities), which backend `auto` picks and
    /// what fidelity it gives; each missing piece with its reason and fix.
    Doctor {
        /// One JSON record instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Render post-mortem dumps (files or --dump-dir directories), saved
    /// `--json` output, or a saved kernel log (dmesg, journalctl -k,
    /// /var/log/messages) whose OOM reports are rebuilt into decisions;
    /// `-` reads standard input (`journalctl -k | oomtrace report -`).
    Report {
        #[arg(required = true, value_name = "FILE|DIR|-")]
        paths: Vec<PathBuf>,
        /// Re-emit the decisions as JSON Lines.
        #[arg(long)]
        json: bool,
        /// Candidates shown on the card (the full table follows it).
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
        /// The fleet view: which pods, containers, units or memcgs OOM
        /// most across all inputs (dumps from many nodes), with counts,
        /// nodes, last time and the usual cause.
        #[arg(long)]
        summary: bool,
    },
}
