//! Parser for the kernel's own OOM-killer report.
//!
//! The kernel explains every OOM kill in its log: `dump_header()` prints the
//! "X invoked oom-killer:" header, a stack dump, the memcg counters and stats
//! (or the global Mem-Info), the task table, the `oom-kill:constraint=` summary,
//! and finally the "Killed process" line. This module turns that text back into
//! structured data, for live `/dev/kmsg` lines (one [`ReportParser::push`] per
//! message) and for whole saved logs ([`parse_log`]).
//!
//! Inputs accepted by [`strip_prefix`] / [`split_prefix`]: raw message text,
//! `dmesg` (`[ 1534.287964] msg`), `dmesg -T` (`[Mon Nov 23 18:32:48 2026] msg`),
//! `dmesg -r` (`<4>[ 1534.287964] msg`), classic syslog and journal short formats
//! (`Nov 23 18:32:48 host kernel: [ 1534.287964] msg`, `Jul 07 02:43:54 host kernel: msg`,
//! `2026-11-23T18:32:48+0000 host kernel: msg`) and `journalctl -o short-monotonic`
//! (`[ 1534.287964] host kernel: msg`).
//!
//! Kernel-version differences handled (all seen in real reports): task-table
//! columns (2.6.32 `cpu oom_adj`, 4.4 `nr_ptes nr_pmds`, 5.10 `pgtables_bytes`,
//! 6.x `rss_anon rss_file rss_shmem`), the pre-5.x "Kill process … score N or
//! sacrifice child" selection line and "Task in … killed as a result of limit
//! of …" line, the one-line 4.4 memcg stats (`cache:96KB rss:…KB`), the 2.6.32
//! kill line (`Killed process 16944, UID 0, (mingetty) …`), journal lines cut
//! off mid-line, and storms where `dump_header` is rate-limited so that most
//! "Killed process" lines arrive without a report.

use serde::Serialize;

pub mod journal;
pub mod log;

pub use log::{LineStats, LogParser, parse_log};

/// Reports longer than this are closed (marked incomplete) so that a header
/// that is never followed by its kill line cannot grow without bound on a
/// live feed. The largest real report has one task row per process in the
/// memcg (or on the machine, for a global OOM), so this is generous.
pub const MAX_REPORT_LINES: usize = 200_000;

/// Likewise in estimated heap bytes ([`ReportParser::open_bytes`]): the
/// collector's budget for the open report (`base::bounds`).
pub const MAX_REPORT_BYTES: usize = crate::base::bounds::OPEN_REPORT;

/// The largest page count a kernel prints for a task or a machine: 2^44
/// pages is 64 PiB in 4 KiB pages, the whole of a 5-level-paging address
/// space. Larger numbers come from a corrupt or forged log.
pub const MAX_PLAUSIBLE_PAGES: u64 = 1 << 44;

/// The largest size in kB of a task or a machine (kill, reaper and swap
/// lines): [`MAX_PLAUSIBLE_PAGES`] 4 KiB pages, 64 PiB.
pub const MAX_PLAUSIBLE_KB: u64 = 1 << 46;

/// The largest memcg counter in kB: an unlimited memcg's limit is
/// `PAGE_COUNTER_MAX` pages, 9007199254740988 kB on 64-bit, just under
/// 2^53. In bytes it still fits a u64 (2^63).
pub const MAX_COUNTER_KB: u64 = 1 << 53;

/// The largest byte count of a task or a machine (page tables, memcg
/// stats other than limits): 64 PiB.
pub const MAX_PLAUSIBLE_BYTES: u64 = 1 << 56;

/// One line of a report as it stands in the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceLine {
    /// 1-based line number in the input, or the kmsg sequence number for live input.
    pub line_no: usize,
    /// Seconds since boot from a `[   12.345678]` prefix, when there was one.
    pub timestamp: Option<f64>,
    /// The message without any prefix.
    pub text: String,
}

/// The prefixes found in front of one raw log line; see [`split_prefix`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prefixed<'a> {
    /// Seconds since boot from a dmesg `[ 1534.287964]` stamp.
    pub timestamp: Option<f64>,
    /// The syslog/journal identifier ("kernel", "docker[977]") when the line
    /// came from a syslog or journal export; `None` for dmesg and raw text.
    pub ident: Option<&'a str>,
    /// The host name of a syslog/journal line (`Nov 23 18:32:48 host kernel:`),
    /// so that a log merging several hosts can be told apart.
    pub host: Option<&'a str>,
    /// The message itself.
    pub message: &'a str,
}

/// Removes dmesg / `dmesg -T` / journal / syslog prefixes from one raw line.
/// Returns the boot-seconds timestamp (when the line had a `[ 12.345]` stamp)
/// and the message. Leading spaces that belong to the message (stack-trace
/// lines, Mem-Info continuation lines) are kept.
pub fn strip_prefix(raw: &str) -> (Option<f64>, &str) {
    let p = split_prefix(raw);
    (p.timestamp, p.message)
}

/// Like [`strip_prefix`], but also says which program a syslog/journal line
/// came from, so callers can skip lines that the kernel did not write
/// (e.g. `docker[977]: Killed`).
pub fn split_prefix(raw: &str) -> Prefixed<'_> {
    let mut s = raw.trim_end_matches(['\r', '\n']);
    s = strip_priority(s);
    let mut ident = None;
    let mut host = None;
    if let Some((h, id, rest)) = strip_syslog_header(s) {
        host = Some(h);
        ident = Some(id);
        s = rest;
    }
    let mut timestamp = None;
    if let Some(rest) = strip_wallclock_stamp(s) {
        s = rest;
    } else if let Some((ts, rest)) = strip_boot_stamp(s) {
        timestamp = Some(ts);
        s = rest;
        if ident.is_none() {
            // journalctl -o short-monotonic: "[ 1534.287964] host kernel: msg"
            if let Some((h, host_ident, rest)) = strip_host_ident(s) {
                host = Some(h);
                ident = Some(host_ident);
                s = rest;
            }
        }
    }
    Prefixed {
        timestamp,
        ident,
        host,
        message: s,
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `<6>` syslog priority as printed by `dmesg -r`.
fn strip_priority(s: &str) -> &str {
    let Some((num, after)) = s.strip_prefix('<').and_then(|r| r.split_once('>')) else {
        return s;
    };
    if (1..=3).contains(&num.len()) && num.bytes().all(|b| b.is_ascii_digit()) {
        after
    } else {
        s
    }
}

/// "Nov 23 18:32:48 host ident: " or "2026-11-23T18:32:48+0000 host ident: ".
/// Returns (host, ident without the colon, message).
fn strip_syslog_header(s: &str) -> Option<(&str, &str, &str)> {
    let rest = strip_syslog_time(s)?;
    let (host, rest) = rest.split_once(' ')?;
    if host.is_empty() {
        return None;
    }
    let (ident, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let ident = ident.strip_suffix(':')?;
    if ident.is_empty() {
        return None;
    }
    Some((host, ident, msg))
}

/// The time stamp of a syslog/journal line, returning what follows it.
fn strip_syslog_time(s: &str) -> Option<&str> {
    // Traditional: "Nov 23 18:32:48" / "Nov  3 18:32:48" / "Nov 23 18:32:48.123456"
    let traditional = s
        .get(..3)
        .filter(|m| MONTHS.contains(m))
        .and_then(|_| s[3..].strip_prefix(' '));
    if let Some(rest) = traditional {
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let (day, rest) = rest.split_once(' ')?;
        let (clock, rest) = rest.split_once(' ')?;
        if (1..=2).contains(&day.len())
            && day.bytes().all(|b| b.is_ascii_digit())
            && is_clock(clock)
        {
            return Some(rest);
        }
        return None;
    }
    // ISO 8601: "2026-11-23T18:32:48+0000", "2026-11-23T18:32:48.123456+00:00"
    let (stamp, rest) = s.split_once(' ')?;
    let b = stamp.as_bytes();
    if b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && is_clock(&stamp[11..])
    {
        return Some(rest);
    }
    None
}

/// "HH:MM:SS" optionally followed by fractional seconds / a zone.
fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

/// dmesg's `[ 1534.287964] ` (digits, a dot, digits: a bare `[15947]` task-table
/// row is not a stamp).
fn strip_boot_stamp(s: &str) -> Option<(f64, &str)> {
    let rest = s.strip_prefix('[')?;
    let (inner, after) = rest.split_once(']')?;
    let inner = inner.trim_start();
    let (secs, frac) = inner.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let ts = inner.parse().ok()?;
    Some((ts, after.strip_prefix(' ').unwrap_or(after)))
}

/// `dmesg -T`'s `[Mon Nov 23 18:32:48 2026] `.
fn strip_wallclock_stamp(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let (inner, after) = rest.split_once(']')?;
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [weekday, month, day, clock, year] = parts[..] else {
        return None;
    };
    let ok = WEEKDAYS.contains(&weekday)
        && MONTHS.contains(&month)
        && day.bytes().all(|b| b.is_ascii_digit())
        && is_clock(clock)
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| after.strip_prefix(' ').unwrap_or(after))
}

/// "host kernel: msg" after a monotonic stamp (journalctl -o short-monotonic).
fn strip_host_ident(s: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = s.split_once(' ')?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return None;
    }
    let msg = rest.strip_prefix("kernel:")?;
    if !(msg.is_empty() || msg.starts_with(' ')) {
        return None;
    }
    Some((host, "kernel", msg.strip_prefix(' ').unwrap_or(msg)))
}

/// "X invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvokedHeader {
    /// Command name of the task that ran into the OOM.
    pub comm: String,
    pub gfp_mask: u64,
    /// Symbolic flags printed after the mask on newer kernels ("GFP_KERNEL").
    pub gfp_flags: Option<String>,
    pub order: i32,
    pub oom_score_adj: Option<i32>,
    /// Only pre-3.x kernels print `oom_adj=`.
    pub oom_adj: Option<i32>,
}

/// The dump_stack line naming the task that triggered the OOM:
/// "CPU: 1 UID: 0 PID: 12621 Comm: python3 Not tainted 6.18.44 ..."
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerCpuLine {
    pub cpu: u32,
    /// Printed since 6.11.
    pub uid: Option<u32>,
    pub pid: u32,
    pub comm: String,
}

/// "memory: usage 65536kB, limit 65536kB, failcnt 3374" (also memory+swap, swap, kmem).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterLine {
    pub name: String,
    pub usage_kb: u64,
    pub limit_kb: u64,
    pub failcnt: u64,
}

/// Global OOM: the lines of Mem-Info that size the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlobalMemInfo {
    pub ram_pages: Option<u64>,
    pub reserved_pages: Option<u64>,
    pub total_swap_kb: Option<u64>,
    pub free_swap_kb: Option<u64>,
}

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

/// "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=x,pid=1,uid=0"
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstraintLine {
    pub constraint: String,
    /// Absent for a global OOM (the line says `global_oom` instead).
    pub oom_memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub task: Option<String>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub cpuset: Option<String>,
}

/// Pre-5.x selection line: "Memory cgroup out of memory: Kill process 26675 (java) score 988 or sacrifice child".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectedLine {
    pub pid: u32,
    pub comm: String,
    pub score: i64,
    pub sacrifice_child: bool,
    pub source: SourceLine,
}

/// "Memory cgroup out of memory: Killed process 12621 (python3) total-vm:75160kB, anon-rss:65024kB, ..."
/// Sizes are in kB as printed; fields absent on a kernel (or cut off) are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillLine {
    /// Prefixed "Memory cgroup out of memory:" (vs "Out of memory:" or no prefix).
    pub memcg_oom: bool,
    pub pid: u32,
    pub comm: String,
    pub uid: Option<u32>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    pub source: SourceLine,
}

/// "oom_reaper: reaped process 12621 (python3), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReapedLine {
    pub pid: u32,
    pub comm: String,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub source: SourceLine,
}

/// One kernel OOM report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KernelReport {
    /// The report ended the way reports end (kill line, or "no killable
    /// processes"); false when it was cut short by a new header or end of input.
    pub complete: bool,
    /// Every line that belonged to the report, in order.
    pub lines: Vec<SourceLine>,
    /// `None` only when the report started without a header line (excerpts,
    /// logs that begin mid-report, or a pre-5.x "Kill process" line whose
    /// dump_header was rate-limited away).
    pub header: Option<InvokedHeader>,
    pub trigger: Option<TriggerCpuLine>,
    pub kernel_release: Option<String>,
    pub counters: Vec<CounterLine>,
    /// Pre-4.19: (task memcg, OOM memcg) from "Task in /a killed as a result of limit of /b".
    /// Either path may be cut off in a truncated log.
    pub task_in_line: Option<(String, String)>,
    pub memcg_stats_for: Option<String>,
    /// Values in bytes (the one-line 4.4 "KB" form is converted).
    pub memcg_stats: Vec<(String, u64)>,
    pub global_mem: Option<GlobalMemInfo>,
    pub tasks: Option<TaskTable>,
    pub constraint: Option<ConstraintLine>,
    pub selected: Option<SelectedLine>,
    /// The first "Killed process" line after the header.
    pub kill: Option<KillLine>,
    /// Ended with "Out of memory and no killable processes...".
    pub no_killable: bool,
    /// Lines of another report were mixed into this one (two reports
    /// interleaved line by line with nothing to tell them apart): a task-table
    /// row for a pid already listed, a second column header, a second counter
    /// of the same name or a second summary line. The duplicate rows are left
    /// out of `tasks`, the report is never `complete`, and what it says about
    /// the candidates is not trustworthy.
    pub interleaved: bool,
    /// The host whose log lines these were, when the log names one per line
    /// (syslog, journal): reports of different hosts are parsed apart.
    pub host: Option<String>,
    /// A task row, counter line or memcg stat held a number no kernel prints
    /// (memory beyond any machine, see [`MAX_PLAUSIBLE_PAGES`]): it was left
    /// out (its line stays in `lines`), and the report is never `complete`.
    pub implausible: bool,
}

