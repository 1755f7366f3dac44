//! Post-mortem dump directory: one JSON document per OOM kill.
//!
//! Every dump is written atomically (temp file in the same directory, fsync,
//! rename, fsync of the directory) with mode 0600 and a name whose lexical
//! order is time order:
//!
//! ```text
//! oom-20261123T184512.123456789Z-000042.json
//!     └ UTC time, nanoseconds ┘ └ seq ┘
//! ```
//!
//! The collector runs for months on busy nodes, so nothing here may stop it:
//! a failed dump (full or read-only filesystem, directory removed, ...) is
//! returned as an error for the caller to print and counted in
//! [`DumpWriter::failures`]; it never leaves a temp file behind. Retention
//! (`max_files`, `max_bytes`) only ever deletes our own `oom-*.json` regular
//! files, oldest first, and never the file just written. Temp files use the
//! prefix `.oom-` and the suffix `.tmp`; leftovers from a crash are removed by
//! [`DumpWriter::open`]. One directory belongs to one collector.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::base::dir::{CheckedDir, DirError};

/// Where dumps go and how many to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpConfig {
    /// The dump directory; created with mode 0700 if missing.
    pub dir: PathBuf,
    /// Keep at most this many dumps (the new one is always kept).
    pub max_files: Option<usize>,
    /// Keep our dumps' total size at most this many bytes after a write (the
    /// new one is always kept, even if it alone is larger).
    pub max_bytes: Option<u64>,
}

/// Why opening the directory or writing one dump failed. Every message is one
/// line naming the path (paths are quoted and escaped, so even a path with a
/// newline in it stays on one line).
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot inspect dump directory {path:?}: {source}")]
    Inspect { path: PathBuf, source: io::Error },
    #[error("dump path {path:?} exists but is not a directory")]
    NotADirectory { path: PathBuf },
    /// The path itself is a symbolic link: as root we never follow one into
    /// a directory someone else may control.
    #[error("dump directory {path:?} is a symbolic link; give the real directory")]
    Symlink { path: PathBuf },
    /// Owned by another user, or writable by group or others: whoever can
    /// write there could swap our files under a root process.
    #[error(
        "dump directory {path:?} is unsafe: {reason}; it must be owned by uid {euid} and not writable by group or others"
    )]
    Unsafe {
        path: PathBuf,
        reason: String,
        euid: u32,
    },
    #[error("cannot create dump directory {path:?}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot list dump directory {path:?}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("dump directory {path:?} is not writable: {source}")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot serialize dump {path:?}: {source}")]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write dump {path:?}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("dump {path:?} written, but syncing its directory failed: {source}")]
    SyncDir { path: PathBuf, source: io::Error },
}

/// Writes dumps into one directory and applies retention.
///
/// The directory is opened once (`O_NOFOLLOW | O_DIRECTORY`), checked on the
/// descriptor (ours, not writable by group or others), and every later
/// create, rename, delete and fsync goes through that descriptor (`openat`,
/// `renameat`, `unlinkat`), never through the path: a symlink swapped in
/// for the path later cannot redirect a root process's writes.
#[derive(Debug)]
pub struct DumpWriter {
    dir: PathBuf,
    fd: CheckedDir,
    max_files: Option<usize>,
    max_bytes: Option<u64>,
    failures: u64,
    retention_failures: u64,
    tmp_counter: u64,
}

const PREFIX: &str = "oom-";
const SUFFIX: &str = ".json";
const TMP_PREFIX: &str = ".oom-";
const TMP_SUFFIX: &str = ".tmp";
/// `20261123T184512.123456789Z`
const STAMP_LEN: usize = 26;
/// The last instant whose year still has four digits.
const MAX_NANOS: i128 = 253_402_300_800 * 1_000_000_000 - 1;

