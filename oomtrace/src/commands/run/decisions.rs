//! Decisions on their way out: each is dumped (with `--dump-dir`), then
//! written as a card or a JSON line, until `--count` of them have gone out.
use std::{
    io::Write,
    time::{Instant, SystemTime},
};

use anyhow::Result;
use oomtrace_core::{
    base::{
        host::{HostFacts, page_size},
        time::parse_rfc3339,
    },
    dump::{DumpDocument, DumpWriter},
    model::decision::Decision,
    output::{Output, metrics::Metrics},
};

pub struct Decisions {
    dumps: Option<DumpWriter>,
    /// Facts about this host, in every dump.
    host: HostFacts,
    count: Option<u64>,
    emitted: u64,
}

impl Decisions {
    pub fn new(dumps: Option<DumpWriter>, count: Option<u64>) -> Self {
        Self {
            dumps,
            host: HostFacts::collect(page_size() as u64),
            count,
            emitted: 0,
        }
    }

    /// How many decisions went out.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// `--count` decisions have gone out.
    pub fn done(&self) -> bool {
        self.count.is_some_and(|n| self.emitted >= n)
    }

    /// Writes decisions (and their dumps) until `--count`, counting them in
    /// `metrics`; true once that many have gone out.
    pub fn write<W: Write>(
        &mut self,
        out: &mut Output<W>,
        mut metrics: Option<&mut Metrics>,
        decisions: Vec<Decision>,
    ) -> Result<bool> {
        for mut decision in decisions {
            if self.done() {
                return Ok(true);
            }
            self.dump(&mut decision, out)?;
            // Counted first: whoever reads the decision and scrapes finds it.
            if let Some(metrics) = metrics.as_deref_mut() {
                metrics.on_decision(&decision, Instant::now());
            }
            out.decision(&decision)?;
            self.emitted += 1;
        }
        Ok(self.done())
    }

    /// The decision with its evidence as a dump file; the evidence goes
    /// into the dump only. A full or read-only dump directory never stops
    /// tracing: a failed dump is a warning.
    fn dump<W: Write>(&mut self, decision: &mut Decision, out: &mut Output<W>) -> Result<()> {
        let Some(writer) = self.dumps.as_mut() else {
            return Ok(());
        };
        let time = decision_time(decision);
        let seq = decision.seq;
        let events = std::mem::take(&mut decision.evidence);
        let document = DumpDocument::new(decision.clone(), events, self.host.clone());
        let value = serde_json::to_value(&document)?;
        if let Err(e) = writer.write(time, seq, &value) {
            out.warning(&format!(
                "dump of decision {seq} not written ({e}); {} dump(s) failed so far",
                writer.failures()
            ))?;
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