impl KernelReport {
    /// The counter line with this name ("memory", "memory+swap", "swap", "kmem").
    pub fn counter(&self, name: &str) -> Option<&CounterLine> {
        self.counters.iter().find(|c| c.name == name)
    }

    /// A memcg stat by key (bytes).
    pub fn memcg_stat(&self, key: &str) -> Option<u64> {
        self.memcg_stats
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, v)| v)
    }

    /// Upper bound of its heap use: what its lines cost while it was read
    /// (every parsed part comes from a line), plus a kill line's copy.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.lines.iter().map(line_bytes).sum::<usize>()
            + self.kill.as_ref().map_or(0, |k| 2 * k.source.text.len())
    }

    /// The task-table row of the killed process, if both are present.
    pub fn victim_row(&self) -> Option<&TaskRow> {
        let pid = self.kill.as_ref()?.pid;
        self.tasks.as_ref()?.rows.iter().find(|r| r.pid == pid)
    }

    /// Cut off before its end (end of input, a new header, the size cap)
    /// rather than ended by the kernel: its task table may be partial and its
    /// kill line is missing, which does *not* mean nothing was killable
    /// (that is [`no_killable`](Self::no_killable)).
    pub fn cut_off(&self) -> bool {
        !self.complete && !self.no_killable
    }

    /// The pid the killer chose as far as the report says: the kill line's,
    /// else the summary line's (5.x+ prints it before the kill line), else the
    /// pre-5.x selection line's. Lets a report cut off after the summary still
    /// name its victim.
    pub fn chosen_pid(&self) -> Option<u32> {
        self.kill
            .as_ref()
            .map(|k| k.pid)
            .or(self.constraint.as_ref().and_then(|c| c.pid))
            .or(self.selected.as_ref().map(|s| s.pid))
    }

    /// A global OOM's totalpages as the kernel computes it
    /// (`totalram_pages() + total_swap_pages`), from Mem-Info's
    /// "N pages RAM" minus "N pages reserved" (totalram counts managed pages,
    /// which is RAM less what is reserved) plus "Total swap = NkB" in pages.
    /// `None` unless all three lines were read, or for a page size under 1 KiB.
    pub fn global_totalpages(&self, page_size: u64) -> Option<u64> {
        let g = self.global_mem.as_ref()?;
        let managed = g.ram_pages?.checked_sub(g.reserved_pages?)?;
        let page_kb = page_size / 1024;
        if page_kb == 0 {
            return None;
        }
        managed.checked_add(g.total_swap_kb? / page_kb)
    }
}

/// What the parser produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
// A report is produced once per OOM and moved, never copied in bulk; boxing
// it would only make every consumer dereference.
#[allow(clippy::large_enum_variant)]
pub enum ReportItem {
    /// A full report: from "X invoked oom-killer:" up to and including the first
    /// kill line, or up to "Out of memory and no killable processes...", or cut
    /// short (complete=false) by a new header / finish().
    Report(KernelReport),
    /// A "Killed process" line that is not part of an open report (rate-limited
    /// storms, memory.oom.group sweeps).
    Kill(KillLine),
    /// "Tasks in /grp are going to be killed due to memory.oom.group set"
    OomGroup { memcg: String, line: SourceLine },
    /// "oom_reaper: reaped process 12621 (python3), now anon-rss:0kB, ..."
    Reaped(ReapedLine),
}

/// Errors of [`parse_log`].
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub enum ReportError {
    /// The input is not a text log.
    #[error("input is not text: {reason} on line {line}")]
    NotText { line: usize, reason: &'static str },
    /// The input is text but holds no OOM-killer output.
    #[error(
        "no kernel OOM report in the input (no \"invoked oom-killer\", \"Killed process\" or related kernel line)"
    )]
    NoOomReport,
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

/// Streaming parser: feed it message lines (prefixes already stripped) one at a
/// time, for a live `/dev/kmsg` feed as for a whole file.
#[derive(Debug, Default)]
pub struct ReportParser {
    open: Option<KernelReport>,
    /// Column kinds of the open report's task table.
    cols: Vec<Col>,
    /// Inside the multi-line "Memory cgroup stats for" block.
    in_stats: bool,
    /// Pids of the open report's task table (to see interleaving).
    pids: std::collections::HashSet<u32>,
    /// Estimated heap bytes of the open report ([`line_bytes`] per line).
    bytes: usize,
    /// Reports closed early because they reached [`MAX_REPORT_LINES`] or
    /// [`MAX_REPORT_BYTES`]: the rest of each was not read (a `lost` record).
    pub cut_by_bound: u64,
}

/// Upper bound of the heap one line costs the open report: its text, once
/// in `lines` and at most once more in what it parses to (a task row's
/// name, a stat's key), plus the line, the row and the pid-set slot.
fn line_bytes(line: &SourceLine) -> usize {
    2 * line.text.len()
        + std::mem::size_of::<SourceLine>()
        + std::mem::size_of::<TaskRow>()
        + crate::base::bounds::ENTRY_OVERHEAD
}

/// What one line is, independent of state.
enum Line {
    Header(Option<InvokedHeader>),
    Kill(KillFields),
    Reaped(ReapedFields),
    OomGroup(String),
    NoKillable,
    Cpu(Option<TriggerCpuLine>, Option<String>),
    Counter(CounterLine),
    TaskIn(String, String),
    StatsFor(String, Option<Vec<(String, u64)>>),
    TasksState,
    Columns(Vec<String>),
    Constraint(ConstraintLine),
    Selected(u32, String, i64, bool),
    MemInfo,
    RamPages(u64),
    ReservedPages(u64),
    TotalSwap(u64),
    FreeSwap(u64),
    Other,
}

impl Line {
    /// Lines that only ever appear inside an OOM report, so they open one even
    /// when its header was not seen.
    fn starts_headerless_report(&self) -> bool {
        matches!(
            self,
            Line::Counter(_)
                | Line::StatsFor(..)
                | Line::TasksState
                | Line::Columns(_)
                | Line::Constraint(_)
                | Line::Selected(..)
                | Line::NoKillable
        ) || matches!(self, Line::TaskIn(_, oom) if !oom.is_empty())
    }
}

impl ReportParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a report has started and not yet ended.
    pub fn has_open_report(&self) -> bool {
        self.open.is_some()
    }

    /// Estimated heap bytes held by the open report (0 when none is open).
    pub fn open_bytes(&self) -> usize {
        if self.open.is_some() { self.bytes } else { 0 }
    }

    /// Feed one message line (already prefix-stripped). Returns the items this
    /// line completed.
    pub fn push(&mut self, line: SourceLine) -> Vec<ReportItem> {
        let mut out = Vec::new();
        let cost = line_bytes(&line);
        if self.open.as_ref().is_some_and(|r| {
            r.lines.len() >= MAX_REPORT_LINES || self.bytes + cost > MAX_REPORT_BYTES
        }) {
            self.cut_by_bound += 1;
            out.extend(self.close(false));
        }
        if self.open.is_some() {
            self.bytes += cost;
        } else {
            self.bytes = cost;
        }

        // Task-table rows and stats lines only mean something inside a report.
        if let Some(report) = self.open.as_mut() {
            if table_accepts_rows(report) {
                if let Some(row) = parse_row(&line.text, &self.cols) {
                    if !row_is_plausible(&row) {
                        report.implausible = true;
                    } else if self.pids.insert(row.pid) {
                        if let Some(t) = report.tasks.as_mut() {
                            t.rows.push(row);
                        }
                    } else {
                        // The same pid twice: another report's table is
                        // mixed into this one.
                        report.interleaved = true;
                    }
                    report.lines.push(line);
                    return out;
                }
                if is_elision(&line.text) {
                    if let Some(t) = report.tasks.as_mut() {
                        t.elided_rows = true;
                    }
                    report.lines.push(line);
                    return out;
                }
            }
            if let Some((key, value)) = self.in_stats.then(|| parse_stat_kv(&line.text)).flatten() {
                if stat_is_plausible(&key, value) {
                    report.memcg_stats.push((key, value));
                } else {
                    report.implausible = true;
                }
                report.lines.push(line);
                return out;
            }
        }

        match classify(&line.text) {
            Line::Header(header) => {
                out.extend(self.close(false));
                self.open = Some(KernelReport {
                    header,
                    lines: vec![line],
                    ..KernelReport::default()
                });
            }
            Line::Kill(k) => {
                let kill = k.into_kill(line.clone());
                match self.open.as_mut() {
                    Some(report) => {
                        // 4.19+ names the victim in the summary line first:
                        // a kill line for another pid is another report's.
                        if report
                            .constraint
                            .as_ref()
                            .and_then(|c| c.pid)
                            .is_some_and(|pid| pid != kill.pid)
                        {
                            report.interleaved = true;
                        }
                        report.kill = Some(kill);
                        report.lines.push(line);
                        out.extend(self.close(true));
                    }
                    None => out.push(ReportItem::Kill(kill)),
                }
            }
            Line::Reaped(r) => out.push(ReportItem::Reaped(ReapedLine {
                pid: r.pid,
                comm: r.comm,
                anon_rss_kb: r.anon_rss_kb,
                file_rss_kb: r.file_rss_kb,
                shmem_rss_kb: r.shmem_rss_kb,
                source: line,
            })),
            Line::OomGroup(memcg) => out.push(ReportItem::OomGroup { memcg, line }),
            Line::NoKillable => {
                let report = self.open.get_or_insert_with(KernelReport::default);
                report.no_killable = true;
                report.lines.push(line);
                out.extend(self.close(true));
            }
            other => {
                if self.open.is_none() && other.starts_headerless_report() {
                    self.open = Some(KernelReport::default());
                }
                if self.open.is_some() {
                    self.apply(other, line);
                }
            }
        }
        out
    }

    /// End of input: flush an open report (marked incomplete).
    pub fn finish(&mut self) -> Vec<ReportItem> {
        self.close(false).into_iter().collect()
    }

    fn close(&mut self, complete: bool) -> Option<ReportItem> {
        self.cols.clear();
        self.in_stats = false;
        self.pids.clear();
        self.bytes = 0;
        let mut report = self.open.take()?;
        report.complete = complete && !report.interleaved && !report.implausible;
        Some(ReportItem::Report(report))
    }

    /// Records a body line in the open report.
    fn apply(&mut self, kind: Line, line: SourceLine) {
        let Some(report) = self.open.as_mut() else {
            return;
        };
        let structural = !matches!(
            kind,
            Line::Other | Line::Cpu(..) | Line::Selected(..) | Line::TaskIn(..)
        );
        if structural {
            self.in_stats = false;
        }
        match kind {
            Line::Cpu(trigger, release) => {
                if report.trigger.is_none() && report.kernel_release.is_none() {
                    report.trigger = trigger;
                    report.kernel_release = release;
                }
            }
            Line::Counter(c) => {
                if c.usage_kb > MAX_COUNTER_KB || c.limit_kb > MAX_COUNTER_KB {
                    report.implausible = true;
                } else if report.counters.iter().any(|o| o.name == c.name) {
                    report.interleaved = true;
                } else {
                    report.counters.push(c);
                }
            }
            Line::TaskIn(task, oom) => {
                report.task_in_line.get_or_insert((task, oom));
            }
            Line::StatsFor(path, inline) => {
                // Old v1 kernels print one block per memcg of the hierarchy:
                // the first is the OOM memcg; the rest stay in `lines`.
                if report.memcg_stats_for.is_none() {
                    report.memcg_stats_for = Some(path);
                    match inline {
                        Some(items) => report.memcg_stats = items,
                        None => self.in_stats = true,
                    }
                }
            }
            Line::TasksState => {}
            Line::Columns(columns) => {
                if report.tasks.is_some() {
                    report.interleaved = true;
                } else {
                    self.cols = columns.iter().map(|c| Col::from_name(c)).collect();
                    report.tasks = Some(TaskTable {
                        columns,
                        rows: Vec::new(),
                        elided_rows: false,
                    });
                }
            }
            Line::Constraint(c) => {
                if report.constraint.is_some() {
                    report.interleaved = true;
                } else {
                    report.constraint = Some(c);
                }
            }
            Line::Selected(pid, comm, score, sacrifice_child) => {
                if report.selected.is_none() {
                    report.selected = Some(SelectedLine {
                        pid,
                        comm,
                        score,
                        sacrifice_child,
                        source: line.clone(),
                    });
                }
            }
            Line::MemInfo => {
                report.global_mem.get_or_insert_with(GlobalMemInfo::default);
            }
            Line::RamPages(n) => {
                report
                    .global_mem
                    .get_or_insert_with(GlobalMemInfo::default)
                    .ram_pages = Some(n)
            }
            Line::ReservedPages(n) => {
                report
                    .global_mem
                    .get_or_insert_with(GlobalMemInfo::default)
                    .reserved_pages = Some(n)
            }
            Line::TotalSwap(n) => {
                report
                    .global_mem
                    .get_or_insert_with(GlobalMemInfo::default)
                    .total_swap_kb = Some(n)
            }
            Line::FreeSwap(n) => {
                report
                    .global_mem
                    .get_or_insert_with(GlobalMemInfo::default)
                    .free_swap_kb = Some(n)
            }
            // Handled in push().
            Line::Header(_)
            | Line::Kill(_)
            | Line::Reaped(_)
            | Line::OomGroup(_)
            | Line::NoKillable
            | Line::Other => {}
        }
        report.lines.push(line);
    }
}

