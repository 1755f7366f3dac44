//! What the parser produces: a kernel report with its parts, or a line that
//! stands alone (a kill outside a report, the `oom.group` sweep's notice,
//! the reaper's line).

use serde::Serialize;

use super::{
    fit::Fit,
    header::{InvokedHeader, TriggerCpuLine},
    kill::{ConstraintLine, KillLine, ReapedLine, SelectedLine},
    memcg::CounterLine,
    meminfo::GlobalMemInfo,
    source::SourceLine,
    tasks::{TaskRow, TaskTable},
};

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
    /// (memory beyond any machine, see
    /// [`MAX_PLAUSIBLE_PAGES`](super::numbers::MAX_PLAUSIBLE_PAGES)): it was left
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

    /// Notes what a line said about the report: that another report's lines
    /// are mixed into it, or a number no kernel prints.
    pub(super) fn mark(&mut self, fit: Fit) {
        match fit {
            Fit::Belongs => {}
            Fit::Interleaved => self.interleaved = true,
            Fit::Implausible => self.implausible = true,
        }
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

/// Errors of [`parse_log`](super::log::parse_log).
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

/// Upper bound of the heap one line costs the open report: its text, once
/// in `lines` and at most once more in what it parses to (a task row's
/// name, a stat's key), plus the line, the row and the pid-set slot.
pub(super) fn line_bytes(line: &SourceLine) -> usize {
    2 * line.text.len()
        + std::mem::size_of::<SourceLine>()
        + std::mem::size_of::<TaskRow>()
        + crate::base::bounds::ENTRY_OVERHEAD
}
