//! Saved kernel logs, streamed: raw lines in, report items out.
//!
//! Real logs are damaged in ways a parser must survive: blocks of NUL bytes
//! where a crash cut a file short, bytes that are not UTF-8 (a comm is any 16
//! bytes), lines without end, and several hosts merged into one file. Here a
//! line with a NUL is skipped (it costs that line, not the file), invalid
//! UTF-8 is decoded lossily (U+FFFD), a line longer than
//! [`MAX_LINE_BYTES`] is cut there (the kernel's own lines are under 1 KiB),
//! and each host named by a syslog or journal prefix gets its own
//! [`ReportParser`], so two hosts' reports interleaved line by line stay
//! apart. What was skipped, repaired or cut is counted in [`LineStats`] for
//! the caller to say.
//!
//! Memory stays bounded: one line at a time, one open report per host (a
//! host's parser is dropped as soon as it has no open report), each report
//! capped by [`MAX_REPORT_LINES`](super::MAX_REPORT_LINES) /
//! [`MAX_REPORT_BYTES`](super::MAX_REPORT_BYTES).

use std::collections::HashMap;

use super::{
    ReportError, ReportItem, ReportParser, SourceLine, journal::JournalEntry, split_prefix,
};
use crate::base::lines::read_line_capped;

/// Longest log line kept; the rest of a longer line is dropped (counted).
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Hosts with a report open at the same time; past this the oldest open
/// report is closed (as incomplete) to make room.
pub const MAX_OPEN_HOSTS: usize = 1024;

/// Message bytes held by all open reports together; past this the oldest
/// open reports are closed (as incomplete) until the rest fit.
pub const MAX_OPEN_BYTES: usize = 256 << 20;

/// What a log's lines cost: skipped (not text), repaired (lossy UTF-8) or cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Lines read, blank ones included.
    pub lines: usize,
    /// Lines that held something other than whitespace.
    pub nonblank: usize,
    /// Lines skipped because they held a NUL byte.
    pub skipped: usize,
    /// The first skipped line: (line number, why).
    pub first_skipped: Option<(usize, &'static str)>,
    /// Lines with invalid UTF-8, kept with U+FFFD in its place.
    pub repaired: usize,
    /// Lines longer than [`MAX_LINE_BYTES`], kept up to it.
    pub cut: usize,
    /// Journal entries whose MESSAGE was missing or not text.
    pub bad_entries: usize,
    /// Reports closed early because [`MAX_OPEN_HOSTS`] hosts had one open
    /// or they held more than [`MAX_OPEN_BYTES`] together.
    pub hosts_evicted: usize,
}