impl DumpWriter {
    /// Opens the directory without following a symlink, creating it (mode
    /// 0700) if missing; errors if it is not a directory, not ours or open to
    /// group/others (see [`DumpError::Unsafe`]), or not writable (checked by
    /// creating and removing a probe temp file). Removes temp files left
    /// behind by a crash.
    pub fn open(config: DumpConfig) -> Result<Self, DumpError> {
        let dir = config.dir;
        let fd = open_checked_dir(&dir, true)?;
        let mut writer = DumpWriter {
            dir,
            fd,
            max_files: config.max_files,
            max_bytes: config.max_bytes,
            failures: 0,
            retention_failures: 0,
            tmp_counter: 0,
        };
        writer.remove_stale_temps()?;
        let (probe, file) = writer
            .create_temp()
            .map_err(|source| DumpError::NotWritable {
                path: writer.dir.clone(),
                source,
            })?;
        drop(file);
        writer
            .fd
            .unlink(probe.as_ref())
            .map_err(|source| DumpError::NotWritable {
                path: writer.dir.clone(),
                source,
            })?;
        Ok(writer)
    }

    /// The dump directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one dump atomically (temp file in the same directory, fsync,
    /// rename, fsync of the directory), mode 0600, as
    /// `oom-<UTC time>-<seq:06>.json`: one compact JSON document and a
    /// newline. Then deletes the oldest of our dumps until both limits hold,
    /// never the file just written.
    ///
    /// Times before 1970 or after year 9999 are clamped to those bounds in the
    /// name (the document keeps whatever it says). An error is also counted in
    /// [`failures`](Self::failures); no temp file is left behind.
    pub fn write(
        &mut self,
        time: SystemTime,
        seq: u64,
        document: &serde_json::Value,
    ) -> Result<PathBuf, DumpError> {
        let serialized = serde_json::to_vec(document).map_err(|source| DumpError::Serialize {
            path: self.dir.join(file_name(time, seq)),
            source,
        });
        let result = serialized.and_then(|bytes| self.try_write(time, seq, bytes));
        if result.is_err() {
            self.failures += 1;
        }
        result
    }

    /// [`write`](Self::write) of a document already serialized (one compact
    /// JSON document, no final newline): what the background writer gets.
    pub fn write_serialized(
        &mut self,
        time: SystemTime,
        seq: u64,
        document: Vec<u8>,
    ) -> Result<PathBuf, DumpError> {
        let result = self.try_write(time, seq, document);
        if result.is_err() {
            self.failures += 1;
        }
        result
    }

    /// Dumps that failed (full or read-only directory, ...): counted, never
    /// fatal.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Old dumps that retention could not delete (or could not list). The
    /// dump just written is unaffected, so `write` still returns `Ok`.
    pub fn retention_failures(&self) -> u64 {
        self.retention_failures
    }

