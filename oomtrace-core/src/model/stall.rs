//! OOM-disabled stalls (cgroup v1 `memory.oom_control` oom_kill_disable=1):
//! tasks of a memcg at its limit wait in `mem_cgroup_oom_synchronize` and the
//! kernel prints nothing. Without hooks on that function (this kernel allows
//! tracepoints only), the memcg's own `under_oom` flag is the signal: the
//! monitor polls it for the traced memcgs and reports when a stall starts and
//! when it ends.
use std::{collections::HashMap, fs, path::PathBuf, time::Instant};

use serde::Serialize;

use crate::{
    base::{Envelope, bounds, units::human_bytes},
    cgroup::MemoryHierarchy,
};

/// Bound on memcg directories examined per poll (a node may have thousands).
const MAX_MEMCGS: usize = 20_000;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StalledTask {
    pub pid: u32,
    pub comm: String,
    /// Kernel function the task sleeps in (`mem_cgroup_oom_synchronize` when it waits for the OOM).
    pub wchan: Option<String>,
    pub state: Option<String>,
    /// With hooks on `mem_cgroup_oom_synchronize` (source `bpf`): the thread
    /// group, time spent waiting so far and number of waits; null when polled.
    pub tgid: Option<u32>,
    pub waited_ms: Option<f64>,
    pub waits: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StallRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub memcg: String,
    /// "stalled" (first seen), "released" (under_oom cleared), "gone" (memcg removed).
    pub state: &'static str,
    /// How long the stall has lasted, at least (from the first poll that saw it).
    pub stalled_ms: f64,
    pub oom_kill_disable: bool,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub tasks: Vec<StalledTask>,
    pub explanation: Vec<String>,
    /// `bpf`: every wait seen by the kernel programs (exact times); `poll`:
    /// `memory.oom_control` polled once a second (times are at least).
    pub source: &'static str,
    /// The memcg's OOM episode (`model::episode`); null until the session assigns it.
    pub oom_id: Option<String>,
}

struct Stall {
    since: Instant,
    tasks: Vec<StalledTask>,
}

pub struct StallMonitor {
    hierarchy: MemoryHierarchy,
    roots: Vec<PathBuf>,
    stalls: HashMap<String, Stall>,
    /// Estimated heap bytes of `stalls` ([`Stall::bytes`]), within [`bounds::STALLS`].
    bytes: usize,
    /// Stalls or their tasks left out for lack of room (`lost` records).
    pub evicted_tasks: u64,
}

impl Stall {
    fn bytes(relative: &str, tasks: &[StalledTask]) -> usize {
        bounds::text(relative)
            + std::mem::size_of::<Stall>()
            + tasks.iter().map(task_bytes).sum::<usize>()
    }
}

fn task_bytes(t: &StalledTask) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    std::mem::size_of::<StalledTask>() + t.comm.len() + text(&t.wchan) + text(&t.state)
}

/// Keeps the tasks that fit in `room` bytes; returns how many were left out.
fn fit_tasks(tasks: &mut Vec<StalledTask>, room: usize) -> u64 {
    let mut used = 0;
    let keep = tasks
        .iter()
        .take_while(|t| {
            used += task_bytes(t);
            used <= room
        })
        .count();
    let dropped = tasks.len() - keep;
    tasks.truncate(keep);
    dropped as u64
}

fn oom_control(dir: &std::path::Path) -> Option<(bool, bool)> {
    let text = fs::read_to_string(dir.join("memory.oom_control")).ok()?;
    let flag = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim() == "1")
    };
    Some((flag("oom_kill_disable ")?, flag("under_oom ")?))
}

fn tasks_of(dir: &std::path::Path) -> Vec<StalledTask> {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    procs
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .map(|pid| {
            let proc_file = |name: &str| {
                fs::read_to_string(format!("/proc/{pid}/{name}"))
                    .ok()
                    .map(|s| s.trim().to_owned())
            };
            let state = proc_file("stat").and_then(|stat| {
                // "pid (comm) S ...": the state follows the last ')'.
                let after = stat.rsplit_once(')')?.1.trim_start();
                after.split_whitespace().next().map(str::to_owned)
            });
            StalledTask {
                pid,
                comm: proc_file("comm").unwrap_or_default(),
                wchan: proc_file("wchan").filter(|w| !w.is_empty() && w != "0"),
                state,
                tgid: None,
                waited_ms: None,
                waits: None,
            }
        })
        .collect()
}

impl StallMonitor {
    /// Watches `roots` (the `--cgroup` directories, or the whole hierarchy) on cgroup v1.
    pub fn new(hierarchy: MemoryHierarchy, roots: Vec<PathBuf>) -> Self {
        Self {
            hierarchy,
            roots,
            stalls: HashMap::new(),
            bytes: 0,
            evicted_tasks: 0,
        }
    }

