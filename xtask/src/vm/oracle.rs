//! The VM checks' own reader of the kernel's OOM report: the lines they
//! compare oomtrace with, read here apart from `oomtrace_core::report` (the
//! parser that builds the tracepoint backend's decisions), so that a bug of
//! that parser cannot show on both sides of a check and cancel out.
//!
//! Lines are found by what the kernel prints in them, wherever a log prefix
//! (`[ 1.23]`, `Jul 07 ... kernel: `) puts it; task-table columns are read
//! by the names in the table's own header, since they differ by kernel.
use std::collections::{BTreeMap, BTreeSet};

/// One report: from an `invoked oom-killer:` line to its `Killed process`
/// line, or to the line saying there was nothing to kill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub header: Option<Header>,
    /// The `memory: usage <n>kB, limit <n>kB` line.
    pub memory: Option<Usage>,
    /// The memcg named by `Memory cgroup stats for <path>:`.
    pub stats_for: Option<String>,
    pub table: Option<Table>,
    pub oom_kill: Option<OomKill>,
    pub kill: Option<Kill>,
    /// "Out of memory and no killable processes...".
    pub no_killable: bool,
    /// Ended with a kill line or the no-killable line, no pid listed twice.
    pub complete: bool,
}

/// The `invoked oom-killer:` line's allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub gfp_mask: u64,
    /// The flag names in parentheses after the mask, where printed.
    pub gfp_flags: Option<String>,
    pub order: i32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub usage_kb: u64,
    pub limit_kb: u64,
}

/// The task table: its column names (the header's, `pid` first, `name`
/// last) and its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// One task-table row: the number under each header column but the name.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub pid: u32,
    pub name: String,
    pub values: BTreeMap<String, i64>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<i64> {
        self.values.get(column).copied()
    }

    /// A column counted in pages or bytes (never negative).
    pub fn count(&self, column: &str) -> Option<u64> {
        self.get(column).and_then(|v| u64::try_from(v).ok())
    }
}

/// The `oom-kill:` summary line, `key=value` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct OomKill {
    pub fields: BTreeMap<String, String>,
}

impl OomKill {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

/// A `Killed process <pid> (<comm>) total-vm:...kB, ...` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub pid: u32,
    pub comm: String,
    pub uid: Option<u32>,
    /// `total-vm`, `anon-rss`, `file-rss`, `shmem-rss`, `pgtables` in kB,
    /// and `oom_score_adj`, as the line names them.
    pub values: BTreeMap<String, i64>,
}

impl Kill {
    pub fn kb(&self, key: &str) -> Option<u64> {
        self.values.get(key).and_then(|v| u64::try_from(*v).ok())
    }

    pub fn oom_score_adj(&self) -> Option<i32> {
        self.values
            .get("oom_score_adj")
            .and_then(|v| i32::try_from(*v).ok())
    }
}

/// Everything read from one kernel log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub reports: Vec<Report>,
    /// Kill lines outside any report (memory.oom.group sweeps, reports whose
    /// header the kernel rate-limited away).
    pub kills: Vec<Kill>,
    /// `Tasks in <memcg> are going to be killed due to memory.oom.group set`.
    pub oom_groups: Vec<String>,
}

impl Log {
    pub fn read(text: &str) -> Self {
        let mut log = Log::default();
        // The report being read, until its kill or no-killable line.
        let mut open: Option<Report> = None;
        for line in text.lines() {
            if let Some(header) = after(line, " invoked oom-killer: ") {
                if let Some(cut) = open.take() {
                    log.reports.push(cut);
                }
                open = Some(Report {
                    header: read_header(header),
                    ..Report::default()
                });
                continue;
            }
            if let Some(rest) = after(line, "Tasks in ") {
                if let Some(memcg) =
                    rest.strip_suffix(" are going to be killed due to memory.oom.group set")
                {
                    log.oom_groups.push(memcg.to_owned());
                }
                continue;
            }
            let kill = after(line, "Killed process ").and_then(read_kill);
            // A log that begins mid-report: from its task table on.
            if open.is_none() && table_header(line).is_some() {
                open = Some(Report::default());
            }
            let Some(report) = open.as_mut() else {
                log.kills.extend(kill);
                continue;
            };
            if let Some(kill) = kill {
                report.kill = Some(kill);
                log.reports.push(close(open.take()));
            } else if line.contains("Out of memory and no killable processes") {
                report.no_killable = true;
                log.reports.push(close(open.take()));
            } else {
                read_report_line(report, line);
            }
        }
        log.reports.extend(open);
        log
    }
}

