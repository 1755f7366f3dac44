//! Event ABI shared by the kernel programs and the `oomtrace` collector.
//!
//! Everything here is `#[repr(C)]`, made of fixed-width integers and byte
//! arrays only, with explicit padding, and its size is asserted at compile time
//! so that both sides agree byte for byte. Kernel struct offsets are never baked
//! in: the collector resolves them from BTF (and tracepoint formats from
//! tracefs) and hands them to the programs as the `OFFSETS` and `CONFIG`
//! globals.
#![no_std]

/// `TASK_COMM_LEN` in the kernel.
pub const COMM_LEN: usize = 16;
/// How many memcg levels (victim's memcg and its ancestors) one event carries.
pub const MEMCG_CHAIN_MAX: usize = 8;
/// Marks an offset (or enum value) that the running kernel does not have.
pub const UNAVAILABLE: u32 = u32::MAX;

/// Event kinds: the first field of every record.
pub mod kind {
    /// `oom:mark_victim` (the tracepoint's own record).
    pub const MARK_VICTIM: u32 = 1;
    /// Raw tracepoint on `mark_victim`: the victim read through `task_struct`.
    pub const VICTIM_TASK: u32 = 2;
    /// `oom:wake_reaper`, `oom:start_task_reaping`, `oom:finish_task_reaping`, `oom:skip_task_reaping`.
    pub const REAPER: u32 = 3;
    /// `sched:sched_process_exit` of a task marked as OOM victim.
    pub const VICTIM_EXIT: u32 = 4;
    /// fentry/kprobe backends: a task `oom_evaluate_task` visited, with its points.
    pub const OOM_CANDIDATE: u32 = 5;
    /// fentry/kprobe backends: `oom_kill_process`: the task the killer chose.
    pub const OOM_CHOICE: u32 = 6;
    /// fentry/kprobe backends: `out_of_memory` returned.
    pub const OOM_END: u32 = 7;
    /// fentry/kprobe backends: `pagefault_out_of_memory` (a fault that failed its charge).
    pub const PAGEFAULT_OOM: u32 = 8;
    /// fentry/kprobe backends: a memcg charge that failed (the OOM path freed nothing,
    /// or the memcg's OOM killer is disabled).
    pub const CHARGE_FAILURE: u32 = 9;
    /// fentry/kprobe backends: a task starts or stops waiting in
    /// `mem_cgroup_oom_synchronize` (cgroup v1 `oom_kill_disable`).
    pub const OOM_WAIT: u32 = 10;
    /// A memcg reclaim pass ended short of its target (`nr_reclaimed <
    /// nr_to_reclaim`: too little left to reclaim, where charges start to
    /// fail), or with its target unknown. At most once a second per memcg,
    /// armed or not: the collector arms the charge hook on it and keeps it
    /// armed while such passes go on.
    pub const MEMCG_AT_LIMIT: u32 = 11;
    /// `sched:sched_process_exec` of a task in scope: the collector reads
    /// its command line while it lives (not with `--no-cmdline`).
    pub const PROCESS_EXEC: u32 = 12;
    /// Number of kinds (size of the per-kind drop counter array).
    pub const COUNT: u32 = 13;
}

/// Why a [`ChargeFailureEvent`] was emitted.
pub mod charge_failure_reason {
    /// `mem_cgroup_out_of_memory` returned false: the memcg OOM killer found
    /// nothing to kill (only unkillable tasks) and nobody was exiting.
    pub const NO_VICTIM: u32 = 1;
    /// The memcg's OOM killer is disabled (cgroup v1 `oom_kill_disable`): the
    /// page fault failed its charge and the task waits in
    /// `mem_cgroup_oom_synchronize`.
    pub const OOM_DISABLED: u32 = 2;
    /// The armed fexit on `try_charge_memcg` saw -ENOMEM without the OOM
    /// path failing first: `__GFP_NORETRY`, a non-blocking or costly charge,
    /// `__GFP_RETRY_MAYFAIL`, a dying task (told apart by gfp and size).
    pub const ENOMEM: u32 = 3;
}

/// What an [`OomWaitEvent`] reports.
pub mod oom_wait_phase {
    pub const BEGIN: u32 = 1;
    pub const END: u32 = 2;
}

/// What a [`ReaperEvent`] reports.
pub mod reaper_step {
    pub const WAKE: u32 = 1;
    pub const START: u32 = 2;
    pub const FINISH: u32 = 3;
    pub const SKIP: u32 = 4;
}

