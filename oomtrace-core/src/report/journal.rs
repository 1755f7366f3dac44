//! The systemd journal's machine formats: `journalctl -o json` (one JSON
//! object per line) and `journalctl -o export` (`KEY=VALUE` lines, entries
//! separated by a blank line, binary fields as `KEY\n<le64 length><bytes>\n`).
//!
//! Only what the report needs is kept from an entry: MESSAGE (a string, or an
//! array of bytes when it is not valid UTF-8), the host, the transport or
//! syslog identifier (to keep only the kernel's lines) and the kernel's own
//! time stamp (`_SOURCE_MONOTONIC_TIMESTAMP`, microseconds since boot: the
//! same clock as dmesg's `[ 12.345678]`). `__REALTIME_TIMESTAMP` is kept too.

use std::io::{self, BufRead, Read as _};

use serde_json::Value;

use crate::base::lines::read_line_capped;

/// Longest binary field value read from an export (a kernel line is < 1 KiB;
/// journald itself refuses fields of more than 64 MiB).
pub const MAX_FIELD_BYTES: u64 = 64 << 20;

/// Longest `KEY=VALUE` line read from an export; longer values are cut.
const MAX_EXPORT_LINE: usize = 1 << 20;

/// One journal entry, as far as the report needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalEntry {
    /// `None`: no MESSAGE, or one that is neither a string nor bytes.
    pub message: Option<Vec<u8>>,
    pub hostname: Option<String>,
    pub transport: Option<String>,
    pub syslog_identifier: Option<String>,
    /// `_SOURCE_MONOTONIC_TIMESTAMP`, else `__MONOTONIC_TIMESTAMP` (µs).
    pub monotonic_us: Option<u64>,
    /// `__REALTIME_TIMESTAMP` (µs since the epoch).
    pub realtime_us: Option<u64>,
}

impl JournalEntry {
    /// Written by the kernel: transport `kernel`, else identifier `kernel`,
    /// else (an export that carries neither) assumed.
    pub fn is_kernel(&self) -> bool {
        match (&self.transport, &self.syslog_identifier) {
            (Some(t), _) => t == "kernel",
            (None, Some(id)) => id == "kernel",
            (None, None) => true,
        }
    }

    /// Seconds since boot, like dmesg's stamp.
    pub fn monotonic_seconds(&self) -> Option<f64> {
        self.monotonic_us.map(|us| us as f64 / 1e6)
    }

    /// Takes one field (text or bytes as the journal gave it).
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        let text = || String::from_utf8(value.clone()).ok();
        let number = || text().and_then(|t| t.trim().parse().ok());
        match key {
            b"MESSAGE" => self.message = Some(value),
            b"_HOSTNAME" => self.hostname = text(),
            b"_TRANSPORT" => self.transport = text(),
            b"SYSLOG_IDENTIFIER" => self.syslog_identifier = text(),
            b"_SOURCE_MONOTONIC_TIMESTAMP" => self.monotonic_us = number().or(self.monotonic_us),
            b"__MONOTONIC_TIMESTAMP" if self.monotonic_us.is_none() => self.monotonic_us = number(),
            b"__REALTIME_TIMESTAMP" => self.realtime_us = number(),
            _ => {}
        }
    }

    /// An entry of `journalctl -o json`, or `None` for an object that is not
    /// one (it has neither MESSAGE nor `__CURSOR`).
    pub fn from_json(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        if !object.contains_key("MESSAGE") && !object.contains_key("__CURSOR") {
            return None;
        }
        let mut entry = JournalEntry::default();
        // `_SOURCE_MONOTONIC_TIMESTAMP` wins whatever the key order.
        let mut keys: Vec<&String> = object.keys().collect();
        keys.sort_by_key(|k| k.as_str() == "_SOURCE_MONOTONIC_TIMESTAMP");
        for key in keys {
            let bytes = match &object[key] {
                Value::String(s) => Some(s.as_bytes().to_vec()),
                // Not valid UTF-8 (or holding control bytes): an array of bytes.
                Value::Array(items) => items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect(),
                // A field repeated in one entry: the first value.
                _ => None,
            };
            match bytes {
                Some(bytes) => entry.set(key.as_bytes(), bytes),
                None if key == "MESSAGE" => {
                    // journalctl prints null for a field too large to show.
                    if let Some(Value::Array(values)) = object.get(key)
                        && let Some(Value::String(first)) = values.first()
                    {
                        entry.set(b"MESSAGE", first.as_bytes().to_vec());
                    }
                }
                None => {}
            }
        }
        Some(entry)
    }
}

