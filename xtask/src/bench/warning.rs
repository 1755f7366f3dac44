//! The early warning measured (issue #18): `--warning N` runs the VM
//! scenario `v2-warn` (every positive and negative of
//! docs/early-warning.md at once under one tracer, cgroup v2 with PSI) N
//! times on the bench's kernel with `--backend auto`, and reads its records:
//! the lead each positive's decision gives (`lead_ms`), and the warnings
//! each negative drew, per hour of watching: `--warn-window` watches longer
//! than the scenario's 75 s, and an hour counts only the windows the guest
//! watched to their end (`vm::warn_watched`). The scenario's own checks
//! (tests: the kernel's kills, the named grower) are `cargo xtask test`'s;
//! here a run that fails them still counts what it recorded.
use std::{fmt::Write as _, fs, path::Path, time::Duration};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::vm::{self, Arch, Series, WARN_NEGATIVES as NEGATIVES, WARN_POSITIVES as POSITIVES};

/// What the runs recorded, per memcg.
#[derive(Default)]
struct Tally {
    /// Each positive's leads, in ms (a run without a decision adds none).
    leads: Vec<(String, Vec<u64>)>,
    /// Each negative's warnings over all runs, and how long it was watched.
    false_warnings: Vec<(String, u64, Duration)>,
    runs: u32,
    /// Each run's window.
    window: Duration,
    /// Runs whose scenario checks failed (counted all the same).
    failed: Vec<String>,
}

/// Runs `v2-warn` `runs` times on `kernel`, each watching for `window`;
/// the table of lead times and false warnings.
pub fn run(kernel: Series, runs: u32, window: Duration) -> Result<String> {
    let mut tally = Tally {
        leads: POSITIVES
            .iter()
            .map(|(m, ..)| ((*m).to_owned(), Vec::new()))
            .collect(),
        false_warnings: NEGATIVES
            .iter()
            .map(|(m, ..)| ((*m).to_owned(), 0, Duration::ZERO))
            .collect(),
        window,
        ..Tally::default()
    };
    let records_of = crate::target_dir().join("vm-test/auto");
    for run in 1..=runs {
        let outcome = vm::run(&vm::Options {
            arch: Arch::X86_64,
            kernels: vec![kernel],
            backends: vec!["auto".to_owned()],
            only: vec!["v2-warn".to_owned()],
            pairs: Vec::new(),
            warn_window: window,
        });
        if let Err(e) = outcome {
            tally.failed.push(format!("run {run}: {e:#}"));
        }
        let records = find_records(&records_of).with_context(|| {
            format!(
                "run {run}: no v2-warn.tracer.jsonl under {}",
                records_of.display()
            )
        })?;
        tally.add(&fs::read_to_string(&records)?);
        let results = records.with_file_name("results.log");
        let results = fs::read(&results)
            .with_context(|| format!("run {run}: reading {}", results.display()))?;
        tally.watch(&vm::warn_watched(&results, window));
        tally.runs += 1;
    }
    tally.table(kernel)
}

fn find_records(dir: &Path) -> Option<std::path::PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("v2-warn.tracer.jsonl"))
        .find(|p| p.exists())
}

impl Tally {
    /// One run's JSON Lines.
    fn add(&mut self, jsonl: &str) {
        for record in jsonl
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            match record["type"].as_str() {
                Some("decision") => {
                    let memcg = record["warning"]["memcg"]
                        .as_str()
                        .or(record["oom_memcg"]["path"].as_str());
                    if let (Some(memcg), Some(lead)) = (memcg, record["lead_ms"].as_u64())
                        && let Some((_, leads)) = self.leads.iter_mut().find(|(m, _)| m == memcg)
                    {
                        leads.push(lead);
                    }
                }
                Some("oom_warning") => {
                    if let Some((_, n, _)) = self
                        .false_warnings
                        .iter_mut()
                        .find(|(m, ..)| record["memcg"] == m.as_str())
                    {
                        *n += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// How long one run watched each negative.
    fn watch(&mut self, watched: &[(&str, Duration)]) {
        for (memcg, _, total) in &mut self.false_warnings {
            if let Some((_, d)) = watched.iter().find(|(m, _)| m == memcg) {
                *total += *d;
            }
        }
    }

    fn table(&self, kernel: Series) -> Result<String> {
        let mut text = format!(
            "Early warning: VM scenario v2-warn, {} runs of {} s on {}, oomtrace --backend auto\n\
             positive              warned  lead p50   lead min\n",
            self.runs,
            self.window.as_secs(),
            kernel.name()
        );
        for (memcg, leads) in &self.leads {
            let mut sorted = leads.clone();
            sorted.sort_unstable();
            let seconds = |ms: Option<&u64>| {
                ms.map_or("-".to_owned(), |ms| format!("{:.1} s", *ms as f64 / 1000.0))
            };
            writeln!(
                text,
                "{memcg:<21} {:>3}/{:<3} {:>9} {:>10}",
                leads.len(),
                self.runs,
                seconds(
                    sorted
                        .get(sorted.len().saturating_sub(1) / 2)
                        .filter(|_| !sorted.is_empty())
                ),
                seconds(sorted.first())
            )?;
        }
        writeln!(text, "negative              warnings  watched   per hour")?;
        for (memcg, n, watched) in &self.false_warnings {
            // Only the windows watched to their end: none, no rate.
            let hours = watched.as_secs_f64() / 3600.0;
            let per_hour = if hours > 0.0 {
                format!("{:.1}", *n as f64 / hours)
            } else {
                "-".to_owned()
            };
            writeln!(
                text,
                "{memcg:<21} {n:>8} {:>7.1} min {per_hour:>9}",
                hours * 60.0
            )?;
        }
        for failure in &self.failed {
            writeln!(text, "scenario checks failed: {failure}")?;
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leads_come_from_decisions_and_false_warnings_from_negatives() {
        let (positive, negative) = (POSITIVES[0].0, NEGATIVES[0].0);
        let window = Duration::from_secs(75);
        let mut tally = Tally {
            leads: vec![(positive.to_owned(), Vec::new())],
            false_warnings: vec![(negative.to_owned(), 0, Duration::ZERO)],
            window,
            ..Tally::default()
        };
        for run in [13_100u64, 17_900] {
            tally.add(&format!(
                "{{\"type\":\"oom_warning\",\"memcg\":\"{positive}\"}}\n\
                 {{\"type\":\"decision\",\"oom_memcg\":{{\"path\":\"{positive}\"}},\"lead_ms\":{run}}}\n\
                 not json\n"
            ));
            tally.watch(&[(negative, window)]);
            tally.runs += 1;
        }
        // A third run whose negative's watch was cut short: its warning
        // counts, its time does not.
        tally.watch(&[(negative, Duration::ZERO)]);
        tally.runs += 1;
        tally.add(&format!(
            "{{\"type\":\"oom_warning\",\"memcg\":\"{negative}\"}}\n"
        ));
        let text = tally.table(Series::V6_12).unwrap();
        let row = |memcg: &str| {
            text.lines()
                .find(|l| l.starts_with(memcg))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            row(positive),
            format!("{positive} 2/3 13.1 s 13.1 s"),
            "{text}"
        );
        // One warning in 2 × 75 s: 24 an hour.
        assert_eq!(
            row(negative),
            format!("{negative} 1 2.5 min 24.0"),
            "{text}"
        );
    }
}
