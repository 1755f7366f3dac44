//! Container attribution from a memory-cgroup path.
//!
//! The kernel names a memcg by its path from the cgroup root (the OOM report's
//! `oom_memcg=` and `task_memcg=`, on cgroup v1 and v2 alike). Container
//! runtimes and the kubelet encode the owner of a cgroup in its directory
//! names, so the path alone says which container, Kubernetes pod or systemd
//! unit a task belonged to. [`attribute`] reads those names and nothing else:
//! no filesystem, no runtime socket, no network.
//!
//! Layouts recognised (`<id>` is a full container id, 64 lowercase hex):
//!
//! - Docker, cgroupfs driver: `/docker/<id>`.
//! - Docker, systemd driver: `/system.slice/docker-<id>.scope` (also rootless,
//!   under `user@UID.service`, and under a kubelet pod as with dockershim).
//! - kubelet, cgroupfs driver (at the root): `/kubepods/pod<uid>/<id>` (guaranteed),
//!   `/kubepods/burstable/pod<uid>/<id>`, `/kubepods/besteffort/pod<uid>/<id>`.
//!   The bare `<id>` does not say which CRI runtime made it (containerd and
//!   cri-dockerd both write it), so the runtime is reported as [`runtime::CRI`].
//! - kubelet, systemd driver: `/kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<uid_with_underscores>.slice/<container scope>`
//!   (`kubepods-pod<uid>.slice` for guaranteed pods). Each slice repeats its
//!   ancestors' names, so a custom cgroup root shows up as a prefix, e.g.
//!   kind's `kubelet-kubepods-besteffort-pod<uid>.slice`.
//! - containerd: `cri-containerd-<id>.scope` (CRI plugin, systemd driver),
//!   `nerdctl-<id>.scope`, and containerd's own default `/<namespace>/<id>`
//!   for the `default` namespace (`/default/<id>`, e.g. `ctr run`, nerdctl on
//!   cgroupfs).
//! - CRI-O: `crio-<id>.scope` (systemd) or `crio-<id>` (cgroupfs), often with
//!   a `container` child; its monitor `crio-conmon-<id>[.scope]` is reported
//!   with `monitor: true`.
//! - Podman: `libpod-<id>.scope` (systemd, root under `machine.slice`,
//!   rootless under `user@UID.service`), `/libpod_parent/libpod-<id>`
//!   (cgroupfs); monitor `libpod-conmon-<id>[.scope]`. A podman pod's
//!   members are below the pod's cgroup, `machine-libpod_pod_<podid>.slice`
//!   (`user-libpod_pod_<podid>.slice` rootless) or `/libpod_parent/<podid>`
//!   (cgroupfs, whose conmons share the pod's `conmon` child): the pod's id
//!   goes in `podman_pod`.
//! - LXC / LXD: `/lxc.payload.<name>`, monitor `/lxc.monitor.<name>`, and the
//!   pre-4.0 layout `/lxc/<name>`. LXC has no hex id; the name goes in `name`.
//! - Plain systemd: the innermost `*.service` or `*.scope`, e.g.
//!   `/system.slice/nginx.service` or
//!   `/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service`.
//!
//! Trust: a path names what a runtime created, and anyone who may create
//! cgroups (a delegated systemd user manager, rootless podman, a privileged
//! pod) can write any name below their own cgroup. So
//!
//! - the kubelet's layouts count only from the root of the hierarchy
//!   (`/kubepods/...`, or the systemd slices at the path systemd gives them,
//!   a custom cgroup root's `/kubelet.slice/kubelet-kubepods.slice/...`
//!   included), as do the cgroupfs `/docker/<id>`, `/default/<id>` and
//!   `/libpod_parent/<podid>`;
//! - the outermost container or pod in the path wins: what is below it is
//!   its own (docker-in-docker, a kind node, systemd inside a container are
//!   the outer container's), never a pod or container named inside it.
//!
//! The systemd-driver scopes (`docker-<id>.scope`, ...) are also where
//! rootless runtimes put them, inside a user's delegated subtree, so they
//! are recognised anywhere; their ids are what the path says, and nothing
//! names them further unless the runtime's own state confirms the path
//! (`kubernetes`: the bundle's `linux.cgroupsPath`).
//!
//! Id validation: every runtime above names its cgroups with the full 64-hex
//! id. None of them writes the 12-character short id (that is only how CLIs
//! display ids), so short, long, upper-case or non-hex ids are rejected
//! everywhere. Pod UIDs must be UUIDs (8-4-4-4-12 lowercase hex) or, for
//! static pods whose UID the kubelet derives from an MD5 of the manifest,
//! 32 lowercase hex.

use serde::Serialize;

/// Values of [`Container::runtime`].
pub mod runtime {
    pub const DOCKER: &str = "docker";
    pub const CONTAINERD: &str = "containerd";
    pub const CRIO: &str = "cri-o";
    pub const PODMAN: &str = "podman";
    pub const LXC: &str = "lxc";
    /// A plain systemd service or scope, not a container.
    pub const SYSTEMD: &str = "systemd";
    /// Some Kubernetes CRI runtime the path does not name: a bare id under a
    /// kubelet cgroupfs pod cgroup, or a pod cgroup itself.
    pub const CRI: &str = "cri";
}

/// Values of [`Container::qos_class`].
pub mod qos {
    pub const GUARANTEED: &str = "guaranteed";
    pub const BURSTABLE: &str = "burstable";
    pub const BESTEFFORT: &str = "besteffort";
}

/// A Docker Compose service's container: the `com.docker.compose.*` labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compose {
    pub project: String,
    pub service: String,
    /// `com.docker.compose.container-number` (1 for a service's first replica).
    pub number: Option<u32>,
}

/// Value of [`Container::orchestrator`] for paths under the kubelet's pods.
pub const KUBERNETES: &str = "kubernetes";

