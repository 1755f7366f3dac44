//! Every cgroup path shape × driver × runtime against bundle and log
//! directories laid out in a temp root as containerd, CRI-O and the kubelet
//! lay them out; the cache; hostile bundles.
use std::{fs, path::Path};

use serde_json::json;

use super::*;
use crate::cgroup::container::{Container, attribute};

const ID: &str = "8d083e51abd2e1096bc106e308144c7efe71ae92f3c12e6be5bc7bc78f5cc751";
const SANDBOX: &str = "c74c9066c84204e342455b5103570d40c6cd1e7d05507892c7faf046a9efb2f0";
const UID: &str = "42968967-a234-4826-a0d4-f90eaf4ef52e";
const STATIC_UID: &str = "c88c76b6d0633dc6dec680931147da2b";

#[derive(Clone, Copy, Debug)]
enum Rt {
    Containerd,
    Crio,
}

#[derive(Clone, Copy, Debug)]
enum Driver {
    Cgroupfs,
    Systemd,
}

/// The memcg path the kubelet and `rt` give a container `id` of pod `uid`.
fn memcg_path(driver: Driver, rt: Rt, qos: &str, uid: &str, id: &str) -> String {
    match driver {
        Driver::Cgroupfs => {
            let qos_dir = if qos == "guaranteed" {
                String::new()
            } else {
                format!("/{qos}")
            };
            let leaf = match rt {
                Rt::Containerd => id.to_owned(),
                Rt::Crio => format!("crio-{id}"),
            };
            format!("/kubepods{qos_dir}/pod{uid}/{leaf}")
        }
        Driver::Systemd => {
            let uid = uid.replace('-', "_");
            let (qos_slice, pod_slice) = if qos == "guaranteed" {
                (String::new(), format!("kubepods-pod{uid}.slice"))
            } else {
                (
                    format!("/kubepods-{qos}.slice"),
                    format!("kubepods-{qos}-pod{uid}.slice"),
                )
            };
            let scope = match rt {
                Rt::Containerd => format!("cri-containerd-{id}.scope"),
                Rt::Crio => format!("crio-{id}.scope"),
            };
            format!("/kubepods.slice{qos_slice}/{pod_slice}/{scope}")
        }
    }
}

/// The `linux.cgroupsPath` the kubelet and `rt` write into the container's
/// bundle: the cgroupfs path, or the systemd driver's `slice:prefix:id`.
fn cgroups_path(driver: Driver, rt: Rt, qos: &str, uid: &str, id: &str) -> String {
    match driver {
        Driver::Cgroupfs => memcg_path(driver, rt, qos, uid, id),
        Driver::Systemd => {
            let uid = uid.replace('-', "_");
            let slice = match qos {
                "guaranteed" => format!("kubepods-pod{uid}.slice"),
                _ => format!("kubepods-{qos}-pod{uid}.slice"),
            };
            let prefix = match rt {
                Rt::Containerd => "cri-containerd",
                Rt::Crio => "crio",
            };
            format!("{slice}:{prefix}:{id}")
        }
    }
}