/// True when `start` (the first bytes of an input) looks like
/// `journalctl -o export` output, which always begins with `__CURSOR=`
/// (or, with `--output-fields`, another `__` address field).
pub fn looks_like_export(start: &[u8]) -> bool {
    [
        "__CURSOR=",
        "__REALTIME_TIMESTAMP=",
        "__MONOTONIC_TIMESTAMP=",
    ]
    .iter()
    .any(|k| start.starts_with(k.as_bytes()))
}

/// Why an export could not be read on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line}: corrupt journal export: {reason}")]
    Corrupt { line: usize, reason: String },
}

/// Reads `journalctl -o export` entry by entry.
pub struct ExportReader<R> {
    reader: R,
    /// Lines consumed so far (newlines inside binary values count too, so
    /// that numbers match the file).
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> ExportReader<R> {
    /// `first_line`: the number of the reader's first line in the file.
    pub fn new(reader: R, first_line: usize) -> Self {
        Self {
            reader,
            line: first_line.saturating_sub(1),
            buf: Vec::new(),
        }
    }

    /// The next entry and the line it started on; `Ok(None)` at the end.
    pub fn next_entry(&mut self) -> Result<Option<(usize, JournalEntry)>, ExportError> {
        let mut entry = JournalEntry::default();
        let mut start = None;
        loop {
            let Some(_cut) = read_line_capped(&mut self.reader, &mut self.buf, MAX_EXPORT_LINE)?
            else {
                // End of input: a last entry without its blank line counts.
                return Ok(start.map(|s| (s, entry)));
            };
            self.line += 1;
            if self.buf.is_empty() {
                match start {
                    Some(s) => return Ok(Some((s, entry))),
                    None => continue,
                }
            }
            let line = self.line;
            start.get_or_insert(line);
            if let Some(eq) = self.buf.iter().position(|&b| b == b'=') {
                let value = self.buf[eq + 1..].to_vec();
                let key = self.buf[..eq].to_vec();
                entry.set(&key, value);
                continue;
            }
            let key = std::mem::take(&mut self.buf);
            let value = self.binary_value(&key, line)?;
            entry.set(&key, value);
            self.buf = key;
        }
    }

    /// The value of a binary field whose name line `key` was just read (at
    /// `line`): a little-endian u64 length, the bytes, then `\n`. Only the
    /// fields an entry keeps are held in memory; the rest are skipped.
    fn binary_value(&mut self, key: &[u8], line: usize) -> Result<Vec<u8>, ExportError> {
        let corrupt = |reason: String| ExportError::Corrupt { line, reason };
        if !key
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(corrupt(format!(
                "\"{}\" is neither KEY=VALUE nor a binary field name",
                crate::base::text::Escaped(&String::from_utf8_lossy(key))
            )));
        }
        let name = String::from_utf8_lossy(key).into_owned();
        let mut len = [0u8; 8];
        self.reader
            .read_exact(&mut len)
            .map_err(|_| corrupt(format!("binary field {name} cut off in its length")))?;
        self.line += len.iter().filter(|&&b| b == b'\n').count();
        let len = u64::from_le_bytes(len);
        if len > MAX_FIELD_BYTES {
            return Err(corrupt(format!(
                "binary field {name} claims {len} bytes (more than {} MiB)",
                MAX_FIELD_BYTES >> 20
            )));
        }
        let wanted = matches!(
            key,
            b"MESSAGE" | b"_HOSTNAME" | b"_TRANSPORT" | b"SYSLOG_IDENTIFIER"
        );
        let mut value = Vec::new();
        let got = if wanted {
            (&mut self.reader).take(len).read_to_end(&mut value)?
        } else {
            let mut newlines = CountNewlines(0);
            let n = io::copy(&mut (&mut self.reader).take(len), &mut newlines)? as usize;
            self.line += newlines.0;
            n
        };
        if got as u64 != len {
            return Err(corrupt(format!("binary field {name} cut off")));
        }
        self.line += value.iter().filter(|&&b| b == b'\n').count();
        let mut end = [0u8; 1];
        match self.reader.read_exact(&mut end) {
            Ok(()) if end[0] == b'\n' => self.line += 1,
            Ok(()) => {
                return Err(corrupt(format!(
                    "binary field {name} is not followed by a newline"
                )));
            }
            Err(_) => return Err(corrupt(format!("binary field {name} cut off"))),
        }
        Ok(value)
    }
}

