//! Least privilege after start-up. Loading and attaching the programs,
//! reading tracefs, opening `/dev/kmsg` and lowering the tracer's own
//! `oom_score_adj` need capabilities the running tracer does not: once they
//! are done, [`lock_down`] keeps only what the rest of the run uses (see
//! [`kept`]), sets `no_new_privs` and installs a seccomp allowlist
//! (`seccomp.rs`), so that a bug in what it parses afterwards (HTTP on
//! `--metrics`, a pod's `config.json`, the kernel log) runs with little.
//!
//! Capabilities belong to threads, not processes: the drop happens on the
//! only thread there is (the tracer's writer threads start after it and
//! inherit it), and [`lock_down`] checks every thread of the process.
mod seccomp;

use std::{fs, io};

use caps::{CapSet, Capability, CapsHashSet};
use oomtrace_core::base::privileges::Privileges;

/// How far [`lock_down`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockdown {
    /// Install the seccomp allowlist (`--no-seccomp` turns it off).
    pub seccomp: bool,
    /// `oomtrace demo`: at the end, the run also kills its hog and removes
    /// its cgroup.
    pub demo: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("dropping capabilities: {0}")]
    Capabilities(#[from] caps::errors::CapsError),
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(io::Error),
    #[error("building the seccomp filter: {0}")]
    SeccompFilter(#[from] seccompiler::BackendError),
    #[error("the seccomp filter is too long ({0} instructions)")]
    SeccompSize(usize),
    #[error("installing the seccomp filter: {0}")]
    SeccompInstall(io::Error),
    #[error("installing the seccomp filter: thread {0} could not take it")]
    SeccompThread(libc::c_long),
    #[error("seccomp is not available for this architecture ({0})")]
    SeccompArch(&'static str),
    #[error(
        "thread {tid} of the tracer still holds capabilities {held:#x} after the drop (it started before it)"
    )]
    ThreadKept { tid: String, held: u64 },
    #[error("reading /proc/self/task: {0}")]
    Threads(io::Error),
}

/// The capabilities the running tracer still uses, of those it `held`
/// (measured by running every feature without the others: tests/privilege.rs,
/// and the VM scenario `thp` for the charge hook):
///
/// - CAP_BPF (CAP_SYS_ADMIN before Linux 5.8): kernels before 6.5 check it
///   on every `bpf()` call while `kernel.unprivileged_bpf_disabled` is set —
///   the drop counters, reclaim and charge-failure maps, the rss rule,
///   attaching the on-demand charge hook (6.5+ only for loads and map
///   creation). Attaching an fexit that is already loaded needs nothing
///   more: CAP_PERFMON was checked when it was loaded (measured on 6.12);
/// - CAP_DAC_READ_SEARCH, for a tracer that is not uid 0: the container
///   runtimes' state under `/run` is in directories only root may search
///   (uid 0 owns them, so root needs no capability for them);
/// - `oomtrace demo` only: CAP_DAC_OVERRIDE, to remove its cgroup at the
///   end (the hierarchy's root directory may be mode 0555).
///
/// Dropped: CAP_PERFMON, CAP_SYSLOG (`/dev/kmsg` is checked at open),
/// CAP_SYS_RESOURCE (`oom_score_adj` is set once), CAP_DAC_READ_SEARCH for
/// root (tracefs is read at start only) and everything else a root tracer had.
pub fn kept(held: &CapsHashSet, uid_root: bool, lockdown: &Lockdown) -> CapsHashSet {
    let has = |cap| held.contains(&cap);
    let mut kept = CapsHashSet::new();
    if has(Capability::CAP_BPF) {
        kept.insert(Capability::CAP_BPF);
    } else if has(Capability::CAP_SYS_ADMIN) {
        kept.insert(Capability::CAP_SYS_ADMIN);
    }
    if !uid_root && has(Capability::CAP_DAC_READ_SEARCH) {
        kept.insert(Capability::CAP_DAC_READ_SEARCH);
    }
    if lockdown.demo && has(Capability::CAP_DAC_OVERRIDE) {
        kept.insert(Capability::CAP_DAC_OVERRIDE);
    }
    kept
}

/// What [`lock_down`] would keep in this process now (for `doctor`).
pub fn plan() -> Privileges {
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let lockdown = Lockdown {
        seccomp: true,
        demo: false,
    };
    Privileges {
        capabilities: names(&kept(&held, uid_root(), &lockdown)),
        no_new_privs: true,
        seccomp: seccomp::supported(),
    }
}

