//! The task table ("Tasks state (memory values in pages):"): the column
//! line, whose names differ by kernel, and one row per task.

use std::collections::HashSet;

use serde::Serialize;

use super::{
    fit::Fit,
    numbers::{MAX_PLAUSIBLE_BYTES, MAX_PLAUSIBLE_PAGES},
};

/// The task table ("Tasks state (memory values in pages):").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskTable {
    /// Column names as printed ("pid", "uid", "tgid", "total_vm", "rss", ... "name").
    pub columns: Vec<String>,
    pub rows: Vec<TaskRow>,
    /// An elision row ("…" or "...") was seen: the table is not the full list.
    pub elided_rows: bool,
}

/// One task-table row. Memory values are in pages except `pgtables_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub pid: u32,
    pub uid: u32,
    pub tgid: u32,
    pub total_vm_pages: u64,
    pub rss_pages: u64,
    pub rss_anon_pages: Option<u64>,
    pub rss_file_pages: Option<u64>,
    pub rss_shmem_pages: Option<u64>,
    pub pgtables_bytes: Option<u64>,
    pub nr_ptes: Option<u64>,
    pub nr_pmds: Option<u64>,
    pub swapents: Option<u64>,
    pub oom_score_adj: i32,
    pub oom_adj: Option<i32>,
    pub cpu: Option<u32>,
    pub name: String,
}

/// Task-table column kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Pid,
    Uid,
    Tgid,
    TotalVm,
    Rss,
    RssAnon,
    RssFile,
    RssShmem,
    PgtablesBytes,
    NrPtes,
    NrPmds,
    Swapents,
    OomScoreAdj,
    OomAdj,
    Cpu,
    Name,
    Other,
}

impl Col {
    fn from_name(name: &str) -> Col {
        match name {
            "pid" => Col::Pid,
            "uid" => Col::Uid,
            "tgid" => Col::Tgid,
            "total_vm" => Col::TotalVm,
            "rss" => Col::Rss,
            "rss_anon" => Col::RssAnon,
            "rss_file" => Col::RssFile,
            "rss_shmem" => Col::RssShmem,
            "pgtables_bytes" => Col::PgtablesBytes,
            "nr_ptes" => Col::NrPtes,
            "nr_pmds" => Col::NrPmds,
            "swapents" => Col::Swapents,
            "oom_score_adj" => Col::OomScoreAdj,
            "oom_adj" => Col::OomAdj,
            "cpu" => Col::Cpu,
            "name" => Col::Name,
            _ => Col::Other,
        }
    }
}

/// What reading the open report's table takes: the column kinds of its
/// header line, and the pids listed so far.
#[derive(Debug, Default)]
pub(super) struct TableReader {
    /// Column kinds of the open report's task table.
    cols: Vec<Col>,
    /// Pids of the open report's task table (to see interleaving).
    pids: HashSet<u32>,
}

impl TableReader {
    /// The column line opens the report's table; a second one is another
    /// report's.
    pub(super) fn open(&mut self, tasks: &mut Option<TaskTable>, columns: Vec<String>) -> Fit {
        if tasks.is_some() {
            return Fit::Interleaved;
        }
        self.cols = columns.iter().map(|c| Col::from_name(c)).collect();
        *tasks = Some(TaskTable {
            columns,
            rows: Vec::new(),
            elided_rows: false,
        });
        Fit::Belongs
    }

    /// Reads `text` as a row or an elision mark of `table`; `None` when it
    /// is neither.
    pub(super) fn read(&mut self, text: &str, table: &mut TaskTable) -> Option<Fit> {
        if let Some(row) = parse_row(text, &self.cols) {
            return Some(self.add_row(row, table));
        }
        if is_elision(text) {
            table.elided_rows = true;
            return Some(Fit::Belongs);
        }
        None
    }

    fn add_row(&mut self, row: TaskRow, table: &mut TaskTable) -> Fit {
        if !row_is_plausible(&row) {
            Fit::Implausible
        } else if self.pids.insert(row.pid) {
            table.rows.push(row);
            Fit::Belongs
        } else {
            // The same pid twice: another report's table is mixed into
            // this one.
            Fit::Interleaved
        }
    }

    /// Forgets the closed report's table.
    pub(super) fn clear(&mut self) {
        self.cols.clear();
        self.pids.clear();
    }
}

/// "Tasks state (memory values in pages):", the line above the columns.
pub(super) fn is_title(t: &str) -> bool {
    t.starts_with("Tasks state (memory values in pages)")
}

