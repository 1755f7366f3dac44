//! One run of the collector: opened once, fed by the loop one input at a
//! time, drained and finished when the loop ends.
use std::{
    ops::ControlFlow,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::{AsyncFd, AsyncFdReadyMutGuard};

use oomtrace_core::{
    base::{Envelope, privileges::Privileges, time::now_rfc3339},
    cgroup::{
        CgroupVersion, MemoryHierarchy, ScopeCgroup, process::CmdlineCache, runtimes::NodeNames,
    },
    dump::DumpWriter,
    events::{Event, decode},
    model::{
        charge::ChargeTracker,
        decision::{Builder, Decision, Environment, Sources},
        episode::Episodes,
        pagefault::{PagefaultJoin, TASK_DYING, pagefault_record, retries_fault},
        risk::{RiskMonitor, RiskRecord, kill_boot_ms, link_decision},
        stall::{StallMonitor, StallRecord},
    },
    output::{RecordSink, StartRecord},
    report::{ReportParser, SourceLine},
};

use crate::{
    commands::run::{
        charge_hook::ChargeHook,
        decisions::Decisions,
        env::{LiveEnv, boot_ns_now},
        inputs::Inputs,
        lost::Losses,
        memcg_paths::MemcgPaths,
        metrics,
        options::RunOptions,
        output::{OpenedOutput, RunOutput},
        recovery::{self, Recovered, Recovery},
        risk::RiskWatch,
        rss_rule::SharedRssRule,
        self_care,
        state::{Position, StateFile},
        victim_exits::VictimExits,
    },
    kernel::{
        kmsg::{Kmsg, KmsgRead, KmsgRecord},
        loader::{self, Backend, TraceOptions, Tracer},
        privilege::{self, Lockdown},
    },
};

/// How often OOM-disabled memcgs are checked for stalls (cgroup v1), while
/// there is a reason to ([`Session::stall_poll_at`]).
const STALL_POLL: Duration = Duration::from_secs(1);
/// How long after a memcg's reclaim last fell short of its target a stall
/// may still begin (a pass that reclaimed nothing precedes every OOM-disabled
/// wait): polled till then.
const STALL_WATCH: Duration = Duration::from_secs(10);
/// The ring buffer's drop counters are read this long after ring activity
/// (a full buffer is activity: drops never happen on an idle ring).
const DROPS_CHECK: Duration = Duration::from_secs(1);
/// The first look at the on-demand charge hook after a memcg armed it.
const CHARGE_HOOK_CHECK: Duration = Duration::from_secs(1);
/// How often `--metrics` looks for series of memcgs that are gone, while it
/// has any.
const FORGET_SERIES: Duration = Duration::from_secs(60);
/// Kubernetes names are refreshed at most this often, and only on wake-ups
/// that happen anyway.
const NAMES_REFRESH: Duration = Duration::from_secs(1);

pub struct Session {
    out: RunOutput,
    env: LiveEnv,
    builder: Builder,
    parser: ReportParser,
    charges: ChargeTracker,
    /// The poll of `memory.oom_control` (cgroup v1, without wait hooks).
    stalls: Option<StallMonitor>,
    timers: Timers,
    decisions: Decisions,
    lost: Losses,
    charge_hook: ChargeHook,
    /// The rss read the kernel programs were told (`model::exact`).
    rss_rule: SharedRssRule,
    /// Each memcg's OOM episode, for the records' `oom_id`.
    episodes: Episodes,
    /// This kernel's `pagefault_out_of_memory` retries the fault (5.16+ or a backport).
    pagefault_retries: bool,
    /// `--state-dir`: the position in the kernel log a restart resumes from.
    state: Option<StateFile>,
    position: Position,
    /// The early warning (`model::risk`) and what wakes it.
    risk: RiskMonitor,
    risk_watch: Option<RiskWatch>,
    /// Victims' exits held until their process is gone.
    exits: VictimExits,
}

impl Session {
    /// Checks for root, finds the memory hierarchy and the `--cgroup`
    /// scope, opens the dump directory and the output, starts the tracer
    /// and the kernel log, drops what only the start-up needed, and writes
    /// the start record. Returns the session and the inputs the
    /// loop waits on.
    pub fn open(options: &RunOptions) -> Result<(Self, Inputs)> {
        loader::ensure_privileges()?;
        // First, so that every thread it starts inherits the priority.
        let mut warnings = Vec::new();
        let nice = self_care::raise_priority(options.nice, &mut warnings);
        let hierarchy = MemoryHierarchy::detect_under(&options.host_root)?;
        let scope: Vec<ScopeCgroup> = options
            .cgroups
            .iter()
            .map(|path| hierarchy.scope(path))
            .collect::<Result<_, _>>()?;
        let dumps = options.dump.clone().map(DumpWriter::open).transpose()?;
        let output = OpenedOutput::open(options)?;
        // Before the tracer: a busy address fails before anything loads.
        let listener = options.metrics.map(metrics::bind).transpose()?;
        // Before the tracer: what the log holds now was not traced.
        let recovery = begin_recovery(options)?;
        let mut tracer = Tracer::start(&TraceOptions {
            backend: options.backend,
            cgroup_ids: scope.iter().map(|s| s.id).collect(),
            btf_path: options.btf_path.clone(),
            cmdline: options.cmdline,
        })?;
        // Warnings wait for the output, which starts after the drop.
        let oom_score_adj = self_care::protect_self(options.oom_score_adj, &mut warnings);
        // With --state-dir the recovery opened the log already.
        let kmsg = match recovery {
            Some(_) => None,
            None => open_kmsg(&mut warnings),
        };
        // Every process's command line and environment while the
        // capabilities still allow reading other users' environments.
        let cmdlines = options.cmdline.then(|| {
            let mut cache = CmdlineCache::default();
            cache.scan(&options.host_root.join("proc"), true);
            cache
        });
        // Registering a threshold writes to cgroup.event_control (mode 0200,
        // uid 0): before the drop, for a tracer that is not uid 0.
        let mut risk_watch = RiskWatch::register(&hierarchy, &scope);
        let privileges = drop_privileges(options)?;
        if let Some(watch) = risk_watch.as_mut() {
            watch
                .start()
                .context("starting the early warning's thread")?;
        }
        let mut out = output.start()?;
        for warning in &warnings {
            out.warning(warning)?;
        }
        // Names of the containers running now, before anything can die.
        let mut names = NodeNames::new(&options.host_root);
        names.refresh();
        let paths =
            MemcgPaths::start(hierarchy.clone()).context("starting the cgroup path lookups")?;
        let release = loader::kernel_release();
        let mut recovered = recovery.map(|r| r.finish(&scope, &release, &mut names));
        let kmsg = match recovered.as_mut() {
            Some(recovered) => log_of(recovered, &mut out)?,
            None => kmsg,
        };
        let mut start = start_record(&tracer, &release, &scope, kmsg.is_some(), privileges);
        start.oom_score_adj = oom_score_adj;
        start.nice = nice;
        start.recovery = recovered.as_ref().map(|r| r.status.clone());
        if let Some(listener) = listener {
            out.serve_metrics(listener, &start);
        }
        out.start(&start)?;
        let inputs = Inputs {
            ring: watch_ring(&mut tracer)?,
            kmsg,
        };
        let numbered = recovered.as_ref().map_or(0, |r| r.decisions.len() as u64);
        let sources = sources(&tracer);
        let stalls = stall_monitor(&hierarchy, &scope, &tracer);
        let timers = Timers::new(&tracer);
        let mut env = LiveEnv::new(
            tracer,
            hierarchy,
            paths,
            release.clone(),
            &options.host_root,
            names,
            cmdlines,
        );
        if !sources.oom_path_hooks {
            env.snapshot_tasks_on_kill();
        }
        let mut session = Session {
            builder: Builder::new(sources, scope.clone()).numbered_after(numbered),
            parser: ReportParser::new(),
            charges: ChargeTracker::new(),
            stalls,
            timers,
            decisions: Decisions::new(dumps, options.count)?,
            lost: Losses::new(),
            charge_hook: ChargeHook::new(options.charge_hook),
            rss_rule: SharedRssRule::default(),
            pagefault_retries: retries_fault(
                &release,
                &std::fs::read_to_string("/proc/version").unwrap_or_default(),
            ),
            episodes: Episodes::new(boot_id().as_deref()),
            env,
            out,
            state: None,
            position: Position::default(),
            risk: RiskMonitor::new(),
            risk_watch,
            exits: VictimExits::default(),
        };
        if let Some(recovered) = recovered {
            session.emit_recovered(recovered)?;
        }
        Ok((session, inputs))
    }

    /// Notified when cgroup path lookups were answered off the loop.
    pub fn paths_answered(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.env.paths_answered()
    }

    /// Notified when a held victim exit can go on.
    pub fn exits_released(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.exits.released()
    }

    /// Notified when a memcg crossed its early-warning threshold.
    pub fn risk_notified(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.risk_watch.as_ref().map(RiskWatch::notified)
    }

    /// After the start record: what the kernel logged while oomtrace was
    /// not running (a `lost` record for what it overwrote, the recovered
    /// decisions in kill order), then the state is saved past it.
    fn emit_recovered(&mut self, mut recovered: Recovered) -> Result<()> {
        recovery::report(&mut recovered, &mut self.out)?;
        let mut decisions = std::mem::take(&mut recovered.decisions);
        self.episodes_of(&mut decisions);
        self.position = recovered.position;
        self.state = Some(recovered.state);
        self.write_decisions(decisions)?;
        self.save_state(true)
    }

    /// Writes decisions until `--count` (true once reached). Those that go
    /// out are noted in the state; those cut by `--count` stay undecided
    /// there, so that a restart recovers them.
    fn write_decisions(&mut self, decisions: Vec<Decision>) -> Result<bool> {
        let room = self.decisions.room().min(decisions.len());
        let (written, cut) = decisions.split_at(room);
        if let Some(state) = self.state.as_mut() {
            state.emitted(written);
        }
        self.position.hold(
            cut.iter()
                .filter_map(|d| d.log_line)
                .min()
                .map(|l| l as u64),
        );
        self.decisions.write(&mut self.out, decisions)
    }

    /// Saves the last kernel-log record decided (`--state-dir`): `now`
    /// (recovery, the end of the run), else when due (decisions went out,
    /// or the periodic refresh on wake-ups that happen anyway).
    fn save_state(&mut self, now: bool) -> Result<()> {
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        if !now && !state.save_due(Instant::now()) {
            return Ok(());
        }
        let decided = self.position.decided(self.builder.oldest_log_line());
        state.save(decided, &mut self.out)
    }

    /// Completes when stdout's reader goes away (see [`RunOutput`]).
    pub fn take_reader_gone(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.out.take_reader_gone()
    }

    /// Applies `--charge-hook`.
    pub fn start_charge_hook(&mut self) -> Result<()> {
        self.charge_hook.start(&self.env.tracer, &mut self.out)
    }

    /// The ring buffer is readable: every record in it, then wait again.
    /// Its drop counters are read a little later.
    pub fn on_ring(&mut self, mut ready: AsyncFdReadyMutGuard<'_, RingBuf<MapData>>) -> Result<()> {
        let now = Instant::now();
        self.read_ring(now, ready.get_inner_mut())?;
        ready.clear_ready();
        self.timers.ring_read(now);
        Ok(())
    }

    /// A kernel-log record feeds the report parser; a gap is a `lost` record.
    /// The ring buffer is read first, up to now: the BPF events of an OOM
    /// are committed before its report is printed, so they are in before
    /// the report's lines, however busy the ring (a report read ahead of its
    /// invocation could reach its deadline alone and shift the pairing of
    /// the next ones).
    pub fn on_kmsg(&mut self, read: KmsgRead, ring: &mut RingBuf<MapData>) -> Result<()> {
        self.read_ring(Instant::now(), ring)?;
        self.on_kmsg_read(read)
    }

    fn on_kmsg_read(&mut self, read: KmsgRead) -> Result<()> {
        match read {
            KmsgRead::Record(record) => self.on_log_line(Instant::now(), record),
            KmsgRead::Lost(count) => {
                self.lost.kmsg(count, &mut self.out)?;
                self.on_log_gap(Instant::now());
            }
        }
        Ok(())
    }

    /// After every wake-up, before what is due: the ring buffer and then the
    /// kernel log read to their ends, so that no decision is judged on a
    /// source read late (a storm's log lines can queue up for seconds). The
    /// builder learns when the log was read to its end (or that there is
    /// none): no report printed before then is still to come.
    pub fn catch_up(&mut self, inputs: &mut Inputs) -> Result<()> {
        self.read_ring(Instant::now(), inputs.ring.get_mut())?;
        // Released exits are pieces too: in before the log is read, or
        // every decision would wait for the next wake-up's read.
        let now = Instant::now();
        for exit in self.exits.take(false) {
            self.builder.on_event(now, exit);
        }
        if let Some(kmsg) = inputs.kmsg.as_mut() {
            match kmsg.drain_now() {
                Ok(reads) => {
                    for read in reads {
                        self.on_kmsg_read(read)?;
                    }
                }
                Err(error) => {
                    self.on_kmsg_failed(&error)?;
                    inputs.kmsg = None;
                }
            }
        }
        self.builder.on_log_read(Instant::now());
        Ok(())
    }

    /// Reading the kernel log failed: the run goes on without it.
    pub fn on_kmsg_failed(&mut self, error: &std::io::Error) -> Result<()> {
        self.out.warning(&format!(
            "reading /dev/kmsg failed ({error}); continuing without the kernel's report"
        ))?;
        Ok(())
    }

    /// After every wake-up (an input or [`next_deadline`](Self::next_deadline)):
    /// whatever is due now — decisions (stopping at `--count`), released
    /// stalls, the stall poll, the ring's drop counters, the charge hook —
    /// and what bounded memory evicted.
    pub fn on_wake(&mut self) -> Result<ControlFlow<()>> {
        if self.out.on_wake()?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        let now = Instant::now();
        self.env.take_late_snapshots();
        self.env.name_wanted(now);
        let mut decisions = self.builder.poll(now, &mut self.env);
        if !decisions.is_empty() {
            let builder = &self.builder;
            self.env.keep_task_snapshots(|pid| builder.is_pending(pid));
        }
        self.episodes_of(&mut decisions);
        self.link_warnings(&mut decisions);
        self.rss_rule
            .share(&self.env.tracer, &decisions, &mut self.out)?;
        if self.write_decisions(decisions)? {
            return Ok(ControlFlow::Break(()));
        }
        self.save_state(false)?;
        self.poll_risk()?;
        for record in self.charges.poll(now, false, &now_rfc3339(), &mut self.env) {
            self.stall(record)?;
        }
        if due(self.stall_poll_at(), now) {
            self.poll_stalls()?;
        }
        if due(self.timers.drops, now) {
            self.lost.ringbuf(self.env.tracer.drops(), &mut self.out)?;
            self.timers.drops_checked(now);
        }
        if due(self.timers.charge_hook, now) {
            self.timers.charge_hook = self.check_charge_hook(now)?;
        }
        self.lost.evictions(self.evictions(), &mut self.out)?;
        self.decisions.report_dumps(&mut self.out)?;
        if due(self.timers.forget_series, now) {
            let env = &self.env;
            self.out.forget_gone_series(|memcg| env.memcg_exists(memcg));
        }
        self.timers.forget_series = self.out.has_series().then(|| {
            self.timers
                .forget_series
                .filter(|&at| at > now)
                .unwrap_or(now + FORGET_SERIES)
        });
        // Names of containers started since: on wake-ups that happen anyway
        // (an OOM's events among them), at most once a second.
        if self.timers.names_refreshed + NAMES_REFRESH <= now {
            self.env.refresh_names();
            self.timers.names_refreshed = now;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The earliest time something is due (see [`on_wake`](Self::on_wake));
    /// `None` when nothing is pending: the loop then sleeps until an input.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.builder.next_deadline(),
            self.charges.next_deadline(),
            self.stall_poll_at(),
            self.timers.drops,
            self.timers.charge_hook,
            self.timers.forget_series,
            self.risk_deadline(),
            self.out.next_deadline(),
            self.decisions.next_deadline(),
            // `--count` reached by recovered decisions: end now.
            self.decisions.done().then(Instant::now),
            self.state.as_ref().and_then(StateFile::due_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The on-demand charge hook's idleness; when to look again.
    fn check_charge_hook(&mut self, now: Instant) -> Result<Option<Instant>> {
        let now_ns = boot_ns_now();
        self.charge_hook
            .on_tick(now_ns, &self.env.tracer, &mut self.out)?;
        Ok(self
            .charge_hook
            .next_check(now_ns, &self.env.tracer)
            .map(|d| now + d))
    }

    /// The next poll of `memory.oom_control`: once a second while a stall is
    /// known or one may begin (a memcg reclaimed at its limit lately, or no
    /// reclaim hook says so); never on an idle node.
    fn stall_poll_at(&self) -> Option<Instant> {
        let monitor = self.stalls.as_ref()?;
        self.timers
            .stall_poll_at(monitor.has_stalls(), Instant::now())
    }

    /// What bounded memory evicted so far, by cause (`lost` records).
    fn evictions(&self) -> Vec<(&'static str, u64)> {
        let stall_tasks = self.stalls.as_ref().map_or(0, |m| m.evicted_tasks);
        let mut all: Vec<(&'static str, u64)> = self.builder.evictions().to_vec();
        all.extend(
            self.charges
                .evictions()
                .map(|(source, total)| match source {
                    "evicted:stall_tasks" => (source, total + stall_tasks),
                    _ => (source, total),
                }),
        );
        all.push(("evicted:report", self.parser.cut_by_bound));
        all.push(("evicted:memcg_paths", self.env.uncached_memcgs()));
        all.push(("memcg_path_queue", self.env.dropped_path_lookups()));
        all.push(("evicted:task_snapshots", self.env.evicted_task_snapshots));
        all.push(("evicted:cmdlines", self.env.evicted_cmdlines()));
        all
    }

    /// After the loop, unless `--count` was reached: what the kernel already
    /// delivered is read (a SIGTERM mid-OOM), and whatever is half-built
    /// still goes out: nothing is lost silently.
    pub fn drain(&mut self, inputs: &mut Inputs) -> Result<()> {
        if self.decisions.done() || self.out.ended()? {
            return Ok(());
        }
        let now = Instant::now();
        self.read_ring(now, inputs.ring.get_mut())?;
        if let Some(kmsg) = inputs.kmsg.as_mut() {
            for read in kmsg.drain_now().unwrap_or_default() {
                if let KmsgRead::Record(record) = read {
                    self.on_log_line(now, record);
                }
            }
        }
        for item in self.parser.finish() {
            self.builder.on_report(now, item);
        }
        for exit in self.exits.take(true) {
            self.builder.on_event(now, exit);
        }
        self.env.take_late_snapshots();
        self.position.closed();
        let mut decisions = self.builder.flush(&mut self.env);
        self.episodes_of(&mut decisions);
        self.link_warnings(&mut decisions);
        self.write_decisions(decisions)?;
        Ok(())
    }

    /// The last records: stalls that ended with the run (the kill that
    /// released them), charge-failure summaries, the malformed-record
    /// warning. Returns how many decisions went out.
    pub fn finish(mut self) -> Result<u64> {
        self.poll_stalls()?;
        let time = now_rfc3339();
        for record in self
            .charges
            .poll(Instant::now(), true, &time, &mut self.env)
        {
            self.stall(record)?;
        }
        let counts = self.env.tracer.charge_failure_counts();
        for summary in self.charges.summaries(&counts, &time, &mut self.env) {
            self.out.charge_failure_summary(&summary)?;
        }
        self.lost.ringbuf(self.env.tracer.drops(), &mut self.out)?;
        self.lost.evictions(self.evictions(), &mut self.out)?;
        self.lost.warn_malformed(&mut self.out)?;
        self.save_state(true)?;
        self.decisions.close(&mut self.out)?;
        self.out.close()?;
        Ok(self.decisions.emitted())
    }

    fn read_ring(&mut self, now: Instant, ring: &mut RingBuf<MapData>) -> Result<()> {
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(event) => self.on_event(now, event)?,
                Err(_) => self.lost.malformed(),
            }
        }
        Ok(())
    }

    /// Charge failures, OOM-disabled waits and page-fault OOMs are records
    /// of their own, written as they come (a page fault also joins its
    /// decision); a memcg at its limit arms the charge hook;
    /// everything else feeds the decision being rebuilt.
    fn on_event(&mut self, now: Instant, event: Event) -> Result<()> {
        match event {
            Event::ChargeFailure(e) => {
                let time = self.env.time_of_boot_ns(e.header.boot_ns);
                let mut record = self.charges.on_failure(&e, time, &mut self.env);
                record.oom_id = Some(self.episodes.id(record.memcg.as_deref(), boot_ms()));
                self.out.charge_failure(&record)?;
            }
            Event::OomWait(e) => {
                let time = self.env.time_of_boot_ns(e.header.boot_ns);
                for record in self.charges.on_wait(&e, now, &time, &mut self.env) {
                    self.stall(record)?;
                }
            }
            Event::PagefaultOom(e) => {
                let time = self.env.time_of_boot_ns(e.header.boot_ns);
                let env = &mut self.env;
                let mut record = pagefault_record(&e, time, self.pagefault_retries, &mut |id| {
                    env.memcg_path(id)
                });
                if record.kernel_action != TASK_DYING {
                    let memcg = record.in_oom_memcg.as_deref().or(record.memcg.as_deref());
                    record.oom_id = Some(self.episodes.id(memcg, boot_ms()));
                }
                self.out.pagefault(&record)?;
                self.builder.on_pagefault(PagefaultJoin::from(&record));
            }
            Event::MemcgAtLimit(e) => {
                self.env.want_names(e.memcg_id);
                self.timers.at_limit_until = Some(now + STALL_WATCH);
                self.timers
                    .charge_hook
                    .get_or_insert(now + CHARGE_HOOK_CHECK);
                self.charge_hook
                    .on_memcg_at_limit(&e, &mut self.env, &mut self.out)?
            }
            Event::ProcessExec(e) => self.env.read_cmdline(e.header.tgid),
            // What the kill freed is read after it: not before the
            // victim's memory is released (`victim_exits`).
            Event::VictimExit(exit) => {
                if let Some(event) = self.exits.hold(exit.header.tgid, event) {
                    self.builder.on_event(now, event);
                }
            }
            other => {
                self.env.snapshot_oom_memcgs(&other);
                self.builder.on_event(now, other)
            }
        }
        Ok(())
    }

    fn on_log_line(&mut self, now: Instant, record: KmsgRecord) {
        let seq = record.seq;
        let line = SourceLine {
            line_no: record.seq as usize,
            timestamp: Some(record.usec as f64 / 1e6),
            text: record.text,
        };
        for item in self.parser.push(line) {
            self.builder.on_report(now, item);
        }
        self.position.read(seq, self.parser.has_open_report());
    }

    /// Records were lost: the report being read cannot be whole. It is
    /// closed now (as incomplete) so lines after the gap never merge into it.
    fn on_log_gap(&mut self, now: Instant) {
        for item in self.parser.finish() {
            self.builder.on_report(now, item);
        }
        self.position.closed();
    }

    fn poll_stalls(&mut self) -> Result<()> {
        self.timers.stall_polled = Instant::now();
        let records = self.stalls.as_mut().map(StallMonitor::poll);
        for record in records.into_iter().flatten() {
            self.stall(record)?;
        }
        Ok(())
    }

    /// A stall record in its memcg's episode, which its end closes.
    fn stall(&mut self, mut record: StallRecord) -> Result<()> {
        let memcg = Some(record.memcg.as_str()).filter(|m| !m.is_empty());
        let id = match record.state {
            "stalled" => self.episodes.hold(memcg, boot_ms()),
            _ => self.episodes.end_stall(memcg, boot_ms()),
        };
        record.oom_id = Some(id);
        self.out.stall(&record)?;
        Ok(())
    }

    /// Memcgs that crossed their threshold are watched; the watched are
    /// sampled when due, their warnings and clears written in their episode.
    fn poll_risk(&mut self) -> Result<()> {
        if let Some(watch) = self.risk_watch.as_mut() {
            for memcg in watch.take_crossed() {
                self.risk.watch(&memcg);
            }
            for notice in watch.take_notices() {
                self.out.warning(&notice)?;
            }
        }
        let now_ms = boot_ms();
        for record in self.risk.poll(now_ms, &mut self.env) {
            match record {
                RiskRecord::Warning(mut warning) => {
                    let oom_id = self.episodes.hold(Some(&warning.memcg), now_ms);
                    self.risk.set_oom_id(&warning.memcg, &oom_id);
                    warning.oom_id = Some(oom_id);
                    self.out.warning_record(&warning)?;
                }
                RiskRecord::Clear(mut clear) => {
                    clear.oom_id = Some(self.episodes.close(Some(&clear.memcg), now_ms));
                    self.out.warning_clear(&clear)?;
                }
            }
        }
        Ok(())
    }

    /// The next sample of the watched memcgs; none while nothing is watched.
    fn risk_deadline(&self) -> Option<Instant> {
        let at_ms = self.risk.next_deadline_ms()?;
        Some(Instant::now() + Duration::from_millis(at_ms.saturating_sub(boot_ms())))
    }

    /// A decision after a warning of its memcg says so.
    fn link_warnings(&mut self, decisions: &mut [Decision]) {
        for decision in decisions {
            let memcg = decision.oom_memcg.as_ref().and_then(|m| m.path.clone());
            let now = boot_ms();
            let killed = kill_boot_ms(decision, now);
            if let Some(link) = memcg.and_then(|m| self.risk.on_kill(&m, killed)) {
                link_decision(decision, link, now);
            }
        }
    }

    /// Each decision ends its memcg's episode.
    fn episodes_of(&mut self, decisions: &mut [Decision]) {
        for decision in decisions {
            self.episodes.decision(decision, boot_ms());
        }
    }
}

/// This boot's id, the first part of every `oom_id`.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()
}

/// Milliseconds since boot (CLOCK_BOOTTIME), the clock of OOM episodes.
fn boot_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// With `--state-dir`, the state and the kernel log read up to now.
fn begin_recovery(options: &RunOptions) -> Result<Option<Recovery>> {
    let Some(dir) = options.state_dir.as_deref() else {
        return Ok(None);
    };
    let boot_id = boot_id().context("--state-dir: cannot read this boot's id")?;
    Ok(Some(Recovery::begin(dir, boot_id.trim())?))
}

/// The kernel log the recovery read, going on live; or a warning that
/// decisions will lack the kernel's report.
fn log_of(recovered: &mut Recovered, out: &mut dyn RecordSink) -> Result<Option<Kmsg>> {
    let failed = std::io::Error::other("already taken");
    match std::mem::replace(&mut recovered.kmsg, Err(failed)) {
        Ok(kmsg) => Ok(Some(kmsg)),
        Err(e) => {
            out.warning(&format!(
                "cannot read /dev/kmsg ({e}): decisions will lack the kernel's report, and nothing is recovered"
            ))?;
            Ok(None)
        }
    }
}

/// `/dev/kmsg`, or a warning that decisions will lack the kernel's report.
fn open_kmsg(warnings: &mut Vec<String>) -> Option<Kmsg> {
    match Kmsg::open(std::path::Path::new("/dev/kmsg")) {
        Ok(kmsg) => Some(kmsg),
        Err(e) => {
            warnings.push(format!(
                "cannot read /dev/kmsg ({e}): decisions will lack the kernel's report"
            ));
            None
        }
    }
}

/// Least privilege from here on: everything that needed more is attached,
/// open or set (see `kernel::privilege`).
fn drop_privileges(options: &RunOptions) -> Result<Privileges> {
    let lockdown = Lockdown {
        seccomp: options.seccomp,
        demo: options.demo,
    };
    privilege::lock_down(lockdown).context("dropping privileges after start-up")
}

fn start_record<'a>(
    tracer: &'a Tracer,
    release: &'a str,
    scope: &[ScopeCgroup],
    kernel_report: bool,
    privileges: Privileges,
) -> StartRecord<'a> {
    StartRecord {
        envelope: Envelope::now("start"),
        backend: tracer.backend.name(),
        kernel_release: release,
        hooks: &tracer.hooks,
        unavailable_fields: &tracer.unavailable,
        cgroups: scope.iter().map(|s| s.path.display().to_string()).collect(),
        kernel_report,
        oom_score_adj: None,
        nice: None,
        privileges,
        recovery: None,
    }
}

