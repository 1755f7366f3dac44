//! What `run` (and `demo`) are asked to do, resolved from the command line
//! by `cli.rs`.
use std::{path::PathBuf, time::Duration};

use oomtrace_core::dump::DumpConfig;

use crate::kernel::loader::{BackendRequest, ChargeHookMode};

pub struct RunOptions {
    pub cgroups: Vec<PathBuf>,
    pub json: bool,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub backend: BackendRequest,
    pub top: usize,
    pub btf_path: PathBuf,
    pub dump: Option<DumpConfig>,
    pub charge_hook: ChargeHookMode,
    /// The tracer's own oom_score_adj (self-protection); None leaves it.
    pub oom_score_adj: Option<i32>,
    /// Where the host's /proc, /sys/fs/cgroup, runtime state (/run) and
    /// kubelet logs (/var/log) are: `/`, or the host's root mounted into
    /// oomtrace's container.
    pub host_root: PathBuf,
}
