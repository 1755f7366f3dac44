//! The resolvers on state files laid out as each runtime writes them.
use std::{fs, path::Path};

use serde_json::json;

use super::*;
use crate::cgroup::container::{attribute, runtime};

const ID: &str = "0f3f886d9adbd1e8b6f0d3e6c1b2a39457e8c7d6b5a4f3e2d1c0b9a8f7e6d5c4";
const ID2: &str = "8d083e51abd2e1096bc106e308144c7efe71ae92f3c12e6be5bc7bc78f5cc751";

fn write(path: &Path, value: serde_json::Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, value.to_string()).unwrap();
}

fn docker_container(root: &Path, id: &str, name: &str, labels: serde_json::Value, parent: &str) {
    let dir = root.join("var/lib/docker/containers").join(id);
    write(
        &dir.join("config.v2.json"),
        json!({"ID": id, "Name": format!("/{name}"),
               "Config": {"Image": "busybox:1.36", "Labels": labels}}),
    );
    write(
        &dir.join("hostconfig.json"),
        json!({"Memory": 50331648, "CgroupParent": parent}),
    );
}

fn resolve(r: &mut Runtimes, memcg: &str) -> Option<Container> {
    let mut c = attribute(memcg);
    r.resolve(c.as_ref(), memcg)?.apply(&mut c);
    c
}

#[test]
fn docker_names_image_limit_and_compose() {
    let root = tempfile::tempdir().unwrap();
    let labels = json!({"com.docker.compose.project": "ledger",
        "com.docker.compose.service": "sync", "com.docker.compose.container-number": "2"});
    docker_container(root.path(), ID, "ledger-sync", labels, "");
    let mut r = Runtimes::new(root.path());
    let c = resolve(&mut r, &format!("/docker/{ID}")).unwrap();
    assert_eq!(c.name.as_deref(), Some("ledger-sync"));
    assert_eq!(c.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(c.memory_limit_bytes, Some(50331648));
    let compose = c.compose.unwrap();
    assert_eq!(
        (compose.project.as_str(), compose.service.as_str()),
        ("ledger", "sync")
    );
    assert_eq!(compose.number, Some(2));
    assert_eq!(c.names_source, Some(source::DOCKER));
    // The systemd driver's scope of the same container.
    let scope = format!("/system.slice/docker-{ID}.scope");
    assert!(resolve(&mut r, &scope).unwrap().name.is_some());
}

#[test]
fn docker_names_survive_removal_once_refreshed() {
    let root = tempfile::tempdir().unwrap();
    docker_container(root.path(), ID, "web", json!({}), "");
    let mut r = Runtimes::new(root.path());
    r.refresh();
    fs::remove_dir_all(root.path().join("var/lib/docker")).unwrap();
    let c = resolve(&mut r, &format!("/docker/{ID}")).unwrap();
    assert_eq!(c.name.as_deref(), Some("web"));
}

#[test]
fn docker_data_root_from_daemon_json() {
    let root = tempfile::tempdir().unwrap();
    write(
        &root.path().join("etc/docker/daemon.json"),
        json!({"data-root": "/srv/docker"}),
    );
    let dir = root.path().join("srv/docker/containers").join(ID);
    write(
        &dir.join("config.v2.json"),
        json!({"ID": ID, "Name": "/moved", "Config": {"Image": "app"}}),
    );
    write(&dir.join("hostconfig.json"), json!({}));
    let mut r = Runtimes::new(root.path());
    assert_eq!(
        resolve(&mut r, &format!("/docker/{ID}"))
            .unwrap()
            .name
            .as_deref(),
        Some("moved")
    );
}

#[test]
fn a_cgroup_docker_did_not_make_gets_no_names() {
    let root = tempfile::tempdir().unwrap();
    docker_container(root.path(), ID, "web", json!({}), "/custom");
    let mut r = Runtimes::new(root.path());
    // Docker put it under /custom: a `docker-<id>.scope` made elsewhere
    // (a delegated subtree) is not it.
    let elsewhere = format!("/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope");
    assert!(
        r.resolve(attribute(&elsewhere).as_ref(), &elsewhere)
            .is_none()
    );
    // A config.v2.json of another id under this id's directory is refused.
    let dir = root.path().join("var/lib/docker/containers").join(ID2);
    write(&dir.join("config.v2.json"), json!({"ID": ID, "Name": "/x"}));
    write(&dir.join("hostconfig.json"), json!({}));
    let path = format!("/docker/{ID2}");
    assert!(r.resolve(attribute(&path).as_ref(), &path).is_none());
}

#[test]
fn invalid_docker_names_and_images_are_dropped() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("var/lib/docker/containers").join(ID);
    write(
        &dir.join("config.v2.json"),
        json!({"ID": ID, "Name": "/bad\u{1b}[31mname", "Config": {"Image": "img\nx",
            "Labels": {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "cart-1",
                       "io.kubernetes.container.name": "app"}}}),
    );
    write(&dir.join("hostconfig.json"), json!({}));
    let mut r = Runtimes::new(root.path());
    let c = resolve(&mut r, &format!("/docker/{ID}")).unwrap();
    assert_eq!((c.name, c.image), (None, None));
    // cri-dockerd's labels name the pod.
    assert_eq!(c.namespace.as_deref(), Some("shop"));
    assert_eq!(c.container_name.as_deref(), Some("app"));
}

