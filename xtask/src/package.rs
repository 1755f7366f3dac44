//! `cargo xtask package`: the Debian package, built with cargo-deb from the
//! release binary of an architecture (the one `cargo xtask container` puts
//! in the image; arm64's cross-built), the man pages and completions
//! `oomtrace-pages` renders from the command line on the host (they are the
//! same for every architecture), and the files under deploy/
//! (oomtrace/Cargo.toml, `[package.metadata.deb]`); then lintian, which must
//! find no error.
//!
//! `cargo xtask test` also installs the host's package on this machine and
//! checks it the way an operator would meet it ([`check_installed`]); the
//! arm64 one, which cannot be installed here, is checked against it
//! ([`check_twin`]).
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};

use crate::{arch::Arch, target_dir};

/// Built by `cargo xtask setup` with `cargo install --locked`.
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// lintian: the checks; dpkg-dev: dpkg-shlibdeps for `depends = "$auto"`;
/// man-db and bash-completion: what the installed package is checked with.
pub const PACKAGES: &[&str] = &["lintian", "dpkg-dev", "man-db", "bash-completion"];
const NAME: &str = "oomtrace";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The binary's path in the package, the one file that differs between
/// architectures.
const BINARY: &str = "usr/bin/oomtrace";

/// Builds target/package/oomtrace_<version>_<arch>.deb and runs lintian on it.
pub fn build(arch: Arch) -> Result<PathBuf> {
    crate::cross::build_release(arch)?;
    foreign_libc(arch)?;
    render_pages(arch)?;
    let deb = target_dir().join(format!("package/{NAME}_{VERSION}_{}.deb", arch.debian()));
    let mut cargo_deb = crate::cargo();
    cargo_deb
        .args(["deb", "-p", NAME, "--no-build", "--output"])
        .arg(&deb);
    if let Some(triple) = arch.rust_target() {
        // Also reads the assets' target/release/ from target/<triple>/release/.
        cargo_deb.args(["--target", triple]);
    }
    crate::run(&mut cargo_deb)?;
    lintian(&deb)?;
    Ok(deb)
}

/// `$auto` is dpkg-shlibdeps' answer from the dpkg database: the package
/// owning each library the binary needs, and that package's symbols file.
/// For another architecture that is its C library installed multiarch
/// (`libc6:arm64`), whose symbols give the minimum versions a native build
/// gets. The cross toolchain's copy (libc6-arm64-cross) has only a shlibs
/// file, which says `libc6:arm64 (>= 2.36)`.
fn foreign_libc(arch: Arch) -> Result<()> {
    if arch.rust_target().is_none() {
        return Ok(());
    }
    let foreign = crate::run_output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if !foreign.lines().any(|a| a == arch.debian()) {
        crate::run(crate::privileged("dpkg").args(["--add-architecture", arch.debian()]))?;
    }
    crate::apt_install(&[&format!("libc6:{}", arch.debian())])
}

/// target/release/pages (target/<triple>/release/pages for another
/// architecture): where oomtrace/Cargo.toml's assets take them from, man
/// pages and the changelog compressed (`gzip -9n`: reproducible).
fn render_pages(arch: Arch) -> Result<()> {
    crate::run(crate::cargo().args(["build", "-p", NAME, "--bin", "oomtrace-pages"]))?;
    let pages = crate::cross::release_dir(arch).join("pages");
    let _ = fs::remove_dir_all(&pages);
    crate::run(Command::new(target_dir().join("debug/oomtrace-pages")).arg(&pages))?;
    let changelog = pages.join("changelog");
    fs::copy(
        crate::workspace_root().join("deploy/debian/changelog"),
        &changelog,
    )?;
    let mut gzip = Command::new("gzip");
    gzip.args(["-9n"]).arg(&changelog);
    for page in fs::read_dir(pages.join("man"))? {
        gzip.arg(page?.path());
    }
    crate::run(&mut gzip)
}

/// No error; the warnings accepted are listed, with why, in
/// docs/operations.md ("Debian package").
fn lintian(deb: &Path) -> Result<()> {
    let report = crate::run_output(
        Command::new("lintian")
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(deb),
    )?;
    eprintln!("xtask: lintian:\n{}", report.trim_end());
    Ok(())
}

