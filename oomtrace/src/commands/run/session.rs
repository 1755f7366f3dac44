//! One run of the collector: opened once, fed by the loop one input at a
//! time, drained and finished when the loop ends.
use std::{
    io::StdoutLock,
    ops::ControlFlow,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::{AsyncFd, AsyncFdReadyMutGuard};

use oomtrace_core::{
    base::{Envelope, time::now_rfc3339},
    cgroup::{CgroupVersion, MemoryHierarchy, ScopeCgroup},
    dump::DumpWriter,
    events::{Event, decode},
    model::{
        charge::ChargeTracker,
        decision::{Builder, Sources},
        stall::StallMonitor,
    },
    output::{Output, StartRecord},
    report::{ReportParser, SourceLine},
};

use crate::{
    commands::run::{
        charge_hook::ChargeHook,
        decisions::Decisions,
        env::{LiveEnv, boot_ns_now},
        inputs::Inputs,
        lost::Losses,
        options::RunOptions,
        rss_rule::SharedRssRule,
    },
    kernel::{
        kmsg::{Kmsg, KmsgRead, KmsgRecord},
        loader::{self, Backend, TraceOptions, Tracer},
    },
};

/// How often OOM-disabled memcgs are checked for stalls (cgroup v1).
const STALL_POLL: Duration = Duration::from_secs(1);
/// How often the ring buffer's drop counters and the on-demand charge
/// hook's idleness are checked.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub struct Session {
    out: Output<StdoutLock<'static>>,
    env: LiveEnv,
    builder: Builder,
    parser: ReportParser,
    charges: ChargeTracker,
    /// The poll of `memory.oom_control` (cgroup v1, without wait hooks).
    stalls: Option<StallMonitor>,
    stall_poll: Every,
    decisions: Decisions,
    lost: Losses,
    housekeeping: Every,
    charge_hook: ChargeHook,
    /// The rss read the kernel programs were told (`model::exact`).
    rss_rule: SharedRssRule,
}

impl Session {
    /// Checks for root, finds the memory hierarchy and the `--cgroup`
    /// scope, opens the dump directory, starts the tracer and the kernel
    /// log, and writes the start record. Returns the session and the
    /// inputs the loop waits on.
    pub fn open(options: &RunOptions) -> Result<(Self, Inputs)> {
        loader::ensure_privileges()?;
        let hierarchy = MemoryHierarchy::detect()?;
        let scope: Vec<ScopeCgroup> = options
            .cgroups
            .iter()
            .map(|path| hierarchy.scope(path))
            .collect::<Result<_, _>>()?;
        let dumps = options.dump.clone().map(DumpWriter::open).transpose()?;
        let mut tracer = Tracer::start(&TraceOptions {
            backend: options.backend,
            cgroup_ids: scope.iter().map(|s| s.id).collect(),
            btf_path: options.btf_path.clone(),
        })?;
        let mut out = Output::new(std::io::stdout().lock(), options.json, options.top);
        let oom_score_adj = protect_self(options.oom_score_adj, &mut out)?;
        let kmsg = open_kmsg(&mut out)?;
        let release = loader::kernel_release();
        let mut start = start_record(&tracer, &release, &scope, kmsg.is_some());
        start.oom_score_adj = oom_score_adj;
        out.start(&start)?;
        let inputs = Inputs {
            ring: watch_ring(&mut tracer)?,
            kmsg,
        };
        let session = Session {
            builder: Builder::new(sources(&tracer), scope.clone()),
            parser: ReportParser::new(),
            charges: ChargeTracker::new(),
            stalls: stall_monitor(&hierarchy, &scope, &tracer),
            stall_poll: Every::new(STALL_POLL),
            decisions: Decisions::new(dumps, options.count),
            lost: Losses::new(),
            housekeeping: Every::new(HOUSEKEEPING),
            charge_hook: ChargeHook::new(options.charge_hook),
            rss_rule: SharedRssRule::default(),
            env: LiveEnv::new(tracer, hierarchy, release),
            out,
        };
        Ok((session, inputs))
    }

    /// Applies `--charge-hook`.
    pub fn start_charge_hook(&mut self) -> Result<()> {
        self.charge_hook.start(&self.env.tracer, &mut self.out)
    }

    /// The ring buffer is readable: every record in it, then wait again.
    pub fn on_ring(&mut self, mut ready: AsyncFdReadyMutGuard<'_, RingBuf<MapData>>) -> Result<()> {
        self.read_ring(Instant::now(), ready.get_inner_mut())?;
        ready.clear_ready();
        Ok(())
    }

    /// A kernel-log record feeds the report parser; a gap is a `lost` record.
    pub fn on_kmsg(&mut self, read: KmsgRead) -> Result<()> {
        match read {
            KmsgRead::Record(record) => self.on_log_line(Instant::now(), record),
            KmsgRead::Lost(count) => {
                self.lost.kmsg(count, &mut self.out)?;
                self.on_log_gap(Instant::now());
            }
        }
        Ok(())
    }

    /// Reading the kernel log failed: the run goes on without it.
    pub fn on_kmsg_failed(&mut self, error: &std::io::Error) -> Result<()> {
        self.out.warning(&format!(
            "reading /dev/kmsg failed ({error}); continuing without the kernel's report"
        ))?;
        Ok(())
    }

