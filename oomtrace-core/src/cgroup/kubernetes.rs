//! Kubernetes names (namespace, pod, container) for a container that
//! [`super::container::attribute`] found under a kubelet pod cgroup, without
//! the API server: from what the node itself keeps on disk.
//!
//! 1. The runtime's OCI bundle, `config.json`, whose annotations carry the
//!    names the kubelet gave the runtime:
//!    - containerd (CRI plugin): `run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json`,
//!      annotations `io.kubernetes.cri.sandbox-namespace`, `-sandbox-name`,
//!      `-sandbox-uid`, `-container-name` (`io.kubernetes.cri.container-type`
//!      is `sandbox` for the pause container, which has no container name);
//!    - CRI-O: `run/containers/storage/overlay-containers/<id>/userdata/config.json`,
//!      annotations `io.kubernetes.pod.namespace`, `.pod.name`, `.pod.uid`,
//!      `io.kubernetes.container.name` (`POD` for the infra container).
//! 2. The kubelet's log directories, which outlive the bundle (the runtime
//!    removes the bundle as soon as a dead container is deleted):
//!    `var/log/pods/<namespace>_<pod>_<uid>/<container>/` and
//!    `var/log/containers/<pod>_<namespace>_<container>-<id>.log`.
//!
//! All paths are relative to a root (`/`, or `--host-root` when oomtrace runs
//! in a container with the host mounted elsewhere).
//!
//! A container killed by the OOM is usually gone by the time its decision is
//! assembled, so every name found is kept in a [`RecentCache`] bounded to
//! [`CACHE_ENTRIES`] entries and [`CACHE_BYTES`] bytes of names; the live
//! session fills it from the bundle directories once a second
//! ([`KubeResolver::refresh`]) and as soon as an OOM names a memcg.
//!
//! Trust: names are given only to a container the kubelet's own layout
//! places ([`super::container`] counts `kubepods` only from the root of the
//! hierarchy), and only when its bundle's `linux.cgroupsPath` (the cgroup
//! the runtime itself created, [`runtime_cgroup`]) is the memcg or one of
//! its ancestors: a cgroup someone else named after a pod gets no names.
//!
//! Untrusted input: pod annotations are user-controlled and end up in
//! `config.json`. The file is opened without following symlinks, must be a
//! regular file of at most [`MAX_CONFIG_BYTES`], and every name must be a
//! valid Kubernetes name (DNS label or subdomain), else it is ignored.
use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use super::recent::RecentCache;
use super::{
    container::{Container, KUBERNETES, expand_slice, is_full_id, pod_uid, runtime},
    recent::Weighed,
    state_file::read_json,
};

/// containerd's CRI bundles, one directory per container id.
pub const CONTAINERD_BUNDLES: &str = "run/containerd/io.containerd.runtime.v2.task/k8s.io";
/// CRI-O's per-container run directories (`<id>/userdata/config.json`).
pub const CRIO_BUNDLES: &str = "run/containers/storage/overlay-containers";
/// The kubelet's per-pod log directories.
pub const POD_LOGS: &str = "var/log/pods";
/// The kubelet's per-container log symlinks.
pub const CONTAINER_LOGS: &str = "var/log/containers";

/// A bundle's `config.json` larger than this is refused (real ones are tens
/// of KiB; pod annotations are capped at 256 KiB by the API server).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Containers (or pods) whose names are remembered.
pub const CACHE_ENTRIES: usize = 1024;
/// Bytes of names remembered (a few hundred bytes per container at most).
pub const CACHE_BYTES: usize = 512 << 10;

/// Values of [`KubeNames::source`].
pub mod source {
    pub const CONTAINERD: &str = "containerd_bundle";
    pub const CRIO: &str = "crio_bundle";
    pub const LOGS: &str = "kubelet_logs";
}

/// A container's (or a pod's) Kubernetes names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeNames {
    pub namespace: String,
    pub pod: String,
    /// None for a pod's sandbox (pause) container or a pod-level cgroup.
    pub container: Option<String>,
    pub pod_uid: Option<String>,
    /// One of the [`source`] constants.
    pub source: &'static str,
    /// The memcg the runtime made for the container (its bundle's
    /// `linux.cgroupsPath`, [`runtime_cgroup`]); None from the kubelet's logs.
    pub cgroup: Option<String>,
}

