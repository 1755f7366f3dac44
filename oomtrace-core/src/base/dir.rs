//! [`CheckedDir`]: a directory a root process writes into, opened once
//! without following a symlink (`O_NOFOLLOW | O_DIRECTORY`), checked on the
//! descriptor (ours, not writable by group or others: whoever can write
//! there could swap our files), and then used only through that descriptor
//! (`openat`, `renameat`, `unlinkat`, `fstatat`), never through the path: a
//! symlink or another directory swapped in for the path later cannot
//! redirect our writes. The dump directory and `--output`'s directory are
//! both opened this way.
//!
//! The rule is strict: a sticky world-writable directory such as `/tmp` is
//! refused too (the sticky bit stops others from removing our files, not
//! from planting names we are about to use).
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// Why a directory cannot be used. `role` names it in the message ("dump
/// directory", "output directory"); paths are quoted and escaped, so each
/// message stays one line.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot inspect {role} {path:?}: {source}")]
    Inspect {
        role: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{role} {path:?} exists but is not a directory")]
    NotADirectory { role: &'static str, path: PathBuf },
    /// The path itself is a symbolic link: as root we never follow one into
    /// a directory someone else may control.
    #[error("{role} {path:?} is a symbolic link; give the real directory")]
    Symlink { role: &'static str, path: PathBuf },
    /// Owned by another user, or writable by group or others.
    #[error(
        "{role} {path:?} is unsafe: {reason}; it must be owned by uid {euid} and not writable by group or others"
    )]
    Unsafe {
        role: &'static str,
        path: PathBuf,
        reason: String,
        euid: u32,
    },
    #[error("cannot create {role} {path:?}: {source}")]
    Create {
        role: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// One entry of the directory, typed by `fstatat(AT_SYMLINK_NOFOLLOW)`.
pub struct Entry {
    pub name: OsString,
    pub is_file: bool,
    pub len: u64,
}

/// A directory held by a checked descriptor.
#[derive(Debug)]
pub struct CheckedDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl CheckedDir {
    /// Opens `path` itself as a directory, refusing a symlink in its last
    /// component, and checks the descriptor: a directory, owned by our
    /// euid, not writable by group or others. With `create`, a missing
    /// directory is made (parents 0700 too) and then opened the same way;
    /// only then is its mode made exactly 0700, on the descriptor.
    pub fn open(role: &'static str, path: &Path, create: bool) -> Result<Self, DirError> {
        let (fd, created) = open_dir_nofollow(role, path, create)?;
        let stat = fstat(&fd).map_err(|source| DirError::Inspect {
            role,
            path: path.to_owned(),
            source,
        })?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(DirError::NotADirectory {
                role,
                path: path.to_owned(),
            });
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if let Some(reason) = unsafe_because(&stat, euid) {
            return Err(DirError::Unsafe {
                role,
                path: path.to_owned(),
                reason,
                euid,
            });
        }
        if created && stat.st_mode & 0o7777 != 0o700 {
            // The umask may only have removed bits; make it exact, on the fd.
            // SAFETY: a valid descriptor.
            check(unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) })
                .map_err(|source| create_error(role, path, source))?;
        }
        Ok(Self {
            path: path.to_owned(),
            fd,
        })
    }

    /// The path it was opened by (for messages only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600)`: a symlink
    /// named `name` fails with ELOOP. With O_CREAT the mode is 0600 less the
    /// umask (see [`create_file`](Self::create_file) for exactly 0600).
    pub fn open_file(&self, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        let c = cstr(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let rc = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: a descriptor we just opened and own.
        Ok(unsafe { File::from_raw_fd(rc) })
    }

    /// A new file `name` (`O_CREAT | O_EXCL`, never an existing one) with
    /// `flags` (`O_WRONLY`, `O_RDWR | O_APPEND`, ...), mode exactly 0600 (the
    /// umask may only have removed bits). Removed again if that fails.
    pub fn create_file(&self, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        let file = self.open_file(name, flags | libc::O_CREAT | libc::O_EXCL)?;
        // SAFETY: a valid descriptor.
        if let Err(e) = check(unsafe { libc::fchmod(file.as_raw_fd(), 0o600) }) {
            drop(file);
            let _ = self.unlink(name);
            return Err(e);
        }
        Ok(file)
    }

    /// `renameat` within the directory (replaces a file named `to`).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (cstr(from)?, cstr(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptor and NUL-terminated names.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
    }

    /// `unlinkat` of a file (never a directory).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid descriptor and NUL-terminated name; flags 0 = files only.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// fsync of the directory (file systems without one are fine).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor.
        match check(unsafe { libc::fsync(self.fd.as_raw_fd()) }) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The directory's entries, read through a duplicate of its descriptor.
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let dup = self.fd.try_clone()?;
        // SAFETY: `dup` is a valid descriptor; on success the DIR owns it.
        let stream = unsafe { libc::fdopendir(dup.as_raw_fd()) };
        if stream.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(dup);
        struct Stream(*mut libc::DIR);
        impl Drop for Stream {
            fn drop(&mut self) {
                // SAFETY: a stream from fdopendir, closed once (closes the dup).
                unsafe { libc::closedir(self.0) };
            }
        }
        let stream = Stream(stream);
        // A duplicate shares the offset: start from the top every time.
        // SAFETY: a valid stream.
        unsafe { libc::rewinddir(stream.0) };
        let mut entries = Vec::new();
        loop {
            // SAFETY: errno is thread-local; cleared to tell end from error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: a valid stream; the entry is read before the next call.
            let ent = unsafe { libc::readdir(stream.0) };
            if ent.is_null() {
                let error = io::Error::last_os_error();
                if error.raw_os_error().unwrap_or(0) != 0 {
                    return Err(error);
                }
                break;
            }
            // SAFETY: d_name is NUL-terminated within the entry.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            // SAFETY: zeroed is a valid `stat`; fstatat fills it on success.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid descriptor, NUL-terminated name, pointer to a `stat`.
            let rc = unsafe {
                libc::fstatat(
                    self.fd.as_raw_fd(),
                    name.as_ptr(),
                    &mut stat,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if rc != 0 {
                // Removed meanwhile: it no longer counts.
                continue;
            }
            entries.push(Entry {
                name: OsStr::from_bytes(bytes).to_owned(),
                is_file: stat.st_mode & libc::S_IFMT == libc::S_IFREG,
                len: u64::try_from(stat.st_size).unwrap_or(0),
            });
        }
        Ok(entries)
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens `dir` without following a symlink at its end, creating it (0700,
/// parents too) first if asked and missing; says whether it was created.
fn open_dir_nofollow(
    role: &'static str,
    dir: &Path,
    create: bool,
) -> Result<(OwnedFd, bool), DirError> {
    let inspect = |source| DirError::Inspect {
        role,
        path: dir.to_owned(),
        source,
    };
    let c = cstr(dir.as_os_str()).map_err(inspect)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut created = false;
    loop {
        // SAFETY: a valid NUL-terminated path; the result is checked.
        let rc = unsafe { libc::open(c.as_ptr(), flags) };
        if rc >= 0 {
            // SAFETY: a descriptor we just opened and own.
            return Ok((unsafe { OwnedFd::from_raw_fd(rc) }, created));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ENOENT) if create && !created => {
                make_dir(role, dir, &c)?;
                created = true;
            }
            Some(libc::ELOOP) => {
                return Err(DirError::Symlink {
                    role,
                    path: dir.to_owned(),
                });
            }
            Some(libc::ENOTDIR) => return Err(not_a_directory(role, dir, error)),
            _ if created => return Err(create_error(role, dir, error)),
            _ => return Err(inspect(error)),
        }
    }
}

/// Creates `dir` 0700 (its parents too); one made by someone else meanwhile
/// is fine, since the caller checks what it opens.
fn make_dir(role: &'static str, dir: &Path, c: &CString) -> Result<(), DirError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| create_error(role, dir, source))?;
    }
    // SAFETY: a valid NUL-terminated path.
    match check(unsafe { libc::mkdir(c.as_ptr(), 0o700) }) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(create_error(role, dir, source)),
    }
}

/// ENOTDIR: either the path is a file, or something above it is.
fn not_a_directory(role: &'static str, dir: &Path, error: io::Error) -> DirError {
    let path = dir.to_owned();
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => DirError::Symlink { role, path },
        Ok(meta) if !meta.is_dir() => DirError::NotADirectory { role, path },
        _ => DirError::Inspect {
            role,
            path,
            source: error,
        },
    }
}

/// Why a directory others can write to (or another user owns) is refused.
pub fn unsafe_because(stat: &libc::stat, euid: libc::uid_t) -> Option<String> {
    if stat.st_uid != euid {
        return Some(format!("it is owned by uid {}", stat.st_uid));
    }
    if stat.st_mode & 0o022 == 0 {
        return None;
    }
    let who = if stat.st_mode & 0o002 != 0 {
        "everyone"
    } else {
        "its group"
    };
    Some(format!(
        "its mode {:04o} lets {who} write to it",
        stat.st_mode & 0o7777
    ))
}

fn create_error(role: &'static str, dir: &Path, source: io::Error) -> DirError {
    // A non-directory in the way reads better as such.
    let path = dir.to_owned();
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => DirError::Symlink { role, path },
        Ok(meta) if !meta.is_dir() => DirError::NotADirectory { role, path },
        _ => DirError::Create { role, path, source },
    }
}

pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed is a valid `stat`; fstat fills it on success.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a `stat`.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    Ok(stat)
}
