//! `oomtrace-hog`: the workloads of the tests, the VM scenarios and the bench,
//! kept out of the product binary. `hog` allocates until killed (or holds
//! `--mib`); `faultstorm` faults fresh pages round after round; `execstorm`
//! runs a short-lived command over and over. Tests link
//! it under the name the kernel should print (`hog64 -> oomtrace-hog`).
use std::{
    fs,
    io::{BufRead as _, Write},
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};

mod execstorm;
mod patterns;

use clap::{Args, Parser};
use oomtrace_core::base::host::page_size;

#[derive(Parser)]
#[command(
    name = "oomtrace-hog",
    about = "Workloads for oomtrace's tests and bench"
)]
enum Cli {
    /// Allocate and touch memory until killed.
    Hog(HogArgs),
    /// Fault in fresh anonymous 4 KiB pages round after round and print the rate.
    Faultstorm(FaultstormArgs),
    /// Run a short-lived command over and over and print the rate.
    Execstorm(execstorm::ExecstormArgs),
    /// Grow at a steady rate until killed (anon, or a file on a tmpfs).
    Leak(patterns::LeakArgs),
    /// A garbage collector's sawtooth: rise, hold, free, again.
    Sawtooth(patterns::SawtoothArgs),
    /// Read (or write) a file over and over: page cache at the limit.
    Pagecache(patterns::PagecacheArgs),
    /// Read oomtrace's JSON Lines on stdin and print how long after its kill
    /// each decision was read.
    Latency(LatencyArgs),
}

#[derive(Debug, Args, Clone)]
pub struct LatencyArgs {
    /// Print the summary once this many decisions are read (then keep
    /// reading, silently, to EOF, so the writer never blocks); default: at EOF.
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,
}

fn main() {
    let result = match Cli::parse() {
        Cli::Hog(args) => hog(&args),
        Cli::Faultstorm(args) => faultstorm(&args),
        Cli::Execstorm(args) => execstorm::execstorm(&args),
        Cli::Latency(args) => latency(&args),
        Cli::Leak(args) => patterns::leak(&args),
        Cli::Sawtooth(args) => patterns::sawtooth(&args),
        Cli::Pagecache(args) => patterns::pagecache(&args),
    };
    if let Err(error) = result {
        eprintln!("oomtrace-hog: {error:#}");
        std::process::exit(1);
    }
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
    /// Before mapping anything, wait for a line on this FIFO (a storm
    /// started early, in a memcg that is not full yet, and let go later).
    #[arg(long, value_name = "FIFO")]
    pub wait_on: Option<PathBuf>,
}

/// Allocates and touches memory 1 MiB at a time (up to `--mib`), then holds
/// it until killed; returns only on error.
fn hog(args: &HogArgs) -> Result<()> {
    join(args.join.as_deref())?;
    if let Some(adj) = args.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", adj.to_string()).context("setting oom_score_adj")?;
    }
    if let Some(children) = args.children {
        return fork_children(args, children);
    }
    let held = grow(args)?;
    if args.announce {
        announce()?;
    }
    hold(held)
}

/// Memory the hog keeps: heap chunks, or the mapping made by `--populate`.
type Held = (Vec<Vec<u8>>, Option<Mapping>);

fn grow(args: &HogArgs) -> Result<Held> {
    Ok(match (args.populate, args.mib) {
        (true, Some(mib)) => (Vec::new(), Some(populate(mib)?)),
        (true, None) => anyhow::bail!("--populate needs --mib"),
        (false, limit) => (touch(limit), None),
    })
}

/// Moves this process into the cgroup directory, if one is given.
fn join(dir: Option<&std::path::Path>) -> Result<()> {
    if let Some(dir) = dir {
        fs::write(dir.join("cgroup.procs"), "0")
            .with_context(|| format!("joining cgroup {}", dir.display()))?;
    }
    Ok(())
}

fn announce() -> Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

fn hold(held: Held) -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&held);
    }
}