/// Who owns a memory cgroup, as far as its path tells, plus the Kubernetes
/// names the node keeps for it (`cgroup::kubernetes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// One of the [`runtime`] constants.
    pub runtime: &'static str,
    /// Full 64-hex container id, when the path carries one.
    pub id: Option<String>,
    /// Kubernetes pod UID with dashes (the systemd driver writes underscores).
    pub pod_uid: Option<String>,
    /// One of the [`qos`] constants, for Kubernetes pods.
    pub qos_class: Option<&'static str>,
    /// [`KUBERNETES`] when the cgroup is a kubelet pod or a container in one.
    pub orchestrator: Option<&'static str>,
    /// Innermost systemd unit (`*.service` or `*.scope`) at or below the
    /// attributed cgroup: the unit of a plain systemd service, the scope of a
    /// container under the systemd driver, or a unit run by systemd inside
    /// the container.
    pub unit: Option<String>,
    /// The path is the pod's own cgroup, not a container inside it.
    pub pod_level: bool,
    /// Container name: LXC/LXD's from the path, Docker's, Podman's or
    /// nerdctl's from the runtime's state (`cgroup::runtimes`).
    pub name: Option<String>,
    /// The image as the user named it (Docker, Podman).
    pub image: Option<String>,
    /// The Docker Compose project, service and replica number.
    pub compose: Option<Compose>,
    /// containerd's namespace (`ctr -n`, nerdctl).
    pub runtime_namespace: Option<String>,
    /// The id (64 hex) of the podman pod the container is in, from the
    /// pod's cgroup (or libpod's spec: `cgroup::runtimes::podman`).
    pub podman_pod: Option<String>,
    /// That pod's name, from libpod's BoltDB (`cgroup::runtimes::bolt`).
    pub podman_pod_name: Option<String>,
    /// The memory limit the runtime set (`docker run -m`), bytes.
    pub memory_limit_bytes: Option<u64>,
    /// The cgroup holds the runtime's per-container monitor (CRI-O's or
    /// Podman's conmon, LXC's monitor), not the container's payload.
    pub monitor: bool,
    /// Kubernetes namespace, pod name and container name (None for a pod's
    /// sandbox or a pod-level cgroup), when the node names them; plain
    /// fields so that metrics can use them as labels.
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_name: Option<String>,
    /// Where the names came from (`kubernetes::source`, `runtimes::source`).
    pub names_source: Option<&'static str>,
}

/// The JSON form: the fields above, plus OpenTelemetry's semantic names
/// (`k8s.*`, `container.id`) so collectors map them without configuration.
#[derive(Serialize)]
struct ContainerJson<'a> {
    runtime: &'static str,
    id: Option<&'a str>,
    pod_uid: Option<&'a str>,
    qos_class: Option<&'static str>,
    orchestrator: Option<&'static str>,
    unit: Option<&'a str>,
    pod_level: bool,
    name: Option<&'a str>,
    monitor: bool,
    compose: Option<&'a Compose>,
    runtime_namespace: Option<&'a str>,
    memory_limit_bytes: Option<u64>,
    /// No OpenTelemetry convention names podman pods: `podman.*` as the
    /// `k8s.*` keys are made.
    #[serde(rename = "podman.pod.id")]
    podman_pod_id: Option<&'a str>,
    #[serde(rename = "podman.pod.name")]
    podman_pod_name: Option<&'a str>,
    #[serde(rename = "container.id")]
    container_id: Option<&'a str>,
    #[serde(rename = "container.name")]
    container_name: Option<&'a str>,
    #[serde(rename = "container.image.name")]
    container_image_name: Option<&'a str>,
    #[serde(rename = "container.runtime")]
    container_runtime: Option<&'static str>,
    #[serde(rename = "k8s.pod.uid")]
    k8s_pod_uid: Option<&'a str>,
    #[serde(rename = "k8s.namespace.name")]
    k8s_namespace_name: Option<&'a str>,
    #[serde(rename = "k8s.pod.name")]
    k8s_pod_name: Option<&'a str>,
    #[serde(rename = "k8s.container.name")]
    k8s_container_name: Option<&'a str>,
    names_source: Option<&'static str>,
}

impl Serialize for Container {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kube = self.orchestrator == Some(KUBERNETES);
        ContainerJson {
            runtime: self.runtime,
            id: self.id.as_deref(),
            pod_uid: self.pod_uid.as_deref(),
            qos_class: self.qos_class,
            orchestrator: self.orchestrator,
            unit: self.unit.as_deref(),
            pod_level: self.pod_level,
            name: self.name.as_deref(),
            monitor: self.monitor,
            compose: self.compose.as_ref(),
            runtime_namespace: self.runtime_namespace.as_deref(),
            memory_limit_bytes: self.memory_limit_bytes,
            podman_pod_id: self.podman_pod.as_deref(),
            podman_pod_name: self.podman_pod_name.as_deref(),
            container_id: self.id.as_deref(),
            container_name: self.name.as_deref(),
            container_image_name: self.image.as_deref(),
            // OpenTelemetry's is the engine's name; a systemd unit has none.
            container_runtime: Some(self.runtime).filter(|r| *r != runtime::SYSTEMD),
            k8s_pod_uid: self.pod_uid.as_deref().filter(|_| kube),
            k8s_namespace_name: self.namespace.as_deref(),
            k8s_pod_name: self.pod_name.as_deref(),
            k8s_container_name: self.container_name.as_deref(),
            names_source: self.names_source,
        }
        .serialize(serializer)
    }
}

impl Container {
    /// The name its owner knows the container by, outside Kubernetes:
    /// `compose <project>/<service>`, `pod <podman pod>/<name>` (the pod's
    /// name, else its short id, as `podman ps --pod` shows them), else the runtime's own name
    /// (`docker ps`, `podman ps`, LXC), in containerd's namespace where
    /// there is one.
    pub fn owner_name(&self) -> Option<String> {
        if let Some(c) = &self.compose {
            return Some(format!("compose {}/{}", c.project, c.service));
        }
        let short = |id: Option<&str>| id.map(|id| id.chars().take(12).collect::<String>());
        if let Some(pod) = self
            .podman_pod_name
            .clone()
            .or(short(self.podman_pod.as_deref()))
        {
            let member = self.name.clone().or(short(self.id.as_deref()))?;
            return Some(format!("pod {pod}/{member}"));
        }
        let short = || short(self.id.as_deref());
        match (&self.runtime_namespace, &self.name) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            (Some(ns), None) => Some(format!("{ns}/{}", short()?)),
            (None, Some(name)) => Some(name.clone()),
            (None, None) => None,
        }
    }

    /// A container of `runtime` with id `id`, nothing else known yet.
    pub fn named(runtime: &'static str, id: &str) -> Self {
        Container {
            id: Some(id.to_owned()),
            ..Container::new(runtime)
        }
    }

    fn new(runtime: &'static str) -> Self {
        Container {
            runtime,
            id: None,
            pod_uid: None,
            qos_class: None,
            orchestrator: None,
            unit: None,
            pod_level: false,
            name: None,
            image: None,
            compose: None,
            runtime_namespace: None,
            podman_pod: None,
            podman_pod_name: None,
            memory_limit_bytes: None,
            monitor: false,
            namespace: None,
            pod_name: None,
            container_name: None,
            names_source: None,
        }
    }
}

