//! `--output FILE`: the records as JSON Lines in a file of our own, rotated
//! by size.
//!
//! FILE's directory is opened like the dump directory ([`CheckedDir`]: not
//! a symlink, owned by us, not writable by group or others, so a sticky
//! `/tmp` is refused too), and everything after goes through its
//! descriptor: the file's open, the rotation's renames and the removal of
//! the oldest. The file itself is opened without following a symlink and
//! refused unless it is a regular file with one link, owned by us, mode
//! 0600 and JSON Lines (a root process must not append where someone else
//! can redirect it); a new one is made 0600.
//!
//! Rotation is by rename: FILE → FILE.1 → … → FILE.<keep>, the oldest
//! replaced. A rotation that fails (a name in the way) is a warning
//! ([`take_warnings`](RotatingFile::take_warnings)), not an error: lines go
//! on into FILE and the rotation is tried again once FILE has grown by
//! another `max_bytes`. A write that fails (a full disk) leaves no torn
//! line: the file is cut back to its last complete line.
use std::{
    ffi::{OsStr, OsString},
    fs::File,
    io::{self, Write},
    os::unix::fs::{FileExt as _, MetadataExt},
    path::{Path, PathBuf},
};

use crate::{
    base::dir::{CheckedDir, DirError},
    output::target::LineTarget,
};

/// Rotate once the file would pass this size (100 MiB).
pub const DEFAULT_OUTPUT_MAX_BYTES: u64 = 100 << 20;
/// Rotated files kept (FILE.1 … FILE.5).
pub const DEFAULT_OUTPUT_KEEP: usize = 5;

/// How the output's directory is named in messages.
const ROLE: &str = "output directory";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFileConfig {
    pub path: PathBuf,
    /// A line that would take the file past this size goes to a fresh file
    /// (a single longer line still goes, alone).
    pub max_bytes: u64,
    /// Rotated files kept; 0 keeps none (the full file is removed).
    pub keep: usize,
}

