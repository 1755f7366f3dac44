//! A real CRI: Debian's containerd, started by this test with its CRI plugin
//! on a private socket (state in the default /run/containerd, where the
//! tracer reads bundles), driven over gRPC as the kubelet drives it: a pod
//! sandbox on the host network under a kubepods cgroupfs parent, a container
//! with a memory limit that grows until the kernel kills it. The decision's
//! names must be the ones ContainerStatus and PodSandboxStatus return, its
//! victim the kernel's own kill line.
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, LinuxContainerConfig, LinuxContainerResources,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatus, PodSandboxStatusRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
    VersionRequest, runtime_service_client::RuntimeServiceClient,
};
use support::*;
use tonic::transport::{Channel, Endpoint, Uri};

/// The one image, imported from a tar (no registry): Debian's static busybox.
const IMAGE: &str = "oomtrace.test/busybox:1";
/// What the kubelet's cgroupfs driver makes for a burstable pod.
const QOS_PARENT: &str = "/kubepods/burstable";
const LIMIT_BYTES: i64 = 32 << 20;
/// Polling interval while waiting for a condition with a deadline.
const POLL: Duration = Duration::from_millis(50);

/// `containerd` with a config of its own, stopped (with its shims) on drop.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

/// The bundles of CRI containers, where the tracer reads them.
const K8S_BUNDLES: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";

impl Containerd {
    /// Fails when another containerd's CRI containers live in the shared
    /// state dir: this one would clean up their bundles as its own.
    fn start() -> Self {
        let others: Vec<_> = fs::read_dir(K8S_BUNDLES)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            others.is_empty(),
            "{K8S_BUNDLES} holds another containerd's containers ({others:?}): \
             stop it before this test"
        );
        let dir = tempfile::Builder::new()
            .prefix("oomtrace-cri-")
            .tempdir()
            .unwrap();
        for sub in ["root", "cni-bin", "cni-conf", "opt"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let config = dir.path().join("config.toml");
        fs::write(&config, containerd_config(dir.path())).unwrap();
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start containerd ({e}): install it (`cargo xtask setup`)")
            });
        Self { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Fails with containerd's own log when it died.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("containerd exited ({status}):\n{}", self.log());
        }
    }

    /// `ctr` on this containerd, in the CRI's namespace.
    fn ctr(&self, args: &[&str]) {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr ({e})"));
        assert!(
            output.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("containerd's log:\n{}", self.log());
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_shims_of(&self.socket());
    }
}

/// The tracer (uid 0 without CAP_DAC_READ_SEARCH) reads the bundles as the
/// state dir's owner: containerd makes it 0711, but keeps a mode it finds.
fn assert_state_dir_searchable() {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata("/run/containerd")
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert!(
        mode & 0o100 != 0,
        "/run/containerd is mode {mode:o}: its owner cannot search it, so no tracer \
         reads the bundles there (containerd makes it 0711)"
    );
}

/// Shims this containerd started outlive it; a sandbox that could not be
/// removed would leave one (found by the address on its command line).
fn kill_shims_of(socket: &Path) {
    let address = socket.to_str().unwrap();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        if shim
            && args
                .windows(2)
                .any(|w| w == [&b"-address"[..], address.as_bytes()])
        {
            // SAFETY: kill(2) on a shim of our own containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// CRI enabled, runc with cgroupfs on the v1 host, no CNI (host network
/// pods need none), private socket, root and plugin dirs; the state stays in
/// the default /run/containerd, where the tracer reads bundles.
fn containerd_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "/run/containerd"

[grpc]
  address = "{d}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  disable_apparmor = true
  # Without CAP_SYS_RESOURCE (a test host may lack it) runc cannot give the
  # sandbox -998: containerd then clamps to its own score, as it does in a container.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"#
    )
}

/// A docker-archive tar of one layer: Debian's static busybox as /bin/sh
/// and /bin/sleep; its default command keeps a pod sandbox alive.
fn busybox_image(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "{} is missing: install busybox-static (`cargo xtask setup`)",
        busybox.display()
    );
    let image = dir.join("image");
    let bin = image.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    run(Command::new("tar")
        .arg("-C")
        .arg(image.join("rootfs"))
        .arg("-cf")
        .arg(image.join("layer.tar"))
        .arg("."));
    let sum = run(Command::new("sha256sum").arg(image.join("layer.tar")));
    let diff_id = format!("sha256:{}", sum.split_whitespace().next().unwrap());
    let config = serde_json::json!({
        "architecture": oci_architecture(),
        "os": "linux",
        "config": {"Cmd": ["/bin/sleep", "2147483647"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    fs::write(image.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE],
        "Layers": ["layer.tar"],
    }]);
    fs::write(image.join("manifest.json"), manifest.to_string()).unwrap();
    let tar = dir.join("image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&tar)
        .args(["manifest.json", "config.json", "layer.tar"]));
    tar
}

