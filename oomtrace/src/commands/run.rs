//! The collector's main loop: ring buffer + kernel log in, decisions out.
use std::{
    collections::HashMap,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};
use oomtrace_ebpf::MemcgReclaimStats;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use oomtrace_core::{
    base::{
        Envelope,
        host::{HostFacts, page_size},
        time::{now_rfc3339, parse_rfc3339, rfc3339},
    },
    cgroup::{CgroupVersion, IdResolver, MemcgFiles, MemcgSnapshot, MemoryHierarchy, ScopeCgroup},
    dump::{DumpConfig, DumpDocument, DumpWriter},
    events::{Event, decode, kind_name},
    model::{
        charge::ChargeTracker,
        decision::{Builder, Decision, Environment, Sources},
        exact::RssRule,
        stall::StallMonitor,
    },
    output::{ChargeHookRecord, LostRecord, Output, StartRecord},
    report::{ReportParser, SourceLine},
};

use crate::kernel::{
    kmsg::{Kmsg, KmsgRead, KmsgRecord},
    loader::{self, Backend, BackendRequest, ChargeHookMode, TraceOptions, Tracer},
};

pub struct RunOptions {
    pub cgroups: Vec<PathBuf>,
    pub json: bool,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub backend: BackendRequest,
    pub top: usize,
    pub btf_path: PathBuf,
    pub dump: Option<DumpConfig>,
    pub charge_hook: ChargeHookMode,
}

/// What the loop knows about this machine, for the decision rebuild.
struct LiveEnv<'a> {
    tracer: &'a Tracer,
    resolver: IdResolver,
    page_size: u64,
    release: String,
    /// OOM memcgs' files read as their OOM events arrived, by path, with the
    /// boot time of the read.
    snapshots: HashMap<String, (MemcgSnapshot, u64)>,
}

/// Bound on kept snapshots (one per memcg that OOMed recently).
const MAX_SNAPSHOTS: usize = 256;

impl LiveEnv<'_> {
    /// Reads the memcg's files now, while its OOM is being handled.
    fn snapshot(&mut self, cgroup_id: u64) {
        let Some(path) = self.resolver.path_of(cgroup_id) else {
            return;
        };
        let read_ns = clock(libc::CLOCK_BOOTTIME).as_nanos() as u64;
        if let Some(snapshot) = self.resolver.hierarchy().snapshot(&path) {
            if self.snapshots.len() >= MAX_SNAPSHOTS {
                self.snapshots.clear();
            }
            self.snapshots.insert(path, (snapshot, read_ns));
        }
    }
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

fn wall_time_of(clock_id: libc::clockid_t, at: Duration) -> Option<SystemTime> {
    let now = clock(clock_id);
    SystemTime::now().checked_sub(now.checked_sub(at).unwrap_or_default())
}

fn meminfo_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

impl Environment for LiveEnv<'_> {
    fn memcg_path(&mut self, cgroup_id: u64) -> Option<String> {
        self.resolver.path_of(cgroup_id)
    }
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
        let files = self.resolver.hierarchy().read_counters(relative);
        files.usage_bytes.is_some().then_some(files)
    }
    fn swap_total_pages(&self) -> Option<u64> {
        meminfo_kb("SwapTotal").map(|kb| kb * 1024 / self.page_size)
    }
    fn mem_total_pages(&self) -> Option<u64> {
        meminfo_kb("MemTotal").map(|kb| kb * 1024 / self.page_size)
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
    fn wall_time_of_log_seconds(&self, seconds: f64) -> Option<SystemTime> {
        wall_time_of(
            libc::CLOCK_MONOTONIC,
            Duration::from_secs_f64(seconds.max(0.0)),
        )
    }
}

