//! Kubernetes names on this machine's kernel: real cgroup v1 memcgs under
//! kubelet-shaped paths (cgroupfs and systemd drivers), a temp `--host-root`
//! with containerd's or CRI-O's bundle directories and the kubelet's log
//! directories laid out as they lay them out (its proc and sys are symlinks
//! to the host's), a real OOM kill in the container memcg, and the decision
//! naming namespace/pod/container as laid out; and the same pod laid out
//! inside another cgroup, where nobody may name it.
mod support;

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};
use support::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    Containerd,
    Crio,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Driver {
    Cgroupfs,
    Systemd,
}

/// Where the names come from in a test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// The runtime's bundle exists for the whole test.
    Bundle,
    /// The bundle is removed once the tracer runs, as the runtime removes
    /// it when the container dies: the name must come from the tracer's cache.
    BundleGone,
    /// No bundle, only the kubelet's log directories.
    LogsOnly,
}

const NAMESPACE: &str = "shop";
const CONTAINER: &str = "cart";

/// One pod with one container: ids unique to this process and test.
struct Pod {
    uid: String,
    id: String,
    name: String,
}

impl Pod {
    fn new(salt: u32) -> Self {
        let n = std::process::id();
        Pod {
            uid: format!(
                "{n:08x}-{salt:04x}-4000-8000-{:012x}",
                u64::from(n) * 31 + u64::from(salt)
            ),
            id: format!("{n:08x}{salt:08x}{}", "0123456789abcdef".repeat(3)),
            name: format!("cart-{n}-{salt}"),
        }
    }
}

/// The container memcg's path below the v1 root, as the kubelet and the
/// runtime name it (burstable QoS), from the outermost directory in.
fn memcg_dirs(driver: Driver, runtime: Runtime, pod: &Pod) -> Vec<String> {
    match driver {
        Driver::Cgroupfs => vec![
            "kubepods".into(),
            "burstable".into(),
            format!("pod{}", pod.uid),
            match runtime {
                Runtime::Containerd => pod.id.clone(),
                Runtime::Crio => format!("crio-{}", pod.id),
            },
        ],
        Driver::Systemd => {
            let uid = pod.uid.replace('-', "_");
            vec![
                "kubepods.slice".into(),
                "kubepods-burstable.slice".into(),
                format!("kubepods-burstable-pod{uid}.slice"),
                match runtime {
                    Runtime::Containerd => format!("cri-containerd-{}.scope", pod.id),
                    Runtime::Crio => format!("crio-{}.scope", pod.id),
                },
            ]
        }
    }
}

/// The bundle's `linux.cgroupsPath`, as the kubelet hands it to the runtime:
/// the cgroupfs path, or the systemd driver's `slice:prefix:id`.
fn cgroups_path(driver: Driver, runtime: Runtime, pod: &Pod) -> String {
    let dirs = memcg_dirs(driver, runtime, pod);
    match driver {
        Driver::Cgroupfs => format!("/{}", dirs.join("/")),
        Driver::Systemd => {
            let prefix = match runtime {
                Runtime::Containerd => "cri-containerd",
                Runtime::Crio => "crio",
            };
            format!("{}:{prefix}:{}", dirs[2], pod.id)
        }
    }
}

/// The kubelet-shaped memcgs; the container's holds the limit. Removed
/// innermost first on drop (a parent only when no one else uses it).
struct KubeCgroups {
    leaf: TestCgroup,
    made: Vec<PathBuf>,
}

impl KubeCgroups {
    fn create(dirs: &[String], limit_bytes: u64) -> Self {
        let mut path = PathBuf::from(MEMCG_V1);
        let mut made = Vec::new();
        for dir in dirs {
            path.push(dir);
            if !path.exists() {
                fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
                made.push(path.clone());
            }
        }
        fs::write(path.join("memory.limit_in_bytes"), limit_bytes.to_string()).unwrap();
        made.pop();
        let relative = format!("/{}", dirs.join("/"));
        KubeCgroups {
            leaf: TestCgroup { path, relative },
            made,
        }
    }
}

