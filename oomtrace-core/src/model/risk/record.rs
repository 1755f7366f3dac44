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
