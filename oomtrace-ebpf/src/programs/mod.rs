//! One module per hook (kunai style); shared state and helpers in `common` and `memcg`.
mod charge_failure;
mod common;
mod mark_victim;
mod mark_victim_raw;
mod memcg;
mod memcg_reclaim;
mod oom_fentry;
mod oom_kprobe;
mod oom_path;
mod percpu;
mod process_exec;
mod reaper;
mod rss;
mod victim_exit;