/// Why the output file cannot be used: one line naming it.
#[derive(Debug, thiserror::Error)]
pub enum OutputFileError {
    #[error("output file {path:?} is a symbolic link; give the real file")]
    Symlink { path: PathBuf },
    #[error("output file {path:?} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("output file {path:?} names no file in a directory")]
    NoFileName { path: PathBuf },
    #[error(
        "output file {path:?} is unsafe: {reason}; it must be owned by uid {euid}, not writable by group or others, and have no other link"
    )]
    Unsafe {
        path: PathBuf,
        reason: String,
        euid: u32,
    },
    /// FILE's directory failed the checks of [`CheckedDir`].
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("cannot open output file {path:?}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

impl From<OutputFileError> for io::Error {
    fn from(error: OutputFileError) -> Self {
        let kind = match &error {
            OutputFileError::Open { source, .. }
            | OutputFileError::Dir(
                DirError::Inspect { source, .. } | DirError::Create { source, .. },
            ) => source.kind(),
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, error.to_string())
    }
}

/// The output file with rotation; the writer thread's [`LineTarget`].
pub struct RotatingFile {
    config: OutputFileConfig,
    dir: CheckedDir,
    /// FILE's name in `dir`.
    name: OsString,
    file: File,
    /// Bytes of complete lines in `file`.
    size: u64,
    /// Rotate before a line would take `size` past this: `max_bytes`, or
    /// further once a rotation failed.
    rotate_at: u64,
    rotation_failures: u64,
    warnings: Vec<String>,
}

impl RotatingFile {
    /// Opens (or creates, mode 0600) the file for appending, after the
    /// checks on its directory and on it; a torn last line (a crash or a
    /// full disk mid-write) is cut off.
    pub fn open(config: OutputFileConfig) -> Result<Self, OutputFileError> {
        let path = config.path.clone();
        let name = path
            .file_name()
            .ok_or_else(|| OutputFileError::NoFileName { path: path.clone() })?
            .to_owned();
        let dir = CheckedDir::open(ROLE, directory_of(&path), false)?;
        let file = open_checked(&dir, &name, &path)?;
        let size = cut_to_last_line(&file).map_err(|source| OutputFileError::Open {
            path: path.clone(),
            source,
        })?;
        let rotate_at = config.max_bytes;
        Ok(Self {
            config,
            dir,
            name,
            file,
            size,
            rotate_at,
            rotation_failures: 0,
            warnings: Vec::new(),
        })
    }

    /// FILE, as given.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Opens FILE again, checked like the first time (after a failed write:
    /// it may have been moved away, removed, or its directory recreated).
    pub fn reopen(&mut self) -> io::Result<()> {
        let path = &self.config.path;
        let file = match open_checked(&self.dir, &self.name, path) {
            // Our directory was removed: one recreated at its path is
            // checked like the first (it is never created here).
            Err(OutputFileError::Open { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                self.dir = CheckedDir::open(ROLE, directory_of(path), false)
                    .map_err(OutputFileError::Dir)?;
                open_checked(&self.dir, &self.name, path)?
            }
            other => other?,
        };
        self.size = cut_to_last_line(&file)?;
        self.file = file;
        Ok(())
    }

    /// Warnings of failed rotations since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// FILE.n, the n-th newest rotated file, as a name in the directory.
    fn rotated(&self, n: usize) -> OsString {
        let mut name = self.name.clone();
        name.push(format!(".{n}"));
        name
    }

    /// FILE.<keep-1> → FILE.<keep>, …, FILE → FILE.1 (renames replace the
    /// oldest), then a fresh FILE. A rename that fails is a warning and
    /// FILE goes on; only a fresh FILE that cannot be made is an error.
    fn rotate(&mut self) -> io::Result<()> {
        if let Err(e) = self.shift() {
            self.rotation_failures += 1;
            self.rotate_at = self.size.saturating_add(self.config.max_bytes);
            self.warnings.push(format!(
                "rotating --output {:?} failed ({e}); lines go on into it and the \
                 rotation is tried again after another {} bytes; {} rotation(s) failed so far",
                self.config.path, self.config.max_bytes, self.rotation_failures
            ));
            return Ok(());
        }
        self.file = open_checked(&self.dir, &self.name, &self.config.path)?;
        self.size = 0;
        self.rotate_at = self.config.max_bytes;
        Ok(())
    }

    /// The renames (or, keeping none, the removal) that free FILE's name.
    fn shift(&self) -> io::Result<()> {
        if self.config.keep == 0 {
            return self.dir.unlink(&self.name);
        }
        for n in (1..self.config.keep).rev() {
            match self.dir.rename(&self.rotated(n), &self.rotated(n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.dir.rename(&self.name, &self.rotated(1))
    }
}

impl LineTarget for RotatingFile {
    /// One whole line, or none: a failed write is cut back off the file
    /// (if even that fails, [`reopen`](RotatingFile::reopen) cuts it).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.rotate_at {
            self.rotate()?;
        }
        if let Err(e) = self.file.write_all(line) {
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The directory FILE is in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `openat` in the checked directory: O_NOFOLLOW (a symlink fails with
/// ELOOP), O_NONBLOCK (a FIFO must not block the open; it is refused
/// below), then the checks on the descriptor. A new file is made 0600; an
/// existing one is appended to only if it is ours already: our user's, mode
/// 0600, one link, and empty or JSON Lines. Nothing else is changed
/// (`--output /etc/passwd` as root is refused, not chmod-ed and appended
/// to; nor is a hard link to it).
fn open_checked(dir: &CheckedDir, name: &OsStr, path: &Path) -> Result<File, OutputFileError> {
    let flags = libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK;
    let open_error = |source: io::Error| match source.raw_os_error() {
        Some(libc::ELOOP) => OutputFileError::Symlink {
            path: path.to_owned(),
        },
        _ => OutputFileError::Open {
            path: path.to_owned(),
            source,
        },
    };
    let file = match dir.create_file(name, flags) {
        // New, ours and 0600: nothing to check.
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            dir.open_file(name, flags).map_err(open_error)?
        }
        Err(e) => return Err(open_error(e)),
    };
    let meta = file.metadata().map_err(|source| OutputFileError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(OutputFileError::NotRegular {
            path: path.to_owned(),
        });
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    match unsafe_because(&file, &meta, euid) {
        Some(reason) => Err(OutputFileError::Unsafe {
            path: path.to_owned(),
            reason,
            euid,
        }),
        None => Ok(file),
    }
}

/// Why an existing regular file is not one oomtrace may append to.
fn unsafe_because(file: &File, meta: &std::fs::Metadata, euid: u32) -> Option<String> {
    if meta.uid() != euid {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o7777 != 0o600 {
        Some(format!(
            "mode {:o} (only a file of mode 0600 is appended to)",
            meta.mode() & 0o7777
        ))
    } else if meta.nlink() != 1 {
        Some(format!(
            "it has {} links (a hard link may be someone else's file)",
            meta.nlink()
        ))
    } else if meta.len() > 0 && first_byte(file) != Some(b'{') {
        Some("not JSON Lines (not a file oomtrace wrote)".to_owned())
    } else {
        None
    }
}

fn first_byte(file: &File) -> Option<u8> {
    let mut byte = [0u8; 1];
    (file.read_at(&mut byte, 0).ok()? == 1).then_some(byte[0])
}

/// Cuts anything after the file's last newline (a line torn by a crash or
/// a full disk) and returns the size left.
fn cut_to_last_line(file: &File) -> io::Result<u64> {
    const CHUNK: u64 = 4096;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + at as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
            }
            return Ok(keep);
        }
        end = start;
    }
    if len > 0 {
        file.set_len(0)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::{
        ffi::CString,
        fs::Permissions,
        os::unix::{
            ffi::OsStrExt as _,
            fs::{PermissionsExt, symlink},
        },
    };

    use super::*;

    fn config(path: &Path, max_bytes: u64, keep: usize) -> OutputFileConfig {
        OutputFileConfig {
            path: path.to_owned(),
            max_bytes,
            keep,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn rotated(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn require_root(why: &str) {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root: {why}");
    }

    #[test]
    fn rotation_keeps_whole_lines_under_the_size_and_n_files_at_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        let mut file = RotatingFile::open(config(&path, 25, 2)).unwrap();
        // 10 bytes a line: two per file.
        for i in 0..9 {
            file.write_line(format!("line {i:03}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(read(&path), "line 008\n");
        assert_eq!(read(&rotated(&path, 1)), "line 006\nline 007\n");
        assert_eq!(read(&rotated(&path, 2)), "line 004\nline 005\n");
        assert!(!rotated(&path, 3).exists());
        for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert_eq!(mode(&p), 0o600, "{p:?}");
        }
        assert!(file.take_warnings().is_empty());
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        let mut file = RotatingFile::open(config(&path, 4, 0)).unwrap();
        file.write_line(b"a very long line\n").unwrap();
        file.write_line(b"b\n").unwrap();
        assert_eq!(read(&path), "b\n");
    }

    #[test]
    fn an_existing_file_of_ours_is_appended_to_and_others_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let mut file = RotatingFile::open(config(&path, 1 << 20, 1)).unwrap();
        file.write_line(b"new\n").unwrap();
        assert_eq!(read(&path), "{\"old\":1}\nnew\n");
        // A system file (mode 0644), or one that is not JSON Lines: refused,
        // neither appended to nor chmod-ed.
        for (content, mode_bits) in [
            ("root:x:0:0::/root:/bin/sh\n", 0o644),
            ("root:x:0\n", 0o600),
        ] {
            let other = tmp.path().join(format!("other-{mode_bits:o}"));
            std::fs::write(&other, content).unwrap();
            std::fs::set_permissions(&other, Permissions::from_mode(mode_bits)).unwrap();
            let error = RotatingFile::open(config(&other, 1 << 20, 1))
                .err()
                .unwrap();
            assert!(matches!(error, OutputFileError::Unsafe { .. }), "{error}");
            assert_eq!(read(&other), content);
            assert_eq!(mode(&other), mode_bits);
        }
    }

    /// A hard link to a file of ours that looks like JSON Lines passes
    /// every other check: the link count is what refuses it.
    #[test]
    fn a_hard_link_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "{\"key\":\"s3cr3t\"}\n").unwrap();
        std::fs::set_permissions(&secret, Permissions::from_mode(0o600)).unwrap();
        let link = tmp.path().join("out.jsonl");
        std::fs::hard_link(&secret, &link).unwrap();
        let error = RotatingFile::open(config(&link, 1 << 20, 1)).err().unwrap();
        assert!(matches!(error, OutputFileError::Unsafe { .. }), "{error}");
        assert!(error.to_string().contains("2 links"), "{error}");
        assert_eq!(read(&secret), "{\"key\":\"s3cr3t\"}\n");
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::write(&target, "keep\n").unwrap();
        let link = tmp.path().join("out.jsonl");
        symlink(&target, &link).unwrap();
        let error = RotatingFile::open(config(&link, 1 << 20, 1)).err().unwrap();
        assert!(matches!(error, OutputFileError::Symlink { .. }), "{error}");
        assert!(error.to_string().contains("symbolic link"));
        assert_eq!(read(&target), "keep\n");
    }

    #[test]
    fn not_a_regular_file_or_open_to_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        // A directory cannot even be opened for writing.
        let error = RotatingFile::open(config(&sub, 1, 1)).err().unwrap();
        assert!(matches!(error, OutputFileError::Open { .. }), "{error}");
        let fifo = tmp.path().join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let error = RotatingFile::open(config(&fifo, 1, 1)).err().unwrap();
        assert!(
            matches!(error, OutputFileError::NotRegular { .. }),
            "{error}"
        );
        let open = tmp.path().join("open.jsonl");
        std::fs::write(&open, "").unwrap();
        std::fs::set_permissions(&open, Permissions::from_mode(0o666)).unwrap();
        let error = RotatingFile::open(config(&open, 1, 1)).err().unwrap();
        assert!(matches!(error, OutputFileError::Unsafe { .. }), "{error}");
        assert_eq!(mode(&open), 0o666, "a refused file is left alone");
    }

    /// The directory is held to the dump directory's rule: one clear line
    /// naming it, and nothing created in it.
    #[test]
    fn a_directory_others_can_write_to_is_refused_with_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        for (mode_bits, who) in [
            (0o777, "everyone"),
            (0o1777, "everyone"),
            (0o770, "its group"),
        ] {
            let dir = tmp.path().join(format!("d{mode_bits:o}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, Permissions::from_mode(mode_bits)).unwrap();
            let error = RotatingFile::open(config(&dir.join("out.jsonl"), 1 << 20, 1))
                .err()
                .unwrap();
            assert!(
                matches!(error, OutputFileError::Dir(DirError::Unsafe { .. })),
                "{error}"
            );
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(
                message.starts_with("output directory ")
                    && message.contains(&format!("{mode_bits:04o} lets {who} write")),
                "{message}"
            );
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        }
        let link = tmp.path().join("link");
        symlink(tmp.path().join("d777"), &link).unwrap();
        let error = RotatingFile::open(config(&link.join("out.jsonl"), 1, 1))
            .err()
            .unwrap();
        assert!(
            matches!(error, OutputFileError::Dir(DirError::Symlink { .. })),
            "{error}"
        );
    }

    #[test]
    fn a_directory_of_another_user_is_refused_with_one_line() {
        require_root("chown");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let error = RotatingFile::open(config(&dir.join("out.jsonl"), 1, 1))
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(
            message.contains("owned by uid 65534") && message.contains("must be owned by uid 0"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
        assert!(!dir.join("out.jsonl").exists());
    }

    /// FILE.<keep> made a non-empty directory: the rotation fails, which is
    /// a warning (with the count) while lines go on into FILE; it is tried
    /// again only after another `max_bytes`, and works once the name is free.
    #[test]
    fn a_rotation_that_fails_is_a_warning_and_lines_go_on() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        let blocker = rotated(&path, 1);
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "").unwrap();
        let mut file = RotatingFile::open(config(&path, 20, 1)).unwrap();
        for i in 0..4 {
            file.write_line(format!("line {i:03}\n").as_bytes())
                .unwrap();
        }
        // Line 2 would pass 20 bytes: a failed rotation; the next try is
        // after another 20 bytes (line 4).
        assert_eq!(read(&path), "line 000\nline 001\nline 002\nline 003\n");
        let warnings = file.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("rotating --output") && warnings[0].contains("1 rotation(s)"),
            "{warnings:?}"
        );
        file.write_line(b"line 004\n").unwrap();
        let warnings = file.take_warnings();
        assert!(warnings[0].contains("2 rotation(s)"), "{warnings:?}");
        assert!(blocker.join("x").exists(), "the directory is left alone");

        std::fs::remove_dir_all(&blocker).unwrap();
        for i in 5..7 {
            file.write_line(format!("line {i:03}\n").as_bytes())
                .unwrap();
        }
        assert!(file.take_warnings().is_empty());
        assert_eq!(
            read(&blocker),
            "line 000\nline 001\nline 002\nline 003\nline 004\nline 005\n"
        );
        assert_eq!(read(&path), "line 006\n");
    }

    #[test]
    fn a_torn_last_line_is_cut_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let mut file = RotatingFile::open(config(&path, 1 << 20, 1)).unwrap();
        file.write_line(b"{\"c\":3}\n").unwrap();
        assert_eq!(read(&path), "{\"a\":1}\n{\"c\":3}\n");
    }

    struct Tmpfs(CString);

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            // SAFETY: a valid NUL-terminated path of our own mount.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }

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
        assert_eq!(rc, 0, "mount tmpfs: {}", io::Error::last_os_error());
        Tmpfs(target)
    }

    /// On a full file system a line is written in part, then the write
    /// fails: the part is cut off. Once there is room again, a reopen
    /// writes whole lines after the whole ones.
    #[test]
    fn a_full_disk_leaves_only_whole_lines() {
        require_root("it mounts a 64 KiB tmpfs");
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let _tmpfs = mount_tmpfs(&mnt, "size=64k,mode=0700");
        let path = mnt.join("out.jsonl");
        let mut file = RotatingFile::open(config(&path, 1 << 20, 1)).unwrap();
        file.write_line(b"{\"first\":1}\n").unwrap();
        let filler = mnt.join("filler");
        let mut fill = File::create(&filler).unwrap();
        let error = loop {
            if let Err(e) = fill.write_all(&[b'x'; 512]) {
                break e;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
        // Longer than the room left in the file's page: written in part.
        let long = format!("{{\"long\":\"{}\"}}\n", "y".repeat(10_000));
        let error = file.write_line(long.as_bytes()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
        assert_eq!(read(&path), "{\"first\":1}\n");

        drop(fill);
        std::fs::remove_file(&filler).unwrap();
        file.reopen().unwrap();
        file.write_line(long.as_bytes()).unwrap();
        assert_eq!(read(&path), format!("{{\"first\":1}}\n{long}"));
    }
}
