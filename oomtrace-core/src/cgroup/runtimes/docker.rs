//! Docker's names: `<data-root>/containers/<id>/config.v2.json` (name,
//! image, labels) and `hostconfig.json` (cgroup parent, memory limit). The
//! data root is `/etc/docker/daemon.json`'s `data-root`, else
//! `/var/lib/docker`, under the root. Docker removes the directory on
//! `docker rm` (at once with `--rm`), hence the refresh.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    Compose, PodLabels, Remembered, Resolver, RuntimeNames, is_compose_name, is_container_name,
    is_image_reference, source, valid,
};
use crate::cgroup::{
    container::{Container, expand_slice, is_full_id, runtime},
    kubernetes::{is_dns_label, is_dns_subdomain},
    state_file::read_json,
};

/// Docker's default data root.
pub const DATA_ROOT: &str = "var/lib/docker";
/// The daemon's configuration, which may move the data root.
pub const DAEMON_JSON: &str = "etc/docker/daemon.json";
/// A container's state files larger than this are refused (real ones are
/// a few KiB; labels and environment make them grow).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub struct DockerResolver {
    containers: PathBuf,
    remembered: Remembered,
}

impl DockerResolver {
    pub fn new(root: &Path) -> Self {
        DockerResolver {
            containers: data_root(root).join("containers"),
            remembered: Remembered::new(),
        }
    }
}

/// `containers/<id>`'s two files, when they describe container `id`.
fn read(containers: &Path, id: &str) -> Option<RuntimeNames> {
    let dir = containers.join(id);
    let config: Config = read_json(&dir.join("config.v2.json"), MAX_CONFIG_BYTES)?;
    let host: HostConfig = read_json(&dir.join("hostconfig.json"), MAX_CONFIG_BYTES)?;
    (config.id == id).then(|| names(id, &config, &host))
}

impl Resolver for DockerResolver {
    fn refresh(&mut self) {
        let containers = &self.containers;
        self.remembered
            .learn_dir(containers, is_full_id, |id| read(containers, id));
    }

    /// Docker's containers, and the bare ids under a kubelet pod
    /// (cri-dockerd writes them as Docker containers).
    fn resolve(&mut self, c: Option<&Container>, memcg: &str) -> Option<RuntimeNames> {
        let c = c?;
        if !matches!(c.runtime, runtime::DOCKER | runtime::CRI) {
            return None;
        }
        let id = c.id.as_deref()?;
        let containers = &self.containers;
        self.remembered.resolve(id, memcg, || read(containers, id))
    }
}

/// `<root>/<data-root>`: daemon.json's, when it names an absolute path
/// (read under the root), else the default.
fn data_root(root: &Path) -> PathBuf {
    #[derive(Deserialize)]
    struct Daemon {
        #[serde(rename = "data-root")]
        data_root: Option<String>,
    }
    let configured = read_json::<Daemon>(&root.join(DAEMON_JSON), MAX_CONFIG_BYTES)
        .and_then(|d| d.data_root)
        .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."));
    match configured {
        Some(path) => root.join(path.trim_start_matches('/')),
        None => root.join(DATA_ROOT),
    }
}

/// What oomtrace reads of `config.v2.json`.
#[derive(Deserialize)]
struct Config {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config", default)]
    config: Option<ContainerConfig>,
}

#[derive(Deserialize, Default)]
struct ContainerConfig {
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// What oomtrace reads of `hostconfig.json`.
#[derive(Deserialize)]
struct HostConfig {
    #[serde(rename = "Memory", default)]
    memory: Option<i64>,
    #[serde(rename = "CgroupParent", default)]
    cgroup_parent: Option<String>,
}

fn names(id: &str, config: &Config, host: &HostConfig) -> RuntimeNames {
    let empty = ContainerConfig::default();
    let inner = config.config.as_ref().unwrap_or(&empty);
    let labels = inner.labels.clone().unwrap_or_default();
    let label = |key: &str| labels.get(key).map(String::as_str);
    RuntimeNames {
        runtime: runtime::DOCKER,
        id: id.to_owned(),
        name: valid(Some(config.name.trim_start_matches('/')), is_container_name),
        image: valid(inner.image.as_deref(), is_image_reference),
        compose: compose(&label),
        pod_labels: pod_labels(&label),
        namespace: None,
        podman_pod: None,
        podman_pod_name: None,
        memory_limit_bytes: host.memory.filter(|m| *m > 0).map(|m| m as u64),
        source: source::DOCKER,
        cgroups: cgroups(id, host.cgroup_parent.as_deref().unwrap_or("")),
    }
}

/// The `com.docker.compose.*` labels Compose (1.x and 2.x) sets.
fn compose<'a>(label: &impl Fn(&str) -> Option<&'a str>) -> Option<Compose> {
    Some(Compose {
        project: valid(label("com.docker.compose.project"), is_compose_name)?,
        service: valid(label("com.docker.compose.service"), is_compose_name)?,
        number: label("com.docker.compose.container-number").and_then(|n| n.parse().ok()),
    })
}

/// cri-dockerd's (and dockershim's) pod labels.
fn pod_labels<'a>(label: &impl Fn(&str) -> Option<&'a str>) -> Option<PodLabels> {
    Some(PodLabels {
        namespace: valid(label("io.kubernetes.pod.namespace"), is_dns_label)?,
        pod: valid(label("io.kubernetes.pod.name"), is_dns_subdomain)?,
        container: valid(label("io.kubernetes.container.name"), |n| {
            n != "POD" && is_dns_label(n)
        }),
    })
}

/// The memcg Docker makes for the container: with the cgroupfs driver
/// `<parent or /docker>/<id>`; with the systemd driver `<slice>/docker-<id>.scope`
/// (an empty parent is `system.slice` there: the file does not say which
/// driver ran, so both).
fn cgroups(id: &str, parent: &str) -> Vec<String> {
    let scope = |slice: &str| {
        expand_slice(slice).map(|s| format!("{}/docker-{id}.scope", s.trim_end_matches('/')))
    };
    if parent.ends_with(".slice") {
        return scope(parent).into_iter().collect();
    }
    match parent.trim_matches('/') {
        "" => [Some(format!("/docker/{id}")), scope("system.slice")]
            .into_iter()
            .flatten()
            .collect(),
        p if p.split('/').any(|c| c == "..") => Vec::new(),
        p => vec![format!("/{p}/{id}")],
    }
}