    /// Lists the dump files (`oom-*.json` regular files with our naming) in
    /// `dir`, oldest first. (Read-only, for `oomtrace report`.)
    pub fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((stamp, seq)) = parse_name(name) else {
                continue;
            };
            // Never follow or touch symlinks, directories, ... named like ours.
            if !entry.file_type()?.is_file() {
                continue;
            }
            found.push(((stamp.to_owned(), seq, name.to_owned()), entry.path()));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().map(|(_, path)| path).collect())
    }

    fn try_write(
        &mut self,
        time: SystemTime,
        seq: u64,
        mut bytes: Vec<u8>,
    ) -> Result<PathBuf, DumpError> {
        let name = file_name(time, seq);
        let path = self.dir.join(&name);
        bytes.push(b'\n');

        let created = match self.create_temp() {
            // The directory was removed under us (tmp cleaners, an operator):
            // recreate it rather than lose every later dump. The new one is
            // checked like the first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.reopen() {
                Ok(()) => self.create_temp(),
                Err(error) => return Err(error),
            },
            other => other,
        };
        let (tmp, mut file) = created.map_err(|source| DumpError::Write {
            path: path.clone(),
            source,
        })?;
        let written = file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                drop(file);
                self.fd.rename(tmp.as_ref(), name.as_ref())
            });
        if let Err(source) = written {
            let _ = self.fd.unlink(tmp.as_ref());
            return Err(DumpError::Write { path, source });
        }

        let synced = self.fd.sync();
        self.apply_retention(&name);
        match synced {
            Ok(()) => Ok(path),
            Err(source) => Err(DumpError::SyncDir { path, source }),
        }
    }

    /// The directory was removed: create and check it again, by path once,
    /// then use the new descriptor.
    fn reopen(&mut self) -> Result<(), DumpError> {
        let fd = open_checked_dir(&self.dir, true).map_err(|error| match error {
            // Keep the write error's form for what used to be one.
            DumpError::CreateDir { source, .. } | DumpError::Inspect { source, .. } => {
                DumpError::Write {
                    path: self.dir.clone(),
                    source,
                }
            }
            other => other,
        })?;
        self.fd = fd;
        Ok(())
    }

    /// Creates a new temp file (mode 0600) with a name no one else uses.
    fn create_temp(&mut self) -> io::Result<(String, File)> {
        let pid = std::process::id();
        let mut attempts = 0;
        loop {
            self.tmp_counter = self.tmp_counter.wrapping_add(1);
            let tmp = format!("{TMP_PREFIX}{pid}-{}{TMP_SUFFIX}", self.tmp_counter);
            match self.fd.create_file(tmp.as_ref(), libc::O_WRONLY) {
                Ok(file) => return Ok((tmp, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes our temp files (`.oom-*.tmp`) left behind by a crash.
    fn remove_stale_temps(&self) -> Result<(), DumpError> {
        let entries = self.fd.list().map_err(|source| DumpError::List {
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries {
            let Some(name) = entry.name.to_str() else {
                continue;
            };
            if entry.is_file
                && name.len() > TMP_PREFIX.len() + TMP_SUFFIX.len()
                && name.starts_with(TMP_PREFIX)
                && name.ends_with(TMP_SUFFIX)
            {
                // Best effort: the probe below tells whether the dir is usable.
                let _ = self.fd.unlink(name.as_ref());
            }
        }
        Ok(())
    }

    /// Deletes our oldest dumps until both limits hold, never `keep`.
    fn apply_retention(&mut self, keep: &str) {
        if self.max_files.is_none() && self.max_bytes.is_none() {
            return;
        }
        let dumps = match scan_at(&self.fd) {
            Ok(dumps) => dumps,
            Err(_) => {
                self.retention_failures += 1;
                return;
            }
        };
        let count_all = dumps.len();
        let mut count = count_all;
        let mut bytes = dumps.iter().fold(0u64, |b, d| b.saturating_add(d.len));
        for dump in dumps {
            let files_ok = self.max_files.is_none_or(|max| count <= max);
            let bytes_ok = self.max_bytes.is_none_or(|max| bytes <= max);
            if files_ok && bytes_ok {
                break;
            }
            if dump.name == keep {
                continue;
            }
            match self.fd.unlink(dump.name.as_ref()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => {
                    // Try the next one: the limits still bound disk use.
                    self.retention_failures += 1;
                    continue;
                }
            }
            count -= 1;
            bytes = bytes.saturating_sub(dump.len);
        }
    }
}

/// The directory (by path, checked like the first open) as a [`DumpError`].
fn open_checked_dir(dir: &Path, create: bool) -> Result<CheckedDir, DumpError> {
    CheckedDir::open("dump directory", dir, create).map_err(DumpError::from)
}

impl From<DirError> for DumpError {
    /// The directory's errors keep the dump's own variants and messages.
    fn from(error: DirError) -> Self {
        match error {
            DirError::Inspect { path, source, .. } => DumpError::Inspect { path, source },
            DirError::NotADirectory { path, .. } => DumpError::NotADirectory { path },
            DirError::Symlink { path, .. } => DumpError::Symlink { path },
            DirError::Unsafe {
                path, reason, euid, ..
            } => DumpError::Unsafe { path, reason, euid },
            DirError::Create { path, source, .. } => DumpError::CreateDir { path, source },
        }
    }
}

struct Dump {
    name: String,
    len: u64,
}

/// Our dumps (regular files with our naming) in the directory, oldest first.
fn scan_at(dir: &CheckedDir) -> io::Result<Vec<Dump>> {
    let mut found = Vec::new();
    for entry in dir.list()? {
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        let Some((stamp, seq)) = parse_name(name) else {
            continue;
        };
        // Never follow or touch symlinks, directories, ... named like ours.
        if !entry.is_file {
            continue;
        }
        found.push((
            (stamp.to_owned(), seq, name.to_owned()),
            Dump {
                name: name.to_owned(),
                len: entry.len,
            },
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, dump)| dump).collect())
}

/// `oom-20261123T184512.123456789Z-000042.json`
fn file_name(time: SystemTime, seq: u64) -> String {
    let nanos: i128 = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(MAX_NANOS),
        Err(_) => 0,
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos.clamp(0, MAX_NANOS))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{PREFIX}{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z-{seq:06}{SUFFIX}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond(),
    )
}

/// Sort key of one of our dump names: the time stamp, then seq as a number
/// (so seq 1000000 still sorts after 999999), then the name itself.
fn parse_name(name: &str) -> Option<(&str, u64)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let stamp = rest.get(..STAMP_LEN)?;
    let seq = rest.get(STAMP_LEN..)?.strip_prefix('-')?;
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let stamp_ok = digits(0..8)
        && b[8] == b'T'
        && digits(9..15)
        && b[15] == b'.'
        && digits(16..25)
        && b[25] == b'Z';
    if !stamp_ok || seq.len() < 6 || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((stamp, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::ffi::CString;
    use std::fs::{OpenOptions, Permissions};
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn config(dir: &Path) -> DumpConfig {
        DumpConfig {
            dir: dir.to_owned(),
            max_files: None,
            max_bytes: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn temps(dir: &Path) -> Vec<String> {
        names(dir)
            .into_iter()
            .filter(|n| n.starts_with(TMP_PREFIX) && n.ends_with(TMP_SUFFIX))
            .collect()
    }

    fn base(path: &Path) -> String {
        path.file_name().unwrap().to_str().unwrap().to_owned()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// A document whose compact JSON plus newline is exactly `len` bytes.
    fn doc_of_len(len: usize) -> serde_json::Value {
        let overhead = serde_json::to_vec(&json!({ "p": "" })).unwrap().len() + 1;
        let doc = json!({ "p": "x".repeat(len - overhead) });
        assert_eq!(serde_json::to_vec(&doc).unwrap().len() + 1, len);
        doc
    }

    #[test]
    fn name_is_utc_nanos_and_padded_seq() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        let p = w
            .write(at(1_795_459_512, 123_456_789), 42, &json!({}))
            .unwrap();
        assert_eq!(base(&p), "oom-20261123T184512.123456789Z-000042.json");
        assert_eq!(p.parent().unwrap(), tmp.path());
        let p = w.write(at(0, 5), 7, &json!({})).unwrap();
        assert_eq!(base(&p), "oom-19700101T000000.000000005Z-000007.json");
        assert_eq!(w.failures(), 0);
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(
            file_name(SystemTime::UNIX_EPOCH - Duration::from_secs(86_400), 1),
            "oom-19700101T000000.000000000Z-000001.json"
        );
        assert_eq!(
            file_name(SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40), 1),
            "oom-99991231T235959.999999999Z-000001.json"
        );
    }

    #[test]
    fn lexical_order_is_time_order_and_list_follows_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        // Oldest to newest; written shuffled.
        let expected = [
            (at(999_999_999, 0), 5),              // 2001, before the 10-digit epoch
            (at(1_000_000_000, 9), 3),            // same second, nanos 9 ...
            (at(1_000_000_000, 10), 1),           // ... before nanos 10
            (at(1_000_000_000, 100_000_000), 2),  // same time, seq 2 ...
            (at(1_000_000_000, 100_000_000), 10), // ... before seq 10
            (at(1_700_000_000, 0), 0),
        ];
        let mut written = Vec::new();
        for i in [3, 0, 5, 2, 4, 1] {
            let (t, seq) = expected[i];
            written.push((i, w.write(t, seq, &json!({ "i": i })).unwrap()));
        }
        written.sort();
        let in_time_order: Vec<PathBuf> = written.into_iter().map(|(_, p)| p).collect();

        let mut lexical = in_time_order.clone();
        lexical.sort_by_key(|p| base(p));
        assert_eq!(lexical, in_time_order);
        assert_eq!(DumpWriter::list(tmp.path()).unwrap(), in_time_order);
    }

    #[test]
    fn list_skips_foreign_files_and_orders_large_seqs_numerically() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let t = "oom-20261123T184512.123456789Z";
        for name in [
            format!("{t}-1000000.json"),
            format!("{t}-999999.json"),
            "oom-20200101T000000.000000000Z-000001.json".to_owned(),
            "notes.txt".to_owned(),
            format!("{t}-000001.json.bak"),
            "oom-2026-11-23-000001.json".to_owned(),
            format!("{t}-00001.json"),
            format!(".oom-1-1{TMP_SUFFIX}"),
        ] {
            fs::write(d.join(name), "{}\n").unwrap();
        }
        fs::create_dir(d.join("oom-20100101T000000.000000000Z-000001.json")).unwrap();
        let listed: Vec<String> = DumpWriter::list(d)
            .unwrap()
            .iter()
            .map(|p| base(p))
            .collect();
        assert_eq!(
            listed,
            [
                "oom-20200101T000000.000000000Z-000001.json".to_owned(),
                format!("{t}-999999.json"),
                format!("{t}-1000000.json"),
            ]
        );
        assert!(DumpWriter::list(&d.join("missing")).is_err());
    }

    #[test]
    fn document_is_compact_json_plus_newline() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        let doc = json!({ "victim": { "pid": 42, "comm": "stress" }, "lines": ["a", "b"] });
        let p = w.write(at(1, 0), 0, &doc).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("{}\n", serde_json::to_string(&doc).unwrap()));
        assert_eq!(text.lines().count(), 1);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn modes_are_0600_for_dumps_and_0700_for_a_created_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/dumps");
        let mut w = DumpWriter::open(config(&dir)).unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o700);
        let p = w.write(at(5, 0), 0, &json!([1])).unwrap();
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn existing_dir_mode_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).unwrap();
        DumpWriter::open(config(tmp.path())).unwrap();
        assert_eq!(mode(tmp.path()), 0o755);
    }

    #[test]
    fn success_leaves_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        assert_eq!(names(tmp.path()), Vec::<String>::new()); // the probe is gone
        for seq in 0..5 {
            w.write(at(10, 0), seq, &json!({ "seq": seq })).unwrap();
        }
        assert_eq!(temps(tmp.path()), Vec::<String>::new());
        assert_eq!(names(tmp.path()).len(), 5);
    }

    #[test]
    fn failed_rename_is_counted_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        // A directory squats on the dump's name: the temp file gets written,
        // then the rename fails.
        let name = file_name(at(20, 0), 1);
        fs::create_dir(tmp.path().join(&name)).unwrap();
        let err = w.write(at(20, 0), 1, &json!({ "a": 1 })).unwrap_err();
        assert!(matches!(err, DumpError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains(&name), "{err}");
        assert_eq!(w.failures(), 1);
        assert_eq!(names(tmp.path()), [name]);

        // Still usable afterwards; successes are not counted.
        w.write(at(21, 0), 2, &json!({})).unwrap();
        assert_eq!(w.failures(), 1);
        assert_eq!(temps(tmp.path()), Vec::<String>::new());
    }

    #[test]
    fn dir_replaced_by_a_file_fails_every_write_without_panicking() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        let mut w = DumpWriter::open(config(&dir)).unwrap();
        fs::remove_dir(&dir).unwrap();
        fs::write(&dir, "not a dir").unwrap();
        for seq in 0..3 {
            let err = w.write(at(30, 0), seq, &json!({})).unwrap_err();
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains(dir.to_str().unwrap()), "{msg}");
        }
        assert_eq!(w.failures(), 3);
        assert_eq!(fs::read_to_string(&dir).unwrap(), "not a dir");
    }

    #[test]
    fn removed_dir_is_recreated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        let mut w = DumpWriter::open(config(&dir)).unwrap();
        fs::remove_dir(&dir).unwrap();
        let p = w.write(at(40, 0), 0, &json!({})).unwrap();
        assert!(p.is_file());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(w.failures(), 0);
    }

    #[test]
    fn open_on_a_regular_file_errors_on_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("odd\nname");
        fs::write(&file, "x").unwrap();
        let err = DumpWriter::open(config(&file)).unwrap_err();
        assert!(matches!(err, DumpError::NotADirectory { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains(r"odd\nname"), "{msg}");
        assert!(msg.contains(tmp.path().to_str().unwrap()), "{msg}");
    }

    #[test]
    fn open_under_a_regular_file_errors_on_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        let dir = file.join("dumps");
        let err = DumpWriter::open(config(&dir)).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains(dir.to_str().unwrap()), "{msg}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn open_on_an_unwritable_dir_errors() {
        // Even root cannot create files in sysfs (anyone else is refused
        // earlier, by the owner check).
        assert!(is_root(), "needs root");
        let sys = Path::new("/sys");
        assert!(sys.is_dir(), "needs sysfs mounted on /sys");
        let probe = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("/sys/.oomtrace-t");
        if probe.is_ok() {
            let _ = fs::remove_file("/sys/.oomtrace-t");
        }
        assert!(probe.is_err(), "needs an unwritable /sys: it took a file");
        let err = DumpWriter::open(config(sys)).unwrap_err();
        assert!(matches!(err, DumpError::NotWritable { .. }), "{err:?}");
        assert!(err.to_string().contains("\"/sys\""), "{err}");
    }

    #[test]
    fn open_removes_only_our_stale_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let ours = [".oom-123-1.tmp", ".oom-probe.tmp"];
        let foreign = [".other.tmp", "oom-x.tmp", ".oom-.tmpx", "keep.json"];
        for name in ours.iter().chain(&foreign) {
            fs::write(d.join(name), "partial").unwrap();
        }
        fs::create_dir(d.join(".oom-dir.tmp")).unwrap();
        DumpWriter::open(config(d)).unwrap();
        let mut expected: Vec<&str> = foreign.to_vec();
        expected.push(".oom-dir.tmp");
        expected.sort();
        assert_eq!(names(d), expected);
    }

    #[test]
    fn retention_by_count_removes_oldest_and_keeps_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let foreign = [
            "notes.txt",
            "oom-00010101T000000.000000000Z-000001.json.bak",
            ".oom-lookalike",
        ];
        for name in foreign {
            fs::write(d.join(name), "x").unwrap();
        }
        // A directory and a symlink named like very old dumps.
        let old_dir = "oom-19990101T000000.000000000Z-000000.json";
        fs::create_dir(d.join(old_dir)).unwrap();
        let old_link = "oom-19990101T000000.000000000Z-000001.json";
        std::os::unix::fs::symlink(d.join("notes.txt"), d.join(old_link)).unwrap();

        let mut w = DumpWriter::open(DumpConfig {
            max_files: Some(3),
            ..config(d)
        })
        .unwrap();
        let mut paths = Vec::new();
        for i in 0..6u64 {
            paths.push(w.write(at(1_000 + i, 0), i, &json!({ "i": i })).unwrap());
            let ours = DumpWriter::list(d).unwrap();
            assert_eq!(ours, paths[paths.len().saturating_sub(3)..]);
        }
        for name in foreign.iter().chain(&[old_dir, old_link]) {
            assert!(fs::symlink_metadata(d.join(name)).is_ok(), "{name} deleted");
        }
        assert!(d.join(old_dir).is_dir());
        assert_eq!(w.failures(), 0);
        assert_eq!(w.retention_failures(), 0);
    }

    #[test]
    fn retention_goes_by_time_not_write_order_and_keeps_the_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(DumpConfig {
            max_files: Some(2),
            ..config(tmp.path())
        })
        .unwrap();
        let b = w.write(at(200, 0), 0, &json!({})).unwrap();
        let c = w.write(at(300, 0), 0, &json!({})).unwrap();
        // Older than both: it is kept, and the oldest of the others goes.
        let a = w.write(at(100, 0), 0, &json!({})).unwrap();
        assert_eq!(DumpWriter::list(tmp.path()).unwrap(), [a, c]);
        assert!(!b.exists());
    }

    #[test]
    fn retention_by_bytes_counts_our_files_after_the_write() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("big-foreign.bin"), vec![0u8; 10_000]).unwrap();
        let mut w = DumpWriter::open(DumpConfig {
            max_bytes: Some(250),
            ..config(d)
        })
        .unwrap();
        let doc = doc_of_len(100);
        let p0 = w.write(at(1, 0), 0, &doc).unwrap();
        let p1 = w.write(at(2, 0), 0, &doc).unwrap();
        assert_eq!(DumpWriter::list(d).unwrap(), [p0.clone(), p1.clone()]);
        let p2 = w.write(at(3, 0), 0, &doc).unwrap(); // 300 > 250: p0 goes
        assert_eq!(DumpWriter::list(d).unwrap(), [p1.clone(), p2.clone()]);
        assert_eq!(fs::metadata(&p2).unwrap().len(), 100);

        // Exactly at the limit is within it.
        let p3 = w.write(at(4, 0), 0, &doc_of_len(150)).unwrap();
        assert_eq!(DumpWriter::list(d).unwrap(), [p2, p3.clone()]);

        // Alone larger than the limit: everything else goes, it stays.
        let p4 = w.write(at(5, 0), 0, &doc_of_len(400)).unwrap();
        assert_eq!(DumpWriter::list(d).unwrap(), [p4]);
        let p5 = w.write(at(6, 0), 0, &doc_of_len(300)).unwrap();
        assert_eq!(DumpWriter::list(d).unwrap(), [p5]);
        assert_eq!(
            fs::metadata(d.join("big-foreign.bin")).unwrap().len(),
            10_000
        );
    }

    #[test]
    fn both_limits_hold_and_zero_files_keeps_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut w = DumpWriter::open(DumpConfig {
            dir: d.to_owned(),
            max_files: Some(3),
            max_bytes: Some(1_000),
        })
        .unwrap();
        for i in 0..3 {
            w.write(at(i, 0), 0, &doc_of_len(100)).unwrap();
        }
        assert_eq!(DumpWriter::list(d).unwrap().len(), 3);
        let big = w.write(at(10, 0), 0, &doc_of_len(850)).unwrap(); // bytes bind
        assert_eq!(DumpWriter::list(d).unwrap().len(), 2);
        assert!(DumpWriter::list(d).unwrap().contains(&big));

        let mut w = DumpWriter::open(DumpConfig {
            dir: d.to_owned(),
            max_files: Some(0),
            max_bytes: None,
        })
        .unwrap();
        let last = w.write(at(20, 0), 0, &json!({})).unwrap();
        assert_eq!(DumpWriter::list(d).unwrap(), [last]);
    }

    #[test]
    fn no_limits_keeps_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = DumpWriter::open(config(tmp.path())).unwrap();
        for i in 0..20 {
            w.write(at(i, 0), i, &doc_of_len(1_000)).unwrap();
        }
        assert_eq!(DumpWriter::list(tmp.path()).unwrap().len(), 20);
    }

    /// Unmounts on drop, so the tempdir can be removed even if a test fails.
    struct Tmpfs(CString);

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }

    /// Fails the test with the reason when it cannot (it needs root).
    fn mount_tmpfs(dir: &Path, options: &str) -> Tmpfs {
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let options = CString::new(options).unwrap();
        // SAFETY: valid NUL-terminated strings; tmpfs takes a string as data.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "needs root to mount a tmpfs on {}: {}",
            dir.display(),
            io::Error::last_os_error()
        );
        Tmpfs(target)
    }

    #[test]
    fn full_filesystem_is_counted_leaves_no_temp_and_recovers() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _tmpfs = mount_tmpfs(&mnt, "size=64k,mode=0700");
        let mut w = DumpWriter::open(config(&mnt)).unwrap();
        let small = w.write(at(1, 0), 0, &json!({ "ok": true })).unwrap();

        let huge = doc_of_len(1 << 20);
        let err = w.write(at(2, 0), 1, &huge).unwrap_err();
        assert!(matches!(err, DumpError::Write { .. }), "{err:?}");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert_eq!(w.failures(), 1);
        assert_eq!(temps(&mnt), Vec::<String>::new());
        assert_eq!(
            DumpWriter::list(&mnt).unwrap(),
            std::slice::from_ref(&small)
        );

        // The space the failed dump took is back: later dumps succeed.
        let next = w.write(at(3, 0), 2, &doc_of_len(16 << 10)).unwrap();
        assert_eq!(DumpWriter::list(&mnt).unwrap(), [small, next]);
        assert_eq!(w.failures(), 1);
    }

    #[test]
    fn read_only_filesystem_fails_open_and_write() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _tmpfs = mount_tmpfs(&mnt, "size=64k,mode=0700");
        let mut w = DumpWriter::open(config(&mnt)).unwrap();
        let target = CString::new(mnt.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; remount of our own mount.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "needs a read-only remount of our tmpfs: {}",
            io::Error::last_os_error()
        );
        assert!(w.write(at(1, 0), 0, &json!({})).is_err());
        assert_eq!(w.failures(), 1);
        let err = DumpWriter::open(config(&mnt)).unwrap_err();
        assert!(matches!(err, DumpError::NotWritable { .. }), "{err:?}");
    }

    fn chown(path: &Path, uid: u32) {
        std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn symlinked_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, Permissions::from_mode(0o700)).unwrap();
        let link = tmp.path().join("dumps");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = DumpWriter::open(config(&link)).unwrap_err();
        assert!(matches!(err, DumpError::Symlink { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("symbolic link") && msg.contains("dumps"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert_eq!(
            names(&real),
            Vec::<String>::new(),
            "nothing written through it"
        );
        // A dangling one too (no directory is created at its target).
        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
        let err = DumpWriter::open(config(&dangling)).unwrap_err();
        assert!(matches!(err, DumpError::Symlink { .. }), "{err:?}");
        assert!(!tmp.path().join("nowhere").exists());
    }

    #[test]
    fn path_swapped_for_a_symlink_after_open_does_not_redirect_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        let mut w = DumpWriter::open(config(&dir)).unwrap();
        let moved = tmp.path().join("moved");
        fs::rename(&dir, &moved).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        w.write(at(1, 0), 1, &json!({})).unwrap();
        assert_eq!(names(&elsewhere), Vec::<String>::new());
        assert_eq!(names(&moved), [file_name(at(1, 0), 1)]);
    }

    #[test]
    fn foreign_owner_is_refused() {
        assert!(is_root(), "needs root to chown");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        chown(&dir, 65534);
        let err = DumpWriter::open(config(&dir)).unwrap_err();
        assert!(matches!(err, DumpError::Unsafe { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("owned by uid 65534"), "{msg}");
        assert!(msg.contains("must be owned by uid 0"), "{msg}");
        assert_eq!(names(&dir), Vec::<String>::new());
        chown(&dir, 0);
        DumpWriter::open(config(&dir)).unwrap();
    }

    #[test]
    fn group_or_world_writable_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for (mode, who) in [
            (0o770, "its group"),
            (0o703, "everyone"),
            (0o1777, "everyone"),
        ] {
            let dir = tmp.path().join(format!("d{mode:o}"));
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, Permissions::from_mode(mode)).unwrap();
            let err = DumpWriter::open(config(&dir)).unwrap_err();
            assert!(matches!(err, DumpError::Unsafe { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{mode:04o}")) && msg.contains(who),
                "{msg}"
            );
            assert_eq!(names(&dir), Vec::<String>::new());
            assert_eq!(mode_of(&dir), mode, "left as it was");
        }
        // Group- or world-readable is fine.
        let dir = tmp.path().join("readable");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        DumpWriter::open(config(&dir)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn missing_dir_is_created_0700_and_ours_even_with_a_loose_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new");
        // SAFETY: umask has no preconditions (restored below).
        let old = unsafe { libc::umask(0) };
        let opened = DumpWriter::open(config(&dir));
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        opened.unwrap();
        let meta = fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, 0o700);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    }

    #[test]
    fn recreated_dir_is_checked_like_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dumps");
        let mut w = DumpWriter::open(config(&dir)).unwrap();
        fs::remove_dir(&dir).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        // The old directory is gone and the path is now a symlink: refused.
        let err = w.write(at(1, 0), 1, &json!({}));
        // The old fd still works if the directory was only renamed; here it
        // was removed, so the write has to go through a new open.
        let err = err.unwrap_err();
        assert!(matches!(err, DumpError::Symlink { .. }), "{err:?}");
        assert_eq!(names(&elsewhere), Vec::<String>::new());
        assert_eq!(w.failures(), 1);
    }
}