/// Rows are accepted from the column line until the summary/selection/kill.
fn table_accepts_rows(report: &KernelReport) -> bool {
    report.tasks.is_some()
        && report.constraint.is_none()
        && report.selected.is_none()
        && report.kill.is_none()
}

fn classify(text: &str) -> Line {
    let t = text.trim_start();
    if let Some(h) = parse_header(t) {
        return Line::Header(h);
    }
    if let Some(k) = parse_kill(t) {
        return Line::Kill(k);
    }
    if let Some(r) = parse_reaped(t) {
        return Line::Reaped(r);
    }
    if let Some(m) = t
        .strip_prefix("Tasks in ")
        .and_then(|r| r.split_once(" are going to be killed due to memory.oom.group set"))
    {
        return Line::OomGroup(m.0.to_string());
    }
    if t.starts_with("Out of memory and no killable processes") {
        return Line::NoKillable;
    }
    if let Some((trigger, release)) = parse_cpu_line(t) {
        return Line::Cpu(trigger, release);
    }
    if let Some(c) = parse_counter(t) {
        return Line::Counter(c);
    }
    if let Some(rest) = t.strip_prefix("Task in ") {
        return match rest.split_once(" killed as a result of limit of ") {
            Some((task, oom)) => Line::TaskIn(task.to_string(), oom.trim_end().to_string()),
            None => Line::TaskIn(rest.trim_end().to_string(), String::new()),
        };
    }
    if let Some(rest) = t.strip_prefix("Memory cgroup stats for ") {
        return parse_stats_for(rest);
    }
    if t.starts_with("Tasks state (memory values in pages)") {
        return Line::TasksState;
    }
    if let Some(cols) = parse_columns(t) {
        return Line::Columns(cols);
    }
    if let Some(c) = parse_constraint(t) {
        return Line::Constraint(c);
    }
    if let Some((pid, comm, score, sacrifice)) = parse_selected(t) {
        return Line::Selected(pid, comm, score, sacrifice);
    }
    if t.starts_with("Mem-Info:") {
        return Line::MemInfo;
    }
    let pages = |n: &str| n.parse().ok().filter(|&n| n <= MAX_PLAUSIBLE_PAGES);
    if let Some(n) = t.strip_suffix(" pages RAM").and_then(pages) {
        return Line::RamPages(n);
    }
    if let Some(n) = t.strip_suffix(" pages reserved").and_then(pages) {
        return Line::ReservedPages(n);
    }
    if let Some(n) = parse_swap_total(t, "Total swap") {
        return Line::TotalSwap(n);
    }
    if let Some(n) = parse_swap_total(t, "Free swap") {
        return Line::FreeSwap(n);
    }
    Line::Other
}

/// Leading ASCII digits as a number, and the rest.
fn split_num<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Like [`split_num`] but with an optional leading '-'.
fn split_signed<T: std::str::FromStr>(s: &str) -> Option<(T, &str)> {
    let sign = usize::from(s.starts_with('-'));
    let end = sign + s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if end == sign {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// "65024kB" → 65024; `None` when the unit is missing (cut-off line) or the
/// value is beyond [`MAX_PLAUSIBLE_KB`] (not guessed either).
fn parse_kb(s: &str) -> Option<u64> {
    s.strip_suffix("kB")?
        .parse()
        .ok()
        .filter(|&kb| kb <= MAX_PLAUSIBLE_KB)
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

fn parse_header(t: &str) -> Option<Option<InvokedHeader>> {
    const MARK: &str = " invoked oom-killer:";
    let idx = t.find(MARK)?;
    let comm = t[..idx].to_string();
    let params = &t[idx + MARK.len()..];
    let mut gfp = None;
    let mut gfp_flags = None;
    let mut order = None;
    let mut oom_score_adj = None;
    let mut oom_adj = None;
    for part in params.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "gfp_mask" => {
                let (hex, flags) = match value.split_once('(') {
                    Some((hex, rest)) => (hex, rest.strip_suffix(')')),
                    None => (value, None),
                };
                let hex = hex.strip_prefix("0x").unwrap_or(hex);
                gfp = u64::from_str_radix(hex, 16).ok();
                gfp_flags = flags.map(str::to_string);
            }
            "order" => order = value.parse().ok(),
            "oom_score_adj" => oom_score_adj = value.parse().ok(),
            "oom_adj" => oom_adj = value.parse().ok(),
            _ => {}
        }
    }
    // A header cut off before gfp_mask/order still starts a report, but we do
    // not invent the missing values.
    let header = match (gfp, order) {
        (Some(gfp_mask), Some(order)) => Some(InvokedHeader {
            comm,
            gfp_mask,
            gfp_flags,
            order,
            oom_score_adj,
            oom_adj,
        }),
        _ => None,
    };
    Some(header)
}

/// A kill line without its source line.
struct KillFields {
    memcg_oom: bool,
    pid: u32,
    comm: String,
    uid: Option<u32>,
    total_vm_kb: Option<u64>,
    anon_rss_kb: Option<u64>,
    file_rss_kb: Option<u64>,
    shmem_rss_kb: Option<u64>,
    pgtables_kb: Option<u64>,
    oom_score_adj: Option<i32>,
}

impl KillFields {
    fn into_kill(self, source: SourceLine) -> KillLine {
        KillLine {
            memcg_oom: self.memcg_oom,
            pid: self.pid,
            comm: self.comm,
            uid: self.uid,
            total_vm_kb: self.total_vm_kb,
            anon_rss_kb: self.anon_rss_kb,
            file_rss_kb: self.file_rss_kb,
            shmem_rss_kb: self.shmem_rss_kb,
            pgtables_kb: self.pgtables_kb,
            oom_score_adj: self.oom_score_adj,
            source,
        }
    }
}

/// "Memory cgroup out of memory: Killed process 1 (x) total-vm:..kB, ..., UID:0 pgtables:..kB oom_score_adj:0",
/// "Out of memory: Killed process ...", "Killed process 1 (x) total-vm:...",
/// and 2.6.32's "Killed process 16944, UID 0, (mingetty) total-vm:4064kB, ...".
fn parse_kill(t: &str) -> Option<KillFields> {
    const MARK: &str = "Killed process ";
    let (prefix, rest) = match t.strip_prefix(MARK) {
        Some(rest) => ("", rest),
        None => {
            let idx = t.find(": Killed process ")?;
            (&t[..idx], &t[idx + 2 + MARK.len()..])
        }
    };
    let (pid, mut rest) = split_num::<u32>(rest)?;
    let mut uid = None;
    if let Some(r) = rest.strip_prefix(", UID ") {
        let (u, r) = split_num::<u32>(r)?;
        uid = Some(u);
        rest = r.strip_prefix(',')?;
    }
    let rest = rest.strip_prefix(" (")?;
    let (comm, tail) = match rest.rfind(") total-vm:") {
        Some(j) => (&rest[..j], &rest[j + 1..]),
        None => match rest.rfind(')') {
            Some(j) => (&rest[..j], &rest[j + 1..]),
            None => (rest, ""),
        },
    };
    let mut k = KillFields {
        memcg_oom: prefix.starts_with("Memory cgroup out of memory"),
        pid,
        comm: comm.to_string(),
        uid,
        total_vm_kb: None,
        anon_rss_kb: None,
        file_rss_kb: None,
        shmem_rss_kb: None,
        pgtables_kb: None,
        oom_score_adj: None,
    };
    for tok in tail.split([' ', ',']).filter(|s| !s.is_empty()) {
        let Some((key, value)) = tok.split_once(':') else {
            continue;
        };
        match key {
            "total-vm" => k.total_vm_kb = parse_kb(value),
            "anon-rss" => k.anon_rss_kb = parse_kb(value),
            "file-rss" => k.file_rss_kb = parse_kb(value),
            "shmem-rss" => k.shmem_rss_kb = parse_kb(value),
            "pgtables" => k.pgtables_kb = parse_kb(value),
            "UID" => k.uid = k.uid.or(value.parse().ok()),
            "oom_score_adj" => k.oom_score_adj = value.parse().ok(),
            _ => {}
        }
    }
    Some(k)
}

struct ReapedFields {
    pid: u32,
    comm: String,
    anon_rss_kb: u64,
    file_rss_kb: u64,
    shmem_rss_kb: u64,
}

fn parse_reaped(t: &str) -> Option<ReapedFields> {
    let rest = t.strip_prefix("oom_reaper: reaped process ")?;
    let (pid, rest) = split_num::<u32>(rest)?;
    let rest = rest.strip_prefix(" (")?;
    let j = rest.rfind("), now ")?;
    let comm = rest[..j].to_string();
    let (mut anon, mut file, mut shmem) = (None, None, None);
    for tok in rest[j + 7..].split([' ', ',']).filter(|s| !s.is_empty()) {
        match tok.split_once(':') {
            Some(("anon-rss", v)) => anon = parse_kb(v),
            Some(("file-rss", v)) => file = parse_kb(v),
            Some(("shmem-rss", v)) => shmem = parse_kb(v),
            _ => {}
        }
    }
    Some(ReapedFields {
        pid,
        comm,
        anon_rss_kb: anon?,
        file_rss_kb: file?,
        shmem_rss_kb: shmem?,
    })
}

/// "CPU: 1 UID: 0 PID: 12621 Comm: python3 Not tainted 6.18.44-fc-v669 #1 ..."
/// (UID since 6.11; "Kdump: loaded" and "Tainted: G   W  O" variants), and the
/// 2.6.32 "Pid: 1, comm: init Not tainted 2.6.32-431.el6.x86_64 #1" (release only).
fn parse_cpu_line(t: &str) -> Option<(Option<TriggerCpuLine>, Option<String>)> {
    if let Some(rest) = t.strip_prefix("Pid: ") {
        let (_, rest) = split_num::<u32>(rest)?;
        let rest = rest.strip_prefix(", comm: ")?;
        let (_, release) = split_taint(rest);
        return Some((None, release));
    }
    let rest = t.strip_prefix("CPU: ")?;
    let (cpu, rest) = split_num::<u32>(rest)?;
    let mut rest = rest.trim_start();
    let mut uid = None;
    if let Some(r) = rest.strip_prefix("UID: ") {
        let (u, r) = split_num::<u32>(r)?;
        uid = Some(u);
        rest = r.trim_start();
    }
    let rest = rest.strip_prefix("PID: ")?;
    let (pid, rest) = split_num::<u32>(rest)?;
    let rest = rest.trim_start().strip_prefix("Comm: ")?;
    let (comm, release) = split_taint(rest);
    Some((
        Some(TriggerCpuLine {
            cpu,
            uid,
            pid,
            comm: comm.to_string(),
        }),
        release,
    ))
}

/// Splits "comm [Kdump: loaded ]Not tainted REL #..." / "comm Tainted: G  W  REL #...".
fn split_taint(rest: &str) -> (&str, Option<String>) {
    let not = rest.find(" Not tainted");
    let tainted = rest.find(" Tainted: ");
    let cut = match (not, tainted) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return (rest.trim_end(), None),
    };
    let comm = rest[..cut]
        .strip_suffix(" Kdump: loaded")
        .unwrap_or(&rest[..cut]);
    let after = &rest[cut..];
    let release = if let Some(a) = after.strip_prefix(" Not tainted") {
        a.split_whitespace()
            .next()
            .filter(|r| !r.starts_with('#'))
            .map(str::to_string)
    } else {
        // Taint flags are single characters padded with spaces; the release is
        // the word before the "#N" build number.
        let words: Vec<&str> = after[" Tainted: ".len()..].split_whitespace().collect();
        words
            .iter()
            .position(|w| w.starts_with('#'))
            .filter(|&i| i > 0)
            .map(|i| words[i - 1].to_string())
    };
    (comm, release)
}

/// "memory: usage 65536kB, limit 65536kB, failcnt 3374"
fn parse_counter(t: &str) -> Option<CounterLine> {
    let (name, rest) = t.split_once(": usage ")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'+') {
        return None;
    }
    let (usage, rest) = rest.split_once("kB, limit ")?;
    let (limit, failcnt) = rest.split_once("kB, failcnt ")?;
    Some(CounterLine {
        name: name.to_string(),
        usage_kb: usage.parse().ok()?,
        limit_kb: limit.parse().ok()?,
        failcnt: failcnt.trim_end().parse().ok()?,
    })
}

