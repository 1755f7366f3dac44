//! Lost-event accounting. Each loss is a `lost` record with what was lost
//! since the previous record of its source and the total; malformed
//! ring-buffer records are counted and warned about once, at the end.
use std::collections::HashMap;

use oomtrace_core::{
    base::Envelope,
    events::kind_name,
    output::{LostRecord, RecordSink},
};

pub struct Losses {
    /// Ring-buffer drops already reported, by event kind.
    ringbuf_seen: Vec<u64>,
    /// Kernel-log records overwritten before they were read.
    kmsg_total: u64,
    /// Totals already reported of what bounded memory evicted, by source.
    evictions_seen: HashMap<&'static str, u64>,
    /// Ring-buffer records that did not decode.
    malformed: u64,
}

impl Losses {
    pub fn new() -> Self {
        Self {
            ringbuf_seen: vec![0; oomtrace_ebpf::kind::COUNT as usize],
            kmsg_total: 0,
            evictions_seen: HashMap::new(),
            malformed: 0,
        }
    }

    /// `count` kernel-log records were overwritten before they were read.
    pub fn kmsg(&mut self, count: u64, out: &mut dyn RecordSink) -> std::io::Result<()> {
        self.kmsg_total += count;
        out.lost(&record("kmsg".to_owned(), count, self.kmsg_total))
    }

    /// What bounded memory evicted so far, as (source, total): `pending`
    /// (too many decisions in flight) and `evicted:*` (a byte budget,
    /// `base::bounds`). What is new since the last call is a `lost` record.
    pub fn evictions(
        &mut self,
        totals: impl IntoIterator<Item = (&'static str, u64)>,
        out: &mut dyn RecordSink,
    ) -> std::io::Result<()> {
        for (source, total) in totals {
            let seen = self.evictions_seen.entry(source).or_default();
            if total > *seen {
                out.lost(&record(source.to_owned(), total - *seen, total))?;
                *seen = total;
            }
        }
        Ok(())
    }

    /// The ring buffer's drop counters (event kind, total) as the kernel has them.
    pub fn ringbuf(
        &mut self,
        drops: Vec<(u32, u64)>,
        out: &mut dyn RecordSink,
    ) -> std::io::Result<()> {
        for (kind, total) in drops {
            let seen = &mut self.ringbuf_seen[kind as usize];
            if total > *seen {
                let source = format!("ringbuf:{}", kind_name(kind));
                out.lost(&record(source, total - *seen, total))?;
                *seen = total;
            }
        }
        Ok(())
    }

    /// A ring-buffer record did not decode.
    pub fn malformed(&mut self) {
        self.malformed += 1;
    }

    /// At the end of the run: a warning if any record did not decode.
    pub fn warn_malformed(&self, out: &mut dyn RecordSink) -> std::io::Result<()> {
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
