//! Kills the kernel logged while oomtrace was not running (`--state-dir`):
//! the kernel log is read from the record after the one the previous run
//! saved (`state.rs`), before the tracer attaches, and every OOM
//! report in it becomes a decision rebuilt from the report alone, as
//! `oomtrace report` rebuilds a saved log, marked `"recovered": true`.
//! Records the kernel overwrote meanwhile are a `lost` record
//! (`kmsg_wrapped`), never a silent hole. The same `/dev/kmsg` descriptor
//! then goes on as the live kernel log: nothing falls between the two.
use std::{path::Path, time::Instant};

use anyhow::Result;
use oomtrace_core::{
    base::{Envelope, host::page_size},
    cgroup::{ScopeCgroup, container::Container, runtimes::NodeNames},
    model::decision::{Builder, Decision, Environment, Sources},
    output::{LostRecord, RecordSink, RecoveryStatus},
    report::{ReportItem, ReportParser, SourceLine},
};

use crate::{
    commands::run::{
        env::wall_time_of,
        state::{Position, Resume, StateFile},
    },
    kernel::kmsg::{Kmsg, KmsgRead, KmsgRecord},
};

/// The `lost` record's source for records overwritten between two runs.
pub const KMSG_WRAPPED: &str = "kmsg_wrapped";

/// The recovery in progress: opened before the tracer, finished after.
pub struct Recovery {
    pub state: StateFile,
    resume: Resume,
    kmsg: Option<Kmsg>,
    /// Why `/dev/kmsg` could not be opened.
    kmsg_error: Option<std::io::Error>,
    parser: ReportParser,
    items: Vec<ReportItem>,
    /// The first record read, and the records overwritten before it.
    from_seq: Option<u64>,
    lost: u64,
    /// The last record read (recovered or skipped).
    last_seq: Option<u64>,
}

/// What the recovery gives the session.
pub struct Recovered {
    pub state: StateFile,
    /// `/dev/kmsg`, positioned after the last record recovered; or why
    /// it could not be opened.
    pub kmsg: Result<Kmsg, std::io::Error>,
    /// Where the live run starts in the log.
    pub position: Position,
    pub status: RecoveryStatus,
    pub decisions: Vec<Decision>,
    pub lost: Option<LostRecord>,
    /// Why the state could not be used.
    pub warning: Option<String>,
}

impl Recovery {
    /// Before the tracer attaches: reads the state and the kernel log up to
    /// now. With no usable state the log is read only to learn where it
    /// ends (its kills are not recovered).
    pub fn begin(state_dir: &Path, boot_id: &str) -> Result<Self> {
        let (state, resume) = StateFile::open(state_dir, boot_id)?;
        let opened = match &resume {
            Resume::After { seq, .. } => Kmsg::open_after(Path::new("/dev/kmsg"), *seq),
            _ => Kmsg::open_at_start(Path::new("/dev/kmsg")),
        };
        let (kmsg, kmsg_error) = match opened {
            Ok(kmsg) => (Some(kmsg), None),
            Err(error) => (None, Some(error)),
        };
        let mut recovery = Recovery {
            state,
            resume,
            kmsg,
            kmsg_error,
            parser: ReportParser::new(),
            items: Vec::new(),
            from_seq: None,
            lost: 0,
            last_seq: None,
        };
        recovery.read(false);
        Ok(recovery)
    }

    /// After the tracer attached: the rest of a report the kernel was
    /// printing at the cut, then every report rebuilt (in `scope`), numbered
    /// from 1, without those the previous run emitted.
    pub fn finish(
        mut self,
        scope: &[ScopeCgroup],
        release: &str,
        names: &mut NodeNames,
    ) -> Recovered {
        self.read(true);
        self.items.extend(self.parser.finish());
        let decisions = self.rebuild(scope, release, names);
        let status = RecoveryStatus {
            state: self.resume.name(),
            from_seq: self.from_seq,
            lost_records: self.lost,
            recovered: decisions.len() as u64,
        };
        let lost = (self.lost > 0).then(|| LostRecord {
            envelope: Envelope::now("lost"),
            source: KMSG_WRAPPED.to_owned(),
            count: self.lost,
            total: self.lost,
        });
        let warning = match &self.resume {
            Resume::Invalid(why) => Some(format!("{why}: nothing recovered")),
            _ => None,
        };
        let kmsg = match (self.kmsg, self.kmsg_error) {
            (Some(kmsg), _) => Ok(kmsg),
            (None, Some(error)) => Err(error),
            (None, None) => Err(std::io::Error::other("not opened")),
        };
        Recovered {
            state: self.state,
            kmsg,
            position: Position::after(self.last_seq.or(match self.resume {
                Resume::After { seq, .. } => Some(seq),
                _ => None,
            })),
            status,
            decisions,
            lost,
            warning,
        }
    }

    /// Reads the log as far as it goes now; with `rest_of_report`, only
    /// while the parser holds a report open (the lines after it are live).
    fn read(&mut self, rest_of_report: bool) {
        let Some(kmsg) = self.kmsg.as_mut() else {
            return;
        };
        let recovering = matches!(self.resume, Resume::After { .. });
        loop {
            if rest_of_report && !self.parser.has_open_report() {
                return;
            }
            let read = match kmsg.try_next() {
                Ok(Some(read)) => read,
                Ok(None) => return,
                Err(_) => {
                    // The live loop reads it again and says why it fails.
                    return;
                }
            };
            match read {
                KmsgRead::Lost(count) if recovering => {
                    self.lost += count;
                    self.items.extend(self.parser.finish());
                }
                KmsgRead::Lost(_) => {}
                KmsgRead::Record(record) => {
                    self.from_seq.get_or_insert(record.seq);
                    self.last_seq = Some(record.seq);
                    if recovering {
                        self.items.extend(self.parser.push(source_line(record)));
                    }
                }
            }
        }
    }