/// Attributes a memcg path (as the kernel prints it, e.g.
/// `/kubepods/burstable/pod<uid>/<id>`) to a container, a Kubernetes pod or a
/// systemd unit. `None` when no known layout matches (`/`, `/user.slice`,
/// an ad-hoc `/my-group`).
pub fn attribute(memcg_path: &str) -> Option<Container> {
    let parts: Vec<&str> = memcg_path
        .trim()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();

    // Outermost first: what a runtime created owns everything below it, so a
    // pattern a tenant writes inside its own cgroup names nobody else.
    for i in 0..parts.len() {
        if let Some(pod) = pod_at(&parts, i) {
            let inner = parts.get(i + 1).and_then(|_| container_at(&parts, i + 1));
            let mut c = match inner {
                Some(found) => found.container(&parts[i + 1..]),
                None => {
                    let mut c = Container::new(runtime::CRI);
                    c.unit = innermost_unit(&parts[i + 1..]);
                    c.pod_level = i + 1 == parts.len();
                    c
                }
            };
            c.pod_uid = Some(pod.uid);
            c.qos_class = Some(pod.qos);
            c.orchestrator = Some(KUBERNETES);
            return Some(c);
        }
        if let Some(pod) = podman_pod_at(&parts, i) {
            return Some(podman_pod_member(&parts[i + 1..], pod));
        }
        if let Some(found) = container_at(&parts, i) {
            return Some(found.container(&parts[i..]));
        }
    }

    innermost_unit(&parts).map(|unit| {
        let mut c = Container::new(runtime::SYSTEMD);
        c.unit = Some(unit);
        c
    })
}

/// A container recognised from one path component.
struct Found {
    runtime: &'static str,
    id: Option<String>,
    name: Option<String>,
    monitor: bool,
}

impl Found {
    fn id(runtime: &'static str, id: &str, monitor: bool) -> Self {
        Found {
            runtime,
            id: Some(id.to_string()),
            name: None,
            monitor,
        }
    }

    fn lxc(name: &str, monitor: bool) -> Self {
        Found {
            runtime: runtime::LXC,
            id: None,
            name: Some(name.to_string()),
            monitor,
        }
    }

    /// The container, with the innermost unit of `parts` (its own cgroup first).
    fn container(self, parts: &[&str]) -> Container {
        let mut c = Container::new(self.runtime);
        c.id = self.id;
        c.name = self.name;
        c.monitor = self.monitor;
        c.unit = innermost_unit(parts);
        c
    }
}

/// `<prefix><id>[.scope]` names: (prefix, runtime, monitor, requires `.scope`).
/// The systemd-driver-only names need the suffix; CRI-O and Podman use the
/// same prefix without it under cgroupfs.
const SCOPE_PREFIXES: [(&str, &str, bool, bool); 7] = [
    ("docker-", runtime::DOCKER, false, true),
    ("cri-containerd-", runtime::CONTAINERD, false, true),
    ("nerdctl-", runtime::CONTAINERD, false, true),
    ("crio-conmon-", runtime::CRIO, true, false),
    ("crio-", runtime::CRIO, false, false),
    ("libpod-conmon-", runtime::PODMAN, true, false),
    ("libpod-", runtime::PODMAN, false, false),
];

fn container_at(parts: &[&str], i: usize) -> Option<Found> {
    let name = parts[i];
    let parent = i.checked_sub(1).map(|p| parts[p]);

    let (stem, is_scope) = match name.strip_suffix(".scope") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    for (prefix, runtime, monitor, needs_scope) in SCOPE_PREFIXES {
        if let Some(id) = stem.strip_prefix(prefix)
            && is_full_id(id)
            && (is_scope || !needs_scope)
        {
            return Some(Found::id(runtime, id, monitor));
        }
    }

    // cgroupfs drivers' `/<parent>/<id>`: only the runtime's own parent at
    // the root (anyone may make a `docker/<id>` inside a delegated subtree).
    // A bare id in a pod cgroup is the pod's (see `attribute`).
    if is_full_id(name) && i == 1 {
        let runtime = match parent? {
            "docker" => runtime::DOCKER,
            "default" => runtime::CONTAINERD,
            _ => return None,
        };
        return Some(Found::id(runtime, name, false));
    }
    if is_full_id(name) && i >= 1 && pod_at(parts, i - 1).is_some() {
        return Some(Found::id(runtime::CRI, name, false));
    }

    if let Some(n) = name.strip_prefix("lxc.payload.") {
        return is_lxc_name(n).then(|| Found::lxc(n, false));
    }
    if let Some(n) = name.strip_prefix("lxc.monitor.") {
        return is_lxc_name(n).then(|| Found::lxc(n, true));
    }
    if parent == Some("lxc") && is_lxc_name(name) {
        return Some(Found::lxc(name, false));
    }
    None
}

/// Whether `parts[i]` is a podman pod's cgroup, and its id: the systemd
/// driver's `<parent>-libpod_pod_<id>.slice` (anywhere: rootless pods are
/// in a user's delegated subtree), cgroupfs's `/libpod_parent/<id>` (at the
/// root only, as the other cgroupfs parents).
fn podman_pod_at(parts: &[&str], i: usize) -> Option<String> {
    let name = parts[i];
    let id = match name.strip_suffix(".slice") {
        Some(stem) => stem.rsplit_once("-libpod_pod_")?.1,
        None if i == 1 && parts[0] == "libpod_parent" => name,
        None => return None,
    };
    is_full_id(id).then(|| id.to_owned())
}