    /// Every 50 ms: decisions whose time has come (stopping at `--count`),
    /// stalls, evicted decisions; once a second the ring buffer's drops and
    /// the on-demand charge hook.
    pub fn on_tick(&mut self) -> Result<ControlFlow<()>> {
        let decisions = self.builder.poll(Instant::now(), &mut self.env);
        self.rss_rule
            .share(&self.env.tracer, &decisions, &mut self.out)?;
        if self.decisions.write(&mut self.out, decisions)? {
            return Ok(ControlFlow::Break(()));
        }
        let now = Instant::now();
        for record in self.charges.poll(now, false, &now_rfc3339(), &mut self.env) {
            self.out.stall(&record)?;
        }
        if self.stalls.is_some() && self.stall_poll.due() {
            self.poll_stalls()?;
        }
        self.lost.pending(self.builder.evicted, &mut self.out)?;
        if self.housekeeping.due() {
            let now = boot_ns_now();
            if self
                .charge_hook
                .next_deadline(&self.env.tracer)
                .is_some_and(|deadline| now >= deadline)
            {
                self.charge_hook
                    .on_tick(now, &self.env.tracer, &mut self.out)?;
            }
            self.lost.ringbuf(self.env.tracer.drops(), &mut self.out)?;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// After the loop, unless `--count` was reached: what the kernel already
    /// delivered is read (a SIGTERM mid-OOM), and whatever is half-built
    /// still goes out: nothing is lost silently.
    pub fn drain(&mut self, inputs: &mut Inputs) -> Result<()> {
        if self.decisions.done() {
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
        let decisions = self.builder.flush(&mut self.env);
        self.decisions.write(&mut self.out, decisions)?;
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
            self.out.stall(&record)?;
        }
        let counts = self.env.tracer.charge_failure_counts();
        for summary in self.charges.summaries(&counts, &time, &mut self.env) {
            self.out.charge_failure_summary(&summary)?;
        }
        self.lost.warn_malformed(&mut self.out)?;
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

    /// Charge failures and OOM-disabled waits are records of their own,
    /// written as they come; a memcg at its limit arms the charge hook;
    /// everything else feeds the decision being rebuilt.
    fn on_event(&mut self, now: Instant, event: Event) -> Result<()> {
        match event {
            Event::ChargeFailure(e) => {
                let time = self.env.time_of_boot_ns(e.header.boot_ns);
                let record = self.charges.on_failure(&e, time, &mut self.env);
                self.out.charge_failure(&record)?;
            }
            Event::OomWait(e) => {
                let time = self.env.time_of_boot_ns(e.header.boot_ns);
                for record in self.charges.on_wait(&e, now, &time, &mut self.env) {
                    self.out.stall(&record)?;
                }
            }
            Event::MemcgAtLimit(e) => {
                self.charge_hook
                    .on_memcg_at_limit(&e, &mut self.env, &mut self.out)?
            }
            other => {
                self.env.snapshot_oom_memcgs(&other);
                self.builder.on_event(now, other)
            }
        }
        Ok(())
    }

    fn on_log_line(&mut self, now: Instant, record: KmsgRecord) {
        let line = SourceLine {
            line_no: record.seq as usize,
            timestamp: Some(record.usec as f64 / 1e6),
            text: record.text,
        };
        for item in self.parser.push(line) {
            self.builder.on_report(now, item);
        }
    }

    /// Records were lost: the report being read cannot be whole. It is
    /// closed now (as incomplete) so lines after the gap never merge into it.
    fn on_log_gap(&mut self, now: Instant) {
        for item in self.parser.finish() {
            self.builder.on_report(now, item);
        }
    }

    fn poll_stalls(&mut self) -> Result<()> {
        if let Some(monitor) = self.stalls.as_mut() {
            for record in monitor.poll() {
                self.out.stall(&record)?;
            }
        }
        Ok(())
    }
}

/// `/dev/kmsg`, or a warning that decisions will lack the kernel's report.
fn open_kmsg<W: std::io::Write>(out: &mut Output<W>) -> Result<Option<Kmsg>> {
    match Kmsg::open(std::path::Path::new("/dev/kmsg")) {
        Ok(kmsg) => Ok(Some(kmsg)),
        Err(e) => {
            out.warning(&format!(
                "cannot read /dev/kmsg ({e}): decisions will lack the kernel's report"
            ))?;
            Ok(None)
        }
    }
}

fn start_record<'a>(
    tracer: &'a Tracer,
    release: &'a str,
    scope: &[ScopeCgroup],
    kernel_report: bool,
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
    }
}

/// Self-protection: the tracer lowers its own oom_score_adj so that an OOM
/// on the node kills a workload rather than the witness. Lowering it needs
/// CAP_SYS_RESOURCE; without it the run goes on, with a warning. Returns
/// the value in force.
/// A value already lower (a unit's `OOMScoreAdjust=-1000`) is kept.
fn protect_self<W: std::io::Write>(adj: Option<i32>, out: &mut Output<W>) -> Result<Option<i32>> {
    const PATH: &str = "/proc/self/oom_score_adj";
    let read = || -> Option<i32> { std::fs::read_to_string(PATH).ok()?.trim().parse().ok() };
    if let Some(adj) = adj
        && read().is_none_or(|now| now > adj)
        && let Err(e) = std::fs::write(PATH, adj.to_string())
    {
        out.warning(&format!(
            "cannot set its own oom_score_adj to {adj} ({e}): an OOM may pick the tracer; grant CAP_SYS_RESOURCE"
        ))?;
    }
    Ok(read())
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

/// A cadence inside the 50 ms tick: due once `period` has passed since it
/// was last due (or created).
struct Every {
    period: Duration,
    last: Instant,
}

impl Every {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: Instant::now(),
        }
    }

    fn due(&mut self) -> bool {
        if self.last.elapsed() < self.period {
            return false;
        }
        self.last = Instant::now();
        true
    }
}
