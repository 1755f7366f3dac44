//! oomtrace's own footprint in `cargo xtask bench`: its memory in every
//! traced run, and one OOM storm (tests/vm/bench-init `oom_storm`) for its
//! memory, CPU time per kill and OOM-to-output latency under load.
use std::fmt::Write as _;

use anyhow::{Context, Result, ensure};

use super::{Sample, TRACED, median};

/// The bounds on the tracer's resident memory.
const PEAK_BOUND_MIB: f64 = 64.0;
const IDLE_BOUND_MIB: f64 = 20.0;
/// The bounds on kill -> decision line, p99: one OOM on an idle
/// node (close to the victim's own exit), and in the storm.
const ISOLATED_P99_BOUND_MS: f64 = 20.0;
const STORM_P99_BOUND_MS: f64 = 100.0;

/// `MEMCGSxKILLSxMIB`: memcgs at once, kills in each, their limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormShape {
    pub memcgs: u32,
    pub kills: u32,
    pub mib: u32,
}

impl StormShape {
    /// `off` is no storm.
    pub fn parse(text: &str) -> Result<Option<Self>> {
        if text == "off" {
            return Ok(None);
        }
        let numbers: Vec<u32> = text
            .split('x')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("--storm {text:?}: expected MEMCGSxKILLSxMIB or off"))?;
        let [memcgs, kills, mib] = numbers[..] else {
            anyhow::bail!("--storm {text:?}: expected MEMCGSxKILLSxMIB or off");
        };
        ensure!(
            memcgs >= 1 && kills >= 1 && (4..=64).contains(&mib),
            "--storm {text:?}: at least 1 memcg and 1 kill, limits of 4..=64 MiB"
        );
        ensure!(
            u64::from(memcgs) * u64::from(mib) <= 256,
            "--storm {text:?}: the memcgs' limits add up to more than 256 MiB of the guest's 512"
        );
        Ok(Some(Self { memcgs, kills, mib }))
    }

    pub fn planned(&self) -> u64 {
        u64::from(self.memcgs) * u64::from(self.kills)
    }

    /// The kernel command line's value.
    pub fn arg(&self) -> String {
        format!("{}x{}x{}", self.memcgs, self.kills, self.mib)
    }

    /// The isolated series: `kills` OOMs one after another in one memcg
    /// (`0`: none).
    pub fn isolated(kills: u32) -> Option<Self> {
        (kills > 0).then_some(Self {
            memcgs: 1,
            kills,
            mib: 8,
        })
    }

    /// Host seconds: about a second per kill under TCG at most, plus the
    /// guest's 300 s watchdog for decisions that never come.
    pub fn timeout_secs(&self) -> u64 {
        300 + self.planned()
    }
}

/// The `@@storm key=value...` record.
#[derive(Debug, Default, PartialEq)]
pub(super) struct StormResult {
    fields: Vec<(String, String)>,
}

impl StormResult {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
}

/// The `@@storm name=NAME ...` record (`isolated` or `storm`).
pub(super) fn parse(text: &str, name: &str) -> Option<StormResult> {
    let named = format!("name={name} ");
    let line = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| l.strip_prefix("@@storm "))
        .find(|l| l.starts_with(&named))?;
    let fields = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some(StormResult { fields })
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn verdict(value: f64, bound: f64) -> &'static str {
    match value <= bound {
        true => "met",
        false => "NOT MET",
    }
}

/// Per traced configuration: the tracer's peak resident memory (VmHWM,
/// which includes its start-up) and what it held at the end of its run.
pub(super) fn memory_table(samples: &[Sample], configs: &[String]) -> Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "{:<10} {:>4} {:>14} {:>14}",
        "oomtrace", "runs", "peak RSS MiB", "end RSS MiB"
    )?;
    for config in configs.iter().filter(|c| TRACED.contains(&c.as_str())) {
        let kb = |key: &str| -> Option<Vec<f64>> {
            samples
                .iter()
                .filter(|s| &s.config == config)
                .map(|s| s.field(key)?.parse::<u64>().ok().map(mib))
                .collect()
        };
        let (Some(mut hwm), Some(mut rss)) = (kb("hwm_kb"), kb("rss_kb")) else {
            continue;
        };
        if hwm.is_empty() {
            continue;
        }
        writeln!(
            text,
            "{config:<10} {:>4} {:>14.1} {:>14.1}",
            hwm.len(),
            median(&mut hwm),
            median(&mut rss)
        )?;
    }
    writeln!(
        text,
        "peak RSS: VmHWM (start-up included) at the end of the run; end RSS: VmRSS then (medians)"
    )?;
    Ok(text)
}

