//! What `run` (and `demo`) are asked to do, resolved from the command line
//! by `cli.rs`.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use oomtrace_core::{dump::DumpConfig, output::OutputFileConfig};

use crate::kernel::loader::{BackendRequest, ChargeHookMode};

pub struct RunOptions {
    pub cgroups: Vec<PathBuf>,
    pub json: bool,
    /// `--output FILE`: JSON Lines to a rotated file instead of stdout.
    pub output: Option<OutputFileConfig>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub backend: BackendRequest,
    pub top: usize,
    pub btf_path: PathBuf,
    pub dump: Option<DumpConfig>,
    pub charge_hook: ChargeHookMode,
    /// The tracer's own oom_score_adj (self-protection); None leaves it.
    pub oom_score_adj: Option<i32>,
    /// The tracer's own nice value; None leaves it.
    pub nice: Option<i32>,
    /// `--metrics`: where `GET /metrics` is served; None serves nothing.
    pub metrics: Option<SocketAddr>,
    /// Where the host's /proc, /sys/fs/cgroup, runtime state (/run) and
    /// kubelet logs (/var/log) are: `/`, or the host's root mounted into
    /// oomtrace's container.
    pub host_root: PathBuf,
    /// Install the seccomp allowlist after start-up (`--no-seccomp`: not).
    pub seccomp: bool,
    /// The run is `oomtrace demo`'s (its allowlist lets it end its hog and
    /// remove its cgroup).
    pub demo: bool,
    /// `--state-dir`: where the position in the kernel log is kept, so that
    /// a restart recovers the kills it missed; None keeps nothing.
    pub state_dir: Option<PathBuf>,
    /// Record command lines (and the allowlisted environment variables);
    /// `--no-cmdline`: none, and no `/proc/<pid>/environ` is read.
    pub cmdline: bool,
}