/// Common header of every record. `pid`/`tgid`/`comm` are the *current* task,
/// i.e. the task in whose context the kernel ran the hook.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns`: boot time, so it lines up with `/dev/kmsg` timestamps
    /// modulo suspend.
    pub boot_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<EventHeader>() == 40);

/// Bits of [`MarkVictimEvent::present`]: which tracepoint fields this kernel has.
pub mod mark_victim_field {
    pub const COMM: u32 = 1 << 0;
    pub const TOTAL_VM: u32 = 1 << 1;
    pub const ANON_RSS: u32 = 1 << 2;
    pub const FILE_RSS: u32 = 1 << 3;
    pub const SHMEM_RSS: u32 = 1 << 4;
    pub const UID: u32 = 1 << 5;
    pub const PGTABLES: u32 = 1 << 6;
    pub const OOM_SCORE_ADJ: u32 = 1 << 7;
}

/// `oom:mark_victim`, copied from the tracepoint record. Sizes are in kB as the
/// tracepoint reports them (the kernel converts from pages exactly).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkVictimEvent {
    pub header: EventHeader,
    pub pid: i32,
    pub uid: u32,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub oom_score_adj: i16,
    pub _pad0: [u8; 2],
    /// [`mark_victim_field`] bits.
    pub present: u32,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<MarkVictimEvent>() == 112);

/// One memcg level as read at the kill: page counters in pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgLevel {
    /// cgroup id (kernfs node id = inode number of the cgroup directory).
    pub cgroup_id: u64,
    pub usage_pages: u64,
    pub max_pages: u64,
    /// cgroup v2: `swap` counter; cgroup v1: `memsw` (memory + swap).
    pub swap_usage_pages: u64,
    pub swap_max_pages: u64,
}
const _: () = assert!(core::mem::size_of::<MemcgLevel>() == 40);

/// Bits of [`VictimTaskEvent::valid`]: which reads through kernel pointers succeeded.
pub mod victim_valid {
    pub const IDENTITY: u32 = 1 << 0;
    pub const OOM_SCORE_ADJ: u32 = 1 << 1;
    pub const RSS: u32 = 1 << 2;
    pub const PGTABLES: u32 = 1 << 3;
    pub const MEMCG: u32 = 1 << 4;
    pub const TRIGGER_MEMCG: u32 = 1 << 5;
    pub const TOTAL_VM: u32 = 1 << 6;
    pub const SWAPENTS: u32 = 1 << 7;
    /// `sums` holds the per-CPU sums (`percpu_counter_sum`).
    pub const RSS_SUM: u32 = 1 << 8;
    /// The rss counters have no per-CPU part (`atomic_long_t`, before 6.2):
    /// the values read are whole, whichever read the kernel uses.
    pub const RSS_ATOMIC: u32 = 1 << 9;
}

/// Raw tracepoint `mark_victim(struct task_struct *task, ...)`: the victim read
/// through BTF-resolved offsets, with its memcg and that memcg's ancestors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VictimTaskEvent {
    pub header: EventHeader,
    pub victim_pid: u32,
    pub victim_tgid: u32,
    pub victim_comm: [u8; COMM_LEN],
    pub oom_score_adj: i32,
    /// [`victim_valid`] bits.
    pub valid: u32,
    pub rss_file_pages: i64,
    pub rss_anon_pages: i64,
    pub swapents: i64,
    pub rss_shmem_pages: i64,
    pub pgtables_bytes: i64,
    pub total_vm_pages: u64,
    /// cgroup id of the memcg of the task that ran the killer (the allocating task).
    pub trigger_memcg_id: u64,
    /// Levels filled in `memcg`, victim's own memcg first.
    pub memcg_depth: u32,
    pub _pad0: u32,
    pub memcg: [MemcgLevel; MEMCG_CHAIN_MAX],
    /// The rss counters summed over every possible CPU, as
    /// `get_mm_counter_sum` reads them (valid with [`victim_valid::RSS_SUM`]);
    /// the `rss_*_pages`/`swapents` fields above are the central values
    /// `get_mm_counter` reads. See [`RssSums`].
    pub sums: RssSums,
}
const _: () = assert!(core::mem::size_of::<VictimTaskEvent>() == 488);