/// A podman pod's member (`inner`: the path below the pod's cgroup), the
/// pod's shared `conmon` cgroup, or the pod's own cgroup.
fn podman_pod_member(inner: &[&str], pod: String) -> Container {
    let mut c = match inner.first().and_then(|_| container_at(inner, 0)) {
        Some(found) => found.container(inner),
        None => {
            let mut c = Container::new(runtime::PODMAN);
            c.monitor = inner.first() == Some(&"conmon");
            c.pod_level = inner.is_empty();
            c.unit = innermost_unit(inner);
            c
        }
    };
    c.podman_pod = Some(pod);
    c
}

struct Pod {
    uid: String,
    qos: &'static str,
}

/// Whether `parts[i]` is a kubelet pod cgroup, and which. Only where the
/// kubelet makes them, from the root of the hierarchy: a `kubepods` path
/// inside some other cgroup is whoever made it, not a pod.
fn pod_at(parts: &[&str], i: usize) -> Option<Pod> {
    let name = parts[i];

    // systemd driver: `<ancestry>-pod<uid_with_underscores>.slice`, where the
    // ancestry is `[<root>-]kubepods[-burstable|-besteffort]`, at the path
    // systemd gives that slice (`/a.slice/a-b.slice/a-b-c.slice`).
    if let Some(stem) = name.strip_suffix(".slice") {
        let (ancestry, leaf) = stem.rsplit_once('-')?;
        let uid = pod_uid(leaf.strip_prefix("pod")?, '_')?;
        let mut up = ancestry.rsplit('-');
        let qos = match (up.next(), up.next()) {
            (Some("kubepods"), _) => qos::GUARANTEED,
            (Some("burstable"), Some("kubepods")) => qos::BURSTABLE,
            (Some("besteffort"), Some("kubepods")) => qos::BESTEFFORT,
            _ => return None,
        };
        let path = parts[..=i]
            .iter()
            .map(|p| format!("/{p}"))
            .collect::<String>();
        return (expand_slice(name)? == path).then_some(Pod { uid, qos });
    }

    // cgroupfs driver: `/kubepods/pod<uid>` or `/kubepods/<qos>/pod<uid>`.
    let uid = pod_uid(name.strip_prefix("pod")?, '-')?;
    let qos = match &parts[..i] {
        ["kubepods"] => qos::GUARANTEED,
        ["kubepods", "burstable"] => qos::BURSTABLE,
        ["kubepods", "besteffort"] => qos::BESTEFFORT,
        _ => return None,
    };
    Some(Pod { uid, qos })
}

/// The cgroup path systemd gives a slice: `a-b-c.slice` is
/// `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` the root. None for a name
/// that is no slice (systemd refuses empty parts, so `a--b` is none).
pub fn expand_slice(slice: &str) -> Option<String> {
    if slice == "-.slice" {
        return Some("/".to_owned());
    }
    let stem = slice.strip_suffix(".slice")?;
    if stem.is_empty() || stem.contains('/') || stem.split('-').any(str::is_empty) {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push_str(&format!("/{prefix}.slice"));
    }
    Some(path)
}

/// A pod UID written with `sep` between the UUID groups, returned with dashes.
pub(super) fn pod_uid(raw: &str, sep: char) -> Option<String> {
    // Static (file or URL) pods: the kubelet sets the UID to an MD5 hex digest.
    if raw.len() == 32 && is_lower_hex(raw) {
        return Some(raw.to_string());
    }
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let groups: Vec<&str> = raw.split(sep).collect();
    let ok = groups.len() == GROUPS.len()
        && groups
            .iter()
            .zip(GROUPS)
            .all(|(g, len)| g.len() == len && is_lower_hex(g));
    ok.then(|| groups.join("-"))
}

fn innermost_unit(parts: &[&str]) -> Option<String> {
    parts
        .iter()
        .rev()
        .find(|p| {
            [".service", ".scope"]
                .iter()
                .any(|suffix| p.strip_suffix(suffix).is_some_and(|s| !s.is_empty()))
        })
        .map(|p| p.to_string())
}

