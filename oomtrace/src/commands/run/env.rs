//! [`LiveEnv`]: the running machine as the model layer's [`Environment`]
//! sees it (memcg files, meminfo, the tracer's reclaim counters, clocks),
//! and the snapshots of OOM memcgs read while their OOM is handled.
use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use oomtrace_core::{
    base::{
        bounds,
        host::page_size,
        time::{now_rfc3339, rfc3339},
    },
    cgroup::{
        CgroupVersion, MemcgFiles, MemcgSnapshot, MemoryHierarchy,
        container::Container,
        kubernetes::KubeNames,
        process::{CmdlineCache, ProcessArgs},
        runtimes::{NodeNames, RuntimeNames},
        tasks::{TaskSample, TaskSnapshot},
    },
    events::Event,
    model::{
        decision::{Environment, closest_to_limit},
        risk::{MemcgSample, RiskEnvironment, parse_stat},
        score::BadnessModel,
    },
};
use oomtrace_ebpf::MemcgReclaimStats;

use crate::{commands::run::memcg_paths::MemcgPaths, kernel::loader::Tracer};

/// What the loop knows about this machine, for the decision rebuild.
pub struct LiveEnv {
    /// The loaded programs: reclaim counters, drops, the charge hook.
    pub tracer: Tracer,
    /// Cgroup ids → paths, looked up off the loop.
    paths: MemcgPaths,
    hierarchy: MemoryHierarchy,
    page_size: u64,
    release: String,
    /// OOM memcgs' files read as their OOM events arrived, by path, with the
    /// boot time of the read.
    snapshots: HashMap<String, (MemcgSnapshot, u64)>,
    /// Kubernetes and runtime names of the node's containers, remembered
    /// past their death.
    names: NodeNames,
    /// Where the host's /proc is (`--host-root`).
    proc: PathBuf,
    /// Without the killer's hooks: the OOM memcg's tasks, read as each
    /// victim's kill is seen, with the victim's pid, oldest first (None:
    /// not taken); bounded by [`bounds::TASK_SNAPSHOTS`].
    tasks: Option<VecDeque<(u32, TaskSnapshot)>>,
    /// Task snapshots evicted past their budget before their decision.
    pub evicted_task_snapshots: u64,
    /// Command lines read at start and at each exec (None: `--no-cmdline`).
    cmdlines: Option<CmdlineCache>,
    /// Memcgs whose containers are to be named once a scan finds their
    /// path, with when they were asked for.
    names_wanted: Vec<(u64, Instant)>,
}

/// Memcgs waiting for their path to be named, at most (more are not named
/// ahead of their decision).
const MAX_NAMES_WANTED: usize = 256;
/// A wanted memcg whose path no scan found by then is given up.
const NAMES_WANTED_FOR: Duration = Duration::from_secs(5);

/// Bound on kept snapshots (one per memcg that OOMed recently).
const MAX_SNAPSHOTS: usize = 256;

impl LiveEnv {
    pub fn new(
        tracer: Tracer,
        hierarchy: MemoryHierarchy,
        paths: MemcgPaths,
        release: String,
        host_root: &Path,
        names: NodeNames,
        cmdlines: Option<CmdlineCache>,
    ) -> Self {
        Self {
            tracer,
            paths,
            hierarchy,
            page_size: page_size() as u64,
            release,
            snapshots: HashMap::new(),
            names,
            proc: host_root.join("proc"),
            tasks: None,
            evicted_task_snapshots: 0,
            cmdlines,
            names_wanted: Vec::new(),
        }
    }

    /// Reads the command line of a task that just exec'd (or one the cache
    /// lacks). Never a victim's once it is marked: the read pins its memory
    /// while the kernel allocates (see `task_snapshot`); the read at exec or
    /// at start stands.
    pub fn read_cmdline(&mut self, pid: u32) {
        if let Some(cache) = self.cmdlines.as_mut() {
            cache.read(&self.proc, pid, true);
        }
    }

