//! `cargo xtask container`: the image of deploy/container/Containerfile,
//! built with buildah for amd64 and arm64 into one manifest list
//! (`localhost/oomtrace:multiarch`), and the amd64 one run with podman the
//! way the DaemonSet runs it.
//!
//! Nothing is pulled (the image is `FROM scratch`): the release binary and
//! the libraries `ldd` lists are laid out under `rootfs/` of a build context
//! in the target directory. buildah and podman use a storage of their own
//! there (vfs driver), so a user's containers are never touched. Then, in
//! the image: `oomtrace --version`, and `oomtrace doctor --json` with the
//! DaemonSet's capabilities, host pid namespace and read-only mounts, whose
//! record must match the schema and agree with `doctor` run on the host.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::{
    arch::Arch,
    target_dir,
    vm::{check::Schema, initramfs::shared_libraries},
};

/// runc rather than crun: crun refuses hosts with cgroup v1 and v2 mounted
/// side by side (hybrid), which this project tests on.
const PACKAGES: &[&str] = &["buildah", "podman", "runc"];
const IMAGE: &str = "localhost/oomtrace:latest";
/// The multi-arch image: a manifest list of the amd64 image and the arm64 one.
const MANIFEST: &str = "localhost/oomtrace:multiarch";
/// deploy/kubernetes/daemonset.yaml's capabilities.
const CAPABILITIES: &str = "BPF,PERFMON,DAC_READ_SEARCH,SYSLOG,SYS_RESOURCE,SYS_NICE";

pub fn run() -> Result<()> {
    crate::apt_install(PACKAGES)?;
    crate::run(crate::cargo().args(["build", "--release", "-p", "oomtrace", "--bin", "oomtrace"]))?;
    let work = target_dir().join("container");
    let tool = Tool { work: &work };
    // A manifest list left by an earlier run would keep its old images.
    let _ = tool.output("buildah", &["manifest", "rm", MANIFEST]);
    tool.output("buildah", &["manifest", "create", MANIFEST])?;
    for arch in [Arch::X86_64, Arch::Arm64] {
        build_image(&tool, arch)?;
    }
    let platforms =
        manifest_platforms(&tool.output("buildah", &["manifest", "inspect", MANIFEST])?)?;
    ensure!(
        platforms == ["amd64", "arm64"],
        "{MANIFEST} holds {platforms:?}, expected amd64 and arm64"
    );
    eprintln!("xtask: {MANIFEST}: linux/amd64 and linux/arm64");

    let version = tool.podman_run(&["--version"])?;
    let expected = format!("oomtrace {}", env!("CARGO_PKG_VERSION"));
    ensure!(
        version.trim() == expected,
        "--version in the image: {version:?}, expected {expected:?}"
    );
    eprintln!("xtask: in the image: {}", version.trim());

    let inside = tool.podman_run(&["--host-root", "/host", "doctor", "--json"])?;
    Schema::new()?.check_lines(&inside)?;
    let outside = crate::run_output(
        Command::new(target_dir().join("release/oomtrace")).args(["doctor", "--json"]),
    )?;
    agree(&parse(&inside)?, &parse(&outside)?)?;
    eprintln!("xtask: doctor in the image: {}", inside.trim());
    Ok(())
}

/// The image of `arch` from its release binary (the host's is tagged
/// [`IMAGE`] and run below; arm64's is cross-built and only built: FROM
/// scratch with COPY runs nothing of the target's), added to [`MANIFEST`].
fn build_image(tool: &Tool<'_>, arch: Arch) -> Result<()> {
    let binary = if arch == Arch::X86_64 {
        target_dir().join("release/oomtrace")
    } else {
        crate::cross::build_release(arch)?.0
    };
    let context = tool.work.join(format!("context-{}", arch.debian()));
    let _ = fs::remove_dir_all(&context);
    lay_out_rootfs(arch, &binary, &context.join("rootfs"))?;
    let containerfile = crate::workspace_root().join("deploy/container/Containerfile");
    let platform = format!("linux/{}", arch.debian());
    let mut args = vec![
        "bud",
        "--quiet",
        "--isolation",
        "chroot",
        "--platform",
        &platform,
        "--manifest",
        MANIFEST,
        "-f",
    ];
    let containerfile = containerfile.to_string_lossy();
    args.push(&containerfile);
    if arch == Arch::X86_64 {
        args.extend(["-t", IMAGE]);
    }
    let context = context.to_string_lossy();
    args.push(&context);
    tool.output("buildah", &args)?;
    Ok(())
}

