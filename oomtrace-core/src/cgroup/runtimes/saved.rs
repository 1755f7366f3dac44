//! A runtime's names read back from a saved decision (a dump or saved
//! `--json` output): `oomtrace report` runs where the runtime's state files
//! that gave them may be gone (another machine, the container removed).
//! They are as untrusted as the files were: validated again, and applied
//! only to a container the path attributes to that runtime.
use serde::Deserialize;

use super::{is_compose_name, is_container_name, is_image_reference, source};
use crate::cgroup::container::{Compose, Container, is_full_id, runtime};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SavedRuntimeNames {
    #[serde(rename = "container.name", default)]
    name: Option<String>,
    #[serde(rename = "container.image.name", default)]
    image: Option<String>,
    #[serde(default)]
    compose: Option<SavedCompose>,
    #[serde(default)]
    runtime_namespace: Option<String>,
    #[serde(rename = "podman.pod.id", default)]
    podman_pod: Option<String>,
    #[serde(rename = "podman.pod.name", default)]
    podman_pod_name: Option<String>,
    #[serde(default)]
    memory_limit_bytes: Option<u64>,
    #[serde(default)]
    names_source: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct SavedCompose {
    project: String,
    service: String,
    #[serde(default)]
    number: Option<u32>,
}

impl SavedRuntimeNames {
    /// The names on `c`, when its path names the runtime that gave them.
    pub fn apply(&self, c: &mut Container) {
        let (runtime, source) = match self.names_source.as_deref() {
            Some(source::DOCKER) => (runtime::DOCKER, source::DOCKER),
            Some(source::PODMAN) => (runtime::PODMAN, source::PODMAN),
            Some(source::CONTAINERD) => (runtime::CONTAINERD, source::CONTAINERD),
            _ => return,
        };
        if c.runtime != runtime {
            return;
        }
        let name = |s: &Option<String>| s.clone().filter(|s| is_container_name(s));
        c.name = name(&self.name).or(c.name.take());
        c.image = self.image.clone().filter(|i| is_image_reference(i));
        c.compose = self
            .compose
            .as_ref()
            .filter(|p| is_compose_name(&p.project) && is_compose_name(&p.service))
            .map(|p| Compose {
                project: p.project.clone(),
                service: p.service.clone(),
                number: p.number,
            });
        c.runtime_namespace = name(&self.runtime_namespace);
        if c.podman_pod.is_none() {
            c.podman_pod = self.podman_pod.clone().filter(|id| is_full_id(id));
        }
        if c.podman_pod == self.podman_pod {
            c.podman_pod_name = name(&self.podman_pod_name);
        }
        c.memory_limit_bytes = self.memory_limit_bytes;
        c.names_source = Some(source);
    }
}

/// Every name a saved decision's container object carried (they come from
/// the node's files, not the path): Kubernetes' and a runtime's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedNames {
    kube: Option<crate::cgroup::kubernetes::SavedNames>,
    runtime: Option<SavedRuntimeNames>,
}

impl SavedNames {
    /// Leniently from a saved container object: anything odd is no names.
    pub fn deserialize_lenient<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SavedNames>, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Some(SavedNames {
            kube: serde_json::from_value(value.clone()).ok(),
            runtime: serde_json::from_value(value).ok(),
        }))
    }

    /// The names on `c`, validated as if read on the node.
    pub fn apply(&self, c: &mut Container) {
        if let Some(kube) = &self.kube {
            kube.apply(c);
        }
        if let Some(runtime) = &self.runtime {
            runtime.apply(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::container::attribute;

    const ID: &str = "0f3f886d9adbd1e8b6f0d3e6c1b2a39457e8c7d6b5a4f3e2d1c0b9a8f7e6d5c4";

    fn saved(json: serde_json::Value) -> SavedNames {
        SavedNames::deserialize_lenient(json).unwrap().unwrap()
    }

    #[test]
    fn a_dockers_names_come_back_on_its_container() {
        let names = saved(serde_json::json!({
            "container.name": "ledger-sync", "container.image.name": "busybox:1.36",
            "compose": {"project": "shop", "service": "ledger", "number": 2},
            "memory_limit_bytes": 50331648, "names_source": "docker_config"}));
        let mut c = attribute(&format!("/docker/{ID}")).unwrap();
        names.apply(&mut c);
        assert_eq!(c.name.as_deref(), Some("ledger-sync"));
        assert_eq!(c.image.as_deref(), Some("busybox:1.36"));
        assert_eq!(c.owner_name().as_deref(), Some("compose shop/ledger"));
        assert_eq!(c.memory_limit_bytes, Some(50331648));
        assert_eq!(c.names_source, Some(source::DOCKER));
    }

    #[test]
    fn saved_names_are_validated_and_kept_to_their_runtime() {
        let hostile = saved(serde_json::json!({
            "container.name": "\u{1b}[31mred", "container.image.name": "a b",
            "podman.pod.name": "x/../y", "names_source": "docker_config"}));
        let mut c = attribute(&format!("/docker/{ID}")).unwrap();
        hostile.apply(&mut c);
        assert_eq!((c.name, c.image, c.podman_pod_name), (None, None, None));
        // Podman's names do not go on a Docker container.
        let podman = saved(serde_json::json!({
            "container.name": "ledger", "names_source": "podman_storage"}));
        let mut c = attribute(&format!("/docker/{ID}")).unwrap();
        podman.apply(&mut c);
        assert_eq!(c.name, None);
        // Not an object: no names, no error.
        assert_eq!(saved(serde_json::json!(7)), SavedNames::default());
    }
}
