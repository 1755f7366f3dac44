//! Checks one scenario of a guest run: oomtrace's decision against the
//! kernel's own OOM report in the guest's kernel log (as read by the checks'
//! own reader, vm/oracle.rs, not by oomtrace's parser), plus what the guest
//! observed (exit statuses, D state, memcg files).
use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail, ensure};
use oomtrace_core::{
    base::hooks::HookStatus,
    model::decision::{Candidate, Decision},
};
use serde_json::Value;

use super::{
    guest::ScenarioOutput,
    oracle::{Kill, Log, Report, Row, Table},
};

/// A scenario's kernel log, as the checks' reader saw it.
#[derive(Debug, Default)]
pub struct KernelLog {
    pub reports: Vec<Report>,
    /// "Killed process" lines outside reports (memory.oom.group sweeps, storms).
    pub kills: Vec<Kill>,
    pub oom_groups: Vec<String>,
    /// The raw lines, for text checks.
    pub text: String,
}

impl KernelLog {
    pub fn read(text: String) -> Self {
        let Log {
            reports,
            kills,
            oom_groups,
        } = Log::read(&text);
        KernelLog {
            reports,
            kills,
            oom_groups,
            text,
        }
    }
}

/// oomtrace's output in one scenario.
#[derive(Debug)]
pub struct TracerRun {
    pub start: Value,
    /// The start record's hooks.
    pub hooks: Vec<HookStatus>,
    pub decisions: Vec<Decision>,
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

    /// The backend the start record names.
    pub fn backend(&self) -> Option<&str> {
        self.start["backend"].as_str()
    }

    /// Hooks that did not attach, as "hook: error" (notes under the row;
    /// the checks that need one decide whether its absence fails, `Ctx::hook`).
    pub fn hook_failures(&self) -> Vec<String> {
        failures(&self.hooks)
    }
}

/// The hooks among `statuses` that did not attach, as "hook: error".
pub fn failures<'a>(statuses: impl IntoIterator<Item = &'a HookStatus>) -> Vec<String> {
    statuses
        .into_iter()
        .filter(|h| !h.attached)
        .map(|h| {
            format!(
                "{}: {}",
                h.hook,
                h.error.as_deref().unwrap_or("not attached")
            )
        })
        .collect()
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
            Some("decision") => decisions.push(
                serde_json::from_value(value.clone())
                    .with_context(|| format!("decision does not deserialize: {value}"))?,
            ),
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
    let hooks = serde_json::from_value(start["hooks"].clone())
        .with_context(|| format!("the start record's hooks do not deserialize: {start}"))?;
    ensure!(
        scenario.info("tracer_exit") == Some("0"),
        "oomtrace exited with {}: {stderr}",
        scenario.info("tracer_exit").unwrap_or("?")
    );
    Ok(TracerRun {
        start,
        hooks,
        decisions,
        others,
    })
}

/// docs/schema.json, compiled once.
pub struct Schema(jsonschema::Validator);

