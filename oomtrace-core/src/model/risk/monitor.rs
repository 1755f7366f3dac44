//! Every watched memcg's state: sampled while watched, warned when the rule
//! says so, cleared when the risk passes, linked to the kill that follows.
use std::collections::HashMap;

use crate::base::{Envelope, time::now_rfc3339, units::human_bytes};

use super::{
    Grower, MemcgSample, OomWarning, OomWarningClear, RiskEnvironment, Signal,
    growers::TaskGrowth,
    history::History,
    rule::{Assessment, HORIZON_S, MIN_GROWTH_BYTES_PER_S, SEGMENT_MS, SEGMENTS, assess},
    watch_threshold,
};

/// Watched memcgs are sampled this often.
pub const SAMPLE_MS: u64 = 1_000;
/// Bound on the memcgs watched at once (each costs a few `/proc` and cgroup
/// reads a second); past it a new one waits for its next notification.
pub const MAX_WATCHED: usize = 256;
/// A warning clears as memory freed when the unreclaimable memory fell this
/// fraction of the limit below its level at the warning.
const FREED_FRACTION: f64 = 0.10;
/// A cleared warning is kept this long for the kill it may have preceded:
/// the sample that clears it can come after the kill (the kill froze the
/// growth, or freed the memory) and before the kill's decision.
const CLEARED_KEEP_MS: u64 = 60_000;

/// A record the monitor emits.
#[derive(Debug, Clone, PartialEq)]
pub enum RiskRecord {
    Warning(Box<OomWarning>),
    Clear(Box<OomWarningClear>),
}

/// What a decision says of the warning before it.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningLink {
    /// When the warning went out (`CLOCK_BOOTTIME` ms, and RFC 3339).
    pub warned_boot_ms: u64,
    pub time: String,
    pub growth_bytes_per_s: u64,
    /// The first of its `top_growers`.
    pub leader: Option<Grower>,
    /// The OOM episode the warning opened (the session numbers episodes):
    /// the decision joins it even when a clear closed it first.
    pub oom_id: Option<String>,
}

#[derive(Debug, Clone)]
struct Warned {
    link: WarningLink,
    unreclaimable_bytes: u64,
    limit_bytes: u64,
}

#[derive(Debug, Clone, Default)]
struct Watched {
    history: History,
    tasks: TaskGrowth,
    warned: Option<Warned>,
}

#[derive(Debug, Default)]
pub struct RiskMonitor {
    memcgs: HashMap<String, Watched>,
    /// Warnings cleared in the last [`CLEARED_KEEP_MS`], by memcg, with
    /// when they were cleared (boot ms).
    cleared: HashMap<String, (WarningLink, u64)>,
    /// `None`: a memcg was just watched, the next poll is due at once.
    last_poll_ms: Option<u64>,
}

