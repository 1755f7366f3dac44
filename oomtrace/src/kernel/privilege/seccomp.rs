//! The seccomp allowlist of the running tracer: the system calls it makes
//! after start-up, measured with `strace -f` over a run through every
//! feature (decisions, dumps, `--output` rotation and its retry,
//! `--metrics` scrapes, `--state-dir` saves and recovery, the tracepoint
//! backend's /proc task snapshots, stalls, the on-demand charge hook; docs
//! in docs/operations.md "Least privilege").
//!
//! Any other call fails with EPERM rather than killing the tracer: a call
//! we missed (a libc update, a rare error path) then costs one operation
//! and shows as an error or warning, while a killed tracer would miss every
//! OOM after it. Numbers differ per architecture, so the lists name them
//! through `libc::SYS_*`, with what only one architecture has apart.
use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::PrivilegeError;

/// Every architecture: I/O on what is open, reading cgroups, /proc and the
/// runtimes' state, writing dumps and the `--state-dir` state (replaced
/// through a temporary file: `fchmod`, `fsync`, `renameat`), rotating and
/// reopening `--output`, the metrics
/// socket, memory, threads, time and signals. `bpf` and `prctl` are
/// narrowed by their first argument ([`narrowed`]).
const RUNNING: &[libc::c_long] = &[
    // files and directories
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_read,
    libc::SYS_pread64,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_lseek,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fcntl,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fchmod,
    libc::SYS_ftruncate,
    libc::SYS_renameat2,
    libc::SYS_unlinkat,
    libc::SYS_mkdirat,
    libc::SYS_ioctl,
    // the event loop and the metrics socket (bound and listening already)
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_ppoll,
    // a victim's process, watched until it is gone
    libc::SYS_pidfd_open,
    // the early warning's memcgs created after start: their usage
    // threshold (v1), their directories, and the watches of those removed
    libc::SYS_eventfd2,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    // memory
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    // threads (the writer threads start after the drop) and their end
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getrandom,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // time
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    // signals (SIGINT, SIGTERM, a panic's abort)
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_tgkill,
];

/// The legacy calls x86_64's libc still makes (aarch64 has only their
/// `*at`/`p*` successors: `renameat2`, `ppoll`, `epoll_pwait`...).
#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_unlink,
    libc::SYS_poll,
    libc::SYS_epoll_wait,
];

#[cfg(target_arch = "aarch64")]
const ARCH_ONLY: &[libc::c_long] = &[];

/// `oomtrace demo` also ends its hog (forked before the filter) and removes
/// its cgroup (`rmdir` is `unlinkat` on aarch64).
const DEMO: &[libc::c_long] = &[
    libc::SYS_kill,
    libc::SYS_wait4,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rmdir,
];

/// `bpf()` commands of the running tracer: map reads and writes (drop
/// counters, reclaim stats, charge failures, the rss rule) and attaching
/// the on-demand charge hook (a link, or a raw tracepoint on older
/// kernels). No program loads, no map creation.
/// (`enum bpf_cmd` of the kernel's uapi, which libc does not carry.)
const BPF_COMMANDS: &[u32] = &[
    1,  // BPF_MAP_LOOKUP_ELEM
    2,  // BPF_MAP_UPDATE_ELEM
    3,  // BPF_MAP_DELETE_ELEM
    4,  // BPF_MAP_GET_NEXT_KEY
    15, // BPF_OBJ_GET_INFO_BY_FD
    17, // BPF_RAW_TRACEPOINT_OPEN
    28, // BPF_LINK_CREATE
    34, // BPF_LINK_DETACH
];

/// `prctl()` options: the writer threads' names.
const PRCTL_OPTIONS: &[u32] = &[libc::PR_SET_NAME as u32, libc::PR_GET_NAME as u32];

/// The kernel has seccomp filters (CONFIG_SECCOMP_FILTER).
pub fn supported() -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}

/// Installs the allowlist on every thread of the process (TSYNC), with
/// the kernel's logging of what it refuses (`SECCOMP_FILTER_FLAG_LOG`: an
/// audit record `type=1326 ... syscall=N` in the kernel log or the audit
/// log, so that a call we missed shows where operators look).
pub fn install(demo: bool) -> Result<(), PrivilegeError> {
    let program = filter(demo)?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| PrivilegeError::SeccompSize(program.len()))?,
        filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    let flags = libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_LOG;
    // SAFETY: the kernel copies the program it is given; seccompiler's
    // sock_filter has libc's layout (both are the kernel's struct).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &raw const fprog,
        )
    };
    match rc {
        0 => Ok(()),
        // TSYNC: the thread that could not take the filter.
        tid if tid > 0 => Err(PrivilegeError::SeccompThread(tid)),
        _ => Err(PrivilegeError::SeccompInstall(
            std::io::Error::last_os_error(),
        )),
    }
}

fn filter(demo: bool) -> Result<BpfProgram, PrivilegeError> {
    let arch = std::env::consts::ARCH;
    let target = TargetArch::try_from(arch).map_err(|_| PrivilegeError::SeccompArch(arch))?;
    let demo_calls = if demo { DEMO } else { &[] };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = RUNNING
        .iter()
        .chain(ARCH_ONLY)
        .chain(demo_calls)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    rules.insert(libc::SYS_bpf, narrowed(BPF_COMMANDS)?);
    rules.insert(libc::SYS_prctl, narrowed(PRCTL_OPTIONS)?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target,
    )?;
    Ok(filter.try_into()?)
}

/// One rule per allowed value of the call's first argument.
fn narrowed(values: &[u32]) -> Result<Vec<SeccompRule>, PrivilegeError> {
    values
        .iter()
        .map(|&value| {
            let first = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(value),
            )?;
            Ok(SeccompRule::new(vec![first])?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_architecture() {
        for demo in [false, true] {
            let program = filter(demo).unwrap();
            assert!(!program.is_empty() && program.len() < usize::from(u16::MAX));
        }
    }

    /// No program load (5), map creation (0) or pinning (6, 7): a tracer
    /// taken over cannot bring kernel code of its own.
    #[test]
    fn bpf_is_narrowed_to_maps_and_links() {
        for forbidden in [0, 5, 6, 7] {
            assert!(!BPF_COMMANDS.contains(&forbidden), "{forbidden}");
        }
        let everything = RUNNING.iter().chain(ARCH_ONLY);
        for nr in everything {
            assert!(
                ![libc::SYS_bpf, libc::SYS_prctl, libc::SYS_execve].contains(nr),
                "{nr} must not be allowed unconditionally"
            );
        }
    }
}
