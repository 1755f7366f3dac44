//! `oomtrace` (the `run` command): ring buffer and kernel log in, decisions
//! out, until `--count` decisions, `--duration`, SIGINT or SIGTERM.
//!
//! - `session`: what one run holds and what it does with each input;
//! - `inputs`: the ring buffer, the kernel log and the stop signals;
//! - `env`: [`LiveEnv`](env::LiveEnv), the machine as the model sees it, and clocks;
//! - `decisions`: decisions on their way out (card or JSON, dump, `--count`);
//! - `charge_hook`: when the on-demand charge hook is attached and detached;
//! - `lost`: lost-event accounting;
//! - `rss_rule`: the rss read the model learned, handed to the kernel programs.
mod charge_hook;
mod decisions;
mod env;
mod inputs;
mod lost;
mod options;
mod rss_rule;
mod session;

use std::time::Duration;

use anyhow::Result;

pub use crate::commands::run::options::RunOptions;
use crate::commands::run::{
    inputs::{Stop, next_kmsg},
    session::Session,
};

/// How often pending decisions, stalls and losses are looked at.
const TICK: Duration = Duration::from_millis(50);

/// Traces until `count` decisions, `duration`, or SIGINT/SIGTERM. Calls
/// `on_started` once every hook is attached and the start record is out.
/// Returns how many decisions went out.
pub async fn run(options: RunOptions, on_started: impl FnOnce() -> Result<()>) -> Result<u64> {
    let mut stop = Stop::install()?;
    let (mut session, mut inputs) = Session::open(&options)?;
    on_started()?;
    session.start_charge_hook()?;
    stop.run_for(options.duration);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            ready = inputs.ring.readable_mut() => session.on_ring(ready?)?,
            read = next_kmsg(&mut inputs.kmsg) => match read {
                Ok(read) => session.on_kmsg(read)?,
                Err(error) => {
                    session.on_kmsg_failed(&error)?;
                    inputs.kmsg = None;
                }
            },
            _ = tick.tick() => {
                if session.on_tick()?.is_break() {
                    break;
                }
            }
            _ = stop.requested() => break,
        }
    }
    session.drain(&mut inputs)?;
    session.finish()
}
