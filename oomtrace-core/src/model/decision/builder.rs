//! Matching the pieces of each OOM (BPF events, kernel log items, the
//! killer's invocation) into pending decisions, and emitting each once it is
//! complete or its deadline passes.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use oomtrace_ebpf::EventHeader;

use crate::{
    base::bounds,
    cgroup::ScopeCgroup,
    events::Event,
    model::{
        decision::{
            assemble::assemble,
            env::Environment,
            history::History,
            order::Domain,
            pending::{Invocation, Pending, Sources},
            recent::RecentPids,
            record::Decision,
            rss,
        },
        pagefault::{self, PagefaultJoin},
    },
    report::{KernelReport, KillLine, ReportItem},
};

/// Backstop for a victim that does not exit (stuck in the kernel): its
/// decision goes out this long after everything else is in.
const WAIT_FOR_EXIT: Duration = Duration::from_secs(1);
/// A memory.oom.group sweep without the OOM-path hooks has no end event
/// (with them, the killer's return ends it): its decision goes out this long
/// after the sweep's last line. The only wait that is a grace, not an event.
pub(super) const SWEEP_SETTLE: Duration = Duration::from_millis(100);
/// A decision is emitted with what it has at the latest this long after its first piece.
pub(super) const DEADLINE: Duration = Duration::from_secs(3);
/// The timer of a decision waiting for the kernel log (`Builder::awaits_log`):
/// reading the log is what ends the wait, this only keeps a timer finite.
const LOG_WAIT_TIMER: Duration = Duration::from_secs(60);
/// Bound on decisions in flight (an OOM storm on a big node).
const MAX_PENDING: usize = 4096;
/// How long a decided victim's late pieces (a kill line read after the
/// decision went out) are recognised as such rather than opening a new one.
/// A pid cannot be reused and OOM-killed again within it.
const LATE_WINDOW: Duration = Duration::from_secs(30);

pub struct Builder {
    sources: Sources,
    scope: Vec<ScopeCgroup>,
    pending: Vec<Pending>,
    next_id: u64,
    seq: u64,
    /// The pending decision whose memory.oom.group sweep is being printed.
    group_sweep: Option<u64>,
    /// Pids killed by recent memory.oom.group sweeps (their own events are not decisions).
    recent_group_kills: RecentPids,
    /// Victims already decided: their late pieces are not new OOMs.
    decided: RecentPids,
    /// The latest time a piece or poll came in (the builder reads no clock).
    last_now: Option<Instant>,
    /// The latest time a piece came in: a decision goes out only once the
    /// kernel log was read to its end after it.
    last_piece: Option<Instant>,
    /// When a live session last read the kernel log to its end (None:
    /// offline, or not yet).
    log_read_at: Option<Instant>,
    /// OOM invocations in progress (candidates arriving), by oom_seq.
    invocations: Vec<Invocation>,
    /// Invocations aborted because an earlier victim was still exiting, per
    /// memcg id, oldest first (bounded by [`bounds::ABORTED`]).
    aborted: Vec<(u64, u64)>,
    /// Recent OOMs per memcg, for crash-loop / leak detection.
    history: History,
    /// Decisions given up on because `MAX_PENDING` was reached.
    pub evicted: u64,
    /// Decisions or invocations given up on because their bytes passed the budget.
    pub evicted_over_budget: u64,
    /// Aborted-invocation counts forgotten (their memcg never got a decision).
    pub evicted_aborted: u64,
    /// Heap budget of decisions and invocations in flight ([`bounds::PENDING`]).
    pub(super) budget: usize,
    /// Pieces that arrived after their victim's decision went out.
    pub late_pieces: u64,
    /// The rss read this kernel's OOM killer uses, once a decision learned it.
    rss_rule: Option<crate::model::exact::RssRule>,
    /// Recent `pagefault_oom` records, oldest first, for the decision of the same OOM.
    pagefaults: VecDeque<PagefaultJoin>,
}