/// The cgroupfs containerd path of [`UID`]/[`ID`] (burstable), in OCI form.
fn the_containerd_path() -> String {
    memcg_path(Driver::Cgroupfs, Rt::Containerd, "burstable", UID, ID)
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn bundle_path(root: &Path, rt: Rt, id: &str) -> PathBuf {
    match rt {
        Rt::Containerd => root.join(CONTAINERD_BUNDLES).join(id).join("config.json"),
        Rt::Crio => root
            .join(CRIO_BUNDLES)
            .join(id)
            .join("userdata/config.json"),
    }
}

/// A bundle as the runtime writes it: an OCI spec whose annotations name the
/// pod and whose `linux.cgroupsPath` is `cgroup`.
fn bundle(root: &Path, rt: Rt, id: &str, uid: &str, container: Option<&str>, cgroup: &str) {
    let annotations = match (rt, container) {
        (Rt::Containerd, Some(name)) => json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": SANDBOX,
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-name": "cart-7d9f8b6c5-x2x9z",
            "io.kubernetes.cri.sandbox-uid": uid,
            "io.kubernetes.cri.container-name": name,
            "io.kubernetes.cri.image-name": "registry.example/cart:1",
        }),
        (Rt::Containerd, None) => json!({
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": id,
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-name": "cart-7d9f8b6c5-x2x9z",
            "io.kubernetes.cri.sandbox-uid": uid,
            "io.kubernetes.cri.sandbox-log-directory": format!("/var/log/pods/shop_cart-7d9f8b6c5-x2x9z_{uid}"),
        }),
        (Rt::Crio, name) => json!({
            "io.container.manager": "cri-o",
            "io.kubernetes.cri-o.ContainerType": if name.is_some() { "container" } else { "sandbox" },
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.name": "cart-7d9f8b6c5-x2x9z",
            "io.kubernetes.pod.uid": uid,
            "io.kubernetes.container.name": name.unwrap_or("POD"),
        }),
    };
    let spec = json!({
        "ociVersion": "1.1.0",
        "process": {"args": ["/cart"], "env": ["PATH=/bin"]},
        "root": {"path": "rootfs"},
        "annotations": annotations,
        "linux": {"cgroupsPath": cgroup, "resources": {}},
    });
    write(&bundle_path(root, rt, id), &spec.to_string());
}

/// The container of [`UID`]/[`ID`] under containerd and cgroupfs.
fn the_containerd_pod() -> Container {
    attribute(&the_containerd_path()).unwrap()
}

/// A host root holding only the pod log directory `name`, and the memcg
/// path of the pod's container (cgroupfs, containerd).
fn pod_log_dir_only(name: &str) -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join(POD_LOGS).join(name)).unwrap();
    let path = memcg_path(Driver::Cgroupfs, Rt::Containerd, "burstable", UID, ID);
    (root, path)
}

fn logs(root: &Path, uid: &str, container: &str, id: &str) {
    let pod_dir = root
        .join(POD_LOGS)
        .join(format!("shop_cart-7d9f8b6c5-x2x9z_{uid}"))
        .join(container);
    write(&pod_dir.join("0.log"), "");
    let link = root
        .join(CONTAINER_LOGS)
        .join(format!("cart-7d9f8b6c5-x2x9z_shop_{container}-{id}.log"));
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(pod_dir.join("0.log"), link).unwrap();
}

fn resolve(root: &Path, path: &str) -> Option<KubeNames> {
    let c = attribute(path).expect("a kubelet path");
    KubeResolver::new(root).resolve(&c, path)
}

fn expect(names: Option<KubeNames>, container: Option<&str>, source: &str) {
    let names = names.expect("names resolved");
    assert_eq!(names.namespace, "shop");
    assert_eq!(names.pod, "cart-7d9f8b6c5-x2x9z");
    assert_eq!(names.container.as_deref(), container);
    assert_eq!(names.source, source);
}

#[test]
fn every_shape_driver_and_runtime_resolves_from_the_bundle() {
    for rt in [Rt::Containerd, Rt::Crio] {
        for driver in [Driver::Cgroupfs, Driver::Systemd] {
            for qos in ["guaranteed", "burstable", "besteffort"] {
                for uid in [UID, STATIC_UID] {
                    let root = tempfile::tempdir().unwrap();
                    let cgroup = cgroups_path(driver, rt, qos, uid, ID);
                    bundle(root.path(), rt, ID, uid, Some("cart"), &cgroup);
                    let path = memcg_path(driver, rt, qos, uid, ID);
                    let source = match rt {
                        Rt::Containerd => source::CONTAINERD,
                        Rt::Crio => source::CRIO,
                    };
                    let names = resolve(root.path(), &path);
                    assert_eq!(
                        names.as_ref().and_then(|n| n.pod_uid.as_deref()),
                        Some(uid),
                        "{path}"
                    );
                    expect(names, Some("cart"), source);
                }
            }
        }
    }
}