impl RiskMonitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The memcg's usage crossed its watch threshold (either way): it is
    /// sampled from the next poll on, and let go once below it and quiet.
    pub fn watch(&mut self, memcg: &str) {
        if self.memcgs.contains_key(memcg) || self.memcgs.len() >= MAX_WATCHED {
            return;
        }
        self.memcgs.insert(memcg.to_owned(), Watched::default());
        self.last_poll_ms = None;
    }

    pub fn watched(&self) -> usize {
        self.memcgs.len()
    }

    /// When [`Self::poll`] is next due (boot ms); `None` while nothing is watched.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        (!self.memcgs.is_empty()).then(|| {
            self.last_poll_ms
                .map_or(0, |last| last.saturating_add(SAMPLE_MS))
        })
    }

    /// Samples every watched memcg (if due) and returns the records.
    pub fn poll(&mut self, now_ms: u64, env: &mut dyn RiskEnvironment) -> Vec<RiskRecord> {
        if self.next_deadline_ms().is_none_or(|at| at > now_ms) {
            return Vec::new();
        }
        self.last_poll_ms = Some(now_ms);
        self.cleared
            .retain(|_, (_, at)| at.saturating_add(CLEARED_KEEP_MS) > now_ms);
        let names: Vec<String> = self.memcgs.keys().cloned().collect();
        let mut records = Vec::new();
        for memcg in names {
            let keep = match env.sample(&memcg) {
                Some(sample) => self.step(&memcg, sample, env, &mut records),
                None => {
                    records.extend(self.gone(&memcg, env));
                    false
                }
            };
            if !keep {
                self.memcgs.remove(&memcg);
            }
        }
        records
    }

    /// The warning standing for `memcg` is in the OOM episode `oom_id`.
    pub fn set_oom_id(&mut self, memcg: &str, oom_id: &str) {
        if let Some(warned) = self.memcgs.get_mut(memcg).and_then(|w| w.warned.as_mut()) {
            warned.link.oom_id = Some(oom_id.to_owned());
        }
    }

    /// The memcg's OOM killed at `kill_ms` (boot ms): the warning that
    /// stood then, if any, even when a sample taken after the kill cleared
    /// it before the decision came. Its history starts over.
    pub fn on_kill(&mut self, memcg: &str, kill_ms: u64) -> Option<WarningLink> {
        if let Some(watched) = self.memcgs.get_mut(memcg) {
            watched.history.clear();
            watched.tasks.clear();
            if let Some(warned) = watched.warned.take() {
                return Some(warned.link);
            }
        }
        let (link, cleared_ms) = self.cleared.remove(memcg)?;
        (link.warned_boot_ms <= kill_ms && cleared_ms >= kill_ms).then_some(link)
    }

    /// One sample of a watched memcg; returns whether it stays watched.
    fn step(
        &mut self,
        memcg: &str,
        sample: MemcgSample,
        env: &mut dyn RiskEnvironment,
        records: &mut Vec<RiskRecord>,
    ) -> bool {
        let Some(watched) = self.memcgs.get_mut(memcg) else {
            return false;
        };
        let Some(limit) = sample.limit_bytes else {
            return watched.warned.is_some();
        };
        let unreclaimable = sample.unreclaimable_bytes();
        watched.history.push(sample.boot_ms, unreclaimable);
        let Some(assessment) = assess(&watched.history, Some(limit)) else {
            return true;
        };
        if assessment.growing || watched.warned.is_some() {
            watched.tasks.push(sample.boot_ms, env.tasks(memcg));
        } else {
            watched.tasks.clear();
        }
        match &watched.warned {
            None if assessment.at_risk() => {
                let warning = warning(memcg, &sample, &assessment, &watched.tasks, env);
                watched.warned = Some(Warned {
                    link: WarningLink {
                        warned_boot_ms: sample.boot_ms,
                        time: warning.envelope.time.clone(),
                        growth_bytes_per_s: warning.growth_bytes_per_s,
                        leader: warning.top_growers.first().cloned(),
                        oom_id: None,
                    },
                    unreclaimable_bytes: unreclaimable,
                    limit_bytes: limit,
                });
                records.push(RiskRecord::Warning(Box::new(warning)));
            }
            Some(warned) => {
                if let Some(reason) = clear_reason(warned, &sample, &assessment) {
                    let since = warned.link.warned_boot_ms;
                    let container = env.container(memcg);
                    records.push(clear(memcg, container, reason, since, Some(&sample)));
                    remember_cleared(&mut self.cleared, memcg, &warned.link, sample.boot_ms);
                    watched.warned = None;
                }
            }
            None => {}
        }
        watched.warned.is_some()
            || assessment.growing
            || sample.usage_bytes >= watch_threshold(limit)
    }

    fn gone(&mut self, memcg: &str, env: &mut dyn RiskEnvironment) -> Option<RiskRecord> {
        let warned = self.memcgs.get_mut(memcg)?.warned.take()?;
        let now_ms = self.last_poll_ms.unwrap_or(0);
        remember_cleared(&mut self.cleared, memcg, &warned.link, now_ms);
        let container = env.container(memcg);
        Some(clear(
            memcg,
            container,
            "memcg_gone",
            warned.link.warned_boot_ms,
            None,
        ))
    }
}

/// Keeps a cleared warning for the kill it may have preceded (bounded
/// like the watched memcgs).
fn remember_cleared(
    cleared: &mut HashMap<String, (WarningLink, u64)>,
    memcg: &str,
    link: &WarningLink,
    at_ms: u64,
) {
    if cleared.len() < MAX_WATCHED || cleared.contains_key(memcg) {
        cleared.insert(memcg.to_owned(), (link.clone(), at_ms));
    }
}

