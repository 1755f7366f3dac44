//! [`Output`]: every record goes out as one JSON line or as its text, and
//! every runtime warning goes through [`Output::warning`].
use std::io::Write;

use serde::Serialize;

use crate::{
    base::text::Escaped,
    model::{
        charge::{ChargeFailureRecord, ChargeFailureSummary},
        decision::Decision,
        pagefault::PagefaultOomRecord,
        stall::StallRecord,
    },
    output::{
        card::{charge_failure_card, pagefault_card, render_card, stall_card},
        records::{
            ChargeHookRecord, LostRecord, StartRecord, charge_failure_summary_text,
            charge_hook_text, lost_text, start_text,
        },
    },
};

pub struct Output<W: Write> {
    json: bool,
    /// Candidates shown on a decision card.
    top: usize,
    out: W,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, json: bool, top: usize) -> Self {
        Self { json, top, out }
    }

    /// The record as one JSON line, or as `text` renders it; flushed at once.
    fn record<T: Serialize>(
        &mut self,
        record: &T,
        text: impl FnOnce(&T) -> String,
    ) -> std::io::Result<()> {
        let line = if self.json {
            serde_json::to_string(record).map_err(std::io::Error::other)?
        } else {
            text(record)
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    pub fn start(&mut self, record: &StartRecord<'_>) -> std::io::Result<()> {
        self.record(record, start_text)
    }

    pub fn lost(&mut self, record: &LostRecord) -> std::io::Result<()> {
        self.record(record, lost_text)
    }

    pub fn stall(&mut self, record: &StallRecord) -> std::io::Result<()> {
        self.record(record, stall_card)
    }

    pub fn charge_failure(&mut self, record: &ChargeFailureRecord) -> std::io::Result<()> {
        self.record(record, charge_failure_card)
    }

    pub fn pagefault(&mut self, record: &PagefaultOomRecord) -> std::io::Result<()> {
        self.record(record, pagefault_card)
    }

    pub fn charge_hook(&mut self, record: &ChargeHookRecord) -> std::io::Result<()> {
        self.record(record, charge_hook_text)
    }

    pub fn charge_failure_summary(&mut self, record: &ChargeFailureSummary) -> std::io::Result<()> {
        self.record(record, charge_failure_summary_text)
    }

    pub fn decision(&mut self, decision: &Decision) -> std::io::Result<()> {
        let top = self.top;
        self.record(decision, |d| render_card(d, top))
    }

    /// The one path for a runtime warning (something the run goes on
    /// without): `oomtrace: warning: <text>` on stderr, in both output
    /// modes, so stdout stays records only. Errors that end the program are
    /// not warnings: `main` prints those.
    pub fn warning(&mut self, text: &str) -> std::io::Result<()> {
        eprintln!("{}", warning_line(text));
        Ok(())
    }
}

/// The warning as printed: untrusted text in it (a path, a comm, a log
/// line) is made inert, so it stays one line and starts no terminal sequence.
fn warning_line(text: &str) -> String {
    format!("oomtrace: warning: {}", Escaped(text))
}

#[cfg(test)]
mod tests {
    use crate::base::Envelope;

    use super::*;

    fn lost() -> LostRecord {
        LostRecord {
            envelope: Envelope::new("lost", "2025-01-01T00:00:00Z".to_owned()),
            source: "kmsg".to_owned(),
            count: 2,
            total: 5,
        }
    }

    #[test]
    fn a_record_is_one_json_line_or_its_text() {
        let mut json = Output::new(Vec::new(), true, 10);
        json.lost(&lost()).unwrap();
        let text = String::from_utf8(json.out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "lost");
        assert_eq!(value["total"], 5);

        let mut card = Output::new(Vec::new(), false, 10);
        card.lost(&lost()).unwrap();
        assert_eq!(
            String::from_utf8(card.out).unwrap(),
            "oomtrace: WARNING: 2 events lost from kmsg (5 in total)\n"
        );
    }

    #[test]
    fn a_warning_never_reaches_the_record_stream() {
        let mut out = Output::new(Vec::new(), true, 10);
        out.warning("test warning").unwrap();
        assert!(out.out.is_empty());
    }

    #[test]
    fn a_warning_is_one_inert_line() {
        let line = warning_line("/tmp/a\u{1b}[2J\nb: gone");
        assert_eq!(line, "oomtrace: warning: /tmp/a\\x1b[2J\\x0ab: gone");
    }
}
