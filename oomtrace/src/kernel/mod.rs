//! The kernel side of the collector: struct offsets from BTF, tracepoint
//! layouts from tracefs, the kernel log, and loading the eBPF programs.
pub mod btf;
pub mod facts;
pub mod kmsg;
pub mod loader;
pub mod percpu;
pub mod tracefs;
