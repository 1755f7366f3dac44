//! What a restart keeps (`--state-dir`): this boot's id and the last
//! `/dev/kmsg` record fully decided, so the next run reads the kernel log
//! from the record after it (`recovery.rs`).
//!
//! The saved record is the last one before anything still undecided: the
//! first line of the oldest decision in flight, or of the report being read
//! ([`Position`]). Decisions emitted whose lines lie past it are listed by
//! their first line, so that a restart never emits them again. The file is
//! replaced whole through the dump directory's safe mechanism
//! (`oomtrace_core::dump::private_dir`): when decisions go out (at most
//! every [`SAVE_EVERY`]: a storm's decisions share a write), at most every
//! [`REFRESH`] on wake-ups that happen anyway, and at a clean exit.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use oomtrace_core::{
    dump::private_dir::{PrivateDir, PrivateDirError},
    model::decision::Decision,
    output::RecordSink,
};

const FILE: &str = "kmsg-position.json";
/// Bound on the file read back (a state is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;
/// Bound on the emitted decisions listed past the saved record.
const MAX_EMITTED: usize = 4096;
/// Decisions that went out are saved at most this often (a write is two
/// fsyncs on the loop; in a storm they come every few milliseconds).
pub const SAVE_EVERY: Duration = Duration::from_millis(250);
/// While the log advances without decisions, the saved record follows at
/// most this often (so a crash does not make the next run report, as
/// overwritten, records this one had read).
pub const REFRESH: Duration = Duration::from_secs(60);

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    boot_id: String,
    /// The last `/dev/kmsg` record whose decision (if any) went out.
    seq: u64,
    /// First lines of decisions after `seq` that already went out.
    #[serde(default)]
    emitted: Vec<u64>,
}

/// What the previous run left.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// No state: nothing to recover.
    None,
    /// A state of another boot: its kernel log is gone.
    OtherBoot,
    /// A state that could not be used (a warning says why).
    Invalid(String),
    /// Read the log from the record after `seq`, skipping decisions
    /// beginning at one of `emitted`.
    After { seq: u64, emitted: Vec<u64> },
}

impl Resume {
    /// As the start record says it.
    pub fn name(&self) -> &'static str {
        match self {
            Resume::None => "none",
            Resume::OtherBoot => "other_boot",
            Resume::Invalid(_) => "invalid",
            Resume::After { .. } => "resumed",
        }
    }
}

/// The state file of this run.
pub struct StateFile {
    dir: PrivateDir,
    boot_id: String,
    /// What the file holds (None: not written by this run yet).
    saved: Option<Saved>,
    /// The last write (or attempt).
    saved_at: Option<Instant>,
    /// First log lines of decisions emitted, past the last position saved.
    emitted: Vec<u64>,
    /// Decisions went out since the last save.
    unsaved_decisions: bool,
    /// The last write failed (warned once until one succeeds).
    failing: bool,
}

impl StateFile {
    /// Opens the directory (an unsafe one ends the run, as `--dump-dir`
    /// does) and reads what the previous run left.
    pub fn open(dir: &Path, boot_id: &str) -> Result<(Self, Resume)> {
        let dir = PrivateDir::open("state", dir)?;
        let resume = match dir.read(FILE, MAX_FILE) {
            Ok(None) => Resume::None,
            Ok(Some(bytes)) => resume_from(&bytes, boot_id, &dir),
            Err(error) => Resume::Invalid(error.to_string()),
        };
        let emitted = match &resume {
            Resume::After { emitted, .. } => emitted.clone(),
            _ => Vec::new(),
        };
        let file = StateFile {
            dir,
            boot_id: boot_id.to_owned(),
            saved: None,
            saved_at: None,
            emitted,
            unsaved_decisions: false,
            failing: false,
        };
        Ok((file, resume))
    }

    /// Decisions that went out: their first log lines are kept until the
    /// saved position passes them.
    pub fn emitted(&mut self, decisions: &[Decision]) {
        self.unsaved_decisions |= !decisions.is_empty();
        self.emitted.extend(
            decisions
                .iter()
                .filter_map(|d| d.log_line)
                .map(|line| line as u64),
        );
        if self.emitted.len() > MAX_EMITTED {
            let excess = self.emitted.len() - MAX_EMITTED;
            self.emitted.drain(..excess);
        }
    }

    /// When decisions that went out are to be saved ([`SAVE_EVERY`]);
    /// None when there are none (an idle node has no timer).
    pub fn due_at(&self) -> Option<Instant> {
        self.unsaved_decisions.then(|| {
            self.saved_at
                .map_or_else(Instant::now, |at| at + SAVE_EVERY)
        })
    }

    /// Whether a save is due now: decisions went out (see
    /// [`due_at`](Self::due_at)), or the periodic refresh ([`REFRESH`]).
    pub fn save_due(&self, now: Instant) -> bool {
        self.due_at().is_some_and(|at| at <= now)
            || self.saved_at.is_none_or(|at| at + REFRESH <= now)
    }

