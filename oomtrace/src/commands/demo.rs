//! `oomtrace demo`: a throw-away memcg, traced, with a memory hog named
//! `demo-hog` grown in it until the kernel kills it; prints the decision and
//! cleans up.
use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::{Arc, Mutex},
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
    let hog: Arc<Mutex<Option<libc::pid_t>>> = Arc::default();
    let start_hog = {
        let hog = Arc::clone(&hog);
        let procs = cgroup.path.join("cgroup.procs");
        move || -> Result<()> {
            *hog.lock().expect("hog lock") = Some(spawn_hog(&procs)?);
            Ok(())
        }
    };
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
    let decisions = runtime.block_on(run::run(options, start_hog))?;
    if let Some(pid) = hog.lock().expect("hog lock").take() {
        // SAFETY: our own child; at worst it is already gone (ESRCH).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    if decisions == 0 {
        anyhow::bail!("no OOM kill was traced in {}", cgroup.path.display());
    }
    Ok(decisions)
}

/// Starts `demo-hog`: a child that joins the memcg, then re-executes this
/// binary as `demo-hog` (a fresh image: a forked copy would share the
/// tracer's pages and show them in its rss), which touches memory 1 MiB at
/// a time until the kernel kills it. Between fork and exec the child only
/// makes system calls (no allocation, no locks), so forking the tracer is
/// safe.
fn spawn_hog(cgroup_procs: &Path) -> Result<libc::pid_t> {
    let procs =
        CString::new(cgroup_procs.as_os_str().as_bytes()).context("cgroup path with a NUL byte")?;
    // SAFETY: the child runs only async-signal-safe system calls, then exec or _exit.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("forking the demo hog"),
        0 => unsafe { hog_child(&procs) },
        pid => Ok(pid),
    }
}

/// Between fork and exec; never returns.
unsafe fn hog_child(procs: &CString) -> ! {
    // SAFETY (whole body): raw system calls on our own buffers.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            libc::_exit(1);
        }
        libc::close(fd);
        // The tracer lowered its own oom_score_adj; the hog is an ordinary task.
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
