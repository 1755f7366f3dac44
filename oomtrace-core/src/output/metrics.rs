//! Metrics (`--metrics`): the records of a run as Prometheus series, in the
//! OpenMetrics text format or the Prometheus text format 0.0.4, through the
//! official `prometheus-client` crate. No I/O here: the run layer serves
//! [`Exposition::render`] over HTTP and tells [`Metrics`] which memcgs exist.
//!
//! Series (labels never carry a pid or a comm: unbounded, and untrusted):
//! - `oomtrace_oom_kills_total{constraint, namespace, pod, container, memcg}`:
//!   one per decision, on the memcg whose limit fired (the root, `/`, for a
//!   global OOM), and `oomtrace_oom_last_kill_timestamp_seconds{…}`, when
//!   the last one happened (an alert on it needs no history);
//! - `oomtrace_charge_failures_total{reason, …}`: failed memcg charges,
//!   those the kernel's rate limit held back included;
//! - `oomtrace_oom_stalls_total{…}` and `oomtrace_oom_stalled{…}`: stalls of
//!   OOM-disabled memcgs begun, and whether one lasts now;
//! - `oomtrace_memcg_oom_risk{…}` (1 while an `oom_warning` stands, 0 once
//!   cleared or killed) and `oomtrace_oom_warnings_total{…}`; the lead of
//!   the warnings that came true, `oomtrace_oom_warning_lead_seconds`, a
//!   histogram without labels;
//! - `oomtrace_lost_events_total{cause}`: what the `lost` records count;
//! - `oomtrace_tracer_info{backend, kernel}`, `oomtrace_hook_attached{hook}`
//!   and `oomtrace_build_info{version, schema_version}`.
//!
//! The container identity is `namespace`/`pod`/`container` where Kubernetes
//! names are known, `container` alone for a Docker or Podman container's
//! name (its own limit fired; never its id or image), else `memcg`, the path relative to the cgroup root; the
//! labels left empty are absent to Prometheus. A memcg's series are removed
//! once it is gone and none of them changed for [`FORGET_AFTER`].
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::{Metric, Registry},
};

use crate::{
    base::{SCHEMA_VERSION, time::parse_rfc3339},
    cgroup::container::runtime,
    events::kind_name,
    model::{
        charge::{ChargeFailureRecord, ChargeFailureSummary},
        decision::Decision,
        risk::{OomWarning, OomWarningClear},
        stall::StallRecord,
    },
    output::{
        Record, RecordSink,
        records::{LostRecord, StartRecord},
    },
};

/// A memcg that is gone and whose series have not changed for this long
/// loses its series (a dashboard keeps the history; the scrape stays small
/// on a node that churns through containers).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Who the series is about: Kubernetes names, else the memcg path.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct Identity {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub memcg: String,
}