/// Bound on page faults awaiting a later decision: waits of an OOM-disabled
/// memcg (one per wait; the kill after the release takes the latest) and
/// faults' global OOMs. Leaked faults join their pending decision at once.
const MAX_PAGEFAULTS: usize = 256;

impl Builder {
    pub fn new(sources: Sources, scope: Vec<ScopeCgroup>) -> Self {
        Self {
            sources,
            scope,
            pending: Vec::new(),
            next_id: 1,
            seq: 0,
            group_sweep: None,
            recent_group_kills: RecentPids::new(bounds::RECENT_PIDS, LATE_WINDOW),
            decided: RecentPids::new(bounds::RECENT_PIDS, LATE_WINDOW),
            last_now: None,
            last_piece: None,
            log_read_at: None,
            history: Default::default(),
            invocations: Vec::new(),
            aborted: Vec::new(),
            evicted: 0,
            evicted_over_budget: 0,
            evicted_aborted: 0,
            budget: bounds::PENDING,
            late_pieces: 0,
            rss_rule: None,
            pagefaults: VecDeque::new(),
        }
    }

    /// A `pagefault_oom` record: a fault leaked by a no-victim OOM joins
    /// that OOM's pending decision at once (the first of its task still
    /// waiting for one: the task is synchronous, the fault follows its own
    /// OOM's end); others wait here for the decision of their OOM.
    pub fn on_pagefault(&mut self, join: PagefaultJoin) {
        if join.kernel_action == pagefault::RETRIES_FAULT {
            // Not pending (already out, or its OOM unseen): nothing to join.
            if let Some(p) = self.pending.iter_mut().find(|p| p.awaits_fault(join.pid)) {
                p.fault = Some(join);
            }
            return;
        }
        if self.pagefaults.len() >= MAX_PAGEFAULTS {
            self.pagefaults.pop_front();
        }
        self.pagefaults.push_back(join);
    }

    /// The page fault that belongs to `decision`'s OOM: the one its
    /// no-victim OOM leaked (joined as it came), a fault that waited on this
    /// memcg's OOM (cgroup v1, killer disabled; its latest wait), or a
    /// fault's global OOM, by its trigger task.
    fn join_pagefault(&mut self, decision: &mut Decision, leaked: Option<PagefaultJoin>) {
        let Some(join) = leaked.or_else(|| self.take_queued_fault(decision)) else {
            return;
        };
        decision.explanation.push(format!(
            "This OOM came from a page fault of pid {} that reached the #PF handler's pagefault_out_of_memory at {} ({}).",
            join.pid,
            join.time,
            join.kernel_action.replace('_', " ")
        ));
        decision.pagefault_oom = Some(join);
    }

    fn take_queued_fault(&mut self, decision: &Decision) -> Option<PagefaultJoin> {
        let pid = decision.trigger.pid?;
        let oom_memcg = decision.oom_memcg.as_ref().and_then(|m| m.path.clone());
        let global = oom_memcg.is_none();
        let matches = |j: &PagefaultJoin| {
            j.pid == pid
                && match j.kernel_action.as_str() {
                    pagefault::WAITS_FOR_MEMCG_OOM => {
                        oom_memcg.is_some() && j.in_oom_memcg == oom_memcg
                    }
                    pagefault::GLOBAL_OOM => global,
                    _ => false,
                }
        };
        let index = self.pagefaults.iter().rposition(matches)?;
        let join = self.pagefaults.remove(index)?;
        if join.kernel_action == pagefault::WAITS_FOR_MEMCG_OOM {
            // Earlier waits of the same stall are part of this one.
            self.pagefaults.retain(|j| !matches(j));
        }
        Some(join)
    }

    /// A piece of a victim whose decision already went out (the kernel log
    /// lagging behind the ring buffer in a storm): counted, not a new OOM.
    fn is_late(&mut self, now: Instant, pid: u32) -> bool {
        self.last_now = Some(now);
        let late = pid != 0
            && self.decided.contains(now, pid)
            && !self.pending.iter().any(|p| p.victim_pid == pid);
        if late {
            self.late_pieces += 1;
        }
        late
    }

