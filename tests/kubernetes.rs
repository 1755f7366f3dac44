//! Kubernetes names on this machine's kernel: real cgroup v1 memcgs under
//! kubelet-shaped paths (cgroupfs and systemd drivers), a temp `--host-root`
//! with containerd's or CRI-O's bundle directories and the kubelet's log
//! directories laid out as they lay them out (its proc and sys are symlinks
//! to the host's), a real OOM kill in the container memcg, and the decision
//! naming namespace/pod/container as laid out.
mod support;

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
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

fn write_bundle(root: &Path, runtime: Runtime, pod: &Pod) {
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
    let spec =
        json!({"ociVersion": "1.1.0", "process": {"args": ["/cart"]}, "annotations": annotations});
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
        write_bundle(root.path(), runtime, &pod);
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
    write_bundle(root.path(), Runtime::Containerd, &pod);
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