/// An OOM reaper step for `pid`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaperEvent {
    pub header: EventHeader,
    pub pid: i32,
    /// [`reaper_step`] value.
    pub step: u32,
}
const _: () = assert!(core::mem::size_of::<ReaperEvent>() == 48);

/// Per-memcg reclaim statistics kept in the kernel (map `RECLAIM_STATS`, keyed by
/// the cgroup id of the charging task's memcg). Aggregated in the kernel because
/// a memcg that lives at its limit reclaims thousands of times a second; the
/// collector reads the entry of the memcg involved when it builds a decision.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgReclaimStats {
    /// Reclaim passes that ended (charges that found the memcg at a limit).
    pub passes: u64,
    /// Passes that reclaimed nothing: the step before a charge fails.
    pub empty_passes: u64,
    pub pages_reclaimed: u64,
    pub total_ns: u64,
    pub last_end_boot_ns: u64,
    pub last_gfp_flags: u64,
    pub last_order: i32,
    pub _pad0: u32,
    /// Passes that reclaimed less than their target (`nr_to_reclaim`): the
    /// memcg has too little left to reclaim; charges are about to fail.
    /// Passes whose target is unknown are not counted.
    pub short_passes: u64,
}
const _: () = assert!(core::mem::size_of::<MemcgReclaimStats>() == 64);

/// Start of a reclaim pass, per task (map `RECLAIM_START`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimStart {
    pub boot_ns: u64,
    pub memcg_id: u64,
    pub gfp_flags: u64,
    pub order: i32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<ReclaimStart>() == 32);

/// A task previously marked as OOM victim exited (header is the exiting task).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VictimExitEvent {
    pub header: EventHeader,
    /// `boot_ns` at which the task was marked.
    pub marked_boot_ns: u64,
}
const _: () = assert!(core::mem::size_of::<VictimExitEvent>() == 48);

/// A task in scope called `execve` (header is the task, after the exec).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessExecEvent {
    pub header: EventHeader,
}
const _: () = assert!(core::mem::size_of::<ProcessExecEvent>() == 40);

/// Bits of [`OomCandidateEvent::flags`].
pub mod candidate_flag {
    /// `oom_badness` ran for this task: `points` is the kernel's own score.
    pub const SCORED: u32 = 1 << 0;
    /// `oom_evaluate_task` returned 1: a previous victim is still exiting, the OOM is aborted.
    pub const ABORTED: u32 = 1 << 1;
    /// The task is already an OOM victim (`signal->oom_mm` set).
    pub const OOM_VICTIM: u32 = 1 << 2;
    /// A kernel thread (`PF_KTHREAD`).
    pub const KTHREAD: u32 = 1 << 3;
    /// The task has no mm (exited, or a kernel thread).
    pub const NO_MM: u32 = 1 << 4;
    /// Memory numbers were read.
    pub const MEMORY: u32 = 1 << 5;
    /// `sums` holds the per-CPU sums of the rss counters.
    pub const MEMORY_SUM: u32 = 1 << 6;
    /// The rss counters have no per-CPU part (before 6.2): the values are whole.
    pub const MEMORY_ATOMIC: u32 = 1 << 7;
}

/// One task the OOM killer looked at (`oom_evaluate_task`), in its order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomCandidateEvent {
    pub header: EventHeader,
    /// Identifies the OOM invocation (its `out_of_memory` entry time, boot ns).
    pub oom_seq: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
    pub uid: u32,
    pub oom_score_adj: i32,
    /// `oom_badness` result (valid with [`candidate_flag::SCORED`]); `i64::MIN` = never chosen.
    pub points: i64,
    pub rss_file_pages: i64,
    pub rss_anon_pages: i64,
    pub swapents: i64,
    pub rss_shmem_pages: i64,
    pub pgtables_bytes: i64,
    pub memcg_id: u64,
    /// [`candidate_flag`] bits.
    pub flags: u32,
    /// Position in the evaluation order (0-based).
    pub index: u32,
    /// Per-CPU sums of the rss counters (valid with [`candidate_flag::MEMORY_SUM`]).
    pub sums: RssSums,
}
const _: () = assert!(core::mem::size_of::<OomCandidateEvent>() == 176);

/// `oom_kill_process`: the killer's choice, before any memory.oom.group sweep.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomChoiceEvent {
    pub header: EventHeader,
    pub oom_seq: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
    pub points: i64,
}
const _: () = assert!(core::mem::size_of::<OomChoiceEvent>() == 80);