    /// Command lines evicted past their budget.
    pub fn evicted_cmdlines(&self) -> u64 {
        self.cmdlines.as_ref().map_or(0, |c| c.evicted)
    }

    /// Read the OOM memcg's tasks as each kill is seen: the candidates of
    /// decisions whose task table the kernel does not print, on a backend
    /// that does not see the killer's evaluation.
    pub fn snapshot_tasks_on_kill(&mut self) {
        self.tasks.get_or_insert_with(VecDeque::new);
    }

    /// Once a second: remember the names of containers started since.
    pub fn refresh_names(&mut self) {
        self.names.refresh();
    }

    /// The first events of an OOM: read the memcg's state before the kill
    /// frees memory or the memcg is removed.
    pub fn snapshot_oom_memcgs(&mut self, event: &Event) {
        match event {
            Event::OomEnd(e) if e.memcg_id != 0 => self.snapshot(e.memcg_id),
            Event::VictimTask(t) => {
                let depth = (t.memcg_depth as usize).min(t.memcg.len());
                for level in &t.memcg[..depth] {
                    if level.cgroup_id != 0 {
                        self.snapshot(level.cgroup_id);
                    }
                }
                self.snapshot_tasks(t);
                // The victim's names, while its container still exists.
                if let Some(level) = t.memcg[..depth].first() {
                    self.want_names(level.cgroup_id);
                }
            }
            _ => {}
        }
    }

    /// Reads the memcg's files now, while its OOM is being handled (a
    /// memcg whose path is not known yet: by the lookup's worker, once found).
    fn snapshot(&mut self, cgroup_id: u64) {
        let Some(path) = self.paths.lookup(cgroup_id, true) else {
            return;
        };
        let read_ns = boot_ns_now();
        if let Some(snapshot) = self.hierarchy.snapshot(&path) {
            self.keep_snapshot(path, snapshot, read_ns);
        }
    }

    fn keep_snapshot(&mut self, path: String, snapshot: MemcgSnapshot, read_ns: u64) {
        if self.snapshots.len() >= MAX_SNAPSHOTS {
            self.snapshots.clear();
        }
        self.snapshots.insert(path, (snapshot, read_ns));
    }

    /// A memcg nearing an OOM (its reclaim fell short) or a victim's: its
    /// container is named now, while it exists (`ctr run` removes its
    /// bundle as the task exits), or once a scan finds a new memcg's path.
    pub fn want_names(&mut self, cgroup_id: u64) {
        match self.paths.lookup(cgroup_id, false) {
            Some(path) => self.resolve_names(&path),
            None if self.names_wanted.len() < MAX_NAMES_WANTED
                && !self.names_wanted.iter().any(|(id, _)| *id == cgroup_id) =>
            {
                self.names_wanted.push((cgroup_id, Instant::now()));
            }
            None => {}
        }
    }

    /// After a wake-up (a scan's answer among them): the wanted memcgs
    /// whose path is known now are named.
    pub fn name_wanted(&mut self, now: Instant) {
        let wanted = std::mem::take(&mut self.names_wanted);
        for (id, asked) in wanted {
            match self.paths.lookup(id, false) {
                Some(path) => self.resolve_names(&path),
                None if asked + NAMES_WANTED_FOR > now => self.names_wanted.push((id, asked)),
                None => {}
            }
        }
    }

    /// Named as a decision names it; the names are remembered for it.
    fn resolve_names(&mut self, path: &str) {
        self.names.container(path);
    }

    /// Before the decisions are polled: what the lookups' worker read.
    pub fn take_late_snapshots(&mut self) {
        for (path, snapshot, read_ns) in self.paths.take_snapshots() {
            self.keep_snapshot(path, snapshot, read_ns);
        }
    }

    /// Notified when the lookups' worker answered (decisions may be ready).
    pub fn paths_answered(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.paths.answered()
    }