/// Traces until `count` decisions, `duration`, or SIGINT/SIGTERM. Calls
/// `on_started` once every hook is attached and the start record is out.
pub async fn run(options: RunOptions, on_started: impl FnOnce() -> Result<()>) -> Result<u64> {
    loader::ensure_root()?;
    let hierarchy = MemoryHierarchy::detect()?;
    let scope: Vec<ScopeCgroup> = options
        .cgroups
        .iter()
        .map(|path| hierarchy.scope(path))
        .collect::<Result<_, _>>()?;
    let mut dumps = options.dump.clone().map(DumpWriter::open).transpose()?;
    let mut tracer = Tracer::start(&TraceOptions {
        backend: options.backend,
        cgroup_ids: scope.iter().map(|s| s.id).collect(),
        btf_path: options.btf_path.clone(),
    })?;
    let kmsg_path = std::path::Path::new("/dev/kmsg");
    let mut kmsg = match Kmsg::open(kmsg_path) {
        Ok(kmsg) => Some(kmsg),
        Err(e) => {
            eprintln!(
                "oomtrace: warning: cannot read /dev/kmsg ({e}): decisions will lack the kernel's report"
            );
            None
        }
    };
    let release = loader::kernel_release();
    let stdout = std::io::stdout();
    let mut out = Output::new(stdout.lock(), options.json, options.top);
    out.start(&StartRecord {
        envelope: Envelope::now("start"),
        backend: tracer.backend.name(),
        kernel_release: &release,
        hooks: &tracer.hooks,
        unavailable_fields: &tracer.unavailable,
        cgroups: scope.iter().map(|s| s.path.display().to_string()).collect(),
        kernel_report: kmsg.is_some(),
    })?;
    on_started()?;

    let exit_hook = tracer
        .hooks
        .iter()
        .any(|h| h.attached && h.hook.ends_with("sched_process_exit"));
    let mut builder = Builder::new(
        Sources {
            backend: tracer.backend.name(),
            victim_task_hook: tracer
                .hooks
                .iter()
                .any(|h| h.attached && h.hook == "raw_tracepoint/mark_victim"),
            exit_hook,
            oom_path_hooks: tracer.backend != Backend::Tracepoint,
        },
        scope.clone(),
    );
    let events = tracer.events.take().context("ring buffer already taken")?;
    // SAFETY: the ring buffer owns its map fd and keeps it open while the AsyncFd lives.
    let mut ring = unsafe { AsyncFd::register(events) }
        .map_err(std::io::Error::from)
        .context("polling the ring buffer")?;
    let mut parser = ReportParser::new();
    let mut stalls = (hierarchy.version == CgroupVersion::V1).then(|| {
        let roots = if scope.is_empty() {
            vec![hierarchy.mount.clone()]
        } else {
            scope.iter().map(|s| s.path.clone()).collect()
        };
        StallMonitor::new(hierarchy.clone(), roots)
    });
    // With hooks on mem_cgroup_oom_synchronize every wait is seen exactly;
    // the poll of memory.oom_control is the fallback.
    let bpf_waits = tracer.attached_hooks_on("mem_cgroup_oom_synchronize") == 2;
    if bpf_waits {
        stalls = None;
    }
    let mut charges = ChargeTracker::new();
    match options.charge_hook {
        ChargeHookMode::Off => tracer.drop_charge_hook(),
        ChargeHookMode::Always if tracer.charge_hook_state().is_none() => out.warning(
            "--charge-hook always: this backend has no charge hook (fentry only); charge failures outside the OOM path are not seen",
        )?,
        ChargeHookMode::Always => arm_charge_hook(&tracer, true, None, &mut out)?,
        ChargeHookMode::OnDemand => {}
    }
    let mut last_stall_poll = Instant::now();
    let host = HostFacts::collect(page_size() as u64);
    let mut env = LiveEnv {
        tracer: &tracer,
        resolver: IdResolver::new(hierarchy),
        page_size: page_size() as u64,
        release: release.clone(),
        snapshots: HashMap::new(),
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_drop_check = Instant::now();
    let mut drops_seen = vec![0u64; oomtrace_ebpf::kind::COUNT as usize];
    let mut kmsg_lost = 0u64;
    let mut decode_errors = 0u64;
    let mut emitted = 0u64;
    let mut rss_rule_shared = None;

    let mut evicted_seen = 0u64;

    loop {
        let sleep_until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let ring = guard.get_inner_mut();
                let now = Instant::now();
                while let Some(item) = ring.next() {
                    match decode(&item) {
                        Ok(event) => on_event(now, event, &mut builder, &mut charges, &mut env, &mut out)?,
                        Err(_) => decode_errors += 1,
                    }
                }
                guard.clear_ready();
            }
            read = async { kmsg.as_mut().expect("guarded").next().await }, if kmsg.is_some() => {
                match read {
                    Ok(KmsgRead::Record(record)) => {
                        let now = Instant::now();
                        for item in parser.push(kmsg_line(record)) {
                            builder.on_report(now, item);
                        }
                    }
                    Ok(KmsgRead::Lost(n)) => {
                        kmsg_lost += n;
                        out.lost(&LostRecord {
                            envelope: Envelope::now("lost"),
                            source: "kmsg".to_owned(),
                            count: n,
                            total: kmsg_lost,
                        })?;
                    }
                    Err(e) => {
                        eprintln!("oomtrace: warning: reading /dev/kmsg failed ({e}); continuing without the kernel's report");
                        kmsg = None;
                    }
                }
            }
            _ = tick.tick() => {
                let decisions = builder.poll(Instant::now(), &mut env);
                share_rss_rule(env.tracer, &decisions, &mut rss_rule_shared);
                if write_decisions(&mut out, decisions, &mut emitted, options.count, dumps.as_mut(), &host)? {
                    break;
                }
                for record in charges.poll(Instant::now(), false, &now_rfc3339(), &mut env) {
                    out.stall(&record)?;
                }
                if let Some(monitor) = stalls.as_mut()
                    && last_stall_poll.elapsed() >= STALL_POLL
                {
                    last_stall_poll = Instant::now();
                    for record in monitor.poll() {
                        out.stall(&record)?;
                    }
                }
                if builder.evicted > evicted_seen {
                    out.lost(&LostRecord {
                        envelope: Envelope::now("lost"),
                        source: "pending".to_owned(),
                        count: builder.evicted - evicted_seen,
                        total: builder.evicted,
                    })?;
                    evicted_seen = builder.evicted;
                }
                if last_drop_check.elapsed() >= Duration::from_secs(1) {
                    last_drop_check = Instant::now();
                    if options.charge_hook == ChargeHookMode::OnDemand {
                        disarm_idle_charge_hook(env.tracer, &mut out)?;
                    }
                    for (k, total) in env.tracer.drops() {
                        let seen = &mut drops_seen[k as usize];
                        if total > *seen {
                            out.lost(&LostRecord {
                                envelope: Envelope::now("lost"),
                                source: format!("ringbuf:{}", kind_name(k)),
                                count: total - *seen,
                                total,
                            })?;
                            *seen = total;
                        }
                    }
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sleep_until_deadline => break,
        }
    }
    // Whatever is half-built still goes out: nothing is lost silently. Read
    // what the kernel already delivered first (a SIGTERM mid-OOM).
    if options.count.is_none_or(|n| emitted < n) {
        let now = Instant::now();
        while let Some(item) = ring.get_mut().next() {
            match decode(&item) {
                Ok(event) => on_event(now, event, &mut builder, &mut charges, &mut env, &mut out)?,
                Err(_) => decode_errors += 1,
            }
        }
        if let Some(kmsg) = kmsg.as_mut() {
            for read in kmsg.drain_now().unwrap_or_default() {
                if let KmsgRead::Record(record) = read {
                    for item in parser.push(kmsg_line(record)) {
                        builder.on_report(now, item);
                    }
                }
            }
        }
        for item in parser.finish() {
            builder.on_report(now, item);
        }
        let decisions = builder.flush(&mut env);
        write_decisions(
            &mut out,
            decisions,
            &mut emitted,
            options.count,
            dumps.as_mut(),
            &host,
        )?;
    }
    // A stall that ended with the run (the kill that released it) is reported too.
    if let Some(monitor) = stalls.as_mut() {
        for record in monitor.poll() {
            out.stall(&record)?;
        }
    }
    let time = now_rfc3339();
    for record in charges.poll(Instant::now(), true, &time, &mut env) {
        out.stall(&record)?;
    }
    let counts = env.tracer.charge_failure_counts();
    for summary in charges.summaries(&counts, &time, &mut env) {
        out.charge_failure_summary(&summary)?;
    }
    if decode_errors > 0 {
        eprintln!("oomtrace: {decode_errors} malformed ring-buffer records were skipped");
    }
    Ok(emitted)
}

/// Charge failures and OOM-disabled waits are records of their own, printed
/// as they come; everything else feeds the decision being rebuilt.
fn on_event<W: Write>(
    now: Instant,
    event: Event,
    builder: &mut Builder,
    charges: &mut ChargeTracker,
    env: &mut LiveEnv<'_>,
    out: &mut Output<W>,
) -> Result<()> {
    match event {
        Event::ChargeFailure(e) => {
            let time = time_of_boot_ns(env, e.header.boot_ns);
            let record = charges.on_failure(&e, time, env);
            out.charge_failure(&record)?;
        }
        Event::OomWait(e) => {
            let time = time_of_boot_ns(env, e.header.boot_ns);
            for record in charges.on_wait(&e, now, &time, env) {
                out.stall(&record)?;
            }
        }
        Event::MemcgAtLimit(e) => {
            let memcg = env.resolver.path_of(e.memcg_id);
            arm_charge_hook(env.tracer, true, memcg, out)?
        }
        other => {
            // The first events of an OOM: read the memcg's state before the
            // kill frees memory or the memcg is removed.
            match &other {
                Event::OomEnd(e) if e.memcg_id != 0 => env.snapshot(e.memcg_id),
                Event::VictimTask(t) => {
                    let depth = (t.memcg_depth as usize).min(t.memcg.len());
                    for level in &t.memcg[..depth] {
                        if level.cgroup_id != 0 {
                            env.snapshot(level.cgroup_id);
                        }
                    }
                }
                _ => {}
            }
            builder.on_event(now, other)
        }
    }
    Ok(())
}

/// How long without any memcg reclaim before the charge hook is detached.
const CHARGE_HOOK_IDLE: Duration = Duration::from_secs(10);

/// Arms or disarms the on-demand charge hook; a failure is a warning (the
/// OOM-path hooks still report), and the hook is not tried again.
fn arm_charge_hook<W: Write>(
    tracer: &Tracer,
    armed: bool,
    memcg: Option<String>,
    out: &mut Output<W>,
) -> Result<()> {
    if tracer.charge_hook_state() != Some(!armed) {
        return Ok(());
    }
    match tracer.set_charge_hook(armed) {
        Ok(()) => out.charge_hook(&ChargeHookRecord {
            envelope: Envelope::now("charge_hook"),
            state: if armed { "armed" } else { "disarmed" },
            memcg,
        })?,
        Err(e) => {
            out.warning(&format!(
                "the on-demand charge hook could not be {}: {e}; charge failures outside the OOM path are not seen",
                if armed { "attached" } else { "detached" }
            ))?;
            tracer.drop_charge_hook();
        }
    }
    Ok(())
}

/// Detaches the charge hook once no memcg has reclaimed for [`CHARGE_HOOK_IDLE`].
fn disarm_idle_charge_hook<W: Write>(tracer: &Tracer, out: &mut Output<W>) -> Result<()> {
    if tracer.charge_hook_state() != Some(true) {
        return Ok(());
    }
    let now = clock(libc::CLOCK_BOOTTIME).as_nanos() as u64;
    let idle = tracer
        .latest_reclaim_boot_ns()
        .is_none_or(|last| now.saturating_sub(last) >= CHARGE_HOOK_IDLE.as_nanos() as u64);
    if idle {
        arm_charge_hook(tracer, false, None, out)?;
    }
    Ok(())
}

fn time_of_boot_ns(env: &LiveEnv<'_>, boot_ns: u64) -> String {
    env.wall_time_of_boot_ns(boot_ns)
        .map(rfc3339)
        .unwrap_or_else(now_rfc3339)
}

/// How often OOM-disabled memcgs are checked for stalls (cgroup v1).
const STALL_POLL: Duration = Duration::from_secs(1);

/// Tells the kernel programs which rss read this kernel's OOM killer uses,
/// once a decision has learned it from the kernel's own numbers
/// (`model::exact`): with `get_mm_counter` they stop summing the
/// candidates' per-CPU counters.
fn share_rss_rule(tracer: &Tracer, decisions: &[Decision], shared: &mut Option<RssRule>) {
    let learned = decisions
        .iter()
        .rev()
        .find_map(|d| d.rss_rule.as_deref().and_then(RssRule::from_name));
    if let Some(rule) = learned
        && *shared != Some(rule)
    {
        *shared = Some(rule);
        if let Err(e) = tracer.set_rss_rule(rule.map_value()) {
            eprintln!("oomtrace: warning: telling the kernel programs the rss rule failed ({e})");
        }
    }
}

/// Writes decisions (and their dumps); true once `count` of them have gone out.
fn write_decisions<W: Write>(
    out: &mut Output<W>,
    decisions: Vec<Decision>,
    emitted: &mut u64,
    count: Option<u64>,
    mut dumps: Option<&mut DumpWriter>,
    host: &HostFacts,
) -> Result<bool> {
    for mut decision in decisions {
        if count.is_some_and(|n| *emitted >= n) {
            return Ok(true);
        }
        if let Some(writer) = dumps.as_deref_mut() {
            let time = decision_time(&decision);
            let seq = decision.seq;
            let events = std::mem::take(&mut decision.evidence);
            let document = DumpDocument::new(decision.clone(), events, host.clone());
            let value = serde_json::to_value(&document)?;
            // A full or read-only dump directory never stops tracing.
            if let Err(e) = writer.write(time, seq, &value) {
                out.warning(&format!(
                    "dump of decision {seq} not written ({e}); {} dump(s) failed so far",
                    writer.failures()
                ))?;
            }
        }
        out.decision(&decision)?;
        *emitted += 1;
    }
    Ok(count.is_some_and(|n| *emitted >= n))
}

fn decision_time(decision: &Decision) -> SystemTime {
    decision
        .envelope
        .time
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or_else(SystemTime::now)
}

fn kmsg_line(record: KmsgRecord) -> SourceLine {
    SourceLine {
        line_no: record.seq as usize,
        timestamp: Some(record.usec as f64 / 1e6),
        text: record.text,
    }
}
