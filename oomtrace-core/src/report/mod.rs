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
//!
//! One file per part of the report, in the order the kernel prints them:
//! `header.rs` (the header and the CPU line), `memcg.rs` (counters and
//! stats of a memcg OOM) or `meminfo.rs` (a global OOM's Mem-Info),
//! `tasks.rs` (the task table), `kill.rs` (selection, summary, kill, reaper,
//! no killable process) and `oom_group.rs` (the `memory.oom.group` sweep).
//! `source.rs` strips the log's prefixes, `classify.rs` says what a line is,
//! `items.rs` holds what comes out, and [`ReportParser`] here records each
//! line in the open report.

mod classify;
mod fit;
mod header;
mod items;
pub mod journal;
mod kill;
pub mod log;
mod memcg;
mod meminfo;
mod numbers;
mod oom_group;
mod source;
mod tasks;

pub use header::{InvokedHeader, TriggerCpuLine};
pub use items::{KernelReport, ReportError, ReportItem};
pub use kill::{ConstraintLine, KillLine, ReapedLine, SelectedLine};
pub use log::{LineStats, LogParser, parse_log};
pub use memcg::CounterLine;
pub use meminfo::GlobalMemInfo;
pub use numbers::{MAX_COUNTER_KB, MAX_PLAUSIBLE_BYTES, MAX_PLAUSIBLE_KB, MAX_PLAUSIBLE_PAGES};
pub use source::{Prefixed, SourceLine, split_prefix, strip_prefix};
pub use tasks::{TaskRow, TaskTable};

use classify::{Line, classify};
use fit::Fit;
use items::line_bytes;
use tasks::TableReader;

/// Reports longer than this are closed (marked incomplete) so that a header
/// that is never followed by its kill line cannot grow without bound on a
/// live feed. The largest real report has one task row per process in the
/// memcg (or on the machine, for a global OOM), so this is generous.
pub const MAX_REPORT_LINES: usize = 200_000;

/// Likewise in estimated heap bytes ([`ReportParser::open_bytes`]): the
/// collector's budget for the open report (`base::bounds`).
pub const MAX_REPORT_BYTES: usize = crate::base::bounds::OPEN_REPORT;

/// Streaming parser: feed it message lines (prefixes already stripped) one at a
/// time, for a live `/dev/kmsg` feed as for a whole file.
#[derive(Debug, Default)]
pub struct ReportParser {
    open: Option<KernelReport>,
    /// The open report's task table as read so far.
    table: TableReader,
    /// Inside the multi-line "Memory cgroup stats for" block.
    in_stats: bool,
    /// Estimated heap bytes of the open report ([`line_bytes`] per line).
    bytes: usize,
    /// Reports closed early because they reached [`MAX_REPORT_LINES`] or
    /// [`MAX_REPORT_BYTES`]: the rest of each was not read (a `lost` record).
    pub cut_by_bound: u64,
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
        let mut out: Vec<ReportItem> = self.account(line_bytes(&line)).into_iter().collect();
        // Task-table rows and stats lines only mean something inside a report.
        let Some(line) = self.take_block_line(line) else {
            return out;
        };
        match classify(&line.text) {
            Line::Header(header) => {
                out.extend(self.close(false));
                self.open = Some(KernelReport {
                    header,
                    lines: vec![line],
                    ..KernelReport::default()
                });
            }
            Line::Kill(k) => out.extend(self.kill_line(k.into_kill(line.clone()), line)),
            Line::Reaped(r) => out.push(ReportItem::Reaped(r.into_reaped(line))),
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

    /// Counts one more line of `cost` bytes, first closing the open report
    /// when the line would take it past [`MAX_REPORT_LINES`] or
    /// [`MAX_REPORT_BYTES`].
    fn account(&mut self, cost: usize) -> Option<ReportItem> {
        let mut cut = None;
        if self.open.as_ref().is_some_and(|r| {
            r.lines.len() >= MAX_REPORT_LINES || self.bytes + cost > MAX_REPORT_BYTES
        }) {
            self.cut_by_bound += 1;
            cut = self.close(false);
        }
        if self.open.is_some() {
            self.bytes += cost;
        } else {
            self.bytes = cost;
        }
        cut
    }

    /// Records a line of the open report's task table (a row, an elision
    /// mark) or stats block; gives the line back when it is neither.
    fn take_block_line(&mut self, line: SourceLine) -> Option<SourceLine> {
        let Some(report) = self.open.as_mut() else {
            return Some(line);
        };
        let mut fit = None;
        if table_accepts_rows(report)
            && let Some(table) = report.tasks.as_mut()
        {
            fit = self.table.read(&line.text, table);
        }
        if fit.is_none() && self.in_stats {
            fit = memcg::read_stat(&line.text, &mut report.memcg_stats);
        }
        let Some(fit) = fit else {
            return Some(line);
        };
        report.mark(fit);
        report.lines.push(line);
        None
    }

    /// A kill line ends the open report, or stands alone.
    fn kill_line(&mut self, killed: KillLine, line: SourceLine) -> Option<ReportItem> {
        let Some(report) = self.open.as_mut() else {
            return Some(ReportItem::Kill(killed));
        };
        report.mark(kill::kill_fits_summary(report.constraint.as_ref(), &killed));
        report.kill = Some(killed);
        report.lines.push(line);
        self.close(true)
    }

    fn close(&mut self, complete: bool) -> Option<ReportItem> {
        self.table.clear();
        self.in_stats = false;
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
        if kind.ends_stats_block() {
            self.in_stats = false;
        }
        let fit = match kind {
            Line::Cpu(trigger, release) => {
                let (t, r) = (&mut report.trigger, &mut report.kernel_release);
                header::keep_first_cpu_line(t, r, trigger, release);
                Fit::Belongs
            }
            Line::Counter(c) => memcg::add_counter(&mut report.counters, c),
            Line::TaskIn(task, oom) => {
                report.task_in_line.get_or_insert((task, oom));
                Fit::Belongs
            }
            Line::StatsFor(s) => {
                let (path, stats) = (&mut report.memcg_stats_for, &mut report.memcg_stats);
                self.in_stats = memcg::open_stats(path, stats, s);
                Fit::Belongs
            }
            Line::Columns(columns) => self.table.open(&mut report.tasks, columns),
            Line::Constraint(c) => kill::add_summary(&mut report.constraint, c),
            Line::Selected(s) => {
                kill::keep_first_selection(&mut report.selected, s, &line);
                Fit::Belongs
            }
            Line::MemInfo(m) => {
                let global = report.global_mem.get_or_insert_with(GlobalMemInfo::default);
                global.record(m);
                Fit::Belongs
            }
            Line::TasksState => Fit::Belongs,
            // Handled in push().
            Line::Header(_)
            | Line::Kill(_)
            | Line::Reaped(_)
            | Line::OomGroup(_)
            | Line::NoKillable
            | Line::Other => Fit::Belongs,
        };
        report.mark(fit);
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

#[cfg(test)]
mod tests;
