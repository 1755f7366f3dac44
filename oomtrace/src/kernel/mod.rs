//! The kernel side of the collector: struct offsets from BTF, tracepoint
//! layouts from tracefs, the kernel log, loading the eBPF programs, and
//! dropping the privileges that took once they are loaded.
pub mod btf;
pub mod facts;
pub mod kmsg;
pub mod loader;
pub mod percpu;
pub mod privilege;
pub mod tracefs;
