//! Podman's names, rootful and rootless, from containers/storage:
//! `<graph root>/overlay-containers/containers.json` (names, and in its
//! `metadata` string the image as the user named it) and each container's
//! OCI spec `overlay-containers/<id>/userdata/config.json`, which says that
//! libpod made it (`io.container.manager: libpod`) and where its cgroup is
//! (`linux.cgroupsPath`). The graph root is `var/lib/containers/storage`,
//! or a rootless user's `~/.local/share/containers/storage` (home from
//! `etc/passwd`, uid from the `user@UID.service` in the memcg's path).
//!
//! CRI-O shares containers/storage (and its `containers.json`): a
//! container whose spec libpod did not write is not Podman's, and gets no
//! Podman names. A pod member's pod id is its cgroup's parent, which the
//! path gives (`container::attribute`) and the spec's `cgroupsPath`
//! confirms, or, for a pod without an infra container (and so without a
//! cgroup), the spec's sandbox id. The pod's name is kept only in libpod's
//! BoltDB, `libpod/bolt_state.db` under the graph root: its `id-registry`
//! names every pod of `allPods` ([`super::bolt`]). Podman 5's SQLite
//! state (`db.sql`) is not read: its pods are named by id.
use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::Deserialize;

use super::{
    Remembered, Resolver, RuntimeNames, bolt::Bolt, is_container_name, is_image_reference, source,
};
use crate::cgroup::{
    container::{Container, attribute, is_full_id, runtime},
    kubernetes::read_spec,
    state_file::{modified, read_bytes, read_json},
};

/// Rootful Podman's graph root.
pub const GRAPH_ROOT: &str = "var/lib/containers/storage";
/// A rootless user's graph root, under their home.
pub const ROOTLESS_GRAPH_ROOT: &str = ".local/share/containers/storage";
/// The index of containers/storage's containers.
pub const CONTAINERS_JSON: &str = "overlay-containers/containers.json";
/// containers.json larger than this is refused (about 500 bytes a container).
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// libpod's BoltDB state, under the graph root.
pub const BOLT_STATE: &str = "libpod/bolt_state.db";
/// A bolt_state.db larger than this is refused (a few hundred KiB with
/// hundreds of containers).
const MAX_BOLT_BYTES: u64 = 64 << 20;
/// `etc/passwd` larger than this is refused.
const MAX_PASSWD_BYTES: u64 = 4 << 20;

#[derive(Debug)]
pub struct PodmanResolver {
    root: PathBuf,
    remembered: Remembered,
    /// containers.json's modification time when last read (rootful).
    index_read: Option<SystemTime>,
}

impl PodmanResolver {
    pub fn new(root: &Path) -> Self {
        PodmanResolver {
            root: root.to_owned(),
            remembered: Remembered::new(),
            index_read: None,
        }
    }

    /// The graph root of a memcg's container: rootless under a user's
    /// systemd manager, else rootful; with the cgroup that manager roots.
    fn graph_root(&self, memcg: &str) -> Option<(PathBuf, String)> {
        let Some(uid) = rootless_uid(memcg) else {
            return Some((self.root.join(GRAPH_ROOT), String::new()));
        };
        let home = home_of(&self.root, uid)?;
        let manager = format!("/user.slice/user-{uid}.slice/user@{uid}.service");
        Some((
            self.root
                .join(home.trim_start_matches('/'))
                .join(ROOTLESS_GRAPH_ROOT),
            manager,
        ))
    }
}

impl Resolver for PodmanResolver {
    fn refresh(&mut self) {
        let graph = self.root.join(GRAPH_ROOT);
        let index = graph.join(CONTAINERS_JSON);
        let mtime = modified(&index);
        if mtime.is_none() || mtime == self.index_read {
            return;
        }
        self.index_read = mtime;
        let entries = read_index(&graph);
        let pods = pod_names(&graph);
        for entry in &entries {
            if !self.remembered.known(&entry.id) {
                let names = names(&graph, entry, &entries, "", &pods);
                self.remembered.learn(&entry.id, names);
            }
        }
    }

    fn resolve(&mut self, c: Option<&Container>, memcg: &str) -> Option<RuntimeNames> {
        let c = c.filter(|c| c.runtime == runtime::PODMAN && !c.monitor)?;
        let id = c.id.as_deref()?;
        let (graph, manager) = self.graph_root(memcg)?;
        self.remembered.resolve(id, memcg, || {
            let entries = read_index(&graph);
            let entry = entries.iter().find(|e| e.id == id)?;
            names(&graph, entry, &entries, &manager, &pod_names(&graph))
        })
    }
}

/// One container in containers.json.
#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    /// A JSON document in a string: libpod's `image-name`, `name`, ...
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(rename = "image-name", default)]
    image_name: Option<String>,
}