/// "[  pid  ]   uid  tgid total_vm      rss ... name" → ["pid", "uid", ..., "name"].
pub(super) fn parse_columns(t: &str) -> Option<Vec<String>> {
    let rest = t.strip_prefix('[')?;
    let (inner, rest) = rest.split_once(']')?;
    if inner.trim() != "pid" {
        return None;
    }
    let mut cols = vec!["pid".to_string()];
    cols.extend(rest.split_whitespace().map(str::to_string));
    let has = |name: &str| cols.iter().any(|c| c == name);
    if cols.last().map(String::as_str) != Some("name") || !has("uid") || !has("rss") {
        return None;
    }
    Some(cols)
}

/// One task-table row, read by the column names of the table's header line.
/// The name is the rest of the line (comm may contain spaces).
fn parse_row(text: &str, cols: &[Col]) -> Option<TaskRow> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (pid, mut rest) = rest.split_once(']')?;
    let pid: u32 = pid.trim().parse().ok()?;
    if cols.len() < 2 || cols[0] != Col::Pid || cols[cols.len() - 1] != Col::Name {
        return None;
    }
    let (mut uid, mut tgid, mut total_vm, mut rss, mut adj) = (None, None, None, None, None);
    let mut row = blank_row(pid);
    for col in &cols[1..cols.len() - 1] {
        let r = rest.trim_start();
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        let tok = &r[..end];
        rest = &r[end..];
        if tok.is_empty() {
            return None;
        }
        let unsigned = || tok.parse::<u64>().ok();
        match col {
            Col::Uid => uid = Some(tok.parse::<u32>().ok()?),
            Col::Tgid => tgid = Some(tok.parse::<u32>().ok()?),
            Col::TotalVm => total_vm = Some(unsigned()?),
            Col::Rss => rss = Some(unsigned()?),
            Col::RssAnon => row.rss_anon_pages = Some(unsigned()?),
            Col::RssFile => row.rss_file_pages = Some(unsigned()?),
            Col::RssShmem => row.rss_shmem_pages = Some(unsigned()?),
            Col::PgtablesBytes => row.pgtables_bytes = Some(unsigned()?),
            Col::NrPtes => row.nr_ptes = Some(unsigned()?),
            Col::NrPmds => row.nr_pmds = Some(unsigned()?),
            Col::Swapents => row.swapents = Some(unsigned()?),
            Col::OomScoreAdj => adj = Some(tok.parse::<i32>().ok()?),
            Col::OomAdj => row.oom_adj = Some(tok.parse::<i32>().ok()?),
            Col::Cpu => row.cpu = Some(tok.parse::<u32>().ok()?),
            Col::Pid | Col::Name | Col::Other => {}
        }
    }
    // The kernel prints " %s" for the name: a row without one was cut off.
    let name = rest.trim();
    if name.is_empty() || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    row.uid = uid?;
    row.tgid = tgid.unwrap_or(pid);
    row.total_vm_pages = total_vm?;
    row.rss_pages = rss?;
    row.oom_score_adj = adj?;
    row.name = name.to_string();
    Some(row)
}

/// A row with only its pid, the rest to be read.
fn blank_row(pid: u32) -> TaskRow {
    TaskRow {
        pid,
        uid: 0,
        tgid: 0,
        total_vm_pages: 0,
        rss_pages: 0,
        rss_anon_pages: None,
        rss_file_pages: None,
        rss_shmem_pages: None,
        pgtables_bytes: None,
        nr_ptes: None,
        nr_pmds: None,
        swapents: None,
        oom_score_adj: 0,
        oom_adj: None,
        cpu: None,
        name: String::new(),
    }
}

/// "…" / "..." rows marking an elided excerpt.
fn is_elision(text: &str) -> bool {
    let t = text.trim();
    (t.contains('…') || t.contains("..."))
        && t.chars().all(|c| matches!(c, '.' | '…' | '[' | ']' | ' '))
}

/// Every memory number of a task row within what a kernel can print.
fn row_is_plausible(row: &TaskRow) -> bool {
    let pages = [
        Some(row.total_vm_pages),
        Some(row.rss_pages),
        row.rss_anon_pages,
        row.rss_file_pages,
        row.rss_shmem_pages,
        row.nr_ptes,
        row.nr_pmds,
        row.swapents,
    ];
    pages.iter().flatten().all(|&p| p <= MAX_PLAUSIBLE_PAGES)
        && row.pgtables_bytes.is_none_or(|b| b <= MAX_PLAUSIBLE_BYTES)
}