fn podman_container(graph: &Path, id: &str, manager: &str, cgroups_path: &str) {
    write(
        &graph.join("overlay-containers/containers.json"),
        json!([{"id": id, "names": ["ledger"], "image": "2b9b",
            "metadata": json!({"image-name": "localhost/bb:1", "name": "ledger"}).to_string()}]),
    );
    write(
        &graph
            .join("overlay-containers")
            .join(id)
            .join("userdata/config.json"),
        json!({"annotations": {"io.container.manager": manager},
               "linux": {"cgroupsPath": cgroups_path}}),
    );
}

#[test]
fn podman_rootful_names_and_image() {
    let root = tempfile::tempdir().unwrap();
    let graph = root.path().join("var/lib/containers/storage");
    podman_container(&graph, ID, "libpod", &format!("/libpod_parent/libpod-{ID}"));
    let mut r = Runtimes::new(root.path());
    let c = resolve(&mut r, &format!("/libpod_parent/libpod-{ID}")).unwrap();
    assert_eq!(c.runtime, runtime::PODMAN);
    assert_eq!(c.name.as_deref(), Some("ledger"));
    assert_eq!(c.image.as_deref(), Some("localhost/bb:1"));
    assert_eq!(c.names_source, Some(source::PODMAN));
}

#[test]
fn a_podman_pod_member_is_named_with_its_pods_id() {
    let root = tempfile::tempdir().unwrap();
    let graph = root.path().join("var/lib/containers/storage");
    for (cgroups_path, memcg) in [
        (
            format!("/libpod_parent/{ID2}/libpod-{ID}"),
            format!("/libpod_parent/{ID2}/libpod-{ID}"),
        ),
        (
            format!("machine-libpod_pod_{ID2}.slice:libpod:{ID}"),
            format!("/machine.slice/machine-libpod_pod_{ID2}.slice/libpod-{ID}.scope"),
        ),
    ] {
        podman_container(&graph, ID, "libpod", &cgroups_path);
        let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
        assert_eq!(c.podman_pod.as_deref(), Some(ID2), "{memcg}");
        assert_eq!(c.name.as_deref(), Some("ledger"), "{memcg}");
        assert_eq!(
            c.owner_name(),
            Some(format!("pod {}/ledger", &ID2[..12])),
            "{memcg}"
        );
    }
}

/// A pod member whose spec names `sandbox` (libpod's sandbox id), beside
/// the other entries of the index.
fn podman_pod_member(graph: &Path, sandbox: &str, others: &[&str], cgroups_path: &str) {
    podman_container(graph, ID, "libpod", cgroups_path);
    let mut index = vec![json!({"id": ID, "names": ["ledger"], "metadata": ""})];
    index.extend(
        others
            .iter()
            .map(|id| json!({"id": id, "names": ["infra"]})),
    );
    write(
        &graph.join("overlay-containers/containers.json"),
        json!(index),
    );
    write(
        &graph
            .join("overlay-containers")
            .join(ID)
            .join("userdata/config.json"),
        json!({"annotations": {"io.container.manager": "libpod",
                               "io.kubernetes.cri-o.SandboxID": sandbox},
               "linux": {"cgroupsPath": cgroups_path}}),
    );
}

#[test]
fn a_pod_without_infra_is_named_by_libpods_sandbox_id() {
    let root = tempfile::tempdir().unwrap();
    let graph = root.path().join("var/lib/containers/storage");
    // `podman pod create --infra=false`: no pod cgroup; the sandbox is the pod.
    let memcg = format!("/libpod_parent/libpod-{ID}");
    podman_pod_member(&graph, ID2, &[], &memcg);
    let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
    assert_eq!(c.podman_pod.as_deref(), Some(ID2));
    // With an infra container the sandbox is the infra, an entry of the
    // index: the pod is the path's.
    let infra = "56d7234efa04a7ccc0ab1b7d599a1d8d49beb84eaab0c63c4bcbfade0f43e1a3";
    podman_pod_member(&graph, infra, &[infra], &memcg);
    let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
    assert_eq!(c.podman_pod, None);
    let memcg = format!("/libpod_parent/{ID2}/libpod-{ID}");
    podman_pod_member(&graph, infra, &[infra], &memcg);
    let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
    assert_eq!(c.podman_pod.as_deref(), Some(ID2));
}

#[test]
fn podman_rootless_from_the_users_home() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("etc/placeholder"), json!(null));
    fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    let graph = root
        .path()
        .join("home/alice/.local/share/containers/storage");
    podman_container(&graph, ID, "libpod", &format!("user.slice:libpod:{ID}"));
    let memcg =
        format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
    let mut r = Runtimes::new(root.path());
    assert_eq!(
        resolve(&mut r, &memcg).unwrap().name.as_deref(),
        Some("ledger")
    );
}

