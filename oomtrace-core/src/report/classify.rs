//! What one line is, independent of the report it may belong to: the
//! sections' readers, tried in a fixed order.

use super::{
    header::{InvokedHeader, TriggerCpuLine, parse_cpu_line, parse_header},
    kill::{
        ConstraintLine, KillFields, ReapedFields, Selection, is_no_killable, parse_constraint,
        parse_kill, parse_reaped, parse_selected,
    },
    memcg::{CounterLine, StatsFor, parse_counter, parse_stats_for, parse_task_in},
    meminfo::{MemInfoLine, parse_meminfo},
    oom_group::parse_sweep,
    tasks::{is_title, parse_columns},
};

/// What one line is, independent of state.
pub(super) enum Line {
    Header(Option<InvokedHeader>),
    Kill(KillFields),
    Reaped(ReapedFields),
    OomGroup(String),
    NoKillable,
    Cpu(Option<TriggerCpuLine>, Option<String>),
    Counter(CounterLine),
    TaskIn(String, String),
    StatsFor(StatsFor),
    TasksState,
    Columns(Vec<String>),
    Constraint(ConstraintLine),
    Selected(Selection),
    MemInfo(MemInfoLine),
    Other,
}

impl Line {
    /// Lines that only ever appear inside an OOM report, so they open one even
    /// when its header was not seen.
    pub(super) fn starts_headerless_report(&self) -> bool {
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

    /// Whether the line ends a "Memory cgroup stats for" block: every line of
    /// the report's structure does; a CPU line, a selection line, a "Task
    /// in" line or an unknown one does not.
    pub(super) fn ends_stats_block(&self) -> bool {
        !matches!(
            self,
            Line::Other | Line::Cpu(..) | Line::Selected(..) | Line::TaskIn(..)
        )
    }
}

/// The readers in the order they are tried: a line is what the first one
/// that reads it says.
const READERS: &[fn(&str) -> Option<Line>] = &[
    |t| parse_header(t).map(Line::Header),
    |t| parse_kill(t).map(Line::Kill),
    |t| parse_reaped(t).map(Line::Reaped),
    |t| parse_sweep(t).map(Line::OomGroup),
    |t| is_no_killable(t).then_some(Line::NoKillable),
    |t| parse_cpu_line(t).map(|(trigger, release)| Line::Cpu(trigger, release)),
    |t| parse_counter(t).map(Line::Counter),
    |t| parse_task_in(t).map(|(task, oom)| Line::TaskIn(task, oom)),
    |t| parse_stats_for(t).map(Line::StatsFor),
    |t| is_title(t).then_some(Line::TasksState),
    |t| parse_columns(t).map(Line::Columns),
    |t| parse_constraint(t).map(Line::Constraint),
    |t| parse_selected(t).map(Line::Selected),
    |t| parse_meminfo(t).map(Line::MemInfo),
];

pub(super) fn classify(text: &str) -> Line {
    let t = text.trim_start();
    READERS
        .iter()
        .find_map(|read| read(t))
        .unwrap_or(Line::Other)
}
