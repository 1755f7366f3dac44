//! Release builds of oomtrace and oomtrace-hog for an architecture:
//! the host's with the stable toolchain, another with the installed nightly
//! (`-Zbuild-std`, so no target needs installing) and Debian's cross gcc as
//! linker. oomtrace's build.rs builds the eBPF object with aya-build, which
//! sets `bpf_target_arch` from the target, so the kprobe programs read that
//! architecture's `pt_regs`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::arch::Arch;

/// Debian packages a cross build for `arch` needs (linker and C library).
pub fn packages(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &[],
        Arch::Arm64 => &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
    }
}

/// The cross toolchain's sysroot: the target's shared libraries are in its `lib`.
fn sysroot(arch: Arch) -> Option<&'static Path> {
    match arch {
        Arch::X86_64 => None,
        Arch::Arm64 => Some(Path::new("/usr/aarch64-linux-gnu")),
    }
}

/// The directory the release binaries for `arch` land in.
pub fn release_dir(arch: Arch) -> PathBuf {
    let target = crate::target_dir();
    match arch.rust_target() {
        None => target.join("release"),
        Some(triple) => target.join(triple).join("release"),
    }
}

/// Builds oomtrace and oomtrace-hog in release mode for `arch`; returns
/// their paths.
pub fn build_release(arch: Arch) -> Result<(PathBuf, PathBuf)> {
    let crates = ["-p", "oomtrace", "-p", "oomtrace-hog"];
    let bins = ["--bin", "oomtrace", "--bin", "oomtrace-hog"];
    match arch.rust_target() {
        None => crate::run(
            crate::cargo()
                .args(["build", "--release"])
                .args(crates)
                .args(bins),
        )?,
        Some(triple) => {
            crate::apt_install(packages(arch))?;
            let linker_var = format!(
                "CARGO_TARGET_{}_LINKER",
                triple.to_uppercase().replace('-', "_")
            );
            let mut cargo = std::process::Command::new("rustup");
            cargo
                .current_dir(crate::workspace_root())
                .args(["run", "nightly", "cargo", "build", "--release"])
                .args(["-Zbuild-std=std,panic_abort", "--target", triple])
                .args(crates)
                .args(bins)
                .env(linker_var, format!("{}-linux-gnu-gcc", gnu_prefix(arch)))
                // The stable toolchain's cargo set these for xtask itself.
                .env_remove("RUSTC")
                .env_remove("RUSTC_WORKSPACE_WRAPPER")
                .env_remove("RUSTDOC")
                .env_remove("CARGO");
            crate::run(&mut cargo)?;
        }
    }
    let dir = release_dir(arch);
    Ok((dir.join("oomtrace"), dir.join("oomtrace-hog")))
}

/// The GNU triple's architecture: `aarch64` of `aarch64-linux-gnu-gcc`.
fn gnu_prefix(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "aarch64",
    }
}

/// The shared libraries a cross-built `binary` needs, loader included, as
/// (path in the guest, file on the host): its `NEEDED` entries (and theirs)
/// from the cross sysroot, placed in the guest's /lib, and its interpreter
/// at the path it names.
pub fn shared_libraries(arch: Arch, binary: &Path) -> Result<Vec<(String, PathBuf)>> {
    let Some(sysroot) = sysroot(arch) else {
        bail!("{} is the host's architecture: use ldd", arch.name());
    };
    let lib = sysroot.join("lib");
    let readelf = format!("{}-linux-gnu-readelf", gnu_prefix(arch));
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![binary.to_owned()];
    while let Some(file) = pending.pop() {
        let text = crate::run_output(
            std::process::Command::new(&readelf)
                .args(["-d", "-l", "-W"])
                .arg(&file),
        )?;
        for line in text.lines() {
            let guest_path = if let Some(interp) = line
                .split_once("[Requesting program interpreter: ")
                .and_then(|(_, r)| r.strip_suffix(']'))
            {
                interp.to_owned()
            } else if let Some(name) = line
                .split_once("(NEEDED)")
                .and_then(|(_, r)| r.split_once('[')?.1.strip_suffix(']'))
            {
                format!("/lib/{name}")
            } else {
                continue;
            };
            if out.iter().any(|(g, _)| *g == guest_path) {
                continue;
            }
            let name = guest_path.rsplit('/').next().unwrap_or_default();
            let host = lib.join(name);
            host.exists().then_some(()).with_context(|| {
                format!("{} needs {name}, not in {}", file.display(), lib.display())
            })?;
            pending.push(host.clone());
            out.push((guest_path, host));
        }
    }
    Ok(out)
}