#[test]
fn the_systemd_drivers_docker_scope_in_a_pod_resolves_through_the_logs() {
    let root = tempfile::tempdir().unwrap();
    logs(root.path(), UID, "cart", ID);
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/docker-{ID}.scope",
        UID.replace('-', "_")
    );
    expect(resolve(root.path(), &path), Some("cart"), source::LOGS);
}

#[test]
fn crio_container_child_cgroup_resolves() {
    let root = tempfile::tempdir().unwrap();
    let cgroup = cgroups_path(Driver::Systemd, Rt::Crio, "burstable", UID, ID);
    bundle(root.path(), Rt::Crio, ID, UID, Some("cart"), &cgroup);
    let path = format!(
        "{}/container",
        memcg_path(Driver::Systemd, Rt::Crio, "burstable", UID, ID)
    );
    expect(resolve(root.path(), &path), Some("cart"), source::CRIO);
}

#[test]
fn sandboxes_name_the_pod_but_no_container() {
    for rt in [Rt::Containerd, Rt::Crio] {
        let root = tempfile::tempdir().unwrap();
        let path = memcg_path(Driver::Cgroupfs, rt, "burstable", UID, SANDBOX);
        bundle(root.path(), rt, SANDBOX, UID, None, &path);
        let names = resolve(root.path(), &path).expect("the pause container's pod");
        assert_eq!(names.container, None, "{rt:?}");
        assert_eq!(names.pod, "cart-7d9f8b6c5-x2x9z");
    }
}

#[test]
fn a_pod_level_cgroup_takes_the_names_of_its_sandbox_once_seen() {
    let root = tempfile::tempdir().unwrap();
    let sandbox = memcg_path(Driver::Cgroupfs, Rt::Containerd, "burstable", UID, SANDBOX);
    bundle(root.path(), Rt::Containerd, SANDBOX, UID, None, &sandbox);
    let mut resolver = KubeResolver::new(root.path());
    let path = format!("/kubepods/burstable/pod{UID}");
    let pod = attribute(&path).unwrap();
    assert_eq!(resolver.resolve(&pod, &path), None, "nothing seen, no logs");
    resolver.refresh();
    expect(resolver.resolve(&pod, &path), None, source::CONTAINERD);
}

#[test]
fn the_kubelet_logs_name_what_has_no_bundle() {
    for driver in [Driver::Cgroupfs, Driver::Systemd] {
        for rt in [Rt::Containerd, Rt::Crio] {
            let root = tempfile::tempdir().unwrap();
            logs(root.path(), UID, "cart", ID);
            // Another container of the same pod, and another pod.
            logs(root.path(), UID, "sidecar", SANDBOX);
            logs(
                root.path(),
                "b9cc78db-6f2c-4f4d-b634-cbcfe642281c",
                "other",
                SANDBOX,
            );
            let path = memcg_path(driver, rt, "besteffort", UID, ID);
            expect(resolve(root.path(), &path), Some("cart"), source::LOGS);
            // Again, from the cache.
            let mut resolver = KubeResolver::new(root.path());
            let c = attribute(&path).unwrap();
            expect(resolver.resolve(&c, &path), Some("cart"), source::LOGS);
            expect(resolver.resolve(&c, &path), Some("cart"), source::LOGS);
        }
    }
}

#[test]
fn the_pod_log_dir_alone_names_the_pod() {
    let (root, path) = pod_log_dir_only(&format!("shop_cart-7d9f8b6c5-x2x9z_{UID}/cart"));
    expect(resolve(root.path(), &path), None, source::LOGS);
}

#[test]
fn a_dead_containers_names_stay_resolvable() {
    let root = tempfile::tempdir().unwrap();
    for rt in [Rt::Containerd, Rt::Crio] {
        let cgroup = cgroups_path(Driver::Systemd, rt, "burstable", UID, ID);
        bundle(root.path(), rt, ID, UID, Some("cart"), &cgroup);
        let mut resolver = KubeResolver::new(root.path());
        resolver.refresh();
        // The runtime deletes the bundle of a container that died.
        fs::remove_dir_all(root.path().join("run")).unwrap();
        let path = memcg_path(Driver::Systemd, rt, "burstable", UID, ID);
        let c = attribute(&path).unwrap();
        let source = match rt {
            Rt::Containerd => source::CONTAINERD,
            Rt::Crio => source::CRIO,
        };
        expect(resolver.resolve(&c, &path), Some("cart"), source);
        let fresh = KubeResolver::new(root.path()).resolve(&c, &path);
        assert_eq!(fresh, None, "uncached");
    }
}

