//! `cargo xtask package`: the Debian package, built with cargo-deb from the
//! release binary (the one `cargo xtask container` puts in the image), the
//! man pages and completions `oomtrace-pages` renders from the command
//! line, and the files under deploy/ (oomtrace/Cargo.toml,
//! `[package.metadata.deb]`); then lintian, which must find no error.
//!
//! `cargo xtask test` also installs it on this machine and checks it the
//! way an operator would meet it ([`check_installed`]).
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};

use crate::target_dir;

/// Built by `cargo xtask setup` with `cargo install --locked`.
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// lintian: the checks; dpkg-dev: dpkg-shlibdeps for `depends = "$auto"`;
/// man-db and bash-completion: what the installed package is checked with.
pub const PACKAGES: &[&str] = &["lintian", "dpkg-dev", "man-db", "bash-completion"];
const NAME: &str = "oomtrace";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds target/package/oomtrace_<version>_amd64.deb and runs lintian on it.
pub fn build() -> Result<PathBuf> {
    crate::run(crate::cargo().args(["build", "--release", "-p", NAME, "--bin", NAME]))?;
    render_pages()?;
    let deb = target_dir().join(format!("package/{NAME}_{VERSION}_amd64.deb"));
    crate::run(
        crate::cargo()
            .args(["deb", "-p", NAME, "--no-build", "--output"])
            .arg(&deb),
    )?;
    lintian(&deb)?;
    Ok(deb)
}

/// target/release/pages: where oomtrace/Cargo.toml's assets take them
/// from, man pages and the changelog compressed (`gzip -9n`: reproducible).
fn render_pages() -> Result<()> {
    crate::run(crate::cargo().args(["build", "-p", NAME, "--bin", "oomtrace-pages"]))?;
    let pages = target_dir().join("release/pages");
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
