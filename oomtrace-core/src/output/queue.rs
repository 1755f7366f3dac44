//! [`QueuedOutput`]: the live run's sink. Records are rendered on the event
//! loop and written by a thread of its own through a [`Backlog`] bounded in
//! bytes of rendered lines ([`OUTPUT_BACKLOG_BYTES`]), so a slow or blocked
//! reader never stalls the reading of the ring buffer and the kernel log.
//! When the backlog is full the record is dropped and counted; the count
//! goes out as a `lost` record (source `output_backlog`) in place, as soon
//! as there is room, and at the end of the run.
//!
//! `--output`'s file ([`spawn_file`](QueuedOutput::spawn_file)) survives
//! failed writes ([`RetryingFile`]): what it lost, when it tries again and
//! its warnings come back through [`FileHealth`]; while a try is due the
//! loop nudges the thread ([`report_drops`](QueuedOutput::report_drops)).
use std::{
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    base::{
        Envelope,
        backlog::{Backlog, Closed},
        units::human_bytes,
    },
    output::{
        file::RotatingFile,
        records::LostRecord,
        retry::{Backoff, FileHealth, RetryingFile},
        sink::{Record, RecordSink},
        target::LineTarget,
        writer::{Render, print_warning},
    },
};

/// Rendered lines waiting for the writer, at most (4 MiB: thousands of
/// decisions, seconds of a storm on a stuck terminal).
pub const OUTPUT_BACKLOG_BYTES: usize = 4 << 20;

/// The `lost` source of records dropped because the output fell behind.
pub const OUTPUT_BACKLOG: &str = "output_backlog";

/// How the output ended.
#[derive(Debug, PartialEq, Eq)]
pub enum OutputState {
    Writing,
    /// The reader went away (EPIPE): the run should end, quietly.
    ReaderGone,
}

/// What the writer thread gets: a line, or a nudge to retry.
enum Item {
    Line(String),
    Retry,
}

pub struct QueuedOutput {
    render: Render,
    lines: Backlog<Item>,
    /// `--output`'s file: what failed writes lost, when to nudge.
    file: Option<Arc<FileHealth>>,
    /// Dropped since the last `output_backlog` record went in.
    unreported: u64,
    dropped: u64,
}

impl QueuedOutput {
    /// Starts the writer thread on `target`.
    pub fn spawn(target: impl LineTarget, render: Render, bound: usize) -> io::Result<Self> {
        let mut target = target;
        let lines = Backlog::spawn("oomtrace-output", bound, move |batch: Vec<Item>| {
            for item in batch {
                match item {
                    Item::Line(line) => target.write_line(line.as_bytes())?,
                    Item::Retry => target.retry()?,
                }
            }
            target.flush()
        })?;
        Ok(Self {
            render,
            lines,
            file: None,
            unreported: 0,
            dropped: 0,
        })
    }

    /// Starts the writer thread on `--output`'s file, which a failed write
    /// never stops (see [`RetryingFile`]).
    pub fn spawn_file(file: RotatingFile, render: Render, bound: usize) -> io::Result<Self> {
        let health = Arc::new(FileHealth::default());
        let label = format!("{:?}", file.path());
        let target = RetryingFile::new(file, label, render, Backoff::DEFAULT, Arc::clone(&health));
        let mut queue = Self::spawn(target, render, bound)?;
        queue.file = Some(health);
        Ok(queue)
    }

    /// Records failed writes to `--output` lost, since the start.
    pub fn write_lost(&self) -> u64 {
        self.file.as_ref().map_or(0, |health| health.lost())
    }

    /// While writes to `--output` fail: when the next try is due.
    pub fn retry_at(&self) -> Option<Instant> {
        self.file.as_ref().and_then(|health| health.retry_at())
    }