/// `oom_control` as `out_of_memory` leaves it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomEndEvent {
    pub header: EventHeader,
    pub oom_seq: u64,
    /// cgroup id of `oc->memcg` (0: global OOM).
    pub memcg_id: u64,
    pub totalpages: u64,
    pub chosen_points: i64,
    pub gfp_mask: u32,
    pub order: i32,
    /// `enum oom_constraint` value.
    pub constraint: u32,
    /// 0: nothing chosen, 1: a task, 2: aborted (a previous victim still exiting).
    pub chosen: u32,
    pub chosen_pid: u32,
    /// `out_of_memory`'s return value (true: progress was made).
    pub ret: u32,
    pub candidates: u32,
    /// Candidates not reported because the ring buffer was full.
    pub dropped: u32,
}
const _: () = assert!(core::mem::size_of::<OomEndEvent>() == 104);

/// Per-task state while `out_of_memory` runs (map `OOM_STATE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomState {
    pub oom_seq: u64,
    pub oc: u64,
    pub cur_task: u64,
    pub cur_points: i64,
    pub cur_scored: u32,
    pub candidates: u32,
    pub dropped: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<OomState>() == 48);

/// A user page fault returned `VM_FAULT_OOM` and the #PF handler called
/// `pagefault_out_of_memory` (read at its entry, before it acts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagefaultOomEvent {
    pub header: EventHeader,
    /// cgroup id of the faulting task's memcg.
    pub memcg_id: u64,
    /// cgroup id of `current->memcg_in_oom`: the cgroup-v1 memcg OOM
    /// (OOM killer disabled) this fault's charge left pending, which
    /// `mem_cgroup_oom_synchronize` handles now; 0 when none.
    pub in_oom_memcg_id: u64,
    /// [`pagefault_flag`] bits.
    pub flags: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<PagefaultOomEvent>() == 64);

/// Bits of [`PagefaultOomEvent::flags`].
pub mod pagefault_flag {
    /// This kernel has `task_struct.memcg_in_oom`: `in_oom_memcg_id` is meaningful.
    pub const IN_OOM_KNOWN: u32 = 1;
    /// SIGKILL was pending (`fatal_signal_pending`): the kernel returns
    /// without retrying or reporting (e.g. the OOM victim's own last fault).
    pub const FATAL_SIGNAL: u32 = 2;
    /// This kernel's `task_struct.pending.signal` was found: `FATAL_SIGNAL` is meaningful.
    pub const SIGNAL_KNOWN: u32 = 4;
}

/// A memcg charge that failed, caught on the OOM slow path (nothing runs per
/// successful charge). Rate-limited per memcg in the kernel: `failures_total`
/// counts every failure of this memcg since tracing began, reported or not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeFailureEvent {
    pub header: EventHeader,
    /// cgroup id of the memcg whose limit was hit.
    pub memcg_id: u64,
    /// Page counters of that memcg when the charge failed (`UNAVAILABLE_U64` if unreadable).
    pub usage_pages: u64,
    pub max_pages: u64,
    /// Failures of this memcg for this reason since tracing began, this one included.
    pub failures_total: u64,
    pub gfp_mask: u32,
    /// Allocation order the OOM path was asked for.
    pub order: i32,
    /// [`charge_failure_reason`] value.
    pub reason: u32,
    /// Pages the charge asked for (0: not known at this hook).
    pub nr_pages: u32,
}
const _: () = assert!(core::mem::size_of::<ChargeFailureEvent>() == 88);

/// See [`kind::MEMCG_AT_LIMIT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgAtLimitEvent {
    pub header: EventHeader,
    /// cgroup id of the reclaiming task's memcg.
    pub memcg_id: u64,
    /// Pages the pass reclaimed (`mm_vmscan_memcg_reclaim_end`).
    pub nr_reclaimed: u64,
    /// Its target, `scan_control.nr_to_reclaim`; [`UNAVAILABLE_U64`] where
    /// the kernel's offsets are unknown or the pass's `scan_control` could
    /// not be found (the collector then arms on any at-limit reclaim).
    pub nr_to_reclaim: u64,
    /// Passes of this memcg that fell short so far ([`MemcgReclaimStats::short_passes`]).
    pub short_passes: u64,
}
const _: () = assert!(core::mem::size_of::<MemcgAtLimitEvent>() == 72);