/// Why a warning no longer holds, if it does not.
fn clear_reason(warned: &Warned, sample: &MemcgSample, now: &Assessment) -> Option<&'static str> {
    let limit = sample.limit_bytes.unwrap_or(u64::MAX);
    let freed = (warned.limit_bytes as f64 * FREED_FRACTION) as u64;
    if limit > warned.limit_bytes && now.eta_seconds.is_none_or(|eta| eta > HORIZON_S) {
        Some("limit_raised")
    } else if sample.unreclaimable_bytes() + freed < warned.unreclaimable_bytes {
        Some("memory_freed")
    } else if now.growth_bytes_per_s < (MIN_GROWTH_BYTES_PER_S / 2) as f64 {
        Some("growth_stopped")
    } else {
        None
    }
}

/// The record; its text fields are raw (every terminal path escapes them).
fn warning(
    memcg: &str,
    sample: &MemcgSample,
    assessment: &Assessment,
    tasks: &TaskGrowth,
    env: &mut dyn RiskEnvironment,
) -> OomWarning {
    let limit = sample.limit_bytes.unwrap_or(0);
    let page_size = env.page_size().max(1);
    let top_growers = tasks.top(env.badness_model(), page_size, limit / page_size);
    let growth = assessment.growth_bytes_per_s.max(0.0) as u64;
    let eta = assessment.eta_seconds.unwrap_or(f64::INFINITY);
    let mut explanation = vec![format!(
        "{}: unreclaimable memory (anon, shmem, kernel) is {} of its {} limit and grew in each of the last {} s, {}/s on average; at that rate the limit is reached in {:.0} s.",
        memcg,
        human_bytes(sample.unreclaimable_bytes()),
        human_bytes(limit),
        SEGMENTS * SEGMENT_MS / 1000,
        human_bytes(growth),
        eta,
    )];
    if let Some(leader) = top_growers.first() {
        explanation.push(format!(
            "Fastest grower: {} (pid {}), rss {}, growing {}/s{}.",
            leader.comm,
            leader.pid,
            human_bytes(leader.rss_bytes),
            human_bytes(leader.growth_bytes_per_s.max(0) as u64),
            if leader.would_be_killed {
                "; the OOM killer would choose it"
            } else {
                ""
            },
        ));
    }
    OomWarning {
        envelope: Envelope::now("oom_warning"),
        memcg: memcg.to_owned(),
        container: env.container(memcg),
        usage_bytes: sample.usage_bytes,
        limit_bytes: limit,
        unreclaimable_bytes: sample.unreclaimable_bytes(),
        reclaimable_bytes: sample.reclaimable_bytes(),
        growth_bytes_per_s: growth,
        eta_seconds: (eta * 10.0).round() / 10.0,
        signals: signals(sample, assessment),
        top_growers,
        oom_id: None,
        explanation,
    }
}

/// The signals weighed, with their values (the reclaim ones where known).
fn signals(sample: &MemcgSample, assessment: &Assessment) -> Vec<Signal> {
    let limit = sample.limit_bytes.unwrap_or(0).max(1) as f64;
    let mut signals = vec![
        Signal {
            name: "unreclaimable_growth_bytes_per_s",
            value: assessment.growth_bytes_per_s.round(),
        },
        Signal {
            name: "unreclaimable_fraction",
            value: (sample.unreclaimable_bytes() as f64 / limit * 1000.0).round() / 1000.0,
        },
        Signal {
            name: "usage_fraction",
            value: (sample.usage_bytes as f64 / limit * 1000.0).round() / 1000.0,
        },
        Signal {
            name: "shmem_bytes",
            value: sample.stat.shmem_bytes as f64,
        },
    ];
    for (name, value) in [
        ("failcnt", sample.failcnt),
        ("reclaim_passes", sample.reclaim_passes),
        ("short_reclaim_passes", sample.short_reclaim_passes),
    ] {
        if let Some(value) = value {
            signals.push(Signal {
                name,
                value: value as f64,
            });
        }
    }
    signals
}

fn clear(
    memcg: &str,
    container: Option<crate::cgroup::container::Container>,
    reason: &'static str,
    warned_boot_ms: u64,
    sample: Option<&MemcgSample>,
) -> RiskRecord {
    RiskRecord::Clear(Box::new(OomWarningClear {
        envelope: Envelope::new("oom_warning_clear", now_rfc3339()),
        memcg: memcg.to_owned(),
        container,
        reason,
        warned_ms: sample.map_or(0, |s| s.boot_ms.saturating_sub(warned_boot_ms)),
        usage_bytes: sample.map(|s| s.usage_bytes),
        limit_bytes: sample.and_then(|s| s.limit_bytes),
        unreclaimable_bytes: sample.map(MemcgSample::unreclaimable_bytes),
        oom_id: None,
    }))
}
