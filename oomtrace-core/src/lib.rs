//! oomtrace's layers that need no build script, shared by the `oomtrace`
//! binary and the `xtask` harness so both read one definition of each type.
//!
//! Dependencies point one way (docs/architecture.md):
//! `base` ← `events` / `cgroup` / `report` ← `model` ← `output` / `dump`.
pub mod base;
pub mod cgroup;
pub mod dump;
pub mod events;
pub mod layers;
pub mod model;
pub mod output;
pub mod report;