/// The storm's numbers, with the memory bounds' verdicts.
pub(super) fn storm_table(storm: &StormResult, shape: &StormShape) -> Result<String> {
    let mut text = String::new();
    let n = |key: &str| {
        storm
            .number(key)
            .with_context(|| format!("@@storm without {key}"))
    };
    let kills = n("kills")?;
    writeln!(
        text,
        "OOM storm: {} cgroup-v2 memcgs of {} MiB, {} kills each at once; oomtrace --backend auto ({})",
        shape.memcgs,
        shape.mib,
        shape.kills,
        storm.get("backend").unwrap_or("?")
    )?;
    writeln!(
        text,
        "kills      {kills} (the memcgs' oom_kill counters; {} planned), decisions read {}, lost records {}",
        n("planned")?,
        n("decisions")?,
        n("lost")?
    )?;
    let (start, idle) = (mib(n("start_hwm_kb")?), mib(n("idle_rss_kb")?));
    let (peak, end) = (mib(n("hwm_kb")?), mib(n("rss_kb")?));
    writeln!(
        text,
        "memory     start-up peak {start:.1} MiB, idle {idle:.1} MiB, peak through the storm {peak:.1} MiB, after it {end:.1} MiB"
    )?;
    let cpu_s = n("cpu_ns")? as f64 / 1e9;
    let per_1000 = match kills {
        0 => "-".to_owned(),
        k => format!("{:.2} s", cpu_s * 1000.0 / k as f64),
    };
    writeln!(
        text,
        "cpu        {per_1000} per 1,000 kills ({cpu_s:.2} s over the storm and its decisions)"
    )?;
    let p99 = latency_line(&mut text, storm)?;
    writeln!(
        text,
        "memory: VmHWM / VmRSS of /proc/PID/status; cpu: the tracer's threads' schedstat on-CPU time (utime + stime, exact)\n\
         latency: read time of the decision's line minus its `time` (the kernel's time of the kill), in guest time\n\
         (-icount: instructions executed plus idle time skipped), with the tracer and the storm sharing one vCPU"
    )?;
    writeln!(text)?;
    writeln!(
        text,
        "bounds: peak RSS <= {PEAK_BOUND_MIB} MiB {} ({peak:.1}); idle RSS <= {IDLE_BOUND_MIB} MiB {} ({idle:.1}); \
         latency p99 <= {STORM_P99_BOUND_MS} ms {} ({p99:.1})",
        verdict(peak, PEAK_BOUND_MIB),
        verdict(idle, IDLE_BOUND_MIB),
        verdict(p99, STORM_P99_BOUND_MS)
    )?;
    Ok(text)
}

/// The latency line of a series; returns its p99 in ms.
fn latency_line(text: &mut String, series: &StormResult) -> Result<f64> {
    let ms = |key: &str| {
        series
            .number(key)
            .map(|us| us as f64 / 1000.0)
            .with_context(|| format!("@@storm without {key}"))
    };
    let p99 = ms("p99_us")?;
    writeln!(
        text,
        "latency    kill -> decision line read: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms (guest time)",
        ms("p50_us")?,
        ms("max_us")?
    )?;
    writeln!(
        text,
        "  parts    the slowest 1% waited on average {:.1} ms for their victim's exit, {:.1} ms more for an earlier \
         decision's victim, {:.1} ms in the tracer (p99 of each: {:.1}, {:.1}, {:.1} ms)",
        ms("slow_exit_us")?,
        ms("slow_order_us")?,
        ms("slow_rest_us")?,
        ms("exit_p99_us")?,
        ms("order_p99_us")?,
        ms("rest_p99_us")?
    )?;
    Ok(p99)
}

