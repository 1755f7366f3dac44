//! Container names outside Kubernetes (Docker, Podman, containerd's `ctr`
//! and nerdctl), read from the node's own state files, never from a runtime
//! socket (a socket is root-equivalent; the DaemonSet must not need one).
//!
//! One [`Resolver`] per runtime ([`docker`], [`podman`], [`containerd`])
//! behind [`Runtimes`], which the live session refreshes once a second, as
//! it does `super::kubernetes::KubeResolver`; each remembers what it read
//! in a bounded [`RecentCache`] so that a container removed right after
//! its death keeps its name.
//!
//! Trust: a resolver names a container only when the runtime's own state
//! puts that container in the memcg (or an ancestor of it): Docker's
//! `hostconfig.json` cgroup parent and driver, Podman's and containerd's
//! `linux.cgroupsPath`. A cgroup someone else named after a container gets
//! no names. Every name, label and image reference is validated (charset
//! and length) before it is kept; the files are opened without following
//! symlinks and size-capped ([`super::state_file::read_json`]).
pub mod bolt;
pub mod containerd;
pub mod docker;
pub mod podman;
pub mod saved;

use std::{collections::HashSet, path::Path};

pub use super::container::Compose;
use super::{
    container::Container,
    kubernetes::{KubeNames, KubeResolver},
    recent::{RecentCache, Weighed},
};

/// Containers whose names each resolver remembers.
pub const CACHE_ENTRIES: usize = 1024;
/// Bytes of names each resolver remembers.
pub const CACHE_BYTES: usize = 512 << 10;

/// Values of [`RuntimeNames::source`] (and of `Container::names_source`).
pub mod source {
    pub const DOCKER: &str = "docker_config";
    pub const PODMAN: &str = "podman_storage";
    pub const CONTAINERD: &str = "containerd_bundle";
}

/// Kubernetes names a runtime's labels carry (cri-dockerd's `io.kubernetes.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabels {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
}

/// What a runtime's own state says of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeNames {
    /// One of `container::runtime`'s constants.
    pub runtime: &'static str,
    /// The runtime's id: 64 hex, except `ctr run`'s, which its user named.
    pub id: String,
    /// The name `docker ps`, `podman ps` or nerdctl shows.
    pub name: Option<String>,
    /// The image as the user named it (`busybox:1.36`, not its digest).
    pub image: Option<String>,
    pub compose: Option<Compose>,
    pub pod_labels: Option<PodLabels>,
    /// containerd's namespace (`ctr -n`).
    pub namespace: Option<String>,
    /// The podman pod's id where the runtime's state says it (a pod without
    /// a cgroup of its own; else the path says it).
    pub podman_pod: Option<String>,
    /// That pod's name (libpod's BoltDB).
    pub podman_pod_name: Option<String>,
    /// The memory limit the runtime set (`docker run -m`), bytes.
    pub memory_limit_bytes: Option<u64>,
    /// One of the [`source`] constants.
    pub source: &'static str,
    /// The memcgs the runtime may have made for the container (one, or one
    /// per cgroup driver when its state does not say which ran).
    pub cgroups: Vec<String>,
}

impl Weighed for RuntimeNames {
    fn bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.id.len()
            + opt(&self.name)
            + opt(&self.image)
            + self
                .compose
                .as_ref()
                .map_or(0, |c| c.project.len() + c.service.len())
            + self
                .pod_labels
                .as_ref()
                .map_or(0, |p| p.namespace.len() + p.pod.len() + opt(&p.container))
            + opt(&self.namespace)
            + opt(&self.podman_pod)
            + opt(&self.podman_pod_name)
            + self.cgroups.iter().map(String::len).sum::<usize>()
    }
}

impl RuntimeNames {
    /// Writes the names into the container identity (made from the names
    /// when the path alone named no container: containerd's `/<ns>/<id>`).
    pub fn apply(&self, c: &mut Option<Container>) {
        let c = c.get_or_insert_with(|| {
            let mut c = Container::named(self.runtime, &self.id);
            c.id = c.id.filter(|id| super::container::is_full_id(id));
            c
        });
        c.name = self.name.clone().or(c.name.take());
        c.image = self.image.clone();
        c.compose = self.compose.clone();
        c.runtime_namespace = self.namespace.clone();
        c.podman_pod = c.podman_pod.take().or(self.podman_pod.clone());
        // The name is the pod's whose id the container now carries.
        if c.podman_pod == self.podman_pod {
            c.podman_pod_name = self.podman_pod_name.clone();
        }
        c.memory_limit_bytes = self.memory_limit_bytes;
        c.names_source = Some(self.source);
        if let Some(p) = &self.pod_labels {
            c.namespace = Some(p.namespace.clone());
            c.pod_name = Some(p.pod.clone());
            c.container_name = p.container.clone();
        }
    }

    /// The runtime's cgroup for the container is the memcg or an ancestor.
    fn placed(&self, memcg: &str) -> bool {
        self.cgroups
            .iter()
            .any(|own| super::kubernetes::confirms(Some(own), memcg))
    }
}

/// One runtime's names, read from the node's files under a root.
pub trait Resolver: Send + std::fmt::Debug {
    /// Reads the state of containers not seen yet (once a second).
    fn refresh(&mut self);
    /// The names of the container the memcg belongs to, if this runtime
    /// made it (`container`: what the path said, None when it named none).
    fn resolve(&mut self, container: Option<&Container>, memcg: &str) -> Option<RuntimeNames>;
}

