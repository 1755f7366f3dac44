//! `oomtrace report`: dumps, saved `--json` output or saved kernel logs,
//! rendered for a person or re-emitted as JSON Lines.
//!
//! Every input is read on its own: a bad one (unreadable, not a regular file,
//! corrupt, from a newer oomtrace, nothing in it) is named on one line of
//! stderr and the rest are still rendered; the exit status is non-zero if any
//! was bad. Decisions are written as they are rebuilt, so a large log needs
//! no more memory than its largest report. A write error (a full disk) ends
//! the command with one line and a non-zero status; a closed pipe
//! (`oomtrace report … | head`) ends it quietly with success.
//!
//! `--summary` folds every decision into the fleet view
//! (`output::summary`) and prints it once all inputs are read; bad inputs
//! are named as above and counted in it.
use std::{
    io::{self, IsTerminal as _, Write},
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use oomtrace_core::{
    base::text::escape_path,
    cgroup::container,
    dump::read::{
        Input, InputError, ReadError, ReadSummary, input, read_file_by_host, read_stream,
    },
    model::{decision::Decision, episode},
    output::{self, summary::Summary},
};

pub fn run(paths: &[PathBuf], json: bool, top: usize, summary: bool) -> anyhow::Result<u64> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let mut bad = BadInputs::default();
    let mut fleet = summary.then(Summary::new);
    let mut count = 0;
    for path in paths {
        let files = match input(path) {
            Ok(Input::File(file)) => vec![file],
            Ok(Input::Dir(_, files)) => files,
            Ok(Input::Stdin) => vec![path.clone()],
            Err(error) => {
                bad.push(error.to_string(), fleet.as_mut());
                continue;
            }
        };
        for file in files {
            let mut sink = |decision: Decision, host: Option<&str>| match fleet.as_mut() {
                Some(fleet) => {
                    fleet.add(&attributed(decision), host);
                    Ok(())
                }
                None => write_decision(&mut out, decision, json, top),
            };
            match read_one(&file, &mut sink) {
                Ok(summary) => {
                    count += summary.decisions as u64;
                    if let Some(warning) = summary.warning() {
                        say(&format!("{}: {warning}", escape_path(&file)));
                    }
                }
                Err(ReadError::Input(error)) => bad.push(error.to_string(), fleet.as_mut()),
                Err(ReadError::Sink(error)) => return output_error(error, count),
            }
            if let Some(fleet) = fleet.as_mut() {
                fleet.file_read();
            }
        }
    }
    if let Some(fleet) = &fleet
        && let Err(error) = write_summary(&mut out, fleet, json)
    {
        return output_error(error, count);
    }
    if let Err(error) = out.flush() {
        return output_error(error, count);
    }
    bad.finish()?;
    Ok(count)
}

/// One file, or standard input for `-` (refused when it is a terminal:
/// reading it would wait for typing, not for a log).
fn read_one(
    file: &Path,
    sink: &mut dyn FnMut(Decision, Option<&str>) -> io::Result<()>,
) -> Result<ReadSummary, ReadError> {
    if file != Path::new("-") {
        return read_file_by_host(file, sink);
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(ReadError::Input(InputError::Read {
            path: file.to_owned(),
            source: io::Error::other(
                "standard input is a terminal; pipe a kernel log or dumps into it",
            ),
        }));
    }
    read_stream(file, Box::new(stdin.lock()), sink)
}

/// The fleet view: a table, or one `oom_summary` record per group and an
/// `oom_summary_inputs` record.
fn write_summary(out: &mut impl Write, fleet: &Summary, json: bool) -> io::Result<()> {
    if !json {
        return writeln!(out, "{}", fleet.render());
    }
    for group in fleet.groups() {
        serde_json::to_writer(&mut *out, &group).map_err(io::Error::from)?;
        writeln!(out)?;
    }
    serde_json::to_writer(&mut *out, &fleet.inputs()).map_err(io::Error::from)?;
    writeln!(out)
}

/// The decision with its container (from the victim's memcg path) and its
/// `oom_id` (kept from a dump, made for a rebuilt report).
fn attributed(mut decision: Decision) -> Decision {
    decision.container = decision
        .victim
        .as_ref()
        .and_then(|v| v.memcg.as_deref())
        .and_then(container::attribute);
    if let (Some(c), Some(names)) = (decision.container.as_mut(), &decision.saved_names) {
        names.apply(c);
    }
    episode::offline_id(&mut decision);
    decision
}

fn write_decision(
    out: &mut impl Write,
    decision: Decision,
    json: bool,
    top: usize,
) -> io::Result<()> {
    let decision = attributed(decision);
    if json {
        // `From` keeps the kind of an I/O error (EPIPE stays BrokenPipe).
        serde_json::to_writer(&mut *out, &decision).map_err(io::Error::from)?;
        writeln!(out)
    } else {
        writeln!(out, "{}", output::render_card(&decision, top))?;
        writeln!(out, "{}", output::render_candidate_table(&decision))
    }
}

/// A closed pipe is the reader having seen enough: success, quietly.
/// Anything else (ENOSPC, EIO) means the report is not where it was sent.
fn output_error(error: io::Error, count: u64) -> anyhow::Result<u64> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return Ok(count);
    }
    Err(anyhow!(
        "cannot write the report to standard output: {error}"
    ))
}

/// Bad inputs, one line each on stderr. The last is held back and returned
/// as the command's error, so that the exit status says something was bad
/// without adding a line.
#[derive(Default)]
struct BadInputs {
    last: Option<String>,
}

impl BadInputs {
    /// One more bad input; the summary (if any) counts and names it too.
    fn push(&mut self, message: String, fleet: Option<&mut Summary>) {
        if let Some(fleet) = fleet {
            fleet.bad_file(message.clone());
        }
        if let Some(previous) = self.last.replace(message) {
            say(&previous);
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self.last {
            Some(message) => Err(anyhow!(message)),
            None => Ok(()),
        }
    }
}

/// One line on stderr. Unlike `eprintln!`, a stderr that cannot be written
/// (closed, a full disk) is not a panic: the exit status still tells.
fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "oomtrace: {line}");
}
