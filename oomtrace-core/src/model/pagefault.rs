//! `pagefault_oom`: a user page fault whose charge or allocation failed
//! (`VM_FAULT_OOM`) reached the #PF handler's `pagefault_out_of_memory`
//! (fentry/kprobe backends). What the kernel does there depends on the
//! release (mm/oom_kill.c): with a cgroup-v1 memcg OOM pending (OOM killer
//! disabled) `mem_cgroup_oom_synchronize` makes the task wait; otherwise
//! kernels since 5.16 (and stable backports, e.g. 5.10.80+) only print
//! "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF"
//! (rate-limited) and retry the fault, while older ones call the global
//! `out_of_memory()`.
use serde::{Deserialize, Serialize};

use oomtrace_ebpf::{PagefaultOomEvent, pagefault_flag};

use crate::{base::Envelope, events::comm_str};

/// What `pagefault_out_of_memory` did with this fault.
pub const WAITS_FOR_MEMCG_OOM: &str = "waits_for_memcg_oom";
pub const RETRIES_FAULT: &str = "retries_fault";
pub const GLOBAL_OOM: &str = "global_oom";
pub const TASK_DYING: &str = "task_dying";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagefaultTask {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

/// `pagefault_oom` record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagefaultOomRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub task: PagefaultTask,
    /// The faulting task's memcg (null: removed before it could be named).
    pub memcg: Option<String>,
    /// Whether a memcg OOM was pending for this fault (cgroup v1, OOM killer
    /// disabled); null where the kernel lacks `task_struct.memcg_in_oom`.
    pub memcg_oom_in_progress: Option<bool>,
    /// The memcg of that OOM.
    pub in_oom_memcg: Option<String>,
    /// SIGKILL was pending (e.g. the OOM victim's own last fault); null where
    /// the kernel's `task_struct.pending` could not be read.
    pub fatal_signal_pending: Option<bool>,
    /// `waits_for_memcg_oom`, `task_dying` (returns at once; the task
    /// exits), `retries_fault` or `global_oom`.
    pub kernel_action: &'static str,
    pub explanation: Vec<String>,
    /// The OOM episode of the memcg it waited on or failed in
    /// (`model::episode`); null for a dying task's fault, which opens none.
    pub oom_id: Option<String>,
    #[serde(skip)]
    pub boot_ns: u64,
}

/// The part of a `pagefault_oom` that a decision of the same OOM carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PagefaultJoin {
    pub time: String,
    /// Kernel boot time of the fault, for ordering against the OOM's own events.
    #[serde(skip)]
    pub boot_ns: u64,
    pub pid: u32,
    pub memcg_oom_in_progress: Option<bool>,
    pub in_oom_memcg: Option<String>,
    pub kernel_action: String,
}

impl From<&PagefaultOomRecord> for PagefaultJoin {
    fn from(r: &PagefaultOomRecord) -> Self {
        Self {
            time: r.envelope.time.clone(),
            boot_ns: r.boot_ns,
            pid: r.task.pid,
            memcg_oom_in_progress: r.memcg_oom_in_progress,
            in_oom_memcg: r.in_oom_memcg.clone(),
            kernel_action: r.kernel_action.to_owned(),
        }
    }
}

/// Whether this kernel's `pagefault_out_of_memory` retries the fault rather
/// than calling the global OOM killer (upstream 60e2793d440a, 5.16,
/// backported to 5.10.80 and 5.15.3). `release` is `uname -r`; distributions
/// keep the stable patch level out of it (Debian's 5.10.0-46 is 5.10.262),
/// so `proc_version` (/proc/version) is searched for the highest
/// `X.Y.Z` of the same series.
pub fn retries_fault(release: &str, proc_version: &str) -> bool {
    let Some((major, minor, patch)) = version_tokens(release).next() else {
        return false;
    };
    let patch = version_tokens(proc_version)
        .filter(|(a, b, _)| (*a, *b) == (major, minor))
        .map(|(_, _, c)| c)
        .fold(patch, u32::max);
    match (major, minor) {
        (5, 10) => patch >= 80,
        (5, 15) => patch >= 3,
        _ => (major, minor) >= (5, 16),
    }
}

/// Every `X.Y.Z` (or `X.Y`) in `text`.
fn version_tokens(text: &str) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
    text.split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter_map(|token| {
            let mut parts = token.split('.').map(|n| n.parse::<u32>().ok());
            let major = parts.next()??;
            let minor = parts.next()??;
            let patch = parts.next().flatten().unwrap_or(0);
            Some((major, minor, patch))
        })
}