impl Weighed for KubeNames {
    fn bytes(&self) -> usize {
        self.namespace.len()
            + self.pod.len()
            + self.container.as_ref().map_or(0, String::len)
            + self.pod_uid.as_ref().map_or(0, String::len)
            + self.cgroup.as_ref().map_or(0, String::len)
    }
}

impl KubeNames {
    /// Writes the names into the container identity.
    pub fn apply(&self, c: &mut Container) {
        c.namespace = Some(self.namespace.clone());
        c.pod_name = Some(self.pod.clone());
        c.container_name = self.container.clone();
        c.names_source = Some(self.source);
    }
}

/// The Kubernetes names of a saved decision's container object (a dump or
/// saved `--json` output): `oomtrace report` derives the rest from the path
/// again, but the node's files that gave the names may be gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SavedNames {
    #[serde(rename = "k8s.namespace.name", default)]
    namespace: Option<String>,
    #[serde(rename = "k8s.pod.name", default)]
    pod: Option<String>,
    #[serde(rename = "k8s.container.name", default)]
    container: Option<String>,
    #[serde(default)]
    names_source: Option<String>,
}

impl SavedNames {
    /// The names, validated as if read on the node, on `c`.
    pub fn apply(&self, c: &mut Container) {
        let source = match self.names_source.as_deref() {
            Some(source::CONTAINERD) => source::CONTAINERD,
            Some(source::CRIO) => source::CRIO,
            Some(source::LOGS) => source::LOGS,
            _ => return,
        };
        let (Some(namespace), Some(pod)) = (&self.namespace, &self.pod) else {
            return;
        };
        if c.orchestrator != Some(KUBERNETES) || !is_dns_label(namespace) || !is_dns_subdomain(pod)
        {
            return;
        }
        KubeNames {
            namespace: namespace.clone(),
            pod: pod.clone(),
            container: self.container.clone().filter(|n| is_dns_label(n)),
            pod_uid: None,
            source,
            cgroup: None,
        }
        .apply(c);
    }
}

/// Resolves and remembers Kubernetes names under one root.
#[derive(Debug)]
pub struct KubeResolver {
    root: PathBuf,
    cache: RecentCache<KubeNames>,
    /// Bundles that named nothing, so that [`refresh`](Self::refresh) does
    /// not re-read them every second (cleared past [`CACHE_ENTRIES`]).
    unnamed: HashSet<String>,
}

/// Cache key of a pod's names (container entries are keyed by the bare id).
fn pod_key(uid: &str) -> String {
    format!("pod:{uid}")
}

