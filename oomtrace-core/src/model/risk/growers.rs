//! The memcg's tasks while it grows: which of them grow, and which one the
//! kernel's badness rule would kill today.
use std::collections::HashMap;

use serde::Serialize;

use crate::{
    cgroup::tasks::TaskSample,
    model::score::{BadnessInput, BadnessModel, badness},
};

/// How many growers a warning lists.
pub const TOP_GROWERS: usize = 5;
/// Bound on the tasks followed per memcg (the `/proc` read is bounded too).
const MAX_TASKS: usize = 512;

/// One task of a `top_growers` list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Grower {
    pub pid: u32,
    /// Untrusted text (escaped on every terminal path).
    pub comm: String,
    pub rss_bytes: u64,
    pub growth_bytes_per_s: i64,
    /// The task the OOM killer would choose if the memcg hit its limit now.
    pub would_be_killed: bool,
}

#[derive(Debug, Clone)]
struct Seen {
    first_ms: u64,
    first_rss: u64,
    last: TaskSample,
    last_ms: u64,
}

/// Each task's rss since the memcg began to grow.
#[derive(Debug, Clone, Default)]
pub struct TaskGrowth {
    tasks: HashMap<u32, Seen>,
}

fn rss(t: &TaskSample) -> u64 {
    t.rss_anon_bytes + t.rss_file_bytes + t.rss_shmem_bytes
}

impl TaskGrowth {
    /// One read of the memcg's tasks; tasks gone since are forgotten.
    pub fn push(&mut self, boot_ms: u64, tasks: Vec<TaskSample>) {
        self.tasks
            .retain(|pid, _| tasks.iter().any(|t| t.pid == *pid));
        for task in tasks.into_iter().take(MAX_TASKS) {
            let seen = self.tasks.entry(task.pid).or_insert_with(|| Seen {
                first_ms: boot_ms,
                first_rss: rss(&task),
                last: task.clone(),
                last_ms: boot_ms,
            });
            seen.last = task;
            seen.last_ms = boot_ms;
        }
    }

    pub fn clear(&mut self) {
        self.tasks.clear();
    }

    /// The fastest growers first, the killer's choice marked (`limit_pages`:
    /// the memcg's limit, the badness's totalpages).
    pub fn top(
        &self,
        model: Option<BadnessModel>,
        page_size: u64,
        limit_pages: u64,
    ) -> Vec<Grower> {
        let points = |t: &TaskSample| {
            let input = BadnessInput {
                rss_pages: rss(t) / page_size.max(1),
                swap_pages: t.swap_bytes / page_size.max(1),
                pgtable_pages: t.pgtables_bytes / page_size.max(1),
                oom_score_adj: t.oom_score_adj,
                uid: t.uid,
            };
            model.and_then(|m| badness(m, input, limit_pages.max(1)))
        };
        let victim = self
            .tasks
            .values()
            .filter_map(|s| Some((points(&s.last)?, s.last.pid)))
            .max()
            .map(|(_, pid)| pid);
        let mut growers: Vec<Grower> = self
            .tasks
            .values()
            .map(|s| {
                let span_ms = s.last_ms.saturating_sub(s.first_ms).max(1) as i128;
                let grown = rss(&s.last) as i128 - s.first_rss as i128;
                Grower {
                    pid: s.last.pid,
                    comm: s.last.comm.clone(),
                    rss_bytes: rss(&s.last),
                    growth_bytes_per_s: (grown * 1000 / span_ms) as i64,
                    would_be_killed: victim == Some(s.last.pid),
                }
            })
            .collect();
        growers.sort_by(|a, b| {
            b.growth_bytes_per_s
                .cmp(&a.growth_bytes_per_s)
                .then(b.rss_bytes.cmp(&a.rss_bytes))
        });
        growers.truncate(TOP_GROWERS);
        growers
    }
}
