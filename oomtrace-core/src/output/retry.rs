//! [`RetryingFile`]: `--output` survives its disk. A write that fails (a
//! full or read-only file system, the file or its directory gone) is a
//! warning, never the end of the run: the line is lost and counted (the
//! file is cut back to its last complete line, see
//! [`RotatingFile`]), and so is every line until a retry succeeds. Retries
//! back off ([`Backoff`]: 1 s, doubling up to 30 s); each reopens the file
//! (checked like the first open) and writes a `lost` record, source
//! `output_write`, with the count since the failure and in all; the lines
//! after it follow. Tracing and dumps never wait for any of it: this runs
//! on the output thread, and the loop only reads [`FileHealth`].
use std::{
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    base::Envelope,
    output::{
        file::RotatingFile, records::LostRecord, sink::Record, target::LineTarget, writer::Render,
    },
};

/// The `lost` source of records a failed write to `--output` took.
pub const OUTPUT_WRITE: &str = "output_write";

/// How long after a failed write the next try comes: `first`, doubling
/// after each failed try, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };
}

/// A file that can be opened again after a failed write.
pub trait Reopen: LineTarget {
    fn reopen(&mut self) -> io::Result<()>;
    /// Warnings of its own (a failed rotation) since the last call.
    fn take_warnings(&mut self) -> Vec<String>;
}

impl Reopen for RotatingFile {
    fn reopen(&mut self) -> io::Result<()> {
        RotatingFile::reopen(self)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        RotatingFile::take_warnings(self)
    }
}

/// What the output thread tells the loop about the file.
#[derive(Debug, Default)]
pub struct FileHealth {
    lost: AtomicU64,
    retry_at: Mutex<Option<Instant>>,
    warnings: Mutex<Vec<String>>,
}

impl FileHealth {
    /// Records a failed write took, since the start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// While writes fail: when the next try is due.
    pub fn retry_at(&self) -> Option<Instant> {
        *lock(&self.retry_at)
    }

    /// Warnings since the last call (for the loop's one warning path).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    fn warn(&self, text: String) {
        lock(&self.warnings).push(text);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes are failing since a failed write.
struct Down {
    /// Lines lost since.
    lost: u64,
    wait: Duration,
    retry_at: Instant,
}

/// The `--output` file as the output thread's [`LineTarget`]: it never
/// fails; a failed write is a lost line, counted in [`FileHealth`].
pub struct RetryingFile<F: Reopen = RotatingFile> {
    file: F,
    /// The file's name in warnings.
    label: String,
    render: Render,
    backoff: Backoff,
    health: Arc<FileHealth>,
    down: Option<Down>,
}

impl<F: Reopen> RetryingFile<F> {
    pub fn new(
        file: F,
        label: String,
        render: Render,
        backoff: Backoff,
        health: Arc<FileHealth>,
    ) -> Self {
        Self {
            file,
            label,
            render,
            backoff,
            health,
            down: None,
        }
    }

    /// Writes fail: the first failure is a warning and the start of the
    /// backoff.
    fn failed(&mut self, error: &io::Error, now: Instant) {
        if self.down.is_some() {
            return;
        }
        self.health.warn(format!(
            "cannot write --output {} ({error}); records are dropped and counted until it \
             can be written again (retried after {} s, then less and less often)",
            self.label,
            self.backoff.first.as_secs()
        ));
        self.schedule(Down {
            lost: 0,
            wait: self.backoff.first,
            retry_at: now + self.backoff.first,
        });
    }

    fn schedule(&mut self, down: Down) {
        *lock(&self.health.retry_at) = Some(down.retry_at);
        self.down = Some(down);
    }

    fn count_lost(&mut self) {
        if let Some(down) = self.down.as_mut() {
            down.lost += 1;
        }
        self.health.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Up (again): true at once while writes work; while they fail, a try
    /// once due: the file reopened and the `lost` record written.
    fn up(&mut self, now: Instant) -> bool {
        let Some(down) = self.down.as_ref() else {
            return true;
        };
        if now < down.retry_at {
            return false;
        }
        let lost = down.lost;
        let tried = self.lost_line(lost).and_then(|line| {
            self.file.reopen()?;
            self.file.write_line(line.as_bytes())
        });
        match tried {
            Ok(()) => {
                self.down = None;
                *lock(&self.health.retry_at) = None;
                self.health.warn(format!(
                    "--output {} is written again; {lost} record(s) were lost meanwhile \
                     (a `lost` record, source {OUTPUT_WRITE}, says so in it)",
                    self.label
                ));
                true
            }
            Err(_) => {
                let wait = (down.wait * 2).min(self.backoff.max);
                self.schedule(Down {
                    lost,
                    wait,
                    retry_at: now + wait,
                });
                false
            }
        }
    }

    fn lost_line(&self, count: u64) -> io::Result<String> {
        let record = LostRecord {
            envelope: Envelope::now("lost"),
            source: OUTPUT_WRITE.to_owned(),
            count,
            total: self.health.lost(),
        };
        let mut line = self.render.line(Record::Lost(&record))?;
        line.push('\n');
        Ok(line)
    }

    /// One line, written or counted lost, at `now`.
    fn write_at(&mut self, line: &[u8], now: Instant) {
        if !self.up(now) {
            self.count_lost();
            return;
        }
        if let Err(e) = self.file.write_line(line) {
            self.failed(&e, now);
            self.count_lost();
        }
        self.pass_warnings();
    }

    /// No line, but a try if one is due at `now`.
    fn nudge_at(&mut self, now: Instant) {
        self.up(now);
        self.pass_warnings();
    }

    fn pass_warnings(&mut self) {
        for warning in self.file.take_warnings() {
            self.health.warn(warning);
        }
    }
}

impl<F: Reopen> LineTarget for RetryingFile<F> {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_at(line, Instant::now());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is buffered past a line; a failure shows on the next one.
        let _ = self.file.flush();
        Ok(())
    }

