//! `oomtrace` (the `run` command): ring buffer and kernel log in, decisions
//! out, until `--count` decisions, `--duration`, SIGINT or SIGTERM.
//!
//! - `session`: what one run holds and what it does with each input;
//! - `inputs`: the ring buffer, the kernel log and the stop signals;
//! - `env`: [`LiveEnv`](env::LiveEnv), the machine as the model sees it, and clocks;
//! - `decisions`: decisions on their way out (card or JSON, dump, `--count`);
//! - `charge_hook`: when the on-demand charge hook is attached and detached;
//! - `lost`: lost-event accounting;
//! - `memcg_paths`: cgroup id → path lookups, on a worker thread;
//! - `metrics`: the `--metrics` HTTP server;
//! - `output`: where the records go (stdout or `--output`), on a thread of its own;
//! - `rss_rule`: the rss read the model learned, handed to the kernel programs;
//! - `self_care`: the tracer's own oom_score_adj and priority;
//! - `state`, `recovery`: the position in the kernel log a restart resumes
//!   from (`--state-dir`), and the kills recovered from it.
mod charge_hook;
mod decisions;
mod env;
mod inputs;
mod lost;
mod memcg_paths;
mod metrics;
mod options;
mod output;
mod recovery;
mod risk;
mod rss_rule;
mod self_care;
mod session;
mod state;
mod victim_exits;

use std::time::Instant;

use anyhow::Result;

pub use crate::commands::run::options::RunOptions;
use crate::commands::run::{
    inputs::{Stop, next_kmsg},
    session::Session,
};

/// Traces until `count` decisions, `duration`, or SIGINT/SIGTERM. Calls
/// `on_started` once every hook is attached and the start record is out.
/// Returns how many decisions went out.
///
/// Event-driven: the loop sleeps until an input or the session's earliest
/// deadline, with no timer at all while nothing is pending, so an idle node
/// costs no wake-ups.
pub async fn run(options: RunOptions, on_started: impl FnOnce() -> Result<()>) -> Result<u64> {
    let mut stop = Stop::install()?;
    let (mut session, mut inputs) = Session::open(&options)?;
    on_started()?;
    session.start_charge_hook()?;
    stop.run_for(options.duration);
    let mut reader_gone = session.take_reader_gone();
    let paths_answered = session.paths_answered();
    let risk_notified = session.risk_notified();
    let exits_released = session.exits_released();
    loop {
        let wake_at = session.next_deadline();
        tokio::select! {
            ready = inputs.ring.readable_mut() => session.on_ring(ready?)?,
            read = next_kmsg(&mut inputs.kmsg) => match read {
                Ok(read) => session.on_kmsg(read, inputs.ring.get_mut())?,
                Err(error) => {
                    session.on_kmsg_failed(&error)?;
                    inputs.kmsg = None;
                }
            },
            _ = sleep_until(wake_at) => {}
            _ = once(&mut reader_gone) => {}
            // A decision may have been waiting for a cgroup's path.
            _ = paths_answered.notified() => {}
            // A memcg crossed its early-warning threshold.
            _ = notified(risk_notified.as_deref()) => {}
            // A victim's process is gone: its exit goes on.
            _ = exits_released.notified() => {}
            _ = stop.requested() => break,
        }
        session.catch_up(&mut inputs)?;
        if session.on_wake()?.is_break() {
            break;
        }
    }
    session.drain(&mut inputs)?;
    session.finish()
}

/// Completes when `signal` does, then never again.
async fn once(signal: &mut Option<tokio::sync::oneshot::Receiver<()>>) {
    match signal.as_mut() {
        Some(receiver) => {
            let _ = receiver.await;
            *signal = None;
        }
        None => std::future::pending().await,
    }
}

/// Completes when `notify` is notified; never without one.
async fn notified(notify: Option<&tokio::sync::Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// Completes at `at`; never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