impl LineStats {
    /// One line for a person, or `None` when nothing was lost or changed.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some((line, why)) = self.first_skipped {
            parts.push(format!(
                "{} line(s) skipped as not text (first: line {line}, {why})",
                self.skipped
            ));
        }
        if self.repaired > 0 {
            parts.push(format!(
                "{} line(s) with invalid UTF-8 read with U+FFFD in its place",
                self.repaired
            ));
        }
        if self.cut > 0 {
            parts.push(format!(
                "{} line(s) longer than {} KiB cut there",
                self.cut,
                MAX_LINE_BYTES >> 10
            ));
        }
        if self.bad_entries > 0 {
            parts.push(format!(
                "{} journal entr(y/ies) without a text MESSAGE skipped",
                self.bad_entries
            ));
        }
        if self.hosts_evicted > 0 {
            parts.push(format!(
                "{} report(s) closed early: more than {MAX_OPEN_HOSTS} hosts had one open, or they held more than {} MiB",
                self.hosts_evicted,
                MAX_OPEN_BYTES >> 20
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// One item and the host whose log it came from (`None`: no host named).
#[derive(Debug, Clone, PartialEq)]
pub struct HostItem {
    pub host: Option<String>,
    pub item: ReportItem,
}

/// Feeds raw log lines (or journal entries) to one [`ReportParser`] per host.
#[derive(Debug, Default)]
pub struct LogParser {
    /// Parsers with an open report, by host ("" for lines naming none), and
    /// the order their reports opened in (for eviction).
    open: HashMap<String, ReportParser>,
    opened: Vec<String>,
    /// Sum of the open parsers' [`ReportParser::open_bytes`].
    open_bytes: usize,
    stats: LineStats,
}

impl LogParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> &LineStats {
        &self.stats
    }

    /// One raw line of a text log (dmesg, syslog, `journalctl`'s text
    /// formats), without its `\n`; `cut` if [`read_line_capped`] cut it.
    pub fn push_raw(&mut self, line_no: usize, raw: &[u8], cut: bool, out: &mut Vec<HostItem>) {
        self.stats.lines += 1;
        self.stats.cut += usize::from(cut);
        let raw = if line_no == 1 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.stats.nonblank += 1;
        let Some(text) = self.decode(line_no, raw) else {
            return;
        };
        let p = split_prefix(&text);
        if p.ident.is_some_and(|id| id != "kernel") {
            return;
        }
        let line = SourceLine {
            line_no,
            timestamp: p.timestamp,
            text: p.message.to_string(),
        };
        self.route(p.host, line, out);
    }

    /// One journal entry (`journalctl -o json` / `-o export`) that started on
    /// `line_no`. Entries other programs wrote are skipped; a MESSAGE holding
    /// several lines is read as that many lines.
    pub fn push_entry(&mut self, line_no: usize, entry: &JournalEntry, out: &mut Vec<HostItem>) {
        self.stats.lines += 1;
        self.stats.nonblank += 1;
        if !entry.is_kernel() {
            return;
        }
        let Some(message) = entry.message.as_deref() else {
            self.stats.bad_entries += 1;
            return;
        };
        for piece in message.split(|&b| b == b'\n') {
            let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
            if piece.is_empty() {
                continue;
            }
            let Some(text) = self.decode(line_no, piece) else {
                continue;
            };
            let line = SourceLine {
                line_no,
                timestamp: entry.monotonic_seconds(),
                text: text.into_owned(),
            };
            self.route(entry.hostname.as_deref(), line, out);
        }
    }

    /// End of input: every open report is closed (incomplete), oldest first.
    pub fn finish(&mut self, out: &mut Vec<HostItem>) {
        for host in std::mem::take(&mut self.opened) {
            if let Some(mut parser) = self.open.remove(&host) {
                tag(&host, parser.finish(), out);
            }
        }
        self.open_bytes = 0;
    }

    /// Closes the oldest open report (as incomplete).
    fn evict_oldest(&mut self, out: &mut Vec<HostItem>) {
        if self.opened.is_empty() {
            return;
        }
        let oldest = self.opened.remove(0);
        if let Some(mut old) = self.open.remove(&oldest) {
            self.open_bytes -= old.open_bytes();
            self.stats.hosts_evicted += 1;
            tag(&oldest, old.finish(), out);
        }
    }

    /// The text of a line, or `None` (counted) when it is not text.
    fn decode<'a>(&mut self, line_no: usize, raw: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
        if raw.contains(&0) {
            self.stats.skipped += 1;
            self.stats
                .first_skipped
                .get_or_insert((line_no, "NUL byte"));
            return None;
        }
        let text = String::from_utf8_lossy(raw);
        if matches!(text, std::borrow::Cow::Owned(_)) {
            self.stats.repaired += 1;
        }
        Some(text)
    }

    fn route(&mut self, host: Option<&str>, line: SourceLine, out: &mut Vec<HostItem>) {
        let key = host.unwrap_or("");
        let (items, before, after) = match self.open.get_mut(key) {
            Some(parser) => {
                let before = parser.open_bytes();
                let items = parser.push(line);
                (items, before, parser.open_bytes())
            }
            None => {
                let mut parser = ReportParser::new();
                let items = parser.push(line);
                if parser.has_open_report() {
                    if self.open.len() >= MAX_OPEN_HOSTS {
                        self.evict_oldest(out);
                    }
                    let after = parser.open_bytes();
                    self.open.insert(key.to_owned(), parser);
                    self.opened.push(key.to_owned());
                    (items, 0, after)
                } else {
                    (items, 0, 0)
                }
            }
        };
        self.open_bytes = self.open_bytes - before + after;
        tag(key, items, out);
        if self.open.get(key).is_some_and(|p| !p.has_open_report()) {
            self.open.remove(key);
            self.opened.retain(|h| h != key);
        }
        while self.open_bytes > MAX_OPEN_BYTES {
            self.evict_oldest(out);
        }
    }
}

fn tag(host: &str, items: Vec<ReportItem>, out: &mut Vec<HostItem>) {
    let host = (!host.is_empty()).then(|| host.to_owned());
    out.extend(items.into_iter().map(|mut item| {
        if let ReportItem::Report(r) = &mut item {
            r.host.clone_from(&host);
        }
        HostItem {
            host: host.clone(),
            item,
        }
    }));
}

/// Whole-log convenience over [`LogParser`]: numbers lines (1-based),
/// strips prefixes, skips lines other programs wrote and lines that are not
/// text, and parses to the end. Errors only when nothing OOM-related is in
/// it: [`ReportError::NotText`] when no line was text at all, else
/// [`ReportError::NoOomReport`].
pub fn parse_log(text: &[u8]) -> Result<Vec<ReportItem>, ReportError> {
    let mut reader = text;
    let mut parser = LogParser::new();
    let mut items = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0;
    // Reading a slice cannot fail.
    while let Ok(Some(cut)) = read_line_capped(&mut reader, &mut buf, MAX_LINE_BYTES) {
        line_no += 1;
        parser.push_raw(line_no, &buf, cut, &mut items);
    }
    parser.finish(&mut items);
    if items.is_empty() {
        return Err(parser.stats().nothing_found());
    }
    Ok(items.into_iter().map(|i| i.item).collect())
}

impl LineStats {
    /// The error for a log in which nothing OOM-related was found.
    pub fn nothing_found(&self) -> ReportError {
        match self.first_skipped {
            Some((line, reason)) if self.skipped == self.nonblank => {
                ReportError::NotText { line, reason }
            }
            _ => ReportError::NoOomReport,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_costs_one_line_and_bad_utf8_is_repaired() {
        let mut p = LogParser::new();
        let mut out = Vec::new();
        p.push_raw(1, b"\0\0\0\0 crash", false, &mut out);
        p.push_raw(2, b"ok \xff\xfe", false, &mut out);
        p.push_raw(3, b"   ", false, &mut out);
        p.push_raw(4, b"x\0", false, &mut out);
        let s = p.stats();
        assert_eq!((s.lines, s.nonblank, s.skipped, s.repaired), (4, 3, 2, 1));
        assert_eq!(s.first_skipped, Some((1, "NUL byte")));
        let summary = s.summary().unwrap();
        assert!(summary.contains("2 line(s) skipped") && summary.contains("line 1"));
        assert_eq!(s.nothing_found(), ReportError::NoOomReport);
        let mut only_binary = LogParser::new();
        only_binary.push_raw(1, b"", false, &mut out);
        only_binary.push_raw(2, b"\0\x01", false, &mut out);
        assert_eq!(
            only_binary.stats().nothing_found(),
            ReportError::NotText {
                line: 2,
                reason: "NUL byte"
            }
        );
        assert_eq!(LineStats::default().summary(), None);
    }

    #[test]
    fn open_reports_of_many_hosts_stay_bounded() {
        let mut p = LogParser::new();
        let mut out = Vec::new();
        let header = "x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0";
        let n = MAX_OPEN_HOSTS + 5;
        for i in 0..n {
            let line = format!("Nov 23 18:32:48 h{i} kernel: {header}");
            p.push_raw(i + 1, line.as_bytes(), false, &mut out);
        }
        assert_eq!(p.open.len(), MAX_OPEN_HOSTS);
        assert_eq!(p.stats().hosts_evicted, 5);
        // The oldest were closed first, as incomplete, and said so.
        let hosts: Vec<_> = out.iter().map(|i| i.host.clone().unwrap()).collect();
        assert_eq!(hosts, ["h0", "h1", "h2", "h3", "h4"]);
        assert!(
            p.stats()
                .summary()
                .unwrap()
                .contains("5 report(s) closed early")
        );
        p.finish(&mut out);
        assert_eq!(out.len(), n);
        assert_eq!((p.open.len(), p.open_bytes), (0, 0));

        // Bytes: a few huge reports open at once are closed oldest first.
        let mut p = LogParser::new();
        let mut out = Vec::new();
        let filler = "y".repeat(MAX_LINE_BYTES - 100);
        let mut line_no = 0;
        // More hosts than fit at their own report's cap.
        let hosts: Vec<String> = (0..MAX_OPEN_BYTES / super::super::MAX_REPORT_BYTES + 2)
            .map(|h| format!("h{h}"))
            .collect();
        for host in &hosts {
            line_no += 1;
            let line = format!("Nov 23 18:32:48 {host} kernel: {header}");
            p.push_raw(line_no, line.as_bytes(), false, &mut out);
        }
        for _ in 0..(super::super::MAX_REPORT_BYTES / filler.len() + 10) {
            for host in &hosts {
                line_no += 1;
                let line = format!("Nov 23 18:32:48 {host} kernel: {filler}");
                p.push_raw(line_no, line.as_bytes(), false, &mut out);
                assert!(p.open_bytes <= MAX_OPEN_BYTES);
            }
        }
        assert!(p.stats().hosts_evicted > 0);
        let sum: usize = p.open.values().map(ReportParser::open_bytes).sum();
        assert_eq!(sum, p.open_bytes);
    }
}