impl KubeResolver {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        KubeResolver {
            root: root.into(),
            cache: RecentCache::new(CACHE_ENTRIES, CACHE_BYTES),
            unnamed: HashSet::new(),
        }
    }

    pub fn cache(&self) -> &RecentCache<KubeNames> {
        &self.cache
    }

    /// The names of a container under a kubelet pod, attributed from its
    /// `memcg` path: from the cache, the runtime's bundle or the kubelet's
    /// logs; None outside Kubernetes, when nothing on the node names it, or
    /// when the bundle puts the container in another cgroup.
    pub fn resolve(&mut self, c: &Container, memcg: &str) -> Option<KubeNames> {
        if c.orchestrator != Some(KUBERNETES) {
            return None;
        }
        let uid = c.pod_uid.as_deref();
        if let Some(id) = c.id.as_deref() {
            let known = match self.cache.get(id) {
                Some(names) => Some(names.clone()),
                None => self.read_bundle(id, c.runtime),
            };
            if let Some(names) = known.filter(|n| same_pod(n, uid)) {
                if !placed(&names, memcg) {
                    return None;
                }
                return Some(self.remember(id, names));
            }
        }
        let pod = match uid {
            Some(uid) => match self.cache.get(&pod_key(uid)) {
                Some(names) => Some(names.clone()),
                None => self.pod_from_logs(uid),
            },
            None => None,
        }?;
        let mut names = KubeNames {
            container: None,
            ..pod
        };
        if let Some(name) =
            c.id.as_deref()
                .and_then(|id| self.container_from_logs(id, &names))
        {
            names.container = Some(name);
            names.source = source::LOGS;
        }
        Some(match c.id.as_deref() {
            Some(id) if names.container.is_some() => self.remember(id, names),
            _ => names,
        })
    }

    /// Reads the bundles of containers not seen yet, so that names survive
    /// the container (the runtime deletes its bundle right after it dies).
    pub fn refresh(&mut self) {
        for (dir, rt) in [
            (CONTAINERD_BUNDLES, runtime::CONTAINERD),
            (CRIO_BUNDLES, runtime::CRIO),
        ] {
            let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(id) = name.to_str().filter(|id| is_full_id(id)) else {
                    continue;
                };
                if self.cache.get(id).is_some() || self.unnamed.contains(id) {
                    continue;
                }
                match self.read_bundle(id, rt) {
                    Some(names) => {
                        self.remember(id, names);
                    }
                    None => {
                        if self.unnamed.len() >= CACHE_ENTRIES {
                            self.unnamed.clear();
                        }
                        self.unnamed.insert(id.to_owned());
                    }
                }
            }
        }
    }

    fn remember(&mut self, id: &str, names: KubeNames) -> KubeNames {
        if let Some(uid) = &names.pod_uid {
            let pod = KubeNames {
                container: None,
                ..names.clone()
            };
            self.cache.insert(pod_key(uid), pod);
        }
        self.cache.insert(id.to_owned(), names.clone());
        names
    }

    /// The runtime's bundle of `id`, trying the runtime the path named first.
    fn read_bundle(&self, id: &str, rt: &str) -> Option<KubeNames> {
        let containerd = || {
            let path = self
                .root
                .join(CONTAINERD_BUNDLES)
                .join(id)
                .join("config.json");
            names_of(&read_spec(&path)?, &CONTAINERD_KEYS, source::CONTAINERD)
        };
        let crio = || {
            let path = self
                .root
                .join(CRIO_BUNDLES)
                .join(id)
                .join("userdata/config.json");
            names_of(&read_spec(&path)?, &CRIO_KEYS, source::CRIO)
        };
        match rt {
            runtime::CRIO => crio().or_else(containerd),
            _ => containerd().or_else(crio),
        }
    }

    /// `var/log/pods/<namespace>_<pod>_<uid>`.
    fn pod_from_logs(&self, uid: &str) -> Option<KubeNames> {
        let suffix = format!("_{uid}");
        fs::read_dir(self.root.join(POD_LOGS))
            .ok()?
            .flatten()
            .find_map(|entry| {
                let name = entry.file_name();
                let (ns, pod) = name.to_str()?.strip_suffix(&suffix)?.split_once('_')?;
                (is_dns_label(ns) && is_dns_subdomain(pod)).then(|| KubeNames {
                    namespace: ns.to_owned(),
                    pod: pod.to_owned(),
                    container: None,
                    pod_uid: Some(uid.to_owned()),
                    source: source::LOGS,
                    cgroup: None,
                })
            })
    }

    /// `var/log/containers/<pod>_<namespace>_<container>-<id>.log`.
    fn container_from_logs(&self, id: &str, pod: &KubeNames) -> Option<String> {
        let prefix = format!("{}_{}_", pod.pod, pod.namespace);
        let suffix = format!("-{id}.log");
        fs::read_dir(self.root.join(CONTAINER_LOGS))
            .ok()?
            .flatten()
            .find_map(|entry| {
                let name = entry.file_name();
                let container = name
                    .to_str()?
                    .strip_prefix(&prefix)?
                    .strip_suffix(&suffix)?;
                is_dns_label(container).then(|| container.to_owned())
            })
    }
}

