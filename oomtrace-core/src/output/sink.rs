//! [`RecordSink`]: the seam between the run and whatever consumes its
//! records. The run hands every record it emits (and every runtime warning)
//! to a sink; the JSON Lines / card writer is one implementation, metrics or
//! other exporters are others. Sinks depend on the core through this trait,
//! never the other way round.
use std::io;

use crate::{
    model::{
        charge::{ChargeFailureRecord, ChargeFailureSummary},
        decision::Decision,
        pagefault::PagefaultOomRecord,
        risk::{OomWarning, OomWarningClear},
        stall::StallRecord,
    },
    output::records::{ChargeHookRecord, LostRecord, StartRecord},
};

/// One record the run emits, borrowed for the time of the call.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Start(&'a StartRecord<'a>),
    Decision(&'a Decision),
    ChargeFailure(&'a ChargeFailureRecord),
    ChargeFailureSummary(&'a ChargeFailureSummary),
    ChargeHook(&'a ChargeHookRecord),
    /// `oom_stall`.
    Stall(&'a StallRecord),
    Pagefault(&'a PagefaultOomRecord),
    /// `oom_warning`.
    Warning(&'a OomWarning),
    /// `oom_warning_clear`.
    WarningClear(&'a OomWarningClear),
    Lost(&'a LostRecord),
}

impl Record<'_> {
    /// The record's `type` in JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Start(_) => "start",
            Record::Decision(_) => "decision",
            Record::ChargeFailure(_) => "charge_failure",
            Record::ChargeFailureSummary(_) => "charge_failure_summary",
            Record::ChargeHook(_) => "charge_hook",
            Record::Stall(_) => "oom_stall",
            Record::Pagefault(_) => "pagefault_oom",
            Record::Warning(_) => "oom_warning",
            Record::WarningClear(_) => "oom_warning_clear",
            Record::Lost(_) => "lost",
        }
    }
}

/// Receives every record of a run, in order, and every runtime warning.
///
/// Implementations must not block the caller for long: the caller is the
/// event loop that reads the ring buffer and the kernel log. An error ends
/// the run (it is returned to `main`).
pub trait RecordSink {
    fn record(&mut self, record: Record<'_>) -> io::Result<()>;

    /// A runtime warning (something the run goes on without).
    fn warning(&mut self, text: &str) -> io::Result<()>;

    fn start(&mut self, record: &StartRecord<'_>) -> io::Result<()> {
        self.record(Record::Start(record))
    }

    fn decision(&mut self, decision: &Decision) -> io::Result<()> {
        self.record(Record::Decision(decision))
    }

    fn charge_failure(&mut self, record: &ChargeFailureRecord) -> io::Result<()> {
        self.record(Record::ChargeFailure(record))
    }

    fn charge_failure_summary(&mut self, record: &ChargeFailureSummary) -> io::Result<()> {
        self.record(Record::ChargeFailureSummary(record))
    }

    fn charge_hook(&mut self, record: &ChargeHookRecord) -> io::Result<()> {
        self.record(Record::ChargeHook(record))
    }

    fn stall(&mut self, record: &StallRecord) -> io::Result<()> {
        self.record(Record::Stall(record))
    }

    fn pagefault(&mut self, record: &PagefaultOomRecord) -> io::Result<()> {
        self.record(Record::Pagefault(record))
    }

    fn warning_record(&mut self, record: &OomWarning) -> io::Result<()> {
        self.record(Record::Warning(record))
    }

    fn warning_clear(&mut self, record: &OomWarningClear) -> io::Result<()> {
        self.record(Record::WarningClear(record))
    }

    fn lost(&mut self, record: &LostRecord) -> io::Result<()> {
        self.record(Record::Lost(record))
    }
}

/// Several sinks fed the same records, in the order given; the first error
/// is returned after every sink has had the record.
#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Box<dyn RecordSink + Send>>,
}

impl Fanout {
    pub fn push(&mut self, sink: Box<dyn RecordSink + Send>) {
        self.sinks.push(sink);
    }
}

impl RecordSink for Fanout {
    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        let mut result = Ok(());
        for sink in &mut self.sinks {
            let outcome = sink.record(record);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    fn warning(&mut self, text: &str) -> io::Result<()> {
        let mut result = Ok(());
        for sink in &mut self.sinks {
            let outcome = sink.warning(text);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::base::Envelope;

    /// Keeps the type of every record and every warning it is given.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl RecordSink for Seen {
        fn record(&mut self, record: Record<'_>) -> io::Result<()> {
            self.0.lock().unwrap().push(record.type_name().to_owned());
            Ok(())
        }

        fn warning(&mut self, text: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("warning: {text}"));
            Ok(())
        }
    }

    #[test]
    fn every_sink_of_a_fanout_sees_every_record_in_order() {
        let (a, b) = (Arc::default(), Arc::default());
        let mut fanout = Fanout::default();
        fanout.push(Box::new(Seen(Arc::clone(&a))));
        fanout.push(Box::new(Seen(Arc::clone(&b))));
        let lost = LostRecord {
            envelope: Envelope::now("lost"),
            source: "kmsg".to_owned(),
            count: 1,
            total: 1,
        };
        let hook = ChargeHookRecord {
            envelope: Envelope::now("charge_hook"),
            state: "disarmed",
            memcg: None,
            rule: None,
        };
        fanout.lost(&lost).unwrap();
        fanout.warning("w").unwrap();
        fanout.charge_hook(&hook).unwrap();
        for seen in [a, b] {
            assert_eq!(*seen.lock().unwrap(), ["lost", "warning: w", "charge_hook"]);
        }
    }

    #[test]
    fn a_records_type_name_is_its_json_type() {
        let lost = LostRecord {
            envelope: Envelope::now("lost"),
            source: "kmsg".to_owned(),
            count: 1,
            total: 1,
        };
        let json = serde_json::to_value(&lost).unwrap();
        assert_eq!(json["type"], Record::Lost(&lost).type_name());
    }
}