/// A sink that counts the newlines written to it.
struct CountNewlines(usize);

impl io::Write for CountNewlines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.iter().filter(|&&b| b == b'\n').count();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_field(key: &str, value: &[u8]) -> Vec<u8> {
        let mut v = key.as_bytes().to_vec();
        v.push(b'\n');
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    #[test]
    fn json_entries_text_and_bytes() {
        let v: Value = serde_json::from_str(
            r#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1700000000000000","_SOURCE_MONOTONIC_TIMESTAMP":"1534287964","__MONOTONIC_TIMESTAMP":"1534290000","_TRANSPORT":"kernel","_HOSTNAME":"node-a","MESSAGE":"hello"}"#,
        )
        .unwrap();
        let e = JournalEntry::from_json(&v).unwrap();
        assert_eq!(e.message.as_deref(), Some(&b"hello"[..]));
        assert_eq!(e.hostname.as_deref(), Some("node-a"));
        assert_eq!(e.monotonic_us, Some(1_534_287_964));
        assert_eq!(e.realtime_us, Some(1_700_000_000_000_000));
        assert!(e.is_kernel());
        let v: Value =
            serde_json::from_str(r#"{"MESSAGE":[104,105,255,10,0],"_TRANSPORT":"syslog"}"#)
                .unwrap();
        let e = JournalEntry::from_json(&v).unwrap();
        assert_eq!(e.message.as_deref(), Some(&[104, 105, 255, 10, 0][..]));
        assert!(!e.is_kernel());
        let v: Value = serde_json::from_str(r#"{"MESSAGE":null}"#).unwrap();
        assert_eq!(JournalEntry::from_json(&v).unwrap().message, None);
        let v: Value = serde_json::from_str(r#"{"MESSAGE":[1,300]}"#).unwrap();
        assert_eq!(JournalEntry::from_json(&v).unwrap().message, None);
        let v: Value = serde_json::from_str(r#"{"type":"decision"}"#).unwrap();
        assert_eq!(JournalEntry::from_json(&v), None);
    }

    #[test]
    fn export_text_and_binary_fields() {
        let mut input = b"__CURSOR=s=1\n__REALTIME_TIMESTAMP=17\n_TRANSPORT=kernel\n".to_vec();
        input.extend(export_field("MESSAGE", b"two\nlines \x1b"));
        input.extend(export_field("_SOME_BLOB", b"\n\n\n"));
        input.extend(b"_HOSTNAME=h1\n\n__CURSOR=s=2\nMESSAGE=second\n");
        assert!(looks_like_export(&input));
        let mut r = ExportReader::new(&input[..], 1);
        let (line, e) = r.next_entry().unwrap().unwrap();
        assert_eq!(line, 1);
        assert_eq!(e.message.as_deref(), Some(&b"two\nlines \x1b"[..]));
        assert_eq!(
            (e.hostname.as_deref(), e.realtime_us),
            (Some("h1"), Some(17))
        );
        let (line, e) = r.next_entry().unwrap().unwrap();
        let second = input
            .windows(12)
            .position(|w| w == b"__CURSOR=s=2")
            .unwrap();
        let newlines_before = input[..second].iter().filter(|&&b| b == b'\n').count();
        assert_eq!(line, newlines_before + 1);
        assert_eq!(e.message.as_deref(), Some(&b"second"[..]));
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn corrupt_exports_are_errors_not_hangs() {
        let mut huge = b"__CURSOR=x\nMESSAGE\n".to_vec();
        huge.extend(u64::MAX.to_le_bytes());
        let err = ExportReader::new(&huge[..], 1).next_entry().unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("claims"), "{err}");
        let mut short = b"MESSAGE\n".to_vec();
        short.extend(10u64.to_le_bytes());
        short.extend(b"abc");
        let err = ExportReader::new(&short[..], 1).next_entry().unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
        let err = ExportReader::new(&b"not export\n"[..], 1)
            .next_entry()
            .unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
    }
}