    /// The loop's nudge while writes fail and no line comes: a try if due.
    fn retry(&mut self) -> io::Result<()> {
        self.nudge_at(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A file on a disk the test fills and frees.
    #[derive(Clone, Default)]
    struct Disk {
        full: Arc<AtomicBool>,
        lines: Arc<Mutex<Vec<String>>>,
        tries: Arc<AtomicU64>,
    }

    impl Disk {
        fn no_space(&self) -> io::Result<()> {
            if self.full.load(Ordering::Relaxed) {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            } else {
                Ok(())
            }
        }
    }

    impl LineTarget for Disk {
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            self.tries.fetch_add(1, Ordering::Relaxed);
            self.no_space()?;
            let line = String::from_utf8(line.to_vec()).unwrap();
            self.lines.lock().unwrap().push(line);
            Ok(())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Reopen for Disk {
        fn reopen(&mut self) -> io::Result<()> {
            self.tries.fetch_add(1, Ordering::Relaxed);
            self.no_space()
        }

        fn take_warnings(&mut self) -> Vec<String> {
            Vec::new()
        }
    }

    fn retrying(disk: &Disk, backoff: Duration) -> (RetryingFile<Disk>, Arc<FileHealth>) {
        let health = Arc::new(FileHealth::default());
        let render = Render { json: true, top: 1 };
        let backoff = Backoff {
            first: backoff,
            max: backoff,
        };
        let file = RetryingFile::new(
            disk.clone(),
            "out".to_owned(),
            render,
            backoff,
            Arc::clone(&health),
        );
        (file, health)
    }

    fn record(line: &str) -> serde_json::Value {
        serde_json::from_str(line).unwrap()
    }

    /// Every try is due at once: the lines that fail are counted, and the
    /// first write after the disk has room puts the `lost` record first.
    #[test]
    fn failed_lines_are_counted_and_the_count_leads_the_recovery() {
        let disk = Disk::default();
        let (mut file, health) = retrying(&disk, Duration::ZERO);
        file.write_line(b"{\"n\":1}\n").unwrap();
        disk.full.store(true, Ordering::Relaxed);
        file.write_line(b"{\"n\":2}\n").unwrap();
        file.write_line(b"{\"n\":3}\n").unwrap();
        assert_eq!(health.lost(), 2);
        assert!(health.retry_at().is_some());
        let warnings = health.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("cannot write --output out"),
            "{warnings:?}"
        );

        disk.full.store(false, Ordering::Relaxed);
        file.write_line(b"{\"n\":4}\n").unwrap();
        let lines = disk.lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "{\"n\":1}\n");
        let lost = record(&lines[1]);
        assert_eq!(lost["type"], "lost");
        assert_eq!(lost["source"], OUTPUT_WRITE);
        assert_eq!(lost["count"], 2);
        assert_eq!(lost["total"], 2);
        assert_eq!(lines[2], "{\"n\":4}\n");
        assert_eq!(health.retry_at(), None);
        assert!(health.take_warnings()[0].contains("written again; 2 record(s)"));

        // A second outage: its own count, the total goes on.
        disk.full.store(true, Ordering::Relaxed);
        file.write_line(b"{\"n\":5}\n").unwrap();
        disk.full.store(false, Ordering::Relaxed);
        file.retry().unwrap();
        let lines = disk.lines.lock().unwrap().clone();
        let lost = record(lines.last().unwrap());
        assert_eq!(
            (lost["count"].as_u64(), lost["total"].as_u64()),
            (Some(1), Some(3))
        );
    }

    /// Until the backoff is over the disk is not touched: lines are only
    /// counted, and the loop's nudge does nothing either. Each failed try
    /// waits twice as long before the next, up to the maximum.
    #[test]
    fn tries_back_off_and_nothing_touches_the_disk_in_between() {
        let disk = Disk::default();
        let health = Arc::new(FileHealth::default());
        let backoff = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(4),
        };
        let render = Render { json: true, top: 1 };
        let mut file = RetryingFile::new(
            disk.clone(),
            "out".into(),
            render,
            backoff,
            Arc::clone(&health),
        );
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        disk.full.store(true, Ordering::Relaxed);
        file.write_at(b"{}\n", t0);
        assert_eq!(disk.tries.load(Ordering::Relaxed), 1);
        assert_eq!(health.retry_at(), Some(at(1)));
        // Tries at 1, 3 (waited 2), 7 (waited 4), 11 (4 at most).
        let mut tries = 1;
        for (now, next) in [(1, 3), (3, 7), (7, 11), (11, 15)] {
            // Before it is due: neither a line nor a nudge touches the disk.
            file.write_at(b"{}\n", at(now) - Duration::from_millis(1));
            file.nudge_at(at(now) - Duration::from_millis(1));
            assert_eq!(disk.tries.load(Ordering::Relaxed), tries);
            file.nudge_at(at(now));
            tries += 1;
            assert_eq!(
                disk.tries.load(Ordering::Relaxed),
                tries,
                "the try at {now} s"
            );
            assert_eq!(health.retry_at(), Some(at(next)));
        }
        assert_eq!(health.lost(), 5);
        assert!(disk.lines.lock().unwrap().is_empty());
        assert_eq!(health.take_warnings().len(), 1, "one warning per outage");
    }
}