fn close(report: Option<Report>) -> Report {
    let mut report = report.unwrap_or_default();
    let pids: BTreeSet<u32> = report
        .table
        .iter()
        .flat_map(|t| t.rows.iter().map(|r| r.pid))
        .collect();
    let rows = report.table.as_ref().map_or(0, |t| t.rows.len());
    report.complete = pids.len() == rows;
    report
}

/// The text after `marker` in `line`, wherever the marker is.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

fn read_report_line(report: &mut Report, line: &str) {
    if let Some(rest) = after(line, "oom-kill:") {
        report.oom_kill = Some(read_oom_kill(rest));
    } else if let Some(rest) = after(line, "memory: usage ") {
        report.memory = read_usage(rest);
    } else if let Some(rest) = after(line, "Memory cgroup stats for ") {
        let path = rest.split_once(": ").map_or(rest, |(p, _)| p);
        report.stats_for = Some(path.strip_suffix(':').unwrap_or(path).to_owned());
    } else if let Some(columns) = table_header(line) {
        report.table = Some(Table {
            columns,
            rows: Vec::new(),
        });
    } else if let Some(table) = report.table.as_mut()
        && let Some(row) = read_row(&table.columns, line)
    {
        table.rows.push(row);
    }
}

/// `gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0`.
fn read_header(text: &str) -> Option<Header> {
    let mask = text.strip_prefix("gfp_mask=0x")?;
    let digits = mask
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(mask.len());
    let gfp_flags = mask[digits..]
        .strip_prefix('(')
        .and_then(|f| f.split_once(')'))
        .map(|(flags, _)| flags.to_owned());
    let order = after(text, "order=")?;
    let order = order.split(',').next()?.trim().parse().ok()?;
    Some(Header {
        gfp_mask: u64::from_str_radix(&mask[..digits], 16).ok()?,
        gfp_flags,
        order,
    })
}

/// `49032kB, limit 49152kB, failcnt 12`.
fn read_usage(text: &str) -> Option<Usage> {
    let kb = |s: &str| s.trim().strip_suffix("kB")?.parse().ok();
    let (usage, rest) = text.split_once(", limit ")?;
    let limit = rest.split(',').next()?;
    Some(Usage {
        usage_kb: kb(usage)?,
        limit_kb: kb(limit)?,
    })
}

/// `constraint=CONSTRAINT_MEMCG,nodemask=(null),...,task=hog,pid=84,uid=0`:
/// a piece without a known `key=` belongs to the value before it (a comma
/// in a path or a command name).
fn read_oom_kill(text: &str) -> OomKill {
    const KEYS: &[&str] = &[
        "constraint",
        "nodemask",
        "cpuset",
        "mems_allowed",
        "oom_memcg",
        "task_memcg",
        "global_oom",
        "task",
        "pid",
        "uid",
    ];
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for piece in text.trim_end().split(',') {
        match piece.split_once('=') {
            Some((key, value)) if KEYS.contains(&key) => {
                fields.insert(key.to_owned(), value.to_owned());
                last = Some(key.to_owned());
            }
            // A flag without a value (`global_oom`).
            None if KEYS.contains(&piece) => {
                fields.insert(piece.to_owned(), String::new());
                last = None;
            }
            _ => {
                if let Some(value) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                    value.push(',');
                    value.push_str(piece);
                }
            }
        }
    }
    OomKill { fields }
}

/// `84 (hierhog) total-vm:50152kB, anon-rss:48780kB, ..., UID:0 pgtables:128kB
/// oom_score_adj:0`; before 3.x `16944, UID 0, (mingetty) total-vm:...`.
fn read_kill(text: &str) -> Option<Kill> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let pid = text[..digits].parse().ok()?;
    let open = text.find('(')?;
    let between = &text[digits..open];
    // The command ends at the last ')' before the numbers (it may hold ')').
    let close = text
        .find(") total-vm:")
        .or_else(|| text.rfind(')'))
        .filter(|c| *c > open)?;
    let comm = text[open + 1..close].to_owned();
    let mut uid = between
        .trim_matches([',', ' '])
        .strip_prefix("UID ")
        .and_then(|u| u.parse().ok());
    let mut values = BTreeMap::new();
    for item in text[close + 1..]
        .split([' ', ','])
        .filter(|i| !i.is_empty())
    {
        let Some((key, value)) = item.split_once(':') else {
            continue;
        };
        let value = value.strip_suffix("kB").unwrap_or(value);
        match (key, value.parse::<i64>()) {
            ("UID", Ok(v)) => uid = u32::try_from(v).ok(),
            (_, Ok(v)) => {
                values.insert(key.to_owned(), v);
            }
            _ => {}
        }
    }
    Some(Kill {
        pid,
        comm,
        uid,
        values,
    })
}