/// This machine's architecture as OCI images name it.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The CRI's runtime service over containerd's socket, as the kubelet uses it.
struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Cri {
    /// Connects once containerd answers `Version` (it fails with its log if
    /// it exits or never answers).
    fn connect(containerd: &mut Containerd) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = containerd.socket();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            containerd.assert_running();
            let answer = runtime.block_on(async {
                let mut client = RuntimeServiceClient::new(channel(socket.clone()).await?);
                let version = client.version(VersionRequest::default()).await?;
                Ok::<_, Box<dyn std::error::Error>>((client, version.into_inner()))
            });
            match answer {
                Ok((client, version)) => {
                    assert_eq!(version.runtime_name, "containerd", "{version:?}");
                    return Self { runtime, client };
                }
                Err(e) if Instant::now() > deadline => panic!(
                    "containerd's CRI did not answer within {TIMEOUT:?} ({e}):\n{}",
                    containerd.log()
                ),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn call<T>(
        &mut self,
        what: &str,
        rpc: impl AsyncFnOnce(&mut RuntimeServiceClient<Channel>) -> Result<T, tonic::Status>,
    ) -> T {
        let client = &mut self.client;
        self.runtime
            .block_on(rpc(client))
            .unwrap_or_else(|status| panic!("CRI {what}: {status}"))
    }

    fn container_status(&mut self, id: &str) -> ContainerStatus {
        let request = ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        self.call("ContainerStatus", async |c| {
            c.container_status(request).await
        })
        .into_inner()
        .status
        .expect("ContainerStatus without a status")
    }

    fn pod_sandbox_status(&mut self, id: &str) -> PodSandboxStatus {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        self.call("PodSandboxStatus", async |c| {
            c.pod_sandbox_status(request).await
        })
        .into_inner()
        .status
        .expect("PodSandboxStatus without a status")
    }
}

async fn channel(socket: PathBuf) -> Result<Channel, tonic::transport::Error> {
    // The URI is unused: every connection goes to the socket.
    Endpoint::from_static("http://[::]")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
}

/// The pod's cgroup as the kubelet makes it before it asks for the sandbox
/// (memory hierarchy; runc makes the others). On drop, the pod's cgroups in
/// every v1 hierarchy are removed, and the QoS parents when nobody uses them.
struct PodCgroup {
    relative: String,
}

impl PodCgroup {
    fn create(uid: &str) -> Self {
        let relative = format!("{QOS_PARENT}/pod{uid}");
        let path = PathBuf::from(format!("{MEMCG_V1}{relative}"));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { relative }
    }

    fn memory_path(&self) -> PathBuf {
        PathBuf::from(format!("{MEMCG_V1}{}", self.relative))
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for hierarchy in hierarchies.flatten() {
            let pod = hierarchy.path().join(self.relative.trim_start_matches('/'));
            if pod.exists() {
                oomtrace_core::cgroup::throwaway::remove_cgroup(&pod);
            }
            // Busy when a pod of someone else lives there: left to them.
            let _ = fs::remove_dir(pod.parent().unwrap());
            let _ = fs::remove_dir(pod.parent().unwrap().parent().unwrap());
        }
    }
}

/// A pod sandbox, stopped and removed (with its containers) on drop.
struct Sandbox<'a> {
    cri: &'a mut Cri,
    id: String,
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        let id = self.id.clone();
        let _ = self.cri.runtime.block_on(async {
            self.cri
                .client
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await?;
            self.cri
                .client
                .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        });
    }
}

