//! `--output FILE`: the records as JSON Lines in a file of our own, rotated
//! by size. The file is opened without following a symlink and refused
//! unless it is a regular file owned by us and writable by nobody else
//! (a root process must not append where someone else can redirect it);
//! it is kept at mode 0600. Rotation is by rename: FILE → FILE.1 → … →
//! FILE.<keep>, the oldest removed.
use std::{
    fs::{File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::output::queue::LineTarget;

/// Rotate once the file would pass this size (100 MiB).
pub const DEFAULT_OUTPUT_MAX_BYTES: u64 = 100 << 20;
/// Rotated files kept (FILE.1 … FILE.5).
pub const DEFAULT_OUTPUT_KEEP: usize = 5;

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
    #[error(
        "output file {path:?} is unsafe: {reason}; it must be owned by uid {euid} and not writable by group or others"
    )]
    Unsafe {
        path: PathBuf,
        reason: String,
        euid: u32,
    },
    #[error("cannot open output file {path:?}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

impl From<OutputFileError> for io::Error {
    fn from(error: OutputFileError) -> Self {
        let kind = match &error {
            OutputFileError::Open { source, .. } => source.kind(),
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, error.to_string())
    }
}

/// The output file with rotation; the writer thread's [`LineTarget`].
pub struct RotatingFile {
    config: OutputFileConfig,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (or creates, mode 0600) the file for appending, after the checks.
    pub fn open(config: OutputFileConfig) -> Result<Self, OutputFileError> {
        let file = open_checked(&config.path)?;
        let size = file
            .metadata()
            .map_err(|source| OutputFileError::Open {
                path: config.path.clone(),
                source,
            })?
            .len();
        Ok(Self { config, file, size })
    }

    /// FILE.n, the n-th newest rotated file.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.config.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// FILE.<keep-1> → FILE.<keep>, …, FILE → FILE.1 (renames replace the
    /// oldest), then a fresh FILE.
    fn rotate(&mut self) -> io::Result<()> {
        let path = self.config.path.clone();
        if self.config.keep == 0 {
            std::fs::remove_file(&path)?;
        } else {
            for n in (1..self.config.keep).rev() {
                match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&path, self.rotated(1))?;
        }
        self.file = open_checked(&path)?;
        self.size = 0;
        Ok(())
    }
}

impl LineTarget for RotatingFile {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.config.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// O_NOFOLLOW (a symlink fails with ELOOP), O_NONBLOCK (a FIFO must not
/// block the open; it is refused below), then the checks on the descriptor.
/// A new file is made 0600; an existing one is appended to only if it is
/// ours already: our user's, mode 0600, and empty or JSON Lines. Nothing
/// else is changed (`--output /etc/passwd` as root is refused, not chmod-ed
/// and appended to).
fn open_checked(path: &Path) -> Result<File, OutputFileError> {
    let open = |create_new: bool| {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
        if create_new {
            options.create_new(true);
        }
        options.open(path)
    };
    let open_error = |source: std::io::Error| match source.raw_os_error() {
        Some(libc::ELOOP) => OutputFileError::Symlink {
            path: path.to_owned(),
        },
        _ => OutputFileError::Open {
            path: path.to_owned(),
            source,
        },
    };
    let (file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            (open(false).map_err(open_error)?, false)
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
    if created {
        // The umask may have taken bits off; 0600 exactly.
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(|source| OutputFileError::Open {
                path: path.to_owned(),
                source,
            })?;
        return Ok(file);
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let reason = if meta.uid() != euid {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o7777 != 0o600 {
        Some(format!(
            "mode {:o} (only a file of mode 0600 is appended to)",
            meta.mode() & 0o7777
        ))
    } else if meta.len() > 0 && first_byte(&file) != Some(b'{') {
        Some("not JSON Lines (not a file oomtrace wrote)".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(OutputFileError::Unsafe {
            path: path.to_owned(),
            reason,
            euid,
        }),
        None => Ok(file),
    }
}

fn first_byte(file: &File) -> Option<u8> {
    use std::os::unix::fs::FileExt as _;
    let mut byte = [0u8; 1];
    (file.read_at(&mut byte, 0).ok()? == 1).then_some(byte[0])
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

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
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "line 008\n");
        assert_eq!(read(&file.rotated(1)), "line 006\nline 007\n");
        assert_eq!(read(&file.rotated(2)), "line 004\nline 005\n");
        assert!(!file.rotated(3).exists());
        for p in [path.clone(), file.rotated(1), file.rotated(2)] {
            assert_eq!(mode(&p), 0o600, "{p:?}");
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        let mut file = RotatingFile::open(config(&path, 4, 0)).unwrap();
        file.write_line(b"a very long line\n").unwrap();
        file.write_line(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
    }

    #[test]
    fn an_existing_file_of_ours_is_appended_to_and_others_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.jsonl");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let mut file = RotatingFile::open(config(&path, 1 << 20, 1)).unwrap();
        file.write_line(b"new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":1}\nnew\n"
        );
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
            assert_eq!(std::fs::read_to_string(&other).unwrap(), content);
            assert_eq!(mode(&other), mode_bits);
        }
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
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    }

    #[test]
    fn not_a_regular_file_or_open_to_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let error = RotatingFile::open(config(tmp.path(), 1, 1)).err().unwrap();
        // A directory cannot even be opened for writing.
        assert!(error.to_string().contains("output file"), "{error}");
        let error = RotatingFile::open(config(Path::new("/dev/null"), 1, 1))
            .err()
            .unwrap();
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
}
