//! oomtrace: rebuilds the kernel's OOM-kill decision from eBPF events and the
//! kernel's own report.
pub mod app;
pub mod btf;
pub mod cgroup;
pub mod charge;
pub mod cli;
pub mod container;
pub mod decision;
pub mod demo;
pub mod dump;
pub mod events;
pub mod kmsg;
pub mod loader;
pub mod output;
pub mod postmortem;
pub mod report;
pub mod score;
pub mod stall;
pub mod tracefs;
pub mod workload;