#[test]
fn resolved_names_are_cached_too() {
    let root = tempfile::tempdir().unwrap();
    let path = the_containerd_path();
    bundle(root.path(), Rt::Containerd, ID, UID, Some("cart"), &path);
    let mut resolver = KubeResolver::new(root.path());
    let c = the_containerd_pod();
    assert!(resolver.resolve(&c, &path).is_some());
    fs::remove_dir_all(root.path().join("run")).unwrap();
    expect(
        resolver.resolve(&c, &path),
        Some("cart"),
        source::CONTAINERD,
    );
}

fn names(n: usize) -> KubeNames {
    KubeNames {
        namespace: "ns".into(),
        pod: format!("pod-{n}"),
        container: Some("c".into()),
        pod_uid: None,
        source: source::LOGS,
        cgroup: None,
    }
}

#[test]
fn the_cache_is_bounded_in_entries_oldest_first() {
    let mut cache = RecentCache::new(3, usize::MAX);
    for n in 0..5 {
        cache.insert(format!("k{n}"), names(n));
    }
    assert_eq!(cache.len(), 3);
    assert!(cache.get("k0").is_none() && cache.get("k1").is_none());
    assert_eq!(cache.get("k4").unwrap().pod, "pod-4");
    // Re-inserting a key replaces it without growing.
    cache.insert("k4".into(), names(9));
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.get("k4").unwrap().pod, "pod-9");
}

#[test]
fn the_cache_is_bounded_in_bytes() {
    let one = "k0".len() + names(0).bytes();
    let mut cache = RecentCache::new(usize::MAX, one * 2);
    for n in 0..4 {
        cache.insert(format!("k{n}"), names(n));
        assert!(cache.bytes() <= one * 2);
    }
    assert_eq!(cache.len(), 2);
    assert!(cache.get("k3").is_some() && cache.get("k2").is_some());
    // An entry larger than the whole budget is not kept.
    let mut huge = names(0);
    huge.pod = "p".repeat(one * 3);
    cache.insert("big".into(), huge);
    assert!(cache.get("big").is_none());
    assert!(cache.bytes() <= one * 2);
}

#[test]
fn the_documented_bounds_hold_for_the_largest_valid_names() {
    let mut cache = RecentCache::new(CACHE_ENTRIES, CACHE_BYTES);
    for n in 0..CACHE_ENTRIES * 2 {
        let big = KubeNames {
            namespace: "n".repeat(63),
            pod: format!("{n}{}", "p".repeat(240)),
            container: Some("c".repeat(63)),
            pod_uid: Some(UID.into()),
            source: source::CRIO,
            cgroup: Some(format!("/kubepods/burstable/pod{UID}/{}", "c".repeat(64))),
        };
        cache.insert(format!("{n:064}"), big);
    }
    assert!(cache.len() <= CACHE_ENTRIES);
    assert!(cache.bytes() <= CACHE_BYTES);
}

#[test]
fn outside_kubernetes_nothing_is_read() {
    let root = tempfile::tempdir().unwrap();
    let path = format!("/docker/{ID}");
    bundle(root.path(), Rt::Containerd, ID, UID, Some("cart"), &path);
    let docker = attribute(&path).unwrap();
    assert_eq!(KubeResolver::new(root.path()).resolve(&docker, &path), None);
}

#[test]
fn a_bundle_of_another_pod_is_not_believed() {
    let root = tempfile::tempdir().unwrap();
    bundle(
        root.path(),
        Rt::Containerd,
        ID,
        "b9cc78db-6f2c-4f4d-b634-cbcfe642281c",
        Some("cart"),
        &the_containerd_path(),
    );
    assert_eq!(resolve(root.path(), &the_containerd_path()), None);
}