/// The tracer's ring buffer, registered with the runtime for readability.
fn watch_ring(tracer: &mut Tracer) -> Result<AsyncFd<RingBuf<MapData>>> {
    let events = tracer.events.take().context("ring buffer already taken")?;
    // SAFETY: the ring buffer owns its map fd and keeps it open while the AsyncFd lives.
    unsafe { AsyncFd::register(events) }
        .map_err(std::io::Error::from)
        .context("polling the ring buffer")
}

/// Which hooks the decisions can draw on, as they will say.
fn sources(tracer: &Tracer) -> Sources {
    Sources {
        backend: tracer.backend.name(),
        victim_task_hook: any_attached(tracer, |hook| hook == "raw_tracepoint/mark_victim"),
        exit_hook: any_attached(tracer, |hook| hook.ends_with("sched_process_exit")),
        oom_path_hooks: tracer.backend != Backend::Tracepoint,
        pagefault_hook: any_attached(tracer, |hook| hook.ends_with("pagefault_out_of_memory")),
    }
}

fn any_attached(tracer: &Tracer, matches: impl Fn(&str) -> bool) -> bool {
    tracer.hooks.iter().any(|h| h.attached && matches(&h.hook))
}

/// The poll of `memory.oom_control` for OOM-disabled stalls (cgroup v1):
/// the fallback where the hooks on `mem_cgroup_oom_synchronize` (which see
/// every wait exactly) are not both attached.
fn stall_monitor(
    hierarchy: &MemoryHierarchy,
    scope: &[ScopeCgroup],
    tracer: &Tracer,
) -> Option<StallMonitor> {
    if hierarchy.version != CgroupVersion::V1
        || tracer.attached_hooks_on("mem_cgroup_oom_synchronize") == 2
    {
        return None;
    }
    let roots = if scope.is_empty() {
        vec![hierarchy.mount.clone()]
    } else {
        scope.iter().map(|s| s.path.clone()).collect()
    };
    Some(StallMonitor::new(hierarchy.clone(), roots))
}

