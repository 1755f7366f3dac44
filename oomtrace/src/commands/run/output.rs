//! Where the run's records go: stdout (cards or `--json`) or `--output
//! FILE` (JSON Lines, rotated), written by the output thread
//! ([`QueuedOutput`]) so the loop never waits for a reader. A reader that
//! goes away ends the run cleanly; any other write error ends it with an
//! error.
use std::{io, ops::ControlFlow, time::Duration};

use anyhow::{Context, Result};
use oomtrace_core::output::{
    OUTPUT_BACKLOG_BYTES, OutputState, QueuedOutput, Record, RecordSink, Render, RotatingFile,
};

use crate::commands::run::options::RunOptions;

/// How long the records still queued at the end may take to be written: a
/// reader that stopped reading must not hang the exit.
const OUTPUT_GRACE: Duration = Duration::from_secs(10);

pub struct RunOutput {
    queue: QueuedOutput,
    /// Records go to stdout (not `--output`).
    stdout: bool,
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
                QueuedOutput::spawn(file, render, OUTPUT_BACKLOG_BYTES)
            }
        }
        .context("starting the output writer")?;
        Ok(Self {
            queue,
            stdout: options.output.is_none(),
        })
    }

    /// On the loop's tick: stop once the reader is gone (or fail on a write
    /// error); else the count of dropped records goes out if it can.
    pub fn on_tick(&mut self) -> Result<ControlFlow<()>> {
        if self.ended()? {
            return Ok(ControlFlow::Break(()));
        }
        self.queue.report_drops()?;
        Ok(ControlFlow::Continue(()))
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
        self.queue.record(record)
    }

    fn warning(&mut self, text: &str) -> io::Result<()> {
        self.queue.warning(text)
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