/// `[  pid  ]   uid  tgid total_vm      rss ... oom_score_adj name`: the
/// column names, `pid` first.
fn table_header(line: &str) -> Option<Vec<String>> {
    let open = line.rfind('[')?;
    let (inside, rest) = line[open + 1..].split_once(']')?;
    if inside.trim() != "pid" {
        return None;
    }
    let columns: Vec<String> = std::iter::once("pid")
        .chain(rest.split_whitespace())
        .map(str::to_owned)
        .collect();
    (columns.last().map(String::as_str) == Some("name")).then_some(columns)
}

/// A row under `columns`: `[<pid>]`, a number per column, the name (the
/// rest of the line: a command name may hold spaces).
fn read_row(columns: &[String], line: &str) -> Option<Row> {
    let (pid, mut rest) = pid_bracket(line)?;
    let mut values = BTreeMap::new();
    for column in &columns[1..columns.len() - 1] {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        values.insert(column.clone(), rest[..end].parse().ok()?);
        rest = &rest[end..];
    }
    let name = rest.trim_start();
    (!name.is_empty()).then(|| Row {
        pid,
        name: name.to_owned(),
        values,
    })
}

/// The first `[ <digits>]` of a line (a timestamp has a dot) and the text
/// after it.
fn pid_bracket(line: &str) -> Option<(u32, &str)> {
    let mut from = 0;
    while let Some(open) = line[from..].find('[').map(|i| i + from) {
        let (inside, rest) = line[open + 1..].split_once(']')?;
        let digits = inside.trim();
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some((digits.parse().ok()?, rest));
        }
        from = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use oomtrace_core::report::{ReportError, ReportItem, parse_log};

    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/kernel-reports"
    );

    /// Kill lines as (pid, comm, uid, total-vm, anon, file, shmem, pgtables kB, adj).
    type KillKey = (u32, String, Option<u32>, [Option<u64>; 5], Option<i32>);
    /// oom-kill lines as (constraint, oom_memcg, task_memcg, task, pid).
    type OomKillKey = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<u32>,
    );
    /// Rows as (pid, name, every number the core parser has a field for).
    type RowKey = (u32, String, Vec<Option<i64>>);
    /// Reports as (gfp_mask, gfp flags, order, memory usage and limit kB,
    /// stats memcg, no killable).
    type ReportKey = (
        Option<(u64, Option<String>, i32)>,
        Option<(u64, u64)>,
        Option<String>,
        bool,
    );
    type Keys = (Vec<KillKey>, Vec<OomKillKey>, Vec<RowKey>, Vec<ReportKey>);

    /// The column names of the numbers in a `RowKey`.
    const ROW_COLUMNS: [&str; 13] = [
        "uid",
        "tgid",
        "total_vm",
        "rss",
        "rss_anon",
        "rss_file",
        "rss_shmem",
        "pgtables_bytes",
        "nr_ptes",
        "nr_pmds",
        "swapents",
        "oom_score_adj",
        "oom_adj",
    ];

    fn ours(log: &Log) -> Keys {
        let kills = log
            .reports
            .iter()
            .filter_map(|r| r.kill.as_ref())
            .chain(&log.kills)
            .map(|k| {
                let kb = ["total-vm", "anon-rss", "file-rss", "shmem-rss", "pgtables"];
                (
                    k.pid,
                    k.comm.clone(),
                    k.uid,
                    kb.map(|key| k.kb(key)),
                    k.oom_score_adj(),
                )
            })
            .collect();
        let oom_kills = log
            .reports
            .iter()
            .filter_map(|r| r.oom_kill.as_ref())
            .map(|o| {
                let get = |key: &str| o.get(key).map(str::to_owned);
                (
                    get("constraint").unwrap_or_default(),
                    get("oom_memcg"),
                    get("task_memcg"),
                    get("task"),
                    o.get("pid").and_then(|p| p.parse().ok()),
                )
            })
            .collect();
        let rows = log
            .reports
            .iter()
            .filter_map(|r| r.table.as_ref())
            .flat_map(|t| &t.rows)
            .map(|r| {
                let mut numbers: Vec<Option<i64>> = ROW_COLUMNS.iter().map(|c| r.get(c)).collect();
                numbers.push(r.get("cpu"));
                (r.pid, r.name.clone(), numbers)
            })
            .collect();
        let reports = log
            .reports
            .iter()
            .filter(|r| r.header.is_some())
            .map(|r| {
                (
                    r.header
                        .as_ref()
                        .map(|h| (h.gfp_mask, h.gfp_flags.clone(), h.order)),
                    r.memory.map(|m| (m.usage_kb, m.limit_kb)),
                    r.stats_for.clone(),
                    r.no_killable,
                )
            })
            .collect();
        (kills, oom_kills, rows, reports)
    }

    fn core(text: &str) -> Keys {
        let items = match parse_log(text.as_bytes()) {
            Ok(items) => items,
            Err(ReportError::NoOomReport) => Vec::new(),
            Err(error) => panic!("parse_log: {error}"),
        };
        let (mut kills, mut oom_kills, mut rows, mut reports) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for item in items {
            let (kill, report) = match item {
                ReportItem::Report(report) => (report.kill.clone(), Some(report)),
                ReportItem::Kill(kill) => (Some(kill), None),
                _ => continue,
            };
            kills.extend(kill.map(|k| {
                let kb = [
                    k.total_vm_kb,
                    k.anon_rss_kb,
                    k.file_rss_kb,
                    k.shmem_rss_kb,
                    k.pgtables_kb,
                ];
                (k.pid, k.comm, k.uid, kb, k.oom_score_adj)
            }));
            let Some(report) = report else { continue };
            if let Some(h) = &report.header {
                reports.push((
                    Some((h.gfp_mask, h.gfp_flags.clone(), h.order)),
                    report.counter("memory").map(|m| (m.usage_kb, m.limit_kb)),
                    report.memcg_stats_for.clone(),
                    report.no_killable,
                ));
            }
            oom_kills.extend(
                report
                    .constraint
                    .map(|c| (c.constraint, c.oom_memcg, c.task_memcg, c.task, c.pid)),
            );
            for r in report.tasks.into_iter().flat_map(|t| t.rows) {
                let n = |v: Option<u64>| v.map(|v| v as i64);
                let numbers = vec![
                    Some(i64::from(r.uid)),
                    Some(i64::from(r.tgid)),
                    Some(r.total_vm_pages as i64),
                    Some(r.rss_pages as i64),
                    n(r.rss_anon_pages),
                    n(r.rss_file_pages),
                    n(r.rss_shmem_pages),
                    n(r.pgtables_bytes),
                    n(r.nr_ptes),
                    n(r.nr_pmds),
                    n(r.swapents),
                    Some(i64::from(r.oom_score_adj)),
                    r.oom_adj.map(i64::from),
                    r.cpu.map(i64::from),
                ];
                rows.push((r.pid, r.name, numbers));
            }
        }
        (kills, oom_kills, rows, reports)
    }

    /// Equal as multisets; the message names what only one side has.
    fn same<T: Debug + Ord + Clone>(file: &str, what: &str, mut a: Vec<T>, mut b: Vec<T>) -> usize {
        a.sort();
        b.sort();
        let only = |x: &[T], y: &[T]| -> Vec<T> {
            x.iter()
                .filter(|i| !y.contains(i))
                .take(3)
                .cloned()
                .collect()
        };
        assert!(
            a == b,
            "{file}: {what}: {} here, {} from oomtrace-core; only here {:?}; only core {:?}",
            a.len(),
            b.len(),
            only(&a, &b),
            only(&b, &a)
        );
        a.len()
    }

    #[test]
    fn the_two_readers_agree_on_every_fixture() {
        let mut counted = [0; 4];
        let mut files = 0;
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let (k, o, r, h) = ours(&Log::read(&text));
            let (ck, co, cr, ch) = core(&text);
            counted[0] += same(&file, "kill lines", k, ck);
            counted[1] += same(&file, "oom-kill lines", o, co);
            counted[2] += same(&file, "task rows", r, cr);
            counted[3] += same(
                &file,
                "reports (header, memory:, stats for, no killable)",
                h,
                ch,
            );
            files += 1;
        }
        // Not a vacuous agreement: the fixtures hold each kind of line.
        assert!(files >= 30, "{files} fixtures");
        assert!(counted.iter().all(|n| *n > 30), "{counted:?}");
    }
}