/// Every runtime's resolver, refreshed and asked together.
#[derive(Debug)]
pub struct Runtimes {
    resolvers: Vec<Box<dyn Resolver>>,
}

impl Runtimes {
    /// The resolvers of every runtime, reading under `root` (`/` or `--host-root`).
    pub fn new(root: &Path) -> Self {
        Runtimes {
            resolvers: vec![
                Box::new(docker::DockerResolver::new(root)),
                Box::new(podman::PodmanResolver::new(root)),
                Box::new(containerd::ContainerdResolver::new(root)),
            ],
        }
    }

    pub fn refresh(&mut self) {
        for r in &mut self.resolvers {
            r.refresh();
        }
    }

    pub fn resolve(&mut self, container: Option<&Container>, memcg: &str) -> Option<RuntimeNames> {
        self.resolvers
            .iter_mut()
            .find_map(|r| r.resolve(container, memcg))
    }
}

/// Every source of names on the node: the kubelet's and each runtime's,
/// refreshed together by the live session.
#[derive(Debug)]
pub struct NodeNames {
    pub kube: KubeResolver,
    pub runtimes: Runtimes,
}

impl NodeNames {
    pub fn new(root: &Path) -> Self {
        NodeNames {
            kube: KubeResolver::new(root),
            runtimes: Runtimes::new(root),
        }
    }

    /// Reads the state of containers started since the last refresh.
    pub fn refresh(&mut self) {
        self.kube.refresh();
        self.runtimes.refresh();
    }

    /// The owner of `memcg` as the path says, named by its runtime's and
    /// the kubelet's state.
    pub fn container(&mut self, memcg: &str) -> Option<Container> {
        owner(
            memcg,
            self,
            |n, found| n.runtimes.resolve(found, memcg),
            |n, c| n.kube.resolve(c, memcg),
        )
    }
}

/// The owner of `memcg` as the path says, then named: first by its
/// runtime's own state (which may name a container the path alone does
/// not, e.g. `ctr`'s `/<ns>/<id>`), then by the kubelet's. The live session
/// and the decision model (through its `Environment`) both name this way;
/// `source` is what both lookups read from.
pub fn owner<S: ?Sized>(
    memcg: &str,
    source: &mut S,
    runtime: impl FnOnce(&mut S, Option<&Container>) -> Option<RuntimeNames>,
    kube: impl FnOnce(&mut S, &Container) -> Option<KubeNames>,
) -> Option<Container> {
    let mut found = super::container::attribute(memcg);
    if let Some(names) = runtime(source, found.as_ref()) {
        names.apply(&mut found);
    }
    let mut c = found?;
    if let Some(names) = kube(source, &c) {
        names.apply(&mut c);
    }
    Some(c)
}

/// Names read, by container id, and the ids whose state named nothing (so
/// that a refresh does not re-read them every second).
#[derive(Debug)]
struct Remembered {
    cache: RecentCache<RuntimeNames>,
    unnamed: HashSet<String>,
}

impl Remembered {
    fn new() -> Self {
        Remembered {
            cache: RecentCache::new(CACHE_ENTRIES, CACHE_BYTES),
            unnamed: HashSet::new(),
        }
    }

    fn known(&self, key: &str) -> bool {
        self.cache.get(key).is_some() || self.unnamed.contains(key)
    }

    /// Remembers what `read` gives for `key`, or that it gave nothing.
    fn learn(&mut self, key: &str, read: Option<RuntimeNames>) -> Option<RuntimeNames> {
        match &read {
            Some(names) => self.cache.insert(key.to_owned(), names.clone()),
            None => {
                if self.unnamed.len() >= CACHE_ENTRIES {
                    self.unnamed.clear();
                }
                self.unnamed.insert(key.to_owned());
            }
        }
        read
    }

    /// Reads the containers of `dir` (one directory per id) not seen yet.
    fn learn_dir(
        &mut self,
        dir: &Path,
        valid_id: fn(&str) -> bool,
        mut read: impl FnMut(&str) -> Option<RuntimeNames>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|id| valid_id(id)) else {
                continue;
            };
            if !self.known(id) {
                let names = read(id);
                self.learn(id, names);
            }
        }
    }

    /// The cached names of `key`, else `read`'s, kept when they place the
    /// container in the memcg.
    fn resolve(
        &mut self,
        key: &str,
        memcg: &str,
        read: impl FnOnce() -> Option<RuntimeNames>,
    ) -> Option<RuntimeNames> {
        let names = match self.cache.get(key) {
            Some(names) => Some(names.clone()),
            None => {
                self.unnamed.remove(key);
                self.learn(key, read())
            }
        }?;
        names.placed(memcg).then_some(names)
    }
}

/// A Docker or Podman container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as
/// both CLIs accept them (nerdctl's are the same).
pub fn is_container_name(s: &str) -> bool {
    s.len() <= 253
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An image reference as a user types it (`registry:5000/a/b:tag@sha256:…`):
/// the reference grammar's characters only, bounded.
pub fn is_image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b':' | b'@')
        })
}

/// A Compose project name (`[a-z0-9][a-z0-9_-]*`; Compose 1.x also kept
/// what the directory was called, so `.` and upper case are let through)
/// or service name.
fn is_compose_name(s: &str) -> bool {
    is_container_name(s) && s.len() <= 128
}

/// Takes a string the runtime's file has, kept when `valid`.
fn valid(s: Option<&str>, valid: fn(&str) -> bool) -> Option<String> {
    s.filter(|s| valid(s)).map(str::to_owned)
}

#[cfg(test)]
mod tests;
