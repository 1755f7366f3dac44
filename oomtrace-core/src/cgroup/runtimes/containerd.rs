//! containerd without Kubernetes (`ctr`, nerdctl): the namespace and id of
//! a container (`ctr run`'s ids are names, `redis`: they go in the name,
//! as the id is a 64-hex one), and nerdctl's name, from the task's bundle
//! `run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`
//! (`linux.cgroupsPath`, and the `nerdctl/name` annotation nerdctl copies
//! from its labels). The image and `ctr`'s labels are kept only in
//! containerd's BoltDB (`meta.db`), which oomtrace does not parse.
//!
//! Trust: on cgroupfs containerd puts a container at `/<namespace>/<id>`,
//! a path only root can make at the hierarchy's root, and which the path
//! alone cannot tell from any other directory with a 64-hex child. Outside
//! `/default/<id>` (which [`super::super::container::attribute`] knows),
//! such a path is containerd's only when the bundle of `<id>` in
//! `<namespace>` names that very cgroup. The CRI plugin's `k8s.io`
//! namespace is left to `super::super::kubernetes`.
use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{Remembered, Resolver, RuntimeNames, is_container_name, source};
use crate::cgroup::{
    container::{Container, KUBERNETES, is_full_id, runtime},
    kubernetes::read_spec,
};

/// containerd's v2 task bundles, one directory per namespace.
pub const TASKS: &str = "run/containerd/io.containerd.runtime.v2.task";
/// The CRI plugin's namespace (Kubernetes names come from `kubernetes`).
const CRI_NAMESPACE: &str = "k8s.io";

#[derive(Debug)]
pub struct ContainerdResolver {
    tasks: PathBuf,
    remembered: Remembered,
}

impl ContainerdResolver {
    pub fn new(root: &Path) -> Self {
        ContainerdResolver {
            tasks: root.join(TASKS),
            remembered: Remembered::new(),
        }
    }

    /// The namespaces that have a bundle for `id`.
    fn namespaces_of(&self, id: &str) -> Vec<String> {
        namespaces(&self.tasks)
            .into_iter()
            .filter(|ns| self.tasks.join(ns).join(id).is_dir())
            .collect()
    }
}

impl Resolver for ContainerdResolver {
    fn refresh(&mut self) {
        let tasks = &self.tasks;
        for ns in namespaces(tasks) {
            self.remembered
                .learn_dir(&tasks.join(&ns), is_identifier, |id| read(tasks, &ns, id));
        }
    }

    fn resolve(&mut self, c: Option<&Container>, memcg: &str) -> Option<RuntimeNames> {
        let id = match c {
            // `/<namespace>/<id>` at the root, which no layout claimed.
            None => namespaced_path(memcg)?.1.to_owned(),
            Some(c) if c.runtime == runtime::CONTAINERD && c.orchestrator != Some(KUBERNETES) => {
                c.id.clone()?
            }
            Some(_) => return None,
        };
        let namespaces = self.namespaces_of(&id);
        let tasks = &self.tasks;
        // Ids are random 64-hex: one key across namespaces.
        self.remembered.resolve(&id, memcg, || {
            namespaces.iter().find_map(|ns| read(tasks, ns, &id))
        })
    }
}

/// The bundle's names, when it is a container's (not the CRI's).
fn read(tasks: &Path, ns: &str, id: &str) -> Option<RuntimeNames> {
    let spec = read_spec(&tasks.join(ns).join(id).join("config.json"))?;
    let nerdctl = spec
        .annotation("nerdctl/name")
        .filter(|n| is_container_name(n))
        .map(str::to_owned);
    Some(RuntimeNames {
        runtime: runtime::CONTAINERD,
        id: id.to_owned(),
        // `ctr run`'s id is the name its user gave.
        name: nerdctl.or_else(|| (!is_full_id(id)).then(|| id.to_owned())),
        image: None,
        compose: None,
        pod_labels: None,
        namespace: Some(ns.to_owned()),
        podman_pod: None,
        podman_pod_name: None,
        memory_limit_bytes: None,
        source: source::CONTAINERD,
        cgroups: vec![spec.cgroup()?],
    })
}

/// The namespace directories, the CRI's left out.
fn namespaces(tasks: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(tasks) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|ns| ns != CRI_NAMESPACE && is_namespace(ns))
        .collect()
}

/// `/<namespace>/<id>`, exactly two components.
fn namespaced_path(memcg: &str) -> Option<(&str, &str)> {
    let mut parts = memcg.trim().split('/').filter(|p| !p.is_empty());
    let (ns, id) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && is_namespace(ns) && is_identifier(id)).then_some((ns, id))
}

/// containerd's identifier rule, for namespaces and container ids:
/// `[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?`, at most 76 characters.
/// nerdctl's ids are 64 hex; `ctr run`'s are what the user typed (`redis`).
fn is_identifier(s: &str) -> bool {
    s.len() <= 76
        && is_container_name(s)
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn is_namespace(s: &str) -> bool {
    is_identifier(s)
}