#[test]
fn a_crio_container_in_shared_storage_is_not_podmans() {
    let root = tempfile::tempdir().unwrap();
    let graph = root.path().join("var/lib/containers/storage");
    podman_container(&graph, ID, "cri-o", &format!("/libpod_parent/libpod-{ID}"));
    let mut r = Runtimes::new(root.path());
    let memcg = format!("/libpod_parent/libpod-{ID}");
    assert!(r.resolve(attribute(&memcg).as_ref(), &memcg).is_none());
}

fn containerd_bundle(root: &Path, ns: &str, id: &str, annotations: serde_json::Value) {
    write(
        &root
            .join(containerd::TASKS)
            .join(ns)
            .join(id)
            .join("config.json"),
        json!({"annotations": annotations, "linux": {"cgroupsPath": format!("/{ns}/{id}")}}),
    );
}

#[test]
fn containerd_namespace_of_its_own_confirmed_by_the_bundle() {
    let root = tempfile::tempdir().unwrap();
    containerd_bundle(root.path(), "ledger", ID, json!({"nerdctl/name": "sync"}));
    let mut r = Runtimes::new(root.path());
    let memcg = format!("/ledger/{ID}");
    assert!(attribute(&memcg).is_none(), "the path alone names nobody");
    let c = resolve(&mut r, &memcg).unwrap();
    assert_eq!(c.runtime, runtime::CONTAINERD);
    assert_eq!(c.id.as_deref(), Some(ID));
    assert_eq!(c.runtime_namespace.as_deref(), Some("ledger"));
    assert_eq!(c.name.as_deref(), Some("sync"));
    // Without a bundle, or with one naming another cgroup: nobody.
    let other = format!("/other/{ID2}");
    assert!(r.resolve(None, &other).is_none());
    containerd_bundle(root.path(), "other", ID2, json!({}));
    let path = root
        .path()
        .join(containerd::TASKS)
        .join("other")
        .join(ID2)
        .join("config.json");
    write(&path, json!({"linux": {"cgroupsPath": "/elsewhere"}}));
    assert!(r.resolve(None, &other).is_none());
}

#[test]
fn containerd_default_namespace_and_removal() {
    let root = tempfile::tempdir().unwrap();
    containerd_bundle(root.path(), "default", ID, json!({}));
    let mut r = Runtimes::new(root.path());
    r.refresh();
    fs::remove_dir_all(root.path().join(containerd::TASKS)).unwrap();
    let c = resolve(&mut r, &format!("/default/{ID}")).unwrap();
    assert_eq!(c.runtime_namespace.as_deref(), Some("default"));
}

#[test]
fn names_are_bounded() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Runtimes::new(root.path());
    for i in 0..(CACHE_ENTRIES + 10) {
        let id = format!("{i:064x}");
        containerd_bundle(root.path(), "ns", &id, json!({}));
    }
    r.refresh();
    let cached = r
        .resolvers
        .iter()
        .map(|r| format!("{r:?}").matches("RuntimeNames").count())
        .sum::<usize>();
    assert!(cached <= CACHE_ENTRIES, "{cached}");
}

#[test]
fn ctr_ids_are_names() {
    let root = tempfile::tempdir().unwrap();
    containerd_bundle(root.path(), "ledger", "redis", json!({}));
    let mut r = Runtimes::new(root.path());
    let c = resolve(&mut r, "/ledger/redis").unwrap();
    assert_eq!((c.id.as_deref(), c.name.as_deref()), (None, Some("redis")));
    assert_eq!(c.owner_name().as_deref(), Some("ledger/redis"));
}

/// A pod's name is libpod's: its BoltDB (a file Podman 4.3 wrote, with the
/// pod `ledger-pod`) names the pod whose cgroup holds the member.
#[test]
fn a_podman_pod_member_is_named_with_its_pods_name_from_libpods_boltdb() {
    let ledger_pod = "e9490a6d9644c0ea57aa28b2fb5c25d3200271d29d2385fa59c9db1cc32b3037";
    let root = tempfile::tempdir().unwrap();
    let graph = root.path().join("var/lib/containers/storage");
    let memcg = format!("/libpod_parent/{ledger_pod}/libpod-{ID}");
    podman_container(&graph, ID, "libpod", &memcg);
    fs::create_dir_all(graph.join("libpod")).unwrap();
    fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/podman/bolt_state.db"
        ),
        graph.join(podman::BOLT_STATE),
    )
    .unwrap();
    let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
    assert_eq!(c.podman_pod.as_deref(), Some(ledger_pod));
    assert_eq!(c.podman_pod_name.as_deref(), Some("ledger-pod"));
    assert_eq!(c.owner_name().as_deref(), Some("pod ledger-pod/ledger"));
    // A pod the registry does not hold keeps its short id.
    let memcg = format!("/libpod_parent/{ID2}/libpod-{ID}");
    podman_container(&graph, ID, "libpod", &memcg);
    let c = resolve(&mut Runtimes::new(root.path()), &memcg).unwrap();
    assert_eq!(c.podman_pod_name, None);
    assert_eq!(c.owner_name(), Some(format!("pod {}/ledger", &ID2[..12])));
}