    /// The tasks of the memcg closest to its limit in the victim's chain
    /// (the one whose limit fired), read now, just after the kill.
    fn snapshot_tasks(&mut self, t: &oomtrace_ebpf::VictimTaskEvent) {
        if self.tasks.is_none() {
            return;
        }
        let depth = (t.memcg_depth as usize).min(t.memcg.len());
        let Some(level) = closest_to_limit(&t.memcg[..depth], self.page_size) else {
            return;
        };
        let Some(path) = self.paths.lookup(level.cgroup_id, false) else {
            return;
        };
        let snapshot =
            self.hierarchy
                .task_snapshot(&path, &self.proc, boot_ns_now(), Some(t.victim_tgid));
        for task in &snapshot.tasks {
            if self
                .cmdlines
                .as_ref()
                .is_some_and(|c| c.get(task.tgid).is_none())
            {
                self.read_cmdline(task.tgid);
            }
        }
        let Some(tasks) = self.tasks.as_mut() else {
            return;
        };
        tasks.push_back((t.victim_pid, snapshot));
        let mut total: usize = tasks.iter().map(|(_, s)| s.heap_bytes()).sum();
        while total > bounds::TASK_SNAPSHOTS {
            let Some((_, oldest)) = tasks.pop_front() else {
                break;
            };
            total -= oldest.heap_bytes();
            self.evicted_task_snapshots += 1;
        }
    }

    /// Decisions went out: only the task snapshots of victims whose
    /// decision is still in flight are needed (decisions of independent
    /// memcgs go out in any order; a kill that became no decision of its
    /// own, e.g. an oom.group sweep's, leaves one no decision will take).
    pub fn keep_task_snapshots(&mut self, pending: impl Fn(u32) -> bool) {
        if let Some(tasks) = self.tasks.as_mut() {
            tasks.retain(|(pid, _)| pending(*pid));
        }
    }

    /// The memcg (path relative to the root) still exists.
    pub fn memcg_exists(&self, relative: &str) -> bool {
        let relative = relative.trim_start_matches('/');
        self.hierarchy.mount.join(relative).is_dir()
    }

    /// Cgroups left out of the id → path cache for lack of room.
    pub fn uncached_memcgs(&self) -> u64 {
        self.paths.uncached()
    }

    /// Path lookups dropped because their queue was full.
    pub fn dropped_path_lookups(&self) -> u64 {
        self.paths.dropped()
    }

    /// An event's boot time as RFC 3339 (now, if the clocks cannot tell).
    pub fn time_of_boot_ns(&self, boot_ns: u64) -> String {
        self.wall_time_of_boot_ns(boot_ns)
            .map(rfc3339)
            .unwrap_or_else(now_rfc3339)
    }
}

