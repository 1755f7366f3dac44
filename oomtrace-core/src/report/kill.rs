//! How a report ends: the pre-5.x selection line, the `oom-kill:` summary
//! naming the victim, the "Killed process" line (and the reaper's line
//! after it), or "Out of memory and no killable processes".

use serde::Serialize;

use super::{
    fit::Fit,
    numbers::{parse_kb, split_num, split_signed},
    source::SourceLine,
};

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

/// The selection line's pid, comm, score and "or sacrifice child".
pub(super) type Selection = (u32, String, i64, bool);

/// "oom-kill:constraint=...,nodemask=...,cpuset=...,mems_allowed=...,oom_memcg=...|global_oom,task_memcg=...,task=...,pid=...,uid=..."
///
/// The trailing keys are taken from the right so that commas inside
/// `mems_allowed` ("0-1,3") or paths do not shift the fields.
pub(super) fn parse_constraint(t: &str) -> Option<ConstraintLine> {
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
pub(super) fn parse_selected(t: &str) -> Option<Selection> {
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

/// Keeps the report's first selection line.
pub(super) fn keep_first_selection(
    selected: &mut Option<SelectedLine>,
    (pid, comm, score, sacrifice_child): Selection,
    source: &SourceLine,
) {
    selected.get_or_insert_with(|| SelectedLine {
        pid,
        comm,
        score,
        sacrifice_child,
        source: source.clone(),
    });
}

/// A report has one summary line: a second is another report's.
pub(super) fn add_summary(summary: &mut Option<ConstraintLine>, line: ConstraintLine) -> Fit {
    if summary.is_some() {
        return Fit::Interleaved;
    }
    *summary = Some(line);
    Fit::Belongs
}

/// 4.19+ names the victim in the summary line first: a kill line for
/// another pid is another report's.
pub(super) fn kill_fits_summary(summary: Option<&ConstraintLine>, kill: &KillLine) -> Fit {
    if summary
        .and_then(|c| c.pid)
        .is_some_and(|pid| pid != kill.pid)
    {
        Fit::Interleaved
    } else {
        Fit::Belongs
    }
}

/// A kill line without its source line.
pub(super) struct KillFields {
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
    pub(super) fn into_kill(self, source: SourceLine) -> KillLine {
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

    /// The "key:value" fields after the comm: sizes, UID and oom_score_adj.
    fn read_tail(&mut self, tail: &str) {
        for tok in tail.split([' ', ',']).filter(|s| !s.is_empty()) {
            let Some((key, value)) = tok.split_once(':') else {
                continue;
            };
            match key {
                "total-vm" => self.total_vm_kb = parse_kb(value),
                "anon-rss" => self.anon_rss_kb = parse_kb(value),
                "file-rss" => self.file_rss_kb = parse_kb(value),
                "shmem-rss" => self.shmem_rss_kb = parse_kb(value),
                "pgtables" => self.pgtables_kb = parse_kb(value),
                "UID" => self.uid = self.uid.or(value.parse().ok()),
                "oom_score_adj" => self.oom_score_adj = value.parse().ok(),
                _ => {}
            }
        }
    }
}

/// "Memory cgroup out of memory: Killed process 1 (x) total-vm:..kB, ..., UID:0 pgtables:..kB oom_score_adj:0",
/// "Out of memory: Killed process ...", "Killed process 1 (x) total-vm:...",
/// and 2.6.32's "Killed process 16944, UID 0, (mingetty) total-vm:4064kB, ...".
pub(super) fn parse_kill(t: &str) -> Option<KillFields> {
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
    k.read_tail(tail);
    Some(k)
}

pub(super) struct ReapedFields {
    pid: u32,
    comm: String,
    anon_rss_kb: u64,
    file_rss_kb: u64,
    shmem_rss_kb: u64,
}

impl ReapedFields {
    pub(super) fn into_reaped(self, source: SourceLine) -> ReapedLine {
        ReapedLine {
            pid: self.pid,
            comm: self.comm,
            anon_rss_kb: self.anon_rss_kb,
            file_rss_kb: self.file_rss_kb,
            shmem_rss_kb: self.shmem_rss_kb,
            source,
        }
    }
}

pub(super) fn parse_reaped(t: &str) -> Option<ReapedFields> {
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

/// "Out of memory and no killable processes...": the report ends without a kill.
pub(super) fn is_no_killable(t: &str) -> bool {
    t.starts_with("Out of memory and no killable processes")
}
