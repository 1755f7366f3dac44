//! Reading decisions back: dumps, saved `--json` output, or a saved kernel
//! log (dmesg, `journalctl -k`, `journalctl -o json`, `journalctl -o
//! export`, /var/log/messages) rebuilt into decisions — what `oomtrace
//! report` renders, so oomtrace helps even on a node where it was not
//! running.
//!
//! Inputs are untrusted and may be huge: only regular files are opened (a
//! FIFO, a device or a socket is refused before it is read, and opened
//! non-blocking so that a swap in between cannot hang us), and files are
//! streamed — one line at a time into the kernel-report parser, each decision
//! handed to the caller as soon as it is rebuilt — so memory does not grow
//! with the file.
use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufRead, BufReader, Read as _},
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    time::Instant,
};

use serde_json::Value;

use crate::{
    base::{
        SCHEMA_VERSION,
        lines::read_line_capped,
        text::{Escaped, escape_path},
    },
    dump::DumpDocument,
    model::decision::{Builder, Decision, OfflineEnv, Sources},
    report::{
        ReportError, ReportItem,
        journal::{ExportError, ExportReader, JournalEntry, looks_like_export},
        log::{HostItem, LineStats, LogParser, MAX_LINE_BYTES},
    },
};

/// An input being read: a regular file, or standard input.
type Reader<'a> = BufReader<Box<dyn io::Read + 'a>>;

/// Longest JSON line (one dump or decision) read; a dump of a global OOM on
/// a large machine is a few MiB.
pub const MAX_JSON_BYTES: usize = 256 << 20;

/// Kernel-log items fed to one host's rebuild before it is flushed even
/// without a new report (a storm of kill lines without reports).
const FLUSH_EVERY: usize = 1024;

/// Hosts rebuilt at once; past this every rebuild is flushed and dropped
/// (only the per-memcg repeat history is lost).
const MAX_HOSTS: usize = 1024;

/// Why one input could not be read. Every message is one line and names the
/// path, escaped for a terminal.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {source}", escape_path(path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A FIFO, device, socket or directory where a file was expected.
    #[error(
        "{}: not a regular file ({kind}); give a saved log or dump",
        escape_path(path)
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{}:{line}: corrupt or truncated JSON: {}",
        escape_path(path),
        Escaped(reason)
    )]
    Json {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A record written by a newer oomtrace than this one.
    #[error(
        "{}:{line}: written with schema_version {found}, this oomtrace reads up to {known}; use a newer oomtrace",
        escape_path(path)
    )]
    NewerSchema {
        path: PathBuf,
        line: usize,
        found: u64,
        known: u32,
    },
    /// A dump or decision holding a number no machine has (a size past
    /// 64 PiB): corrupt or forged, and not worth rendering.
    #[error(
        "{}:{line}: implausible record: {}",
        escape_path(path),
        Escaped(reason)
    )]
    Implausible {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: {source}", escape_path(path))]
    Log { path: PathBuf, source: ReportError },
    #[error(
        "{}:{line}: corrupt journal export: {}",
        escape_path(path),
        Escaped(reason)
    )]
    Export {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: no oomtrace dump, decision or kernel OOM report in it{}", escape_path(path), note.as_deref().map_or(String::new(), |n| format!(" ({n})")))]
    Nothing { path: PathBuf, note: Option<String> },
}

/// How reading one file ended: the input's fault, or the caller's sink's
/// (a write error while rendering, which must stop everything).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Sink(io::Error),
}

/// What one file gave, beyond its decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub decisions: usize,
    /// Kernel-log lines skipped, repaired or cut (see [`LineStats`]).
    pub lines: LineStats,
}

impl ReadSummary {
    /// One line about what the input cost, or `None` when nothing was lost.
    pub fn warning(&self) -> Option<String> {
        self.lines.summary()
    }
}

