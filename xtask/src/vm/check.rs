//! Checks one scenario of a guest run: oomtrace's decision against the
//! kernel's own OOM report in the guest's kernel log (as parsed by
//! `oomtrace::report::parse_log`, through the `kernel_log_json` example),
//! plus what the guest observed (exit statuses, D state, memcg files).
use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

use super::guest::ScenarioOutput;

// ---- oomtrace's JSON (docs/schema.md), the fields checked here.

#[derive(Debug, Deserialize)]
pub struct Decision {
    pub constraint: Option<String>,
    pub backend: String,
    pub oom_memcg: Option<OomMemcg>,
    pub page_size: u64,
    pub candidates: Vec<Candidate>,
    pub candidates_source: String,
    pub victim: Option<Victim>,
    pub killed: Vec<u32>,
    pub oom_group: Option<String>,
    pub kernel_report: String,
}

#[derive(Debug, Deserialize)]
pub struct OomMemcg {
    pub path: Option<String>,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Candidate {
    pub pid: u32,
    pub comm: String,
    pub rss_bytes: u64,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub oom_score_adj: i32,
    pub points: Option<i64>,
    pub eligible: bool,
    pub victim: bool,
    pub skip_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Victim {
    pub pid: u32,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub memcg: Option<String>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub total_vm_bytes: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

// ---- `oomtrace::report` items as serialized by the example.

#[derive(Debug, Deserialize)]
pub struct KernelReport {
    pub complete: bool,
    pub header: Option<InvokedHeader>,
    pub counters: Vec<CounterLine>,
    pub tasks: Option<TaskTable>,
    pub constraint: Option<ConstraintLine>,
    pub kill: Option<KillLine>,
    pub no_killable: bool,
    pub memcg_stats_for: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct InvokedHeader {
    pub gfp_mask: u64,
    pub gfp_flags: Option<String>,
    pub order: i32,
}

#[derive(Debug, Deserialize)]
pub struct CounterLine {
    pub name: String,
    pub usage_kb: u64,
    pub limit_kb: u64,
}

#[derive(Debug, Deserialize)]
pub struct TaskTable {
    pub rows: Vec<TaskRow>,
}

#[derive(Debug, Deserialize)]
pub struct TaskRow {
    pub pid: u32,
    pub rss_pages: u64,
    pub rss_anon_pages: Option<u64>,
    pub rss_file_pages: Option<u64>,
    pub rss_shmem_pages: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub swapents: Option<u64>,
    pub oom_score_adj: i32,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct ConstraintLine {
    pub constraint: String,
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KillLine {
    pub pid: u32,
    pub comm: String,
    pub uid: Option<u32>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

/// A scenario's kernel log, as `parse_log` saw it.
#[derive(Debug, Default)]
pub struct KernelLog {
    pub reports: Vec<KernelReport>,
    /// "Killed process" lines outside reports (memory.oom.group sweeps, storms).
    pub kills: Vec<KillLine>,
    pub oom_groups: Vec<String>,
    /// The raw lines, for text checks.
    pub text: String,
}

impl KernelLog {
    /// From one line of `kernel_log_json` output.
    pub fn from_json(line: &Value, text: String) -> Result<Self> {
        let mut log = KernelLog {
            text,
            ..Default::default()
        };
        if let Some(error) = line.get("error") {
            // A log without any OOM output is a valid answer (NoOomReport).
            if error
                .as_str()
                .is_some_and(|e| e.contains("no kernel OOM report"))
            {
                return Ok(log);
            }
            bail!("parse_log failed: {error}");
        }
        let items = line["items"].as_array().context("no items")?;
        for item in items {
            if let Some(report) = item.get("Report") {
                log.reports.push(
                    serde_json::from_value(report.clone()).context("decoding a kernel report")?,
                );
            } else if let Some(kill) = item.get("Kill") {
                log.kills
                    .push(serde_json::from_value(kill.clone()).context("decoding a kill line")?);
            } else if let Some(group) = item.get("OomGroup") {
                log.oom_groups
                    .push(group["memcg"].as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(log)
    }
}

/// oomtrace's output in one scenario.
#[derive(Debug)]
pub struct TracerRun {
    pub start: Value,
    pub decisions: Vec<(Decision, Value)>,
    /// Every other record (`charge_failure`, `oom_stall`, `lost`, ...), in order.
    pub others: Vec<Value>,
}

impl TracerRun {
    pub fn records(&self, record_type: &str) -> Vec<&Value> {
        self.others
            .iter()
            .filter(|v| v["type"] == record_type)
            .collect()
    }

    /// Whether `hook` (e.g. "mem_cgroup_out_of_memory") attached, as any probe type.
    pub fn hooked(&self, function: &str) -> bool {
        self.start["hooks"].as_array().is_some_and(|hooks| {
            hooks.iter().any(|h| {
                h["attached"] == true
                    && h["hook"]
                        .as_str()
                        .is_some_and(|name| name.ends_with(&format!("/{function}")))
            })
        })
    }
}

pub fn tracer_run(scenario: &ScenarioOutput) -> Result<TracerRun> {
    let stderr = scenario.file("tracer.err").unwrap_or_default().trim();
    let out = scenario
        .file("tracer.out")
        .with_context(|| format!("no oomtrace output; stderr: {stderr}"))?;
    let mut start = None;
    let mut decisions = Vec::new();
    let mut others = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("oomtrace printed a line that is not JSON: {line}"))?;
        match value["type"].as_str() {
            Some("start") => start = Some(value),
            Some("decision") => {
                let decision = serde_json::from_value(value.clone())
                    .with_context(|| format!("decision does not match the schema: {value}"))?;
                decisions.push((decision, value));
            }
            _ => others.push(value),
        }
    }
    let start = start.ok_or_else(|| {
        anyhow!(
            "oomtrace did not start (exit {}): {}",
            scenario.info("tracer_exit").unwrap_or("?"),
            if stderr.is_empty() {
                "no error output"
            } else {
                stderr
            }
        )
    })?;
    ensure!(
        scenario.info("tracer_exit") == Some("0"),
        "oomtrace exited with {}: {stderr}",
        scenario.info("tracer_exit").unwrap_or("?")
    );
    Ok(TracerRun {
        start,
        decisions,
        others,
    })
}

/// Hooks that did not attach, as "hook: error" (reported, not failures:
/// optional hooks may be missing on a kernel).
pub fn hook_failures(start: &Value) -> Vec<String> {
    start["hooks"]
        .as_array()
        .map(|hooks| {
            hooks
                .iter()
                .filter(|h| h["attached"] != true)
                .map(|h| {
                    format!(
                        "{}: {}",
                        h["hook"].as_str().unwrap_or("?"),
                        h["error"].as_str().unwrap_or("not attached")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first few items of a list, for messages.
fn few<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    match items.len() {
        0..=8 => items.join(", "),
        n => format!("{}, … ({n} in all)", items[..8].join(", ")),
    }
}

fn kb(value: Option<u64>) -> Option<u64> {
    value.map(|v| v * 1024)
}

macro_rules! check_eq {
    ($left:expr, $right:expr, $($what:tt)+) => {{
        let (left, right) = (&$left, &$right);
        ensure!(left == right, "{}: oomtrace {:?}, kernel {:?}", format!($($what)+), left, right);
    }};
}

/// The victim against the kernel's "Killed process" line, number for number.
///
/// One exception, with a note: the kernel itself can print two different
/// rss values for the victim. Its task table and oomtrace's tracepoint read
/// the counters before the kill; the victim, SIGKILLed, may exit on another
/// CPU before the kill line is printed, and exiting folds its per-thread rss
/// caches into the counters (SPLIT_RSS_COUNTING, before 6.2). When the
/// table and the kill line disagree, the victim may equal the table instead.
pub fn victim_matches_kill_line(
    decision: &Decision,
    report: &KernelReport,
    notes: &mut Vec<String>,
) -> Result<()> {
    let kill = report
        .kill
        .as_ref()
        .context("the kernel's report has no kill line")?;
    let victim = decision
        .victim
        .as_ref()
        .context("the decision has no victim, the kernel killed one")?;
    check_eq!(victim.pid, kill.pid, "victim pid");
    check_eq!(
        victim.comm.as_deref(),
        Some(kill.comm.as_str()),
        "victim comm"
    );
    let ours = [
        victim.rss_anon_bytes,
        victim.rss_file_bytes,
        victim.rss_shmem_bytes,
    ];
    let line = [
        kb(kill.anon_rss_kb),
        kb(kill.file_rss_kb),
        kb(kill.shmem_rss_kb),
    ];
    if ours != line {
        let page = decision.page_size;
        let row = report
            .tasks
            .as_ref()
            .and_then(|t| t.rows.iter().find(|r| r.pid == kill.pid));
        let sum = |v: [Option<u64>; 3]| v.iter().copied().sum::<Option<u64>>();
        let row_total = row.map(|r| r.rss_pages * page);
        let row_split = row.and_then(|r| {
            Some([
                Some(r.rss_anon_pages? * page),
                Some(r.rss_file_pages? * page),
                Some(r.rss_shmem_pages? * page),
            ])
        });
        let equals_row = sum(ours) == row_total && row_split.is_none_or(|split| split == ours);
        ensure!(
            equals_row && sum(line) != row_total,
            "victim rss (anon, file, shmem) bytes: oomtrace {ours:?}, kernel kill line {line:?}, kernel task table {}",
            row_split.map_or(format!("total {row_total:?}"), |s| format!("{s:?}"))
        );
        notes.push(format!(
            "the kernel's kill line and task table differ on the victim's rss ({} vs {} bytes: the victim exited in between); oomtrace has the table's",
            sum(line).unwrap_or(0),
            row_total.unwrap_or(0)
        ));
    }
    check_eq!(
        victim.pgtables_bytes,
        kb(kill.pgtables_kb),
        "victim page-table bytes"
    );
    check_eq!(
        victim.total_vm_bytes,
        kb(kill.total_vm_kb),
        "victim total_vm bytes"
    );
    check_eq!(
        victim.oom_score_adj,
        kill.oom_score_adj,
        "victim oom_score_adj"
    );
    check_eq!(victim.uid, kill.uid, "victim uid");
    ensure!(
        decision.killed.contains(&kill.pid),
        "killed {:?} lacks the victim {}",
        decision.killed,
        kill.pid
    );
    Ok(())
}

/// The limit that fired against the report's constraint and `memory:` lines.
/// A report without a victim has no constraint line: its memcg is the one
/// "Memory cgroup stats for" names.
pub fn oom_memcg_matches_report(decision: &Decision, report: &KernelReport) -> Result<()> {
    let (expected, path) = match &report.constraint {
        Some(constraint) => (
            match constraint.constraint.as_str() {
                "CONSTRAINT_MEMCG" => "memcg",
                "CONSTRAINT_NONE" => "global",
                other => other,
            },
            constraint.oom_memcg.clone(),
        ),
        None if report.no_killable && report.memcg_stats_for.is_some() => {
            ("memcg", report.memcg_stats_for.clone())
        }
        None => bail!("report has no constraint line"),
    };
    check_eq!(decision.constraint.as_deref(), Some(expected), "constraint");
    if expected != "memcg" {
        ensure!(
            decision.oom_memcg.is_none(),
            "a {expected} OOM with an oom_memcg: {:?}",
            decision.oom_memcg
        );
        return Ok(());
    }
    let oom_memcg = decision
        .oom_memcg
        .as_ref()
        .context("memcg OOM without oom_memcg")?;
    check_eq!(oom_memcg.path, path, "oom_memcg path");
    let memory = report
        .counters
        .iter()
        .find(|c| c.name == "memory")
        .context("report has no memory: line")?;
    check_eq!(
        oom_memcg.limit_bytes,
        Some(memory.limit_kb * 1024),
        "oom_memcg limit bytes"
    );
    check_eq!(
        oom_memcg.usage_bytes,
        Some(memory.usage_kb * 1024),
        "oom_memcg usage bytes"
    );
    Ok(())
}

/// Candidates against the kernel's task table, row by row; -1000 tasks are
/// never eligible; the victim has the most points of the eligible ones.
pub fn candidates_match_table(decision: &Decision, report: &KernelReport) -> Result<()> {
    let table = report.tasks.as_ref().context("report has no task table")?;
    // The printed table (tracepoint backend) or the killer's own evaluation
    // (fentry/kprobe): either way the same tasks and numbers as the table.
    ensure!(
        ["kernel_report", "bpf"].contains(&decision.candidates_source.as_str()),
        "candidates_source {}",
        decision.candidates_source
    );
    let page = decision.page_size;
    // The killer also visits tasks it can never pick and the kernel does not
    // list: kernel threads, the global init (oom_unkillable_task), tasks
    // without memory, tasks outside the cpuset or mempolicy.
    let listed: Vec<&Candidate> = decision
        .candidates
        .iter()
        .filter(|c| {
            !matches!(
                c.skip_reason.as_deref(),
                Some("kernel_thread" | "not_eligible" | "no_mm")
            ) || decision.candidates_source == "kernel_report"
        })
        .collect();
    let ours: BTreeSet<u32> = listed.iter().map(|c| c.pid).collect();
    let kernel: BTreeSet<u32> = table.rows.iter().map(|r| r.pid).collect();
    ensure!(
        ours.len() == listed.len(),
        "duplicate candidates in {ours:?}"
    );
    if ours != kernel {
        let skipped: Vec<String> = kernel
            .difference(&ours)
            .filter_map(|pid| decision.candidates.iter().find(|c| c.pid == *pid))
            .map(|c| format!("{} {}", c.pid, c.skip_reason.as_deref().unwrap_or("?")))
            .collect();
        bail!(
            "candidate pids differ: only oomtrace [{}], only kernel [{}]{}",
            few(ours.difference(&kernel)),
            few(kernel.difference(&ours)),
            match skipped.is_empty() {
                true => String::new(),
                false => format!(
                    "; oomtrace lists these as skipped by the killer: [{}]",
                    few(&skipped)
                ),
            }
        );
    }
    for row in &table.rows {
        let c = listed
            .iter()
            .find(|c| c.pid == row.pid)
            .expect("same pid sets");
        let who = format!("candidate {} ({})", row.pid, row.name);
        check_eq!(c.comm, row.name, "{who} comm");
        check_eq!(c.oom_score_adj, row.oom_score_adj, "{who} oom_score_adj");
        if row.oom_score_adj == -1000 {
            ensure!(
                c.points.is_none() && !c.eligible && !c.victim,
                "{who} has oom_score_adj -1000 but points {:?}, eligible {}, victim {}",
                c.points,
                c.eligible,
                c.victim
            );
        }
        // oomtrace itself (a candidate of the global OOM, at -1000) runs on
        // the other CPU while the killer works, reading this very OOM's
        // events: its memory moves between the killer's read and the table.
        if row.name == "oomtrace" && decision.candidates_source == "bpf" {
            continue;
        }
        check_eq!(c.rss_bytes, row.rss_pages * page, "{who} rss bytes");
        let pages = |p: Option<u64>| p.map(|p| p * page);
        if row.rss_anon_pages.is_some() {
            check_eq!(
                c.rss_anon_bytes,
                pages(row.rss_anon_pages),
                "{who} anon rss bytes"
            );
            check_eq!(
                c.rss_file_bytes,
                pages(row.rss_file_pages),
                "{who} file rss bytes"
            );
            check_eq!(
                c.rss_shmem_bytes,
                pages(row.rss_shmem_pages),
                "{who} shmem rss bytes"
            );
        }
        check_eq!(c.swap_bytes, pages(row.swapents), "{who} swap bytes");
        check_eq!(
            c.pgtables_bytes,
            row.pgtables_bytes,
            "{who} page-table bytes"
        );
    }
    let victims: Vec<&Candidate> = decision.candidates.iter().filter(|c| c.victim).collect();
    match (&decision.victim, victims.as_slice()) {
        (None, []) => {}
        (Some(v), [c]) if c.pid == v.pid => {
            let best = decision
                .candidates
                .iter()
                .filter(|c| c.eligible)
                .filter_map(|c| c.points)
                .max();
            ensure!(
                c.eligible && c.points.is_some() && c.points == best,
                "victim {} has {:?} points (eligible {}, skip_reason {:?}), the most of the eligible candidates is {best:?}",
                c.pid,
                c.points,
                c.eligible,
                c.skip_reason
            );
        }
        (v, flagged) => bail!(
            "victim {:?} but candidates flagged as victim: {:?}",
            v.as_ref().map(|v| v.pid),
            flagged.iter().map(|c| c.pid).collect::<Vec<_>>()
        ),
    }
    Ok(())
}

/// Everything a decision about a kill must share with the kernel's report.
pub fn kill_decision_matches(
    decision: &Decision,
    report: &KernelReport,
    notes: &mut Vec<String>,
) -> Result<()> {
    ensure!(report.complete, "the kernel's report is incomplete");
    check_eq!(decision.kernel_report.as_str(), "complete", "kernel_report");
    victim_matches_kill_line(decision, report, notes)?;
    oom_memcg_matches_report(decision, report)?;
    candidates_match_table(decision, report)?;
    Ok(())
}

/// The first decision and the first report of a scenario.
pub fn first<'a>(
    run: &'a TracerRun,
    log: &'a KernelLog,
) -> Result<(&'a Decision, &'a KernelReport)> {
    let (decision, _) = run
        .decisions
        .first()
        .context("oomtrace printed no decision")?;
    let report = log
        .reports
        .first()
        .context("the kernel printed no OOM report")?;
    Ok((decision, report))
}

/// The workload's exit status as the guest saw it ("137": SIGKILL).
pub fn exit_status<'a>(scenario: &'a ScenarioOutput, name: &str) -> Result<&'a str> {
    scenario
        .named("exit", name)
        .with_context(|| format!("the guest recorded no exit status for {name}"))
}

pub fn pid(scenario: &ScenarioOutput, name: &str) -> Result<u32> {
    scenario
        .pid(name)
        .with_context(|| format!("the guest recorded no pid for {name}"))
}

/// The limit the guest wrote for a memcg, in bytes.
pub fn limit(scenario: &ScenarioOutput, path: &str) -> Result<u64> {
    scenario
        .named("limit", path)
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("the guest recorded no limit for {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(rows: Value, kill: Value) -> KernelReport {
        serde_json::from_value(json!({
            "complete": true,
            "counters": [{"name": "memory", "usage_kb": 65536, "limit_kb": 65536, "failcnt": 3}],
            "tasks": {"columns": [], "rows": rows, "elided_rows": false},
            "constraint": {"constraint": "CONSTRAINT_MEMCG", "oom_memcg": "/a", "task_memcg": "/a/b"},
            "kill": kill,
            "no_killable": false,
            "memcg_stats_for": "/a",
        }))
        .unwrap()
    }

    fn row(pid: u32, rss: u64, adj: i32, name: &str) -> Value {
        json!({"pid": pid, "uid": 0, "tgid": pid, "total_vm_pages": rss * 2, "rss_pages": rss,
               "rss_anon_pages": rss - 1, "rss_file_pages": 1, "rss_shmem_pages": 0,
               "pgtables_bytes": 8192, "swapents": 0, "oom_score_adj": adj, "name": name})
    }

    fn candidate(
        pid: u32,
        rss: u64,
        adj: i32,
        name: &str,
        points: Option<i64>,
        victim: bool,
    ) -> Value {
        json!({"pid": pid, "comm": name, "rss_bytes": rss * 4096, "rss_anon_bytes": (rss - 1) * 4096,
               "rss_file_bytes": 4096, "rss_shmem_bytes": 0, "swap_bytes": 0, "pgtables_bytes": 8192,
               "oom_score_adj": adj, "points": points, "eligible": points.is_some(), "victim": victim,
               "skip_reason": if points.is_some() { Value::Null } else { json!("oom_score_adj_min") }})
    }

    fn decision(candidates: Value, victim: Value) -> Decision {
        serde_json::from_value(json!({
            "constraint": "memcg", "backend": "tracepoint",
            "oom_memcg": {"path": "/a", "limit_bytes": 67108864u64, "usage_bytes": 67108864u64},
            "page_size": 4096, "candidates": candidates, "candidates_source": "kernel_report",
            "victim": victim, "killed": [10], "oom_group": null, "kernel_report": "complete",
        }))
        .unwrap()
    }

    fn kill() -> Value {
        json!({"memcg_oom": true, "pid": 10, "comm": "big", "uid": 0, "total_vm_kb": 800,
               "anon_rss_kb": 396, "file_rss_kb": 4, "shmem_rss_kb": 0, "pgtables_kb": 8,
               "oom_score_adj": 0})
    }

    fn victim() -> Value {
        json!({"pid": 10, "comm": "big", "uid": 0, "memcg": "/a/b", "rss_anon_bytes": 396 * 1024,
               "rss_file_bytes": 4096, "rss_shmem_bytes": 0, "pgtables_bytes": 8192,
               "total_vm_bytes": 800 * 1024, "oom_score_adj": 0})
    }

    #[test]
    fn a_decision_equal_to_the_report_passes() {
        let r = report(
            json!([row(10, 100, 0, "big"), row(11, 5, -1000, "safe")]),
            kill(),
        );
        let d = decision(
            json!([
                candidate(10, 100, 0, "big", Some(102), true),
                candidate(11, 5, -1000, "safe", None, false)
            ]),
            victim(),
        );
        let mut notes = Vec::new();
        kill_decision_matches(&d, &r, &mut notes).unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn differences_from_the_report_fail() {
        let r = report(
            json!([row(10, 100, 0, "big"), row(12, 50, 0, "mid")]),
            kill(),
        );
        // A missing candidate.
        let d = decision(
            json!([candidate(10, 100, 0, "big", Some(102), true)]),
            victim(),
        );
        let error = kill_decision_matches(&d, &r, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(error.contains("only kernel [12]"), "{error}");
        // The victim without the most points.
        let d = decision(
            json!([
                candidate(10, 100, 0, "big", Some(102), true),
                candidate(12, 50, 0, "mid", Some(500), false)
            ]),
            victim(),
        );
        let error = candidates_match_table(&d, &r).unwrap_err().to_string();
        assert!(error.contains("the most"), "{error}");
        // A number off by one page.
        let mut v = victim();
        v["rss_anon_bytes"] = json!(397 * 1024);
        let d = decision(
            json!([
                candidate(10, 100, 0, "big", Some(102), true),
                candidate(12, 50, 0, "mid", Some(52), false)
            ]),
            v,
        );
        let error = kill_decision_matches(&d, &r, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(error.contains("rss (anon, file, shmem)"), "{error}");
    }

    #[test]
    fn a_victim_that_exited_before_the_kill_line_may_equal_the_table() {
        // Table: 100 pages (99 anon + 1 file); the kill line, printed after
        // the victim folded its cached counters, says 40 pages more anon.
        let mut late = kill();
        late["anon_rss_kb"] = json!(396 + 160);
        let r = report(json!([row(10, 100, 0, "big")]), late);
        let d = decision(
            json!([candidate(10, 100, 0, "big", Some(102), true)]),
            victim(),
        );
        let mut notes = Vec::new();
        kill_decision_matches(&d, &r, &mut notes).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Equal to neither: a failure.
        let mut v = victim();
        v["rss_anon_bytes"] = json!(397 * 1024);
        let d = decision(json!([candidate(10, 100, 0, "big", Some(102), true)]), v);
        assert!(kill_decision_matches(&d, &r, &mut vec![]).is_err());
    }
}