impl Drop for KubeCgroups {
    fn drop(&mut self) {
        oomtrace_core::cgroup::throwaway::remove_cgroup(&self.leaf.path);
        for dir in self.made.iter().rev() {
            // Busy when a parallel test still uses it: that test removes it.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The bundle's config.json, where and as the runtime writes it.
fn bundle_file(root: &Path, runtime: Runtime, id: &str) -> PathBuf {
    match runtime {
        Runtime::Containerd => root
            .join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
            .join(id)
            .join("config.json"),
        Runtime::Crio => root
            .join("run/containers/storage/overlay-containers")
            .join(id)
            .join("userdata/config.json"),
    }
}

fn write_bundle(root: &Path, runtime: Runtime, driver: Driver, pod: &Pod) {
    let annotations = match runtime {
        Runtime::Containerd => json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-namespace": NAMESPACE,
            "io.kubernetes.cri.sandbox-name": pod.name,
            "io.kubernetes.cri.sandbox-uid": pod.uid,
            "io.kubernetes.cri.container-name": CONTAINER,
        }),
        Runtime::Crio => json!({
            "io.container.manager": "cri-o",
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.pod.namespace": NAMESPACE,
            "io.kubernetes.pod.name": pod.name,
            "io.kubernetes.pod.uid": pod.uid,
            "io.kubernetes.container.name": CONTAINER,
        }),
    };
    let spec = json!({
        "ociVersion": "1.1.0",
        "process": {"args": ["/cart"]},
        "annotations": annotations,
        "linux": {"cgroupsPath": cgroups_path(driver, runtime, pod)},
    });
    let file = bundle_file(root, runtime, &pod.id);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(file, spec.to_string()).unwrap();
}

fn write_logs(root: &Path, pod: &Pod) {
    let dir = root
        .join("var/log/pods")
        .join(format!("{NAMESPACE}_{}_{}", pod.name, pod.uid))
        .join(CONTAINER);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("0.log"), "").unwrap();
    let links = root.join("var/log/containers");
    fs::create_dir_all(&links).unwrap();
    symlink(
        dir.join("0.log"),
        links.join(format!(
            "{}_{NAMESPACE}_{CONTAINER}-{}.log",
            pod.name, pod.id
        )),
    )
    .unwrap();
}

/// A host root as a container would see the host under /host: proc and sys
/// are the host's (symlinks here), run and var/log hold what the runtime and
/// the kubelet wrote.
fn host_root() -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("oomtrace-k8s-root-")
        .tempdir()
        .unwrap();
    symlink("/proc", root.path().join("proc")).unwrap();
    symlink("/sys", root.path().join("sys")).unwrap();
    root
}

fn oom_in_a_pod(runtime: Runtime, driver: Driver, layout: Layout, salt: u32) -> Value {
    oom_in_a_pod_with(runtime, driver, layout, salt, &[])
}

fn oom_in_a_pod_with(
    runtime: Runtime,
    driver: Driver,
    layout: Layout,
    salt: u32,
    extra: &[&str],
) -> Value {
    require_root();
    let pod = Pod::new(salt);
    let root = host_root();
    if layout != Layout::LogsOnly {
        write_bundle(root.path(), runtime, driver, &pod);
    }
    if layout == Layout::LogsOnly {
        write_logs(root.path(), &pod);
    }
    let cgroups = KubeCgroups::create(&memcg_dirs(driver, runtime, &pod), 64 << 20);
    // The --cgroup path as seen through the host root, as in a container.
    let scope = root
        .path()
        .join("sys/fs/cgroup/memory")
        .join(cgroups.leaf.relative.trim_start_matches('/'));
    let root_arg = root.path().to_str().unwrap();
    let mut args = vec![
        "--host-root",
        root_arg,
        "--cgroup",
        scope.to_str().unwrap(),
        "--count",
        "1",
    ];
    args.extend_from_slice(extra);
    let (mut tracer, _) = Tracer::start_json(&args);
    if layout == Layout::BundleGone {
        let id_dir = match runtime {
            Runtime::Containerd => bundle_file(root.path(), runtime, &pod.id)
                .parent()
                .unwrap()
                .to_owned(),
            Runtime::Crio => bundle_file(root.path(), runtime, &pod.id)
                .parent()
                .and_then(Path::parent)
                .unwrap()
                .to_owned(),
        };
        fs::remove_dir_all(id_dir).unwrap();
    }
    let log = KernelLog::open();
    let mut hog = Hog::start("k8shog", &cgroups.leaf, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed(), "the hog was not SIGKILLed");
    let decision = tracer.next_record("decision");
    assert!(tracer.wait_exit().success());

    // The kernel's own report says the hog died in that memcg.
    assert_eq!(u64_of(&decision["victim"]["pid"]), u64::from(killed.pid));
    assert_eq!(decision["victim"]["memcg"], cgroups.leaf.relative.as_str());
    let c = &decision["container"];
    assert_eq!(c["k8s.namespace.name"], NAMESPACE, "{c}");
    assert_eq!(c["k8s.pod.name"], pod.name.as_str(), "{c}");
    assert_eq!(c["k8s.container.name"], CONTAINER, "{c}");
    assert_eq!(c["k8s.pod.uid"], pod.uid.as_str(), "{c}");
    assert_eq!(c["container.id"], pod.id.as_str(), "{c}");
    assert_eq!(c["qos_class"], "burstable");
    let expected_source = match (layout, runtime) {
        (Layout::LogsOnly, _) => "kubelet_logs",
        (_, Runtime::Containerd) => "containerd_bundle",
        (_, Runtime::Crio) => "crio_bundle",
    };
    assert_eq!(c["names_source"], expected_source, "{c}");
    let explanation = decision["explanation"].to_string();
    assert!(
        explanation.contains(&format!("{NAMESPACE}/{}", pod.name)),
        "{explanation}"
    );
    decision
}