/// A containerd bundle with `text` as its config.json.
fn hostile(text: &[u8]) -> Option<KubeNames> {
    let root = tempfile::tempdir().unwrap();
    let path = bundle_path(root.path(), Rt::Containerd, ID);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    resolve(
        root.path(),
        &memcg_path(Driver::Cgroupfs, Rt::Containerd, "burstable", UID, ID),
    )
}

fn annotated(namespace: &str, pod: &str, container: &str) -> Vec<u8> {
    json!({"annotations": {
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-name": pod,
        "io.kubernetes.cri.container-name": container,
    }, "linux": {"cgroupsPath": the_containerd_path()}})
    .to_string()
    .into_bytes()
}

#[test]
fn hostile_config_json_is_ignored_without_panic() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for text in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"annotations\": 7}",
        b"{\"annotations\": {\"io.kubernetes.cri.sandbox-name\": 7}}",
        b"{\"annotations\": {\"io.kubernetes.cri.sandbox-namespace\": \"shop\"",
        b"\xff\xfe{}",
        deep.as_bytes(),
    ] {
        assert_eq!(
            hostile(text),
            None,
            "{:?}",
            String::from_utf8_lossy(&text[..text.len().min(40)])
        );
    }
}

#[test]
fn invalid_kubernetes_names_are_refused() {
    for (ns, pod, ctr) in [
        ("shop\u{1b}[2J", "cart", "cart"),
        ("shop", "cart\nWARNING fake", "cart"),
        ("Shop", "cart", "cart"),
        ("shop", "cart_1", "cart"),
        ("", "cart", "cart"),
        (&"n".repeat(64), "cart", "cart"),
        ("shop", &format!("{}.x", "p".repeat(253)), "cart"),
        ("-shop", "cart", "cart"),
    ] {
        assert_eq!(hostile(&annotated(ns, pod, ctr)), None, "{ns:?} {pod:?}");
    }
    // A bad container name leaves the pod's names.
    let names = hostile(&annotated("shop", "cart", "evil\u{7}")).unwrap();
    assert_eq!(names.container, None);
    assert_eq!(names.pod, "cart");
}

#[test]
fn an_oversized_config_json_is_refused() {
    let mut text = annotated("shop", "cart", "cart");
    assert!(hostile(&text).is_some());
    text.pop();
    text.extend(std::iter::repeat_n(b' ', MAX_CONFIG_BYTES as usize));
    text.push(b'}');
    assert_eq!(hostile(&text), None);
}

#[test]
fn symlinks_and_fifos_are_not_read() {
    let root = tempfile::tempdir().unwrap();
    let real = root.path().join("real.json");
    fs::write(&real, annotated("shop", "cart", "cart")).unwrap();
    let path = bundle_path(root.path(), Rt::Containerd, ID);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    let memcg = memcg_path(Driver::Cgroupfs, Rt::Containerd, "burstable", UID, ID);
    assert_eq!(resolve(root.path(), &memcg), None, "symlink followed");

    fs::remove_file(&path).unwrap();
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Opening a FIFO for reading without a writer would block: it must not.
    assert_eq!(resolve(root.path(), &memcg), None);

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_eq!(resolve(root.path(), &memcg), None, "a directory");
}

#[test]
fn hostile_log_names_are_refused() {
    let (root, path) = pod_log_dir_only(&format!("sh\u{1b}op_cart_{UID}"));
    assert_eq!(resolve(root.path(), &path), None);
}