/// The architectures of a `buildah manifest inspect` document, sorted.
fn manifest_platforms(inspect: &str) -> Result<Vec<String>> {
    let document: Value = serde_json::from_str(inspect).context("the manifest list's JSON")?;
    let mut platforms: Vec<String> = document["manifests"]
        .as_array()
        .context("the manifest list has no manifests")?
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str().map(str::to_owned))
        .collect();
    platforms.sort();
    Ok(platforms)
}

/// `binary` at /usr/bin/oomtrace and each library at its own path (the
/// host's from ldd; another architecture's from its cross sysroot).
fn lay_out_rootfs(arch: Arch, binary: &Path, rootfs: &Path) -> Result<()> {
    let mut files: Vec<(PathBuf, PathBuf)> =
        vec![(binary.to_owned(), rootfs.join("usr/bin/oomtrace"))];
    let libraries: Vec<(String, PathBuf)> = if arch == Arch::X86_64 {
        shared_libraries(binary)?
            .into_iter()
            .map(|l| (l.to_string_lossy().into_owned(), l))
            .collect()
    } else {
        crate::cross::shared_libraries(arch, binary)?
    };
    for (path, library) in libraries {
        let inside = rootfs.join(path.trim_start_matches('/'));
        files.push((fs::canonicalize(&library)?, inside));
    }
    for (from, to) in files {
        fs::create_dir_all(to.parent().context("a path in the rootfs")?)?;
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    // Dump volume mount point; the root filesystem runs read-only.
    fs::create_dir_all(rootfs.join("var/lib/oomtrace"))?;
    Ok(())
}

struct Tool<'a> {
    work: &'a Path,
}

impl Tool<'_> {
    /// buildah or podman on the private storage under the target directory.
    fn output(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut command = Command::new(program);
        command
            .arg("--root")
            .arg(self.work.join("storage"))
            .arg("--runroot")
            .arg(self.work.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        crate::run_output(&mut command)
    }

    /// The image as the DaemonSet runs it: host pids, only its
    /// capabilities, a read-only root, the host's BTF and tracefs, its
    /// cgroups and /proc under `--host-root /host`, read-only, /dev/kmsg. seccomp is unconfined like a pod without a
    /// seccompProfile. The rlimits are set because podman's defaults ask
    /// for more open files and processes than a host without
    /// CAP_SYS_RESOURCE may grant; oomtrace needs a few dozen of each.
    fn podman_run(&self, args: &[&str]) -> Result<String> {
        let mut full = vec![
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--network",
            "none",
            "--pid",
            "host",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--cap-add",
            CAPABILITIES,
            "--security-opt",
            "seccomp=unconfined",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=8192:8192",
            "-v",
            "/sys/kernel/btf:/sys/kernel/btf:ro",
            "-v",
            "/sys/kernel/tracing:/sys/kernel/tracing:ro",
            "-v",
            "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
            "-v",
            "/proc:/host/proc:ro",
            "--device",
            "/dev/kmsg:/dev/kmsg:r",
            IMAGE,
        ];
        full.extend_from_slice(args);
        self.output("podman", &full)
    }
}

fn parse(doctor: &str) -> Result<Value> {
    serde_json::from_str(doctor.trim()).with_context(|| format!("doctor's JSON: {doctor}"))
}

/// The image sees the node as the host does: same backend and hooks, and
/// the same verdict on BTF, tracefs, fentry, kprobes and the kernel log.
fn agree(inside: &Value, outside: &Value) -> Result<()> {
    ensure!(
        inside["start_error"].is_null(),
        "the tracer did not start in the image: {inside}"
    );
    ensure!(
        inside["backend"] == outside["backend"],
        "backend in the image {}, on the host {}",
        inside["backend"],
        outside["backend"]
    );
    let ok = |doctor: &Value, name: &str| {
        doctor["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["ok"].clone())
    };
    for name in ["btf", "tracefs", "fentry", "kprobes", "kmsg"] {
        ensure!(
            ok(inside, name) == ok(outside, name),
            "{name}: {:?} in the image, {:?} on the host",
            ok(inside, name),
            ok(outside, name)
        );
    }
    let attached = |doctor: &Value| -> Vec<String> {
        doctor["hooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["attached"] == true)
            .filter_map(|h| h["hook"].as_str().map(str::to_owned))
            .collect()
    };
    ensure!(
        attached(inside) == attached(outside),
        "hooks attached in the image {:?}, on the host {:?}",
        attached(inside),
        attached(outside)
    );
    Ok(())
}