#[test]
fn containerd_cgroupfs_driver_names_the_pod() {
    oom_in_a_pod(Runtime::Containerd, Driver::Cgroupfs, Layout::Bundle, 1);
}

#[test]
fn containerd_systemd_driver_names_the_pod() {
    oom_in_a_pod(Runtime::Containerd, Driver::Systemd, Layout::Bundle, 2);
}

#[test]
fn crio_cgroupfs_driver_names_the_pod() {
    oom_in_a_pod(Runtime::Crio, Driver::Cgroupfs, Layout::Bundle, 3);
}

#[test]
fn crio_systemd_driver_names_the_pod_and_its_dump_keeps_them() {
    let dumps = tempfile::tempdir().unwrap();
    let dir = dumps.path().to_str().unwrap();
    let live = oom_in_a_pod_with(
        Runtime::Crio,
        Driver::Systemd,
        Layout::Bundle,
        4,
        &["--dump-dir", dir],
    );
    // Read back where the node's files are gone: the dump carries the names.
    let (code, stdout, stderr) = run_oomtrace(&["report", "--json", dir]);
    assert_eq!(code, 0, "{stderr}");
    let rebuilt: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_schema_valid(&rebuilt);
    assert_eq!(rebuilt["container"], live["container"]);
}

#[test]
fn a_container_whose_bundle_is_gone_keeps_its_names() {
    oom_in_a_pod(Runtime::Containerd, Driver::Systemd, Layout::BundleGone, 5);
    oom_in_a_pod(Runtime::Crio, Driver::Cgroupfs, Layout::BundleGone, 6);
}

#[test]
fn the_kubelet_logs_name_a_container_without_a_bundle() {
    oom_in_a_pod(Runtime::Crio, Driver::Systemd, Layout::LogsOnly, 7);
    oom_in_a_pod(Runtime::Containerd, Driver::Cgroupfs, Layout::LogsOnly, 8);
}

#[test]
fn the_card_shows_namespace_pod_container() {
    require_root();
    let pod = Pod::new(9);
    let root = host_root();
    write_bundle(root.path(), Runtime::Containerd, Driver::Cgroupfs, &pod);
    let cgroups = KubeCgroups::create(
        &memcg_dirs(Driver::Cgroupfs, Runtime::Containerd, &pod),
        64 << 20,
    );
    let mut tracer = Tracer::start(&[
        "--host-root",
        root.path().to_str().unwrap(),
        "--cgroup",
        cgroups.leaf.path.to_str().unwrap(),
        "--count",
        "1",
    ]);
    tracer.wait_line("oomtrace: tracing OOM kills");
    let mut hog = Hog::start("k8shog", &cgroups.leaf, &[]);
    assert!(hog.wait_killed());
    let line = tracer.wait_line("  container  ");
    assert!(
        line.starts_with(&format!(
            "  container  {NAMESPACE}/{}/{CONTAINER} cri ",
            pod.name
        )),
        "{line}"
    );
    assert!(tracer.wait_exit().success());
}

