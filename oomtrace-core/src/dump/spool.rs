//! [`DumpSpool`]: dumps written off the event loop. Each dump costs two
//! fsyncs and a directory scan; a thread of its own does them, fed through
//! a [`Backlog`] bounded in bytes of serialized documents
//! ([`DUMP_BACKLOG_BYTES`]). A dump that does not fit is dropped and
//! counted (a `lost` record, source `dump_backlog`); a dump that fails is a
//! warning, handed back to the loop (the one warning path stays the loop's).
use std::{io, path::PathBuf, sync::mpsc, time::SystemTime};

use serde::Serialize;

use crate::{
    base::backlog::{Backlog, Closed},
    dump::{DumpError, DumpWriter},
};

/// Serialized dumps waiting for the disk, at most (16 MiB: dozens of
/// decisions with their evidence).
pub const DUMP_BACKLOG_BYTES: usize = 16 << 20;

/// The `lost` source of dumps dropped because the disk fell behind.
pub const DUMP_BACKLOG: &str = "dump_backlog";

struct Job {
    time: SystemTime,
    seq: u64,
    document: Vec<u8>,
}

pub struct DumpSpool {
    dir: PathBuf,
    jobs: Backlog<Job>,
    warnings: mpsc::Receiver<String>,
    dropped: u64,
    reported: u64,
}

impl DumpSpool {
    /// Starts the dump thread on `writer`.
    pub fn spawn(writer: DumpWriter, bound: usize) -> io::Result<Self> {
        let dir = writer.dir().to_owned();
        let (warn, warnings) = mpsc::channel();
        let mut writer = writer;
        let jobs = Backlog::spawn("oomtrace-dumps", bound, move |batch: Vec<Job>| {
            for job in batch {
                if let Err(e) = writer.write_serialized(job.time, job.seq, job.document) {
                    let _ = warn.send(format!(
                        "dump of decision {} not written ({e}); {} dump(s) failed so far",
                        job.seq,
                        writer.failures()
                    ));
                }
            }
            Ok(())
        })?;
        Ok(Self {
            dir,
            jobs,
            warnings,
            dropped: 0,
            reported: 0,
        })
    }

    /// The dump directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Queues the dump of decision `seq`, or counts it dropped.
    pub fn submit(
        &mut self,
        time: SystemTime,
        seq: u64,
        document: &impl Serialize,
    ) -> Result<(), DumpError> {
        let document = serde_json::to_vec(document).map_err(|source| DumpError::Serialize {
            path: self.dir.clone(),
            source,
        })?;
        let bytes = document.len();
        let job = Job {
            time,
            seq,
            document,
        };
        if self.jobs.try_push(job, bytes).is_err() {
            self.dropped += 1;
        }
        Ok(())
    }

    /// Dumps are still being written: their warnings are still to come.
    pub fn busy(&self) -> bool {
        self.jobs.queued_bytes() > 0
    }

    /// Warnings of the dumps that failed since the last call.
    pub fn warnings(&mut self) -> Vec<String> {
        self.warnings.try_iter().collect()
    }

    /// Dumps dropped since the last call and in all, if any since.
    pub fn newly_dropped(&mut self) -> Option<(u64, u64)> {
        let new = self.dropped - self.reported;
        self.reported = self.dropped;
        (new > 0).then_some((new, self.dropped))
    }

    /// Waits until every queued dump is written (or has failed); returns
    /// the warnings not yet taken.
    pub fn close(self) -> Vec<String> {
        let closed = self.jobs.close(None);
        let mut warnings: Vec<String> = self.warnings.try_iter().collect();
        if let Closed::Done(Err(e)) = closed {
            warnings.push(format!("the dump writer stopped: {e}"));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::PermissionsExt, time::Duration};

    use serde_json::json;

    use super::*;
    use crate::dump::DumpConfig;

    fn writer_in(dir: &std::path::Path) -> DumpWriter {
        DumpWriter::open(DumpConfig {
            dir: dir.to_owned(),
            max_files: None,
            max_bytes: None,
        })
        .unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn every_dump_queued_is_on_disk_once_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let writer = writer_in(tmp.path());
        let mut spool = DumpSpool::spawn(writer, DUMP_BACKLOG_BYTES).unwrap();
        for seq in 0..20 {
            spool.submit(at(seq), seq, &json!({ "seq": seq })).unwrap();
        }
        assert_eq!(spool.newly_dropped(), None);
        assert!(spool.close().is_empty());
        let files = DumpWriter::list(tmp.path()).unwrap();
        assert_eq!(files.len(), 20);
        for (seq, file) in files.iter().enumerate() {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            assert_eq!(value["seq"], seq);
        }
    }

    #[test]
    fn a_dump_that_does_not_fit_is_counted_never_silently_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let writer = writer_in(tmp.path());
        // A one-byte backlog takes a dump only while the thread is idle.
        let mut spool = DumpSpool::spawn(writer, 1).unwrap();
        for seq in 0..50 {
            spool.submit(at(seq), seq, &json!({ "seq": seq })).unwrap();
        }
        let dropped = spool.newly_dropped().map_or(0, |(count, total)| {
            assert_eq!(count, total);
            total
        });
        assert!(spool.close().is_empty());
        let written = DumpWriter::list(tmp.path()).unwrap().len() as u64;
        assert!(written >= 1);
        assert_eq!(written + dropped, 50);
    }

    #[test]
    fn a_failed_dump_comes_back_as_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        let writer = DumpWriter::open(DumpConfig {
            dir: dir.clone(),
            max_files: None,
            max_bytes: None,
        })
        .unwrap();
        // Root ignores permissions: replace the directory by a file instead.
        std::fs::remove_dir(&dir).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut spool = DumpSpool::spawn(writer, DUMP_BACKLOG_BYTES).unwrap();
        spool.submit(at(1), 7, &json!({})).unwrap();
        let warnings = spool.close();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("dump of decision 7 not written"),
            "{warnings:?}"
        );
    }
}