fn read_index(graph: &Path) -> Vec<Entry> {
    read_json(&graph.join(CONTAINERS_JSON), MAX_INDEX_BYTES).unwrap_or_default()
}

/// The names of a containers.json entry whose spec libpod wrote (`all`:
/// every entry; `pods`: the pods' names by id); `manager` roots a rootless
/// user's cgroups (empty when rootful).
fn names(
    graph: &Path,
    entry: &Entry,
    all: &[Entry],
    manager: &str,
    pods: &HashMap<String, String>,
) -> Option<RuntimeNames> {
    if !is_full_id(&entry.id) {
        return None;
    }
    let spec = read_spec(
        &graph
            .join("overlay-containers")
            .join(&entry.id)
            .join("userdata/config.json"),
    )?;
    if spec.annotation("io.container.manager") != Some("libpod") {
        return None;
    }
    let cgroup = spec.cgroup()?;
    let metadata: Metadata = serde_json::from_str(&entry.metadata).unwrap_or_default();
    let pod = pod_without_infra(spec.annotation(SANDBOX_ID), all)
        .or_else(|| attribute(&cgroup).and_then(|c| c.podman_pod));
    Some(RuntimeNames {
        runtime: runtime::PODMAN,
        id: entry.id.clone(),
        name: entry
            .names
            .first()
            .filter(|n| is_container_name(n))
            .cloned(),
        image: metadata.image_name.filter(|i| is_image_reference(i)),
        compose: None,
        pod_labels: None,
        namespace: None,
        podman_pod_name: pod.as_ref().and_then(|id| pods.get(id)).cloned(),
        podman_pod: pod,
        memory_limit_bytes: None,
        source: source::PODMAN,
        cgroups: vec![match manager {
            "" => cgroup,
            m => format!("{m}{}", cgroup.trim_end_matches('/')),
        }],
    })
}

/// Where libpod's spec of a pod member names its sandbox.
const SANDBOX_ID: &str = "io.kubernetes.cri-o.SandboxID";

/// The pod of a member of a pod without an infra container (`podman pod
/// create --infra=false`, which makes no cgroup for the pod): libpod's
/// sandbox id is the pod's id then. In a pod with one it is the infra
/// container's id, an entry of the index, and the pod's id is the path's.
fn pod_without_infra(sandbox: Option<&str>, all: &[Entry]) -> Option<String> {
    let id = sandbox.filter(|id| is_full_id(id))?;
    (!all.iter().any(|e| e.id == id)).then(|| id.to_owned())
}

/// Every pod's name by its id, from libpod's BoltDB (`id-registry` holds
/// containers too: only the ids `allPods` lists); empty when there is no
/// such file or it cannot be read.
fn pod_names(graph: &Path) -> HashMap<String, String> {
    let Some(bytes) = read_bytes(&graph.join(BOLT_STATE), MAX_BOLT_BYTES) else {
        return HashMap::new();
    };
    let Ok(db) = Bolt::open(&bytes) else {
        return HashMap::new();
    };
    let (Ok(Some(pods)), Ok(Some(registry))) = (db.bucket(b"allPods"), db.bucket(b"id-registry"))
    else {
        return HashMap::new();
    };
    let pods: HashSet<Vec<u8>> = pods.into_iter().map(|(id, _)| id).collect();
    registry
        .into_iter()
        .filter(|(id, _)| pods.contains(id))
        .filter_map(|(id, name)| {
            let id = String::from_utf8(id).ok().filter(|id| is_full_id(id))?;
            let name = String::from_utf8(name?)
                .ok()
                .filter(|n| is_container_name(n))?;
            Some((id, name))
        })
        .collect()
}

/// The uid of a rootless user's memcg: `/user.slice/user-UID.slice/user@UID.service/...`.
fn rootless_uid(memcg: &str) -> Option<u32> {
    let mut parts = memcg.split('/').filter(|p| !p.is_empty());
    let (slice, user, service) = (parts.next()?, parts.next()?, parts.next()?);
    let uid = user.strip_prefix("user-")?.strip_suffix(".slice")?;
    (slice == "user.slice" && service == format!("user@{uid}.service"))
        .then(|| uid.parse().ok())
        .flatten()
        .filter(|uid| *uid != 0)
}

/// A user's home from `etc/passwd` under the root (absolute, no `..`).
fn home_of(root: &Path, uid: u32) -> Option<String> {
    let path = root.join("etc/passwd");
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_PASSWD_BYTES {
        return None;
    }
    let text = fs::read_to_string(&path).ok()?;
    let homes: HashMap<u32, &str> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some((fields.get(2)?.parse().ok()?, *fields.get(5)?))
        })
        .collect();
    homes
        .get(&uid)
        .filter(|h| h.starts_with('/') && !h.split('/').any(|c| c == ".."))
        .map(|h| (*h).to_owned())
}