    /// The decisions of the reports read, as `oomtrace report` builds them.
    fn rebuild(
        &mut self,
        scope: &[ScopeCgroup],
        release: &str,
        names: &mut NodeNames,
    ) -> Vec<Decision> {
        let Resume::After { emitted, .. } = &self.resume else {
            return Vec::new();
        };
        let mut env = RecoveryEnv {
            page_size: page_size() as u64,
            release,
            names,
        };
        let items = std::mem::take(&mut self.items);
        recovered_decisions(items, emitted, scope, &mut env)
    }
}

/// Every report among `items` rebuilt (in `scope`), except those beginning
/// at a line in `emitted`, marked recovered and numbered from 1.
fn recovered_decisions(
    items: Vec<ReportItem>,
    emitted: &[u64],
    scope: &[ScopeCgroup],
    env: &mut dyn Environment,
) -> Vec<Decision> {
    let mut builder = Builder::new(Sources::KERNEL_REPORT, scope.to_vec());
    let now = Instant::now();
    for item in items {
        builder.on_report(now, item);
    }
    let mut decisions: Vec<Decision> = builder
        .flush(env)
        .into_iter()
        .filter(|d| !d.log_line.is_some_and(|l| emitted.contains(&(l as u64))))
        .collect();
    for (index, decision) in decisions.iter_mut().enumerate() {
        decision.seq = index as u64 + 1;
        decision.recovered = true;
        decision.explanation.insert(
            0,
            "Recovered at start-up from the kernel log: oomtrace was not running at this kill, so this decision is the kernel's report alone (no hook saw it; no exit, reaper or reclaim data).".to_owned(),
        );
    }
    decisions
}

/// The session's records of the recovery: any loss first, then the
/// decisions, in kill order (the start record is already out).
pub fn report(recovered: &mut Recovered, out: &mut dyn RecordSink) -> Result<()> {
    if let Some(warning) = recovered.warning.take() {
        out.warning(&warning)?;
    }
    if let Some(lost) = recovered.lost.take() {
        out.lost(&lost)?;
    }
    Ok(())
}

fn source_line(record: KmsgRecord) -> SourceLine {
    SourceLine {
        line_no: record.seq as usize,
        timestamp: Some(record.usec as f64 / 1e6),
        text: record.text,
    }
}

/// What a recovered kill can draw on: the report, this boot's clocks, the
/// node's facts and container names; nothing read now about the memcgs
/// (their state now is not theirs at the kill).
struct RecoveryEnv<'a> {
    page_size: u64,
    release: &'a str,
    names: &'a mut NodeNames,
}

impl Environment for RecoveryEnv<'_> {
    fn page_size(&self) -> u64 {
        self.page_size
    }
    fn kernel_release(&self) -> Option<String> {
        Some(self.release.to_owned())
    }
    fn wall_time_of_log_seconds(&self, seconds: f64) -> Option<std::time::SystemTime> {
        wall_time_of(
            libc::CLOCK_MONOTONIC,
            std::time::Duration::from_secs_f64(seconds.max(0.0)),
        )
    }
    fn kubernetes_names(
        &mut self,
        container: &Container,
        memcg: &str,
    ) -> Option<oomtrace_core::cgroup::kubernetes::KubeNames> {
        self.names.kube.resolve(container, memcg)
    }
    fn runtime_names(
        &mut self,
        container: Option<&Container>,
        memcg: &str,
    ) -> Option<oomtrace_core::cgroup::runtimes::RuntimeNames> {
        self.names.runtimes.resolve(container, memcg)
    }
}

#[cfg(test)]
mod tests {
    use oomtrace_core::{model::decision::OfflineEnv, report::parse_log};

    use super::*;

    const LOG: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/kernel-reports/6.1.0-50-amd64-c-v1-many-procs-adj500-vs-grower.log"
    );

    /// The log's reports, with their kill lines' pids and first lines.
    fn reports() -> (Vec<ReportItem>, Vec<(u32, u64)>) {
        let items = parse_log(&std::fs::read(LOG).unwrap()).unwrap();
        let kills = items
            .iter()
            .filter_map(|item| match item {
                ReportItem::Report(r) => Some((r.kill.as_ref()?.pid, r.lines[0].line_no as u64)),
                _ => None,
            })
            .collect();
        (items, kills)
    }

    #[test]
    fn every_report_is_recovered_in_order_but_those_already_emitted() {
        let (items, kills) = reports();
        assert_eq!(kills.len(), 2, "the fixture has two kills: {kills:?}");
        let mut env = OfflineEnv::new(4096);
        let all = recovered_decisions(items.clone(), &[], &[], &mut env);
        let pids: Vec<u32> = all.iter().map(|d| d.victim.as_ref().unwrap().pid).collect();
        assert_eq!(pids, vec![kills[0].0, kills[1].0]);
        assert!(
            all.iter()
                .all(|d| d.recovered && d.backend == "kernel_report")
        );
        assert_eq!(all.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(all[0].explanation[0].starts_with("Recovered at start-up"));

        let rest = recovered_decisions(items, &[kills[0].1], &[], &mut env);
        assert_eq!(rest.len(), 1, "the first was emitted before the restart");
        assert_eq!(rest[0].victim.as_ref().unwrap().pid, kills[1].0);
        assert_eq!(rest[0].seq, 1);
    }
}