/// Marks a 64-bit value the kernel program could not read.
pub const UNAVAILABLE_U64: u64 = u64::MAX;
/// A gfp mask / allocation order the running kernel does not record.
pub const UNKNOWN_GFP: u32 = u32::MAX;
pub const UNKNOWN_ORDER: i32 = i32::MIN;

/// Key of `CHARGE_FAILURES`: failures are counted and rate-limited per memcg
/// and reason, so that frequent failures of one kind do not hide another.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChargeFailureKey {
    pub memcg_id: u64,
    /// [`charge_failure_reason`] value.
    pub reason: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<ChargeFailureKey>() == 16);

/// Per-memcg charge-failure rate limit (map `CHARGE_FAILURES`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeFailureState {
    /// `boot_ns` of the last failure reported as an event.
    pub last_report_ns: u64,
    /// Every failure of the memcg since tracing began.
    pub failures_total: u64,
    /// Of those, the ones reported as events.
    pub reported: u64,
}
const _: () = assert!(core::mem::size_of::<ChargeFailureState>() == 24);

/// A task starts ([`oom_wait_phase::BEGIN`]) or stops waiting for memory in an
/// OOM-disabled memcg.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomWaitEvent {
    pub header: EventHeader,
    pub memcg_id: u64,
    /// END: how long the task waited, in ns (0 for BEGIN).
    pub waited_ns: u64,
    pub phase: u32,
    pub gfp_mask: u32,
    pub order: i32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<OomWaitEvent>() == 72);

/// A task inside `mem_cgroup_oom_synchronize` (map `OOM_WAITERS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomWaiter {
    pub begin_ns: u64,
    pub memcg_id: u64,
}
const _: () = assert!(core::mem::size_of::<OomWaiter>() == 16);

/// Arguments of a `mem_cgroup_out_of_memory` call in progress, for the
/// kretprobe that cannot see them (map `MEMCG_OOM_ARGS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemcgOomArgs {
    pub memcg: u64,
    pub gfp_mask: u32,
    pub order: i32,
}
const _: () = assert!(core::mem::size_of::<MemcgOomArgs>() == 16);

/// `mm->rss_stat[]` summed over every possible CPU: `percpu_counter.count`
/// plus each CPU's `s32` delta, what `percpu_counter_sum()` (and so
/// `get_mm_counter_sum()`) returns before its clamp at 0. On 6.2+ the
/// central `count` alone (`get_mm_counter()`) lags the sum by up to the
/// batch size per CPU; 7.x OOM reports and `oom_badness` use the sum
/// (docs/rss-counters.md).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssSums {
    pub file_pages: i64,
    pub anon_pages: i64,
    pub swapents: i64,
    pub shmem_pages: i64,
}
const _: () = assert!(core::mem::size_of::<RssSums>() == 32);

/// Most CPUs the programs sum per-CPU counters over (`nr_cpu_ids` above
/// this: no sums, reported unavailable). A power of two.
pub const MAX_CPUS: u32 = 1024;

/// Where per-CPU data lives, for summing `struct percpu_counter` the way
/// `__percpu_counter_sum` does: `*(s32 *)(counters + __per_cpu_offset[cpu])`
/// for every possible CPU. Resolved by the collector (`/proc/kallsyms`,
/// BTF, `/sys/devices/system/cpu/possible`); `cpus == 0` disables sums.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PercpuLayout {
    /// Kernel address of the `__per_cpu_offset[]` array.
    pub per_cpu_offset: u64,
    /// Offset of `percpu_counter.counters` (the `s32 __percpu *`).
    pub counters: u32,
    /// Possible CPUs, `0..cpus` (`nr_cpu_ids`, at most [`MAX_CPUS`]); 0: no sums.
    pub cpus: u32,
    /// Non-zero: the rss counters are `atomic_long_t` (before 6.2), whole
    /// without any sum.
    pub atomic_counters: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<PercpuLayout>() == 24);

impl PercpuLayout {
    pub const UNRESOLVED: Self = Self {
        per_cpu_offset: 0,
        counters: UNAVAILABLE,
        cpus: 0,
        atomic_counters: 0,
        _pad0: 0,
    };
}

