//! The guest's initramfs: a gzip-compressed cpio (newc) archive written here
//! directly, so that it can hold `/dev/console` and root-owned files without
//! root or mknod on the host.
use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::arch::Arch;

/// Names `oomtrace-hog` is linked under in the guest: the kernel's comm of
/// each workload (see tests/vm/init), and the bench's `faultstorm`.
pub const WORKLOADS: &[&str] = &[
    "hog64",
    "hierhog",
    "manykid",
    "adj500",
    "grower",
    "grpA",
    "grpB",
    "grpC",
    "normal",
    "minus1000",
    "unkillable",
    "stuckhog",
    "pfleak",
    "sleeper",
    "grower2k",
    "globalhog",
    "thphog",
    "thphog2",
    "leaker",
    "neighbour",
    "fastleaker",
    "fastnbr",
    "shmwriter",
    "shmnbr",
    "reader",
    "dirtywriter",
    "steady",
    "sawtooth",
    "burst",
];

enum Entry {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

/// An archive being assembled: paths without a leading slash.
#[derive(Default)]
pub struct Archive {
    entries: Vec<(String, Entry)>,
    dirs: BTreeSet<String>,
}

impl Archive {
    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                self.entries.push((prefix.clone(), Entry::Dir));
            }
        }
    }

    pub fn dir(&mut self, path: &str) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        if self.dirs.insert(path.to_owned()) {
            self.entries.push((path.to_owned(), Entry::Dir));
        }
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, executable: bool) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.entries
            .push((path.to_owned(), Entry::File { data, executable }));
    }

    pub fn copy(&mut self, path: &str, from: &Path) -> Result<()> {
        let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(from)?.permissions().mode() & 0o111 != 0
        };
        self.file(path, data, executable);
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.entries
            .push((path.to_owned(), Entry::Symlink(target.to_owned())));
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.entries
            .push((path.to_owned(), Entry::CharDevice { major, minor }));
    }

    /// The archive in cpio "newc" format (uncompressed).
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match entry {
                Entry::Dir => (0o040755, &[], 2, (0, 0)),
                Entry::File { data, executable } => (
                    if *executable { 0o100755 } else { 0o100644 },
                    data,
                    1,
                    (0, 0),
                ),
                Entry::Symlink(target) => (0o120777, target.as_bytes(), 1, (0, 0)),
                Entry::CharDevice { major, minor } => (0o020600, &[], 1, (*major, *minor)),
            };
            newc_entry(&mut out, ino as u32 + 1, mode, nlink, rdev, path, data);
        }
        newc_entry(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn newc_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: reproducible archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Shared libraries `ldd` lists for `binary` (absolute paths, loader included).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_ldd(&text))
}

/// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
/// "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once(" => ") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The guest's shell parses the init script (`sh -n`) before a guest boots
/// it: a syntax error would otherwise end init, a kernel panic mid-boot.
fn check_syntax(busybox: &Path, script: &Path) -> Result<()> {
    crate::run_output(Command::new(busybox).args(["sh", "-n"]).arg(script))?;
    Ok(())
}