/// A bundle names the pod the cgroup path names (or the path names none).
fn same_pod(names: &KubeNames, uid: Option<&str>) -> bool {
    match (names.pod_uid.as_deref(), uid) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Names from a bundle must put the container where its path says; the
/// kubelet's logs name a pod uid and a container id the (root-anchored)
/// path itself carries.
fn placed(names: &KubeNames, memcg: &str) -> bool {
    names.source == source::LOGS || confirms(names.cgroup.as_deref(), memcg)
}

/// The runtime's own cgroup for the container is the memcg or one of its
/// ancestors (what is below a container's cgroup is the container's).
/// A bundle without a usable `linux.cgroupsPath` confirms nothing.
pub fn confirms(runtime_cgroup: Option<&str>, memcg: &str) -> bool {
    let memcg = memcg.trim();
    runtime_cgroup.is_some_and(|own| {
        memcg == own
            || own == "/"
            || memcg
                .strip_prefix(own)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The memcg path an OCI `linux.cgroupsPath` names: a cgroupfs path as is
/// (`/kubepods/burstable/pod<uid>/<id>`), or the systemd driver's
/// `slice:prefix:name` as the cgroup systemd makes for it
/// (`/kubepods.slice/…/<slice>/<prefix>-<name>.scope`, as runc names the
/// unit). None for anything else (a relative path, `..`, a bad slice).
pub fn runtime_cgroup(cgroups_path: &str) -> Option<String> {
    if cgroups_path.starts_with('/') {
        let parts: Vec<&str> = cgroups_path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return None;
        }
        return Some(format!("/{}", parts.join("/")));
    }
    let mut fields = cgroups_path.split(':');
    let (slice, prefix, name) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || name.is_empty() || name.contains('/') || prefix.contains('/') {
        return None;
    }
    if name.ends_with(".slice") {
        return expand_slice(name);
    }
    let parent = expand_slice(if slice.is_empty() {
        "system.slice"
    } else {
        slice
    })?;
    let unit = match prefix {
        "" => format!("{name}.scope"),
        _ => format!("{prefix}-{name}.scope"),
    };
    Some(format!("{}/{unit}", parent.trim_end_matches('/')))
}

/// Annotation keys of one runtime.
struct Keys {
    namespace: &'static str,
    pod: &'static str,
    uid: &'static str,
    container: &'static str,
}

const CONTAINERD_KEYS: Keys = Keys {
    namespace: "io.kubernetes.cri.sandbox-namespace",
    pod: "io.kubernetes.cri.sandbox-name",
    uid: "io.kubernetes.cri.sandbox-uid",
    container: "io.kubernetes.cri.container-name",
};

const CRIO_KEYS: Keys = Keys {
    namespace: "io.kubernetes.pod.namespace",
    pod: "io.kubernetes.pod.name",
    uid: "io.kubernetes.pod.uid",
    container: "io.kubernetes.container.name",
};

/// CRI-O's name for the infra (pause) container.
const CRIO_INFRA: &str = "POD";

fn names_of(spec: &Spec, keys: &Keys, source: &'static str) -> Option<KubeNames> {
    let get = |key: &str| spec.annotations.get(key).and_then(|v| v.as_str());
    let namespace = get(keys.namespace).filter(|n| is_dns_label(n))?;
    let pod = get(keys.pod).filter(|n| is_dns_subdomain(n))?;
    let container = get(keys.container).filter(|n| *n != CRIO_INFRA && is_dns_label(n));
    let pod_uid = get(keys.uid).filter(|u| is_pod_uid(u));
    Some(KubeNames {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.map(str::to_owned),
        pod_uid: pod_uid.map(str::to_owned),
        source,
        cgroup: spec.cgroup(),
    })
}

/// What oomtrace reads of an OCI `config.json`.
#[derive(Deserialize)]
pub(super) struct Spec {
    #[serde(default)]
    pub(super) annotations: HashMap<String, serde_json::Value>,
    #[serde(default)]
    linux: Option<LinuxSpec>,
}

impl Spec {
    /// The memcg the runtime made for the container ([`runtime_cgroup`]).
    pub(super) fn cgroup(&self) -> Option<String> {
        self.linux
            .as_ref()
            .and_then(|l| l.cgroups_path.as_deref())
            .and_then(runtime_cgroup)
    }

    pub(super) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Deserialize)]
struct LinuxSpec {
    #[serde(rename = "cgroupsPath", default)]
    cgroups_path: Option<String>,
}

/// An OCI `config.json` ([`read_json`]).
pub(super) fn read_spec(path: &Path) -> Option<Spec> {
    read_json(path, MAX_CONFIG_BYTES)
}

/// A pod UID as the API server writes it: a UUID, or a static pod's 32 hex.
fn is_pod_uid(s: &str) -> bool {
    pod_uid(s, '-').is_some()
}

/// RFC 1123 label: namespaces and container names.
pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: pod names.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests;
