//! The tasks of a memcg and their memory, read from `/proc` while its OOM
//! is handled: the candidates of an OOM whose task table the kernel did not
//! print (its reports are rate-limited) on a node where no hook sees the
//! killer's own evaluation.
use std::{fs, path::Path};

use crate::cgroup::{MemoryHierarchy, subtree};

/// Bound on the tasks read for one OOM: a memcg with thousands of tasks
/// costs at most this many `/proc` reads; the rest are counted in `cut`.
pub const MAX_SNAPSHOT_TASKS: usize = 512;

/// One process as `/proc/<pid>/status` and `oom_score_adj` showed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskSample {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    /// `Name:` (the kernel's comm; untrusted text).
    pub comm: String,
    pub rss_anon_bytes: u64,
    pub rss_file_bytes: u64,
    pub rss_shmem_bytes: u64,
    pub swap_bytes: u64,
    pub pgtables_bytes: u64,
    pub oom_score_adj: i32,
}

/// The tasks of the memcg (and its descendants) read after an OOM kill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskSnapshot {
    /// The memcg read (path relative to the hierarchy's root).
    pub memcg: String,
    /// `CLOCK_BOOTTIME` of the read, in ns (to tell its delay after the kill).
    pub read_boot_ns: u64,
    pub tasks: Vec<TaskSample>,
    /// Tasks past [`MAX_SNAPSHOT_TASKS`], not read.
    pub cut: u32,
}

impl TaskSnapshot {
    /// Upper bound of its heap use.
    pub fn heap_bytes(&self) -> usize {
        self.memcg.len()
            + self
                .tasks
                .iter()
                .map(|t| std::mem::size_of::<TaskSample>() + t.comm.len())
                .sum::<usize>()
    }
}

impl MemoryHierarchy {
    /// The processes of `relative` and its descendants with their memory,
    /// from `proc` (the host's `/proc`). A task gone between the listing and
    /// its read is left out, and so is `victim`, unread: reading a process's
    /// `/proc` files pins its memory while the kernel allocates for the
    /// read, and a victim's memory pinned during a global OOM is not freed
    /// by its exit, so the kernel kills again (and again).
    pub fn task_snapshot(
        &self,
        relative: &str,
        proc: &Path,
        read_boot_ns: u64,
        victim: Option<u32>,
    ) -> TaskSnapshot {
        let mut pids = Vec::new();
        let mut cut = 0u32;
        // Descendants too: the killer of a parent's limit scores their tasks.
        for dir in subtree(self.absolute(relative), usize::MAX) {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    if pids.len() < MAX_SNAPSHOT_TASKS {
                        pids.push(pid);
                    } else {
                        cut = cut.saturating_add(1);
                    }
                }
            }
        }
        let tasks = pids
            .iter()
            .filter(|&&pid| Some(pid) != victim)
            .filter_map(|&pid| read_task(proc, pid))
            .collect();
        TaskSnapshot {
            memcg: relative.to_owned(),
            read_boot_ns,
            tasks,
            cut,
        }
    }
}

fn read_task(proc: &Path, pid: u32) -> Option<TaskSample> {
    let dir = proc.join(pid.to_string());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let adj = fs::read_to_string(dir.join("oom_score_adj")).ok()?;
    let mut sample = parse_status(&status)?;
    sample.pid = pid;
    sample.oom_score_adj = adj.trim().parse().ok()?;
    Some(sample)
}

/// The fields of `/proc/<pid>/status` the badness counts. A kernel thread
/// or a task that has released its memory has no `RssAnon:` line: None.
pub fn parse_status(text: &str) -> Option<TaskSample> {
    let mut sample = TaskSample::default();
    let mut has_memory = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let kb = || -> Option<u64> {
            value
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()?
                .checked_mul(1024)
        };
        match key {
            "Name" => sample.comm = value.to_owned(),
            "Tgid" => sample.tgid = value.parse().ok()?,
            "Uid" => sample.uid = value.split_whitespace().next()?.parse().ok()?,
            "RssAnon" => {
                sample.rss_anon_bytes = kb()?;
                has_memory = true;
            }
            "RssFile" => sample.rss_file_bytes = kb()?,
            "RssShmem" => sample.rss_shmem_bytes = kb()?,
            "VmSwap" => sample.swap_bytes = kb()?,
            "VmPTE" => sample.pgtables_bytes = kb()?,
            _ => {}
        }
    }
    has_memory.then_some(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of a real `/proc/<pid>/status` (6.18) that matter here.
    const STATUS: &str = "Name:\tstormhog\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\n\
        Ngid:\t0\nPid:\t4242\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nGid:\t0\t0\t0\t0\n\
        VmPeak:\t   70000 kB\nVmRSS:\t   66000 kB\nRssAnon:\t   65000 kB\nRssFile:\t     900 kB\n\
        RssShmem:\t     100 kB\nVmPTE:\t     188 kB\nVmSwap:\t      12 kB\nThreads:\t1\n";

    #[test]
    fn status_gives_the_badness_inputs_in_bytes() {
        let sample = parse_status(STATUS).unwrap();
        assert_eq!(sample.comm, "stormhog");
        assert_eq!((sample.tgid, sample.uid), (4242, 1000));
        assert_eq!(sample.rss_anon_bytes, 65000 * 1024);
        assert_eq!(sample.rss_file_bytes, 900 * 1024);
        assert_eq!(sample.rss_shmem_bytes, 100 * 1024);
        assert_eq!(sample.pgtables_bytes, 188 * 1024);
        assert_eq!(sample.swap_bytes, 12 * 1024);
    }

    #[test]
    fn kernel_threads_and_garbage_are_no_sample() {
        assert_eq!(
            parse_status("Name:\tkworker/0:1\nTgid:\t7\nUid:\t0\t0\t0\t0\n"),
            None
        );
        assert_eq!(parse_status("RssAnon:\tlots kB\n"), None);
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("RssAnon:\t99999999999999999999 kB\n"), None);
    }
}
