//! What the tracer does for itself at start, while it still holds the
//! capabilities: an OOM should kill a workload rather than the witness, and
//! a storm that keeps every CPU busy should not leave the witness behind.
//! Each is best effort: without the capability the run goes on, with a
//! warning, and the start record says what is in force.

/// Lowers the tracer's own oom_score_adj to `adj` (needs CAP_SYS_RESOURCE);
/// a value already lower (a unit's `OOMScoreAdjust=-1000`) is kept. Returns
/// the value in force.
pub fn protect_self(adj: Option<i32>, warnings: &mut Vec<String>) -> Option<i32> {
    const PATH: &str = "/proc/self/oom_score_adj";
    let read = || -> Option<i32> { std::fs::read_to_string(PATH).ok()?.trim().parse().ok() };
    if let Some(adj) = adj
        && read().is_none_or(|now| now > adj)
        && let Err(e) = std::fs::write(PATH, adj.to_string())
    {
        warnings.push(format!(
            "cannot set its own oom_score_adj to {adj} ({e}): an OOM may pick the tracer; grant CAP_SYS_RESOURCE"
        ));
    }
    read()
}

/// Raises the calling thread's priority to nice value `nice` (needs
/// CAP_SYS_NICE); a higher priority already set (a unit's `Nice=`) is kept.
/// Threads started afterwards inherit it, so call it before any. Returns
/// the value in force.
///
/// Why: the tracer needs about a millisecond of CPU per kill, and in a
/// storm the OOM memcgs' tasks keep every CPU busy; at their priority it
/// gets no more than its fair share and its decisions queue up behind them
/// (docs/bench.md, "Kill-to-decision latency in a storm").
pub fn raise_priority(nice: Option<i32>, warnings: &mut Vec<String>) -> Option<i32> {
    if let Some(nice) = nice
        && current_nice().is_none_or(|now| now > nice)
    {
        // SAFETY: setpriority takes plain integers; 0 is the calling thread.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            let e = std::io::Error::last_os_error();
            warnings.push(format!(
                "cannot set its own nice value to {nice} ({e}): in an OOM storm its decisions may lag behind the workloads; grant CAP_SYS_NICE"
            ));
        }
    }
    current_nice()
}

/// The calling thread's nice value.
fn current_nice() -> Option<i32> {
    // getpriority may return -1 as a value: only errno tells an error.
    // SAFETY: errno is thread-local; getpriority takes plain integers.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    match std::io::Error::last_os_error().raw_os_error() {
        Some(0) | None => Some(nice),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_priority_already_in_force_is_kept() {
        let now = current_nice().expect("getpriority");
        let mut warnings = Vec::new();
        // Asking for a lower priority than the current one changes nothing.
        assert_eq!(
            raise_priority(Some(19.min(now + 1)), &mut warnings),
            Some(now)
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(raise_priority(None, &mut warnings), Some(now));
    }
}