/// CLOCK_BOOTTIME now, in nanoseconds: the clock of the kernel's events.
pub fn boot_ns_now() -> u64 {
    clock(libc::CLOCK_BOOTTIME).as_nanos() as u64
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and pointer.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub(super) fn wall_time_of(clock_id: libc::clockid_t, at: Duration) -> Option<SystemTime> {
    let now = clock(clock_id);
    SystemTime::now().checked_sub(now.checked_sub(at).unwrap_or_default())
}

fn meminfo_kb(proc: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(proc.join("meminfo")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

impl Environment for LiveEnv {
    fn memcg_path(&mut self, cgroup_id: u64) -> Option<String> {
        self.paths.lookup(cgroup_id, false)
    }
    fn memcg_paths_ready(&mut self, cgroup_ids: &[u64]) -> bool {
        self.paths.ready(cgroup_ids)
    }
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
        let files = self.hierarchy.read_counters(relative);
        files.usage_bytes.is_some().then_some(files)
    }
    fn swap_total_pages(&self) -> Option<u64> {
        meminfo_kb(&self.proc, "SwapTotal").map(|kb| kb * 1024 / self.page_size)
    }
    fn mem_total_pages(&self) -> Option<u64> {
        meminfo_kb(&self.proc, "MemTotal").map(|kb| kb * 1024 / self.page_size)
    }
    fn page_size(&self) -> u64 {
        self.page_size
    }
    fn kernel_release(&self) -> Option<String> {
        Some(self.release.clone())
    }
    fn reclaim_stats(&self, memcg_id: u64) -> Option<MemcgReclaimStats> {
        self.tracer.reclaim_stats(memcg_id)
    }
    fn wall_time_of_boot_ns(&self, boot_ns: u64) -> Option<SystemTime> {
        wall_time_of(libc::CLOCK_BOOTTIME, Duration::from_nanos(boot_ns))
    }
    fn memcg_snapshot(&self, relative: &str) -> Option<(MemcgSnapshot, u64)> {
        self.snapshots.get(relative).cloned()
    }
    fn task_snapshot(&self, victim_pid: u32) -> Option<TaskSnapshot> {
        let tasks = self.tasks.as_ref()?;
        tasks
            .iter()
            .rev()
            .find(|(pid, _)| *pid == victim_pid)
            .map(|(_, s)| s.clone())
    }
    fn process_args(&self, pid: u32) -> Option<ProcessArgs> {
        self.cmdlines.as_ref()?.get(pid).cloned()
    }
    fn kubernetes_names(&mut self, container: &Container, memcg: &str) -> Option<KubeNames> {
        self.names.kube.resolve(container, memcg)
    }
    fn runtime_names(
        &mut self,
        container: Option<&Container>,
        memcg: &str,
    ) -> Option<RuntimeNames> {
        self.names.runtimes.resolve(container, memcg)
    }
    fn wall_time_of_log_seconds(&self, seconds: f64) -> Option<SystemTime> {
        wall_time_of(
            libc::CLOCK_MONOTONIC,
            Duration::from_secs_f64(seconds.max(0.0)),
        )
    }
}

/// The risk model's reads: the memcg's counters and, while it grows, its
/// tasks (`model::risk`).
impl RiskEnvironment for LiveEnv {
    fn sample(&mut self, memcg: &str) -> Option<MemcgSample> {
        let dir = self.hierarchy.absolute(memcg);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let number = |name: &str| read(name).and_then(|s| s.trim().parse::<u64>().ok());
        let stat = read("memory.stat")?;
        let version = self.hierarchy.version;
        let (usage, limit, high, failcnt) = match version {
            CgroupVersion::V1 => (
                number("memory.usage_in_bytes")?,
                number("memory.limit_in_bytes"),
                None,
                number("memory.failcnt"),
            ),
            CgroupVersion::V2 => (
                number("memory.current")?,
                number("memory.max"),
                number("memory.high"),
                read("memory.events").and_then(|e| events_max(&e)),
            ),
        };
        // The in-kernel reclaim statistics of tasks of this very memcg (by
        // its cgroup id, the directory's inode).
        let reclaim = std::fs::metadata(&dir).ok().and_then(|m| {
            self.tracer
                .reclaim_stats(std::os::unix::fs::MetadataExt::ino(&m))
        });
        Some(MemcgSample {
            boot_ms: boot_ns_now() / 1_000_000,
            usage_bytes: usage,
            // v1 says "no limit" with a page-rounded i64::MAX.
            limit_bytes: limit.filter(|&l| l < 1 << 62),
            high_bytes: high.filter(|&h| h < 1 << 62),
            stat: parse_stat(&stat, version),
            failcnt,
            reclaim_passes: reclaim.map(|r| r.passes),
            short_reclaim_passes: reclaim.map(|r| r.short_passes),
        })
    }

    fn tasks(&mut self, memcg: &str) -> Vec<TaskSample> {
        self.hierarchy
            .task_snapshot(memcg, &self.proc, 0, None)
            .tasks
    }

    fn container(&mut self, memcg: &str) -> Option<Container> {
        self.names.container(memcg)
    }

    fn badness_model(&self) -> Option<BadnessModel> {
        BadnessModel::for_release(&self.release)
    }

    fn page_size(&self) -> u64 {
        self.page_size
    }
}

/// The `max` count of a v2 `memory.events`.
fn events_max(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|v| v.trim().parse().ok())
}