/// Waits (with a deadline) for the container to have exited.
fn exited(cri: &mut Cri, id: &str) -> ContainerStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = cri.container_status(id);
        if status.state == ContainerState::ContainerExited as i32 {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} did not exit within {TIMEOUT:?}: {status:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// The pids the kernel's `oom-kill:` lines put in `memcg`, and the
/// `Killed process` lines, among `lines`.
fn kills_in(lines: &[String], memcg: &str) -> (Vec<u32>, Vec<String>) {
    let task_memcg = format!(",task_memcg={memcg},");
    let pids: Vec<u32> = lines
        .iter()
        .filter(|l| l.starts_with("oom-kill:") && l.contains(&task_memcg))
        .map(|l| {
            l.split(',')
                .find_map(|f| f.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no pid in {l}"))
        })
        .collect();
    let killed = lines
        .iter()
        .filter(|l| {
            pids.iter()
                .any(|pid| l.contains(&format!("Killed process {pid} (")))
        })
        .cloned()
        .collect();
    (pids, killed)
}

#[test]
fn a_container_the_cri_oom_kills_carries_its_cri_names() {
    require_root();
    let mut containerd = Containerd::start();
    let mut cri = Cri::connect(&mut containerd);
    assert_state_dir_searchable();
    let image = busybox_image(containerd.dir.path());
    containerd.ctr(&[
        "images",
        "import",
        "--snapshotter",
        "native",
        image.to_str().unwrap(),
    ]);

    let n = std::process::id();
    let uid = format!("{n:08x}-0000-4000-8000-00000000c41d");
    let pod_cgroup = PodCgroup::create(&uid);
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("ledger-{n}"),
            uid: uid.clone(),
            namespace: "payments".into(),
            attempt: 0,
        }),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: pod_cgroup.relative.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let request = RunPodSandboxRequest {
        config: Some(pod_config.clone()),
        runtime_handler: String::new(),
    };
    let sandbox_id = cri
        .call("RunPodSandbox", async |c| c.run_pod_sandbox(request).await)
        .into_inner()
        .pod_sandbox_id;
    let sandbox = Sandbox {
        cri: &mut cri,
        id: sandbox_id,
    };

    let scope = pod_cgroup.memory_path();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", scope.to_str().unwrap(), "--count", "1"]);
    let log = KernelLog::open();

    // A shell whose one string doubles until the kernel kills it.
    let request = CreateContainerRequest {
        pod_sandbox_id: sandbox.id.clone(),
        config: Some(ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "ledger-sync".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["/bin/sh".into()],
            args: vec!["-c".into(), "x=x; while :; do x=$x$x; done".into()],
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    memory_limit_in_bytes: LIMIT_BYTES,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        sandbox_config: Some(pod_config),
    };
    let cri = &mut *sandbox.cri;
    let container_id = cri
        .call("CreateContainer", async |c| {
            c.create_container(request).await
        })
        .into_inner()
        .container_id;
    let request = StartContainerRequest {
        container_id: container_id.clone(),
    };
    cri.call("StartContainer", async |c| c.start_container(request).await);

    let decision = tracer.next_record("decision");
    assert!(tracer.wait_exit().success());
    let status = exited(cri, &container_id);
    let pod = cri.pod_sandbox_status(&sandbox.id);

    // The kernel's own lines: the one task it killed in the container's memcg.
    let memcg = format!("{}/{container_id}", pod_cgroup.relative);
    let (pids, killed) = kills_in(&log.lines_so_far(), &memcg);
    assert_eq!(pids.len(), 1, "kills in {memcg}: {pids:?}");
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(u64_of(&decision["victim"]["pid"]), u64::from(pids[0]));
    assert_eq!(decision["victim"]["memcg"], memcg.as_str());

    // The names are the CRI's own.
    let meta = pod.metadata.as_ref().expect("sandbox metadata");
    let c = &decision["container"];
    assert_eq!(c["k8s.namespace.name"], meta.namespace.as_str(), "{c}");
    assert_eq!(c["k8s.pod.name"], meta.name.as_str(), "{c}");
    assert_eq!(c["k8s.pod.uid"], meta.uid.as_str(), "{c}");
    let name = &status.metadata.as_ref().expect("container metadata").name;
    assert_eq!(c["k8s.container.name"], name.as_str(), "{c}");
    assert_eq!(c["container.id"], status.id.as_str(), "{c}");
    assert_eq!(c["names_source"], "containerd_bundle", "{c}");
    assert_eq!(c["qos_class"], "burstable", "{c}");

    // containerd saw the same kill.
    assert_eq!(status.reason, "OOMKilled", "{status:?}");
    assert_eq!(status.exit_code, 137, "{status:?}");
    assert_eq!(
        u64_of(&decision["oom_memcg"]["limit_bytes"]),
        LIMIT_BYTES as u64
    );
}