/// `limit` MiB (or without end) of heap, every page written so it is charged now.
fn touch(limit: Option<u64>) -> Vec<Vec<u8>> {
    let page = page_size();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    while limit.is_none_or(|limit| (chunks.len() as u64) < limit) {
        let mut chunk = vec![0u8; 1 << 20];
        // Touch every page so it is charged now, not at first use.
        for offset in (0..chunk.len()).step_by(page) {
            chunk[offset] = 1;
        }
        std::hint::black_box(&chunk);
        chunks.push(chunk);
    }
    chunks
}

/// Like [`touch`] but `mib` MiB of one anonymous mapping are faulted in by
/// `madvise(MADV_POPULATE_WRITE)`, 1 MiB at a time, so a failed charge is an
/// error returned here (ENOMEM) rather than a page fault the kernel retries.
/// Kernels before 5.14 lack it; there `mlock` faults the pages in the same
/// way (and fails with EAGAIN).
fn populate(mib: u64) -> Result<Mapping> {
    const CHUNK: usize = 1 << 20;
    let len = usize::try_from(mib)?
        .checked_mul(CHUNK)
        .context("--mib too large")?;
    let mapping = Mapping::anonymous(len)?;
    let addr = mapping.addr;
    let os = |status: libc::c_int| match status {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    };
    let mut use_mlock = false;
    for done in 0..len / CHUNK {
        // SAFETY: within the mapping made above.
        let chunk = unsafe { addr.cast::<u8>().add(done * CHUNK) }.cast();
        // SAFETY (both calls): `chunk` is CHUNK bytes of our own mapping.
        let mlock = || os(unsafe { libc::mlock(chunk, CHUNK) });
        let result = match use_mlock {
            true => mlock(),
            false => os(unsafe { libc::madvise(chunk, CHUNK, libc::MADV_POPULATE_WRITE) }).or_else(
                |error| match error.raw_os_error() {
                    Some(libc::EINVAL) => {
                        use_mlock = true;
                        mlock()
                    }
                    _ => Err(error),
                },
            ),
        };
        if let Err(error) = result {
            // Give the memory back before reporting: writing the error may
            // need some (stderr on a tmpfs is charged to this memcg).
            drop(mapping);
            let how = match use_mlock {
                true => "mlock (no MADV_POPULATE_WRITE before Linux 5.14)",
                false => "madvise(MADV_POPULATE_WRITE)",
            };
            return Err(error).with_context(|| format!("{how} after {done} MiB"));
        }
    }
    Ok(mapping)
}