    /// The writer thread's warnings since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        self.file
            .as_ref()
            .map_or_else(Vec::new, |health| health.take_warnings())
    }

    /// Lines are still being written, or a count of dropped ones waits for
    /// room: the loop should look again soon (a write error, a reader gone).
    pub fn busy(&self) -> bool {
        self.unreported > 0 || self.lines.queued_bytes() > 0
    }

    /// Records dropped because the backlog was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the writer still writes: an EPIPE is the reader gone; any
    /// other write error is returned.
    pub fn state(&self) -> io::Result<OutputState> {
        match self.lines.failure() {
            None => Ok(OutputState::Writing),
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(OutputState::ReaderGone),
            Some(e) => Err(e),
        }
    }

    /// The end of the run: the last count of dropped records goes in (even
    /// past the bound), then the writer gets at most `grace` to write what
    /// is queued (a reader that never reads must not hang the exit). A
    /// reader gone is fine; a write error, or lines left unwritten, is an
    /// error. Records dropped or lost in the run are also a warning.
    pub fn close(self, grace: Duration) -> io::Result<()> {
        if self.unreported > 0
            && let Ok(line) = self.lost_line()
        {
            let bytes = line.len();
            // An empty backlog takes anything; otherwise try, and say so below.
            let _ = self.lines.try_push(Item::Line(line), bytes);
        }
        if self.dropped > 0 {
            print_warning(&format!(
                "{} record(s) dropped: the output did not keep up (backlog of {})",
                self.dropped,
                human_bytes(self.lines.bound() as u64)
            ));
        }
        let closed = self.lines.close(Some(grace));
        if let Some(health) = &self.file {
            for warning in health.take_warnings() {
                print_warning(&warning);
            }
            if health.retry_at().is_some() {
                print_warning(&format!(
                    "{} record(s) lost in all: --output could not be written",
                    health.lost()
                ));
            }
        }
        match closed {
            Closed::Done(Ok(())) => Ok(()),
            Closed::Done(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Closed::Done(Err(e)) => Err(e),
            Closed::TimedOut { pending } => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "output blocked: {pending} record(s) still queued after {} s",
                    grace.as_secs()
                ),
            )),
        }
    }

    /// The count of dropped records goes in now if there is room (called
    /// on the loop's tick, so it does not wait for the next record); a
    /// retry of `--output`, if one is due and no line is on its way.
    pub fn report_drops(&mut self) -> io::Result<()> {
        if self.unreported > 0 && self.lines.failure().is_none() {
            let lost = self.lost_line()?;
            let bytes = lost.len();
            if self.lines.try_push(Item::Line(lost), bytes).is_ok() {
                self.unreported = 0;
            }
        }
        let due = self.retry_at().is_some_and(|at| at <= Instant::now());
        if due && self.lines.queued_bytes() == 0 {
            // One byte: the queue is busy until the thread has tried, so
            // the loop looks again (for the next try's time) soon after.
            let _ = self.lines.try_push(Item::Retry, 1);
        }
        Ok(())
    }

    fn lost_line(&self) -> io::Result<String> {
        let record = LostRecord {
            envelope: Envelope::now("lost"),
            source: OUTPUT_BACKLOG.to_owned(),
            count: self.unreported,
            total: self.dropped,
        };
        let mut line = self.render.line(Record::Lost(&record))?;
        line.push('\n');
        Ok(line)
    }

    /// Queues `line`, or counts it dropped.
    fn push(&mut self, line: String) {
        let bytes = line.len();
        if self.lines.try_push(Item::Line(line), bytes).is_err() {
            self.unreported += 1;
            self.dropped += 1;
        }
    }
}

impl RecordSink for QueuedOutput {
    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        if self.lines.failure().is_some() {
            // The writer stopped: the loop ends on its next look at `state`.
            return Ok(());
        }
        self.report_drops()?;
        let mut line = self.render.line(record)?;
        line.push('\n');
        if self.unreported > 0 {
            // No room even for the count: this record cannot go either,
            // or it would pass the count.
            self.unreported += 1;
            self.dropped += 1;
            return Ok(());
        }
        self.push(line);
        Ok(())
    }

    fn warning(&mut self, text: &str) -> io::Result<()> {
        print_warning(text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, mpsc};

    use super::*;

    /// A reader that reads nothing until told to.
    struct Stuck {
        gate: mpsc::Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl LineTarget for Stuck {
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            let _ = self.gate.recv();
            self.got.lock().unwrap().extend_from_slice(line);
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lost(n: u64) -> LostRecord {
        LostRecord {
            envelope: Envelope::new("lost", "2025-01-01T00:00:00Z".to_owned()),
            source: "kmsg".to_owned(),
            count: n,
            total: n,
        }
    }

    #[test]
    fn a_full_queue_drops_counts_and_reports_in_place_keeping_order() {
        let (open, gate) = mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let target = Stuck {
            gate,
            got: Arc::clone(&got),
        };
        let render = Render {
            json: true,
            top: 10,
        };
        let one = render.line(Record::Lost(&lost(1))).unwrap().len() + 1;
        // Room for three records.
        let mut out = QueuedOutput::spawn(target, render, 3 * one + one / 2).unwrap();
        for n in 1..=6 {
            out.lost(&lost(n)).unwrap();
        }
        assert_eq!(out.dropped(), 3);
        // The reader resumes: what was queued goes out, then the count of
        // what was dropped, then the records after it.
        for _ in 0..100 {
            let _ = open.send(());
        }
        while out.lines.queued_bytes() > 0 {
            std::thread::yield_now();
        }
        out.lost(&lost(7)).unwrap();
        out.close(Duration::from_secs(60)).unwrap();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seen: Vec<(String, u64)> = records
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().unwrap().to_owned(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect();
        let kmsg = |n| ("kmsg".to_owned(), n);
        assert_eq!(seen[..3], [kmsg(1), kmsg(2), kmsg(3)]);
        let backlog = &records[3];
        assert_eq!(backlog["source"], OUTPUT_BACKLOG);
        assert_eq!(backlog["count"], 3);
        assert_eq!(backlog["total"], 3);
        assert_eq!(seen[4..], [kmsg(7)]);
    }

    #[test]
    fn the_reader_gone_is_a_state_not_an_error() {
        struct Closed;
        impl LineTarget for Closed {
            fn write_line(&mut self, _: &[u8]) -> io::Result<()> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = QueuedOutput::spawn(Closed, Render { json: true, top: 1 }, 1 << 20).unwrap();
        out.lost(&lost(1)).unwrap();
        while out.state().unwrap() == OutputState::Writing {
            std::thread::yield_now();
        }
        // Later records are ignored without error, and closing is clean.
        out.lost(&lost(2)).unwrap();
        out.close(Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn a_full_device_is_an_error() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap_or_else(|e| panic!("needs /dev/full: {e}"));
        let mut out = QueuedOutput::spawn(full, Render { json: true, top: 1 }, 1 << 20).unwrap();
        out.lost(&lost(1)).unwrap();
        let error = loop {
            match out.state() {
                Ok(OutputState::Writing) => std::thread::yield_now(),
                Ok(state) => panic!("{state:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
        assert!(out.close(Duration::from_secs(60)).is_err());
    }
}