    /// A stall is known: it must be polled until it ends.
    pub fn has_stalls(&self) -> bool {
        !self.stalls.is_empty()
    }

    fn memcgs(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack: Vec<(PathBuf, usize)> = self.roots.iter().map(|r| (r.clone(), 0)).collect();
        while let Some((dir, depth)) = stack.pop() {
            if found.len() >= MAX_MEMCGS {
                break;
            }
            if depth < MAX_DEPTH
                && let Ok(entries) = fs::read_dir(&dir)
            {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((entry.path(), depth + 1));
                    }
                }
            }
            found.push(dir);
        }
        found
    }

    /// One pass: records for stalls that started or ended since the last one.
    pub fn poll(&mut self) -> Vec<StallRecord> {
        let mut records = Vec::new();
        let mut seen = Vec::new();
        for dir in self.memcgs() {
            let Some((disabled, under_oom)) = oom_control(&dir) else {
                continue;
            };
            let Some(relative) = self.hierarchy.relative(&dir) else {
                continue;
            };
            if !(disabled && under_oom) {
                continue;
            }
            seen.push(relative.clone());
            if !self.stalls.contains_key(&relative) {
                let mut tasks = tasks_of(&dir);
                let base = Stall::bytes(&relative, &[]);
                let Some(room) = bounds::STALLS.checked_sub(self.bytes + base) else {
                    self.evicted_tasks += 1 + tasks.len() as u64;
                    continue;
                };
                self.evicted_tasks += fit_tasks(&mut tasks, room);
                self.bytes += Stall::bytes(&relative, &tasks);
                let stall = Stall {
                    since: Instant::now(),
                    tasks: tasks.clone(),
                };
                records.push(self.record(&relative, "stalled", &stall));
                self.stalls.insert(relative, stall);
            }
        }
        let ended: Vec<String> = self
            .stalls
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for relative in ended {
            let stall = self.stalls.remove(&relative).expect("listed");
            self.bytes -= Stall::bytes(&relative, &stall.tasks);
            let state = if self.hierarchy.absolute(&relative).exists() {
                "released"
            } else {
                "gone"
            };
            records.push(self.record(&relative, state, &stall));
        }
        records
    }

    fn record(&self, relative: &str, state: &'static str, stall: &Stall) -> StallRecord {
        let files = self.hierarchy.read_counters(relative);
        let waiting: Vec<&StalledTask> = stall
            .tasks
            .iter()
            .filter(|t| t.wchan.as_deref() == Some("mem_cgroup_oom_synchronize"))
            .collect();
        let stalled_ms = stall.since.elapsed().as_secs_f64() * 1000.0;
        let limit = files.limit_bytes.map_or("its limit".to_owned(), |l| {
            format!("its limit of {}", human_bytes(l))
        });
        let mut explanation = Vec::new();
        match state {
            "stalled" => {
                explanation.push(format!(
                    "{relative} is at {limit} and its OOM killer is disabled (memory.oom_control oom_kill_disable=1): the kernel kills nothing and prints nothing."
                ));
                explanation.push(format!(
                    "{} of its {} task(s) are blocked in mem_cgroup_oom_synchronize waiting for memory; they stay blocked until memory is freed, the limit is raised or oom_kill_disable is set back to 0.",
                    waiting.len(),
                    stall.tasks.len()
                ));
            }
            "released" => explanation.push(format!(
                "The OOM stall of {relative} ended after at least {:.1} s (under_oom cleared).",
                stalled_ms / 1000.0
            )),
            _ => explanation.push(format!(
                "{relative} was removed while stalled, after at least {:.1} s.",
                stalled_ms / 1000.0
            )),
        }
        StallRecord {
            envelope: Envelope::now("oom_stall"),
            memcg: relative.to_owned(),
            state,
            stalled_ms,
            oom_kill_disable: true,
            limit_bytes: files.limit_bytes,
            usage_bytes: files.usage_bytes,
            tasks: stall.tasks.clone(),
            explanation,
            source: "poll",
            oom_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_past_the_room_are_left_out_and_counted() {
        let task = |pid| StalledTask {
            pid,
            comm: "java".to_owned(),
            wchan: Some("mem_cgroup_oom_synchronize".to_owned()),
            state: Some("D".to_owned()),
            tgid: None,
            waited_ms: None,
            waits: None,
        };
        let mut tasks: Vec<StalledTask> = (1..=10).map(task).collect();
        let room = 3 * task_bytes(&tasks[0]);
        assert_eq!(fit_tasks(&mut tasks, room), 7);
        assert_eq!(tasks.len(), 3);
        assert!(tasks.iter().map(task_bytes).sum::<usize>() <= room);
    }
}
