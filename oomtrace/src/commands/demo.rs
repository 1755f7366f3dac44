//! `oomtrace demo`: a throw-away memcg, traced, with a memory hog named
//! `demo-hog` grown in it until the kernel kills it; prints the decision and
//! cleans up.
use std::{
    ffi::CString,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result};
use oomtrace_core::cgroup::{MemoryHierarchy, throwaway::ThrowawayCgroup};

use crate::{
    commands::run::{self, RunOptions},
    kernel::loader,
};

/// The victim's name on screen: says what it is, and is not the tracer's.
const HOG_NAME: &[u8] = b"demo-hog\0";

pub fn run(limit_mib: u64, options: RunOptions) -> Result<u64> {
    let json = options.json;
    loader::ensure_privileges()?;
    let hierarchy = MemoryHierarchy::detect()?;
    let name = format!("oomtrace-demo-{}", std::process::id());
    let cgroup = ThrowawayCgroup::create(&hierarchy, &name, limit_mib << 20)?;
    if !json {
        println!(
            "oomtrace demo: created {} with a {limit_mib} MiB limit; demo-hog will grow in it until the kernel kills it",
            cgroup.path.display()
        );
    }
    // Forked now, before the tracer drops its privileges and filters its
    // system calls (which a child would inherit), and released once the
    // tracer is attached.
    let hog = ParkedHog::fork(&cgroup.path.join("cgroup.procs"))?;
    let pid = hog.pid;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = RunOptions {
        cgroups: vec![cgroup.path.clone()],
        count: Some(1),
        duration: Some(options.duration.unwrap_or(Duration::from_secs(60))),
        dump: None,
        state_dir: None,
        ..options
    };
    let decisions = runtime.block_on(run::run(options, move || hog.release()))?;
    // SAFETY: our own child; at worst it is already gone (ESRCH).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    if decisions == 0 {
        anyhow::bail!("no OOM kill was traced in {}", cgroup.path.display());
    }
    Ok(decisions)
}

/// `demo-hog`, forked and waiting on a pipe: once released, it joins the
/// memcg, then re-executes this binary as `demo-hog` (a fresh image: a
/// forked copy would share the tracer's pages and show them in its rss),
/// which touches memory 1 MiB at a time until the kernel kills it. If the
/// pipe closes unreleased (the tracer failed to start), it exits. Between
/// fork and exec the child only makes system calls (no allocation, no
/// locks), so forking is safe.
struct ParkedHog {
    pid: libc::pid_t,
    release: OwnedFd,
}

impl ParkedHog {
    fn fork(cgroup_procs: &Path) -> Result<Self> {
        let procs = CString::new(cgroup_procs.as_os_str().as_bytes())
            .context("cgroup path with a NUL byte")?;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two fds it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("a pipe for the demo hog");
        }
        // SAFETY: both fds are fresh and ours alone.
        let (wait, release) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child runs only async-signal-safe system calls, then exec or _exit.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()).context("forking the demo hog"),
            0 => unsafe { hog_child(wait.as_raw_fd(), release.as_raw_fd(), &procs) },
            pid => Ok(Self { pid, release }),
        }
    }

    /// Lets the hog go.
    fn release(self) -> Result<()> {
        // SAFETY: one byte from our own buffer to our own pipe.
        if unsafe { libc::write(self.release.as_raw_fd(), b"g".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error()).context("releasing the demo hog");
        }
        Ok(())
    }
}

/// Between fork and exec; never returns.
unsafe fn hog_child(wait: RawFd, release: RawFd, procs: &CString) -> ! {
    // SAFETY (whole body): raw system calls on our own buffers.
    unsafe {
        libc::close(release);
        let mut go = 0u8;
        if libc::read(wait, (&raw mut go).cast(), 1) != 1 {
            libc::_exit(0);
        }
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            libc::_exit(1);
        }
        libc::close(fd);
        // An ordinary task, whatever oom_score_adj the demo was started with.
        let adj = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if adj >= 0 {
            libc::write(adj, b"0".as_ptr().cast(), 1);
            libc::close(adj);
        }
        let argv = [HOG_NAME.as_ptr().cast::<libc::c_char>(), std::ptr::null()];
        libc::execv(c"/proc/self/exe".as_ptr(), argv.as_ptr());
        libc::_exit(1)
    }
}

/// Whether this process is the demo's hog (argv[0] is `demo-hog`).
pub fn is_hog() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|arg0| arg0.as_bytes() == &HOG_NAME[..HOG_NAME.len() - 1])
}

/// The hog's life after exec: named `demo-hog`, it faults memory in until
/// the kernel kills it.
pub fn hog() -> ! {
    const CHUNK: usize = 1 << 20;
    // SAFETY (whole body): raw system calls on our own mappings.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, HOG_NAME.as_ptr());
        loop {
            let chunk = libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if chunk == libc::MAP_FAILED {
                libc::_exit(1);
            }
            // One write per 4 KiB is enough to fault every page in.
            for offset in (0..CHUNK).step_by(4096) {
                chunk.cast::<u8>().add(offset).write_volatile(1);
            }
        }
    }
}