/// Drops every capability but [`kept`] from every set (the bounding set
/// too, where CAP_SETPCAP allows), sets `no_new_privs`, installs the
/// seccomp allowlist if asked, and checks that no thread kept more.
pub fn lock_down(lockdown: Lockdown) -> Result<Privileges, PrivilegeError> {
    let held = caps::read(None, CapSet::Permitted)?;
    let kept = kept(&held, uid_root(), &lockdown);
    drop_capabilities(&held, &kept)?;
    set_no_new_privs()?;
    if lockdown.seccomp {
        seccomp::install(lockdown.demo)?;
    }
    every_thread_within(&kept)?;
    Ok(Privileges {
        capabilities: names(&kept),
        no_new_privs: true,
        seccomp: lockdown.seccomp,
    })
}

fn drop_capabilities(held: &CapsHashSet, kept: &CapsHashSet) -> Result<(), PrivilegeError> {
    // The bounding set only limits what an exec could grant; no_new_privs
    // and seccomp rule that out, so this is belt and braces, and needs
    // CAP_SETPCAP (a unit's bounding set is already narrow).
    if held.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::runtime::thread_all_supported() {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    // Effective first: it must stay within the permitted set.
    caps::set(None, CapSet::Effective, kept)?;
    caps::set(None, CapSet::Permitted, kept)?;
    Ok(())
}

fn set_no_new_privs() -> Result<(), PrivilegeError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::NoNewPrivs(io::Error::last_os_error()));
    }
    Ok(())
}

/// Every thread's permitted set is within `kept` (a thread started before
/// the drop would have kept its own).
fn every_thread_within(kept: &CapsHashSet) -> Result<(), PrivilegeError> {
    let allowed = kept.iter().fold(0u64, |mask, cap| mask | cap.bitmask());
    let tasks = fs::read_dir("/proc/self/task").map_err(PrivilegeError::Threads)?;
    for task in tasks {
        let task = task.map_err(PrivilegeError::Threads)?;
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let held = status
            .lines()
            .find_map(|l| l.strip_prefix("CapPrm:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0);
        if held & !allowed != 0 {
            return Err(PrivilegeError::ThreadKept {
                tid: task.file_name().to_string_lossy().into_owned(),
                held,
            });
        }
    }
    Ok(())
}

/// Capability names in their numeric order (`CAP_BPF` after `CAP_PERFMON`).
fn names(set: &CapsHashSet) -> Vec<String> {
    let mut caps: Vec<Capability> = set.iter().copied().collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(ToString::to_string).collect()
}

fn uid_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Capability]) -> CapsHashSet {
        caps.iter().copied().collect()
    }

    const RUN: Lockdown = Lockdown {
        seccomp: true,
        demo: false,
    };

    #[test]
    fn root_keeps_cap_bpf_only() {
        let all = caps::all();
        assert_eq!(
            names(&kept(&all, true, &RUN)),
            ["CAP_BPF"],
            "a root tracer drops CAP_PERFMON, CAP_DAC_READ_SEARCH, CAP_SYSLOG, CAP_SYS_RESOURCE, CAP_SYS_ADMIN..."
        );
        let demo = Lockdown { demo: true, ..RUN };
        assert_eq!(
            names(&kept(&all, true, &demo)),
            ["CAP_DAC_OVERRIDE", "CAP_BPF"],
            "the demo removes its cgroup at the end"
        );
    }

    #[test]
    fn a_non_root_tracer_keeps_dac_read_search_for_the_runtime_state() {
        let granted = set(&[
            Capability::CAP_BPF,
            Capability::CAP_PERFMON,
            Capability::CAP_DAC_READ_SEARCH,
            Capability::CAP_SYSLOG,
            Capability::CAP_SYS_RESOURCE,
        ]);
        assert_eq!(
            names(&kept(&granted, false, &RUN)),
            ["CAP_DAC_READ_SEARCH", "CAP_BPF"]
        );
    }

    #[test]
    fn before_cap_bpf_cap_sys_admin_stands_in_for_both() {
        let old = set(&[Capability::CAP_SYS_ADMIN, Capability::CAP_SYSLOG]);
        assert_eq!(names(&kept(&old, true, &RUN)), ["CAP_SYS_ADMIN"]);
        assert!(kept(&CapsHashSet::new(), false, &RUN).is_empty());
    }
}