/// Decisions found in one input file, in order (all in memory: prefer
/// [`read_file`] for large inputs).
pub fn load_file(path: &Path) -> Result<Vec<Decision>, InputError> {
    let mut decisions = Vec::new();
    read_file(path, &mut |d| {
        decisions.push(d);
        Ok(())
    })
    .map_err(|e| match e {
        ReadError::Input(e) => e,
        ReadError::Sink(source) => InputError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    Ok(decisions)
}

/// Streams the decisions of one input file to `sink`, in order. A sink error
/// stops reading and comes back as [`ReadError::Sink`].
pub fn read_file(
    path: &Path,
    sink: &mut dyn FnMut(Decision) -> io::Result<()>,
) -> Result<ReadSummary, ReadError> {
    read_file_by_host(path, &mut |decision, _| sink(decision))
}

/// [`read_file`], with the host each decision comes from where the input
/// names it: a dump's host name, a syslog line's or journal entry's host.
pub fn read_file_by_host(
    path: &Path,
    sink: &mut dyn FnMut(Decision, Option<&str>) -> io::Result<()>,
) -> Result<ReadSummary, ReadError> {
    let file = open_regular(path)?;
    read_stream(path, Box::new(file), sink)
}

/// Like [`read_file`], from an input already open (`oomtrace report -`
/// reads standard input); `path` names it in messages.
pub fn read_stream(
    path: &Path,
    input: Box<dyn io::Read + '_>,
    sink: &mut dyn FnMut(Decision, Option<&str>) -> io::Result<()>,
) -> Result<ReadSummary, ReadError> {
    let mut reader: Reader<'_> = BufReader::with_capacity(256 << 10, input);
    let read_error = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    // A BOM and leading blank lines tell nothing; count the lines.
    if reader
        .fill_buf()
        .map_err(read_error)?
        .starts_with(b"\xEF\xBB\xBF")
    {
        reader.consume(3);
    }
    let mut first_line = 1;
    loop {
        let buf = reader.fill_buf().map_err(read_error)?;
        let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        // Whole blank lines only: a first line's own leading spaces stay.
        let Some(last_newline) = buf[..blank].iter().rposition(|&b| b == b'\n') else {
            break;
        };
        first_line += buf[..=last_newline].iter().filter(|&&b| b == b'\n').count();
        reader.consume(last_newline + 1);
    }
    let start = reader.fill_buf().map_err(read_error)?;
    let start = &start[start.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let mut out = Output::new(path, sink);
    if start.first() == Some(&b'{') {
        read_json(path, reader, first_line, &mut out)?;
    } else if looks_like_export(start) {
        read_export(path, reader, first_line, &mut out)?;
    } else {
        read_log(path, reader, first_line, &mut out)?;
    }
    out.finish()?;
    if out.decisions == 0 {
        return Err(out.nothing().into());
    }
    Ok(ReadSummary {
        decisions: out.decisions,
        lines: out.parser.stats().clone(),
    })
}

/// Opens `path` only if it is a regular file (following symlinks), without
/// ever blocking in `open` on a FIFO.
fn open_regular(path: &Path) -> Result<File, InputError> {
    let read_error = |source| InputError::Read {
        path: path.to_owned(),
        source,
    };
    let not_regular = |t: std::fs::FileType| InputError::NotRegular {
        path: path.to_owned(),
        kind: kind_of(t),
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    // Swapped for a FIFO since: O_NONBLOCK keeps open from waiting for a
    // writer, and the descriptor is checked again.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok(file)
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

/// Where items and decisions of one file go: decisions from dumps straight
/// to the sink, kernel-log items through one rebuild per host.
struct Output<'a> {
    path: &'a Path,
    sink: &'a mut dyn FnMut(Decision, Option<&str>) -> io::Result<()>,
    parser: LogParser,
    items: Vec<HostItem>,
    hosts: Vec<Rebuild>,
    by_host: HashMap<Option<String>, usize>,
    env: OfflineEnv,
    decisions: usize,
    /// Renumbers the rebuilt decisions across hosts.
    seq: u64,
}

/// The decision rebuild of one host's kernel log.
struct Rebuild {
    builder: Builder,
    fed: usize,
    host: Option<String>,
}

impl<'a> Output<'a> {
    fn new(
        path: &'a Path,
        sink: &'a mut dyn FnMut(Decision, Option<&str>) -> io::Result<()>,
    ) -> Self {
        Output {
            path,
            sink,
            parser: LogParser::new(),
            items: Vec::new(),
            hosts: Vec::new(),
            by_host: HashMap::new(),
            env: OfflineEnv::new(crate::base::host::page_size() as u64),
            decisions: 0,
            seq: 0,
        }
    }

    fn decision(&mut self, decision: Decision, host: Option<&str>) -> Result<(), ReadError> {
        self.decisions += 1;
        (self.sink)(decision, host).map_err(ReadError::Sink)
    }

    /// Hands the parser's items to their hosts' rebuilds. Each rebuild is
    /// flushed before a new report (the previous OOM's kill, group sweep and
    /// reaper lines come before the next report starts), so decisions leave
    /// as the log is read and none waits for the end of the file.
    fn drain(&mut self) -> Result<(), ReadError> {
        // The log is complete: everything is due at once.
        let at = Instant::now();
        let items = std::mem::take(&mut self.items);
        for HostItem { host, item } in items {
            let index = match self.by_host.get(&host) {
                Some(&i) => i,
                None => {
                    if self.hosts.len() >= MAX_HOSTS {
                        for index in 0..self.hosts.len() {
                            self.flush(index)?;
                        }
                        self.hosts.clear();
                        self.by_host.clear();
                    }
                    self.hosts.push(Rebuild {
                        builder: Builder::new(Sources::KERNEL_REPORT, Vec::new()),
                        fed: 0,
                        host: host.clone(),
                    });
                    self.by_host.insert(host, self.hosts.len() - 1);
                    self.hosts.len() - 1
                }
            };
            if matches!(item, ReportItem::Report(_)) || self.hosts[index].fed >= FLUSH_EVERY {
                self.flush(index)?;
            }
            let rebuild = &mut self.hosts[index];
            rebuild.fed += 1;
            rebuild.builder.on_report(at, item);
        }
        Ok(())
    }

    fn flush(&mut self, index: usize) -> Result<(), ReadError> {
        let rebuild = &mut self.hosts[index];
        rebuild.fed = 0;
        let host = rebuild.host.clone();
        for mut decision in rebuild.builder.flush(&mut self.env) {
            self.seq += 1;
            decision.seq = self.seq;
            self.decision(decision, host.as_deref())?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReadError> {
        let mut items = std::mem::take(&mut self.items);
        self.parser.finish(&mut items);
        self.items = items;
        self.drain()?;
        for index in 0..self.hosts.len() {
            self.flush(index)?;
        }
        Ok(())
    }

    fn nothing(&self) -> InputError {
        let stats = self.parser.stats();
        match stats.nothing_found() {
            ReportError::NotText { line, reason } if stats.nonblank > 0 => InputError::Log {
                path: self.path.to_owned(),
                source: ReportError::NotText { line, reason },
            },
            _ => InputError::Nothing {
                path: self.path.to_owned(),
                note: stats.summary(),
            },
        }
    }
}

/// A dump (one document, possibly pretty-printed), saved `--json` output
/// (JSON Lines), or `journalctl -o json` (one entry per line).
fn read_json(
    path: &Path,
    mut reader: Reader<'_>,
    first_line: usize,
    out: &mut Output<'_>,
) -> Result<(), ReadError> {
    let json_error = |line: usize, reason: String| InputError::Json {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut line_no = first_line - 1;
    let mut records = 0usize;
    while let Some(cut) =
        read_line_capped(&mut reader, &mut buf, MAX_JSON_BYTES).map_err(|source| {
            InputError::Read {
                path: path.to_owned(),
                source,
            }
        })?
    {
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if cut {
            return Err(json_error(
                line_no,
                format!("line longer than {} MiB", MAX_JSON_BYTES >> 20),
            )
            .into());
        }
        let value = match serde_json::from_slice::<Value>(&buf) {
            Ok(value) => value,
            // The first record spans lines: a pretty-printed dump, or
            // `journalctl -o json-pretty` (one multi-line object after
            // another). Read on as a stream of documents.
            Err(e) if records == 0 && e.is_eof() => {
                let more = !reader
                    .fill_buf()
                    .map_err(|source| InputError::Read {
                        path: path.to_owned(),
                        source,
                    })?
                    .is_empty();
                if more {
                    buf.push(b'\n');
                }
                let rest = io::Cursor::new(std::mem::take(&mut buf)).chain(reader);
                let mut stream = serde_json::Deserializer::from_reader(rest).into_iter::<Value>();
                for value in &mut stream {
                    let value = value.map_err(|e| {
                        json_error(line_no + e.line().saturating_sub(1), e.to_string())
                    })?;
                    record(path, line_no, value, out)?;
                }
                return Ok(());
            }
            Err(e) => return Err(json_error(line_no, e.to_string()).into()),
        };
        records += 1;
        record(path, line_no, value, out)?;
    }
    Ok(())
}

/// One JSON record: ours (by `type`), or a journal entry.
fn record(path: &Path, line: usize, value: Value, out: &mut Output<'_>) -> Result<(), ReadError> {
    let json_error = |reason: String| InputError::Json {
        path: path.to_owned(),
        line,
        reason,
    };
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        if let Some(entry) = JournalEntry::from_json(&value) {
            let mut items = std::mem::take(&mut out.items);
            out.parser.push_entry(line, &entry, &mut items);
            out.items = items;
            return out.drain();
        }
        return Err(
            json_error("record has no \"type\" (and is no journal entry)".to_owned()).into(),
        );
    };
    if let Some(found) = value.get("schema_version").and_then(Value::as_u64)
        && found > u64::from(SCHEMA_VERSION)
    {
        return Err(InputError::NewerSchema {
            path: path.to_owned(),
            line,
            found,
            known: SCHEMA_VERSION,
        }
        .into());
    }
    let decision = match kind {
        "dump" => value.get("decision"),
        "decision" => Some(&value),
        _ => None,
    };
    if let Some(decision) = decision
        && let Err(reason) = check_plausible(decision, &mut String::new())
    {
        return Err(InputError::Implausible {
            path: path.to_owned(),
            line,
            reason,
        }
        .into());
    }
    match kind {
        "dump" => {
            let dump: DumpDocument =
                serde_json::from_value(value).map_err(|e| json_error(e.to_string()))?;
            out.decision(dump.decision, dump.host.hostname.as_deref())
        }
        "decision" => {
            let decision = serde_json::from_value(value).map_err(|e| json_error(e.to_string()))?;
            out.decision(decision, None)
        }
        // start / lost / oom_stall records of saved output carry no decision.
        _ => Ok(()),
    }
}

/// In a decision, sizes of tasks and machines (`*_bytes`) at most 64 PiB
/// and totalpages at most 2^53 (an unlimited memcg in pages, plus swap):
/// what a real decision can say. Limits stay unchecked (`u64::MAX` is how a
/// live v2 `max` reads). Anything past that would only overflow whatever
/// adds or scales it.
fn check_plausible(value: &Value, at: &mut String) -> Result<(), String> {
    const MAX_SIZE: u64 = 1 << 56;
    const MAX_TOTALPAGES: u64 = 1 << 53;
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                let bound = if key.ends_with("limit_bytes") {
                    None
                } else if key.ends_with("_bytes") {
                    Some(MAX_SIZE)
                } else if key == "totalpages" {
                    Some(MAX_TOTALPAGES)
                } else {
                    None
                };
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(key);
                if let (Some(bound), Value::Number(n)) = (bound, field)
                    && n.as_u64().is_none_or(|n| n > bound)
                {
                    return Err(format!("{at} is {n}, more than any machine has"));
                }
                check_plausible(field, at)?;
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("[{index}]"));
                check_plausible(item, at)?;
                at.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `journalctl -o export`.
fn read_export(
    path: &Path,
    reader: Reader<'_>,
    first_line: usize,
    out: &mut Output<'_>,
) -> Result<(), ReadError> {
    let mut entries = ExportReader::new(reader, first_line);
    loop {
        let next = entries.next_entry().map_err(|source| match source {
            ExportError::Io(source) => InputError::Read {
                path: path.to_owned(),
                source,
            },
            ExportError::Corrupt { line, reason } => InputError::Export {
                path: path.to_owned(),
                line,
                reason,
            },
        })?;
        let Some((line, entry)) = next else {
            return Ok(());
        };
        let mut items = std::mem::take(&mut out.items);
        out.parser.push_entry(line, &entry, &mut items);
        out.items = items;
        out.drain()?;
    }
}

/// A text kernel log, line by line.
fn read_log(
    path: &Path,
    mut reader: Reader<'_>,
    first_line: usize,
    out: &mut Output<'_>,
) -> Result<(), ReadError> {
    let mut buf = Vec::new();
    let mut line_no = first_line - 1;
    while let Some(cut) =
        read_line_capped(&mut reader, &mut buf, MAX_LINE_BYTES).map_err(|source| {
            InputError::Read {
                path: path.to_owned(),
                source,
            }
        })?
    {
        line_no += 1;
        let mut items = std::mem::take(&mut out.items);
        out.parser.push_raw(line_no, &buf, cut, &mut items);
        out.items = items;
        if !out.items.is_empty() {
            out.drain()?;
        }
    }
    Ok(())
}

/// One input named on the command line: a file, or a dump directory's files
/// (time order).
#[derive(Debug)]
pub enum Input {
    File(PathBuf),
    /// A directory, with its dump files, oldest first.
    Dir(PathBuf, Vec<PathBuf>),
    /// `-`: standard input, read as a stream.
    Stdin,
}

/// Resolves one command-line path (a directory lists its dumps).
pub fn input(path: &Path) -> Result<Input, InputError> {
    if path == Path::new("-") {
        return Ok(Input::Stdin);
    }
    let meta = std::fs::metadata(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(Input::File(path.to_owned()));
    }
    let listed = crate::dump::DumpWriter::list(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    if listed.is_empty() {
        return Err(InputError::Nothing {
            path: path.to_owned(),
            note: Some("a directory without oom-*.json dumps".to_owned()),
        });
    }
    Ok(Input::Dir(path.to_owned(), listed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_error_is_one_line_and_escaped() {
        let e = InputError::Nothing {
            path: PathBuf::from("/tmp/x\n\u{1b}]0;t\u{7}"),
            note: None,
        };
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
        assert!(msg.contains("x\\x0a\\x1b]0;t\\x07"), "{msg}");
    }

    #[test]
    fn json_reasons_quoting_the_input_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        // serde names an unknown enum value raw, between backticks.
        let decision =
            r#"{"type":"decision","schema_version":1,"badness_model":"\u001b]0;x\u0007\n"}"#;
        std::fs::write(&path, decision).unwrap();
        let msg = load_file(&path).unwrap_err().to_string();
        assert!(!msg.contains('\u{1b}') && !msg.contains('\n'), "{msg:?}");
        assert!(msg.contains("d.json:1"), "{msg}");
    }

    #[test]
    fn implausible_sizes_in_a_decision_are_refused_by_name() {
        let ok = serde_json::json!({
            "oom_memcg": { "limit_bytes": u64::MAX, "swap_limit_bytes": u64::MAX, "usage_bytes": 1024 },
            "candidates": [{ "rss_bytes": 1u64 << 56 }],
            "totalpages": 1u64 << 53,
        });
        assert_eq!(check_plausible(&ok, &mut String::new()), Ok(()));
        for (value, named) in [
            (
                serde_json::json!({ "victim": { "rss_anon_bytes": u64::MAX } }),
                "victim.rss_anon_bytes is 18446744073709551615",
            ),
            (
                serde_json::json!({ "candidates": [{}, { "swap_bytes": (1u64 << 56) + 1 }] }),
                "candidates[1].swap_bytes",
            ),
            (
                serde_json::json!({ "totalpages": (1u64 << 53) + 1 }),
                "totalpages",
            ),
            (
                serde_json::json!({ "freed": { "rss_bytes": 1e300 } }),
                "freed.rss_bytes",
            ),
        ] {
            let err = check_plausible(&value, &mut String::new()).unwrap_err();
            assert!(err.contains(named), "{err}");
        }
    }
}
