//! [`Render`]: every record as one JSON line or as its text; [`Output`],
//! the synchronous [`RecordSink`] that writes them; the runtime warning line.
use std::io::Write;

use crate::{
    base::text::Escaped,
    output::{
        card::{
            charge_failure_card, pagefault_card, render_card, stall_card, warning_card,
            warning_clear_text,
        },
        records::{charge_failure_summary_text, charge_hook_text, lost_text, start_text},
        sink::{Record, RecordSink},
    },
};

/// How records become lines: JSON (one line each) or the text for a person.
#[derive(Debug, Clone, Copy)]
pub struct Render {
    pub json: bool,
    /// Candidates shown on a decision card.
    pub top: usize,
}

impl Render {
    /// The record as one JSON line, or as its text (card or one-liner),
    /// without the final newline.
    pub fn line(&self, record: Record<'_>) -> std::io::Result<String> {
        if self.json {
            return json_line(record).map_err(std::io::Error::other);
        }
        Ok(match record {
            Record::Start(r) => start_text(r),
            Record::Decision(d) => render_card(d, self.top),
            Record::ChargeFailure(r) => charge_failure_card(r),
            Record::ChargeFailureSummary(r) => charge_failure_summary_text(r),
            Record::ChargeHook(r) => charge_hook_text(r),
            Record::Stall(r) => stall_card(r),
            Record::Pagefault(r) => pagefault_card(r),
            Record::Warning(r) => warning_card(r),
            Record::WarningClear(r) => warning_clear_text(r),
            Record::Lost(r) => lost_text(r),
        })
    }
}

fn json_line(record: Record<'_>) -> serde_json::Result<String> {
    match record {
        Record::Start(r) => serde_json::to_string(r),
        Record::Decision(d) => serde_json::to_string(d),
        Record::ChargeFailure(r) => serde_json::to_string(r),
        Record::ChargeFailureSummary(r) => serde_json::to_string(r),
        Record::ChargeHook(r) => serde_json::to_string(r),
        Record::Stall(r) => serde_json::to_string(r),
        Record::Pagefault(r) => serde_json::to_string(r),
        Record::Warning(r) => serde_json::to_string(r),
        Record::WarningClear(r) => serde_json::to_string(r),
        Record::Lost(r) => serde_json::to_string(r),
    }
}

/// The synchronous sink: each record rendered, written and flushed at once
/// (the live run uses [`QueuedOutput`](crate::output::QueuedOutput), which
/// does the writing on a thread of its own).
pub struct Output<W: Write> {
    render: Render,
    out: W,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, json: bool, top: usize) -> Self {
        Self {
            render: Render { json, top },
            out,
        }
    }
}

impl<W: Write> RecordSink for Output<W> {
    fn record(&mut self, record: Record<'_>) -> std::io::Result<()> {
        let line = self.render.line(record)?;
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// The one path for a runtime warning (something the run goes on
    /// without): `oomtrace: warning: <text>` on stderr, in both output
    /// modes, so stdout stays records only. Errors that end the program are
    /// not warnings: `main` prints those.
    fn warning(&mut self, text: &str) -> std::io::Result<()> {
        print_warning(text);
        Ok(())
    }
}

/// `oomtrace: warning: <text>` on stderr. A stderr that cannot be written
/// must not end tracing.
pub fn print_warning(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", warning_line(text));
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
    use crate::output::records::LostRecord;

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
