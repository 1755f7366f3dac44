//! Names on real runtimes: Debian's dockerd, docker-compose, podman and
//! containerd, each started by the test (cgroupfs driver on this cgroup v1
//! host) and stopped at its end; an image imported from a tar of Debian's
//! static busybox (no registry); a shell that grows until the kernel kills
//! it under the runtime's memory limit. The oracles: the runtime's own
//! `inspect` (name, image, id, OOMKilled, exit 137) and the kernel's
//! `Killed process` line. A runtime that cannot be started fails the test
//! with the reason.
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::*;

/// Doubles a string until the memcg's limit kills the shell.
const GROW: &str = "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done";
/// The limit each container gets (`-m 48m`).
const LIMIT: &str = "48m";
const LIMIT_BYTES: u64 = 48 << 20;
/// Debian's docker.io client, which matches its dockerd (a newer client
/// elsewhere on PATH may speak an API version this daemon refuses).
const DOCKER: &str = "/usr/bin/docker";
const DAEMON_TIMEOUT: Duration = Duration::from_secs(90);

/// `program` under coreutils' `timeout` (exit status 124 when it fires): a
/// container that is never killed fails the test instead of hanging it.
fn bounded(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["--signal=KILL", &TIMEOUT.as_secs().to_string(), program]);
    c
}

/// Runs a command to success and returns its stdout; panics with its stderr.
fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e} (run `cargo xtask setup`)"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The exit code of a command that is expected to be OOM-killed.
fn exit_code(command: &mut Command) -> i32 {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    status.code().unwrap_or(-1)
}

