//! Exit status 137 and the container: what the victim's owner sees.
use crate::{cgroup::container::Container, model::decision::record::Victim};

/// What a person sees from outside: exit status 137, the container it hit.
pub(crate) fn explain_container(
    out: &mut Vec<String>,
    victim: Option<&Victim>,
    container: Option<&Container>,
) {
    let Some(v) = victim else { return };
    let who = v.comm.as_deref().unwrap_or("the victim");
    out.push(format!(
        "{who} (pid {}) was sent SIGKILL: its parent sees exit status 137 (128 + 9) and it could log nothing.",
        v.pid
    ));
    let Some(c) = container else { return };
    let what = container_name(c);
    if c.runtime == "systemd" {
        out.push(format!(
            "The victim belongs to {what}; systemd records the unit's result as 'oom-kill'."
        ));
    } else if c.monitor {
        out.push(format!(
            "The victim is the runtime's monitor process of {what}, not the container's payload."
        ));
    } else {
        out.push(format!(
            "The victim ran in {what}: if it was the container's main process the runtime reports exit code 137 and OOMKilled: true."
        ));
    }
}

/// The container as people name it: the pod, the runtime's short id, the unit.
fn container_name(c: &Container) -> String {
    // The short id by characters: a byte slice panics inside a multi-byte one.
    let short: Option<String> = c.id.as_deref().map(|id| id.chars().take(12).collect());
    let id = short.as_deref();
    if let (Some(ns), Some(pod)) = (&c.namespace, &c.pod_name) {
        return format!(
            "Kubernetes pod {ns}/{pod}{}{}",
            c.qos_class.map_or(String::new(), |q| format!(" (QoS {q})")),
            match (&c.container_name, id) {
                (Some(name), Some(id)) => format!(", container {name} ({} {id})", c.runtime),
                (Some(name), None) => format!(", container {name}"),
                (None, Some(id)) => format!(", {} container {id}", c.runtime),
                (None, None) => String::new(),
            }
        );
    }
    if c.pod_uid.is_none()
        && c.runtime != "lxc"
        && let Some(owner) = c.owner_name()
    {
        return format!(
            "{} container {owner}{}{}",
            c.runtime,
            id.map_or(String::new(), |id| format!(" ({id})")),
            c.image
                .as_ref()
                .map_or(String::new(), |i| format!(", image {i}"))
        );
    }
    match (c.runtime, id, &c.pod_uid, &c.unit) {
        (_, _, Some(pod), _) => format!(
            "Kubernetes pod {pod}{}{}",
            c.qos_class.map_or(String::new(), |q| format!(" (QoS {q})")),
            id.map_or(String::new(), |id| format!(
                ", {} container {id}",
                c.runtime
            ))
        ),
        (runtime, Some(id), _, _) => format!("{runtime} container {id}"),
        ("systemd", None, _, Some(unit)) => format!("systemd unit {unit}"),
        (runtime, None, _, _) => format!(
            "{runtime} {}",
            c.name
                .as_deref()
                .or(c.unit.as_deref())
                .unwrap_or("container")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_byte_id_is_cut_by_characters() {
        let mut c = crate::cgroup::container::attribute("/system.slice/a.service").unwrap();
        c.runtime = "docker";
        c.unit = None;
        c.id = Some("aéééééééééééé".to_owned());
        assert_eq!(container_name(&c), "docker container aééééééééééé");
    }
}