/// Values of map `RSS_RULE` (element 0): which counter read the running
/// kernel's OOM killer uses, as the collector learned it from the kernel's
/// own numbers. With [`rss_rule::COUNTER`] the candidates are not summed.
pub mod rss_rule {
    /// Not known yet: candidates carry both reads.
    pub const UNKNOWN: u32 = 0;
    /// `get_mm_counter()`, the central count (6.x, e.g. 6.12).
    pub const COUNTER: u32 = 1;
    /// `get_mm_counter_sum()`, the per-CPU sum (7.x, e.g. 7.3).
    pub const SUM: u32 = 2;
}

/// Kernel struct field offsets (bytes) resolved from BTF at start-up;
/// [`UNAVAILABLE`] where the running kernel lacks the field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_signal: u32,
    pub task_mm: u32,
    pub task_cgroups: u32,
    pub signal_oom_score_adj: u32,
    /// Offset of `mm_struct.rss_stat`.
    pub mm_rss_stat: u32,
    /// Distance between two rss counters (`percpu_counter` on 6.2+, `atomic_long_t` before).
    pub mm_rss_stride: u32,
    /// Offset of the counter's value inside one element (`percpu_counter.count` or 0).
    pub mm_rss_value: u32,
    pub mm_pgtables_bytes: u32,
    pub mm_total_vm: u32,
    pub css_set_subsys: u32,
    pub css_cgroup: u32,
    pub css_parent: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// Offset of `css` inside `struct mem_cgroup` (to go from css to memcg).
    pub memcg_css: u32,
    pub memcg_memory: u32,
    /// `swap` (v2) and `memsw` (v1) share this offset in a union on 5.x/6.x.
    pub memcg_swap: u32,
    pub page_counter_usage: u32,
    pub page_counter_max: u32,
    /// `enum cgroup_subsys_id` value of `memory_cgrp_id`.
    pub memory_cgrp_id: u32,
    /// `enum` values of `MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES`.
    pub mm_filepages: u32,
    pub mm_anonpages: u32,
    pub mm_swapents: u32,
    pub mm_shmempages: u32,
    pub task_flags: u32,
    pub task_real_cred: u32,
    pub cred_uid: u32,
    pub signal_oom_mm: u32,
    pub oc_memcg: u32,
    pub oc_gfp_mask: u32,
    pub oc_order: u32,
    pub oc_totalpages: u32,
    pub oc_chosen: u32,
    pub oc_chosen_points: u32,
    pub oc_constraint: u32,
    /// `task_struct.memcg_in_oom` (cgroup v1 kernels): the OOM-disabled memcg a
    /// task is about to wait for; with `memcg_oom_gfp_mask`, `memcg_oom_order`.
    pub task_memcg_in_oom: u32,
    pub task_memcg_oom_gfp_mask: u32,
    pub task_memcg_oom_order: u32,
    /// `task_struct.pending.signal` (a 64-bit `sigset_t`): SIGKILL pending
    /// is `fatal_signal_pending()`.
    pub task_pending_signal: u32,
    /// `task_struct.reclaim_state`: memcg reclaim points it at its
    /// `scan_control.reclaim_state` around the reclaim tracepoints.
    pub task_reclaim_state: u32,
    /// `scan_control.reclaim_state` and `scan_control.nr_to_reclaim`: the
    /// target of the reclaim pass in progress.
    pub scan_control_reclaim_state: u32,
    pub scan_control_nr_to_reclaim: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 180);