/// Installs `deb` with dpkg, checks what an operator meets (the version,
/// the man page, bash completion, the unit, installed but not enabled),
/// then removes and purges it and checks nothing of it is left. Refuses to
/// run over an oomtrace package installed by someone else.
pub fn check_installed(deb: &Path) -> Result<()> {
    ensure!(
        !installed(),
        "package {NAME} is already installed; this test installs and purges it: `dpkg --purge {NAME}` first"
    );
    crate::run(crate::privileged("dpkg").arg("-i").arg(deb))?;
    let purge = Purge;
    let files = owned_paths()?;
    let version = crate::run_output(Command::new("/usr/bin/oomtrace").arg("--version"))?;
    ensure!(
        version.trim() == format!("{NAME} {VERSION}"),
        "installed oomtrace --version says {version:?}, the crate is {VERSION}"
    );
    for page in [NAME, "oomtrace-report"] {
        let found = crate::run_output(Command::new("man").args(["-w", page]))?;
        ensure!(
            files.contains(Path::new(found.trim())),
            "man -w {page}: {found:?} is not the package's page"
        );
    }
    let completed = crate::run_output(Command::new("bash").args(["-c", COMPLETE, "bash", "--cg"]))?;
    ensure!(
        completed.trim() == "--cgroup",
        "bash completes `oomtrace --cg` to {completed:?}, not --cgroup"
    );
    let unit = files
        .iter()
        .find(|p| p.ends_with("systemd/system/oomtrace.service"))
        .context("the package has no oomtrace.service")?;
    crate::run(Command::new("systemd-analyze").arg("verify").arg(unit))?;
    let enabled = Command::new("systemctl")
        .args(["is-enabled", "oomtrace.service"])
        .output()?;
    ensure!(
        String::from_utf8_lossy(&enabled.stdout).trim() == "disabled",
        "the unit must be installed, not enabled: systemctl is-enabled says {:?}",
        String::from_utf8_lossy(&enabled.stdout).trim()
    );
    drop(purge);
    left_behind(&files)
}

/// bash's own completion loader finds the installed script by the
/// command's name, as an interactive shell does; `$1` is the word typed.
const COMPLETE: &str = r#"
source /usr/share/bash-completion/bash_completion || exit 2
__load_completion oomtrace || { echo "no completion found for oomtrace" >&2; exit 3; }
spec=$(complete -p oomtrace)
[[ $spec =~ -F\ ([^ ]+) ]] || { echo "no completion function: $spec" >&2; exit 4; }
COMP_WORDS=(oomtrace "$1"); COMP_CWORD=1
COMP_LINE="oomtrace $1"; COMP_POINT=${#COMP_LINE}
"${BASH_REMATCH[1]}" oomtrace "$1" oomtrace
printf '%s\n' "${COMPREPLY[@]}"
"#;

fn installed() -> bool {
    crate::dpkg_installed(NAME)
}

/// Every path `dpkg -L` lists for the installed package.
fn owned_paths() -> Result<BTreeSet<PathBuf>> {
    let listing = crate::run_output(Command::new("dpkg").args(["-L", NAME]))?;
    Ok(listing
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(PathBuf::from)
        .collect())
}

/// After `dpkg -r` and `dpkg --purge`: no file of the package exists, and a
/// directory that does is another package's too; dpkg has no record of it,
/// and systemd's package state names no oomtrace unit.
fn left_behind(files: &BTreeSet<PathBuf>) -> Result<()> {
    ensure!(!installed(), "{NAME} is still installed after dpkg --purge");
    let status =
        crate::run_output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", NAME]))
            .unwrap_or_default();
    ensure!(
        status.is_empty() || status == "not-installed",
        "dpkg still records {NAME} as {status:?} after --purge"
    );
    let mut left = Vec::new();
    for path in files {
        let Ok(meta) = fs::symlink_metadata(path) else {
            continue;
        };
        let shared = meta.is_dir()
            && Command::new("dpkg-query")
                .arg("-S")
                .arg(path)
                .output()
                .is_ok_and(|o| o.status.success());
        if !shared {
            left.push(path.display().to_string());
        }
    }
    for dir in [
        "/etc/systemd/system",
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-masked",
    ] {
        left.extend(files_named_oomtrace(Path::new(dir)));
    }
    if !left.is_empty() {
        bail!("left behind after dpkg -r and --purge: {left:?}");
    }
    Ok(())
}

fn files_named_oomtrace(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_named_oomtrace(&path));
        } else if entry.file_name().to_string_lossy().contains(NAME) {
            found.push(path.display().to_string());
        }
    }
    found
}

/// `--check`: the host's package installed, checked and purged here;
/// another architecture's, which dpkg refuses here, compared with the
/// host's twin.
pub fn check(arch: Arch, deb: &Path) -> Result<()> {
    match arch {
        Arch::X86_64 => check_installed(deb),
        Arch::Arm64 => check_twin(deb, arch, &build(Arch::X86_64)?),
    }
}

