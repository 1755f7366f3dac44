//! Where the run's records go: stdout (cards or `--json`) or `--output
//! FILE` (JSON Lines, rotated), written by the output thread
//! ([`QueuedOutput`]) so the loop never waits for a reader. A reader of
//! stdout that goes away ends the run cleanly; any other write error to
//! stdout ends it with an error. `--output` never ends it: a failed write
//! there is a warning and `lost` records (source `output_write`), retried
//! until the file can be written again.
use std::{
    io,
    ops::ControlFlow,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use oomtrace_core::{
    base::Envelope,
    output::{
        LostRecord, OUTPUT_BACKLOG, OUTPUT_BACKLOG_BYTES, OUTPUT_WRITE, OutputState, QueuedOutput,
        Record, RecordSink, Render, RotatingFile, StartRecord, metrics::Metrics,
    },
};
use tokio::{net::TcpListener, sync::oneshot};

use crate::commands::run::{decisions, metrics, options::RunOptions};

/// How long the records still queued at the end may take to be written: a
/// reader that stopped reading must not hang the exit.
const OUTPUT_GRACE: Duration = Duration::from_secs(10);

pub struct RunOutput {
    queue: QueuedOutput,
    /// Records go to stdout (not `--output`).
    stdout: bool,
    /// `--metrics`: every record is counted here too.
    metrics: Option<Metrics>,
    /// Records the queue dropped that `metrics` has counted.
    backlog_counted: u64,
    /// Records failed writes to `--output` lost that `metrics` has counted.
    write_counted: u64,
}

impl RunOutput {
    /// Opens `--output FILE` (checked) or takes stdout, and starts the
    /// writer thread.
    pub fn open(options: &RunOptions) -> Result<Self> {
        let queue = match &options.output {
            None => {
                let render = Render {
                    json: options.json,
                    top: options.top,
                };
                QueuedOutput::spawn(io::stdout(), render, OUTPUT_BACKLOG_BYTES)
            }
            Some(config) => {
                let file = RotatingFile::open(config.clone())?;
                let render = Render {
                    json: true,
                    top: options.top,
                };
                QueuedOutput::spawn_file(file, render, OUTPUT_BACKLOG_BYTES)
            }
        }
        .context("starting the output writer")?;
        Ok(Self {
            queue,
            stdout: options.output.is_none(),
            metrics: None,
            backlog_counted: 0,
            write_counted: 0,
        })
    }

    /// `--metrics`: serves the series from here on (the info metrics are
    /// the start record's).
    pub fn serve_metrics(&mut self, listener: TcpListener, start: &StartRecord<'_>) {
        let series = Metrics::new(start);
        metrics::serve(listener, series.exposition(), metrics::Limits::default());
        self.metrics = Some(series);
    }

    /// Removes the series of memcgs that are gone (see
    /// [`Metrics::forget_gone`]).
    pub fn forget_gone_series(&mut self, exists: impl Fn(&str) -> bool) {
        if let Some(series) = self.metrics.as_mut() {
            series.forget_gone(Instant::now(), exists);
        }
    }

    /// Records the output queue dropped, and those failed writes to
    /// `--output` lost, are `lost` in the metrics too (their `lost` lines
    /// are made past every sink: in the queue, on the output thread).
    fn count_output_losses(&mut self) {
        let Some(series) = self.metrics.as_mut() else {
            return;
        };
        for (source, total, counted) in [
            (
                OUTPUT_BACKLOG,
                self.queue.dropped(),
                &mut self.backlog_counted,
            ),
            (
                OUTPUT_WRITE,
                self.queue.write_lost(),
                &mut self.write_counted,
            ),
        ] {
            if total > *counted {
                series.on_lost(&LostRecord {
                    envelope: Envelope::now("lost"),
                    source: source.to_owned(),
                    count: total - *counted,
                    total,
                });
                *counted = total;
            }
        }
    }

    /// On every wake-up of the loop: stop once the reader is gone (or fail on
    /// a write error); else the count of dropped records goes out if it can,
    /// `--output` is retried if due, and the output thread's warnings and
    /// losses are passed on.
    pub fn on_wake(&mut self) -> Result<ControlFlow<()>> {
        if self.ended()? {
            return Ok(ControlFlow::Break(()));
        }
        self.queue.report_drops()?;
        for warning in self.queue.take_warnings() {
            self.queue.warning(&warning)?;
        }
        self.count_output_losses();
        Ok(ControlFlow::Continue(()))
    }

    /// While lines are being written, when to look again (see
    /// [`on_wake`](Self::on_wake)); while `--output` cannot be written, when
    /// to try again; none when the writer is idle.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let busy = self.queue.busy().then(|| now + decisions::IN_FLIGHT_CHECK);
        // A try already due is on its way (the queue is busy until it is done).
        let retry = self.queue.retry_at().filter(|&at| at > now);
        busy.into_iter().chain(retry).min()
    }

    /// `--metrics` has series of memcgs (that may go away).
    pub fn has_series(&self) -> bool {
        self.metrics.as_ref().is_some_and(Metrics::has_series)
    }

    /// Completes when the reader of stdout goes away, even while nothing is
    /// written (a thread waits in `poll` for the pipe's error); never for
    /// `--output`, a file or a terminal. Taken once.
    pub fn take_reader_gone(&mut self) -> Option<oneshot::Receiver<()>> {
        if !self.stdout {
            return None;
        }
        let (tell, gone) = oneshot::channel();
        std::thread::Builder::new()
            .name("oomtrace-stdout-watch".to_owned())
            .spawn(move || {
                if wait_stdout_error() {
                    let _ = tell.send(());
                }
            })
            .ok()?;
        Some(gone)
    }

    /// The reader of stdout went away (EPIPE, or a pipe whose reader closed,
    /// seen before anything is written to it), which ends the run as it
    /// ends any Unix tool; a failed write is an error.
    pub fn ended(&self) -> Result<bool> {
        let state = self.queue.state().context(self.name())?;
        Ok(state == OutputState::ReaderGone || (self.stdout && stdout_reader_gone()))
    }

    /// The end of the run: what is queued is written, within the grace.
    pub fn close(self) -> Result<()> {
        let name = self.name();
        self.queue.close(OUTPUT_GRACE).context(name)
    }

    fn name(&self) -> &'static str {
        if self.stdout {
            "writing records to stdout"
        } else {
            "writing records to --output"
        }
    }
}

impl RecordSink for RunOutput {
    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        if let Some(series) = self.metrics.as_mut() {
            series.record(record)?;
        }
        let written = self.queue.record(record);
        self.count_output_losses();
        written
    }

    fn warning(&mut self, text: &str) -> io::Result<()> {
        self.queue.warning(text)
    }
}

/// Blocks until stdout reports an error (a pipe whose reader closed); false
/// if `poll` fails.
fn wait_stdout_error() -> bool {
    loop {
        let mut fd = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; waits without a timeout.
        let ready = unsafe { libc::poll(&mut fd, 1, -1) };
        if ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return ready == 1 && fd.revents & libc::POLLERR != 0;
    }
}

/// stdout is a pipe or socket whose reader has gone (POLLERR): true even
/// before a write would fail with EPIPE, so an idle tracer notices too.
fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & libc::POLLERR != 0
}