/// busybox's applet names (`busybox --list`).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let list = crate::run_output(Command::new(busybox).arg("--list"))?;
    Ok(list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// The guest's userland besides oomtrace: its architecture and the static
/// busybox built for it.
pub struct Userland {
    pub arch: Arch,
    pub busybox: PathBuf,
}

impl Userland {
    /// The host's architecture with the host's busybox-static.
    pub fn host() -> Self {
        Self {
            arch: Arch::X86_64,
            busybox: PathBuf::from("/bin/busybox"),
        }
    }
}

/// Builds oomtrace and oomtrace-hog in release mode for `userland`'s
/// architecture, then the guest initramfs around them and `init_script`
/// (the VM tests' and the bench's). `extra`: files to add, each (path in
/// the guest, file on the host).
pub fn build_release(
    userland: &Userland,
    out: &Path,
    init_script: &Path,
    extra: &[(&str, &Path)],
) -> Result<()> {
    let (oomtrace, hog) = crate::cross::build_release(userland.arch)?;
    build(out, &oomtrace, &hog, userland, init_script, extra)
}

/// Builds the guest initramfs (gzip-compressed newc) at `out`, with `extra`
/// files, each (path in the guest, file on the host).
pub fn build(
    out: &Path,
    oomtrace: &Path,
    hog: &Path,
    userland: &Userland,
    init_script: &Path,
    extra: &[(&str, &Path)],
) -> Result<()> {
    let busybox = userland.busybox.as_path();
    let host_busybox = Path::new("/bin/busybox");
    if !shared_libraries(host_busybox)?.is_empty() {
        bail!(
            "{} is dynamically linked; install busybox-static",
            host_busybox.display()
        );
    }
    // The host's busybox of the same version speaks for a foreign one.
    check_syntax(host_busybox, init_script)?;
    let mut archive = Archive::default();
    for dir in ["dev", "proc", "sys", "run", "tmp", "bin"] {
        archive.dir(dir);
    }
    // The kernel opens /dev/console for init before init can mount devtmpfs.
    archive.char_device("dev/console", 5, 1);
    archive.copy("bin/busybox", busybox)?;
    for applet in busybox_applets(host_busybox)? {
        // No `init` applet: should /init fail, the kernel would fall back to
        // it and wait forever instead of failing.
        if applet != "busybox" && applet != "init" && applet != "linuxrc" {
            archive.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    archive.copy("bin/oomtrace", oomtrace)?;
    archive.copy("bin/oomtrace-hog", hog)?;
    for name in WORKLOADS {
        archive.symlink(&format!("bin/{name}"), "oomtrace-hog");
    }
    let mut libraries = Vec::new();
    for binary in [oomtrace, hog] {
        if userland.arch == Arch::X86_64 {
            for library in shared_libraries(binary)? {
                let path = library.to_str().context("library path is not UTF-8")?;
                libraries.push((path.to_owned(), library));
            }
        } else {
            libraries.extend(crate::cross::shared_libraries(userland.arch, binary)?);
        }
    }
    libraries.sort();
    libraries.dedup();
    for (path, library) in libraries {
        archive.copy(&path, &library)?;
    }
    for (path, from) in extra {
        archive.copy(path, from)?;
    }
    let init =
        fs::read(init_script).with_context(|| format!("reading {}", init_script.display()))?;
    archive.file("init", init, true);

    let mut gzip = Command::new("gzip")
        .args(["-1", "-n"])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(out).with_context(|| format!("creating {}", out.display()))?)
        .spawn()
        .context("starting gzip")?;
    gzip.stdin
        .take()
        .context("gzip stdin")?
        .write_all(&archive.to_newc())?;
    if !gzip.wait()?.success() {
        bail!("gzip failed writing {}", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5f1f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f9d5f2bc000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9d5ec1e000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f9d5f2f2000)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn newc_archive_is_what_cpio_reads() {
        let mut archive = Archive::default();
        archive.file("bin/hello", b"hi\n".to_vec(), true);
        archive.symlink("bin/alias", "hello");
        archive.char_device("dev/console", 5, 1);
        let bytes = archive.to_newc();
        assert!(bytes.len().is_multiple_of(4));
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("bin\0") && text.contains("bin/hello\0") && text.contains("hi\n"));
        assert!(text.contains("TRAILER!!!\0"));

        // The cpio tool (`cargo xtask setup` installs it) lists the same entries.
        let mut cpio = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("needs cpio (run `cargo xtask setup`): {e}"));
        cpio.stdin.take().unwrap().write_all(&bytes).unwrap();
        let output = cpio.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let listing = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 5, "{listing}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("bin/hello"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("bin/alias -> hello"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("crw-------") && l.ends_with("dev/console"))
        );
    }
}