/// An anonymous mapping, unmapped on drop (whole: unmapping part of it could
/// need memory to split it).
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// `len` bytes of fresh private anonymous memory, read-write.
    fn anonymous(len: usize) -> Result<Self> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap");
        }
        Ok(Self { addr, len })
    }

    /// `len` bytes of `file` from `offset`, shared and read-write: the pages
    /// are the file's (on a tmpfs: shmem, counted in the task's `RssShmem`
    /// once touched).
    fn shared(file: &std::fs::File, offset: u64, len: usize) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let offset = libc::off_t::try_from(offset).context("mmap offset")?;
        // SAFETY: a fresh shared mapping of our own open file; no existing
        // memory is affected.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap");
        }
        Ok(Self { addr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// Forks `count` children that each allocate `--mib` (same cgroup and
/// oom_score_adj, already set here) and hold it. With `--announce`, prints
/// "ready" once every child has allocated. Then reaps them and waits.
fn fork_children(args: &HogArgs, count: u32) -> Result<()> {
    let (mut reports, writer) = std::io::pipe().context("pipe")?;
    for _ in 0..count {
        // SAFETY: the hog is single-threaded; the child only allocates and holds.
        match unsafe { libc::fork() } {
            -1 => return Err(std::io::Error::last_os_error()).context("fork"),
            0 => {
                drop(reports);
                match grow(args) {
                    Ok(held) => {
                        let mut writer = writer;
                        let _ = writer.write_all(b"+");
                        drop(writer);
                        hold(held)
                    }
                    Err(error) => {
                        eprintln!("oomtrace hog child: {error:#}");
                        // SAFETY: leave the child without running the parent's code.
                        unsafe { libc::_exit(1) }
                    }
                }
            }
            _ => {}
        }
    }
    // Our copy of the write end: EOF then means every child reported or died.
    drop(writer);
    let mut allocated = Vec::new();
    std::io::Read::read_to_end(&mut reports, &mut allocated).context("reading from children")?;
    if args.announce {
        if allocated.len() as u64 != u64::from(count) {
            anyhow::bail!("only {} of {count} children allocated", allocated.len());
        }
        announce()?;
    }
    loop {
        // SAFETY: reaping our own children; a null status pointer is allowed.
        if unsafe { libc::wait(std::ptr::null_mut()) } < 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
        {
            // ECHILD: all children are gone; keep the process (and its name) around.
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The page-fault storm of `cargo xtask bench`: maps `--mib` MiB of private
/// anonymous memory, writes one byte per page (each write one fault, one
/// page allocated and charged to the memcg), unmaps it (uncharged), and does
/// that `--rounds` times. Prints `faultstorm pages=<touched> ns=<elapsed>
/// cpu_ns=<on-CPU> start_ns=<wall>`: CLOCK_MONOTONIC and this process's CPU
/// time over all rounds, and when they began (CLOCK_REALTIME, ns since the
/// epoch: the clock of oomtrace's records, to place them in the storm). Under QEMU `-icount` the guest clock counts instructions, so the
/// rate is repeatable; the CPU time leaves out whatever else ran meanwhile
/// (a tracer's own wakeups), so the two apart show where a cost is paid.
/// A PMD-sized transparent huge page on x86-64.
const HUGE_PAGE: usize = 2 << 20;

fn faultstorm(args: &FaultstormArgs) -> Result<()> {
    join(args.join.as_deref())?;
    let page = page_size();
    let len = usize::try_from(args.mib)
        .ok()
        .and_then(|mib| mib.checked_mul(1 << 20))
        .filter(|&len| len > 0)
        .context("--mib must be between 1 and the address space")?;
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    if let Some(fifo) = &args.wait_on {
        let mut line = String::new();
        std::io::BufReader::new(
            fs::File::open(fifo).with_context(|| format!("opening {}", fifo.display()))?,
        )
        .read_line(&mut line)
        .with_context(|| format!("reading {}", fifo.display()))?;
    }
    let pages = (len / page) as u64;
    let total = pages
        .checked_mul(args.rounds)
        .context("--mib × --rounds too large")?;
    let wall_started = std::time::SystemTime::now();
    let started = std::time::Instant::now();
    let cpu_started = process_cpu_ns()?;
    for _ in 0..args.rounds {
        let mapping = Mapping::anonymous(len)?;
        let addr = mapping.addr;
        // SAFETY: advice on our own mapping.
        if !args.thp && unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(std::io::Error::last_os_error()).context("madvise(MADV_NOHUGEPAGE)");
        }
        // Huge pages come only in aligned 2 MiB regions: with --thp the first
        // touch is a huge-page fault (and charge), not small pages up to a
        // boundary.
        let head = if args.thp {
            (HUGE_PAGE - addr as usize % HUGE_PAGE) % HUGE_PAGE
        } else {
            0
        };
        for offset in (head..len).step_by(page) {
            // SAFETY: within the mapping; volatile so that every page is written.
            unsafe { addr.cast::<u8>().add(offset).write_volatile(1) };
        }
        // Unmapping frees and uncharges the pages: the next round faults afresh.
        drop(mapping);
    }
    let cpu = process_cpu_ns()? - cpu_started;
    print_storm(
        &format!("faultstorm pages={total}"),
        started,
        wall_started,
        cpu,
    )
}

/// Prints a storm's line: `<what> ns=<elapsed> cpu_ns=<cpu> start_ns=<wall>`,
/// from its CLOCK_MONOTONIC and CLOCK_REALTIME starts.
fn print_storm(
    what: &str,
    started: std::time::Instant,
    wall_started: SystemTime,
    cpu: u128,
) -> Result<()> {
    let elapsed = started.elapsed().as_nanos();
    let start_ns = wall_started
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_nanos();
    let mut out = std::io::stdout();
    writeln!(out, "{what} ns={elapsed} cpu_ns={cpu} start_ns={start_ns}")?;
    out.flush()?;
    Ok(())
}

/// The OOM-to-output latency of `cargo xtask bench`: for every `decision`
/// record on stdin, the wall clock when its line is read minus its `time`,
/// which is the kill (the kernel's timestamp of the kill event or kill
/// line, converted by oomtrace). Prints `latency decisions=N untimed=N
/// lost=N p50_us=N p99_us=N max_us=N` and the breakdown of [`Waits`]
/// after `--expect` decisions or at EOF (`untimed`: decisions without a
/// time; `lost`: `lost` records seen).
fn latency(args: &LatencyArgs) -> Result<()> {
    let (mut waits, mut untimed, mut lost) = (Waits::default(), 0u64, 0u64);
    let mut lines = std::io::stdin().lines();
    for line in lines.by_ref() {
        let line = line.context("reading stdin")?;
        let read_at = std::time::SystemTime::now();
        match record_field(&line, "type") {
            Some("decision") => {}
            Some("lost") => {
                lost += 1;
                continue;
            }
            _ => continue,
        }
        match record_field(&line, "time").and_then(oomtrace_core::base::time::parse_rfc3339) {
            Some(killed) => {
                let exit_ms = number_field(&line, "exit_after_ms").unwrap_or(0.0);
                waits.push(killed, exit_ms, read_at);
            }
            None => untimed += 1,
        }
        if args
            .expect
            .is_some_and(|n| waits.total.len() as u64 + untimed >= n)
        {
            break;
        }
    }
    let mut out = std::io::stdout();
    writeln!(
        out,
        "latency decisions={} untimed={untimed} lost={lost} {}",
        waits.total.len() as u64 + untimed,
        waits.summary()
    )?;
    out.flush()?;
    // Keep reading so that the tracer never writes into a closed pipe.
    for line in lines {
        line.context("reading stdin")?;
    }
    Ok(())
}

/// Each decision's latency (kill to line read, in microseconds) in three
/// parts, in the order the lines are read: its victim's exit after the kill
/// (`exit`, the physical floor), the time after it that an earlier
/// decision's victim still had to exit (`order`: decisions go out in their
/// order), and what is left (`rest`: the tracer's own reads and work).
#[derive(Default)]
struct Waits {
    total: Vec<u64>,
    exit: Vec<u64>,
    order: Vec<u64>,
    rest: Vec<u64>,
    /// The latest victim exit among the decisions read so far.
    latest_exit: Option<SystemTime>,
}

impl Waits {
    fn push(&mut self, killed: SystemTime, exit_ms: f64, read_at: SystemTime) {
        let micros = |from: SystemTime, to: SystemTime| {
            // A kill stamped after the read would be a clock step: 0.
            to.duration_since(from).unwrap_or_default().as_micros() as u64
        };
        let exited = killed + Duration::from_secs_f64(exit_ms.max(0.0) / 1000.0);
        let latest = self.latest_exit.map_or(exited, |at| at.max(exited));
        self.latest_exit = Some(latest);
        self.total.push(micros(killed, read_at));
        self.exit.push(micros(killed, exited));
        self.order.push(micros(exited, latest));
        self.rest.push(micros(latest, read_at));
    }

    /// `p50_us p99_us max_us` of the latency, the p99 of each part, and the
    /// mean of each part over the slowest 1% (`slow_*`): what they waited for.
    fn summary(&self) -> String {
        let mut sorted = self.total.clone();
        sorted.sort_unstable();
        let p99 = percentile(&sorted, 99);
        let slow: Vec<usize> = (0..self.total.len())
            .filter(|&i| self.total[i] >= p99)
            .collect();
        let mut text = format!(
            "p50_us={} p99_us={p99} max_us={}",
            percentile(&sorted, 50),
            sorted.last().copied().unwrap_or(0)
        );
        for (name, part) in [
            ("exit", &self.exit),
            ("order", &self.order),
            ("rest", &self.rest),
        ] {
            let mut sorted = part.clone();
            sorted.sort_unstable();
            let mean = slow.iter().map(|&i| part[i]).sum::<u64>() / slow.len().max(1) as u64;
            text.push_str(&format!(
                " {name}_p99_us={} slow_{name}_us={mean}",
                percentile(&sorted, 99)
            ));
        }
        text
    }
}

/// The nearest-rank `p`th percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    match sorted.len() {
        0 => 0,
        n => sorted[(n * p).div_ceil(100).clamp(1, n) - 1],
    }
}

/// The string value of `"key":"..."` in a JSON record whose envelope
/// (`type`, `schema_version`, `time`) comes first: enough for the bench,
/// which needs no JSON parser in this crate.
fn record_field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The number value of `"key":N` in a JSON record (None: null or absent).
fn number_field(line: &str, key: &str) -> Option<f64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let len = line[start..]
        .find(|c: char| !(c.is_ascii_digit() || ".-+eE".contains(c)))
        .unwrap_or(line.len() - start);
    line[start..start + len].parse().ok()
}

/// CLOCK_PROCESS_CPUTIME_ID in nanoseconds.
fn process_cpu_ns() -> Result<u128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec passed.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error()).context("clock_gettime");
    }
    Ok(ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_reads_the_envelope_and_ranks_nearest() {
        let line = r#"{"type":"decision","schema_version":1,"time":"2026-12-01T16:35:39.5Z","trigger":{"time":"x"}}"#;
        assert_eq!(record_field(line, "type"), Some("decision"));
        assert_eq!(record_field(line, "time"), Some("2026-12-01T16:35:39.5Z"));
        assert_eq!(record_field(line, "absent"), None);
        let values: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile(&values, 50), 100);
        assert_eq!(percentile(&values, 99), 198);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn waits_split_into_the_exit_the_earlier_decisions_and_the_rest() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let line = r#"{"freed":{"exited":true,"exit_after_ms":2.5},"x":null}"#;
        assert_eq!(number_field(line, "exit_after_ms"), Some(2.5));
        assert_eq!(number_field(line, "x"), None);
        let mut waits = Waits::default();
        // Killed at 0, exited at 50, read at 52; killed at 10, exited at
        // 12, read at 53: it waited 38 ms for the first one's victim.
        waits.push(at(0), 50.0, at(52));
        waits.push(at(10), 2.0, at(53));
        assert_eq!(waits.total, [52_000, 43_000]);
        assert_eq!(waits.exit, [50_000, 2_000]);
        assert_eq!(waits.order, [0, 38_000]);
        assert_eq!(waits.rest, [2_000, 3_000]);
        let summary = waits.summary();
        assert!(
            summary.starts_with("p50_us=43000 p99_us=52000 max_us=52000"),
            "{summary}"
        );
        assert!(summary.contains("slow_exit_us=50000 "), "{summary}");
        assert!(
            summary.contains("order_p99_us=38000 slow_order_us=0 "),
            "{summary}"
        );
    }

    /// `--populate` leaves every page of the mapping resident (charged now,
    /// not at first touch).
    #[test]
    fn faultstorm_faults_every_round_and_rejects_zero_sizes() {
        let args = |mib, rounds| FaultstormArgs {
            join: None,
            mib,
            rounds,
            thp: false,
            wait_on: None,
        };
        faultstorm(&args(1, 2)).unwrap();
        assert!(faultstorm(&args(0, 1)).is_err());
        assert!(faultstorm(&args(1, 0)).is_err());
        assert!(faultstorm(&args(u64::MAX, 1)).is_err());
    }

    #[test]
    fn populate_faults_every_page_in() {
        let mapping = populate(2).unwrap();
        assert_eq!(mapping.len, 2 << 20);
        let pages = mapping.len / page_size();
        let mut resident = vec![0u8; pages];
        // SAFETY: our mapping, and a vector with one byte per page.
        let rc = unsafe { libc::mincore(mapping.addr, mapping.len, resident.as_mut_ptr()) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert!(resident.iter().all(|&r| r & 1 == 1), "{resident:?}");
    }
}