/// A daemon started for one test, stopped on drop (SIGTERM, then SIGKILL).
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command`, its output in `log`, and waits until `ready`.
    fn start(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
        ready: impl Fn() -> bool,
    ) -> Self {
        let out = fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (run `cargo xtask setup`)"));
        let mut daemon = Daemon { name, child, log };
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        while !ready() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{name} exited ({status}): {}", daemon.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within {DAEMON_TIMEOUT:?}: {}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        send_signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM: killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A runtime's parent memcg at the root (`/docker`), made before the tracer
/// starts so that it can be the tracer's scope; removed on drop if the test
/// made it (after the daemon, which is declared after it, stopped).
struct ParentCgroup {
    path: PathBuf,
    made: bool,
}

impl ParentCgroup {
    fn new(name: &str) -> Self {
        let path = Path::new(MEMCG_V1).join(name);
        let made = !path.exists();
        if made {
            fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        }
        ParentCgroup { path, made }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        if self.made {
            oomtrace_core::cgroup::throwaway::remove_cgroup(&self.path);
        }
    }
}

/// A tar of a root filesystem holding Debian's static busybox as /bin/sh.
struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    fn new() -> Self {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: install busybox-static (cargo xtask setup)"
        );
        let dir = tempfile::Builder::new()
            .prefix("oomtrace-rootfs-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("rootfs/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(busybox, bin.join("busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(dir.path().join("rootfs"))
            .arg("-cf")
            .arg(dir.path().join("rootfs.tar"))
            .arg("."));
        Rootfs { dir }
    }

    fn dir(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn tar(&self) -> PathBuf {
        self.dir.path().join("rootfs.tar")
    }

    /// `<cli> import [options] <tar> <image>`: the tar as an image.
    fn import(&self, mut cli: Command, options: &[&str], image: &str) {
        run(cli.arg("import").args(options).arg(self.tar()).arg(image));
    }
}

/// The tracer on the runtime's parent memcg, until one decision.
fn tracer_on(parent: &ParentCgroup) -> Tracer {
    Tracer::start_json(&["--cgroup", parent.arg(), "--count", "1"]).0
}

/// The decision, checked against the kernel's kill line: one kill, of the
/// pid the decision names as the victim.
fn decision_of_the_kill(tracer: &mut Tracer, log: &KernelLog) -> Value {
    let decision = tracer.next_record("decision");
    let pid = u64_of(&decision["victim"]["pid"]);
    let killed = log.killed_pids_so_far();
    assert_eq!(
        killed.iter().map(|p| u64::from(*p)).collect::<Vec<_>>(),
        vec![pid],
        "the kernel's kills vs the decision's victim: {decision}"
    );
    assert!(tracer.wait_exit().success());
    decision
}

/// The runtime's own view: OOMKilled and exit 137.
fn assert_oom_killed(inspect: &Value) {
    let state = &inspect["State"];
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
}

// ---- Docker -----------------------------------------------------------------

/// dockerd on its own socket and exec root (default data root, as the
/// tracer reads it), cgroupfs driver, no network setup.
struct Docker {
    // Dropped first: the daemon stops before its run directory goes.
    _daemon: Daemon,
    rootfs: Rootfs,
    run_dir: tempfile::TempDir,
}

const DOCKER_IMAGE: &str = "oomtrace-busybox:1";

impl Docker {
    fn start(rootfs: Rootfs) -> Self {
        let run_dir = tempfile::Builder::new()
            .prefix("oomtrace-dockerd-")
            .tempdir_in("/run")
            .unwrap();
        let socket = run_dir.path().join("docker.sock");
        let mut command = Command::new("dockerd");
        command
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--exec-root")
            .arg(run_dir.path().join("exec"))
            .arg("--pidfile")
            .arg(run_dir.path().join("docker.pid"))
            .args([
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ]);
        let host = format!("unix://{}", socket.display());
        let daemon = Daemon::start(
            "dockerd",
            command,
            run_dir.path().join("dockerd.log"),
            || {
                Command::new(DOCKER)
                    .args(["-H", &host, "version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        let docker = Docker {
            _daemon: daemon,
            rootfs,
            run_dir,
        };
        docker.rootfs.import(docker.cli(), &[], DOCKER_IMAGE);
        docker
    }

    fn host(&self) -> String {
        format!(
            "unix://{}",
            self.run_dir.path().join("docker.sock").display()
        )
    }

    fn cli(&self) -> Command {
        let mut c = bounded(DOCKER);
        c.args(["-H", &self.host()]);
        c
    }

    fn inspect(&self, what: &str) -> Value {
        let text = run(self.cli().args(["inspect", what]));
        let all: Value = serde_json::from_str(&text).unwrap();
        all[0].clone()
    }
}

/// Removes a container (and a compose project) whatever the test's outcome.
struct Remove<'a>(&'a Docker, Vec<String>);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        let _ = self.0.cli().arg("rm").arg("-f").args(&self.1).output();
    }
}

fn assert_docker_names(c: &Value, inspect: &Value) {
    assert_eq!(c["container.runtime"], "docker", "{c}");
    assert_eq!(c["container.id"], inspect["Id"], "{c}");
    let name = inspect["Name"].as_str().unwrap().trim_start_matches('/');
    assert_eq!(c["container.name"], name, "{c}");
    assert_eq!(c["container.image.name"], inspect["Config"]["Image"], "{c}");
    assert_eq!(
        c["memory_limit_bytes"], inspect["HostConfig"]["Memory"],
        "{c}"
    );
    assert_eq!(c["names_source"], "docker_config", "{c}");
}

#[test]
fn docker_run_oom_is_named_as_docker_inspect_names_it() {
    require_root();
    let parent = ParentCgroup::new("docker");
    let docker = Docker::start(Rootfs::new());
    let name = format!("oomtrace-ledger-{}", std::process::id());
    let _remove = Remove(&docker, vec![name.clone()]);
    let mut tracer = tracer_on(&parent);
    let log = KernelLog::open();
    let code = exit_code(docker.cli().args([
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "-m",
        LIMIT,
        DOCKER_IMAGE,
        "/bin/sh",
        "-c",
        GROW,
    ]));
    assert_eq!(code, 137, "docker run's exit status");
    let decision = decision_of_the_kill(&mut tracer, &log);

    let inspect = docker.inspect(&name);
    assert_oom_killed(&inspect);
    assert_eq!(u64_of(&inspect["HostConfig"]["Memory"]), LIMIT_BYTES);
    assert_docker_names(&decision["container"], &inspect);
    assert!(
        decision["explanation"].to_string().contains(&name),
        "{}",
        decision["explanation"]
    );
    // Post-mortem: `oomtrace report` on the saved line names it again from
    // what the line carried (it reads no runtime state).
    let saved = tempfile::tempdir().unwrap();
    let line = saved.path().join("oomtrace.jsonl");
    fs::write(&line, format!("{decision}\n")).unwrap();
    let (code, out, err) = run_oomtrace(&["report", "--json", line.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let reported: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["type"] == "decision")
        .unwrap_or_else(|| panic!("no decision in the report: {out}"));
    assert_docker_names(&reported["container"], &inspect);
}

#[test]
fn docker_compose_service_oom_is_named_by_project_and_service() {
    require_root();
    let parent = ParentCgroup::new("docker");
    let docker = Docker::start(Rootfs::new());
    // Compose 1.x keeps [a-z0-9_-] of a project name.
    let project = format!("oomtraceledger{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  sync:\n    image: {DOCKER_IMAGE}\n    \
             network_mode: none\n    mem_limit: {LIMIT}\n    command: [\"/bin/sh\", \"-c\", \"{}\"]\n",
            // Compose substitutes `$x` itself: `$$` is a `$`.
            GROW.replace('$', "$$")
        ),
    )
    .unwrap();
    let compose = || {
        let mut c = bounded("docker-compose");
        c.current_dir(dir.path())
            .env("DOCKER_HOST", docker.host())
            .args(["--no-ansi", "-p", &project]);
        c
    };
    struct Down<F: Fn() -> Command>(F);
    impl<F: Fn() -> Command> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)().args(["down", "--remove-orphans"]).output();
        }
    }
    let _down = Down(compose);
    let mut tracer = tracer_on(&parent);
    let log = KernelLog::open();
    run(compose().args(["up", "-d", "sync"]));
    let id = run(compose().args(["ps", "-q", "sync"])).trim().to_owned();
    // `docker wait` returns when the container ends: the event, awaited.
    let code = run(docker.cli().args(["wait", &id]));
    assert_eq!(code.trim(), "137", "the service's exit status");
    let decision = decision_of_the_kill(&mut tracer, &log);

    let inspect = docker.inspect(&id);
    assert_oom_killed(&inspect);
    let c = &decision["container"];
    assert_docker_names(c, &inspect);
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(
        c["compose"]["project"], labels["com.docker.compose.project"],
        "{c}"
    );
    assert_eq!(
        c["compose"]["service"], labels["com.docker.compose.service"],
        "{c}"
    );
    assert_eq!(
        c["compose"]["number"].to_string(),
        labels["com.docker.compose.container-number"]
            .as_str()
            .unwrap(),
        "{c}"
    );
    assert!(
        decision["explanation"]
            .to_string()
            .contains(&format!("compose {project}/sync")),
        "{}",
        decision["explanation"]
    );
}

// ---- Podman -----------------------------------------------------------------

const PODMAN_IMAGE: &str = "localhost/oomtrace-busybox:1";

/// Podman's CLI on the cgroupfs manager, with a containers.conf of the
/// test's: this host's hard limits are above what the OCI runtime may set,
/// and a pod's infra container takes no `--ulimit` of its own.
struct Podman {
    conf: tempfile::NamedTempFile,
    rootfs: Rootfs,
}

impl Podman {
    fn new() -> Self {
        let conf = tempfile::NamedTempFile::new().unwrap();
        fs::write(
            conf.path(),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )
        .unwrap();
        let podman = Podman {
            conf,
            rootfs: Rootfs::new(),
        };
        podman.rootfs.import(podman.cli(), &[], PODMAN_IMAGE);
        podman
    }

    fn cli(&self) -> Command {
        let mut c = bounded("podman");
        // conmon may leave an `oom` marker in the working directory it
        // inherits when it sees the OOM event (one was left in the tree):
        // the test's temporary directory, not the tree.
        c.current_dir(self.rootfs.dir.path())
            .env("CONTAINERS_CONF", self.conf.path())
            .args(["--cgroup-manager", "cgroupfs"]);
        c
    }

    fn inspect(&self, what: &[&str]) -> Value {
        let all: Value = serde_json::from_str(&run(self.cli().arg("inspect").args(what))).unwrap();
        all[0].clone()
    }

    /// `podman run --name NAME --memory LIMIT [extra] IMAGE GROW` until the
    /// kernel kills it: exit 137.
    fn run_until_killed(&self, name: &str, extra: &[&str]) {
        let code = exit_code(
            self.cli()
                .args(["run", "--name", name, "--memory", LIMIT])
                .args(extra)
                .args([PODMAN_IMAGE, "/bin/sh", "-c", GROW]),
        );
        assert_eq!(code, 137, "podman run's exit status");
    }
}

/// Removes a podman container or pod whatever the test's outcome.
struct PodmanRm<'a>(&'a Podman, &'static str, String);

impl Drop for PodmanRm<'_> {
    fn drop(&mut self) {
        let rm = match self.1 {
            "pod" => vec!["pod", "rm", "-f", "-t", "0"],
            _ => vec!["rm", "-f", "-t", "0"],
        };
        let _ = self.0.cli().args(rm).arg(&self.2).output();
    }
}

/// The decision's Podman names against `podman inspect`'s.
fn assert_podman_names(decision: &Value, inspect: &Value) {
    // Podman 4.3's conmon on cgroup v1 misses the memcg's OOM event of a
    // container that dies at once (`OOMKilled: false`): its exit status and
    // the kernel's kill line are the oracles here.
    assert_eq!(inspect["State"]["ExitCode"], 137, "{}", inspect["State"]);
    let c = &decision["container"];
    assert_eq!(c["container.runtime"], "podman", "{c}");
    assert_eq!(c["container.id"], inspect["Id"], "{c}");
    assert_eq!(c["container.name"], inspect["Name"], "{c}");
    assert_eq!(c["container.image.name"], inspect["ImageName"], "{c}");
    assert_eq!(c["names_source"], "podman_storage", "{c}");
}

#[test]
fn podman_run_oom_is_named_as_podman_inspect_names_it() {
    require_root();
    let parent = ParentCgroup::new("libpod_parent");
    let podman = Podman::new();
    let name = format!("oomtrace-ledger-{}", std::process::id());
    let _rm = PodmanRm(&podman, "container", name.clone());
    let mut tracer = tracer_on(&parent);
    let log = KernelLog::open();
    podman.run_until_killed(&name, &["--network", "none"]);
    let decision = decision_of_the_kill(&mut tracer, &log);

    let inspect = podman.inspect(&[&name]);
    assert_podman_names(&decision, &inspect);
    assert!(decision["container"]["podman.pod.id"].is_null());
}

#[test]
fn podman_pod_member_oom_is_named_by_its_pod() {
    require_root();
    let parent = ParentCgroup::new("libpod_parent");
    let podman = Podman::new();
    // The pod's infra container: a local image that sleeps (no pause image
    // can be pulled, and Debian's podman builds one only with catatonit).
    let infra = "localhost/oomtrace-infra:1";
    let sleep = r#"ENTRYPOINT ["/bin/sh", "-c", "sleep 100000"]"#;
    podman
        .rootfs
        .import(podman.cli(), &["--change", sleep], infra);
    // A pod with an infra container (its own cgroup holds its members'),
    // and one without (no pod cgroup: libpod's spec names the pod; the
    // network is then each member's own).
    let with_infra: [&[&str]; 2] = [&["--infra-image", infra, "--network", "none"], &[]];
    let without: [&[&str]; 2] = [&["--infra=false"], &["--network", "none"]];
    for (kind, [pod_args, member_args]) in [("infra", with_infra), ("noinfra", without)] {
        let pod = format!("oomtrace-ledger-{kind}-{}", std::process::id());
        let name = format!("oomtrace-ledger-{kind}-member-{}", std::process::id());
        let _rm_pod = PodmanRm(&podman, "pod", pod.clone());
        run(podman
            .cli()
            .args(["pod", "create", "--name", &pod])
            .args(pod_args));
        let mut tracer = tracer_on(&parent);
        let log = KernelLog::open();
        podman.run_until_killed(&name, &[&["--pod", &pod], member_args].concat());
        let decision = decision_of_the_kill(&mut tracer, &log);

        let inspect = podman.inspect(&[&name]);
        assert_podman_names(&decision, &inspect);
        let pod_inspect: Value =
            serde_json::from_str(&run(podman.cli().args(["pod", "inspect", &pod]))).unwrap();
        let c = &decision["container"];
        assert_eq!(pod_inspect["Name"], pod.as_str());
        assert_eq!(c["podman.pod.id"], pod_inspect["Id"], "{kind}: {c}");
        assert_eq!(c["podman.pod.id"], inspect["Pod"], "{kind}: {c}");
        // The name is libpod's own, from its BoltDB.
        assert_eq!(c["podman.pod.name"], pod_inspect["Name"], "{kind}: {c}");
        let owner = format!("pod {}/{name}", pod_inspect["Name"].as_str().unwrap());
        assert!(
            decision["explanation"].to_string().contains(&owner),
            "{kind}: {owner}: {}",
            decision["explanation"]
        );
    }
}

// ---- containerd (ctr) -------------------------------------------------------

#[test]
fn ctr_run_oom_in_its_own_namespace_is_named() {
    require_root();
    let namespace = format!("oomtrace-{}", std::process::id());
    let parent = ParentCgroup::new(&namespace);
    let rootfs = Rootfs::new();
    let run_dir = tempfile::Builder::new()
        .prefix("oomtrace-containerd-")
        .tempdir_in("/run")
        .unwrap();
    let socket = run_dir.path().join("containerd.sock");
    // Only what `ctr run` needs: no CRI plugin.
    let config = run_dir.path().join("config.toml");
    fs::write(
        &config,
        "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    )
    .unwrap();
    let mut command = Command::new("containerd");
    command
        .arg("--config")
        .arg(&config)
        .arg("--address")
        .arg(&socket);
    let ctr = || {
        let mut c = bounded("ctr");
        c.arg("--address").arg(&socket).args(["-n", &namespace]);
        c
    };
    let _daemon = Daemon::start(
        "containerd",
        command,
        run_dir.path().join("containerd.log"),
        || {
            socket.exists()
                && ctr()
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        },
    );
    let id = "ledger-sync";
    struct Rm<F: Fn() -> Command>(F, &'static str);
    impl<F: Fn() -> Command> Drop for Rm<F> {
        fn drop(&mut self) {
            let _ = (self.0)()
                .args(["task", "kill", "-s", "SIGKILL", self.1])
                .output();
            let _ = (self.0)().args(["task", "rm", "-f", self.1]).output();
            let _ = (self.0)().args(["container", "rm", self.1]).output();
        }
    }
    let _rm = Rm(ctr, id);
    let mut tracer = tracer_on(&parent);
    let log = KernelLog::open();
    // `--rootfs`: the first argument is a root filesystem, not an image.
    let code = exit_code(
        ctr()
            .args([
                "run",
                "--rootfs",
                "--memory-limit",
                &LIMIT_BYTES.to_string(),
            ])
            .arg(rootfs.dir())
            .args([id, "/bin/sh", "-c", GROW]),
    );
    assert_eq!(code, 137, "ctr run's exit status");
    let decision = decision_of_the_kill(&mut tracer, &log);

    // containerd's own view of the container: its id and namespace.
    let info: Value = serde_json::from_str(&run(ctr().args(["container", "info", id]))).unwrap();
    assert_eq!(info["ID"], id);
    let c = &decision["container"];
    assert_eq!(decision["victim"]["memcg"], format!("/{namespace}/{id}"));
    assert_eq!(c["container.runtime"], "containerd", "{c}");
    assert_eq!(c["container.name"], info["ID"], "{c}");
    assert_eq!(c["runtime_namespace"], namespace.as_str(), "{c}");
    assert_eq!(c["names_source"], "containerd_bundle", "{c}");
}
