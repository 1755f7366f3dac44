//! Reading decisions back: dumps, saved `--json` output, or a saved kernel
//! log (dmesg, `journalctl -k`, /var/log/messages) rebuilt into decisions —
//! what `oomtrace report` renders, so oomtrace helps even on a node where it
//! was not running.
use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use serde_json::Value;

use crate::{
    dump::DumpDocument,
    model::decision::{Builder, Decision, OfflineEnv, Sources},
    report::{ReportError, parse_log},
};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: corrupt or truncated JSON: {reason}")]
    Json {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {source}")]
    Log { path: PathBuf, source: ReportError },
    #[error("{path}: no oomtrace dump, decision or kernel OOM report in it")]
    Nothing { path: PathBuf },
}

/// Decisions found in one input file, in order.
pub fn load_file(path: &Path) -> Result<Vec<Decision>, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let decisions = if first == Some(&b'{') {
        load_json(path, &bytes)?
    } else {
        load_log(path, &bytes)?
    };
    if decisions.is_empty() {
        return Err(InputError::Nothing {
            path: path.to_owned(),
        });
    }
    Ok(decisions)
}

/// A dump (one document) or saved `--json` output (JSON Lines).
fn load_json(path: &Path, bytes: &[u8]) -> Result<Vec<Decision>, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::Json {
        path: path.to_owned(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not UTF-8".to_owned(),
    })?;
    // A single document (a dump, even pretty-printed by jq) or JSON Lines.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return decisions_of(path, 1, value).map(|d| d.into_iter().collect());
    }
    let mut decisions = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| InputError::Json {
            path: path.to_owned(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        decisions.extend(decisions_of(path, index + 1, value)?);
    }
    Ok(decisions)
}

fn decisions_of(path: &Path, line: usize, value: Value) -> Result<Option<Decision>, InputError> {
    let json_error = |e: serde_json::Error| InputError::Json {
        path: path.to_owned(),
        line,
        reason: e.to_string(),
    };
    match value.get("type").and_then(Value::as_str) {
        Some("dump") => {
            let dump: DumpDocument = serde_json::from_value(value).map_err(json_error)?;
            Ok(Some(dump.decision))
        }
        Some("decision") => Ok(Some(serde_json::from_value(value).map_err(json_error)?)),
        // start / lost / oom_stall records of saved output carry no decision.
        Some(_) => Ok(None),
        None => Err(InputError::Json {
            path: path.to_owned(),
            line,
            reason: "record has no \"type\"".to_owned(),
        }),
    }
}

/// Rebuilds decisions from the kernel's reports in a saved log.
fn load_log(path: &Path, bytes: &[u8]) -> Result<Vec<Decision>, InputError> {
    let items = parse_log(bytes).map_err(|source| match source {
        ReportError::NoOomReport => InputError::Nothing {
            path: path.to_owned(),
        },
        source => InputError::Log {
            path: path.to_owned(),
            source,
        },
    })?;
    let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
    // The log is complete: everything is due at once.
    let at = Instant::now();
    for item in items {
        builder.on_report(at, item);
    }
    let mut env = OfflineEnv {
        page_size: crate::base::host::page_size() as u64,
    };
    Ok(builder.flush(&mut env))
}

/// Expands directories into their dump files (time order).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let listed =
                crate::dump::DumpWriter::list(path).map_err(|source| InputError::Read {
                    path: path.clone(),
                    source,
                })?;
            if listed.is_empty() {
                return Err(InputError::Nothing { path: path.clone() });
            }
            files.extend(listed);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}
