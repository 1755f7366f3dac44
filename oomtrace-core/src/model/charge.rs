//! Charge failures and OOM-disabled waits as the kernel programs see them on
//! the memcg OOM slow path (fentry/kprobe backends): `charge_failure`
//! records, their per-memcg rate-limit summary, and `oom_stall` records
//! built from the exact begin and end of every wait.
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use oomtrace_ebpf::{
    ChargeFailureEvent, ChargeFailureKey, ChargeFailureState, OomWaitEvent, UNAVAILABLE_U64,
    UNKNOWN_GFP, UNKNOWN_ORDER, charge_failure_reason, oom_wait_phase,
};
use serde::Serialize;

use crate::{
    base::{Envelope, bounds, units::human_bytes},
    cgroup::MemcgFiles,
    events::comm_str,
    model::stall::{StallRecord, StalledTask},
};

/// `__GFP_*` bits whose values are the same on Linux 4.x to 6.x
/// (include/linux/gfp_types.h), for naming a mask read by a kernel program.
const GFP_BITS: &[(u32, &str)] = &[
    (0x01, "__GFP_DMA"),
    (0x02, "__GFP_HIGHMEM"),
    (0x04, "__GFP_DMA32"),
    (0x08, "__GFP_MOVABLE"),
    (0x10, "__GFP_RECLAIMABLE"),
    (0x20, "__GFP_HIGH"),
    (0x40, "__GFP_IO"),
    (0x80, "__GFP_FS"),
    (0x100, "__GFP_ZERO"),
    (0x400, "__GFP_DIRECT_RECLAIM"),
    (0x800, "__GFP_KSWAPD_RECLAIM"),
    (0x1000, "__GFP_WRITE"),
    (0x2000, "__GFP_NOWARN"),
    (0x4000, "__GFP_RETRY_MAYFAIL"),
    (0x8000, "__GFP_NOFAIL"),
    (0x10000, "__GFP_NORETRY"),
    (0x20000, "__GFP_MEMALLOC"),
    (0x40000, "__GFP_COMP"),
    (0x80000, "__GFP_NOMEMALLOC"),
    (0x100000, "__GFP_HARDWALL"),
    (0x200000, "__GFP_THISNODE"),
    (0x400000, "__GFP_ACCOUNT"),
];
const GFP_KERNEL: u32 = 0xcc0;
const GFP_HIGHUSER_MOVABLE: u32 = 0x100cca;
/// `GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN`
/// without reclaim; `GFP_TRANSHUGE` adds direct reclaim.
const GFP_TRANSHUGE_LIGHT: u32 = 0x1c20ca;
const GFP_TRANSHUGE: u32 = GFP_TRANSHUGE_LIGHT | 0x400;
const GFP_NOFAIL: u32 = 0x8000;
const GFP_NORETRY: u32 = 0x10000;
const GFP_RETRY_MAYFAIL: u32 = 0x4000;
const GFP_DIRECT_RECLAIM: u32 = 0x400;
/// `PAGE_ALLOC_COSTLY_ORDER`: larger charges never invoke the OOM killer.
const COSTLY_PAGES: u32 = 1 << 3;

/// Why `try_charge_memcg` returned -ENOMEM without the OOM path, in the
/// order the kernel tests it.
fn enomem_reason(gfp: u32, nr_pages: u32) -> &'static str {
    if gfp & GFP_DIRECT_RECLAIM == 0 {
        "nowait"
    } else if gfp & GFP_NORETRY != 0 {
        "noretry"
    } else if gfp & GFP_RETRY_MAYFAIL != 0 {
        "retry_mayfail"
    } else if nr_pages > COSTLY_PAGES {
        "costly_order"
    } else {
        "no_progress"
    }
}