impl Schema {
    pub fn new() -> Result<Self> {
        let schema: Value = serde_json::from_str(include_str!("../../../docs/schema.json"))
            .context("docs/schema.json is not JSON")?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| anyhow!("docs/schema.json is not a valid schema: {e}"))?;
        Ok(Self(validator))
    }

    /// Every record of a JSON Lines text matches the schema; the error names
    /// each invalid line.
    pub fn check_lines(&self, text: &str) -> Result<()> {
        let mut invalid = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Value = match serde_json::from_str(line) {
                Ok(record) => record,
                Err(e) => {
                    invalid.push(format!("line {}: not JSON: {e}", number + 1));
                    continue;
                }
            };
            let errors: Vec<String> = self
                .0
                .iter_errors(&record)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            if !errors.is_empty() {
                invalid.push(format!(
                    "line {}: {} record: {}",
                    number + 1,
                    record["type"],
                    errors.join("; ")
                ));
            }
        }
        ensure!(
            invalid.is_empty(),
            "records do not match docs/schema.json: {}",
            invalid.join(" | ")
        );
        Ok(())
    }
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
    report: &Report,
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
    let line = ["anon-rss", "file-rss", "shmem-rss"].map(|key| kb(kill.kb(key)));
    if ours != line {
        let page = decision.page_size;
        let row = report
            .table
            .as_ref()
            .and_then(|t| t.rows.iter().find(|r| r.pid == kill.pid));
        let sum = |v: [Option<u64>; 3]| v.iter().copied().sum::<Option<u64>>();
        let row_total = row.and_then(|r| r.count("rss")).map(|p| p * page);
        let row_split = row.and_then(|r| {
            Some(["rss_anon", "rss_file", "rss_shmem"].map(|c| r.count(c).map(|p| p * page)))
                .filter(|split| split.iter().all(Option::is_some))
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
        kb(kill.kb("pgtables")),
        "victim page-table bytes"
    );
    check_eq!(
        victim.total_vm_bytes,
        kb(kill.kb("total-vm")),
        "victim total_vm bytes"
    );
    check_eq!(
        victim.oom_score_adj,
        kill.oom_score_adj(),
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
pub fn oom_memcg_matches_report(decision: &Decision, report: &Report) -> Result<()> {
    let (expected, path) = match &report.oom_kill {
        Some(line) => (
            match line.get("constraint") {
                Some("CONSTRAINT_MEMCG") => "memcg",
                Some("CONSTRAINT_NONE") => "global",
                Some(other) => other,
                None => bail!("the oom-kill line has no constraint: {line:?}"),
            },
            line.get("oom_memcg").map(str::to_owned),
        ),
        None if report.no_killable && report.stats_for.is_some() => {
            ("memcg", report.stats_for.clone())
        }
        None => bail!("report has no oom-kill line"),
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
    let memory = report.memory.context("report has no memory: line")?;
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
/// Where the decision says it dropped candidates (a full ring buffer),
/// exactly that many rows may be missing; every one kept still matches.
pub fn candidates_match_table(decision: &Decision, report: &Report) -> Result<()> {
    let table = report.table.as_ref().context("report has no task table")?;
    // The printed table (tracepoint backend) or the killer's own evaluation
    // (fentry/kprobe): either way the same tasks and numbers as the table.
    ensure!(
        ["kernel_report", "bpf"].contains(&decision.candidates_source.as_ref()),
        "candidates_source {}",
        decision.candidates_source
    );
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
    let dropped = decision.candidates_dropped.unwrap_or(0) as usize;
    same_pids(decision, &listed, table, dropped)?;
    for row in &table.rows {
        if let Some(c) = listed.iter().find(|c| c.pid == row.pid) {
            row_matches(decision, c, row)?;
        }
    }
    victim_has_the_most_points(decision, dropped)
}

/// The listed candidates are the table's pids, once each, but for the
/// `dropped` ones; what differs is named, with the killer's reason for pids
/// oomtrace saw it skip.
fn same_pids(
    decision: &Decision,
    listed: &[&Candidate],
    table: &Table,
    dropped: usize,
) -> Result<()> {
    let ours: BTreeSet<u32> = listed.iter().map(|c| c.pid).collect();
    let kernel: BTreeSet<u32> = table.rows.iter().map(|r| r.pid).collect();
    ensure!(
        ours.len() == listed.len(),
        "duplicate candidates in {ours:?}"
    );
    let missing = kernel.difference(&ours).count();
    if ours.is_subset(&kernel) && missing == dropped && dropped > 0 {
        return Ok(());
    }
    if ours != kernel || dropped > 0 {
        let skipped: Vec<String> = kernel
            .difference(&ours)
            .filter_map(|pid| decision.candidates.iter().find(|c| c.pid == *pid))
            .map(|c| format!("{} {}", c.pid, c.skip_reason.as_deref().unwrap_or("?")))
            .collect();
        bail!(
            "candidate pids differ ({dropped} dropped): only oomtrace [{}], only kernel [{}]{}",
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
    Ok(())
}

/// One row of the kernel's table against oomtrace's candidate, number for
/// number; a -1000 task is never eligible.
fn row_matches(decision: &Decision, c: &Candidate, row: &Row) -> Result<()> {
    let page = decision.page_size;
    let who = format!("candidate {} ({})", row.pid, row.name);
    check_eq!(c.comm, row.name, "{who} comm");
    let adj = row
        .get("oom_score_adj")
        .with_context(|| format!("{who}: the table has no oom_score_adj column"))?;
    check_eq!(i64::from(c.oom_score_adj), adj, "{who} oom_score_adj");
    if adj == -1000 {
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
        return Ok(());
    }
    let pages = |column: &str| row.count(column).map(|p| p * page);
    check_eq!(Some(c.rss_bytes), pages("rss"), "{who} rss bytes");
    if row.get("rss_anon").is_some() {
        check_eq!(c.rss_anon_bytes, pages("rss_anon"), "{who} anon rss bytes");
        check_eq!(c.rss_file_bytes, pages("rss_file"), "{who} file rss bytes");
        check_eq!(
            c.rss_shmem_bytes,
            pages("rss_shmem"),
            "{who} shmem rss bytes"
        );
    }
    check_eq!(c.swap_bytes, pages("swapents"), "{who} swap bytes");
    check_eq!(
        c.pgtables_bytes,
        row.count("pgtables_bytes"),
        "{who} page-table bytes"
    );
    Ok(())
}

/// The victim is the one candidate flagged, eligible, with the most points
/// of the eligible ones (unflagged only when its candidate was dropped).
fn victim_has_the_most_points(decision: &Decision, dropped: usize) -> Result<()> {
    let victims: Vec<&Candidate> = decision.candidates.iter().filter(|c| c.victim).collect();
    let kept = |pid: u32| decision.candidates.iter().any(|c| c.pid == pid);
    match (&decision.victim, victims.as_slice()) {
        (None, []) => {}
        (Some(v), []) if dropped > 0 && !kept(v.pid) => {}
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
    report: &Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    ensure!(report.complete, "the kernel's report is incomplete");
    check_eq!(decision.kernel_report.as_ref(), "complete", "kernel_report");
    victim_matches_kill_line(decision, report, notes)?;
    oom_memcg_matches_report(decision, report)?;
    candidates_match_table(decision, report)?;
    Ok(())
}

/// Every decision's page size is the guest kernel's (`KernelPageSize` in
/// its smaps, sent by the guest as `page_size`): the report's page counts
/// become bytes with it (4 KiB on x86_64; 4, 16 or 64 KiB on arm64).
pub fn page_size_is_the_kernels(run: &TracerRun, kernel: Option<u64>) -> Result<()> {
    let kernel = kernel.context("the guest did not send its kernel's page size")?;
    for decision in &run.decisions {
        check_eq!(decision.page_size, kernel, "page size");
    }
    Ok(())
}

/// The first decision and the first report of a scenario.
pub fn first<'a>(run: &'a TracerRun, log: &'a KernelLog) -> Result<(&'a Decision, &'a Report)> {
    let decision = run
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

/// What `oomtrace doctor --json` said in a guest, and what the tracer did
/// there.
pub struct DoctorRun<'a> {
    /// doctor's one line of JSON.
    pub doctor: &'a str,
    /// The `--backend` the guest's run asked for, and its start record.
    pub requested: &'a str,
    pub start: &'a Value,
    /// The forced `--backend kprobe` run's output.
    pub kprobe_run: &'a str,
    /// Whether the kernel's config has the cgroup-v1 memory controller.
    pub memcg_v1: bool,
    /// Whether the kernel's config has BPF trampolines on kernel functions
    /// (arm64 from 6.4; not Debian's arm64 5.10 and 6.1).
    pub trampolines: bool,
    /// `mount -t cgroup -o memory` in the guest: `mounted` or `failed <why>`.
    pub v1_probe: &'a str,
    /// The scenario's kernel log.
    pub kernel_log: &'a str,
}

/// doctor explains the guest correctly: BTF, fentry and kprobes available,
/// `auto` → fentry (kprobe, with every fentry hook's failure, on a kernel
/// without BPF trampolines), the memory hierarchy the guest mounted (v2 only where
/// the kernel has no v1 memory controller, which the kernel itself says
/// when asked for one), and agreement with the tracer's own start records.
pub fn doctor_matches_guest(run: &DoctorRun<'_>, schema: &Schema) -> Result<()> {
    schema.check_lines(run.doctor)?;
    let doctor: Value = serde_json::from_str(run.doctor.trim()).context("doctor's JSON")?;
    let check = |name: &str| -> Result<bool> {
        doctor["checks"]
            .as_array()
            .and_then(|checks| checks.iter().find(|c| c["name"] == name))
            .and_then(|c| c["ok"].as_bool())
            .with_context(|| format!("doctor has no {name} check: {doctor}"))
    };
    for name in ["btf", "tracefs", "fentry", "kprobes", "kmsg"] {
        ensure!(
            check(name)?,
            "doctor says {name} is not available: {doctor}"
        );
    }
    ensure!(
        doctor["start_error"].is_null(),
        "doctor could not start the tracer: {doctor}"
    );
    let expected = if run.trampolines { "fentry" } else { "kprobe" };
    ensure!(
        doctor["backend"] == expected,
        "doctor: auto → {} (expected {expected})",
        doctor["backend"]
    );
    if !run.trampolines {
        // Why not fentry: its hooks were tried, and each failed with the
        // kernel's error.
        let fentry_hooks: Vec<&Value> = doctor["hooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| {
                h["hook"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("fentry/") || n.starts_with("fexit/"))
            })
            .collect();
        ensure!(
            !fentry_hooks.is_empty()
                && fentry_hooks
                    .iter()
                    .all(|h| h["attached"] == false && h["error"].is_string()),
            "doctor: auto → kprobe on a kernel without BPF trampolines, but its hooks do not say why fentry failed: {doctor}"
        );
    }
    ensure!(
        doctor["fidelity"]
            .as_str()
            .is_some_and(|f| f.contains("own evaluation")),
        "doctor's fidelity: {}",
        doctor["fidelity"]
    );
    let cgroup = doctor["cgroup"].as_str().unwrap_or_default();
    ensure!(
        cgroup == "v2 at /sys/fs/cgroup",
        "doctor's memory hierarchy: {cgroup:?}"
    );
    if !run.memcg_v1 {
        ensure!(
            run.v1_probe.starts_with("failed")
                && run.kernel_log.contains("Unknown subsys name 'memory'"),
            "a v1 memory hierarchy on a kernel without CONFIG_MEMCG_V1: probe {:?}",
            run.v1_probe
        );
    }
    // The tracer, started for real in the same guest, agrees.
    let attached = |hooks: &Value, family: &str| -> BTreeSet<String> {
        hooks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["attached"] == true)
            .filter_map(|h| h["hook"].as_str())
            .filter(|h| h.starts_with(family))
            .map(str::to_owned)
            .collect()
    };
    if run.requested == "auto" {
        ensure!(
            run.start["backend"] == doctor["backend"],
            "doctor says auto → {}, the tracer's start record says {}",
            doctor["backend"],
            run.start["backend"]
        );
        let (said, got) = (
            attached(&doctor["hooks"], ""),
            attached(&run.start["hooks"], ""),
        );
        ensure!(
            said == got,
            "hooks doctor attached and the tracer attached differ: only doctor: {}; only the tracer: {}",
            few(said.difference(&got)),
            few(got.difference(&said))
        );
    }
    let kprobe_start: Value = run
        .kprobe_run
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| {
            format!(
                "the --backend kprobe run printed no start record: {}",
                run.kprobe_run
            )
        })?;
    ensure!(
        kprobe_start["type"] == "start" && kprobe_start["backend"] == "kprobe",
        "{kprobe_start}"
    );
    ensure!(
        !attached(&kprobe_start["hooks"], "kprobe/").is_empty(),
        "doctor says kprobes work, the kprobe run attached none: {kprobe_start}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use oomtrace_core::{
        model::decision::{Builder, OfflineEnv, Sources},
        report::parse_log,
    };

    use super::*;

    /// A 6.12 memcg OOM with 150 small tasks: the task table splits rss
    /// into anon, file and shmem.
    const LOG: &str = include_str!(
        "../../../tests/fixtures/kernel-reports/6.12.100+deb12-amd64-c-v2-many-procs-adj500-vs-grower.log"
    );

    /// The kernel's first report (as the checks read it), and the decision
    /// `oomtrace report` rebuilds from it, read back from JSON as a guest's
    /// record is.
    fn first_pair() -> (Decision, Report) {
        let log = KernelLog::read(LOG.to_owned());
        let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
        let start = Instant::now();
        for item in parse_log(LOG.as_bytes()).unwrap() {
            builder.on_report(start, item);
        }
        let decisions = builder.poll(start + Duration::from_secs(60), &mut OfflineEnv::new(4096));
        let json = serde_json::to_string(&decisions[0]).unwrap();
        let decision: Decision = serde_json::from_str(&json).unwrap();
        (decision, log.reports[0].clone())
    }

    fn error(decision: &Decision, report: &Report) -> String {
        kill_decision_matches(decision, report, &mut vec![])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_decision_equal_to_the_report_passes() {
        let (decision, report) = first_pair();
        assert!(decision.candidates.len() > 100);
        let mut notes = Vec::new();
        kill_decision_matches(&decision, &report, &mut notes).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn differences_from_the_report_fail() {
        let (decision, report) = first_pair();
        let victim = decision.victim.as_ref().unwrap().pid;
        let other = |d: &Decision| -> usize {
            d.candidates
                .iter()
                .position(|c| c.pid != victim && c.eligible)
                .unwrap()
        };

        // A missing candidate.
        let mut d = decision.clone();
        let i = other(&d);
        let pid = d.candidates.remove(i).pid;
        let e = error(&d, &report);
        assert!(e.contains(&format!("only kernel [{pid}]")), "{e}");

        // The victim without the most points.
        let mut d = decision.clone();
        let i = other(&d);
        d.candidates[i].points = Some(i64::MAX);
        let e = error(&d, &report);
        assert!(e.contains("the most"), "{e}");

        // A candidate's anon rss off by one page.
        let mut d = decision.clone();
        let i = other(&d);
        *d.candidates[i].rss_anon_bytes.as_mut().unwrap() += 4096;
        let e = error(&d, &report);
        assert!(e.contains("anon rss bytes"), "{e}");

        // The victim's rss off by one page.
        let mut d = decision.clone();
        *d.victim.as_mut().unwrap().rss_anon_bytes.as_mut().unwrap() += 4096;
        let e = error(&d, &report);
        assert!(e.contains("rss (anon, file, shmem)"), "{e}");

        // The limit.
        let mut d = decision.clone();
        *d.oom_memcg.as_mut().unwrap().limit_bytes.as_mut().unwrap() += 4096;
        let e = error(&d, &report);
        assert!(e.contains("oom_memcg limit bytes"), "{e}");

        // The constraint.
        let mut d = decision.clone();
        d.constraint = Some("global".into());
        let e = error(&d, &report);
        assert!(e.contains("constraint"), "{e}");
    }

    #[test]
    fn dropped_candidates_may_be_missing_and_the_kept_ones_still_match() {
        let (decision, report) = first_pair();
        let victim = decision.victim.as_ref().unwrap().pid;
        let mut d = decision.clone();
        let i = d.candidates.iter().position(|c| c.pid != victim).unwrap();
        d.candidates.remove(i);
        d.candidates_dropped = Some(1);
        kill_decision_matches(&d, &report, &mut vec![]).unwrap();
        // The victim's own candidate dropped: it still matches the kill line.
        let mut v = d.clone();
        v.candidates.retain(|c| c.pid != victim);
        v.candidates_dropped = Some(2);
        kill_decision_matches(&v, &report, &mut vec![]).unwrap();
        // One row more missing than counted.
        let mut e = d.clone();
        e.candidates.remove(i);
        let message = error(&e, &report);
        assert!(
            message.contains("candidate pids differ (1 dropped)"),
            "{message}"
        );
        // A kept candidate off by a page.
        let mut e = d.clone();
        *e.candidates[i].rss_anon_bytes.as_mut().unwrap() += 4096;
        assert!(error(&e, &report).contains("anon rss bytes"));
        // The victim off by a page.
        let mut e = d.clone();
        *e.victim.as_mut().unwrap().total_vm_bytes.as_mut().unwrap() += 4096;
        assert!(error(&e, &report).contains("total_vm"));
    }

    #[test]
    fn a_victim_that_exited_before_the_kill_line_may_equal_the_table() {
        // The kill line, printed after the victim folded its cached
        // counters, says 40 pages more anon than the table.
        let (decision, mut report) = first_pair();
        *report
            .kill
            .as_mut()
            .unwrap()
            .values
            .get_mut("anon-rss")
            .unwrap() += 160;
        let mut notes = Vec::new();
        kill_decision_matches(&decision, &report, &mut notes).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Equal to neither: a failure.
        let mut d = decision.clone();
        *d.victim.as_mut().unwrap().rss_anon_bytes.as_mut().unwrap() += 4096;
        assert!(kill_decision_matches(&d, &report, &mut vec![]).is_err());
    }

    #[test]
    fn a_log_without_oom_output_has_no_reports() {
        let log = KernelLog::read("[    1.000000] Linux version 6.1.0\n".to_owned());
        assert!(log.reports.is_empty() && log.kills.is_empty());
    }

    #[test]
    fn records_are_validated_against_the_schema() {
        let schema = Schema::new().unwrap();
        let (decision, _) = first_pair();
        let mut record = serde_json::to_value(&decision).unwrap();
        record["time"] = "2026-01-01T00:00:00.000000Z".into();
        let line = record.to_string();
        schema.check_lines(&format!("{line}\n\n{line}\n")).unwrap();
        record["candidates"][0]["rss_bytes"] = "many".into();
        let e = schema
            .check_lines(&format!("{line}\n{record}\nnot json\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2: \"decision\" record") && e.contains("line 3: not JSON"),
            "{e}"
        );
    }

    #[test]
    fn hooks_that_did_not_attach_are_listed() {
        let start = serde_json::json!({"type": "start", "backend": "fentry", "hooks": [
            {"hook": "fexit/mem_cgroup_out_of_memory", "attached": true, "required": false},
            {"hook": "fexit/oom_badness", "attached": false, "required": false, "error": "gone"},
        ]});
        let run = TracerRun {
            hooks: serde_json::from_value(start["hooks"].clone()).unwrap(),
            start,
            decisions: Vec::new(),
            others: Vec::new(),
        };
        assert_eq!(run.hook_failures(), ["fexit/oom_badness: gone"]);
        assert_eq!(run.backend(), Some("fentry"));
    }
}