impl KernelOffsets {
    /// Every field unavailable: what the programs see until the collector fills it.
    pub const UNRESOLVED: Self = Self {
        task_pid: UNAVAILABLE,
        task_tgid: UNAVAILABLE,
        task_comm: UNAVAILABLE,
        task_signal: UNAVAILABLE,
        task_mm: UNAVAILABLE,
        task_cgroups: UNAVAILABLE,
        signal_oom_score_adj: UNAVAILABLE,
        mm_rss_stat: UNAVAILABLE,
        mm_rss_stride: UNAVAILABLE,
        mm_rss_value: UNAVAILABLE,
        mm_pgtables_bytes: UNAVAILABLE,
        mm_total_vm: UNAVAILABLE,
        css_set_subsys: UNAVAILABLE,
        css_cgroup: UNAVAILABLE,
        css_parent: UNAVAILABLE,
        cgroup_kn: UNAVAILABLE,
        kernfs_node_id: UNAVAILABLE,
        memcg_css: UNAVAILABLE,
        memcg_memory: UNAVAILABLE,
        memcg_swap: UNAVAILABLE,
        page_counter_usage: UNAVAILABLE,
        page_counter_max: UNAVAILABLE,
        memory_cgrp_id: UNAVAILABLE,
        mm_filepages: UNAVAILABLE,
        mm_anonpages: UNAVAILABLE,
        mm_swapents: UNAVAILABLE,
        mm_shmempages: UNAVAILABLE,
        task_flags: UNAVAILABLE,
        task_real_cred: UNAVAILABLE,
        cred_uid: UNAVAILABLE,
        signal_oom_mm: UNAVAILABLE,
        oc_memcg: UNAVAILABLE,
        oc_gfp_mask: UNAVAILABLE,
        oc_order: UNAVAILABLE,
        oc_totalpages: UNAVAILABLE,
        oc_chosen: UNAVAILABLE,
        oc_chosen_points: UNAVAILABLE,
        oc_constraint: UNAVAILABLE,
        task_memcg_in_oom: UNAVAILABLE,
        task_memcg_oom_gfp_mask: UNAVAILABLE,
        task_memcg_oom_order: UNAVAILABLE,
        task_pending_signal: UNAVAILABLE,
        task_reclaim_state: UNAVAILABLE,
        scan_control_reclaim_state: UNAVAILABLE,
        scan_control_nr_to_reclaim: UNAVAILABLE,
    };
}

/// Byte offsets of fields inside tracepoint records, read from tracefs
/// `events/<system>/<event>/format`; [`UNAVAILABLE`] where absent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    pub mark_victim_pid: u32,
    /// `__data_loc char[] comm` (u32: length << 16 | offset).
    pub mark_victim_comm: u32,
    pub mark_victim_total_vm: u32,
    pub mark_victim_anon_rss: u32,
    pub mark_victim_file_rss: u32,
    pub mark_victim_shmem_rss: u32,
    pub mark_victim_uid: u32,
    pub mark_victim_pgtables: u32,
    pub mark_victim_oom_score_adj: u32,
    /// `pid` of the four reaper events (same layout on every kernel so far, still read per event).
    pub wake_reaper_pid: u32,
    pub start_task_reaping_pid: u32,
    pub finish_task_reaping_pid: u32,
    pub skip_task_reaping_pid: u32,
    pub reclaim_begin_order: u32,
    pub reclaim_begin_gfp_flags: u32,
    pub reclaim_end_nr_reclaimed: u32,
    /// Size of `gfp_flags` in `mm_vmscan_memcg_reclaim_begin`: 8 on 6.x (`unsigned long`), 4 before (`gfp_t`).
    pub reclaim_begin_gfp_flags_size: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<TracepointLayout>() == 72);

impl TracepointLayout {
    pub const UNRESOLVED: Self = Self {
        mark_victim_pid: UNAVAILABLE,
        mark_victim_comm: UNAVAILABLE,
        mark_victim_total_vm: UNAVAILABLE,
        mark_victim_anon_rss: UNAVAILABLE,
        mark_victim_file_rss: UNAVAILABLE,
        mark_victim_shmem_rss: UNAVAILABLE,
        mark_victim_uid: UNAVAILABLE,
        mark_victim_pgtables: UNAVAILABLE,
        mark_victim_oom_score_adj: UNAVAILABLE,
        wake_reaper_pid: UNAVAILABLE,
        start_task_reaping_pid: UNAVAILABLE,
        finish_task_reaping_pid: UNAVAILABLE,
        skip_task_reaping_pid: UNAVAILABLE,
        reclaim_begin_order: UNAVAILABLE,
        reclaim_begin_gfp_flags: UNAVAILABLE,
        reclaim_end_nr_reclaimed: UNAVAILABLE,
        reclaim_begin_gfp_flags_size: 0,
        _pad0: 0,
    };
}

/// Run-time settings from the collector.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Non-zero: only report victims/charges whose memcg or one of its ancestors
    /// is in the `CGROUP_FILTER` map.
    pub filter_enabled: u32,
    /// Non-zero: the raw `mark_victim` tracepoint passes `struct task_struct *` as
    /// its first argument (6.x); zero: it passes only a pid.
    pub raw_mark_victim_has_task: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 8);

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: plain-old-data: repr(C), integer and byte-array fields only, no padding holes.
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for TracepointLayout {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for PercpuLayout {}
    unsafe impl aya::Pod for MemcgReclaimStats {}
    unsafe impl aya::Pod for ChargeFailureState {}
    unsafe impl aya::Pod for ChargeFailureKey {}
}