#[test]
fn a_host_root_without_a_memory_hierarchy_is_one_clear_line() {
    require_root();
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_oomtrace(&["--host-root", empty.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no memory cgroup hierarchy under"),
        "{stderr}"
    );
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET /metrics` over HTTP/1.0: the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// What one OOM in a kubelet-shaped memcg below `parent` (`None`: the
/// root, where the kubelet puts it) is called, with the pod's bundle and
/// logs on the node naming it: the decision, the kill series of the
/// `--metrics` scrape, and the card `oomtrace report` prints from the dump.
struct Named {
    pod: Pod,
    memcg: String,
    decision: Value,
    kill_series: Vec<String>,
    card: String,
}

fn oom_named_below(parent: Option<&str>, salt: u32) -> Named {
    require_root();
    let pod = Pod::new(salt);
    let root = host_root();
    write_bundle(root.path(), Runtime::Containerd, Driver::Cgroupfs, &pod);
    write_logs(root.path(), &pod);
    let mut dirs: Vec<String> = parent.map(str::to_owned).into_iter().collect();
    dirs.extend(memcg_dirs(Driver::Cgroupfs, Runtime::Containerd, &pod));
    let cgroups = KubeCgroups::create(&dirs, 64 << 20);
    let dumps = tempfile::tempdir().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (mut tracer, _) = Tracer::start_json(&[
        "--host-root",
        root.path().to_str().unwrap(),
        "--cgroup",
        cgroups.leaf.path.to_str().unwrap(),
        "--metrics",
        &metrics.to_string(),
        "--dump-dir",
        dumps.path().to_str().unwrap(),
    ]);
    let log = KernelLog::open();
    let mut hog = Hog::start("k8shog", &cgroups.leaf, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed(), "the hog was not SIGKILLed");
    let decision = tracer.next_record("decision");
    assert_eq!(u64_of(&decision["victim"]["pid"]), u64::from(killed.pid));
    assert_eq!(decision["victim"]["memcg"], cgroups.leaf.relative.as_str());
    let kill_series = scrape(metrics)
        .lines()
        .filter(|l| l.starts_with("oomtrace_oom_kills_total{"))
        .map(str::to_owned)
        .collect();
    // The dump is written by its own thread: the tracer's exit flushes it.
    send_signal(&tracer.child, libc::SIGTERM);
    assert!(tracer.wait_exit().success());
    let (code, card, stderr) = run_oomtrace(&["report", dumps.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    Named {
        pod,
        memcg: cgroups.leaf.relative.clone(),
        decision,
        kill_series,
        card,
    }
}

#[test]
fn a_pod_laid_out_at_the_root_is_named_everywhere() {
    let named = oom_named_below(None, 10);
    let c = &named.decision["container"];
    assert_eq!(c["k8s.pod.name"], named.pod.name.as_str(), "{c}");
    let pod_label = format!("pod=\"{}\"", named.pod.name);
    assert!(
        named
            .kill_series
            .iter()
            .any(|l| l.contains(&pod_label) && l.contains("memcg=\"\"")),
        "{:?}",
        named.kill_series
    );
    let shown = format!("{NAMESPACE}/{}/{CONTAINER}", named.pod.name);
    assert!(named.card.contains(&shown), "{}", named.card);
}

/// Anyone who may create cgroups can lay out `kubepods/.../pod<uid>/<id>`
/// below their own: the OOM in it is not the pod's, whose bundle and logs
/// are on the node, and nothing calls it that.
#[test]
fn the_same_pod_laid_out_inside_another_cgroup_is_named_by_nobody() {
    let parent = format!("oomtrace-spoof-{}", std::process::id());
    let named = oom_named_below(Some(&parent), 11);
    let c = &named.decision["container"];
    for key in [
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.container.name",
        "k8s.pod.uid",
    ] {
        assert_eq!(c[key], Value::Null, "{key}: {c}");
    }
    assert_ne!(c["orchestrator"], "kubernetes", "{c}");
    let memcg_label = format!("memcg=\"{}\"", named.memcg);
    assert!(
        named
            .kill_series
            .iter()
            .any(|l| l.contains(&memcg_label) && l.contains("pod=\"\"")),
        "{:?}",
        named.kill_series
    );
    assert!(
        !named
            .kill_series
            .iter()
            .any(|l| l.contains(&named.pod.name)),
        "{:?}",
        named.kill_series
    );
    assert!(!named.card.contains(&named.pod.name), "{}", named.card);
    assert!(named.card.contains(&named.memcg), "{}", named.card);
    let explanation = named.decision["explanation"].to_string();
    assert!(!explanation.contains(&named.pod.name), "{explanation}");
}
