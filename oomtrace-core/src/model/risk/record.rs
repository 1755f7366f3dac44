//! The `oom_warning` and `oom_warning_clear` records.
use serde::Serialize;

use crate::{base::Envelope, cgroup::container::Container};

use super::Grower;

/// A signal the warning weighed, with its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Signal {
    pub name: &'static str,
    pub value: f64,
}

/// A memcg heading for an OOM kill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OomWarning {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub memcg: String,
    pub container: Option<Container>,
    pub usage_bytes: u64,
    pub limit_bytes: u64,
    /// Anon, shmem and kernel memory: what reclaim cannot free without swap.
    pub unreclaimable_bytes: u64,
    /// Page cache reclaim can still free.
    pub reclaimable_bytes: u64,
    pub growth_bytes_per_s: u64,
    /// Projected seconds until the unreclaimable memory reaches the limit.
    pub eta_seconds: f64,
    pub signals: Vec<Signal>,
    pub top_growers: Vec<Grower>,
    /// The memcg's OOM episode, shared with the decision that follows.
    pub oom_id: Option<String>,
    pub explanation: Vec<String>,
}

/// The risk passed without a kill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OomWarningClear {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub memcg: String,
    pub container: Option<Container>,
    /// `growth_stopped`, `memory_freed`, `limit_raised` or `memcg_gone`.
    pub reason: &'static str,
    /// How long the warning stood.
    pub warned_ms: u64,
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub unreclaimable_bytes: Option<u64>,
    pub oom_id: Option<String>,
}

#[cfg(test)]
impl OomWarning {
    /// A warning of `memcg` whose one grower is `comm`, for the sinks' tests.
    pub(crate) fn fixture(memcg: &str, comm: &str) -> Self {
        Self {
            envelope: Envelope::now("oom_warning"),
            memcg: memcg.to_owned(),
            container: None,
            usage_bytes: 1,
            limit_bytes: 2,
            unreclaimable_bytes: 1,
            reclaimable_bytes: 0,
            growth_bytes_per_s: 1,
            eta_seconds: 1.0,
            signals: vec![],
            top_growers: vec![Grower {
                pid: 7,
                comm: comm.to_owned(),
                rss_bytes: 1,
                growth_bytes_per_s: 1,
                would_be_killed: true,
            }],
            oom_id: None,
            explanation: vec![comm.to_owned()],
        }
    }
}

#[cfg(test)]
impl OomWarningClear {
    pub(crate) fn fixture(memcg: &str) -> Self {
        Self {
            envelope: Envelope::now("oom_warning_clear"),
            memcg: memcg.to_owned(),
            container: None,
            reason: "growth_stopped",
            warned_ms: 1,
            usage_bytes: None,
            limit_bytes: None,
            unreclaimable_bytes: None,
            oom_id: None,
        }
    }
}
