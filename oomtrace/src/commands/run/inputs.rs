//! What the loop waits on: the ring buffer, the kernel log, and the end of
//! the run (SIGINT, SIGTERM, `--duration`).
use std::{io, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{Signal, SignalKind, signal},
    time::Instant,
};

use crate::kernel::kmsg::{Kmsg, KmsgRead};

pub struct Inputs {
    /// The tracer's ring buffer, polled for readability.
    pub ring: AsyncFd<RingBuf<MapData>>,
    /// `/dev/kmsg`; `None` when it could not be opened or a read failed.
    pub kmsg: Option<Kmsg>,
}

/// The next kernel-log read; never, once the log is closed.
pub async fn next_kmsg(kmsg: &mut Option<Kmsg>) -> io::Result<KmsgRead> {
    match kmsg {
        Some(kmsg) => kmsg.next().await,
        None => std::future::pending().await,
    }
}

/// The end of the run, other than `--count`.
pub struct Stop {
    sigint: Signal,
    sigterm: Signal,
    deadline: Option<Instant>,
}

impl Stop {
    /// Catches SIGINT and SIGTERM from now on (before the start record, so
    /// that a stop sent as soon as it is read ends the run cleanly).
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
            deadline: None,
        })
    }

    /// `--duration` counts from now (once every hook is attached).
    pub fn run_for(&mut self, duration: Option<Duration>) {
        self.deadline = duration.map(|d| Instant::now() + d);
    }

    /// Completes on SIGINT, SIGTERM or at the deadline, whichever is first.
    pub async fn requested(&mut self) {
        let deadline = self.deadline;
        let deadline = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.sigint.recv() => {}
            _ = self.sigterm.recv() => {}
            _ = deadline => {}
        }
    }
}
