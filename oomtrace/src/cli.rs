//! Command line (clap derive).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::loader::{Backend, BackendRequest};

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
    pub charge_hook: ChargeHookMode,
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
    /// Kernel BTF to read struct layouts from.
    #[arg(long, value_name = "PATH", default_value = crate::loader::BTF_PATH)]
    pub btf: PathBuf,
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
pub enum ChargeHookMode {
    OnDemand,
    Off,
    Always,
}

impl BackendChoice {
    pub fn resolve(self) -> BackendRequest {
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
    /// Render post-mortem dumps (files or --dump-dir directories), saved
    /// `--json` output, or a saved kernel log (dmesg, journalctl -k,
    /// /var/log/messages) whose OOM reports are rebuilt into decisions.
    Report {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// Re-emit the decisions as JSON Lines.
        #[arg(long)]
        json: bool,
        /// Candidates shown on the card (the full table follows it).
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
    },
    /// Allocate and touch memory until killed (workload for demos and tests).
    #[command(hide = true)]
    Hog(HogArgs),
    /// Fault in fresh anonymous 4 KiB pages round after round and print the
    /// rate (workload of `cargo xtask bench`).
    #[command(hide = true)]
    Faultstorm(FaultstormArgs),
}

#[derive(Debug, Args, Clone)]
pub struct HogArgs {
    /// Move into this cgroup directory first.
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// Stop growing at this many MiB and wait (default: grow until killed).
    #[arg(long, value_name = "MIB")]
    pub mib: Option<u64>,
    /// Set our oom_score_adj first.
    #[arg(long, allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Print "ready" on stdout once `--mib` is reached (by every child, with `--children`).
    #[arg(long)]
    pub announce: bool,
    /// Fault memory in with madvise(MADV_POPULATE_WRITE) (mlock before Linux
    /// 5.14): a charge the memcg cannot satisfy then fails with an error that
    /// ends the hog, instead of being retried in the page-fault path.
    #[arg(long, requires = "mib")]
    pub populate: bool,
    /// Fork N children that each allocate `--mib` and hold it; this process
    /// allocates nothing. They share its name, cgroup and oom_score_adj.
    #[arg(long, value_name = "N", requires = "mib")]
    pub children: Option<u32>,
}

#[derive(Debug, Args, Clone)]
pub struct FaultstormArgs {
    /// Move into this cgroup directory first.
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// Size of the mapping faulted in each round, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub mib: u64,
    /// How many times to map, touch every page of and unmap it.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub rounds: u64,
    /// Leave the mapping eligible for transparent huge pages (default:
    /// MADV_NOHUGEPAGE, so that every touch is one 4 KiB fault and charge).
    #[arg(long)]
    pub thp: bool,
}