/// After "Memory cgroup stats for ": "/path:" (a key/value block follows), or the
/// one-line 4.4 form "/path: cache:96KB rss:262048KB ...".
fn parse_stats_for(rest: &str) -> Line {
    let rest = rest.trim_end();
    if let Some((path, items)) = rest.split_once(": ") {
        let tokens: Vec<&str> = items.split_whitespace().collect();
        let mut stats = Vec::new();
        for (i, tok) in tokens.iter().enumerate() {
            let Some((key, value)) = tok.split_once(':') else {
                continue;
            };
            let parsed = match value.strip_suffix("KB") {
                Some(kb) => kb.parse::<u64>().ok().and_then(|v| v.checked_mul(1024)),
                // Every item of this form ends in "KB": a last item without it
                // was cut off (journal line limit).
                None if i + 1 == tokens.len() => None,
                None => value.parse().ok(),
            };
            if let Some(v) = parsed.filter(|&v| stat_is_plausible(key, v)) {
                stats.push((key.to_string(), v));
            }
        }
        return Line::StatsFor(path.to_string(), Some(stats));
    }
    match rest.strip_suffix(':') {
        Some(path) => Line::StatsFor(path.to_string(), None),
        // Cut off inside the path: keep what there is, expect no block.
        None => Line::StatsFor(rest.to_string(), Some(Vec::new())),
    }
}

/// "rss 66703360" inside the stats block.
fn parse_stat_kv(text: &str) -> Option<(String, u64)> {
    let (key, value) = text.trim().split_once(' ')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((key.to_string(), value.parse().ok()?))
}

/// A memcg stat within what a kernel prints: an unlimited v1
/// `hierarchical_memsw_limit` is `PAGE_COUNTER_MAX` pages in bytes, just
/// under 2^63; every other stat is a size or a count, at most 64 PiB.
fn stat_is_plausible(key: &str, value: u64) -> bool {
    if key.contains("limit") {
        value <= 1 << 63
    } else {
        value <= MAX_PLAUSIBLE_BYTES
    }
}

