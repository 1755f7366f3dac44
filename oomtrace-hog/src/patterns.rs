//! The early warning's workloads (docs/early-warning.md): memory that grows
//! at a given rate (anon or a tmpfs file), a garbage collector's sawtooth,
//! and a reader of page cache. Each joins its cgroup first and runs until
//! killed.
use std::{
    fs,
    io::{Read, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;

use crate::{Mapping, join};

const MIB: usize = 1 << 20;

#[derive(Debug, Args, Clone)]
pub struct LeakArgs {
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// Growth, in MiB per second (1 MiB at a time, evenly paced).
    #[arg(long, value_name = "MIB")]
    pub rate: u64,
    /// Grow a file in this directory (a tmpfs: shmem) instead of anonymous memory.
    #[arg(long, value_name = "DIR")]
    pub file_in: Option<PathBuf>,
    /// With `--file-in`: grow the file through a shared mapping, as users of
    /// shared memory do, instead of `write()` (only mapped pages count in
    /// the task's rss, as `RssShmem`).
    #[arg(long, requires = "file_in")]
    pub map: bool,
}

#[derive(Debug, Args, Clone)]
pub struct SawtoothArgs {
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// Held between cycles (MiB).
    #[arg(long, value_name = "MIB")]
    pub low: u64,
    /// Reached at the top of each cycle (MiB).
    #[arg(long, value_name = "MIB")]
    pub high: u64,
    /// Allocation rate while rising, MiB per second.
    #[arg(long, value_name = "MIB")]
    pub rate: u64,
    /// How long the top is held before the collection frees it (ms).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub hold_ms: u64,
}

#[derive(Debug, Args, Clone)]
pub struct PagecacheArgs {
    #[arg(long, value_name = "DIR")]
    pub join: Option<PathBuf>,
    /// The file read over and over (made this size, sparse, if absent).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, value_name = "MIB")]
    pub mib: u64,
    /// Write the file over and over instead (dirty pages, throttled at the limit).
    #[arg(long)]
    pub write: bool,
    /// MiB per second, as a disk would allow (a RAM block device has no
    /// such bound, and would take every CPU it is given); 0: unpaced.
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub rate: u64,
}

/// One MiB of fresh anonymous memory, every page written.
fn touched_mib() -> Result<Mapping> {
    let mapping = Mapping::anonymous(MIB)?;
    // SAFETY: MIB bytes of our own fresh read-write mapping.
    unsafe { std::ptr::write_bytes(mapping.addr.cast::<u8>(), 1, MIB) };
    Ok(mapping)
}

/// Sleeps until `start + n / rate` seconds: n MiB evenly paced.
fn pace(start: Instant, n: u64, rate: u64) {
    let at = start + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
    if let Some(wait) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// Grows `--rate` MiB/s until killed.
pub fn leak(args: &LeakArgs) -> Result<()> {
    join(args.join.as_deref())?;
    let start = Instant::now();
    let mut held = Vec::new();
    let mut file = match &args.file_in {
        Some(dir) => Some(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(format!("leak-{}", std::process::id())))
                .context("creating the tmpfs file")?,
        ),
        None => None,
    };
    let block = vec![1u8; MIB];
    for n in 1.. {
        match file.as_mut() {
            Some(file) if args.map => held.push(mapped_mib(file, n - 1)?),
            Some(file) => file.write_all(&block).context("writing the tmpfs file")?,
            None => held.push(touched_mib()?),
        }
        pace(start, n, args.rate);
    }
    unreachable!()
}

/// The file's MiB number `index`, added to it and written through a shared
/// mapping (kept: the pages stay in the task's rss).
fn mapped_mib(file: &fs::File, index: u64) -> Result<Mapping> {
    let offset = index * MIB as u64;
    file.set_len(offset + MIB as u64)
        .context("growing the tmpfs file")?;
    let mapping = Mapping::shared(file, offset, MIB)?;
    // SAFETY: MIB bytes of our own fresh read-write mapping.
    unsafe { std::ptr::write_bytes(mapping.addr.cast::<u8>(), 1, MIB) };
    Ok(mapping)
}

/// Rises to `--high` at `--rate`, holds, frees down to `--low`, again and again.
pub fn sawtooth(args: &SawtoothArgs) -> Result<()> {
    join(args.join.as_deref())?;
    let base: Vec<Mapping> = (0..args.low)
        .map(|_| touched_mib())
        .collect::<Result<_>>()?;
    loop {
        let start = Instant::now();
        let mut garbage = Vec::new();
        for n in 1..=args.high.saturating_sub(args.low) {
            garbage.push(touched_mib()?);
            pace(start, n, args.rate);
        }
        std::thread::sleep(Duration::from_millis(args.hold_ms));
        drop(garbage);
        std::thread::sleep(Duration::from_millis(args.hold_ms));
        std::hint::black_box(&base);
    }
}

/// Reads (or writes) `--file` from start to end, forever.
pub fn pagecache(args: &PagecacheArgs) -> Result<()> {
    join(args.join.as_deref())?;
    let len = args.mib * MIB as u64;
    if !args.write && !args.file.exists() {
        fs::File::create(&args.file)?.set_len(len)?;
    }
    let mut block = vec![1u8; MIB];
    let (start, mut n) = (Instant::now(), 0);
    let mut paced = || {
        n += 1;
        if args.rate > 0 {
            pace(start, n, args.rate);
        }
    };
    loop {
        if args.write {
            let mut file = fs::File::create(&args.file).context("creating the file")?;
            for _ in 0..args.mib {
                file.write_all(&block)?;
                paced();
            }
        } else {
            let mut file = fs::File::open(&args.file).context("opening the file")?;
            while file.read(&mut block)? > 0 {
                paced();
            }
        }
    }
}