/// The isolated series: OOMs one at a time, the latency a quiet node sees.
pub(super) fn isolated_table(series: &StormResult, shape: &StormShape) -> Result<String> {
    let mut text = String::new();
    let n = |key: &str| {
        series
            .number(key)
            .with_context(|| format!("@@storm without {key}"))
    };
    writeln!(
        text,
        "Isolated OOMs: {} kills one after another in one cgroup-v2 memcg of {} MiB; oomtrace --backend auto ({})",
        shape.kills,
        shape.mib,
        series.get("backend").unwrap_or("?")
    )?;
    writeln!(
        text,
        "kills      {} (the memcg's oom_kill counter), decisions read {}, lost records {}",
        n("kills")?,
        n("decisions")?,
        n("lost")?
    )?;
    let p99 = latency_line(&mut text, series)?;
    writeln!(
        text,
        "bounds: latency p99 <= {ISOLATED_P99_BOUND_MS} ms {} ({p99:.1})",
        verdict(p99, ISOLATED_P99_BOUND_MS)
    )?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_refuse_what_does_not_fit() {
        let shape = StormShape::parse("20x50x8").unwrap().unwrap();
        assert_eq!((shape.planned(), shape.arg()), (1000, "20x50x8".to_owned()));
        assert_eq!(StormShape::parse("off").unwrap(), None);
        for bad in ["20x50", "0x1x8", "1x1x2", "100x1x8", "ax1x8"] {
            assert!(StormShape::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_storm_record_becomes_its_table() {
        let text = "@@info kernel x\r\n@@storm name=isolated backend=fentry kills=3 decisions=3 lost=0 \
                    p50_us=1000 p99_us=30000 max_us=30000 exit_p99_us=5000 slow_exit_us=5000 \
                    order_p99_us=0 slow_order_us=0 rest_p99_us=25000 slow_rest_us=25000\r\n@@storm name=storm backend=fentry cgs=2 mib=8 planned=4 kills=4 \
                    decisions=4 untimed=0 lost=0 p50_us=2000 p99_us=9000 max_us=9500 exit_p99_us=3000 slow_exit_us=3000 \
                    order_p99_us=5000 slow_order_us=5000 rest_p99_us=1000 slow_rest_us=1000 start_hwm_kb=20480 \
                    idle_rss_kb=10240 hwm_kb=20480 rss_kb=11264 cpu_ns=500000000 tracer_exit=0\r\n";
        let storm = parse(text, "storm").unwrap();
        let shape = StormShape::parse("2x2x8").unwrap().unwrap();
        let table = storm_table(&storm, &shape).unwrap();
        assert!(
            table.contains("start-up peak 20.0 MiB, idle 10.0 MiB"),
            "{table}"
        );
        assert!(table.contains("125.00 s per 1,000 kills"), "{table}");
        assert!(table.contains("p50 2.0 ms, p99 9.0 ms"), "{table}");
        assert!(
            table.contains("3.0 ms for their victim's exit, 5.0 ms more for an earlier decision's victim, 1.0 ms in the tracer"),
            "{table}"
        );
        assert!(table.contains("peak RSS <= 64 MiB met (20.0)"), "{table}");
        assert!(table.contains("latency p99 <= 100 ms met (9.0)"), "{table}");
        let isolated = parse(text, "isolated").unwrap();
        let table = isolated_table(&isolated, &StormShape::isolated(3).unwrap()).unwrap();
        assert!(
            table.contains("latency p99 <= 20 ms NOT MET (30.0)"),
            "{table}"
        );
        let incomplete = parse("@@storm name=storm backend=fentry kills=4\n", "storm").unwrap();
        assert!(storm_table(&incomplete, &shape).is_err());
        assert!(parse(text, "other").is_none());
    }
}