/// A gfp mask the way the kernel's `%pGg` prints it: the composite name
/// first (`GFP_KERNEL`, `GFP_HIGHUSER_MOVABLE`), then the remaining bits.
pub fn gfp_flags(mask: u32) -> String {
    let mut names = Vec::new();
    let mut rest = mask;
    for (composite, name) in [
        (GFP_TRANSHUGE, "GFP_TRANSHUGE"),
        (GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
        (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
        (GFP_KERNEL | 0x400000, "GFP_KERNEL_ACCOUNT"),
        (GFP_KERNEL, "GFP_KERNEL"),
    ] {
        if rest & composite == composite {
            names.push(name.to_owned());
            rest &= !composite;
            break;
        }
    }
    for &(bit, name) in GFP_BITS {
        if rest & bit != 0 {
            names.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailedTask {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

/// `charge_failure`: a memcg charge that failed, caught on the OOM slow path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChargeFailureRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The memcg whose limit the charge hit (null: removed before it could be named).
    pub memcg: Option<String>,
    pub task: FailedTask,
    /// Null where the kernel does not keep them (the v1 wait on newer kernels).
    pub gfp_mask: Option<String>,
    pub gfp_flags: Option<String>,
    pub order: Option<i32>,
    /// Pages the charge asked for (the armed charge hook sees it; null from the OOM path).
    pub nr_pages: Option<u32>,
    /// `no_victim` (the OOM killer found nothing to kill), `oom_kill_disabled`,
    /// or, from the armed charge hook, why the charge gave up without the OOM
    /// killer: `noretry`, `nowait`, `costly_order`, `retry_mayfail`, `no_progress`.
    pub reason: &'static str,
    /// What the caller got: `enomem`, `charged_over_limit` (__GFP_NOFAIL) or
    /// `waits` (an OOM-disabled memcg: the task sleeps until memory is freed).
    pub result: &'static str,
    pub limit_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Failures of this memcg not reported since its previous record (in-kernel rate limit).
    pub suppressed: u64,
    /// Failures of this memcg since tracing began, this one included.
    pub failures_total: u64,
    pub explanation: Vec<String>,
    /// The memcg's OOM episode (`model::episode`); null until the session assigns it.
    pub oom_id: Option<String>,
}

/// `charge_failure_summary`: at exit, memcgs whose last failures were rate-limited away.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChargeFailureSummary {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub memcg: Option<String>,
    /// `no_victim`, `oom_kill_disabled`, or `without_oom` (the armed charge
    /// hook: `noretry`, `nowait`, ... records).
    pub reason: &'static str,
    pub failures_total: u64,
    pub reported: u64,
    /// Failures never reported as a record.
    pub suppressed: u64,
}

/// What the tracker needs from the collector (names and files of memcgs).
pub trait MemcgLookup {
    fn memcg_path(&mut self, cgroup_id: u64) -> Option<String>;
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles>;
    fn page_size(&self) -> u64;
}

impl<E: crate::model::decision::Environment> MemcgLookup for E {
    fn memcg_path(&mut self, cgroup_id: u64) -> Option<String> {
        crate::model::decision::Environment::memcg_path(self, cgroup_id)
    }
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
        crate::model::decision::Environment::memcg_files(self, relative)
    }
    fn page_size(&self) -> u64 {
        crate::model::decision::Environment::page_size(self)
    }
}

/// One memcg's OOM-disabled stall: its waiting tasks, from BPF events.
struct BpfStall {
    memcg: Option<String>,
    first_begin_ns: u64,
    last_end_ns: u64,
    /// By tid; `active` while the task is inside `mem_cgroup_oom_synchronize`.
    tasks: BTreeMap<u32, WaitingTask>,
    /// When the last waiter left: the release is reported after [`RELEASE_GRACE`].
    idle_since: Option<Instant>,
}

struct WaitingTask {
    tgid: u32,
    comm: String,
    active: bool,
    waited_ns: u64,
    waits: u32,
}

/// Waiters of an OOM-disabled memcg are woken whenever it uncharges memory
/// and most go back to sleep at once: a stall ends only when nobody has
/// waited for this long.
const RELEASE_GRACE: Duration = Duration::from_millis(250);

/// Heap bytes of one `reported_total` entry.
const REPORTED_ENTRY: usize =
    std::mem::size_of::<((u64, u32), (u64, u64))>() + bounds::ENTRY_OVERHEAD;

pub struct ChargeTracker {
    /// Highest `failures_total` reported per (memcg id, kernel reason), and
    /// when it was last updated (a sequence number: least recent goes first).
    reported_total: HashMap<(u64, u32), (u64, u64)>,
    updates: u64,
    stalls: HashMap<u64, BpfStall>,
    /// Estimated heap bytes of `stalls` ([`stall_bytes`], [`task_bytes`]).
    stall_bytes: usize,
    budgets: Budgets,
    /// Memcgs whose reported total was forgotten for room: a later record or
    /// summary of theirs counts as suppressed what had been reported.
    pub evicted_reported: u64,
    /// Stalls or waiting tasks not tracked for lack of room.
    pub evicted_stall_tasks: u64,
}

/// The byte budgets of a tracker ([`bounds`]; smaller in tests).
struct Budgets {
    reported: usize,
    stalls: usize,
}

fn stall_bytes(memcg: Option<&str>) -> usize {
    std::mem::size_of::<(u64, BpfStall)>() + bounds::ENTRY_OVERHEAD + memcg.map_or(0, str::len)
}

fn task_bytes(comm: &str) -> usize {
    std::mem::size_of::<(u32, WaitingTask)>() + bounds::ENTRY_OVERHEAD + comm.len()
}

impl Default for ChargeTracker {
    fn default() -> Self {
        Self::with_budgets(bounds::CHARGE_REPORTED, bounds::STALLS)
    }
}

impl ChargeTracker {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_budgets(reported: usize, stalls: usize) -> Self {
        Self {
            reported_total: HashMap::new(),
            updates: 0,
            stalls: HashMap::new(),
            stall_bytes: 0,
            budgets: Budgets { reported, stalls },
            evicted_reported: 0,
            evicted_stall_tasks: 0,
        }
    }

    /// Estimated heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.reported_total.len() * REPORTED_ENTRY + self.stall_bytes
    }

    /// What bounded eviction lost so far, by cause (`lost` records).
    pub fn evictions(&self) -> [(&'static str, u64); 2] {
        [
            ("evicted:charge_reported", self.evicted_reported),
            ("evicted:stall_tasks", self.evicted_stall_tasks),
        ]
    }

    /// When a stall whose waiters all left is due to be reported released.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stalls
            .values()
            .filter_map(|s| s.idle_since)
            .map(|at| at + RELEASE_GRACE)
            .min()
    }

    /// Records `total` as reported for `key`; returns the previous total.
    /// Past the budget the least recently updated memcg is forgotten.
    fn note_reported(&mut self, key: (u64, u32), total: u64) -> u64 {
        self.updates += 1;
        if !self.reported_total.contains_key(&key)
            && (self.reported_total.len() + 1) * REPORTED_ENTRY > self.budgets.reported
            && let Some(&oldest) = self
                .reported_total
                .iter()
                .min_by_key(|(_, (_, updated))| *updated)
                .map(|(k, _)| k)
        {
            self.reported_total.remove(&oldest);
            self.evicted_reported += 1;
        }
        self.reported_total
            .insert(key, (total, self.updates))
            .map_or(0, |(previous, _)| previous)
    }

    pub fn on_failure(
        &mut self,
        e: &ChargeFailureEvent,
        time: String,
        env: &mut dyn MemcgLookup,
    ) -> ChargeFailureRecord {
        let previous = self.note_reported((e.memcg_id, e.reason), e.failures_total);
        let suppressed = e.failures_total.saturating_sub(previous + 1);
        let memcg = env.memcg_path(e.memcg_id);
        let page_size = env.page_size();
        let pages = |n: u64| (n != UNAVAILABLE_U64).then(|| n.saturating_mul(page_size));
        let gfp = (e.gfp_mask != UNKNOWN_GFP).then_some(e.gfp_mask);
        let reason = match e.reason {
            charge_failure_reason::OOM_DISABLED => "oom_kill_disabled",
            charge_failure_reason::ENOMEM => enomem_reason(gfp.unwrap_or(0), e.nr_pages),
            _ => "no_victim",
        };
        let result = match (reason, gfp) {
            ("oom_kill_disabled", _) => "waits",
            (_, Some(gfp)) if gfp & GFP_NOFAIL != 0 => "charged_over_limit",
            _ => "enomem",
        };
        let nr_pages = (e.nr_pages != 0).then_some(e.nr_pages);
        // get_order(nr_pages * PAGE_SIZE) where only the size is known.
        let order = (e.order != UNKNOWN_ORDER)
            .then_some(e.order)
            .or(nr_pages.map(|n| n.next_power_of_two().trailing_zeros() as i32));
        let mut record = ChargeFailureRecord {
            envelope: Envelope::new("charge_failure", time),
            memcg,
            task: FailedTask {
                pid: e.header.pid,
                tgid: e.header.tgid,
                comm: comm_str(&e.header.comm),
            },
            gfp_mask: (e.gfp_mask != UNKNOWN_GFP).then(|| format!("{:#x}", e.gfp_mask)),
            gfp_flags: (e.gfp_mask != UNKNOWN_GFP).then(|| gfp_flags(e.gfp_mask)),
            order,
            nr_pages,
            reason,
            result,
            limit_bytes: pages(e.max_pages),
            usage_bytes: pages(e.usage_pages),
            suppressed,
            failures_total: e.failures_total,
            explanation: Vec::new(),
            oom_id: None,
        };
        record.explanation = explain_failure(&record);
        record
    }

    /// Records to print now for one wait event: a stall that begins.
    pub fn on_wait(
        &mut self,
        e: &OomWaitEvent,
        now: Instant,
        time: &str,
        env: &mut dyn MemcgLookup,
    ) -> Vec<StallRecord> {
        match e.phase {
            oom_wait_phase::BEGIN => self.on_wait_begin(e, time, env),
            _ => {
                self.on_wait_end(e, now);
                Vec::new()
            }
        }
    }

    /// A task starts waiting; the memcg's first waiter opens its stall,
    /// which is announced at once.
    fn on_wait_begin(
        &mut self,
        e: &OomWaitEvent,
        time: &str,
        env: &mut dyn MemcgLookup,
    ) -> Vec<StallRecord> {
        let is_new = !self.stalls.contains_key(&e.memcg_id);
        if is_new && !self.open_stall(e, env) {
            return Vec::new();
        }
        self.add_waiter(e);
        match self.stalls.get(&e.memcg_id) {
            Some(stall) if is_new => {
                vec![stall_record(stall, "stalled", e.header.boot_ns, time, env)]
            }
            _ => Vec::new(),
        }
    }

    /// A new stall if its bytes fit the budget (else counted evicted).
    fn open_stall(&mut self, e: &OomWaitEvent, env: &mut dyn MemcgLookup) -> bool {
        let memcg = env.memcg_path(e.memcg_id);
        let need = stall_bytes(memcg.as_deref());
        if self.stall_bytes + need > self.budgets.stalls {
            self.evicted_stall_tasks += 1;
            return false;
        }
        self.stall_bytes += need;
        self.stalls.insert(
            e.memcg_id,
            BpfStall {
                memcg,
                first_begin_ns: e.header.boot_ns,
                last_end_ns: e.header.boot_ns,
                tasks: BTreeMap::new(),
                idle_since: None,
            },
        );
        true
    }

    /// Marks the task waiting, listing it first if its bytes fit (the stall
    /// is still reported when they do not; the waiter is counted evicted).
    fn add_waiter(&mut self, e: &OomWaitEvent) {
        let tid = e.header.pid;
        let Some(stall) = self.stalls.get_mut(&e.memcg_id) else {
            return;
        };
        stall.idle_since = None;
        if let std::collections::btree_map::Entry::Vacant(slot) = stall.tasks.entry(tid) {
            let comm = comm_str(&e.header.comm);
            let need = task_bytes(&comm);
            if self.stall_bytes + need > self.budgets.stalls {
                self.evicted_stall_tasks += 1;
            } else {
                self.stall_bytes += need;
                slot.insert(WaitingTask {
                    tgid: e.header.tgid,
                    comm,
                    active: false,
                    waited_ns: 0,
                    waits: 0,
                });
            }
        }
        if let Some(task) = stall.tasks.get_mut(&tid) {
            task.active = true;
            task.waits += 1;
        }
    }

    /// A wait ended: its time is added, and the stall goes idle once nobody
    /// waits.
    fn on_wait_end(&mut self, e: &OomWaitEvent, now: Instant) {
        let Some(stall) = self.stalls.get_mut(&e.memcg_id) else {
            return;
        };
        if let Some(task) = stall.tasks.get_mut(&e.header.pid) {
            task.active = false;
            task.waited_ns += e.waited_ns;
        }
        // The wait began before the BEGIN record's header was stamped.
        stall.first_begin_ns = stall
            .first_begin_ns
            .min(e.header.boot_ns.saturating_sub(e.waited_ns));
        stall.last_end_ns = stall.last_end_ns.max(e.header.boot_ns);
        if stall.tasks.values().all(|t| !t.active) {
            stall.idle_since = Some(now);
        }
    }

    /// Stalls whose waiters have all left for [`RELEASE_GRACE`] (all idle
    /// ones with `flush`, at exit).
    pub fn poll(
        &mut self,
        now: Instant,
        flush: bool,
        time: &str,
        env: &mut dyn MemcgLookup,
    ) -> Vec<StallRecord> {
        let ended: Vec<u64> = self
            .stalls
            .iter()
            .filter(|(_, s)| {
                s.idle_since
                    .is_some_and(|at| flush || now.duration_since(at) >= RELEASE_GRACE)
            })
            .map(|(&id, _)| id)
            .collect();
        ended
            .into_iter()
            .map(|id| {
                let stall = self.stalls.remove(&id).expect("listed");
                self.stall_bytes -= stall_bytes(stall.memcg.as_deref())
                    + stall
                        .tasks
                        .values()
                        .map(|t| task_bytes(&t.comm))
                        .sum::<usize>();
                stall_record(&stall, "released", stall.last_end_ns, time, env)
            })
            .collect()
    }

    /// At exit: memcgs with failures that never made it into a record.
    pub fn summaries(
        &self,
        counts: &[(ChargeFailureKey, ChargeFailureState)],
        time: &str,
        env: &mut dyn MemcgLookup,
    ) -> Vec<ChargeFailureSummary> {
        counts
            .iter()
            .filter_map(|&(key, state)| {
                let id = key.memcg_id;
                let reported = self
                    .reported_total
                    .get(&(id, key.reason))
                    .map_or(0, |&(total, _)| total);
                let suppressed = state.failures_total.saturating_sub(reported);
                (suppressed > 0).then(|| ChargeFailureSummary {
                    envelope: Envelope::new("charge_failure_summary", time.to_owned()),
                    memcg: env.memcg_path(id),
                    reason: match key.reason {
                        charge_failure_reason::NO_VICTIM => "no_victim",
                        charge_failure_reason::OOM_DISABLED => "oom_kill_disabled",
                        _ => "without_oom",
                    },
                    failures_total: state.failures_total,
                    reported: state.reported,
                    suppressed,
                })
            })
            .collect()
    }
}

fn stall_record(
    stall: &BpfStall,
    state: &'static str,
    at_ns: u64,
    time: &str,
    env: &mut dyn MemcgLookup,
) -> StallRecord {
    let files = stall.memcg.as_deref().and_then(|m| env.memcg_files(m));
    let stalled_ms = at_ns.saturating_sub(stall.first_begin_ns) as f64 / 1e6;
    let name = stall.memcg.as_deref().unwrap_or("a removed memcg");
    let tasks: Vec<StalledTask> = stall
        .tasks
        .iter()
        .map(|(&tid, t)| StalledTask {
            pid: tid,
            comm: t.comm.clone(),
            wchan: Some("mem_cgroup_oom_synchronize".to_owned()),
            state: Some(if t.active { "D" } else { "R" }.to_owned()),
            tgid: Some(t.tgid),
            waited_ms: Some(t.waited_ns as f64 / 1e6),
            waits: Some(t.waits),
        })
        .collect();
    let limit = files.as_ref().and_then(|f| f.limit_bytes);
    let explanation = explain_stall(name, limit, state, &tasks, stalled_ms);
    StallRecord {
        envelope: Envelope::new("oom_stall", time.to_owned()),
        memcg: stall.memcg.clone().unwrap_or_default(),
        state,
        stalled_ms,
        oom_kill_disable: true,
        limit_bytes: limit,
        usage_bytes: files.as_ref().and_then(|f| f.usage_bytes),
        tasks,
        explanation,
        source: "bpf",
        oom_id: None,
    }
}

/// A stall that begins says why nothing happens; one that ends, for how
/// long and who waited longest.
fn explain_stall(
    name: &str,
    limit: Option<u64>,
    state: &str,
    tasks: &[StalledTask],
    stalled_ms: f64,
) -> Vec<String> {
    let limit = limit.map_or("its limit".to_owned(), |l| {
        format!("its limit of {}", human_bytes(l))
    });
    if state == "stalled" {
        return vec![
            format!(
                "{name} is at {limit} and its OOM killer is disabled (memory.oom_control oom_kill_disable=1): a page fault's charge failed, the kernel kills nothing and prints nothing."
            ),
            format!(
                "{} task(s) wait in mem_cgroup_oom_synchronize; they stay blocked until memory is freed, the limit is raised or oom_kill_disable is set back to 0.",
                tasks.len()
            ),
        ];
    }
    let longest = tasks
        .iter()
        .filter_map(|t| t.waited_ms.map(|w| (w, t)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut lines = vec![format!(
        "The OOM stall of {name} ended after {:.1} s: no task has waited in mem_cgroup_oom_synchronize for {} ms.",
        stalled_ms / 1000.0,
        RELEASE_GRACE.as_millis()
    )];
    if let Some((waited, task)) = longest {
        lines.push(format!(
            "{} (pid {}) waited longest: {:.1} s in {} wait(s).",
            task.comm,
            task.pid,
            waited / 1000.0,
            task.waits.unwrap_or(0)
        ));
    }
    lines
}

fn explain_failure(r: &ChargeFailureRecord) -> Vec<String> {
    let memcg = r.memcg.as_deref().unwrap_or("a memcg");
    let at = match (r.usage_bytes, r.limit_bytes) {
        (Some(usage), Some(limit)) => {
            format!(" ({} used of {})", human_bytes(usage), human_bytes(limit))
        }
        _ => String::new(),
    };
    let who = format!("{} (pid {})", r.task.comm, r.task.pid);
    let mut out = Vec::new();
    let gave_up = |why: &str| {
        format!(
            "{who} could not charge {} to {memcg}{at}: reclaim did not free enough and {why}, so the charge failed without the OOM killer.",
            r.nr_pages
                .map_or("memory".to_owned(), |n| format!("{n} page(s)"))
        )
    };
    match r.reason {
        "oom_kill_disabled" => out.push(format!(
            "{who} could not charge memory to {memcg}{at}, whose OOM killer is disabled: the page fault failed and the task now waits for memory instead of anyone being killed."
        )),
        "nowait" => out.push(gave_up("the allocation may not sleep (no direct reclaim)")),
        "noretry" => out.push(gave_up(
            "the allocation asked not to retry (__GFP_NORETRY; a transparent huge page falls back to small pages)",
        )),
        "retry_mayfail" => out.push(gave_up("the allocation accepts failure (__GFP_RETRY_MAYFAIL)")),
        "costly_order" => out.push(gave_up(
            "charges above 8 pages never invoke the OOM killer (PAGE_ALLOC_COSTLY_ORDER)",
        )),
        "no_progress" => out.push(gave_up(
            "the retries ran out (the task is dying, or an OOM of this memcg is already being handled)",
        )),
        _ => out.push(format!(
            "{who} could not charge memory to {memcg}{at} and the OOM killer found nothing to kill (every task is unkillable, oom_score_adj -1000, or already exiting)."
        )),
    }
    let what = if r.result == "charged_over_limit" {
        "__GFP_NOFAIL: the kernel charges it past the limit anyway".to_owned()
    } else if r.result == "waits" {
        "a user page fault: it is retried once the wait ends".to_owned()
    } else if r
        .gfp_flags
        .as_deref()
        .is_some_and(|f| f.contains("ACCOUNT"))
    {
        "kernel memory charged to the memcg (fork's stacks and page tables, sockets, dentries): the system call fails with ENOMEM — fork reports 'Cannot allocate memory'".to_owned()
    } else {
        "an madvise(MADV_POPULATE_WRITE)/mlock/MAP_POPULATE caller gets ENOMEM (EAGAIN from mlock); a plain page fault retries the OOM path".to_owned()
    };
    out.push(format!(
        "The allocation was {} (order {}): {what}.",
        r.gfp_flags.as_deref().unwrap_or("of unrecorded type"),
        r.order.map_or("?".to_owned(), |o| o.to_string())
    ));
    if r.suppressed > 0 {
        out.push(format!(
            "{} more failure(s) of {memcg} for this reason since its previous record were counted but not reported (at most one record per memcg and reason per 100 ms).",
            r.suppressed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_ebpf::{EventHeader, kind};

    struct Env;
    impl MemcgLookup for Env {
        fn memcg_path(&mut self, id: u64) -> Option<String> {
            (id == 7).then(|| "/app".to_owned())
        }
        fn memcg_files(&self, _: &str) -> Option<MemcgFiles> {
            None
        }
        fn page_size(&self) -> u64 {
            4096
        }
    }

    fn header(kind: u32, pid: u32, boot_ns: u64) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"java");
        EventHeader {
            kind,
            boot_ns,
            pid,
            tgid: pid,
            comm,
            ..Default::default()
        }
    }

    #[test]
    fn reported_totals_are_bounded_in_bytes_least_recent_first() {
        let mut tracker = ChargeTracker::with_budgets(3 * REPORTED_ENTRY, bounds::STALLS);
        let event = |memcg_id, failures_total| ChargeFailureEvent {
            header: header(kind::CHARGE_FAILURE, 42, 1),
            memcg_id,
            failures_total,
            reason: charge_failure_reason::NO_VICTIM,
            ..Default::default()
        };
        for id in 1..=3 {
            tracker.on_failure(&event(id, 1), "t".into(), &mut Env);
        }
        // Memcg 1 fails again: now memcg 2 is the least recent.
        tracker.on_failure(&event(1, 2), "t".into(), &mut Env);
        assert_eq!(tracker.evicted_reported, 0);
        tracker.on_failure(&event(4, 1), "t".into(), &mut Env);
        assert_eq!(tracker.evicted_reported, 1, "the eviction is counted");
        assert!(tracker.heap_bytes() <= 3 * REPORTED_ENTRY);
        assert!(
            !tracker
                .reported_total
                .contains_key(&(2, charge_failure_reason::NO_VICTIM))
        );
        // Memcg 1 kept its total: its next record counts what was held back.
        let again = tracker.on_failure(&event(1, 5), "t".into(), &mut Env);
        assert_eq!(again.suppressed, 2);
    }

    #[test]
    fn stall_waiters_are_bounded_in_bytes_and_the_rest_counted() {
        let comm_len = "java".len();
        let room = stall_bytes(Some("/app")) + 2 * task_bytes(&"x".repeat(comm_len));
        let mut tracker = ChargeTracker::with_budgets(bounds::CHARGE_REPORTED, room);
        let t0 = Instant::now();
        let begin = |pid| OomWaitEvent {
            header: header(kind::OOM_WAIT, pid, 1),
            memcg_id: 7,
            phase: oom_wait_phase::BEGIN,
            ..Default::default()
        };
        assert_eq!(tracker.on_wait(&begin(1), t0, "t", &mut Env).len(), 1);
        for pid in 2..=4 {
            tracker.on_wait(&begin(pid), t0, "t", &mut Env);
        }
        assert_eq!(
            tracker.evicted_stall_tasks, 2,
            "waiters past the budget are counted"
        );
        assert!(tracker.heap_bytes() <= room);
        // No deadline while someone waits; the release grace once all left.
        assert_eq!(tracker.next_deadline(), None);
        for pid in 1..=2 {
            let end = OomWaitEvent {
                phase: oom_wait_phase::END,
                ..begin(pid)
            };
            tracker.on_wait(&end, t0, "t", &mut Env);
        }
        assert_eq!(tracker.next_deadline(), Some(t0 + RELEASE_GRACE));
        assert!(tracker.poll(t0, false, "t", &mut Env).is_empty());
        let released = tracker.poll(t0 + RELEASE_GRACE, false, "t", &mut Env);
        assert_eq!(released[0].state, "released");
        assert_eq!((tracker.heap_bytes(), tracker.next_deadline()), (0, None));
    }

    #[test]
    fn gfp_names_match_the_kernel_printing() {
        // Masks and names as the kernels' own reports print them.
        assert_eq!(gfp_flags(0xcc0), "GFP_KERNEL");
        assert_eq!(gfp_flags(0x400cc0), "GFP_KERNEL_ACCOUNT");
        assert_eq!(gfp_flags(0x100cca), "GFP_HIGHUSER_MOVABLE");
        assert_eq!(gfp_flags(0x140cca), "GFP_HIGHUSER_MOVABLE|__GFP_COMP");
        assert_eq!(gfp_flags(0x800), "__GFP_KSWAPD_RECLAIM");
        // A huge-page fault with defrag=always (what a 6.1 guest charged).
        assert_eq!(gfp_flags(0x1d24ca), "GFP_TRANSHUGE|__GFP_NORETRY");
        assert_eq!(gfp_flags(0x1c20ca), "GFP_TRANSHUGE_LIGHT");
        assert_eq!(gfp_flags(0x8000_0000), "0x80000000");
        assert_eq!(gfp_flags(0), "0");
    }

    #[test]
    fn failures_count_what_the_rate_limit_held_back() {
        let mut tracker = ChargeTracker::new();
        let mut event = ChargeFailureEvent {
            header: header(kind::CHARGE_FAILURE, 42, 1),
            memcg_id: 7,
            usage_pages: 16384,
            max_pages: 16384,
            failures_total: 1,
            gfp_mask: 0xcc0,
            order: 0,
            reason: charge_failure_reason::NO_VICTIM,
            nr_pages: 0,
        };
        let first = tracker.on_failure(&event, "t".into(), &mut Env);
        assert_eq!(first.memcg.as_deref(), Some("/app"));
        assert_eq!((first.reason, first.result), ("no_victim", "enomem"));
        assert_eq!(first.limit_bytes, Some(64 << 20));
        assert_eq!(first.suppressed, 0);
        event.failures_total = 5;
        let second = tracker.on_failure(&event, "t".into(), &mut Env);
        assert_eq!(second.suppressed, 3);
        assert!(second.explanation.iter().any(|l| l.contains("3 more")));

        // The map says 9 failures, 2 reported: 4 never made it into a record.
        let state = ChargeFailureState {
            last_report_ns: 0,
            failures_total: 9,
            reported: 2,
        };
        let key = ChargeFailureKey {
            memcg_id: 7,
            reason: charge_failure_reason::NO_VICTIM,
            _pad0: 0,
        };
        let summaries = tracker.summaries(&[(key, state)], "t", &mut Env);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].suppressed, 4);
        assert!(
            tracker
                .summaries(
                    &[(
                        key,
                        ChargeFailureState {
                            failures_total: 5,
                            ..state
                        }
                    )],
                    "t",
                    &mut Env
                )
                .is_empty()
        );

        event.gfp_mask = 0xcc0 | GFP_NOFAIL;
        event.failures_total = 6;
        assert_eq!(
            tracker.on_failure(&event, "t".into(), &mut Env).result,
            "charged_over_limit"
        );
        event.reason = charge_failure_reason::OOM_DISABLED;
        event.failures_total = 1;
        let waits = tracker.on_failure(&event, "t".into(), &mut Env);
        assert_eq!((waits.reason, waits.result), ("oom_kill_disabled", "waits"));
        // Counted per reason: the no-victim failures do not make these suppressed.
        assert_eq!(waits.suppressed, 0);
    }

    #[test]
    fn charges_that_give_up_without_the_oom_killer_say_why() {
        let mut tracker = ChargeTracker::new();
        let event = |gfp_mask, nr_pages| ChargeFailureEvent {
            header: header(kind::CHARGE_FAILURE, 42, 1),
            memcg_id: 7,
            failures_total: 1,
            gfp_mask,
            order: oomtrace_ebpf::UNKNOWN_ORDER,
            reason: charge_failure_reason::ENOMEM,
            nr_pages,
            ..Default::default()
        };
        // A transparent huge page with defrag=always: GFP_TRANSHUGE | __GFP_NORETRY.
        let thp = tracker.on_failure(&event(0x1d24ca, 512), "t".into(), &mut Env);
        assert_eq!(
            (thp.reason, thp.order, thp.nr_pages),
            ("noretry", Some(9), Some(512))
        );
        assert!(thp.gfp_flags.as_deref().unwrap().contains("__GFP_NORETRY"));
        // defrag=never: no direct reclaim at all.
        let light = tracker.on_failure(&event(0x1c20ca, 512), "t".into(), &mut Env);
        assert_eq!(light.reason, "nowait");
        let costly = tracker.on_failure(&event(0xcc0, 16), "t".into(), &mut Env);
        assert_eq!((costly.reason, costly.order), ("costly_order", Some(4)));
        let mayfail = tracker.on_failure(&event(0xcc0 | 0x4000, 1), "t".into(), &mut Env);
        assert_eq!(mayfail.reason, "retry_mayfail");
        let other = tracker.on_failure(&event(0xcc0, 3), "t".into(), &mut Env);
        assert_eq!(
            (other.reason, other.order, other.result),
            ("no_progress", Some(2), "enomem")
        );
        assert!(other.explanation[0].contains("3 page(s)"));
    }

    #[test]
    fn a_stall_ends_once_nobody_waits_for_the_grace_period() {
        let mut tracker = ChargeTracker::new();
        let t0 = Instant::now();
        let wait = |phase, pid, boot_ns, waited_ns| OomWaitEvent {
            header: header(kind::OOM_WAIT, pid, boot_ns),
            memcg_id: 7,
            waited_ns,
            phase,
            ..Default::default()
        };
        let begin = tracker.on_wait(
            &wait(oom_wait_phase::BEGIN, 10, 1_000_000_000, 0),
            t0,
            "t",
            &mut Env,
        );
        assert_eq!(begin.len(), 1);
        assert_eq!(begin[0].state, "stalled");
        assert_eq!(begin[0].memcg, "/app");
        // A second waiter joins the same stall: no new record.
        assert!(
            tracker
                .on_wait(
                    &wait(oom_wait_phase::BEGIN, 11, 1_100_000_000, 0),
                    t0,
                    "t",
                    &mut Env
                )
                .is_empty()
        );
        // One leaves: the other still waits, nothing ends.
        tracker.on_wait(
            &wait(oom_wait_phase::END, 10, 2_000_000_000, 1_000_000_000),
            t0,
            "t",
            &mut Env,
        );
        assert!(
            tracker
                .poll(t0 + Duration::from_secs(1), false, "t", &mut Env)
                .is_empty()
        );
        // The last one leaves; the release waits for the grace period.
        let t1 = t0 + Duration::from_secs(2);
        tracker.on_wait(
            &wait(oom_wait_phase::END, 11, 3_100_000_000, 2_000_000_000),
            t1,
            "t",
            &mut Env,
        );
        assert!(
            tracker
                .poll(t1 + RELEASE_GRACE / 2, false, "t", &mut Env)
                .is_empty()
        );
        let released = tracker.poll(t1 + RELEASE_GRACE, false, "t", &mut Env);
        assert_eq!(released.len(), 1);
        let r = &released[0];
        assert_eq!(r.state, "released");
        assert_eq!(r.stalled_ms, 2100.0);
        let waited: Vec<_> = r.tasks.iter().map(|t| (t.pid, t.waited_ms)).collect();
        assert_eq!(waited, [(10, Some(1000.0)), (11, Some(2000.0))]);
        assert!(
            tracker
                .poll(t1 + RELEASE_GRACE * 4, true, "t", &mut Env)
                .is_empty()
        );
    }
}