impl Identity {
    /// A memcg known by its path only.
    pub fn memcg(path: &str) -> Self {
        Self {
            memcg: path.to_owned(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KillLabels {
    constraint: String,
    namespace: String,
    pod: String,
    container: String,
    memcg: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChargeLabels {
    reason: String,
    namespace: String,
    pod: String,
    container: String,
    memcg: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

/// The text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text 0.0.4: what clients that do not ask for OpenMetrics
    /// (and `promtool check metrics`) read.
    PrometheusText,
}

impl Format {
    /// From the request's `Accept` header: OpenMetrics when it is named.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The registry, shared with whoever serves it (cheap to clone, `Send`).
#[derive(Debug, Clone)]
pub struct Exposition(Arc<Registry>);

impl Exposition {
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => text::encode(&mut out, &self.0),
            Format::PrometheusText => prometheus_text::encode(&mut out, &self.0),
        };
        out
    }
}

/// What a memcg's series are, for their removal.
#[derive(Debug)]
struct Tracked {
    /// The memcg last counted under this identity (a restarted container
    /// keeps its names and gets a new memcg).
    memcg: String,
    changed: Instant,
    constraints: BTreeSet<String>,
    reasons: BTreeSet<String>,
    stalls: bool,
    risk: bool,
}

/// The observer: one method per record type, each record counted once.
pub struct Metrics {
    kills: Family<KillLabels, Counter>,
    last_kill: Family<KillLabels, Gauge<f64, AtomicU64>>,
    charge_failures: Family<ChargeLabels, Counter>,
    stalls: Family<Identity, Counter>,
    stalled: Family<Identity, Gauge>,
    risk: Family<Identity, Gauge>,
    warnings: Family<Identity, Counter>,
    lead: Histogram,
    lost: Family<CauseLabels, Counter>,
    tracked: HashMap<Identity, Tracked>,
    exposition: Exposition,
}

impl Metrics {
    /// The families, with what the start record says: backend, kernel,
    /// hooks. Every `lost` cause starts at 0 so that a rate over it exists
    /// before the first loss.
    pub fn new(start: &StartRecord<'_>) -> Self {
        let mut registry = Registry::default();
        let r = &mut registry;
        let kills = register(
            r,
            "oomtrace_oom_kills",
            "OOM kills, on the memory cgroup whose limit fired (/ for a global OOM)",
        );
        let last_kill = register(
            r,
            "oomtrace_oom_last_kill_timestamp_seconds",
            "When the last of those kills happened (Unix time)",
        );
        let charge_failures = register(
            r,
            "oomtrace_charge_failures",
            "Memory cgroup charges that failed without a kill, by reason (fentry/kprobe backends)",
        );
        let stalls = register(
            r,
            "oomtrace_oom_stalls",
            "Stalls begun in memory cgroups whose OOM killer is disabled",
        );
        let stalled = register(
            r,
            "oomtrace_oom_stalled",
            "1 while a memory cgroup's tasks wait with its OOM killer disabled",
        );
        let risk = register(
            r,
            "oomtrace_memcg_oom_risk",
            "1 while an early warning of an OOM kill stands for the memory cgroup",
        );
        let warnings = register(
            r,
            "oomtrace_oom_warnings",
            "Early warnings of an OOM kill (oom_warning records)",
        );
        let lead = Histogram::new([1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0]);
        r.register(
            "oomtrace_oom_warning_lead_seconds",
            "How long before its OOM kill each warning that came true went out",
            lead.clone(),
        );
        let lost: Family<CauseLabels, Counter> = register(
            r,
            "oomtrace_lost_events",
            "Events lost, by cause (ringbuf:<kind>, kmsg, pending, ...)",
        );
        for cause in known_lost_causes() {
            let _ = lost.get_or_create(&CauseLabels { cause });
        }
        register_start(r, start);
        Self {
            kills,
            last_kill,
            charge_failures,
            stalls,
            stalled,
            risk,
            warnings,
            lead,
            lost,
            tracked: HashMap::new(),
            exposition: Exposition(Arc::new(registry)),
        }
    }

    pub fn exposition(&self) -> Exposition {
        self.exposition.clone()
    }

    pub fn on_decision(&mut self, decision: &Decision, now: Instant) {
        let names = decision.container.as_ref().and_then(|c| {
            if let (Some(namespace), Some(pod)) = (c.namespace.as_deref(), c.pod_name.as_deref()) {
                return Some(KubernetesNames {
                    namespace,
                    pod,
                    container: c.container_name.as_deref().unwrap_or_default(),
                });
            }
            // Docker's or Podman's name (`docker ps`): bounded by the
            // containers a node runs, unlike an id or an image tag.
            let name = c
                .name
                .as_deref()
                .filter(|_| matches!(c.runtime, runtime::DOCKER | runtime::PODMAN))?;
            Some(KubernetesNames {
                namespace: "",
                pod: "",
                container: name,
            })
        });
        let (identity, memcg) = kill_identity(decision, names);
        let constraint = decision.constraint.as_deref().unwrap_or("unknown");
        let labels = kill_labels(constraint, &identity);
        self.kills.get_or_create(&labels).inc();
        self.last_kill
            .get_or_create(&labels)
            .set(unix_seconds(decision));
        if let Some(lead_ms) = decision.lead_ms {
            self.lead.observe(lead_ms as f64 / 1000.0);
            self.risk.get_or_create(&identity).set(0);
        }
        self.track(identity, memcg, now)
            .constraints
            .insert(constraint.to_owned());
    }

    pub fn on_warning(&mut self, record: &OomWarning, now: Instant) {
        let identity = risk_identity(record.container.as_ref(), &record.memcg);
        self.warnings.get_or_create(&identity).inc();
        self.risk.get_or_create(&identity).set(1);
        self.track(identity, record.memcg.clone(), now).risk = true;
    }

    pub fn on_warning_clear(&mut self, record: &OomWarningClear, now: Instant) {
        let identity = risk_identity(record.container.as_ref(), &record.memcg);
        self.risk.get_or_create(&identity).set(0);
        self.track(identity, record.memcg.clone(), now).risk = true;
    }

    /// A failure, with those the kernel's rate limit held back since the
    /// previous record of its memcg (counted under this record's reason).
    pub fn on_charge_failure(&mut self, record: &ChargeFailureRecord, now: Instant) {
        let failures = 1 + record.suppressed;
        self.charge_failures_of(record.memcg.as_deref(), record.reason, failures, now);
    }

    /// At exit: the failures no record reported.
    pub fn on_charge_failure_summary(&mut self, record: &ChargeFailureSummary, now: Instant) {
        self.charge_failures_of(
            record.memcg.as_deref(),
            record.reason,
            record.suppressed,
            now,
        );
    }

    pub fn on_stall(&mut self, record: &StallRecord, now: Instant) {
        let identity = Identity::memcg(&record.memcg);
        let stalled = record.state == "stalled";
        if stalled {
            self.stalls.get_or_create(&identity).inc();
        }
        self.stalled
            .get_or_create(&identity)
            .set(i64::from(stalled));
        self.track(identity, record.memcg.clone(), now).stalls = true;
    }

    pub fn on_lost(&mut self, record: &LostRecord) {
        let cause = record.source.clone();
        self.lost
            .get_or_create(&CauseLabels { cause })
            .inc_by(record.count);
    }

    /// Series of memcgs are kept, which [`forget_gone`](Self::forget_gone)
    /// may remove one day.
    pub fn has_series(&self) -> bool {
        !self.tracked.is_empty()
    }

    /// Removes the series of every memcg gone (`exists` says no) whose
    /// series did not change for [`FORGET_AFTER`]; returns how many memcgs.
    pub fn forget_gone(&mut self, now: Instant, exists: impl Fn(&str) -> bool) -> usize {
        let stale: Vec<Identity> = self
            .tracked
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.changed) >= FORGET_AFTER)
            .filter(|(_, t)| !exists(&t.memcg))
            .map(|(identity, _)| identity.clone())
            .collect();
        for identity in &stale {
            if let Some(tracked) = self.tracked.remove(identity) {
                self.remove_series(identity, &tracked);
            }
        }
        stale.len()
    }

    fn charge_failures_of(&mut self, memcg: Option<&str>, reason: &str, n: u64, now: Instant) {
        if n == 0 {
            return;
        }
        // A memcg removed before it could be named: counted, never tracked.
        let identity = Identity::memcg(memcg.unwrap_or_default());
        let labels = charge_labels(reason, &identity);
        self.charge_failures.get_or_create(&labels).inc_by(n);
        if let Some(memcg) = memcg {
            let memcg = memcg.to_owned();
            self.track(identity, memcg, now)
                .reasons
                .insert(reason.to_owned());
        }
    }

    fn track(&mut self, identity: Identity, memcg: String, now: Instant) -> &mut Tracked {
        let tracked = self.tracked.entry(identity).or_insert_with(|| Tracked {
            memcg: String::new(),
            changed: now,
            constraints: BTreeSet::new(),
            reasons: BTreeSet::new(),
            stalls: false,
            risk: false,
        });
        tracked.memcg = memcg;
        tracked.changed = now;
        tracked
    }

    fn remove_series(&self, identity: &Identity, tracked: &Tracked) {
        for constraint in &tracked.constraints {
            let labels = kill_labels(constraint, identity);
            self.kills.remove(&labels);
            self.last_kill.remove(&labels);
        }
        for reason in &tracked.reasons {
            self.charge_failures
                .remove(&charge_labels(reason, identity));
        }
        if tracked.stalls {
            self.stalls.remove(identity);
            self.stalled.remove(identity);
        }
        if tracked.risk {
            self.risk.remove(identity);
            self.warnings.remove(identity);
        }
    }
}

/// A new family, registered.
fn register<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// The kill's time (now, for a decision without one).
fn unix_seconds(decision: &Decision) -> f64 {
    let time = decision.envelope.time.as_deref().and_then(parse_rfc3339);
    let time = time.unwrap_or_else(SystemTime::now);
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Kubernetes names of the victim's container.
#[derive(Debug, Clone, Copy)]
struct KubernetesNames<'a> {
    namespace: &'a str,
    pod: &'a str,
    container: &'a str,
}

/// The identity a kill is counted on, and the memcg whose existence keeps
/// its series: the memcg whose limit fired, the root for a global OOM.
/// Kubernetes names replace the path where known; the container's name
/// only when its own limit fired (a pod-level limit is the pod's).
/// A warned memcg: its Kubernetes names where known (the memcg is the
/// container's or the pod's own), else its path.
fn risk_identity(container: Option<&crate::cgroup::container::Container>, memcg: &str) -> Identity {
    let named = container.and_then(|c| Some((c, c.namespace.as_deref()?, c.pod_name.as_deref()?)));
    match named {
        Some((c, namespace, pod)) => Identity {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: c.container_name.clone().unwrap_or_default(),
            memcg: String::new(),
        },
        None => Identity::memcg(memcg),
    }
}

fn kill_identity(decision: &Decision, names: Option<KubernetesNames<'_>>) -> (Identity, String) {
    let oom_memcg = decision.oom_memcg.as_ref().and_then(|m| m.path.clone());
    let memcg = match decision.constraint.as_deref() {
        Some("memcg") => oom_memcg.unwrap_or_default(),
        _ => oom_memcg.unwrap_or_else(|| "/".to_owned()),
    };
    let victim_memcg = decision.victim.as_ref().and_then(|v| v.memcg.as_deref());
    let own_limit = victim_memcg == Some(memcg.as_str());
    // The pod's memcg is the container's parent under both cgroup drivers;
    // a limit higher up (kubepods, a QoS class) is no pod's.
    let pod_limit = victim_memcg
        .and_then(|m| m.rsplit_once('/'))
        .map(|(parent, _)| parent)
        == Some(memcg.as_str());
    let identity = match names {
        Some(names)
            if decision.constraint.as_deref() == Some("memcg")
                && (own_limit || (pod_limit && !names.pod.is_empty())) =>
        {
            Identity {
                namespace: names.namespace.to_owned(),
                pod: names.pod.to_owned(),
                container: if own_limit {
                    names.container.to_owned()
                } else {
                    String::new()
                },
                memcg: String::new(),
            }
        }
        _ => Identity::memcg(&memcg),
    };
    (identity, memcg)
}

fn kill_labels(constraint: &str, id: &Identity) -> KillLabels {
    KillLabels {
        constraint: constraint.to_owned(),
        namespace: id.namespace.clone(),
        pod: id.pod.clone(),
        container: id.container.clone(),
        memcg: id.memcg.clone(),
    }
}

fn charge_labels(reason: &str, id: &Identity) -> ChargeLabels {
    ChargeLabels {
        reason: reason.to_owned(),
        namespace: id.namespace.clone(),
        pod: id.pod.clone(),
        container: id.container.clone(),
        memcg: id.memcg.clone(),
    }
}

/// The `lost` sources the run can report (see `LostRecord::source`).
fn known_lost_causes() -> Vec<String> {
    let ringbuf = (0..oomtrace_ebpf::kind::COUNT)
        .map(kind_name)
        .filter(|&name| name != "unknown")
        .map(|name| format!("ringbuf:{name}"));
    [
        "kmsg",
        "pending",
        "output_backlog",
        "output_write",
        "dump_backlog",
        "memcg_path_queue",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(ringbuf)
    .collect()
}

/// The tracer and build info metrics and each hook's state: fixed for the run.
fn register_start(registry: &mut Registry, start: &StartRecord<'_>) {
    registry.register(
        "oomtrace_tracer",
        "The tracer: OOM backend in use and kernel release",
        Info::new(vec![
            ("backend".to_owned(), start.backend.to_owned()),
            ("kernel".to_owned(), start.kernel_release.to_owned()),
        ]),
    );
    let hooks = Family::<HookLabels, Gauge>::default();
    for status in start.hooks {
        let hook = status.hook.clone();
        hooks
            .get_or_create(&HookLabels { hook })
            .set(i64::from(status.attached));
    }
    registry.register(
        "oomtrace_hook_attached",
        "1 for each kernel hook attached, 0 for one that could not be",
        hooks,
    );
    registry.register(
        "oomtrace_build",
        "oomtrace's version and the version of its JSON records",
        Info::new(vec![
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("schema_version".to_owned(), SCHEMA_VERSION.to_string()),
        ]),
    );
}

/// A sink of the run like the others: every record is counted as it goes
/// out (before it is written, so a reader who then scrapes finds it).
impl RecordSink for Metrics {
    fn record(&mut self, record: Record<'_>) -> std::io::Result<()> {
        let now = Instant::now();
        match record {
            Record::Decision(decision) => self.on_decision(decision, now),
            Record::ChargeFailure(failure) => self.on_charge_failure(failure, now),
            Record::ChargeFailureSummary(summary) => self.on_charge_failure_summary(summary, now),
            Record::Stall(stall) => self.on_stall(stall, now),
            Record::Lost(lost) => self.on_lost(lost),
            // Fixed for the run: the info metrics were made from the start.
            Record::Start(_) | Record::ChargeHook(_) | Record::Pagefault(_) => {}
            Record::Warning(warning) => self.on_warning(warning, now),
            Record::WarningClear(clear) => self.on_warning_clear(clear, now),
        }
        Ok(())
    }

    fn warning(&mut self, _text: &str) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::{
        base::{Envelope, hooks::HookStatus},
        model::{
            charge::FailedTask,
            decision::{OomMemcg, tests::extreme_decision},
        },
    };

    fn hooks() -> Vec<HookStatus> {
        [
            ("tracepoint/oom/mark_victim", true),
            ("fentry/out_of_memory", false),
        ]
        .into_iter()
        .map(|(hook, attached)| HookStatus {
            hook: hook.to_owned(),
            attached,
            required: false,
            error: (!attached).then(|| "EPERM".to_owned()),
        })
        .collect()
    }

    fn metrics(hooks: &[HookStatus]) -> Metrics {
        Metrics::new(&StartRecord {
            envelope: Envelope::now("start"),
            backend: "tracepoint",
            kernel_release: "6.18.0-test",
            hooks,
            unavailable_fields: &[],
            cgroups: vec![],
            kernel_report: true,
            oom_score_adj: Some(-900),
            nice: Some(-10),
            privileges: Default::default(),
            recovery: None,
        })
    }

    fn decision(constraint: Option<&'static str>, oom_memcg: Option<&str>) -> Decision {
        let mut d = extreme_decision();
        d.constraint = constraint.map(Cow::Borrowed);
        d.envelope.time = Some("2026-12-01T17:00:00.25Z".to_owned());
        d.oom_memcg = oom_memcg.map(|path| OomMemcg {
            path: Some(path.to_owned()),
            limit_bytes: Some(64 << 20),
            usage_bytes: Some(64 << 20),
            source: Cow::Borrowed("kernel_report"),
            usage_after_kill_bytes: None,
            swap_usage_bytes: None,
            swap_limit_bytes: None,
            memsw_limit_bytes: None,
            stat: None,
        });
        if let Some(victim) = d.victim.as_mut() {
            victim.memcg = Some("/pod/parent/child".to_owned());
        }
        d
    }

    fn charge_failure(memcg: &str, reason: &'static str, suppressed: u64) -> ChargeFailureRecord {
        ChargeFailureRecord {
            envelope: Envelope::now("charge_failure"),
            oom_id: None,
            memcg: Some(memcg.to_owned()),
            task: FailedTask {
                pid: 4242,
                tgid: 4242,
                comm: "secretcomm".to_owned(),
            },
            gfp_mask: None,
            gfp_flags: None,
            order: None,
            nr_pages: None,
            reason,
            result: "enomem",
            limit_bytes: None,
            usage_bytes: None,
            suppressed,
            failures_total: suppressed + 1,
            explanation: vec![],
        }
    }

    fn stall(memcg: &str, state: &'static str) -> StallRecord {
        StallRecord {
            envelope: Envelope::now("oom_stall"),
            oom_id: None,
            memcg: memcg.to_owned(),
            state,
            stalled_ms: 1.0,
            oom_kill_disable: true,
            limit_bytes: None,
            usage_bytes: None,
            tasks: vec![],
            explanation: vec![],
            source: "poll",
        }
    }

    /// The sample's value in the Prometheus text format, if it is there.
    fn value(m: &Metrics, sample: &str) -> Option<f64> {
        m.exposition()
            .render(Format::PrometheusText)
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    fn kills(memcg: &str, constraint: &str) -> String {
        format!(
            "oomtrace_oom_kills_total{{constraint=\"{constraint}\",namespace=\"\",pod=\"\",container=\"\",memcg=\"{memcg}\"}}"
        )
    }

    #[test]
    fn every_family_is_exposed_in_both_formats() {
        let mut m = metrics(&hooks());
        // A family without series is not exposed at all.
        let text = m.exposition().render(Format::PrometheusText);
        assert!(!text.contains("oomtrace_oom_kills"), "{text}");
        let now = Instant::now();
        m.on_decision(&decision(Some("memcg"), Some("/a")), now);
        m.on_charge_failure(&charge_failure("/a", "no_victim", 0), now);
        m.on_stall(&stall("/b", "stalled"), now);
        let text = m.exposition().render(Format::PrometheusText);
        for line in [
            "# TYPE oomtrace_oom_kills_total counter",
            "# TYPE oomtrace_oom_last_kill_timestamp_seconds gauge",
            "# TYPE oomtrace_charge_failures_total counter",
            "# TYPE oomtrace_oom_stalls_total counter",
            "# TYPE oomtrace_oom_stalled gauge",
            "oomtrace_lost_events_total{cause=\"kmsg\"} 0",
            "oomtrace_lost_events_total{cause=\"pending\"} 0",
            "oomtrace_lost_events_total{cause=\"output_write\"} 0",
            "oomtrace_lost_events_total{cause=\"ringbuf:victim_task\"} 0",
            "oomtrace_tracer_info{backend=\"tracepoint\",kernel=\"6.18.0-test\"} 1",
            "oomtrace_hook_attached{hook=\"tracepoint/oom/mark_victim\"} 1",
            "oomtrace_hook_attached{hook=\"fentry/out_of_memory\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let build = format!(
            "oomtrace_build_info{{version=\"{}\",schema_version=\"{SCHEMA_VERSION}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == build), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("ringbuf:unknown"), "{text}");

        let open = m.exposition().render(Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE oomtrace_tracer info\n"), "{open}");
        assert!(
            open.contains("# TYPE oomtrace_oom_kills counter\n"),
            "{open}"
        );
    }

    #[test]
    fn the_accept_header_chooses_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert!(
            Format::OpenMetrics
                .content_type()
                .starts_with("application/openmetrics-text")
        );
        assert!(
            Format::PrometheusText
                .content_type()
                .contains("version=0.0.4")
        );
    }

    #[test]
    fn a_kill_counts_on_the_memcg_whose_limit_fired() {
        let mut m = metrics(&[]);
        let now = Instant::now();
        let d = decision(Some("memcg"), Some("/pod/parent"));
        assert_ne!(
            d.victim.as_ref().and_then(|v| v.memcg.as_deref()),
            Some("/pod/parent"),
            "the victim lives elsewhere: the limit's memcg counts, not the victim's"
        );
        m.on_decision(&d, now);
        m.on_decision(&d, now);
        m.on_decision(&decision(Some("memcg"), Some("/other")), now);
        assert_eq!(value(&m, &kills("/pod/parent", "memcg")), Some(2.0));
        let time = parse_rfc3339(d.envelope.time.as_deref().unwrap()).unwrap();
        let last = kills("/pod/parent", "memcg").replace(
            "oomtrace_oom_kills_total",
            "oomtrace_oom_last_kill_timestamp_seconds",
        );
        let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert_eq!(value(&m, &last), Some(seconds));
        assert_eq!(value(&m, &kills("/other", "memcg")), Some(1.0));
    }

    #[test]
    fn kubernetes_names_replace_the_path() {
        let names = KubernetesNames {
            namespace: "shop",
            pod: "cart-7d9f",
            container: "redis",
        };
        let mut d = decision(Some("memcg"), Some("/kubepods/burstable/podX/abc"));
        d.victim.as_mut().unwrap().memcg = Some("/kubepods/burstable/podX/abc".to_owned());
        let (identity, memcg) = kill_identity(&d, Some(names));
        assert_eq!(
            memcg, "/kubepods/burstable/podX/abc",
            "the memcg that keeps the series"
        );
        let expected = Identity {
            namespace: "shop".into(),
            pod: "cart-7d9f".into(),
            container: "redis".into(),
            memcg: String::new(),
        };
        assert_eq!(identity, expected);

        // The pod's limit fired, above the container: the kill is the pod's.
        let mut d = decision(Some("memcg"), Some("/kubepods/burstable/podX"));
        d.victim.as_mut().unwrap().memcg = Some("/kubepods/burstable/podX/abc".to_owned());
        let (identity, _) = kill_identity(&d, Some(names));
        assert_eq!(identity.container, "");
        assert_eq!(identity.pod, "cart-7d9f");

        // A limit above the pod (a QoS class, kubepods) is no pod's.
        let mut d = decision(Some("memcg"), Some("/kubepods/burstable"));
        d.victim.as_mut().unwrap().memcg = Some("/kubepods/burstable/podX/abc".to_owned());
        let (identity, _) = kill_identity(&d, Some(names));
        assert_eq!(identity, Identity::memcg("/kubepods/burstable"));

        // A global OOM is the node's, whoever the victim was.
        let (identity, _) = kill_identity(&decision(Some("global"), None), Some(names));
        assert_eq!(identity, Identity::memcg("/"));
    }

    #[test]
    fn a_docker_name_is_the_container_label_when_its_own_limit_fired() {
        let name = KubernetesNames {
            namespace: "",
            pod: "",
            container: "ledger-sync",
        };
        let mut d = decision(Some("memcg"), Some("/docker/abc"));
        d.victim.as_mut().unwrap().memcg = Some("/docker/abc".to_owned());
        let (identity, memcg) = kill_identity(&d, Some(name));
        assert_eq!(memcg, "/docker/abc");
        assert_eq!(identity.container, "ledger-sync");
        assert_eq!(identity.memcg, "");
        // A limit above it (`/docker`) is no container's: the path.
        let mut d = decision(Some("memcg"), Some("/docker"));
        d.victim.as_mut().unwrap().memcg = Some("/docker/abc".to_owned());
        assert_eq!(kill_identity(&d, Some(name)).0, Identity::memcg("/docker"));
    }

    #[test]
    fn a_global_kill_counts_on_the_root() {
        let mut m = metrics(&[]);
        m.on_decision(&decision(Some("global"), None), Instant::now());
        m.on_decision(&decision(None, None), Instant::now());
        assert_eq!(value(&m, &kills("/", "global")), Some(1.0));
        assert_eq!(value(&m, &kills("/", "unknown")), Some(1.0));
    }

    #[test]
    fn no_pid_or_comm_becomes_a_label() {
        let mut m = metrics(&[]);
        let d = decision(Some("memcg"), Some("/app"));
        m.on_decision(&d, Instant::now());
        m.on_charge_failure(&charge_failure("/app", "no_victim", 0), Instant::now());
        let text = m.exposition().render(Format::OpenMetrics);
        let victim = d.victim.as_ref().unwrap();
        for needle in [
            "pid".to_owned(),
            "comm".to_owned(),
            "secretcomm".to_owned(),
            victim.comm.clone().unwrap(),
            format!("\"{}\"", victim.pid),
        ] {
            assert!(!text.contains(&needle), "{needle} in\n{text}");
        }
    }

    #[test]
    fn charge_failures_count_what_the_rate_limit_held_back() {
        let mut m = metrics(&[]);
        let now = Instant::now();
        m.on_charge_failure(&charge_failure("/a", "noretry", 0), now);
        m.on_charge_failure(&charge_failure("/a", "noretry", 3), now);
        m.on_charge_failure(&charge_failure("/a", "no_victim", 0), now);
        let summary = ChargeFailureSummary {
            envelope: Envelope::now("charge_failure_summary"),
            memcg: Some("/a".to_owned()),
            reason: "without_oom",
            failures_total: 7,
            reported: 2,
            suppressed: 2,
        };
        m.on_charge_failure_summary(&summary, now);
        let series = |reason: &str| {
            format!(
                "oomtrace_charge_failures_total{{reason=\"{reason}\",namespace=\"\",pod=\"\",container=\"\",memcg=\"/a\"}}"
            )
        };
        assert_eq!(value(&m, &series("noretry")), Some(5.0));
        assert_eq!(value(&m, &series("no_victim")), Some(1.0));
        assert_eq!(value(&m, &series("without_oom")), Some(2.0));
    }

    #[test]
    fn a_stall_is_counted_and_shown_while_it_lasts() {
        let mut m = metrics(&[]);
        let now = Instant::now();
        let stalled =
            "oomtrace_oom_stalled{namespace=\"\",pod=\"\",container=\"\",memcg=\"/frozen\"}";
        let stalls =
            "oomtrace_oom_stalls_total{namespace=\"\",pod=\"\",container=\"\",memcg=\"/frozen\"}";
        m.on_stall(&stall("/frozen", "stalled"), now);
        assert_eq!(value(&m, stalled), Some(1.0));
        m.on_stall(&stall("/frozen", "released"), now);
        assert_eq!(value(&m, stalled), Some(0.0));
        m.on_stall(&stall("/frozen", "stalled"), now);
        m.on_stall(&stall("/frozen", "gone"), now);
        assert_eq!(value(&m, stalls), Some(2.0));
        assert_eq!(value(&m, stalled), Some(0.0));
    }

    #[test]
    fn a_warning_raises_the_risk_until_its_kill_which_observes_the_lead() {
        use crate::model::risk::{OomWarning, OomWarningClear};
        let mut m = metrics(&[]);
        let now = Instant::now();
        let identity = "{namespace=\"\",pod=\"\",container=\"\",memcg=\"/leaky\"}";
        let risk = format!("oomtrace_memcg_oom_risk{identity}");
        let warnings = format!("oomtrace_oom_warnings_total{identity}");
        let warning = OomWarning::fixture("/leaky", "leaker");
        m.on_warning(&warning, now);
        assert_eq!(value(&m, &risk), Some(1.0));
        m.on_warning_clear(&OomWarningClear::fixture("/leaky"), now);
        assert_eq!(value(&m, &risk), Some(0.0));
        m.on_warning(&warning, now);
        let mut killed = decision(Some("memcg"), Some("/leaky"));
        killed.lead_ms = Some(12_000);
        m.on_decision(&killed, now);
        assert_eq!(value(&m, &risk), Some(0.0));
        assert_eq!(value(&m, &warnings), Some(2.0));
        assert_eq!(
            value(&m, "oomtrace_oom_warning_lead_seconds_bucket{le=\"20\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "oomtrace_oom_warning_lead_seconds_bucket{le=\"10\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn lost_events_add_up_by_cause() {
        let mut m = metrics(&[]);
        for (source, count) in [
            ("kmsg", 2),
            ("kmsg", 3),
            ("ringbuf:victim_task", 1),
            ("new", 4),
        ] {
            m.on_lost(&LostRecord {
                envelope: Envelope::now("lost"),
                source: source.to_owned(),
                count,
                total: count,
            });
        }
        let lost = |cause: &str| format!("oomtrace_lost_events_total{{cause=\"{cause}\"}}");
        assert_eq!(value(&m, &lost("kmsg")), Some(5.0));
        assert_eq!(value(&m, &lost("ringbuf:victim_task")), Some(1.0));
        assert_eq!(value(&m, &lost("new")), Some(4.0));
        assert_eq!(value(&m, &lost("pending")), Some(0.0));
    }

    #[test]
    fn series_of_a_memcg_gone_and_unchanged_are_removed() {
        let mut m = metrics(&[]);
        let t0 = Instant::now();
        m.on_decision(&decision(Some("memcg"), Some("/gone")), t0);
        m.on_charge_failure(&charge_failure("/gone", "no_victim", 0), t0);
        m.on_stall(&stall("/gone", "stalled"), t0);
        m.on_decision(&decision(Some("memcg"), Some("/alive")), t0);
        m.on_decision(
            &decision(Some("memcg"), Some("/recent")),
            t0 + FORGET_AFTER / 2,
        );
        m.on_decision(&decision(Some("global"), None), t0);
        let exists = |path: &str| path == "/alive" || path == "/";

        // Gone, but not unchanged for long enough yet.
        assert_eq!(
            m.forget_gone(t0 + FORGET_AFTER - Duration::from_secs(1), exists),
            0
        );
        assert_eq!(value(&m, &kills("/gone", "memcg")), Some(1.0));

        assert_eq!(m.forget_gone(t0 + FORGET_AFTER, exists), 1);
        let text = m.exposition().render(Format::PrometheusText);
        assert!(!text.contains("\"/gone\""), "{text}");
        assert_eq!(value(&m, &kills("/alive", "memcg")), Some(1.0));
        assert_eq!(value(&m, &kills("/recent", "memcg")), Some(1.0));
        assert_eq!(value(&m, &kills("/", "global")), Some(1.0));

        // A kill after the removal starts the series again from 1.
        m.on_decision(&decision(Some("memcg"), Some("/gone")), t0 + FORGET_AFTER);
        assert_eq!(value(&m, &kills("/gone", "memcg")), Some(1.0));
        assert_eq!(m.forget_gone(t0 + FORGET_AFTER * 2, exists), 2);
        assert_eq!(value(&m, &kills("/recent", "memcg")), None);
    }

    #[test]
    fn hostile_memcg_names_stay_inside_their_label() {
        let mut m = metrics(&[]);
        let evil = "/x\"} 99\noomtrace_oom_kills_total{memcg=\"/forged\"} 1\n\\";
        m.on_decision(&decision(Some("memcg"), Some(evil)), Instant::now());
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let text = m.exposition().render(format);
            for line in text.lines() {
                assert!(
                    line.starts_with("# ") || line.starts_with("oomtrace_"),
                    "{line:?}"
                );
                assert!(
                    !line.starts_with("oomtrace_oom_kills_total{memcg"),
                    "{text}"
                );
            }
        }
    }
}
