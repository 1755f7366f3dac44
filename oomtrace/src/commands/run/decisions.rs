//! Decisions on their way out: each is handed to the dump thread (with
//! `--dump-dir`), then to the output, until `--count` of them have gone
//! out. Dump failures and dumps dropped (the disk fell behind) come back
//! here as warnings and `lost` records.
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use oomtrace_core::{
    base::{
        Envelope,
        host::{HostFacts, page_size},
        time::parse_rfc3339,
    },
    dump::{DUMP_BACKLOG, DUMP_BACKLOG_BYTES, DumpDocument, DumpSpool, DumpWriter},
    model::decision::Decision,
    output::{LostRecord, RecordSink},
};

/// How soon the loop looks again while dumps or lines are being written
/// (their failures come back from the writer threads).
pub const IN_FLIGHT_CHECK: Duration = Duration::from_millis(50);

pub struct Decisions {
    dumps: Option<DumpSpool>,
    /// Facts about this host, in every dump.
    host: HostFacts,
    count: Option<u64>,
    emitted: u64,
}

impl Decisions {
    /// With `--dump-dir`, starts the dump thread on its writer.
    pub fn new(dumps: Option<DumpWriter>, count: Option<u64>) -> Result<Self> {
        let dumps = dumps
            .map(|writer| DumpSpool::spawn(writer, DUMP_BACKLOG_BYTES))
            .transpose()
            .context("starting the dump writer")?;
        Ok(Self {
            dumps,
            host: HostFacts::collect(page_size() as u64),
            count,
            emitted: 0,
        })
    }

    /// How many decisions went out.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// How many more decisions may go out (`--count`).
    pub fn room(&self) -> usize {
        self.count.map_or(usize::MAX, |n| {
            usize::try_from(n.saturating_sub(self.emitted)).unwrap_or(usize::MAX)
        })
    }

    /// `--count` decisions have gone out.
    pub fn done(&self) -> bool {
        self.count.is_some_and(|n| self.emitted >= n)
    }

    /// Writes decisions (and their dumps) until `--count`; true once that
    /// many have gone out.
    pub fn write(&mut self, out: &mut dyn RecordSink, decisions: Vec<Decision>) -> Result<bool> {
        for mut decision in decisions {
            if self.done() {
                return Ok(true);
            }
            self.dump(&mut decision, out)?;
            out.decision(&decision)?;
            self.emitted += 1;
        }
        Ok(self.done())
    }

    /// The decision with its evidence, queued for its dump file; the
    /// evidence goes into the dump only.
    fn dump(&mut self, decision: &mut Decision, out: &mut dyn RecordSink) -> Result<()> {
        let Some(spool) = self.dumps.as_mut() else {
            return Ok(());
        };
        let time = decision_time(decision);
        let seq = decision.seq;
        let events = std::mem::take(&mut decision.evidence);
        let document = DumpDocument::new(decision.clone(), events, self.host.clone());
        if let Err(e) = spool.submit(time, seq, &document) {
            out.warning(&format!("dump of decision {seq} not written ({e})"))?;
        }
        Ok(())
    }

    /// Dumps that failed (a full or read-only directory never stops
    /// tracing: a warning each) and dumps dropped since the last call.
    pub fn report_dumps(&mut self, out: &mut dyn RecordSink) -> Result<()> {
        let Some(spool) = self.dumps.as_mut() else {
            return Ok(());
        };
        for warning in spool.warnings() {
            out.warning(&warning)?;
        }
        if let Some((count, total)) = spool.newly_dropped() {
            out.lost(&LostRecord {
                envelope: Envelope::now("lost"),
                source: DUMP_BACKLOG.to_owned(),
                count,
                total,
            })?;
        }
        Ok(())
    }

    /// While dumps are being written, when to look for their warnings.
    pub fn next_deadline(&self) -> Option<Instant> {
        let busy = self.dumps.as_ref().is_some_and(|spool| spool.busy());
        busy.then(|| Instant::now() + IN_FLIGHT_CHECK)
    }

    /// The end of the run: what is dropped is said, every queued dump is
    /// written, and the last failures are warned about.
    pub fn close(&mut self, out: &mut dyn RecordSink) -> Result<()> {
        self.report_dumps(out)?;
        if let Some(spool) = self.dumps.take() {
            for warning in spool.close() {
                out.warning(&warning)?;
            }
        }
        Ok(())
    }
}

fn decision_time(decision: &Decision) -> SystemTime {
    decision
        .envelope
        .time
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or_else(SystemTime::now)
}
