//! Rebuilding the kernel's decision from what each source saw: eBPF events
//! (the victim, its memcg chain, reaper steps, its exit) and the kernel's own
//! OOM report (trigger, limit, the task table). Pieces are matched by victim
//! pid and a decision is emitted once it is complete or its deadline passes.
//!
//! - `record`: the serialized decision and its parts.
//! - `env`: what the host can tell (`Environment`), and nothing (`OfflineEnv`).
//! - `pending`: the pieces of one decision in flight, and which hooks feed them.
//! - `builder`: matching pieces into pending decisions and emitting them,
//!   in kill order within an OOM domain (`order`); `history` notices repeats; `recent` bounds the pids it remembers;
//!   `rss` keeps the kernel's rss read once a decision learned it.
//! - `assemble`: one decision from its pieces, field by field.
//! - `explain`: the decision's short factual sentences.
mod assemble;
mod builder;
mod env;
mod explain;
mod history;
mod order;
mod pending;
mod recent;
mod record;
mod rss;

pub use crate::base::{Envelope, SCHEMA_VERSION, time::rfc3339};
pub use assemble::closest_to_limit;
pub use builder::Builder;
pub use env::{Environment, OfflineEnv};
pub use pending::{Invocation, Sources};
pub use record::{
    Candidate, Decision, Freed, MemcgStat, OomMemcg, PriorWarning, ReclaimSummary, Trigger, Victim,
};

#[cfg(test)]
pub(crate) mod tests;