    /// Saves `seq` as the last record decided, if anything changed (None:
    /// no record read yet, nothing to save). A failure is a warning (once
    /// until a write succeeds again): tracing goes on, and the next
    /// decision or refresh tries again.
    pub fn save(&mut self, seq: Option<u64>, out: &mut dyn RecordSink) -> Result<()> {
        let Some(seq) = seq else {
            self.unsaved_decisions = false;
            return Ok(());
        };
        self.emitted.retain(|&line| line > seq);
        let saved = Saved {
            boot_id: self.boot_id.clone(),
            seq,
            emitted: self.emitted.clone(),
        };
        if self.saved.as_ref() == Some(&saved) {
            self.unsaved_decisions = false;
            return Ok(());
        }
        let written = self.write(&saved);
        self.saved_at = Some(Instant::now());
        self.unsaved_decisions = false;
        match written {
            Ok(()) => {
                self.saved = Some(saved);
                self.failing = false;
            }
            Err(error) if !self.failing => {
                self.failing = true;
                out.warning(&format!(
                    "{error}: a restart may miss or repeat kills read since the last save"
                ))?;
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn write(&self, saved: &Saved) -> Result<(), PrivateDirError> {
        let mut bytes = serde_json::to_vec(saved).expect("the state serializes");
        bytes.push(b'\n');
        self.dir.replace(FILE, &bytes)
    }
}

fn resume_from(bytes: &[u8], boot_id: &str, dir: &PrivateDir) -> Resume {
    match serde_json::from_slice::<Saved>(bytes) {
        Ok(saved) if saved.boot_id.trim() != boot_id.trim() => Resume::OtherBoot,
        Ok(saved) => Resume::After {
            seq: saved.seq,
            emitted: saved.emitted,
        },
        Err(error) => Resume::Invalid(format!(
            "state file {:?} is not a state of oomtrace ({error})",
            dir.path(FILE)
        )),
    }
}

/// Where the session stands in the kernel log: the last record handed to
/// the report parser, and the last one after which the parser held no
/// report open. The position to save is the record before the first line
/// of anything still undecided.
#[derive(Debug, Default, Clone, Copy)]
pub struct Position {
    last: Option<u64>,
    clear: Option<u64>,
    /// The first line of the first decision `--count` cut: never decided.
    held: Option<u64>,
}

impl Position {
    /// Starts after `seq` (records up to it are decided).
    pub fn after(seq: Option<u64>) -> Self {
        Self {
            last: seq,
            clear: seq,
            held: None,
        }
    }

    /// A decision beginning at log line `line` was built but not written
    /// (`--count`): the position stays before it, so a restart recovers it.
    pub fn hold(&mut self, line: Option<u64>) {
        self.held = match (self.held, line) {
            (Some(held), Some(line)) => Some(held.min(line)),
            (held, line) => held.or(line),
        };
    }

    /// Record `seq` went to the parser, which now holds a report open or not.
    pub fn read(&mut self, seq: u64, report_open: bool) {
        self.last = Some(seq);
        if !report_open {
            self.clear = Some(seq);
        }
    }

    /// The parser closed its report (a gap in the log): nothing is open.
    pub fn closed(&mut self) {
        self.clear = self.last;
    }

    /// The last record decided, given the first log line of the oldest
    /// decision in flight.
    pub fn decided(&self, oldest_pending: Option<usize>) -> Option<u64> {
        let pending = oldest_pending
            .map(|line| line as u64)
            .into_iter()
            .chain(self.held)
            .min()
            .map(|line| line.saturating_sub(1));
        match (self.clear, pending) {
            (Some(clear), Some(pending)) => Some(clear.min(pending)),
            (clear, None) => clear,
            // A decision began before anything we know was read.
            (None, Some(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Warnings(Vec<String>);

    impl RecordSink for Warnings {
        fn record(&mut self, _: oomtrace_core::output::Record<'_>) -> std::io::Result<()> {
            Ok(())
        }
        fn warning(&mut self, text: &str) -> std::io::Result<()> {
            self.0.push(text.to_owned());
            Ok(())
        }
    }

    #[test]
    fn the_position_stops_before_the_open_report_and_the_oldest_pending() {
        let mut position = Position::after(Some(10));
        assert_eq!(position.decided(None), Some(10));
        position.read(11, false);
        position.read(12, true);
        position.read(13, true);
        assert_eq!(position.decided(None), Some(11), "a report opened at 12");
        position.read(14, false);
        assert_eq!(position.decided(None), Some(14), "it closed at 14");
        assert_eq!(
            position.decided(Some(12)),
            Some(11),
            "its decision is in flight"
        );
        position.read(15, true);
        position.closed();
        assert_eq!(position.decided(None), Some(15));
        position.hold(Some(13));
        position.hold(Some(14));
        assert_eq!(
            position.decided(None),
            Some(12),
            "a decision cut by --count at 13"
        );
    }

    #[test]
    fn a_state_resumes_only_in_its_own_boot() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut state, resume) = StateFile::open(tmp.path(), "boot-a\n").unwrap();
        assert_eq!(resume, Resume::None);
        let mut sink = Warnings::default();
        state.emitted.push(50);
        state.emitted.push(40);
        state.save(Some(45), &mut sink).unwrap();
        let (_, resume) = StateFile::open(tmp.path(), "boot-a").unwrap();
        assert_eq!(
            resume,
            Resume::After {
                seq: 45,
                emitted: vec![50]
            }
        );
        let (_, resume) = StateFile::open(tmp.path(), "boot-b").unwrap();
        assert_eq!(resume, Resume::OtherBoot);
        std::fs::write(tmp.path().join(FILE), b"{\"seq\": 1}").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            tmp.path().join(FILE),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let (_, resume) = StateFile::open(tmp.path(), "boot-a").unwrap();
        assert!(matches!(resume, Resume::Invalid(ref why) if why.contains("not a state")));
    }
}