/// The session's own timers; each is armed only while it has a reason.
struct Timers {
    /// When the ring buffer's drop counters are next read (after activity).
    drops: Option<Instant>,
    /// The ring was read since the drop counters were.
    ring_active: bool,
    /// When the on-demand charge hook's idleness is next looked at.
    charge_hook: Option<Instant>,
    /// A memcg's reclaim fell short lately: stalls may begin until then.
    at_limit_until: Option<Instant>,
    /// The memcg reclaim hook is attached (it tells when memcgs are at their limit).
    reclaim_hook: bool,
    stall_polled: Instant,
    /// When `--metrics` next looks for series of memcgs that are gone (only
    /// while it has series).
    forget_series: Option<Instant>,
    /// When the Kubernetes names were last refreshed.
    names_refreshed: Instant,
}

impl Timers {
    fn new(tracer: &Tracer) -> Self {
        Self {
            drops: None,
            ring_active: false,
            charge_hook: None,
            at_limit_until: None,
            reclaim_hook: tracer.attached_hooks_on("mm_vmscan_memcg_reclaim_begin") > 0,
            stall_polled: Instant::now(),
            forget_series: None,
            names_refreshed: Instant::now(),
        }
    }
}

impl Timers {
    /// The ring was read: its drop counters are due a little later.
    fn ring_read(&mut self, now: Instant) {
        self.ring_active = true;
        self.drops.get_or_insert(now + DROPS_CHECK);
    }

