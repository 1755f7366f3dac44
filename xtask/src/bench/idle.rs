//! The early warning's cost where nothing happens: oomtrace's wake-ups on an
//! idle node (bench-init's `idle`), without memcgs and with limited ones
//! (cgroup v2 watches those through a `memory.current` read every 2 s), and
//! its reads while the fault storm's memcg is watched (`watched`).
use std::fmt::Write as _;

use anyhow::{Context, Result, ensure};

use super::Sample;

/// The bound the issue keeps: at most one wake-up a second on an idle node.
const IDLE_WAKEUPS_PER_S: f64 = 1.0;

/// One `@@idle memcgs=N seconds=N wakeups=N tracer_exit=N` record.
struct Idle {
    memcgs: u64,
    seconds: u64,
    wakeups: u64,
}

fn parse(rest: &str) -> Option<Idle> {
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
            .parse::<u64>()
            .ok()
    };
    (field("tracer_exit")? == 0).then_some(())?;
    Some(Idle {
        memcgs: field("memcgs")?,
        seconds: field("seconds").filter(|&s| s > 0)?,
        wakeups: field("wakeups")?,
    })
}

/// The idle lines; an error when a record asked for is missing or malformed.
pub fn idle_table(records: &[String], seconds: u64) -> Result<String> {
    ensure!(!records.is_empty(), "no @@idle record");
    let mut text = format!(
        "Idle node: oomtrace --backend auto for {seconds} s of guest time, its threads' wake-ups\n"
    );
    for record in records {
        let idle = parse(record).with_context(|| format!("malformed @@idle {record}"))?;
        let rate = idle.wakeups as f64 / idle.seconds as f64;
        let verdict = match rate <= IDLE_WAKEUPS_PER_S {
            true => "met",
            false => "NOT MET",
        };
        writeln!(
            text,
            "wake-ups   {} memcgs with a memory.max: {} in {} s, {rate:.2}/s (<= {IDLE_WAKEUPS_PER_S}/s {verdict})",
            idle.memcgs, idle.wakeups, idle.seconds
        )?;
    }
    Ok(text)
}

/// How much the early warning read while the storm's memcg was watched:
/// the median read(2) calls of oomtrace during a storm, `watched` beside
/// `auto` (None when either did not run).
pub fn watched_reads(samples: &[Sample]) -> Option<String> {
    let median = |config: &str| {
        let mut reads: Vec<u64> = samples
            .iter()
            .filter(|s| s.config == config)
            .filter_map(|s| s.field("tracer_reads")?.parse().ok())
            .collect();
        reads.sort_unstable();
        reads.get(reads.len().checked_sub(1)? / 2).copied()
    };
    let (auto, watched) = (median("auto")?, median("watched")?);
    Some(format!(
        "watched: the storm's memcg limited to four times the storm, half of it held by a resident task,\n\
         so the early warning watches it throughout (from 25% of the limit on);\n\
         oomtrace's read(2) calls during a storm, median: auto {auto}, watched {watched}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_records_give_a_rate_and_its_verdict() {
        let records = [
            "memcgs=0 seconds=60 wakeups=0 tracer_exit=0".to_owned(),
            "memcgs=20 seconds=60 wakeups=90 tracer_exit=0".to_owned(),
        ];
        let text = idle_table(&records, 60).unwrap();
        assert!(
            text.contains("0 memcgs with a memory.max: 0 in 60 s, 0.00/s (<= 1/s met)"),
            "{text}"
        );
        assert!(
            text.contains("90 in 60 s, 1.50/s (<= 1/s NOT MET)"),
            "{text}"
        );
    }

    #[test]
    fn a_tracer_that_failed_is_no_measurement() {
        let records = ["memcgs=0 seconds=60 wakeups=0 tracer_exit=1".to_owned()];
        assert!(idle_table(&records, 60).is_err());
        assert!(idle_table(&[], 60).is_err());
    }
}
