//! Lost-event accounting. Each loss is a `lost` record with what was lost
//! since the previous record of its source and the total, for the session to
//! emit; malformed ring-buffer records are counted and warned about once, at
//! the end.
use std::io::Write;

use oomtrace_core::{
    base::Envelope,
    events::kind_name,
    output::{LostRecord, Output},
};

pub struct Losses {
    /// Ring-buffer drops already reported, by event kind.
    ringbuf_seen: Vec<u64>,
    /// Kernel-log records overwritten before they were read.
    kmsg_total: u64,
    /// Half-built decisions evicted, already reported.
    pending_seen: u64,
    /// Ring-buffer records that did not decode.
    malformed: u64,
}

impl Losses {
    pub fn new() -> Self {
        Self {
            ringbuf_seen: vec![0; oomtrace_ebpf::kind::COUNT as usize],
            kmsg_total: 0,
            pending_seen: 0,
            malformed: 0,
        }
    }

    /// `count` kernel-log records were overwritten before they were read.
    pub fn kmsg(&mut self, count: u64) -> LostRecord {
        self.kmsg_total += count;
        record("kmsg".to_owned(), count, self.kmsg_total)
    }

    /// The decision builder has evicted `total` half-built decisions so far.
    pub fn pending(&mut self, total: u64) -> Option<LostRecord> {
        let new = total.checked_sub(self.pending_seen).filter(|&n| n > 0)?;
        self.pending_seen = total;
        Some(record("pending".to_owned(), new, total))
    }

    /// The ring buffer's drop counters (event kind, total) as the kernel has them.
    pub fn ringbuf(&mut self, drops: Vec<(u32, u64)>) -> Vec<LostRecord> {
        let mut records = Vec::new();
        for (kind, total) in drops {
            let seen = &mut self.ringbuf_seen[kind as usize];
            if total > *seen {
                let source = format!("ringbuf:{}", kind_name(kind));
                records.push(record(source, total - *seen, total));
                *seen = total;
            }
        }
        records
    }

    /// A ring-buffer record did not decode.
    pub fn malformed(&mut self) {
        self.malformed += 1;
    }

    /// At the end of the run: a warning if any record did not decode.
    pub fn warn_malformed<W: Write>(&self, out: &mut Output<W>) -> std::io::Result<()> {
        if self.malformed > 0 {
            out.warning(&format!(
                "{} malformed ring-buffer records were skipped",
                self.malformed
            ))?;
        }
        Ok(())
    }
}

fn record(source: String, count: u64, total: u64) -> LostRecord {
    LostRecord {
        envelope: Envelope::now("lost"),
        source,
        count,
        total,
    }
}