    /// The drop counters were read: once more if the ring was read since
    /// (a drop counted while we read it), else no timer.
    fn drops_checked(&mut self, now: Instant) {
        self.drops = self.ring_active.then(|| now + DROPS_CHECK);
        self.ring_active = false;
    }

    /// The next `memory.oom_control` poll, when there is a reason for one.
    fn stall_poll_at(&self, stalled: bool, now: Instant) -> Option<Instant> {
        let reason =
            stalled || !self.reclaim_hook || self.at_limit_until.is_some_and(|until| until > now);
        reason.then_some(self.stall_polled + STALL_POLL)
    }
}

/// A timer that is armed and has come.
fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_timers(now: Instant) -> Timers {
        Timers {
            drops: None,
            ring_active: false,
            charge_hook: None,
            at_limit_until: None,
            reclaim_hook: true,
            stall_polled: now,
            forget_series: None,
            names_refreshed: now,
        }
    }

    #[test]
    fn drop_counters_are_read_after_ring_activity_then_once_more_then_never() {
        let t0 = Instant::now();
        let mut timers = idle_timers(t0);
        assert_eq!(timers.drops, None, "an idle ring arms nothing");
        timers.ring_read(t0);
        let ms = |n| Duration::from_millis(n);
        timers.ring_read(t0 + ms(300));
        assert_eq!(
            timers.drops,
            Some(t0 + DROPS_CHECK),
            "the first read arms it"
        );
        assert!(!due(timers.drops, t0 + ms(999)) && due(timers.drops, t0 + DROPS_CHECK));
        timers.drops_checked(t0 + DROPS_CHECK);
        assert_eq!(timers.drops, Some(t0 + DROPS_CHECK * 2), "once more");
        timers.drops_checked(t0 + DROPS_CHECK * 2);
        assert_eq!(timers.drops, None, "no activity since: no timer");
    }

    #[test]
    fn the_stall_poll_runs_only_with_a_reason() {
        let t0 = Instant::now();
        let mut timers = idle_timers(t0);
        assert_eq!(timers.stall_poll_at(false, t0), None, "idle: never");
        assert_eq!(
            timers.stall_poll_at(true, t0),
            Some(t0 + STALL_POLL),
            "a known stall"
        );
        timers.at_limit_until = Some(t0 + STALL_WATCH);
        assert_eq!(timers.stall_poll_at(false, t0), Some(t0 + STALL_POLL));
        assert_eq!(
            timers.stall_poll_at(false, t0 + STALL_WATCH),
            None,
            "watch over"
        );
        timers.reclaim_hook = false;
        assert_eq!(
            timers.stall_poll_at(false, t0 + STALL_WATCH),
            Some(t0 + STALL_POLL),
            "without the reclaim hook nothing tells: once a second"
        );
    }
}
