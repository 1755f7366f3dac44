//! `execstorm`: the exec-heavy workload of `cargo xtask bench` (the cost of
//! reading command lines at exec): runs a command to completion `--execs`
//! times, one after another, and prints the rate.
use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;

#[derive(Debug, Args, Clone)]
pub struct ExecstormArgs {
    /// Move into this cgroup directory first (the children inherit it).
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// How many times to run the command.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub execs: u64,
    /// The command and its arguments (a short-lived one: `/bin/true ...`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Forks and execs the command `--execs` times, each waited for (failing
/// on the first non-zero exit). Prints `execstorm execs=<n> ns=<elapsed>
/// cpu_ns=<on-CPU> start_ns=<wall>`: CLOCK_MONOTONIC over all runs, the CPU
/// time of this process and of its children (where an exec's own cost is
/// paid), and when they began (CLOCK_REALTIME, ns since the epoch).
pub fn execstorm(args: &ExecstormArgs) -> Result<()> {
    super::join(args.join.as_deref())?;
    ensure!(args.execs > 0, "--execs must be at least 1");
    let (program, rest) = args.command.split_first().context("no command")?;
    let wall_started = std::time::SystemTime::now();
    let started = Instant::now();
    let cpu_started = cpu_with_children_ns()?;
    for _ in 0..args.execs {
        let status = Command::new(program)
            .args(rest)
            .status()
            .with_context(|| format!("running {program}"))?;
        ensure!(status.success(), "{program} exited with {status}");
    }
    let cpu = cpu_with_children_ns()? - cpu_started;
    let what = format!("execstorm execs={}", args.execs);
    super::print_storm(&what, started, wall_started, cpu)
}

/// User and system time of this process and its waited-for children, ns.
fn cpu_with_children_ns() -> Result<u128> {
    let ns = |who| -> Result<u128> {
        // SAFETY: getrusage writes only the struct passed.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } != 0 {
            return Err(std::io::Error::last_os_error()).context("getrusage");
        }
        let tv = |t: libc::timeval| t.tv_sec as u128 * 1_000_000_000 + t.tv_usec as u128 * 1000;
        Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
    };
    Ok(ns(libc::RUSAGE_SELF)? + ns(libc::RUSAGE_CHILDREN)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execstorm_runs_the_command_and_rejects_failures_and_zero() {
        let args = |execs, command: &[&str]| ExecstormArgs {
            join: None,
            execs,
            command: command.iter().map(|s| s.to_string()).collect(),
        };
        execstorm(&args(3, &["true", "--password=x"])).unwrap();
        assert!(execstorm(&args(1, &["false"])).is_err());
        assert!(execstorm(&args(0, &["true"])).is_err());
    }
}