pub(super) fn is_full_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_lxc_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Realistic random 64-hex container ids and UUID pod UIDs.
    const ID1: &str = "8d083e51abd2e1096bc106e308144c7efe71ae92f3c12e6be5bc7bc78f5cc751";
    const ID2: &str = "c74c9066c84204e342455b5103570d40c6cd1e7d05507892c7faf046a9efb2f0";
    const ID3: &str = "56d7234efa04a7ccc0ab1b7d599a1d8d49beb84eaab0c63c4bcbfade0f43e1a3";
    const ID4: &str = "96f0dc4e037b80835a3f0bc489955091df084daf01da9f1ce7f86fe5df9f1c1d";
    const ID5: &str = "20bf8cce95892b0350afff953ee67dbf9f0b3bda5638dd6603c1c2330fbcf803";
    const ID6: &str = "b0c356a98ae619e0e8d204bf6aa623c76afa4ce0e961c71c5137b96705c8b3af";
    const UID1: &str = "42968967-a234-4826-a0d4-f90eaf4ef52e";
    const UID2: &str = "4e36ce02-ada2-4702-9555-c1b11172c9fd";
    const UID3: &str = "b9cc78db-6f2c-4f4d-b634-cbcfe642281c";
    /// A static pod's UID: the MD5 hex digest of its manifest.
    const STATIC_UID: &str = "c88c76b6d0633dc6dec680931147da2b";

    /// The systemd driver's spelling of a pod UID.
    fn us(uid: &str) -> String {
        uid.replace('-', "_")
    }

    fn with_id(runtime: &'static str, id: &str) -> Container {
        Container {
            id: Some(id.to_string()),
            ..Container::new(runtime)
        }
    }

    fn in_pod(c: Container, uid: &str, qos: &'static str) -> Container {
        Container {
            pod_uid: Some(uid.to_string()),
            qos_class: Some(qos),
            orchestrator: Some(KUBERNETES),
            ..c
        }
    }

    fn with_unit(c: Container, unit: &str) -> Container {
        Container {
            unit: Some(unit.to_string()),
            ..c
        }
    }

    fn pod(uid: &str, qos: &'static str, pod_level: bool) -> Container {
        Container {
            pod_level,
            ..in_pod(Container::new(runtime::CRI), uid, qos)
        }
    }

    fn systemd(unit: &str) -> Container {
        with_unit(Container::new(runtime::SYSTEMD), unit)
    }

    // ---- Docker -------------------------------------------------------------

    #[test]
    fn docker_cgroupfs() {
        assert_eq!(
            attribute(&format!("/docker/{ID1}")),
            Some(with_id(runtime::DOCKER, ID1))
        );
    }

    #[test]
    fn docker_systemd_driver() {
        assert_eq!(
            attribute(&format!("/system.slice/docker-{ID1}.scope")),
            Some(with_unit(
                with_id(runtime::DOCKER, ID1),
                &format!("docker-{ID1}.scope")
            ))
        );
    }

    #[test]
    fn docker_rootless_systemd() {
        let path =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/docker-{ID2}.scope");
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                with_id(runtime::DOCKER, ID2),
                &format!("docker-{ID2}.scope")
            ))
        );
    }

    #[test]
    fn systemd_inside_docker_reports_inner_unit() {
        let path = format!("/system.slice/docker-{ID1}.scope/system.slice/nginx.service");
        assert_eq!(
            attribute(&path),
            Some(with_unit(with_id(runtime::DOCKER, ID1), "nginx.service"))
        );
    }

    #[test]
    fn docker_in_docker_is_the_outer_container() {
        assert_eq!(
            attribute(&format!("/docker/{ID1}/docker/{ID2}")),
            Some(with_id(runtime::DOCKER, ID1))
        );
    }

    // ---- Kubernetes, cgroupfs driver ----------------------------------------

    #[test]
    fn kubepods_cgroupfs_burstable() {
        assert_eq!(
            attribute(&format!("/kubepods/burstable/pod{UID1}/{ID1}")),
            Some(in_pod(with_id(runtime::CRI, ID1), UID1, qos::BURSTABLE))
        );
    }

    #[test]
    fn kubepods_cgroupfs_guaranteed() {
        assert_eq!(
            attribute(&format!("/kubepods/pod{UID2}/{ID2}")),
            Some(in_pod(with_id(runtime::CRI, ID2), UID2, qos::GUARANTEED))
        );
    }

    #[test]
    fn kubepods_cgroupfs_besteffort() {
        assert_eq!(
            attribute(&format!("/kubepods/besteffort/pod{UID3}/{ID3}")),
            Some(in_pod(with_id(runtime::CRI, ID3), UID3, qos::BESTEFFORT))
        );
    }

    #[test]
    fn kubepods_cgroupfs_pod_level() {
        assert_eq!(
            attribute(&format!("/kubepods/burstable/pod{UID1}")),
            Some(pod(UID1, qos::BURSTABLE, true))
        );
        assert_eq!(
            attribute(&format!("/kubepods/pod{UID2}/")),
            Some(pod(UID2, qos::GUARANTEED, true))
        );
    }

    #[test]
    fn kubepods_cgroupfs_static_pod_uid() {
        assert_eq!(
            attribute(&format!("/kubepods/besteffort/pod{STATIC_UID}/{ID4}")),
            Some(in_pod(
                with_id(runtime::CRI, ID4),
                STATIC_UID,
                qos::BESTEFFORT
            ))
        );
    }

    #[test]
    fn kubepods_cgroupfs_crio() {
        assert_eq!(
            attribute(&format!("/kubepods/burstable/pod{UID1}/crio-{ID5}")),
            Some(in_pod(with_id(runtime::CRIO, ID5), UID1, qos::BURSTABLE))
        );
    }

    #[test]
    fn kubepods_cgroupfs_below_the_root_is_no_pod() {
        // A kubelet `--cgroup-root=/kubelet` and a tenant's `mkdir -p
        // kubelet/kubepods/...` look the same: neither is trusted.
        assert_eq!(
            attribute(&format!("/kubelet/kubepods/burstable/pod{UID1}/{ID1}")),
            None
        );
    }

    #[test]
    fn kubepods_systemd_custom_root_slice() {
        let path = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
             kubelet-kubepods-besteffort-pod{}.slice/cri-containerd-{ID2}.scope",
            us(UID3)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::CONTAINERD, ID2), UID3, qos::BESTEFFORT),
                &format!("cri-containerd-{ID2}.scope")
            ))
        );
    }

    // ---- Kubernetes, systemd driver -----------------------------------------

    #[test]
    fn kubepods_systemd_containerd_burstable() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID1}.scope",
            us(UID1)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::CONTAINERD, ID1), UID1, qos::BURSTABLE),
                &format!("cri-containerd-{ID1}.scope")
            ))
        );
    }

    #[test]
    fn kubepods_systemd_uid_is_normalized_to_dashes() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{ID1}.scope",
            us(UID3)
        );
        let c = attribute(&path).unwrap();
        assert_eq!(c.pod_uid.as_deref(), Some(UID3));
        assert_eq!(c.qos_class, Some(qos::BESTEFFORT));
    }

    #[test]
    fn kubepods_systemd_guaranteed() {
        let path = format!(
            "/kubepods.slice/kubepods-pod{}.slice/cri-containerd-{ID2}.scope",
            us(UID2)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::CONTAINERD, ID2), UID2, qos::GUARANTEED),
                &format!("cri-containerd-{ID2}.scope")
            ))
        );
    }

    #[test]
    fn kubepods_systemd_pod_level() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            us(UID1)
        );
        assert_eq!(attribute(&path), Some(pod(UID1, qos::BURSTABLE, true)));
    }

    #[test]
    fn kubepods_systemd_dockershim() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/docker-{ID3}.scope",
            us(UID3)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::DOCKER, ID3), UID3, qos::BESTEFFORT),
                &format!("docker-{ID3}.scope")
            ))
        );
    }

    // ---- CRI-O ----------------------------------------------------------------

    #[test]
    fn crio_systemd() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{ID4}.scope",
            us(UID1)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::CRIO, ID4), UID1, qos::BURSTABLE),
                &format!("crio-{ID4}.scope")
            ))
        );
    }

    #[test]
    fn crio_container_child_cgroup() {
        let path = format!(
            "/kubepods.slice/kubepods-pod{}.slice/crio-{ID4}.scope/container",
            us(UID2)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                in_pod(with_id(runtime::CRIO, ID4), UID2, qos::GUARANTEED),
                &format!("crio-{ID4}.scope")
            ))
        );
    }

    #[test]
    fn crio_conmon_in_system_slice() {
        assert_eq!(
            attribute(&format!("/system.slice/crio-conmon-{ID4}.scope")),
            Some(Container {
                monitor: true,
                ..with_unit(
                    with_id(runtime::CRIO, ID4),
                    &format!("crio-conmon-{ID4}.scope")
                )
            })
        );
    }

    #[test]
    fn crio_conmon_in_pod_slice() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-conmon-{ID4}.scope",
            us(UID1)
        );
        let c = attribute(&path).unwrap();
        assert_eq!(c.runtime, runtime::CRIO);
        assert!(c.monitor);
        assert_eq!(c.id.as_deref(), Some(ID4));
        assert_eq!(c.pod_uid.as_deref(), Some(UID1));
        assert!(!c.pod_level);
    }

    // ---- Podman ---------------------------------------------------------------

    #[test]
    fn podman_root_systemd() {
        assert_eq!(
            attribute(&format!("/machine.slice/libpod-{ID5}.scope")),
            Some(with_unit(
                with_id(runtime::PODMAN, ID5),
                &format!("libpod-{ID5}.scope")
            ))
        );
    }

    #[test]
    fn podman_container_child_cgroup() {
        assert_eq!(
            attribute(&format!("/machine.slice/libpod-{ID5}.scope/container")),
            Some(with_unit(
                with_id(runtime::PODMAN, ID5),
                &format!("libpod-{ID5}.scope")
            ))
        );
    }

    #[test]
    fn podman_rootless() {
        let path =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID6}.scope");
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                with_id(runtime::PODMAN, ID6),
                &format!("libpod-{ID6}.scope")
            ))
        );
    }

    #[test]
    fn podman_conmon() {
        let path = format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID6}.scope"
        );
        assert_eq!(
            attribute(&path),
            Some(Container {
                monitor: true,
                ..with_unit(
                    with_id(runtime::PODMAN, ID6),
                    &format!("libpod-conmon-{ID6}.scope")
                )
            })
        );
    }

    fn in_podman_pod(mut c: Container, pod: &str) -> Container {
        c.podman_pod = Some(pod.to_owned());
        c
    }

    #[test]
    fn podman_pod_is_not_a_kubernetes_pod() {
        let path = format!("/machine.slice/machine-libpod_pod_{ID1}.slice/libpod-{ID5}.scope");
        assert_eq!(
            attribute(&path),
            Some(in_podman_pod(
                with_unit(
                    with_id(runtime::PODMAN, ID5),
                    &format!("libpod-{ID5}.scope")
                ),
                ID1
            ))
        );
    }

    #[test]
    fn rootless_podman_pod_member() {
        let path = format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/\
             user-libpod_pod_{ID1}.slice/libpod-{ID6}.scope"
        );
        let c = attribute(&path).unwrap();
        assert_eq!((c.runtime, c.id.as_deref()), (runtime::PODMAN, Some(ID6)));
        assert_eq!(c.podman_pod.as_deref(), Some(ID1));
    }

    #[test]
    fn podman_cgroupfs_pod_members_its_conmon_and_its_own_cgroup() {
        assert_eq!(
            attribute(&format!("/libpod_parent/{ID1}/libpod-{ID5}")),
            Some(in_podman_pod(with_id(runtime::PODMAN, ID5), ID1))
        );
        let conmon = attribute(&format!("/libpod_parent/{ID1}/conmon")).unwrap();
        assert!(conmon.monitor && conmon.id.is_none(), "{conmon:?}");
        assert_eq!(conmon.podman_pod.as_deref(), Some(ID1));
        let pod = attribute(&format!("/libpod_parent/{ID1}")).unwrap();
        assert!(pod.pod_level && !pod.monitor, "{pod:?}");
        assert_eq!((pod.runtime, pod.id), (runtime::PODMAN, None));
        assert_eq!(pod.podman_pod.as_deref(), Some(ID1));
        // Not a pod's cgroup elsewhere, nor an id that is not one.
        assert_eq!(attribute(&format!("/evil/libpod_parent/{ID1}")), None);
        assert_eq!(attribute("/libpod_parent/abc/conmon"), None);
    }

    #[test]
    fn podman_pod_member_is_named_pod_slash_name() {
        let mut c = in_podman_pod(with_id(runtime::PODMAN, ID5), ID1);
        assert_eq!(
            c.owner_name(),
            Some(format!("pod {}/{}", &ID1[..12], &ID5[..12]))
        );
        c.name = Some("ledger-sync".into());
        assert_eq!(
            c.owner_name(),
            Some(format!("pod {}/ledger-sync", &ID1[..12]))
        );
    }

    #[test]
    fn podman_cgroupfs() {
        assert_eq!(
            attribute(&format!("/libpod_parent/libpod-{ID5}")),
            Some(with_id(runtime::PODMAN, ID5))
        );
        assert_eq!(
            attribute(&format!("/libpod_parent/libpod-{ID5}/ctr")),
            Some(with_id(runtime::PODMAN, ID5))
        );
    }

    // ---- containerd outside Kubernetes ---------------------------------------

    #[test]
    fn containerd_default_namespace_and_nerdctl() {
        assert_eq!(
            attribute(&format!("/default/{ID6}")),
            Some(with_id(runtime::CONTAINERD, ID6))
        );
        assert_eq!(
            attribute(&format!("/system.slice/nerdctl-{ID6}.scope")),
            Some(with_unit(
                with_id(runtime::CONTAINERD, ID6),
                &format!("nerdctl-{ID6}.scope")
            ))
        );
    }

    // ---- plain systemd --------------------------------------------------------

    #[test]
    fn systemd_service() {
        assert_eq!(
            attribute("/system.slice/nginx.service"),
            Some(systemd("nginx.service"))
        );
    }

    #[test]
    fn systemd_service_with_delegated_child() {
        assert_eq!(
            attribute("/system.slice/postgresql@16-main.service/worker"),
            Some(systemd("postgresql@16-main.service"))
        );
    }

    #[test]
    fn systemd_user_units() {
        assert_eq!(
            attribute("/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service"),
            Some(systemd("syncthing.service"))
        );
        assert_eq!(
            attribute("/user.slice/user-1000.slice/session-3.scope"),
            Some(systemd("session-3.scope"))
        );
        assert_eq!(
            attribute("/user.slice/user-1000.slice/user@1000.service/app.slice"),
            Some(systemd("user@1000.service"))
        );
    }

    // ---- LXC / LXD ------------------------------------------------------------

    #[test]
    fn lxc_payload_monitor_and_legacy() {
        assert_eq!(
            attribute("/lxc.payload.web01"),
            Some(Container {
                name: Some("web01".into()),
                ..Container::new(runtime::LXC)
            })
        );
        assert_eq!(
            attribute("/lxc.monitor.web01"),
            Some(Container {
                name: Some("web01".into()),
                monitor: true,
                ..Container::new(runtime::LXC)
            })
        );
        assert_eq!(
            attribute("/lxc/db-2"),
            Some(Container {
                name: Some("db-2".into()),
                ..Container::new(runtime::LXC)
            })
        );
        assert_eq!(
            attribute("/lxc.payload.web01/system.slice/cron.service"),
            Some(Container {
                name: Some("web01".into()),
                unit: Some("cron.service".into()),
                ..Container::new(runtime::LXC)
            })
        );
    }

    // ---- nested Kubernetes ----------------------------------------------------

    // A kubelet inside a container (kind) is the node container's business:
    // from the host its pods are what that container made, not pods.

    #[test]
    fn kind_systemd_nested_in_docker_scope_is_the_node_container() {
        let path = format!(
            "/system.slice/docker-{ID1}.scope/kubelet.slice/kubelet-kubepods.slice/\
             kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice/\
             cri-containerd-{ID2}.scope",
            us(UID3)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(
                with_id(runtime::DOCKER, ID1),
                &format!("cri-containerd-{ID2}.scope")
            ))
        );
    }

    #[test]
    fn kind_cgroupfs_nested_in_docker_is_the_node_container() {
        assert_eq!(
            attribute(&format!("/docker/{ID1}/kubepods/burstable/pod{UID1}/{ID2}")),
            Some(with_id(runtime::DOCKER, ID1))
        );
        assert_eq!(
            attribute(&format!("/docker/{ID1}/kubepods/pod{UID2}")),
            Some(with_id(runtime::DOCKER, ID1))
        );
        assert_eq!(
            attribute(&format!("/docker/{ID1}/system.slice/containerd.service")),
            Some(with_unit(
                with_id(runtime::DOCKER, ID1),
                "containerd.service"
            ))
        );
    }

    // ---- negatives ------------------------------------------------------------

    #[test]
    fn unrelated_paths_are_none() {
        for path in [
            "",
            "/",
            "/user.slice",
            "/system.slice",
            "/user.slice/user-1000.slice",
            "/oomtrace-demo-42",
            "/kubepods",
            "/kubepods/burstable",
            "/kubepods.slice/kubepods-burstable.slice",
            "/docker",
            "/lxc",
            "/lxc.payload.",
            "/machine.slice",
            "/system.slice/.service",
        ] {
            assert_eq!(attribute(path), None, "{path:?}");
        }
    }

    #[test]
    fn bad_docker_ids_are_rejected() {
        let short = &ID1[..12];
        let too_short = &ID1[..63];
        let too_long = format!("{ID1}0");
        let upper = ID1.to_uppercase();
        let non_hex = format!("{}g", &ID1[..63]);
        for id in [
            short,
            too_short,
            too_long.as_str(),
            upper.as_str(),
            non_hex.as_str(),
        ] {
            assert_eq!(attribute(&format!("/docker/{id}")), None, "{id}");
            // Still a systemd scope, but no container id is claimed.
            assert_eq!(
                attribute(&format!("/system.slice/docker-{id}.scope")),
                Some(systemd(&format!("docker-{id}.scope"))),
                "{id}"
            );
        }
    }

    #[test]
    fn bare_id_needs_a_known_parent() {
        assert_eq!(attribute(&format!("/{ID1}")), None);
        assert_eq!(attribute(&format!("/mygroup/{ID1}")), None);
        // systemd-only prefixes need the `.scope` suffix.
        assert_eq!(attribute(&format!("/docker-{ID1}")), None);
        assert_eq!(attribute(&format!("/cri-containerd-{ID1}")), None);
    }

    #[test]
    fn bad_container_under_pod_keeps_the_pod_only() {
        let path = format!("/kubepods/burstable/pod{UID1}/{}", &ID1[..63]);
        assert_eq!(attribute(&path), Some(pod(UID1, qos::BURSTABLE, false)));

        let scope = format!("cri-containerd-{}.scope", &ID1[..12]);
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/{scope}",
            us(UID1)
        );
        assert_eq!(
            attribute(&path),
            Some(with_unit(pod(UID1, qos::BURSTABLE, false), &scope))
        );
    }

    #[test]
    fn bad_pod_uids_are_rejected() {
        for uid in [
            "1234",
            "42968967a234-4826-a0d4-f90eaf4ef52e",
            "42968967-a234-4826-a0d4-f90eaf4ef52",
            "42968967-A234-4826-A0D4-F90EAF4EF52E",
            "42968967-a234-4826-a0d4-f90eaf4ef5zz",
            "c88c76b6d0633dc6dec680931147da2",
        ] {
            assert_eq!(
                attribute(&format!("/kubepods/burstable/pod{uid}")),
                None,
                "{uid}"
            );
            assert_eq!(
                attribute(&format!("/kubepods/burstable/pod{uid}/{ID1}")),
                None,
                "{uid}"
            );
        }
        // The systemd driver writes underscores; dashes there are not a UID.
        let path = format!("/kubepods.slice/kubepods-pod{UID1}.slice");
        assert_eq!(attribute(&path), None);
        // ... and cgroupfs writes dashes, not underscores.
        assert_eq!(attribute(&format!("/kubepods/pod{}", us(UID1))), None);
    }

    #[test]
    fn pod_outside_kubepods_is_not_a_pod() {
        assert_eq!(attribute(&format!("/pod{UID1}/{ID1}")), None);
        assert_eq!(attribute(&format!("/burstable/pod{UID1}/{ID1}")), None);
        assert_eq!(attribute(&format!("/other/burstable/pod{UID1}")), None);
        let path = format!("/foo.slice/foo-burstable-pod{}.slice", us(UID1));
        assert_eq!(attribute(&path), None);
    }

    #[test]
    fn a_pod_path_inside_another_cgroup_names_no_pod() {
        let fake = format!("kubepods/burstable/pod{UID1}/{ID1}");
        let systemd_fake = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/\
             cri-containerd-{ID1}.scope",
            us(UID1)
        );
        // A delegated user manager, a plain directory, a privileged pod's own
        // container: the outer owner stays the owner.
        let user = "/user.slice/user-1000.slice/user@1000.service/app.slice/evil.scope";
        assert_eq!(
            attribute(&format!("{user}/{fake}")),
            Some(systemd("evil.scope"))
        );
        assert_eq!(attribute(&format!("/evil/{fake}")), None);
        let own = format!("/kubepods/besteffort/pod{UID2}/{ID2}");
        let mine = in_pod(with_id(runtime::CRI, ID2), UID2, qos::BESTEFFORT);
        assert_eq!(attribute(&format!("{own}/{fake}")), Some(mine.clone()));
        let scope = format!("cri-containerd-{ID1}.scope");
        assert_eq!(
            attribute(&format!("{own}/{systemd_fake}")),
            Some(with_unit(mine, &scope))
        );
        // The systemd slices must sit where systemd puts them.
        let misplaced = format!(
            "/kubepods.slice/{}",
            systemd_fake.split_once('/').unwrap().1
        );
        assert_eq!(
            attribute(&misplaced),
            attribute(&format!("/{systemd_fake}"))
        );
        let skipped = format!(
            "/kubepods.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID1}.scope",
            us(UID1)
        );
        assert_eq!(
            attribute(&skipped),
            Some(with_unit(
                with_id(runtime::CONTAINERD, ID1),
                &format!("cri-containerd-{ID1}.scope")
            ))
        );
    }

    #[test]
    fn cgroupfs_runtime_parents_count_at_the_root_only() {
        for parent in ["docker", "default", "libpod_parent"] {
            assert!(attribute(&format!("/{parent}/{ID1}")).is_some(), "{parent}");
            assert_eq!(
                attribute(&format!("/evil/{parent}/{ID1}")),
                None,
                "{parent}"
            );
        }
    }

    #[test]
    fn slices_expand_as_systemd_expands_them() {
        assert_eq!(expand_slice("-.slice").as_deref(), Some("/"));
        assert_eq!(
            expand_slice("system.slice").as_deref(),
            Some("/system.slice")
        );
        assert_eq!(
            expand_slice("kubepods-burstable-podx.slice").as_deref(),
            Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice")
        );
        for bad in [
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
            "a.scope",
            "a/b.slice",
        ] {
            assert_eq!(expand_slice(bad), None, "{bad}");
        }
    }

    // ---- misc -----------------------------------------------------------------

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(
            attribute(&format!("  /docker/{ID1}\n")),
            Some(with_id(runtime::DOCKER, ID1))
        );
    }

    #[test]
    fn serializes_with_stable_field_names() {
        let c = attribute(&format!("/kubepods/burstable/pod{UID1}/{ID1}")).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["runtime"], "cri");
        assert_eq!(v["id"], ID1);
        assert_eq!(v["pod_uid"], UID1);
        assert_eq!(v["qos_class"], "burstable");
        assert_eq!(v["orchestrator"], "kubernetes");
        assert_eq!(v["unit"], serde_json::Value::Null);
        assert_eq!(v["pod_level"], false);
        assert_eq!(v["name"], serde_json::Value::Null);
        assert_eq!(v["monitor"], false);
    }

    /// (path, runtime, id, pod uid, qos, pod_level, monitor); `None` runtime
    /// means no attribution.
    type Row = (
        String,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        bool,
        bool,
    );

    #[test]
    fn table() {
        let s = |x: &str| x.to_string();
        let rows: Vec<Row> = vec![
            (
                format!("/docker/{ID1}"),
                Some("docker"),
                Some(ID1),
                None,
                None,
                false,
                false,
            ),
            (
                format!("/system.slice/docker-{ID2}.scope"),
                Some("docker"),
                Some(ID2),
                None,
                None,
                false,
                false,
            ),
            (
                format!("/kubepods/pod{UID1}/{ID3}"),
                Some("cri"),
                Some(ID3),
                Some(UID1),
                Some("guaranteed"),
                false,
                false,
            ),
            (
                format!("/kubepods/besteffort/pod{UID2}"),
                Some("cri"),
                None,
                Some(UID2),
                Some("besteffort"),
                true,
                false,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID4}.scope",
                    us(UID3)
                ),
                Some("containerd"),
                Some(ID4),
                Some(UID3),
                Some("burstable"),
                false,
                false,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{STATIC_UID}.slice"
                ),
                Some("cri"),
                None,
                Some(STATIC_UID),
                Some("besteffort"),
                true,
                false,
            ),
            (
                format!("/kubepods/burstable/pod{UID1}/crio-conmon-{ID5}"),
                Some("cri-o"),
                Some(ID5),
                Some(UID1),
                Some("burstable"),
                false,
                true,
            ),
            (
                format!("/machine.slice/libpod-{ID6}.scope"),
                Some("podman"),
                Some(ID6),
                None,
                None,
                false,
                false,
            ),
            (
                format!("/machine.slice/libpod-conmon-{ID6}.scope"),
                Some("podman"),
                Some(ID6),
                None,
                None,
                false,
                true,
            ),
            (
                s("/system.slice/sshd.service"),
                Some("systemd"),
                None,
                None,
                None,
                false,
                false,
            ),
            (
                s("/init.scope"),
                Some("systemd"),
                None,
                None,
                None,
                false,
                false,
            ),
            (
                s("/lxc.payload.c1"),
                Some("lxc"),
                None,
                None,
                None,
                false,
                false,
            ),
            (s("/"), None, None, None, None, false, false),
            (s("/user.slice"), None, None, None, None, false, false),
            (s("/oomtrace-demo-42"), None, None, None, None, false, false),
            (
                format!("/docker/{}", &ID1[..12]),
                None,
                None,
                None,
                None,
                false,
                false,
            ),
            (
                format!("/kubepods/burstable/pod{}", &UID1[..35]),
                None,
                None,
                None,
                None,
                false,
                false,
            ),
        ];
        for (path, runtime, id, uid, qos, pod_level, monitor) in rows {
            let got = attribute(&path);
            let got = got.as_ref().map(|c| {
                (
                    c.runtime,
                    c.id.as_deref(),
                    c.pod_uid.as_deref(),
                    c.qos_class,
                    c.pod_level,
                    c.monitor,
                )
            });
            let want = runtime.map(|r| (r, id, uid, qos, pod_level, monitor));
            assert_eq!(got, want, "{path}");
        }
    }
}