    fn pending_for(
        &mut self,
        now: Instant,
        pid: u32,
        free: impl Fn(&Pending) -> bool,
    ) -> &mut Pending {
        if let Some(index) = self
            .pending
            .iter()
            .rposition(|p| p.victim_pid == pid && free(p))
        {
            return &mut self.pending[index];
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
            self.evicted += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push(Pending {
            id,
            created: Some(now),
            victim_pid: pid,
            ..Default::default()
        });
        self.pending.last_mut().expect("just pushed")
    }

    pub fn on_event(&mut self, now: Instant, event: Event) {
        self.last_piece = Some(now);
        match event {
            Event::MarkVictim(mark) => {
                let pid = mark.pid as u32;
                if !self.is_late(now, pid) {
                    self.pending_for(now, pid, |p| p.mark.is_none()).mark = Some(mark);
                }
            }
            Event::VictimTask(task) => {
                let pid = task.victim_pid;
                if !self.is_late(now, pid) {
                    self.pending_for(now, pid, |p| p.task.is_none()).task = Some(task);
                }
            }
            Event::Reaper(reaper) => {
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == reaper.pid as u32)
                {
                    p.reaper_events.push(reaper);
                }
            }
            Event::VictimExit(exit) => {
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == exit.header.pid && p.exit.is_none())
                {
                    p.exit = Some(exit);
                }
            }
            Event::OomCandidate(candidate) => {
                self.invocation(candidate.oom_seq, &candidate.header)
                    .candidates
                    .push(candidate);
            }
            Event::OomChoice(choice) => {
                self.invocation(choice.oom_seq, &choice.header).choice = Some(choice);
            }
            Event::OomEnd(end) => {
                self.invocation(end.oom_seq, &end.header).end = Some(end);
                let index = self
                    .invocations
                    .iter()
                    .position(|i| i.oom_seq == end.oom_seq)
                    .expect("just inserted");
                let invocation = self.invocations.remove(index);
                self.on_invocation(now, invocation);
            }
            // A fault whose charge failed; the OOM it leads to is reported by the hooks above.
            // Charge failures and OOM-disabled waits are records of their own (app, charge).
            Event::PagefaultOom(_)
            | Event::ChargeFailure(_)
            | Event::OomWait(_)
            | Event::MemcgAtLimit(_)
            | Event::ProcessExec(_) => {}
        }
    }

    fn invocation(&mut self, oom_seq: u64, header: &EventHeader) -> &mut Invocation {
        if let Some(index) = self.invocations.iter().position(|i| i.oom_seq == oom_seq) {
            return &mut self.invocations[index];
        }
        if self.invocations.len() >= MAX_PENDING {
            self.invocations.remove(0);
            self.evicted += 1;
        }
        // A new OOM of this task: its earlier no-victim ones leaked no fault
        // still to come.
        for p in self.pending.iter_mut().filter(|p| {
            p.victim_pid == 0
                && p.invocation
                    .as_ref()
                    .is_some_and(|i| i.trigger_pid == header.pid)
        }) {
            p.trigger_moved_on = true;
        }
        self.invocations.push(Invocation {
            oom_seq,
            trigger_pid: header.pid,
            trigger_comm: header.comm,
            ..Invocation::default()
        });
        self.invocations.last_mut().expect("just pushed")
    }

    /// A finished `out_of_memory`: joins the decision of its victim, or is a
    /// decision of its own when nothing was killed.
    fn on_invocation(&mut self, now: Instant, invocation: Invocation) {
        let end = invocation.end.expect("finished invocations have an end");
        if let Some(choice) = invocation.choice {
            let pending = self.pending_for(now, choice.pid, |p| p.invocation.is_none());
            pending.invocation = Some(invocation);
            return;
        }
        match end.chosen {
            // Aborted: an earlier victim is still exiting; counted, not a decision.
            2 => self.note_aborted(end.memcg_id),
            // Nothing chosen and no progress: no killable task.
            0 if end.ret == 0 => {
                let trigger = invocation.trigger_pid;
                let index = self.pending.iter().position(|p| {
                    p.victim_pid == 0
                        && p.invocation.is_none()
                        && p.report
                            .as_ref()
                            .and_then(|r| r.trigger.as_ref())
                            .is_some_and(|t| t.pid == trigger)
                });
                let pending = match index {
                    Some(index) => &mut self.pending[index],
                    None => self.pending_for(now, 0, |_| false),
                };
                pending.invocation = Some(invocation);
            }
            // Progress without a kill (the allocating task was already dying).
            _ => {}
        }
    }

    /// Takes one item from the kernel log. Reports of OOMs that killed
    /// nothing are decisions on their own and come back at the next `poll`.
    pub fn on_report(&mut self, now: Instant, item: ReportItem) {
        self.last_piece = Some(now);
        match item {
            ReportItem::Report(report) => self.on_kernel_report(now, report),
            ReportItem::OomGroup { memcg, .. } => self.on_group_sweep(now, memcg),
            ReportItem::Kill(kill) => self.on_kill_line(now, kill),
            ReportItem::Reaped(reaped) => {
                self.group_sweep = None;
                if let Some(p) = self
                    .pending
                    .iter_mut()
                    .rev()
                    .find(|p| p.victim_pid == reaped.pid)
                {
                    p.reaped = Some(reaped);
                }
            }
        }
    }

    fn on_kernel_report(&mut self, now: Instant, report: KernelReport) {
        self.group_sweep = None;
        // The kill line's pid, else the summary's (a report cut off between
        // them still names its victim, and its BPF events and a kill line
        // read later join this pending, not a new one).
        let pid = report.chosen_pid().unwrap_or(0);
        if self.is_late(now, pid) {
            return;
        }
        let trigger = report.trigger.as_ref().map(|t| t.pid);
        // A report of an OOM that killed nothing pairs with the oldest such
        // invocation of its trigger: one task failing its charge again and
        // again leaves several pending, and the kernel logs them in order.
        let same_trigger = |p: &Pending| {
            p.invocation
                .as_ref()
                .is_some_and(|i| Some(i.trigger_pid) == trigger)
        };
        if pid == 0
            && let Some(p) = self
                .pending
                .iter_mut()
                .find(|p| p.victim_pid == 0 && p.report.is_none() && same_trigger(p))
        {
            p.report = Some(report);
            return;
        }
        let pending = self.pending_for(now, pid, |p| {
            p.report.is_none() && (pid != 0 || same_trigger(p))
        });
        pending.report = Some(report);
    }

    /// The sweep follows the kill line just read. The BPF events of the
    /// tasks it kills may have opened later pendings already.
    fn on_group_sweep(&mut self, now: Instant, memcg: String) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .rev()
            .find(|p| p.kill_line().is_some())
        {
            p.oom_group = Some(memcg);
            p.sweep_read_at = Some(now);
            self.group_sweep = Some(p.id);
        }
    }

    fn on_kill_line(&mut self, now: Instant, kill: KillLine) {
        if let Some(id) = self.group_sweep
            && let Some(p) = self.pending.iter_mut().find(|p| p.id == id)
        {
            if p.group_kill_set.insert(kill.pid) {
                p.group_kills.push(kill.pid);
            }
            p.sweep_read_at = Some(now);
            return;
        }
        let pid = kill.pid;
        if self.is_late(now, pid) {
            return;
        }
        let pending = self.pending_for(now, pid, |p| p.kill_line().is_none());
        pending.kill = Some(kill);
    }

    /// The live kernel log was read to its end at `now` (or there is none
    /// to read). A no-victim OOM's report is printed before its killer
    /// returns, so an OOM seen by then has its report in, or none will come.
    pub fn on_log_read(&mut self, now: Instant) {
        self.log_read_at = Some(now);
    }

    /// A no-victim OOM seen by the hooks whose report may still be in the
    /// unread part of the kernel log: it waits for it, deadline or not (a
    /// storm's log can be read seconds late, and a decision sent without
    /// its report would shift the pairing of every later one).
    fn awaits_log(&self, p: &Pending) -> bool {
        let Some(read) = self.log_read_at else {
            return false;
        };
        p.victim_pid == 0
            && p.report.is_none()
            && p.invocation.is_some()
            && p.created.is_none_or(|created| read < created)
    }

    fn is_complete(&self, p: &Pending) -> bool {
        let has_invocation = p.invocation.is_some() || !self.sources.oom_path_hooks;
        if p.victim_pid == 0 {
            // "no killable processes": the report, the killer's evaluation,
            // and the fault it leaked if it came from one (known once the
            // fault is in or its task went on to another OOM; else the deadline).
            let fault_known = !self.sources.pagefault_hook
                || p.invocation.is_none()
                || p.fault.is_some()
                || p.trigger_moved_on;
            let report_known = p.report.is_some()
                || (self.log_read_at.is_some() && p.invocation.is_some() && !self.awaits_log(p));
            return report_known && has_invocation && fault_known;
        }
        let has_kill = p.kill_line().is_some();
        let has_bpf = p.mark.is_some() && (p.task.is_some() || !self.sources.victim_task_hook);
        has_kill && has_bpf && has_invocation
    }

    /// Emits the decisions that are ready at `now`, in the order of the
    /// kills within an OOM domain: a ready decision waits for the earlier
    /// ones it may depend on (at most until their deadline), those of its
    /// domain and any whose domain is not known ([`Domain`]). Decisions of
    /// independent memcgs do not wait for one another. Call it after every
    /// input: it also marks decisions complete and keeps the budget.
    pub fn poll(&mut self, now: Instant, env: &mut dyn Environment) -> Vec<Decision> {
        self.last_now = Some(now);
        self.keep_budget();
        let page_size = env.page_size();
        let mut ready = Vec::new();
        // The domains of earlier decisions still waiting; None among them
        // holds back every later one.
        let mut waiting: Vec<Option<Domain>> = Vec::new();
        for index in 0..self.pending.len() {
            let p = &self.pending[index];
            // The cgroup paths it names are one more piece it waits for.
            let complete = self.is_complete(p)
                && (p.complete_since.is_some() || env.memcg_paths_ready(&p.memcg_ids()));
            let p = &mut self.pending[index];
            if complete && p.complete_since.is_none() {
                p.complete_since = Some(now);
            }
            let p = &self.pending[index];
            let domain = Domain::of(p, page_size).filter(|_| self.group_sweep != Some(p.id));
            let held = waiting.iter().any(|earlier| match (earlier, &domain) {
                (Some(earlier), Some(domain)) => !earlier.independent_of(domain),
                _ => true,
            });
            if held || self.due_at(p, now) > now {
                waiting.push(domain);
            } else {
                ready.push(p.id);
            }
        }
        self.emit(&ready, env)
    }

    /// When a pending decision is due: as soon as it is complete and nothing
    /// it awaits can still come ([`Self::settled_at`]), at the latest
    /// [`DEADLINE`] after its first piece.
    fn due_at(&self, p: &Pending, now: Instant) -> Instant {
        let deadline = if self.awaits_log(p) {
            // Not before the log is read to its end (that wakes the loop).
            now + LOG_WAIT_TIMER
        } else {
            p.created.map_or(now, |c| c + DEADLINE)
        };
        p.complete_since
            .and_then(|since| self.settled_at(p, since))
            .map_or(deadline, |settled| deadline.min(settled))
    }

    /// When a complete decision has every piece that can still come: its
    /// victim's exit (else [`WAIT_FOR_EXIT`] after it was complete), the OOM
    /// reaper's pass if one is under way, a memory.oom.group sweep (see
    /// [`SWEEP_SETTLE`]), and the kernel log read to its end after its last
    /// piece, so that lines printed before it are in. `None`: it waits for
    /// an event, with only the deadline as a backstop.
    fn settled_at(&self, p: &Pending, since: Instant) -> Option<Instant> {
        let log_read = self
            .log_read_at
            .is_none_or(|read| self.last_piece.is_none_or(|piece| read >= piece));
        if p.victim_pid == 0 {
            return Some(since);
        }
        if p.exit.is_none() && self.sources.exit_hook {
            return Some(since + WAIT_FOR_EXIT);
        }
        if p.reaper_busy() || !log_read {
            return None;
        }
        match p.sweep_read_at {
            Some(swept) if !self.sources.oom_path_hooks => Some(since.max(swept + SWEEP_SETTLE)),
            _ => Some(since),
        }
    }

    /// The next time a pending decision comes due, after the last `poll`;
    /// `None` when nothing is pending (the loop then sleeps until an input).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = self.last_now?;
        self.pending
            .iter()
            .map(|p| self.due_at(p, now))
            .filter(|&at| at > now)
            .min()
    }

    /// Estimated heap bytes of the decisions and invocations in flight.
    pub fn heap_bytes(&self) -> usize {
        self.pending.iter().map(Pending::heap_bytes).sum::<usize>()
            + self
                .invocations
                .iter()
                .map(Invocation::heap_bytes)
                .sum::<usize>()
    }

    /// Past the budget, the oldest pending decisions go first, then the
    /// oldest invocations still collecting candidates; each is counted.
    fn keep_budget(&mut self) {
        let mut total = self.heap_bytes();
        while total > self.budget {
            let freed = if !self.pending.is_empty() {
                self.pending.remove(0).heap_bytes()
            } else if !self.invocations.is_empty() {
                self.invocations.remove(0).heap_bytes()
            } else {
                break;
            };
            total -= freed;
            self.evicted_over_budget += 1;
        }
    }

    /// Counts an invocation aborted while an earlier victim was exiting;
    /// past [`bounds::ABORTED`] the oldest memcg's count is forgotten.
    fn note_aborted(&mut self, memcg_id: u64) {
        if let Some(entry) = self.aborted.iter_mut().find(|(id, _)| *id == memcg_id) {
            entry.1 += 1;
            return;
        }
        let entry = std::mem::size_of::<(u64, u64)>();
        if (self.aborted.len() + 1) * entry > bounds::ABORTED {
            self.aborted.remove(0);
            self.evicted_aborted += 1;
        }
        self.aborted.push((memcg_id, 1));
    }

    /// What bounded eviction lost so far, by cause (`lost` records).
    pub fn evictions(&self) -> [(&'static str, u64); 5] {
        [
            ("pending", self.evicted),
            ("evicted:pending", self.evicted_over_budget),
            ("evicted:aborted", self.evicted_aborted),
            (
                "evicted:recent_pids",
                self.decided.evicted + self.recent_group_kills.evicted,
            ),
            ("evicted:history", self.history.evicted),
        ]
    }

    /// Where the oldest decision in flight begins in the kernel log (its
    /// report's first line, else its kill line): what is read before it is
    /// decided. None when no decision in flight has a log line yet.
    pub fn oldest_log_line(&self) -> Option<usize> {
        self.pending
            .iter()
            .filter_map(Pending::first_log_line)
            .min()
    }

    /// Whether a decision about victim `pid` is still in flight.
    pub fn is_pending(&self, pid: u32) -> bool {
        self.pending.iter().any(|p| p.victim_pid == pid)
    }

    /// Numbers its decisions after `seq` (decisions already emitted by this
    /// run, such as those recovered from the kernel log at start-up).
    pub fn numbered_after(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Emits everything still pending (shutdown).
    pub fn flush(&mut self, env: &mut dyn Environment) -> Vec<Decision> {
        let all: Vec<u64> = self.pending.iter().map(|p| p.id).collect();
        self.emit(&all, env)
    }

    fn emit(&mut self, ids: &[u64], env: &mut dyn Environment) -> Vec<Decision> {
        let mut decisions = Vec::new();
        // Learn the kernel's rss read from any decision of this batch first,
        // so that its OOMs that cannot tell on their own get it too.
        if self.rss_rule.is_none() {
            let batch = ids
                .iter()
                .filter_map(|id| self.pending.iter().find(|p| p.id == *id));
            self.rss_rule = rss::learn(batch, env.page_size());
        }
        for id in ids {
            let Some(index) = self.pending.iter().position(|p| p.id == *id) else {
                continue;
            };
            let pending = self.pending.remove(index);
            if self.group_sweep == Some(pending.id) {
                self.group_sweep = None;
            }
            let now = self
                .last_now
                .or(pending.created)
                .unwrap_or_else(Instant::now);
            if pending.victim_pid != 0 {
                self.decided.insert(now, pending.victim_pid);
            }
            // A task killed by another decision's memory.oom.group sweep is part of it.
            let swept = |pid: u32| {
                self.recent_group_kills.contains(now, pid)
                    || self.pending.iter().any(|o| o.group_kill_set.contains(&pid))
            };
            if pending.report.is_none() && swept(pending.victim_pid) {
                continue;
            }
            for pid in &pending.group_kills {
                self.recent_group_kills.insert(now, *pid);
            }
            if !self.in_scope(&pending) {
                continue;
            }
            self.seq += 1;
            let mut decision = assemble(self.seq, self.sources, &pending, env);
            // The rss read is the kernel's: learned once, it holds for OOMs
            // that cannot tell on their own (model::exact).
            let events = pending
                .invocation
                .as_ref()
                .map_or(&[][..], |i| &i.candidates[..]);
            rss::settle(&mut self.rss_rule, &mut decision, events);
            self.history.note_repeats(&mut decision);
            self.note_invocation_end(&pending, &mut decision);
            self.join_pagefault(&mut decision, pending.fault.clone());
            decisions.push(decision);
        }
        decisions
    }

    /// What the killer's invocation adds: candidates lost to a full ring
    /// buffer, and the invocations of the same memcg aborted before it.
    fn note_invocation_end(&mut self, pending: &Pending, decision: &mut Decision) {
        let Some(end) = pending.end() else { return };
        if end.dropped > 0 {
            decision.explanation.push(format!(
                "{} candidate(s) were not reported: the ring buffer was full (see the lost records).",
                end.dropped
            ));
        }
        if let Some(index) = self.aborted.iter().position(|(id, _)| *id == end.memcg_id) {
            let (_, aborted) = self.aborted.remove(index);
            decision.explanation.push(format!(
                "Before this kill, {aborted} OOM invocation(s) of the same memcg were aborted while an earlier victim was still exiting."
            ));
        }
    }

    fn in_scope(&self, p: &Pending) -> bool {
        if self.scope.is_empty() || p.task.is_some() {
            // With a filter, the raw victim event only exists for victims in
            // scope (filtered in the kernel).
            return true;
        }
        // No kernel-side verdict (no victim, an older kernel, a dropped
        // event): the report's memcg paths decide.
        let report_paths = p.report.as_ref().map(|r| {
            let mut paths = Vec::new();
            if let Some(c) = &r.constraint {
                paths.extend(c.task_memcg.clone());
                paths.extend(c.oom_memcg.clone());
            }
            if let Some((task, oom)) = &r.task_in_line {
                paths.push(task.clone());
                paths.push(oom.clone());
            }
            // A report without a victim has no constraint line; its memcg
            // stats header names the memcg whose limit was hit.
            paths.extend(r.memcg_stats_for.clone());
            paths
        });
        let in_scope_path = |path: &String| self.scope.iter().any(|s| s.contains(path));
        match report_paths {
            // A victim the kernel filter saw nothing of is out of scope when the
            // filter ran; without the hook, its task memcg decides.
            Some(paths) if p.victim_pid != 0 && self.sources.victim_task_hook => {
                p.mark.is_none() && paths.first().is_some_and(in_scope_path)
            }
            Some(paths) => paths.iter().any(in_scope_path),
            None => false,
        }
    }
}