#[test]
fn resolved_names_serialize_with_opentelemetry_keys() {
    let root = tempfile::tempdir().unwrap();
    let cgroup = cgroups_path(Driver::Systemd, Rt::Crio, "burstable", UID, ID);
    bundle(root.path(), Rt::Crio, ID, UID, Some("cart"), &cgroup);
    let path = memcg_path(Driver::Systemd, Rt::Crio, "burstable", UID, ID);
    let mut c = attribute(&path).unwrap();
    KubeResolver::new(root.path())
        .resolve(&c, &path)
        .unwrap()
        .apply(&mut c);
    assert_eq!(c.namespace.as_deref(), Some("shop"));
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["k8s.namespace.name"], "shop");
    assert_eq!(v["k8s.pod.name"], "cart-7d9f8b6c5-x2x9z");
    assert_eq!(v["k8s.pod.uid"], UID);
    assert_eq!(v["k8s.container.name"], "cart");
    assert_eq!(v["container.id"], ID);
    assert_eq!(v["names_source"], "crio_bundle");
    // The path-derived fields are unchanged.
    assert_eq!(v["id"], ID);
    assert_eq!(v["pod_uid"], UID);
    assert_eq!(v["runtime"], "cri-o");
}

fn saved(value: serde_json::Value) -> Option<SavedNames> {
    serde_json::from_value(value).ok()
}

#[test]
fn saved_names_are_read_back_onto_the_path_attribution() {
    let root = tempfile::tempdir().unwrap();
    let cgroup = cgroups_path(Driver::Systemd, Rt::Containerd, "burstable", UID, ID);
    bundle(root.path(), Rt::Containerd, ID, UID, Some("cart"), &cgroup);
    let path = memcg_path(Driver::Systemd, Rt::Containerd, "burstable", UID, ID);
    let mut live = attribute(&path).unwrap();
    KubeResolver::new(root.path())
        .resolve(&live, &path)
        .unwrap()
        .apply(&mut live);
    let names = saved(serde_json::to_value(&live).unwrap()).expect("names");
    let mut rebuilt = attribute(&path).unwrap();
    names.apply(&mut rebuilt);
    assert_eq!(rebuilt, live);
}

#[test]
fn odd_or_hostile_saved_names_are_dropped() {
    let path = memcg_path(Driver::Cgroupfs, Rt::Crio, "burstable", UID, ID);
    for value in [
        json!(null),
        json!(7),
        json!({"k8s.namespace.name": 7}),
        json!({"k8s.namespace.name": "shop", "k8s.pod.name": "cart", "names_source": "made_up"}),
        json!({"k8s.namespace.name": "sh\u{1b}op", "k8s.pod.name": "cart", "names_source": "crio_bundle"}),
    ] {
        let mut c = attribute(&path).unwrap();
        if let Some(names) = saved(value.clone()) {
            names.apply(&mut c);
        }
        assert_eq!(c, attribute(&path).unwrap(), "{value}");
    }
    // Names on a path that is no pod are not believed either.
    let names = saved(json!({"k8s.namespace.name": "shop", "k8s.pod.name": "cart", "names_source": "crio_bundle"})).unwrap();
    let mut docker = attribute(&format!("/docker/{ID}")).unwrap();
    names.apply(&mut docker);
    assert_eq!(docker.namespace, None);
}

#[test]
fn refresh_reads_a_bundle_that_names_nothing_once_but_resolve_retries_it() {
    let root = tempfile::tempdir().unwrap();
    let path = bundle_path(root.path(), Rt::Containerd, ID);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "{}").unwrap();
    let mut resolver = KubeResolver::new(root.path());
    resolver.refresh();
    assert!(resolver.cache().is_empty());
    // Written since (the runtime was mid-write): refresh leaves it alone…
    let path = the_containerd_path();
    bundle(root.path(), Rt::Containerd, ID, UID, Some("cart"), &path);
    resolver.refresh();
    assert!(resolver.cache().is_empty());
    // …but an OOM's own lookup reads it again.
    let c = the_containerd_pod();
    expect(
        resolver.resolve(&c, &path),
        Some("cart"),
        source::CONTAINERD,
    );
}