/// "[  pid  ]   uid  tgid total_vm      rss ... name" → ["pid", "uid", ..., "name"].
fn parse_columns(t: &str) -> Option<Vec<String>> {
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
    let mut row = TaskRow {
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
    };
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

/// "…" / "..." rows marking an elided excerpt.
fn is_elision(text: &str) -> bool {
    let t = text.trim();
    (t.contains('…') || t.contains("..."))
        && t.chars().all(|c| matches!(c, '.' | '…' | '[' | ']' | ' '))
}

/// "oom-kill:constraint=...,nodemask=...,cpuset=...,mems_allowed=...,oom_memcg=...|global_oom,task_memcg=...,task=...,pid=...,uid=..."
///
/// The trailing keys are taken from the right so that commas inside
/// `mems_allowed` ("0-1,3") or paths do not shift the fields.
fn parse_constraint(t: &str) -> Option<ConstraintLine> {
    let body = t.strip_prefix("oom-kill:constraint=")?;
    let constraint = body.split(',').next().unwrap_or_default().to_string();
    let mut rest = body;
    let mut take = |key: &str| -> Option<String> {
        let i = rest.rfind(key)?;
        let v = rest[i + key.len()..].to_string();
        rest = &rest[..i];
        Some(v)
    };
    let uid = take(",uid=").and_then(|v| v.trim_end().parse().ok());
    let pid = take(",pid=").and_then(|v| v.parse().ok());
    let task = take(",task=");
    let task_memcg = take(",task_memcg=");
    let oom_memcg = take(",oom_memcg=");
    let cpuset = rest.find(",cpuset=").map(|i| {
        let v = &rest[i + ",cpuset=".len()..];
        v.find(",mems_allowed=").map_or(v, |j| &v[..j]).to_string()
    });
    Some(ConstraintLine {
        constraint,
        oom_memcg,
        task_memcg,
        task,
        pid,
        uid,
        cpuset,
    })
}

/// "Memory cgroup out of memory: Kill process 26675 (java) score 988 or sacrifice child"
fn parse_selected(t: &str) -> Option<(u32, String, i64, bool)> {
    let idx = t
        .find("Kill process ")
        .or_else(|| t.find("kill process "))?;
    if idx != 0 && !t[..idx].ends_with(": ") {
        return None;
    }
    let rest = &t[idx + "Kill process ".len()..];
    let (pid, rest) = split_num::<u32>(rest)?;
    let rest = rest.strip_prefix(" (")?;
    let j = rest.rfind(") score ")?;
    let comm = rest[..j].to_string();
    let (score, after) = split_signed::<i64>(&rest[j + ") score ".len()..])?;
    Some((pid, comm, score, after.contains("sacrifice child")))
}

/// "Total swap = 0kB" / "Free swap  = 0kB".
fn parse_swap_total(t: &str, key: &str) -> Option<u64> {
    let rest = t.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    parse_kb(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/kernel-reports"
    );

    fn raw(name: &str) -> String {
        let path = format!("{FIXTURES}/{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse(name: &str) -> Vec<ReportItem> {
        parse_log(raw(name).as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn reports(items: &[ReportItem]) -> Vec<&KernelReport> {
        items
            .iter()
            .filter_map(|i| match i {
                ReportItem::Report(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn loose_kills(items: &[ReportItem]) -> Vec<&KillLine> {
        items
            .iter()
            .filter_map(|i| match i {
                ReportItem::Kill(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    /// Every kill line the parser produced, in input order.
    fn all_kills(items: &[ReportItem]) -> Vec<&KillLine> {
        items
            .iter()
            .filter_map(|i| match i {
                ReportItem::Report(r) => r.kill.as_ref(),
                ReportItem::Kill(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    fn only_report(items: &[ReportItem]) -> &KernelReport {
        let r = reports(items);
        assert_eq!(r.len(), 1, "expected exactly one report");
        r[0]
    }

    /// Independent scan: (pid, comm) of every "Killed process" line, by plain
    /// string splitting.
    fn scan_killed(text: &str) -> Vec<(u32, String)> {
        text.lines()
            .filter_map(|l| l.split_once("Killed process "))
            .map(|(_, rest)| {
                let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let open = rest.find('(').unwrap();
                let close = rest[open..].find(')').unwrap() + open;
                (pid.parse().unwrap(), rest[open + 1..close].to_string())
            })
            .collect()
    }

    fn count(text: &str, needle: &str) -> usize {
        text.lines().filter(|l| l.contains(needle)).count()
    }

    fn word_after<'a>(text: &'a str, key: &str) -> &'a str {
        let i = text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
        text[i + key.len()..]
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap()
    }

    /// The value a row holds for a column, rendered like the kernel prints it.
    fn row_value(row: &TaskRow, col: &str) -> String {
        let o = |v: Option<u64>| v.expect(col).to_string();
        match col {
            "pid" => row.pid.to_string(),
            "uid" => row.uid.to_string(),
            "tgid" => row.tgid.to_string(),
            "total_vm" => row.total_vm_pages.to_string(),
            "rss" => row.rss_pages.to_string(),
            "rss_anon" => o(row.rss_anon_pages),
            "rss_file" => o(row.rss_file_pages),
            "rss_shmem" => o(row.rss_shmem_pages),
            "pgtables_bytes" => o(row.pgtables_bytes),
            "nr_ptes" => o(row.nr_ptes),
            "nr_pmds" => o(row.nr_pmds),
            "swapents" => o(row.swapents),
            "oom_score_adj" => row.oom_score_adj.to_string(),
            "oom_adj" => row.oom_adj.expect(col).to_string(),
            "cpu" => row.cpu.expect(col).to_string(),
            "name" => row.name.clone(),
            other => panic!("unexpected column {other}"),
        }
    }

    /// Checks that hold for every fixture; returns the items.
    fn check_fixture(name: &str) -> Vec<ReportItem> {
        let text = raw(name);
        let items = parse(name);
        let reps = reports(&items);

        // One report per header line (plus a headerless one only if the input
        // starts mid-report).
        let headers = count(&text, " invoked oom-killer: ");
        assert_eq!(
            reps.iter().filter(|r| r.header.is_some()).count(),
            headers,
            "{name}: headers"
        );

        // Every kill line, in order, matches an independent scan of the text.
        let kills: Vec<(u32, String)> = all_kills(&items)
            .iter()
            .map(|k| (k.pid, k.comm.clone()))
            .collect();
        assert_eq!(kills, scan_killed(&text), "{name}: kill lines");

        // Each kill's source line is the line it says it is.
        let lines: Vec<&str> = text.lines().collect();
        for k in all_kills(&items) {
            assert!(lines[k.source.line_no - 1].ends_with(&k.source.text));
        }

        for r in &reps {
            assert!(!r.lines.is_empty());
            assert!(!r.interleaved, "{name}: a real report is not interleaved");
            assert!(r.lines.windows(2).all(|w| w[0].line_no < w[1].line_no));
            // A report ends with its kill or the no-killable line, else it is incomplete.
            assert_eq!(
                r.complete,
                r.kill.is_some() || r.no_killable,
                "{name}: complete flag"
            );
            if let Some(k) = &r.kill {
                assert_eq!(r.lines.last(), Some(&k.source));
            }
            if let Some(h) = &r.header {
                let hl = &r.lines[0].text;
                assert!(hl.starts_with(&format!("{} invoked oom-killer", h.comm)));
                let mask = word_after(hl, "gfp_mask=0x");
                let mask = mask.split('(').next().unwrap();
                assert_eq!(format!("{:x}", h.gfp_mask), mask);
                assert_eq!(h.order.to_string(), word_after(hl, "order="));
            }
            if let (Some(t), Some(h)) = (&r.trigger, &r.header) {
                assert_eq!(t.comm, h.comm, "{name}: trigger comm");
            }

            // Counters: every "X: usage" line of the report, parsed back.
            let counter_lines: Vec<&SourceLine> = r
                .lines
                .iter()
                .filter(|l| l.text.contains(": usage ") && l.text.contains(", failcnt "))
                .collect();
            assert_eq!(counter_lines.len(), r.counters.len(), "{name}: counters");
            for (l, c) in counter_lines.iter().zip(&r.counters) {
                assert!(l.text.starts_with(&format!("{}: ", c.name)));
                assert_eq!(word_after(&l.text, "usage "), format!("{}kB", c.usage_kb));
                assert_eq!(word_after(&l.text, "limit "), format!("{}kB", c.limit_kb));
                assert_eq!(word_after(&l.text, "failcnt "), c.failcnt.to_string());
            }

            // Multi-line memcg stats: one pair per line between the stats
            // header and the task table.
            if let Some(path) = &r.memcg_stats_for {
                let start = r
                    .lines
                    .iter()
                    .position(|l| l.text == format!("Memory cgroup stats for {path}:"));
                if let Some(start) = start {
                    let block: Vec<&SourceLine> = r.lines[start + 1..]
                        .iter()
                        .take_while(|l| !l.text.starts_with("Tasks state"))
                        .collect();
                    assert_eq!(block.len(), r.memcg_stats.len(), "{name}: stats");
                    for (l, (k, v)) in block.iter().zip(&r.memcg_stats) {
                        assert_eq!(l.text, format!("{k} {v}"));
                    }
                }
            }

            // Task table: rows round-trip to their lines, by column name.
            if let Some(t) = &r.tasks {
                let row_lines: Vec<&SourceLine> = r
                    .lines
                    .iter()
                    .filter(|l| {
                        l.text.starts_with('[')
                            && l.text[1..]
                                .trim_start()
                                .starts_with(|c: char| c.is_ascii_digit())
                    })
                    .collect();
                assert_eq!(row_lines.len(), t.rows.len(), "{name}: row count");
                assert!(!t.rows.is_empty());
                for (l, row) in row_lines.iter().zip(&t.rows) {
                    let printed: Vec<&str> = l
                        .text
                        .split(|c: char| c == '[' || c == ']' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .collect();
                    let ours: Vec<String> = t.columns.iter().map(|c| row_value(row, c)).collect();
                    assert_eq!(printed, ours, "{name}: row {}", l.text);
                }
            }

            // The victim's row matches its Killed line.
            if let (Some(k), Some(row)) = (&r.kill, r.victim_row()) {
                assert_eq!(k.comm, row.name);
                assert_eq!(
                    k.total_vm_kb,
                    Some(row.total_vm_pages * 4),
                    "{name}: total-vm"
                );
                let rss_kb =
                    k.anon_rss_kb.unwrap() + k.file_rss_kb.unwrap() + k.shmem_rss_kb.unwrap_or(0);
                if name == "6.1.0-50-amd64-e-v1-adj-minus1000.log" {
                    // The victim's rss grew by 66 pages between the table and the
                    // kill line (both numbers as printed in the fixture).
                    assert_eq!((rss_kb, row.rss_pages * 4), (21172, 20908));
                } else {
                    assert_eq!(rss_kb, row.rss_pages * 4, "{name}: rss");
                }
                if let Some(anon) = row.rss_anon_pages {
                    assert_eq!(k.anon_rss_kb, Some(anon * 4));
                    assert_eq!(k.file_rss_kb, Some(row.rss_file_pages.unwrap() * 4));
                    assert_eq!(k.shmem_rss_kb, Some(row.rss_shmem_pages.unwrap() * 4));
                }
                if let Some(pgt) = row.pgtables_bytes {
                    assert_eq!(k.pgtables_kb, Some(pgt / 1024), "{name}: pgtables");
                }
                if let Some(adj) = k.oom_score_adj {
                    assert_eq!(adj, row.oom_score_adj);
                }
                if let Some(uid) = k.uid {
                    assert_eq!(uid, row.uid);
                }
            }

            // The summary names the victim (5.x+; the selected task is the victim there).
            if let (Some(c), Some(k)) = (&r.constraint, &r.kill) {
                assert_eq!(c.pid, Some(k.pid), "{name}: constraint pid");
                assert_eq!(c.task.as_deref(), Some(k.comm.as_str()));
                assert_eq!(c.uid, k.uid);
                let line = r
                    .lines
                    .iter()
                    .find(|l| l.text.starts_with("oom-kill:"))
                    .unwrap();
                assert_eq!(c.constraint, word_after(&line.text, "constraint="));
                if line.text.contains(",global_oom,") {
                    assert_eq!(c.oom_memcg, None);
                } else {
                    assert_eq!(
                        c.oom_memcg.as_deref(),
                        Some(word_after(&line.text, "oom_memcg="))
                    );
                }
                assert_eq!(
                    c.task_memcg.as_deref(),
                    Some(word_after(&line.text, "task_memcg="))
                );
                assert_eq!(k.memcg_oom, c.constraint == "CONSTRAINT_MEMCG");
            }
        }
        items
    }

    /// Per fixture, from INDEX.md (checked against the files with grep):
    /// (file, OOM invocations, "Killed process" lines, first victims).
    type Expected = (&'static str, usize, usize, &'static [(u32, &'static str)]);
    const DEBIAN: &[Expected] = &[
        (
            "5.10.0-32-amd64-a-v1-single-hog.log",
            1,
            1,
            &[(83, "hog64")],
        ),
        (
            "5.10.0-32-amd64-a-v2-single-hog.log",
            1,
            1,
            &[(81, "hog64")],
        ),
        (
            "5.10.0-32-amd64-b-v1-hierarchy.log",
            1,
            1,
            &[(84, "hierhog")],
        ),
        (
            "5.10.0-32-amd64-b-v2-hierarchy.log",
            1,
            1,
            &[(82, "hierhog")],
        ),
        (
            "5.10.0-32-amd64-c-v1-many-procs-adj500-vs-grower.log",
            2,
            2,
            &[(238, "adj500"), (240, "grower")],
        ),
        (
            "5.10.0-32-amd64-c-v1-many-procs.log",
            10,
            65,
            &[(85, "adj500"), (178, "many-kid"), (180, "many-kid")],
        ),
        (
            "5.10.0-32-amd64-c-v2-many-procs.log",
            10,
            65,
            &[(81, "adj500"), (176, "many-kid"), (178, "many-kid")],
        ),
        (
            "5.10.0-32-amd64-e-v2-adj-minus1000.log",
            1,
            1,
            &[(82, "normal")],
        ),
        ("5.10.0-32-amd64-e-v2-only-unkillable.log", 272, 0, &[]),
        ("5.10.0-32-amd64-f-global.log", 1, 1, &[(81, "globalhog")]),
        ("6.1.0-50-amd64-a-v1-single-hog.log", 1, 1, &[(95, "hog64")]),
        ("6.1.0-50-amd64-a-v2-single-hog.log", 1, 1, &[(94, "hog64")]),
        (
            "6.1.0-50-amd64-b-v2-hierarchy.log",
            1,
            1,
            &[(95, "hierhog")],
        ),
        (
            "6.1.0-50-amd64-c-v1-many-procs-adj500-vs-grower.log",
            2,
            2,
            &[(251, "adj500"), (253, "grower")],
        ),
        (
            "6.1.0-50-amd64-c-v1-many-procs.log",
            10,
            65,
            &[(96, "adj500"), (191, "many-kid"), (192, "many-kid")],
        ),
        (
            "6.1.0-50-amd64-c-v2-many-procs-adj500-vs-grower.log",
            2,
            2,
            &[(249, "adj500"), (251, "grower")],
        ),
        (
            "6.1.0-50-amd64-c-v2-many-procs.log",
            10,
            66,
            &[(94, "adj500"), (181, "many-kid"), (189, "many-kid")],
        ),
        (
            "6.1.0-50-amd64-d-v2-oom-group.log",
            1,
            4,
            &[(96, "grpC"), (93, "grpA"), (94, "grpB"), (96, "grpC")],
        ),
        (
            "6.1.0-50-amd64-e-v1-adj-minus1000.log",
            1,
            1,
            &[(96, "normal")],
        ),
        ("6.1.0-50-amd64-e-v1-only-unkillable.log", 2, 0, &[]),
        (
            "6.1.0-50-amd64-e-v2-adj-minus1000.log",
            1,
            1,
            &[(93, "normal")],
        ),
        ("6.1.0-50-amd64-e-v2-only-unkillable.log", 2, 0, &[]),
        (
            "6.1.0-50-amd64-g-v1-oom-control-disabled.log",
            1,
            1,
            &[(96, "stuckhog")],
        ),
        (
            "6.12.100+deb12-amd64-a-v2-single-hog.log",
            1,
            1,
            &[(141, "hog64")],
        ),
        (
            "6.12.100+deb12-amd64-b-v2-hierarchy.log",
            1,
            1,
            &[(147, "hierhog")],
        ),
        (
            "6.12.100+deb12-amd64-c-v2-many-procs-adj500-vs-grower.log",
            2,
            2,
            &[(297, "adj500"), (299, "grower")],
        ),
        (
            "6.12.100+deb12-amd64-c-v2-many-procs.log",
            10,
            66,
            &[(140, "adj500"), (227, "many-kid"), (190, "many-kid")],
        ),
        (
            "6.12.100+deb12-amd64-d-v2-oom-group.log",
            1,
            4,
            &[(148, "grpC"), (145, "grpA"), (146, "grpB"), (148, "grpC")],
        ),
        (
            "6.12.100+deb12-amd64-e-v2-adj-minus1000.log",
            1,
            1,
            &[(145, "normal")],
        ),
        ("6.12.100+deb12-amd64-e-v2-only-unkillable.log", 2, 0, &[]),
        (
            "6.12.100+deb12-amd64-f-global.log",
            1,
            1,
            &[(141, "globalhog")],
        ),
        ("6.18-a-single-hog-v1.log", 1, 1, &[(12621, "python3")]),
        ("6.18-b-parent-limit-v1.log", 1, 1, &[(12668, "python3")]),
        ("6.18-g-oom-disabled-v1.log", 1, 1, &[(12729, "python3")]),
    ];

    #[test]
    fn every_fixture_is_listed() {
        let mut on_disk: Vec<String> = std::fs::read_dir(FIXTURES)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".log") && !n.starts_with("seed-"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = DEBIAN.iter().map(|d| d.0.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn fixture_counts_and_victims() {
        for &(name, invocations, kill_lines, victims) in DEBIAN {
            let text = raw(name);
            assert_eq!(count(&text, "invoked oom-killer"), invocations, "{name}");
            assert_eq!(count(&text, "Killed process"), kill_lines, "{name}");

            let items = check_fixture(name);
            let reps = reports(&items);
            assert_eq!(reps.len(), invocations, "{name}: reports");
            assert!(reps.iter().all(|r| r.complete && r.header.is_some()));
            assert!(
                reps.iter()
                    .all(|r| (r.tasks.is_some() && r.constraint.is_some()) || r.no_killable)
            );
            let kills = all_kills(&items);
            assert_eq!(kills.len(), kill_lines, "{name}: kills");
            assert_eq!(
                loose_kills(&items).len(),
                kill_lines - reps.iter().filter(|r| r.kill.is_some()).count()
            );
            for (k, (pid, comm)) in kills.iter().zip(victims.iter()) {
                assert_eq!((k.pid, k.comm.as_str()), (*pid, *comm), "{name}");
            }
            // Each kernel's CPU line names its release.
            let release = reps[0].kernel_release.as_deref().unwrap();
            assert!(
                name.starts_with(release) || release.starts_with(&name[..4]),
                "{name}: {release}"
            );
            assert!(reps.iter().all(|r| r.trigger.is_some()));
        }
    }

    #[test]
    fn single_hog_6_18_v1() {
        let name = "6.18-a-single-hog-v1.log";
        let text = raw(name);
        let items = check_fixture(name);
        assert_eq!(items.len(), 1);
        let r = only_report(&items);
        let h = r.header.as_ref().unwrap();
        assert_eq!(h.comm, "python3");
        assert_eq!(h.gfp_mask, 0xcc0);
        assert_eq!(h.gfp_flags.as_deref(), Some("GFP_KERNEL"));
        assert_eq!((h.order, h.oom_score_adj, h.oom_adj), (0, Some(0), None));
        let t = r.trigger.as_ref().unwrap();
        assert_eq!(
            (t.cpu, t.uid, t.pid, t.comm.as_str()),
            (1, Some(0), 12621, "python3")
        );
        assert_eq!(r.kernel_release.as_deref(), Some("6.18.44-fc-v669"));
        let names: Vec<&str> = r.counters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["memory", "memory+swap", "kmem"]);
        let mem = r.counter("memory").unwrap();
        assert_eq!(
            (mem.usage_kb, mem.limit_kb, mem.failcnt),
            (65536, 65536, 3374)
        );
        assert_eq!(r.memcg_stats_for.as_deref(), Some("/fix-a"));
        let rss_line = text.lines().find(|l| l.ends_with("] rss 66703360"));
        assert!(rss_line.is_some());
        assert_eq!(r.memcg_stat("rss"), Some(66703360));
        assert_eq!(r.memcg_stat("total_unevictable"), Some(0));
        let c = r.constraint.as_ref().unwrap();
        assert_eq!(c.constraint, "CONSTRAINT_MEMCG");
        assert_eq!(c.cpuset.as_deref(), Some("/"));
        let k = r.kill.as_ref().unwrap();
        assert!(k.memcg_oom);
        assert_eq!((k.anon_rss_kb, k.pgtables_kb), (Some(65024), Some(192)));
        let row = r.victim_row().unwrap();
        assert_eq!(row.rss_pages, 16820);
        assert_eq!(row.pgtables_bytes, Some(196608));
        assert_eq!(r.global_mem, None);
        // Header and kill line carry the dmesg time stamps.
        assert_eq!(r.lines[0].timestamp, Some(1534.287964));
        assert_eq!(k.source.timestamp, Some(1534.288352));
        assert_eq!(r.lines[0].line_no, 1);
        assert_eq!(r.lines.len(), text.lines().count());
    }

    #[test]
    fn hierarchy_oom_memcg_vs_task_memcg() {
        for (name, oom, task) in [
            (
                "5.10.0-32-amd64-b-v1-hierarchy.log",
                "/parent",
                "/parent/child",
            ),
            (
                "5.10.0-32-amd64-b-v2-hierarchy.log",
                "/parent",
                "/parent/child",
            ),
            (
                "6.1.0-50-amd64-b-v2-hierarchy.log",
                "/parent",
                "/parent/child",
            ),
            (
                "6.12.100+deb12-amd64-b-v2-hierarchy.log",
                "/parent",
                "/parent/child",
            ),
            ("6.18-b-parent-limit-v1.log", "/fix-b", "/fix-b/child"),
        ] {
            let items = check_fixture(name);
            let r = only_report(&items);
            let c = r.constraint.as_ref().unwrap();
            assert_eq!(c.oom_memcg.as_deref(), Some(oom), "{name}");
            assert_eq!(c.task_memcg.as_deref(), Some(task), "{name}");
            assert_eq!(r.memcg_stats_for.as_deref(), Some(oom), "{name}");
        }
        // 5.10 v1: the OOM fired while usage was below the limit.
        let items = parse("5.10.0-32-amd64-b-v1-hierarchy.log");
        let mem = only_report(&items).counter("memory").unwrap().clone();
        assert_eq!((mem.usage_kb, mem.limit_kb), (49032, 49152));
        assert!(mem.usage_kb < mem.limit_kb);
    }

    #[test]
    fn v1_counters_memsw_and_kmem_v2_swap() {
        let items = parse("6.1.0-50-amd64-a-v1-single-hog.log");
        let r = only_report(&items);
        assert!(r.counter("swap").is_none());
        assert_eq!(r.counter("memory+swap").unwrap().limit_kb, 9007199254740988);
        assert_eq!(r.counter("kmem").unwrap().limit_kb, 9007199254740988);
        let items = parse("6.1.0-50-amd64-a-v2-single-hog.log");
        let r = only_report(&items);
        let names: Vec<&str> = r.counters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["memory", "swap"]);
        assert_eq!(r.counter("memory").unwrap().limit_kb, 65536);
    }

    #[test]
    fn columns_by_kernel() {
        let cols = |name: &str| {
            let items = parse(name);
            reports(&items)[0].tasks.as_ref().unwrap().columns.join(" ")
        };
        assert_eq!(
            cols("5.10.0-32-amd64-a-v2-single-hog.log"),
            "pid uid tgid total_vm rss pgtables_bytes swapents oom_score_adj name"
        );
        assert_eq!(
            cols("6.12.100+deb12-amd64-a-v2-single-hog.log"),
            "pid uid tgid total_vm rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
        );
        let items = parse("5.10.0-32-amd64-a-v2-single-hog.log");
        let row = only_report(&items).victim_row().unwrap().clone();
        assert_eq!(row.rss_anon_pages, None);
        assert!(row.pgtables_bytes.is_some() && row.swapents.is_some());
        assert_eq!((row.nr_ptes, row.cpu, row.oom_adj), (None, None, None));
    }

    #[test]
    fn many_procs_storm() {
        let name = "5.10.0-32-amd64-c-v2-many-procs.log";
        let text = raw(name);
        let items = check_fixture(name);
        let reps = reports(&items);
        assert_eq!(reps.len(), 10);
        assert!(reps.iter().all(|r| r.kill.is_some()));
        // The rest of the kill lines come without a report.
        assert_eq!(
            loose_kills(&items).len(),
            count(&text, "Killed process") - 10
        );
        // First victim: the adj500 process, whose row says so.
        let first = reps[0];
        let row = first.victim_row().unwrap();
        assert_eq!((row.name.as_str(), row.oom_score_adj), ("adj500", 500));
        assert_eq!(first.kill.as_ref().unwrap().oom_score_adj, Some(500));
        // Rows in the first table: one per "[  pid]" line between its header and summary.
        let start = text
            .lines()
            .position(|l| l.contains("invoked oom-killer"))
            .unwrap();
        let n_rows = text
            .lines()
            .skip(start)
            .take_while(|l| !l.contains("oom-kill:constraint"))
            .filter(|l| l.contains("] [ ") && !l.contains(" pid "))
            .count();
        assert_eq!(first.tasks.as_ref().unwrap().rows.len(), n_rows);
        assert!(n_rows > 80);
        // Order: items come out in input order.
        let mut last = 0;
        for it in &items {
            let line = match it {
                ReportItem::Report(r) => r.lines[0].line_no,
                ReportItem::Kill(k) => k.source.line_no,
                _ => unreachable!(),
            };
            assert!(line > last);
            last = line;
        }
    }

    #[test]
    fn oom_group_sweep() {
        for name in [
            "6.1.0-50-amd64-d-v2-oom-group.log",
            "6.12.100+deb12-amd64-d-v2-oom-group.log",
        ] {
            let text = raw(name);
            let items = check_fixture(name);
            assert_eq!(items.len(), 5, "{name}");
            let ReportItem::Report(r) = &items[0] else {
                panic!("{name}: first item is not a report")
            };
            let victim = r.kill.as_ref().unwrap();
            assert_eq!(victim.comm, "grpC");
            let ReportItem::OomGroup { memcg, line } = &items[1] else {
                panic!("{name}: no oom.group line")
            };
            assert_eq!(memcg, "/grp");
            assert!(
                text.lines()
                    .nth(line.line_no - 1)
                    .unwrap()
                    .contains("memory.oom.group")
            );
            let swept: Vec<(u32, &str)> = items[2..]
                .iter()
                .map(|i| match i {
                    ReportItem::Kill(k) => (k.pid, k.comm.as_str()),
                    other => panic!("{name}: {other:?}"),
                })
                .collect();
            // The victim is killed a second time by the sweep.
            assert_eq!(swept.len(), 3);
            assert!(swept.contains(&(victim.pid, "grpC")));
            // Every swept task was in the report's table, with matching sizes.
            for i in &items[2..] {
                let ReportItem::Kill(k) = i else {
                    unreachable!()
                };
                let row = r
                    .tasks
                    .as_ref()
                    .unwrap()
                    .rows
                    .iter()
                    .find(|r| r.pid == k.pid)
                    .unwrap();
                let rss_kb =
                    k.anon_rss_kb.unwrap() + k.file_rss_kb.unwrap() + k.shmem_rss_kb.unwrap();
                assert_eq!(rss_kb, row.rss_pages * 4, "{name}: {}", k.comm);
                if let Some(anon) = row.rss_anon_pages {
                    assert_eq!(k.anon_rss_kb, Some(anon * 4));
                }
                assert_eq!(k.pgtables_kb, Some(row.pgtables_bytes.unwrap() / 1024));
            }
        }
    }

    #[test]
    fn only_unkillable_ends_without_kill() {
        for name in [
            "5.10.0-32-amd64-e-v2-only-unkillable.log",
            "6.1.0-50-amd64-e-v1-only-unkillable.log",
            "6.1.0-50-amd64-e-v2-only-unkillable.log",
            "6.12.100+deb12-amd64-e-v2-only-unkillable.log",
        ] {
            let text = raw(name);
            let items = check_fixture(name);
            let reps = reports(&items);
            assert_eq!(reps.len(), items.len(), "{name}: only reports");
            assert_eq!(reps.len(), count(&text, "no killable processes"));
            for r in reps {
                assert!(r.no_killable && r.complete && r.kill.is_none() && r.constraint.is_none());
                assert!(
                    r.lines
                        .last()
                        .unwrap()
                        .text
                        .starts_with("Out of memory and no killable")
                );
                let rows = &r.tasks.as_ref().unwrap().rows;
                assert!(rows.iter().all(|row| row.oom_score_adj == -1000));
                assert_eq!(r.header.as_ref().unwrap().oom_score_adj, Some(-1000));
            }
        }
    }

    #[test]
    fn adj_minus_1000_listed() {
        let items = check_fixture("6.12.100+deb12-amd64-e-v2-adj-minus1000.log");
        let r = only_report(&items);
        assert_eq!(r.header.as_ref().unwrap().oom_score_adj, Some(-1000));
        let rows = &r.tasks.as_ref().unwrap().rows;
        assert!(rows.iter().any(|row| row.oom_score_adj == -1000));
        assert_eq!(r.victim_row().unwrap().oom_score_adj, 0);
    }

    #[test]
    fn global_oom() {
        for name in [
            "5.10.0-32-amd64-f-global.log",
            "6.12.100+deb12-amd64-f-global.log",
        ] {
            let text = raw(name);
            let items = check_fixture(name);
            let r = only_report(&items);
            let g = r.global_mem.as_ref().unwrap();
            let stated = |suffix: &str| -> u64 {
                let header = text
                    .lines()
                    .position(|l| l.contains("invoked oom-killer"))
                    .unwrap();
                let l = text
                    .lines()
                    .skip(header)
                    .find(|l| l.ends_with(suffix))
                    .unwrap();
                l.split("] ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            assert_eq!(g.ram_pages, Some(stated(" pages RAM")), "{name}");
            assert_eq!(g.reserved_pages, Some(stated(" pages reserved")), "{name}");
            assert_eq!(g.total_swap_kb, Some(0));
            assert_eq!(g.free_swap_kb, Some(0));
            // totalpages = managed RAM (RAM less reserved) + swap pages.
            let swap_kb: u64 = word_after(&text, "Total swap = ")
                .trim_end_matches("kB")
                .parse()
                .unwrap();
            assert_eq!(
                r.global_totalpages(4096),
                Some(stated(" pages RAM") - stated(" pages reserved") + swap_kb / 4),
                "{name}"
            );
            let mut with_swap = r.clone();
            with_swap.global_mem.as_mut().unwrap().total_swap_kb = Some(1 << 20);
            assert_eq!(
                with_swap.global_totalpages(4096),
                Some(stated(" pages RAM") - stated(" pages reserved") + (1 << 18))
            );
            assert_eq!(
                with_swap.global_totalpages(16384).map(|t| t > 0),
                Some(true)
            );
            assert_eq!(with_swap.global_totalpages(512), None);
            assert!(r.counters.is_empty() && r.memcg_stats_for.is_none());
            let c = r.constraint.as_ref().unwrap();
            assert_eq!(c.constraint, "CONSTRAINT_NONE");
            assert_eq!(c.oom_memcg, None);
            assert_eq!(c.task_memcg.as_deref(), Some("/"));
            let k = r.kill.as_ref().unwrap();
            assert!(!k.memcg_oom);
            assert!(k.source.text.starts_with("Out of memory: Killed process"));
            assert_eq!(
                r.header
                    .as_ref()
                    .unwrap()
                    .gfp_flags
                    .as_deref()
                    .map(|f| f.starts_with("GFP_HIGHUSER_MOVABLE")),
                Some(true)
            );
        }
    }

    #[test]
    fn seed_4_4_journal() {
        let name = "seed-4.4-ubuntu-java-256m.log";
        let text = raw(name);
        let items = check_fixture(name);
        let r = only_report(&items);
        assert!(r.complete);
        // The "callbacks suppressed" line precedes the report; "docker[977]: Killed" is not kernel.
        assert_eq!(r.lines[0].line_no, 2);
        assert_eq!(r.lines.last().unwrap().line_no, text.lines().count() - 1);
        assert!(r.lines.iter().all(|l| l.text != "Killed"));
        assert_eq!(count(&text, "docker[977]: Killed"), 1);
        assert!(r.lines.iter().all(|l| l.timestamp.is_none()));
        let h = r.header.as_ref().unwrap();
        assert_eq!(
            (h.comm.as_str(), h.gfp_mask, h.gfp_flags.as_deref()),
            ("java", 0x2400040, None)
        );
        let t = r.trigger.as_ref().unwrap();
        assert_eq!(
            (t.cpu, t.uid, t.pid, t.comm.as_str()),
            (0, None, 26686, "java")
        );
        assert_eq!(r.kernel_release.as_deref(), Some("4.4.0-28-generic"));
        // Task-in line, cut off by the journal inside the second path.
        let (task, oom) = r.task_in_line.as_ref().unwrap();
        let id = "0ead341e639c2f2bd27a38666aa0834c969e8c7e6d2fb21516a2c698adce8d5f";
        assert_eq!(task, &format!("/docker/{id}"));
        assert!(oom.starts_with("/docker/0ead341e") && id.starts_with(&oom["/docker/".len()..]));
        assert!(oom.len() < task.len());
        let mem = r.counter("memory").unwrap();
        assert_eq!(
            (mem.usage_kb, mem.limit_kb, mem.failcnt),
            (262144, 262144, 6868)
        );
        // One-line stats in KB, converted to bytes; the cut-off "mapped_file:16" is dropped.
        assert_eq!(r.memcg_stats_for.as_deref(), Some(task.as_str()));
        assert_eq!(
            r.memcg_stats,
            [
                ("cache".to_string(), 96 * 1024),
                ("rss".to_string(), 262048 * 1024),
                ("rss_huge".to_string(), 135168 * 1024),
            ]
        );
        let t = r.tasks.as_ref().unwrap();
        assert!(
            t.columns.contains(&"nr_ptes".to_string())
                && t.columns.contains(&"nr_pmds".to_string())
        );
        assert_eq!(t.rows.len(), 3);
        let java = r.victim_row().unwrap();
        assert_eq!(
            (java.pid, java.rss_pages, java.nr_ptes, java.nr_pmds),
            (26675, 64577, Some(204), Some(7))
        );
        assert_eq!(java.pgtables_bytes, None);
        let s = r.selected.as_ref().unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.score, s.sacrifice_child),
            (26675, "java", 988, true)
        );
        let k = r.kill.as_ref().unwrap();
        assert!(!k.memcg_oom);
        assert_eq!(
            (k.pid, k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb),
            (26675, Some(258308), Some(0), None)
        );
        assert_eq!(k.anon_rss_kb, Some(java.rss_pages * 4));
    }

    #[test]
    fn seed_2_6_32_excerpt() {
        let name = "seed-2.6.32-centos6-many-procs-excerpt.log";
        let text = raw(name);
        let items = check_fixture(name);
        let reps = reports(&items);
        assert_eq!(items.len(), 2);
        // First: the excerpt starts at the task table (no header) and ends with the kill.
        let r = reps[0];
        assert!(r.header.is_none() && r.complete);
        assert_eq!(r.lines.len(), count(&text, "") - 2);
        let t = r.tasks.as_ref().unwrap();
        assert!(t.elided_rows);
        assert_eq!(
            t.columns.join(" "),
            "pid uid tgid total_vm rss cpu oom_adj oom_score_adj name"
        );
        assert_eq!(
            t.rows.len(),
            text.lines()
                .filter(|l| l.starts_with('[') && !l.starts_with("[ pid"))
                .count()
        );
        let init = &t.rows[0];
        assert_eq!(
            (
                init.pid,
                init.name.as_str(),
                init.cpu,
                init.oom_adj,
                init.swapents
            ),
            (15947, "init", Some(5), Some(0), None)
        );
        assert!(t.rows.iter().any(|r| r.uid == 30000 && r.name == "node"));
        let s = r.selected.as_ref().unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.score, s.sacrifice_child),
            (15947, "init", 1, true)
        );
        let k = r.kill.as_ref().unwrap();
        assert_eq!(
            (k.pid, k.comm.as_str(), k.uid),
            (16944, "mingetty", Some(0))
        );
        assert_eq!(
            (k.total_vm_kb, k.anon_rss_kb, k.file_rss_kb, k.pgtables_kb),
            (Some(4064), Some(4), Some(56), None)
        );
        assert!(!k.memcg_oom);
        // Second: a new header, cut off by the end of the excerpt.
        let r2 = reps[1];
        assert!(!r2.complete && r2.kill.is_none());
        let h = r2.header.as_ref().unwrap();
        assert_eq!(
            (
                h.comm.as_str(),
                h.gfp_mask,
                h.order,
                h.oom_adj,
                h.oom_score_adj
            ),
            ("node", 0xd0, 0, Some(0), Some(0))
        );
        assert_eq!(r2.lines.len(), 2);
    }

    // ---- inline inputs ----

    #[test]
    fn prefix_formats() {
        let msg =
            "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0";
        for (input, ts) in [
            (format!("[ 1534.287964] {msg}"), Some(1534.287964)),
            (format!("[    0.000000] {msg}"), Some(0.0)),
            (format!("<4>[ 1534.287964] {msg}"), Some(1534.287964)),
            (format!("[Mon Nov 23 18:32:48 2026] {msg}"), None),
            (
                format!("Nov 23 18:32:48 host kernel: [ 1534.287964] {msg}"),
                Some(1534.287964),
            ),
            (
                format!("Nov  3 18:32:48 host kernel: [ 1534.287964] {msg}"),
                Some(1534.287964),
            ),
            (format!("Jul 07 02:43:54 ip-10-1-2-125 kernel: {msg}"), None),
            (
                format!("2026-11-23T18:32:48.123456+0000 host kernel: {msg}"),
                None,
            ),
            (
                format!("[ 1534.287964] host kernel: {msg}"),
                Some(1534.287964),
            ),
            (format!("{msg}\r"), None),
            (msg.to_string(), None),
        ] {
            assert_eq!(strip_prefix(&input), (ts, msg), "{input}");
        }
        // Message-owned leading spaces survive; task rows are not time stamps.
        assert_eq!(
            strip_prefix("[    3.206494]  active_file:0"),
            (Some(3.206494), " active_file:0")
        );
        assert_eq!(
            strip_prefix("Jul 07 02:43:54 h kernel:  [<ffffffff813eb1a3>] x").1,
            " [<ffffffff813eb1a3>] x"
        );
        let row = "[15947]     0 15947    29022       26   5       0             0 init";
        assert_eq!(strip_prefix(row), (None, row));
        assert_eq!(strip_prefix("[  12621]     0 12621").0, None);
        assert_eq!(strip_prefix("[ pid ]   uid  tgid").1, "[ pid ]   uid  tgid");
        // Other programs' lines are identified.
        let p = split_prefix("Jul 07 02:43:54 ip-10-1-2-125 docker[977]: Killed");
        assert_eq!((p.ident, p.message), (Some("docker[977]"), "Killed"));
        assert_eq!(
            split_prefix("Nov 23 18:32:48 host kernel: x").ident,
            Some("kernel")
        );
        assert_eq!(split_prefix("[ 1.5] x").ident, None);
        assert_eq!(split_prefix("Nov 23 18:32:48 host kernel:").message, "");
    }

    /// A small 6.x report in dmesg form, `rows` task rows long.
    fn small_report(pid: u32, rows: usize) -> Vec<String> {
        let mut v = vec![
            format!("[  10.000001] hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
            format!("[  10.000002] CPU: 0 UID: 0 PID: {pid} Comm: hog Tainted: G        W  O      6.12.1 #1 PREEMPT"),
            "[  10.000003] memory: usage 1024kB, limit 1024kB, failcnt 9".to_string(),
            "[  10.000004] Memory cgroup stats for /t:".to_string(),
            "[  10.000005] anon 1048576".to_string(),
            "[  10.000006] Tasks state (memory values in pages):".to_string(),
            "[  10.000007] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name".to_string(),
        ];
        for i in 0..rows {
            let p = pid + i as u32;
            // A thread whose group leader is gone is listed with pid != tgid.
            let tgid = if i == 0 { p } else { p + 10000 };
            v.push(format!("[  10.000008] [{p:7}]  1000 {tgid:5}     1000      300      256       40         4    65536        2          -500 my prog"));
        }
        v.push(format!("[  10.000009] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,3,oom_memcg=/t,task_memcg=/t/a,b,task=my prog,pid={pid},uid=1000"));
        v.push(format!("[  10.000010] Memory cgroup out of memory: Killed process {pid} (my prog) total-vm:4000kB, anon-rss:1024kB, file-rss:160kB, shmem-rss:16kB, UID:1000 pgtables:64kB oom_score_adj:-500"));
        v
    }

    #[test]
    fn small_report_fields() {
        let items = parse_log(small_report(500, 2).join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(r.complete);
        let t = r.trigger.as_ref().unwrap();
        assert_eq!((t.pid, t.comm.as_str()), (500, "hog"));
        assert_eq!(r.kernel_release.as_deref(), Some("6.12.1"));
        assert_eq!(r.memcg_stats, [("anon".to_string(), 1048576)]);
        let rows = &r.tasks.as_ref().unwrap().rows;
        assert_eq!((rows[0].pid, rows[0].tgid), (500, 500));
        assert_eq!((rows[1].pid, rows[1].tgid), (501, 10501));
        let row = r.victim_row().unwrap();
        assert_eq!(row.name, "my prog");
        assert_eq!(
            (
                row.uid,
                row.oom_score_adj,
                row.swapents,
                row.rss_shmem_pages
            ),
            (1000, -500, Some(2), Some(4))
        );
        let c = r.constraint.as_ref().unwrap();
        assert_eq!(c.cpuset.as_deref(), Some("/"));
        assert_eq!(c.task_memcg.as_deref(), Some("/t/a,b"));
        assert_eq!(c.task.as_deref(), Some("my prog"));
        assert_eq!((c.pid, c.uid), (Some(500), Some(1000)));
        let k = r.kill.as_ref().unwrap();
        assert_eq!(
            (k.comm.as_str(), k.uid, k.oom_score_adj, k.pgtables_kb),
            ("my prog", Some(1000), Some(-500), Some(64))
        );
        // Serializes (other modules dump it as JSON).
        let json = serde_json::to_string(&items).unwrap();
        assert!(json.contains("\"rss_anon_pages\":256"));
    }

    #[test]
    fn truncated_mid_table_is_incomplete() {
        let lines = small_report(700, 5);
        let cut = &lines[..lines.len() - 4]; // three rows in, no summary, no kill
        let mut p = ReportParser::new();
        for (i, l) in cut.iter().enumerate() {
            let (ts, msg) = strip_prefix(l);
            let out = p.push(SourceLine {
                line_no: i + 1,
                timestamp: ts,
                text: msg.to_string(),
            });
            assert!(out.is_empty(), "nothing completes before the kill line");
        }
        assert!(p.has_open_report());
        let out = p.finish();
        assert!(!p.has_open_report());
        let r = only_report(&out);
        assert!(!r.complete);
        assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
        assert_eq!((r.kill.as_ref(), r.constraint.as_ref()), (None, None));
        assert_eq!(r.lines.len(), cut.len());
        assert!(p.finish().is_empty());
        // Same through parse_log, with a half row at the end.
        let mut text = cut.join("\n");
        text.push_str("\n[  10.000008] [    703]  1000   703     10");
        let items = parse_log(text.as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(!r.complete);
        assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
        assert_eq!(r.lines.len(), cut.len() + 1);
    }

    #[test]
    fn new_header_cuts_open_report() {
        let mut lines = small_report(1, 1);
        lines.truncate(4);
        lines.extend(small_report(2, 1));
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let reps = reports(&items);
        assert_eq!(reps.len(), 2);
        assert!(!reps[0].complete && reps[0].kill.is_none());
        assert_eq!(reps[0].lines.len(), 4);
        assert!(reps[1].complete);
        assert_eq!(reps[1].kill.as_ref().unwrap().pid, 2);
        assert_eq!(reps[1].lines[0].line_no, 5);
    }

    #[test]
    fn garbage_interleaved() {
        let mut lines = vec![
            "random text".to_string(),
            "Jul 07 02:43:54 host docker[977]: Killed process 5 (fake) total-vm:1kB".to_string(),
            "[   9.0] eth0: link up".to_string(),
            "Killed".to_string(),
            String::new(),
            "[ 9.5] \u{1b}[31m ansi ✓ Ω".to_string(),
        ];
        let mut report = small_report(900, 3);
        report.insert(2, "[  10.0000025] usb 1-1: new device".to_string());
        report.insert(9, "[  10.0000075] audit: type=1400 something".to_string()); // inside the table
        lines.extend(report);
        lines.push("Jul 07 02:43:54 host sshd[1]: Killed process 6 (also fake)".to_string());
        lines.push("[  11.0] oom_reaper: reaped process 900 (my prog), now anon-rss:0kB, file-rss:0kB, shmem-rss:12kB".to_string());
        lines.push("[  11.1] more noise: Kill".to_string());
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        assert_eq!(items.len(), 2, "{items:#?}");
        let ReportItem::Report(r) = &items[0] else {
            panic!()
        };
        assert!(r.complete && r.header.is_some());
        assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
        assert_eq!(r.kill.as_ref().unwrap().pid, 900);
        assert!(r.lines.iter().any(|l| l.text.starts_with("audit:")));
        assert_eq!(r.memcg_stats.len(), 1);
        let ReportItem::Reaped(rp) = &items[1] else {
            panic!()
        };
        assert_eq!(
            (
                rp.pid,
                rp.comm.as_str(),
                rp.anon_rss_kb,
                rp.file_rss_kb,
                rp.shmem_rss_kb
            ),
            (900, "my prog", 0, 0, 12)
        );
        assert_eq!(rp.source.line_no, lines.len() - 1);
    }

    #[test]
    fn damaged_lines_cost_only_themselves() {
        // A NUL block (a crash mid-write) and bytes that are not UTF-8 in the
        // middle of a real report: the NUL line is skipped, the rest parses.
        let text = raw("6.18-a-single-hog-v1.log");
        let clean = parse_log(text.as_bytes()).unwrap();
        let mut damaged = Vec::new();
        damaged.extend_from_slice(b"\0\0\0\0\0\0\0\0\n");
        damaged.extend_from_slice(text.as_bytes());
        damaged.extend_from_slice(b"garbage \xff\xfe\n\0\0\0\n");
        let items = parse_log(&damaged).unwrap();
        let (a, b) = (only_report(&clean), only_report(&items));
        assert_eq!(b.tasks, a.tasks);
        assert_eq!(
            b.kill.as_ref().map(|k| k.pid),
            a.kill.as_ref().map(|k| k.pid)
        );
        assert_eq!(b.lines.len(), a.lines.len());
        assert_eq!(b.lines[0].line_no, a.lines[0].line_no + 1);
        assert!(b.complete);

        // Nothing but binary: said as such, with the line.
        assert_eq!(
            parse_log(b"\n\0\x01\x02\n\0\n"),
            Err(ReportError::NotText {
                line: 2,
                reason: "NUL byte"
            })
        );
        // Text without a report, with a NUL line in it: no report.
        assert_eq!(
            parse_log(b"line one\nline two\0\n"),
            Err(ReportError::NoOomReport)
        );
        // A lone lead byte inside a task row: the row is kept.
        let mut fixture = text.into_bytes();
        let row = fixture
            .windows(8)
            .position(|w| w == b"python3\n")
            .expect("a python3 row");
        fixture[row + 6] = 0xc3;
        let r = parse_log(&fixture).unwrap();
        let rows = &only_report(&r).tasks.as_ref().unwrap().rows;
        assert_eq!(rows.len(), a.tasks.as_ref().unwrap().rows.len());
        assert!(rows.iter().any(|row| row.name == "python\u{fffd}"));
    }

    #[test]
    fn no_oom_content() {
        assert_eq!(parse_log(b""), Err(ReportError::NoOomReport));
        assert_eq!(parse_log(b"\n\n"), Err(ReportError::NoOomReport));
        let boot: String = raw("6.1.0-50-amd64-a-v2-single-hog.log")
            .lines()
            .take_while(|l| !l.contains("invoked oom-killer"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(boot.lines().count() > 100);
        assert_eq!(parse_log(boot.as_bytes()), Err(ReportError::NoOomReport));
    }

    #[test]
    fn kill_line_variants() {
        let k = |s: &str| {
            parse_kill(s).map(|f| {
                f.into_kill(SourceLine {
                    line_no: 1,
                    timestamp: None,
                    text: s.to_string(),
                })
            })
        };
        let a = k("Out of memory (oom_kill_allocating_task): Killed process 42 (a (b)) total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB").unwrap();
        assert_eq!(
            (a.pid, a.comm.as_str(), a.memcg_oom, a.total_vm_kb),
            (42, "a (b)", false, Some(8))
        );
        // Cut off mid-field: the partial value is dropped, not guessed.
        let b = k("Memory cgroup out of memory: Killed process 7 (x) total-vm:100kB, anon-rss:5")
            .unwrap();
        assert_eq!(
            (b.memcg_oom, b.total_vm_kb, b.anon_rss_kb),
            (true, Some(100), None)
        );
        assert!(k("Killed").is_none());
        assert!(k("Killed process (x)").is_none());
        // Selection lines.
        assert_eq!(
            parse_selected("Out of memory: Kill process 9 (x) score 5 or sacrifice child"),
            Some((9, "x".to_string(), 5, true))
        );
        assert_eq!(
            parse_selected("Out of memory: Kill process 9 (x) score 0"),
            Some((9, "x".to_string(), 0, false))
        );
        assert_eq!(parse_selected("we Kill process 9 (x) score 1"), None);
    }

    #[test]
    fn cpu_line_variants() {
        let (t, rel) =
            parse_cpu_line("CPU: 3 PID: 77 Comm: a b Kdump: loaded Not tainted 5.15.0-1-x #2 SMP")
                .unwrap();
        assert_eq!(
            (t.unwrap().comm, rel.as_deref()),
            ("a b".to_string(), Some("5.15.0-1-x"))
        );
        let (t, rel) = parse_cpu_line(
            "CPU: 0 PID: 5 Comm: x Tainted: P           O      4.15.0-20-generic #21-Ubuntu",
        )
        .unwrap();
        assert_eq!(
            (t.unwrap().pid, rel.as_deref()),
            (5, Some("4.15.0-20-generic"))
        );
        let (t, rel) =
            parse_cpu_line("Pid: 1, comm: init Not tainted 2.6.32-431.el6.x86_64 #1").unwrap();
        assert_eq!((t, rel.as_deref()), (None, Some("2.6.32-431.el6.x86_64")));
        assert!(parse_cpu_line("CPU    0: hi:  186, btch:  31 usd:  30").is_none());
    }

    #[test]
    fn lines_outside_reports() {
        let text = "\
[ 0.5] Task in D state for too long
[ 1.0] Out of memory: Kill process 10 (p) score 900 or sacrifice child
[ 1.1] Killed process 11 (c) total-vm:4kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[ 2.0] Out of memory and no killable processes...
[ 3.0] Tasks in /g are going to be killed due to memory.oom.group set
[ 3.1] Memory cgroup out of memory: Killed process 12 (d) total-vm:4kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0
";
        let items = parse_log(text.as_bytes()).unwrap();
        assert_eq!(items.len(), 4, "{items:#?}");
        // An old-kernel storm: selection + kill whose dump_header was rate-limited.
        let ReportItem::Report(r) = &items[0] else {
            panic!()
        };
        assert!(r.header.is_none() && r.tasks.is_none() && r.complete);
        // An unrelated "Task in ..." line before it did not open a report.
        assert_eq!((r.lines.len(), r.lines[0].line_no), (2, 2));
        assert_eq!(r.task_in_line, None);
        assert_eq!(
            (
                r.selected.as_ref().unwrap().pid,
                r.kill.as_ref().unwrap().pid
            ),
            (10, 11)
        );
        let ReportItem::Report(r) = &items[1] else {
            panic!()
        };
        assert!(r.no_killable && r.header.is_none() && r.lines.len() == 1);
        assert!(matches!(&items[2], ReportItem::OomGroup { memcg, .. } if memcg == "/g"));
        assert!(matches!(&items[3], ReportItem::Kill(k) if k.pid == 12 && k.memcg_oom));
    }

    #[test]
    fn runaway_report_is_capped() {
        let mut p = ReportParser::new();
        let line = |n: usize, text: &str| SourceLine {
            line_no: n,
            timestamp: None,
            text: text.to_string(),
        };
        assert!(
            p.push(line(1, "x invoked oom-killer: gfp_mask=0x0, order=0"))
                .is_empty()
        );
        let mut n = 2;
        let out = loop {
            let out = p.push(line(n, "noise"));
            if !out.is_empty() {
                break out;
            }
            assert!(
                p.open_bytes() <= MAX_REPORT_BYTES,
                "estimate within the bound"
            );
            n += 1;
        };
        let r = only_report(&out);
        assert!(!r.complete);
        assert_eq!(r.lines.len(), n - 1, "every line before the cut is kept");
        assert!(r.lines.len() <= MAX_REPORT_LINES);
        assert_eq!(p.cut_by_bound, 1, "the cut is counted");
        // The line that did not fit opened a report of its own (headerless
        // noise does not), so nothing is open and the count stays.
        assert!(!p.has_open_report());
        assert!(p.finish().is_empty());
        assert_eq!(p.cut_by_bound, 1);
    }

    /// `lines` as syslog lines of `host`.
    fn on_host(host: &str, lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("Nov 23 18:32:48 {host} kernel: {l}"))
            .collect()
    }

    fn interleave(a: &[String], b: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..a.len().max(b.len()) {
            out.extend(a.get(i).cloned());
            out.extend(b.get(i).cloned());
        }
        out
    }

    #[test]
    fn interleaved_hosts_are_parsed_apart() {
        let a = small_report(500, 3);
        let b = small_report(600, 4);
        let merged = interleave(&on_host("node-a", &a), &on_host("node-b.example", &b));
        let items = parse_log(merged.join("\n").as_bytes()).unwrap();
        let reps = reports(&items);
        assert_eq!(reps.len(), 2, "{items:#?}");
        for (r, (host, pid, rows)) in reps
            .iter()
            .zip([("node-a", 500, 3), ("node-b.example", 600, 4)])
        {
            assert!(r.complete && !r.interleaved);
            assert_eq!(r.host.as_deref(), Some(host));
            assert_eq!(r.kill.as_ref().unwrap().pid, pid);
            let t = r.tasks.as_ref().unwrap();
            assert_eq!(t.rows.len(), rows);
            assert!(
                t.rows
                    .iter()
                    .all(|row| row.pid >= pid && row.pid < pid + 10)
            );
        }
        // The same through journalctl -o short-monotonic.
        let mono = |host: &str, lines: &[String]| -> Vec<String> {
            lines
                .iter()
                .map(|l| {
                    let (ts, msg) = l.split_once("] ").unwrap();
                    format!("{ts}] {host} kernel: {msg}")
                })
                .collect()
        };
        let merged = interleave(&mono("a", &a), &mono("b", &b));
        let items = parse_log(merged.join("\n").as_bytes()).unwrap();
        let reps = reports(&items);
        assert_eq!(reps.len(), 2);
        assert!(reps.iter().all(|r| r.complete && !r.interleaved));
    }

    #[test]
    fn interleaved_without_hosts_is_never_complete() {
        // Two OOMs of one memcg on two CPUs: the same table twice, mixed.
        let a = small_report(500, 3);
        let mut b = small_report(500, 3);
        b[0] = b[0].replace("hog invoked", "other invoked");
        let items = parse_log(interleave(&a, &b).join("\n").as_bytes()).unwrap();
        let reps = reports(&items);
        assert!(reps.iter().any(|r| r.interleaved));
        for r in &reps {
            assert!(!(r.complete && r.interleaved));
            if let Some(t) = &r.tasks {
                let mut pids: Vec<u32> = t.rows.iter().map(|row| row.pid).collect();
                pids.sort();
                pids.dedup();
                assert_eq!(pids.len(), t.rows.len(), "no pid listed twice");
            }
        }
        assert!(!reps.iter().any(|r| r.complete && r.tasks.is_some()));

        // Each signal alone: a second column header, a repeated counter, a
        // second summary, a kill line for another pid than the summary's.
        let base = small_report(700, 2);
        let columns = base.iter().position(|l| l.contains("[  pid  ]")).unwrap();
        let counter = base
            .iter()
            .position(|l| l.contains("memory: usage"))
            .unwrap();
        let summary = base.iter().position(|l| l.contains("oom-kill:")).unwrap();
        let kill = base.len() - 1;
        for (what, edit) in [
            ("columns", (columns, base[columns].clone())),
            ("counter", (counter, base[counter].clone())),
            ("summary", (summary, base[summary].clone())),
            (
                "kill",
                (kill, base[kill].replace("process 700", "process 999")),
            ),
        ] {
            let mut lines = base.clone();
            if what == "kill" {
                lines[kill] = edit.1;
            } else {
                lines.insert(edit.0 + 1, edit.1);
            }
            let items = parse_log(lines.join("\n").as_bytes()).unwrap();
            let r = only_report(&items);
            assert!(r.interleaved && !r.complete, "{what}");
            assert!(r.cut_off(), "{what}");
        }
        // The untouched report is neither.
        let r = parse_log(base.join("\n").as_bytes()).unwrap();
        let r = only_report(&r);
        assert!(r.complete && !r.interleaved && !r.cut_off());
    }

    #[test]
    fn cut_off_is_not_no_killable() {
        let lines = small_report(800, 3);
        let summary = lines.iter().position(|l| l.contains("oom-kill:")).unwrap();
        // Cut in the table: no victim known, cut off.
        let items = parse_log(lines[..summary - 1].join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(r.cut_off() && !r.no_killable && !r.complete);
        assert_eq!(r.chosen_pid(), None);
        // Cut after the summary: the victim is named there.
        let items = parse_log(lines[..=summary].join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(r.cut_off());
        let stated: u32 = word_after(&lines[summary], ",pid=").parse().unwrap();
        assert_eq!(r.chosen_pid(), Some(stated));
        // The kernel's own "no killable processes" is not cut off.
        let items = check_fixture("6.1.0-50-amd64-e-v1-only-unkillable.log");
        assert!(
            reports(&items)
                .iter()
                .all(|r| r.no_killable && !r.cut_off())
        );
    }

    #[test]
    fn journal_json_and_export_read_like_dmesg() {
        use crate::report::journal::{ExportReader, JournalEntry};
        use crate::report::log::{HostItem, LogParser};
        let name = "6.12.100+deb12-amd64-b-v2-hierarchy.log";
        let text = raw(name);
        let from_dmesg = parse(name);
        let mut json_parser = LogParser::new();
        let mut export = Vec::new();
        let mut json_items: Vec<HostItem> = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let (ts, msg) = strip_prefix(l);
            let us = ts.map(|t| (t * 1e6).round() as u64);
            let mut o = serde_json::json!({
                "__CURSOR": format!("s={i}"),
                "_TRANSPORT": "kernel",
                "_HOSTNAME": "vm",
                "MESSAGE": msg,
            });
            if let Some(us) = us {
                o["_SOURCE_MONOTONIC_TIMESTAMP"] = us.to_string().into();
            }
            let e = JournalEntry::from_json(&o).unwrap();
            json_parser.push_entry(i + 1, &e, &mut json_items);
            export.extend(format!("__CURSOR=s={i}\n_TRANSPORT=kernel\n").bytes());
            if let Some(us) = us {
                export.extend(format!("_SOURCE_MONOTONIC_TIMESTAMP={us}\n").bytes());
            }
            // Every other message as a binary field.
            if i % 2 == 0 {
                export.extend(b"MESSAGE\n");
                export.extend((msg.len() as u64).to_le_bytes());
                export.extend(msg.bytes());
                export.push(b'\n');
            } else {
                export.extend(format!("MESSAGE={msg}\n").bytes());
            }
            export.push(b'\n');
            // Another program's entry is skipped.
            export.extend(b"_TRANSPORT=syslog\nMESSAGE=Killed process 1 (x)\n\n");
        }
        json_parser.finish(&mut json_items);
        let mut export_parser = LogParser::new();
        let mut export_items = Vec::new();
        let mut reader = ExportReader::new(&export[..], 1);
        while let Some((line, e)) = reader.next_entry().unwrap() {
            export_parser.push_entry(line, &e, &mut export_items);
        }
        export_parser.finish(&mut export_items);
        for items in [json_items, export_items] {
            let items: Vec<ReportItem> = items.into_iter().map(|i| i.item).collect();
            assert_eq!(items.len(), from_dmesg.len());
            let (a, b) = (only_report(&from_dmesg), only_report(&items));
            assert_eq!(b.tasks, a.tasks);
            assert_eq!(
                b.kill.as_ref().map(|k| k.pid),
                a.kill.as_ref().map(|k| k.pid)
            );
            assert_eq!(b.counters, a.counters);
            assert_eq!(b.constraint, a.constraint);
            assert_eq!(
                b.host.as_deref(),
                if b.host.is_some() { Some("vm") } else { None }
            );
            let ts = |r: &KernelReport| r.lines.iter().map(|l| l.timestamp).collect::<Vec<_>>();
            assert_eq!(ts(b), ts(a));
            assert!(b.complete);
        }
    }

    #[test]
    fn implausible_numbers_are_left_out_and_flagged() {
        let base = small_report(900, 3);
        let row = base.iter().position(|l| l.contains("[    901]")).unwrap();
        let counter = base
            .iter()
            .position(|l| l.contains("memory: usage"))
            .unwrap();
        let huge = u64::MAX.to_string();
        for (what, index, forged) in [
            (
                "rss",
                row,
                base[row].replace("      300 ", &format!(" {huge} ")),
            ),
            ("pgtables", row, base[row].replace("65536", &huge)),
            (
                "limit",
                counter,
                base[counter].replace("limit 1024kB", &format!("limit {huge}kB")),
            ),
        ] {
            assert_ne!(forged, base[index], "{what}");
            let mut lines = base.clone();
            lines[index] = forged;
            let items = parse_log(lines.join("\n").as_bytes()).unwrap();
            let r = only_report(&items);
            assert!(r.implausible && !r.complete, "{what}");
            assert_eq!(r.lines.len(), lines.len(), "{what}: the line is kept");
            if what == "limit" {
                assert!(r.counters.is_empty());
            } else {
                assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 2, "{what}");
            }
        }
        // A real unlimited v1 memcg prints PAGE_COUNTER_MAX pages in kB: fine.
        let mut lines = base.clone();
        lines[counter] = base[counter].replace("limit 1024kB", "limit 9007199254740988kB");
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(!r.implausible && r.complete);
        assert_eq!(r.counters[0].limit_kb, 9007199254740988);
        // Kill-line sizes beyond any machine are dropped, not wrapped.
        let kill = base.len() - 1;
        let mut lines = base.clone();
        lines[kill] = base[kill].replace("anon-rss:1024kB", &format!("anon-rss:{huge}kB"));
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let k = only_report(&items).kill.clone().unwrap();
        assert_eq!((k.anon_rss_kb, k.file_rss_kb), (None, Some(160)));
        for (kb, kept) in [(MAX_PLAUSIBLE_KB, true), (MAX_PLAUSIBLE_KB + 1, false)] {
            let mut lines = base.clone();
            lines[kill] = base[kill].replace("anon-rss:1024kB", &format!("anon-rss:{kb}kB"));
            let items = parse_log(lines.join("\n").as_bytes()).unwrap();
            let k = only_report(&items).kill.clone().unwrap();
            assert_eq!(k.anon_rss_kb, kept.then_some(kb));
        }
        // Counters: just under 2^53 kB is a real unlimited limit; past it, not.
        for (kb, plausible) in [(MAX_COUNTER_KB, true), (MAX_COUNTER_KB + 1, false)] {
            let mut lines = base.clone();
            lines[counter] = base[counter].replace("limit 1024kB", &format!("limit {kb}kB"));
            let items = parse_log(lines.join("\n").as_bytes()).unwrap();
            assert_eq!(only_report(&items).implausible, !plausible, "{kb}");
            assert!(kb.checked_mul(1024).is_some());
        }
    }
}