pub fn pagefault_record(
    e: &PagefaultOomEvent,
    time: String,
    retries: bool,
    memcg_path: &mut dyn FnMut(u64) -> Option<String>,
) -> PagefaultOomRecord {
    let known = e.flags & pagefault_flag::IN_OOM_KNOWN != 0;
    let in_progress = known.then_some(e.in_oom_memcg_id != 0);
    let in_oom_memcg = (e.in_oom_memcg_id != 0)
        .then(|| memcg_path(e.in_oom_memcg_id))
        .flatten();
    let fatal = (e.flags & pagefault_flag::SIGNAL_KNOWN != 0)
        .then_some(e.flags & pagefault_flag::FATAL_SIGNAL != 0);
    // The order of pagefault_out_of_memory's own checks (5.16+ and backports).
    let kernel_action = if in_progress == Some(true) {
        WAITS_FOR_MEMCG_OOM
    } else if retries && fatal == Some(true) {
        TASK_DYING
    } else if retries {
        RETRIES_FAULT
    } else {
        GLOBAL_OOM
    };
    let mut record = PagefaultOomRecord {
        envelope: Envelope::new("pagefault_oom", time),
        task: PagefaultTask {
            pid: e.header.pid,
            tgid: e.header.tgid,
            comm: comm_str(&e.header.comm),
        },
        memcg: memcg_path(e.memcg_id),
        memcg_oom_in_progress: in_progress,
        in_oom_memcg,
        fatal_signal_pending: fatal,
        kernel_action,
        explanation: Vec::new(),
        oom_id: None,
        boot_ns: e.header.boot_ns,
    };
    record.explanation = explain(&record);
    record
}

fn explain(r: &PagefaultOomRecord) -> Vec<String> {
    let memcg = r.in_oom_memcg.as_deref().unwrap_or("(removed)");
    let line = match r.kernel_action {
        WAITS_FOR_MEMCG_OOM => format!(
            "The fault's charge hit the limit of {memcg}, whose OOM killer is disabled (cgroup v1): the task waits in mem_cgroup_oom_synchronize until memory is freed or the OOM killer is enabled, then retries the fault."
        ),
        TASK_DYING => "The faulting task has SIGKILL pending (an OOM victim's last fault, or killed): the kernel returns at once and the task exits without retrying the fault.".to_owned(),
        RETRIES_FAULT => "The fault failed without a memcg OOM pending (e.g. the memcg OOM killer found nothing killable): this kernel only logs \"VM_FAULT_OOM leaked out to the #PF handler\" (rate-limited) and retries the fault, so the task can loop until memory is freed or it is killed.".to_owned(),
        _ => "On this kernel a fault that leaked VM_FAULT_OOM invokes the global OOM killer.".to_owned(),
    };
    vec![line]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_rule_follows_the_backports() {
        let debian_5_10 = "Linux version 5.10.0-46-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110) #1 SMP Debian 5.10.262-1 (2026-01-01)";
        assert!(retries_fault("5.10.0-46-amd64", debian_5_10));
        assert!(!retries_fault(
            "5.10.0-8-amd64",
            "Linux version 5.10.0-8-amd64 (gcc-10 (Debian 10.2.1-6) 10.2.1) #1 SMP Debian 5.10.46-4"
        ));
        assert!(retries_fault("6.1.0-57-amd64", ""));
        assert!(retries_fault("7.3.4+deb13-amd64", ""));
        assert!(!retries_fault(
            "5.4.0-200-generic",
            "(Ubuntu 5.4.0-200.220-generic 5.4.284)"
        ));
        assert!(!retries_fault("5.15.2", ""));
        assert!(retries_fault(
            "5.15.0-91-generic",
            "(Ubuntu 5.15.0-91.101-generic 5.15.131)"
        ));
        assert!(!retries_fault("garbage", "garbage"));
    }

    fn fault(in_oom: u64, flags: u32) -> PagefaultOomEvent {
        let mut e = PagefaultOomEvent {
            memcg_id: 7,
            in_oom_memcg_id: in_oom,
            flags,
            ..Default::default()
        };
        e.header.pid = 42;
        e.header.tgid = 42;
        e.header.comm[..4].copy_from_slice(b"hog\x1b");
        e
    }

    fn path(id: u64) -> Option<String> {
        Some(format!("/cg{id}"))
    }

    #[test]
    fn a_pending_v1_oom_means_the_task_waits() {
        let r = pagefault_record(
            &fault(7, pagefault_flag::IN_OOM_KNOWN),
            "t".into(),
            true,
            &mut path,
        );
        assert_eq!(r.kernel_action, WAITS_FOR_MEMCG_OOM);
        assert_eq!(r.memcg_oom_in_progress, Some(true));
        assert_eq!(r.in_oom_memcg.as_deref(), Some("/cg7"));
        assert_eq!(r.task.comm, "hog\u{1b}");
        assert!(r.explanation[0].contains("/cg7"));
    }

    #[test]
    fn without_a_pending_oom_the_release_decides() {
        let known = pagefault_flag::IN_OOM_KNOWN;
        let r = pagefault_record(&fault(0, known), "t".into(), true, &mut path);
        assert_eq!(
            (r.kernel_action, r.memcg_oom_in_progress),
            (RETRIES_FAULT, Some(false))
        );
        let dying = known | pagefault_flag::SIGNAL_KNOWN | pagefault_flag::FATAL_SIGNAL;
        let r = pagefault_record(&fault(0, dying), "t".into(), true, &mut path);
        assert_eq!(
            (r.kernel_action, r.fatal_signal_pending),
            (TASK_DYING, Some(true))
        );
        let r = pagefault_record(&fault(0, 0), "t".into(), false, &mut path);
        assert_eq!(
            (r.kernel_action, r.memcg_oom_in_progress),
            (GLOBAL_OOM, None)
        );
        assert_eq!(r.in_oom_memcg, None);
        assert_eq!(r.memcg.as_deref(), Some("/cg7"));
    }
}
