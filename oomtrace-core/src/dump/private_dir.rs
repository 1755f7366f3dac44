//! A directory of our own for small files that are replaced whole (the
//! `--state-dir`), opened and checked exactly as the dump directory is
//! (`base::dir::CheckedDir`: no symlink, ours, not writable by group or
//! others), every later step through its descriptor. A file is replaced
//! atomically and durably (temp file 0600, fsync, `renameat`, fsync of the
//! directory) and read only if it is a regular file of ours, mode 0600 or
//! stricter.
use std::{
    ffi::OsStr,
    io::{self, Read as _, Write as _},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use crate::base::dir::{CheckedDir, DirError, fstat, unsafe_because};

/// Why a private directory or one of its files could not be used; one
/// line naming the path (quoted and escaped).
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("{what} directory {path:?}: {reason}")]
    Dir {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{what} file {path:?} is unsafe: {reason}; it must be a regular file owned by uid {euid}, mode 0600"
    )]
    UnsafeFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
        euid: u32,
    },
    #[error("{what} file {path:?} is larger than {max} bytes")]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        max: u64,
    },
    #[error("cannot read {what} file {path:?}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot write {what} file {path:?}: {source}")]
    Write {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

#[derive(Debug)]
pub struct PrivateDir {
    /// What it holds, in messages ("state").
    what: &'static str,
    dir: CheckedDir,
}

impl PrivateDir {
    /// Opens `dir` (created 0700 if missing) as the dump directory is opened.
    pub fn open(what: &'static str, dir: &Path) -> Result<Self, PrivateDirError> {
        let checked = CheckedDir::open(what, dir, true).map_err(|error| PrivateDirError::Dir {
            what,
            path: dir.to_owned(),
            reason: reason_of(error),
        })?;
        Ok(Self { what, dir: checked })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The file's bytes; None when it does not exist.
    pub fn read(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, PrivateDirError> {
        let read_error = |source| PrivateDirError::Read {
            what: self.what,
            path: self.path(name),
            source,
        };
        let flags = libc::O_RDONLY | libc::O_NONBLOCK;
        let file = match self.dir.open_file(OsStr::new(name), flags) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(self.unsafe_file(name, "it is a symbolic link".to_owned()));
            }
            Err(e) => return Err(read_error(e)),
        };
        let fd = OwnedFd::from(file);
        let stat = fstat(&fd).map_err(read_error)?;
        if let Some(reason) = unsafe_file_because(&stat) {
            return Err(self.unsafe_file(name, reason));
        }
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > max {
            return Err(PrivateDirError::TooLarge {
                what: self.what,
                path: self.path(name),
                max,
            });
        }
        Ok(Some(bytes))
    }

    /// Replaces the file with `bytes`, atomically and durably: a crash
    /// leaves the old file or the new one, never a mix.
    pub fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), PrivateDirError> {
        let write_error = |source| PrivateDirError::Write {
            what: self.what,
            path: self.path(name),
            source,
        };
        let tmp = format!(".{name}.tmp");
        let tmp = OsStr::new(&tmp);
        let mut file = match self.dir.create_file(tmp, libc::O_WRONLY) {
            // A crash left it: it is ours (the directory is), remove it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.dir.unlink(tmp).map_err(write_error)?;
                self.dir.create_file(tmp, libc::O_WRONLY)
            }
            other => other,
        }
        .map_err(write_error)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                drop(file);
                self.dir.rename(tmp, OsStr::new(name))
            });
        if let Err(source) = written {
            let _ = self.dir.unlink(tmp);
            return Err(write_error(source));
        }
        self.dir.sync().map_err(write_error)
    }

    fn unsafe_file(&self, name: &str, reason: String) -> PrivateDirError {
        PrivateDirError::UnsafeFile {
            what: self.what,
            path: self.path(name),
            reason,
            // SAFETY: geteuid has no preconditions.
            euid: unsafe { libc::geteuid() },
        }
    }
}

/// A file someone else could have written (or a non-file) is not trusted.
fn unsafe_file_because(stat: &libc::stat) -> Option<String> {
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Some("it is not a regular file".to_owned());
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if let Some(reason) = unsafe_because(stat, euid) {
        return Some(reason);
    }
    (stat.st_mode & 0o077 != 0).then(|| format!("its mode is {:04o}", stat.st_mode & 0o7777))
}

/// The directory's refusal, without its "{role} {path}" part.
fn reason_of(error: DirError) -> String {
    match error {
        DirError::Symlink { .. } => "it is a symbolic link; give the real directory".to_owned(),
        DirError::NotADirectory { .. } => "it exists but is not a directory".to_owned(),
        DirError::Unsafe { reason, euid, .. } => format!(
            "it is unsafe: {reason}; it must be owned by uid {euid} and not writable by group or others"
        ),
        DirError::Inspect { source, .. } => format!("cannot inspect it: {source}"),
        DirError::Create { source, .. } => format!("cannot create it: {source}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_replaced_file_is_read_back_0600_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let private = PrivateDir::open("state", &dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(private.read("s.json", 100).unwrap(), None);
        private.replace("s.json", b"one").unwrap();
        private.replace("s.json", b"two").unwrap();
        assert_eq!(private.read("s.json", 100).unwrap().unwrap(), b"two");
        assert_eq!(mode(&dir.join("s.json")), 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_symlinked_dir_or_file_and_a_loose_file_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let error = PrivateDir::open("state", &link).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");

        let private = PrivateDir::open("state", &real).unwrap();
        std::fs::write(tmp.path().join("elsewhere"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), real.join("s.json")).unwrap();
        let error = private.read("s.json", 100).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");

        std::fs::write(real.join("loose.json"), b"x").unwrap();
        std::fs::set_permissions(
            real.join("loose.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let error = private.read("loose.json", 100).unwrap_err().to_string();
        assert!(error.contains("mode is 0644"), "{error}");
    }

    #[test]
    fn a_file_past_its_bound_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let private = PrivateDir::open("state", tmp.path()).unwrap();
        private.replace("s.json", &[b'x'; 101]).unwrap();
        let error = private.read("s.json", 100).unwrap_err().to_string();
        assert!(error.contains("larger than 100 bytes"), "{error}");
    }
}