#[test]
fn the_bundle_must_put_the_container_in_this_memcg() {
    for rt in [Rt::Containerd, Rt::Crio] {
        for driver in [Driver::Cgroupfs, Driver::Systemd] {
            let path = memcg_path(driver, rt, "burstable", UID, ID);
            let elsewhere = cgroups_path(driver, rt, "besteffort", UID, ID);
            for (cgroup, named) in [
                (cgroups_path(driver, rt, "burstable", UID, ID), true),
                (elsewhere, false),
                (String::new(), false),
                ("kubepods".to_owned(), false),
            ] {
                let root = tempfile::tempdir().unwrap();
                bundle(root.path(), rt, ID, UID, Some("cart"), &cgroup);
                let names = resolve(root.path(), &path);
                assert_eq!(names.is_some(), named, "{path} in {cgroup:?}");
                // Not from the cache of running containers either.
                let mut resolver = KubeResolver::new(root.path());
                resolver.refresh();
                let c = attribute(&path).unwrap();
                let cached = resolver.resolve(&c, &path);
                assert_eq!(cached.is_some(), named, "cached: {path} in {cgroup:?}");
            }
        }
    }
}

#[test]
fn a_pod_layout_inside_another_cgroup_gets_no_names() {
    let root = tempfile::tempdir().unwrap();
    let genuine = the_containerd_path();
    bundle(root.path(), Rt::Containerd, ID, UID, Some("cart"), &genuine);
    logs(root.path(), UID, "cart", ID);
    let mut resolver = KubeResolver::new(root.path());
    resolver.refresh();
    for parent in [
        "/user.slice/user-1000.slice/user@1000.service/app.slice/evil.scope",
        "/evil",
    ] {
        let spoof = format!("{parent}{genuine}");
        if let Some(c) = attribute(&spoof) {
            assert_eq!(resolver.resolve(&c, &spoof), None, "{spoof}");
        }
    }
    // Inside another pod's container: that pod's, by its own bundle.
    let other = "b9cc78db-6f2c-4f4d-b634-cbcfe642281c";
    let own = memcg_path(
        Driver::Cgroupfs,
        Rt::Containerd,
        "burstable",
        other,
        SANDBOX,
    );
    bundle(
        root.path(),
        Rt::Containerd,
        SANDBOX,
        other,
        Some("evil"),
        &own,
    );
    let spoof = format!("{own}{genuine}");
    let c = attribute(&spoof).unwrap();
    assert_eq!(c.id.as_deref(), Some(SANDBOX));
    let names = resolver.resolve(&c, &spoof).expect("its own pod's names");
    assert_eq!(names.container.as_deref(), Some("evil"));
    assert_eq!(names.pod_uid.as_deref(), Some(other));
}

#[test]
fn cgroups_paths_name_the_cgroup_the_runtime_makes() {
    let cases = [
        (
            "/kubepods/burstable/podx/abc",
            Some("/kubepods/burstable/podx/abc"),
        ),
        ("/kubepods//burstable/", Some("/kubepods/burstable")),
        (
            "kubepods-burstable-podx.slice:cri-containerd:abc",
            Some(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-abc.scope",
            ),
        ),
        (
            "system.slice:docker:abc",
            Some("/system.slice/docker-abc.scope"),
        ),
        (":docker:abc", Some("/system.slice/docker-abc.scope")),
        ("machine.slice::abc", Some("/machine.slice/abc.scope")),
        ("-.slice:p:abc", Some("/p-abc.scope")),
        ("machine.slice:p:my-x.slice", Some("/my.slice/my-x.slice")),
        ("/kubepods/../x", None),
        ("kubepods/burstable", None),
        ("a:b", None),
        ("a.slice:b:c:d", None),
        ("bad--x.slice:p:abc", None),
        ("a.slice:p:", None),
        ("a.slice:p:../x", None),
        ("", None),
    ];
    for (oci, memcg) in cases {
        assert_eq!(runtime_cgroup(oci).as_deref(), memcg, "{oci:?}");
    }
    assert!(confirms(Some("/a/b"), "/a/b"));
    assert!(confirms(Some("/a/b"), "/a/b/container"));
    assert!(!confirms(Some("/a/b"), "/a/bc"));
    assert!(!confirms(Some("/a/b"), "/a"));
    assert!(!confirms(None, "/a/b"));
}