/// `deb`, built for `arch`, against `twin`, the host's package that
/// [`check_installed`] installs: the same control fields but the
/// architecture (`arch`'s), the installed size and the Depends versions;
/// the same Depends packages, computed from its own binary's libraries; the
/// same paths, modes and owners; every file, maintainer scripts included,
/// the same bytes but the binary, which is an ELF for `arch`.
pub fn check_twin(deb: &Path, arch: Arch, twin: &Path) -> Result<()> {
    let (fields, twin_fields) = (control_fields(deb)?, control_fields(twin)?);
    ensure!(
        fields.get("Architecture").map(String::as_str) == Some(arch.debian()),
        "{}: Architecture {:?}, not {}",
        deb.display(),
        fields.get("Architecture"),
        arch.debian()
    );
    let depends = |f: &BTreeMap<String, String>| depends_names(f.get("Depends"));
    ensure!(
        depends(&fields) == depends(&twin_fields),
        "Depends {:?}, the host's package {:?}: dpkg-shlibdeps found no library of {} (is libc6:{} installed?)",
        fields.get("Depends"),
        twin_fields.get("Depends"),
        arch.debian(),
        arch.debian()
    );
    for (key, value) in &twin_fields {
        if !["Architecture", "Installed-Size", "Depends"].contains(&key.as_str()) {
            ensure!(
                fields.get(key) == Some(value),
                "control field {key}: {:?}, the host's package {value:?}",
                fields.get(key)
            );
        }
    }
    ensure!(
        listing(deb)? == listing(twin)?,
        "the paths, modes or owners of {} differ from {}'s",
        deb.display(),
        twin.display()
    );
    let unpacked = target_dir().join(format!("package/{}", arch.debian()));
    let tree = unpack(deb, &unpacked)?;
    let twin_tree = unpack(twin, &target_dir().join("package/host"))?;
    for (path, bytes) in &twin_tree {
        if path != "DEBIAN/control" && path != BINARY {
            ensure!(
                tree.get(path) == Some(bytes),
                "{path} differs from the host's package's"
            );
        }
    }
    ensure!(
        tree.len() == twin_tree.len(),
        "{} has other files than the host's package",
        deb.display()
    );
    let header = crate::run_output(Command::new("readelf").arg("-h").arg(unpacked.join(BINARY)))?;
    let machine = header
        .lines()
        .find_map(|l| l.trim().strip_prefix("Machine:"))
        .map(str::trim);
    ensure!(
        machine == Some(arch.elf_machine()),
        "{BINARY} in {} is built for {machine:?}, not {}",
        deb.display(),
        arch.elf_machine()
    );
    eprintln!(
        "xtask: {} matches its host twin; Depends: {}",
        deb.display(),
        fields.get("Depends").map_or("", String::as_str)
    );
    Ok(())
}

/// `dpkg-deb -f`: every control field, continuation lines included.
fn control_fields(deb: &Path) -> Result<BTreeMap<String, String>> {
    let text = crate::run_output(Command::new("dpkg-deb").arg("-f").arg(deb))?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                value.push('\n');
                value.push_str(line);
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.to_owned(), value.trim().to_owned());
            last = Some(key.to_owned());
        }
    }
    Ok(fields)
}

/// The package names of a Depends field, without versions.
fn depends_names(depends: Option<&String>) -> BTreeSet<String> {
    depends
        .into_iter()
        .flat_map(|d| d.split([',', '|']))
        .filter_map(|d| d.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// `dpkg-deb -c`: each entry's mode, owner and path (sizes and times are
/// the files' own, compared by [`unpack`]).
fn listing(deb: &Path) -> Result<Vec<String>> {
    let text = crate::run_output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    Ok(text
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.get(5..).unwrap_or_default().join(" ");
            format!("{} {} {path}", fields[0], fields.get(1).unwrap_or(&""))
        })
        .collect())
}

/// `dpkg-deb -R` into `dir`: every regular file by its path there, the
/// control files under DEBIAN/.
fn unpack(deb: &Path, dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let _ = fs::remove_dir_all(dir);
    crate::run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(dir))?;
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next)? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let relative = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                files.insert(relative, fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

/// `dpkg -r`, then `dpkg --purge`, at the end of the check or when it fails.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        for action in ["-r", "--purge"] {
            if let Err(e) = crate::run(crate::privileged("dpkg").args([action, NAME])) {
                eprintln!("xtask: {e:#}");
            }
        }
    }
}
