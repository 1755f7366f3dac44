//! What this node allows, read from the kernel's own files without loading
//! anything: the facts behind `oomtrace doctor`. Each check says what it
//! found, why that matters, and the fix where there is one.
use std::{fs, io::ErrorKind, path::Path};

use serde::Serialize;

/// One thing the node has or lacks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, in a few words.
    pub found: String,
    /// Why it matters, when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            found: found.into(),
            impact: None,
            fix: None,
        }
    }

    fn missing(
        name: &'static str,
        found: impl Into<String>,
        impact: &str,
        fix: Option<&str>,
    ) -> Self {
        Self {
            name,
            ok: false,
            found: found.into(),
            impact: Some(impact.to_owned()),
            fix: fix.map(str::to_owned),
        }
    }
}

/// Capabilities oomtrace uses, with why (kernels 5.8+; older ones need
/// CAP_SYS_ADMIN). The deployment units grant exactly these; a host test
/// runs the tracer as a non-root user holding only them.
#[rustfmt::skip]
pub const CAPABILITIES: &[(u32, &str, &str)] = &[
    (39, "CAP_BPF", "load the kernel programs and create their maps"),
    (38, "CAP_PERFMON", "attach tracepoints, fentry/fexit and kprobes"),
    (2, "CAP_DAC_READ_SEARCH", "read tracepoint formats in tracefs (mode 0700)"),
    (34, "CAP_SYSLOG", "read /dev/kmsg when kernel.dmesg_restrict=1"),
    (24, "CAP_SYS_RESOURCE", "lower its own oom_score_adj (self-protection)"),
    (23, "CAP_SYS_NICE", "raise its own priority (keeps up in an OOM storm)"),
];

/// The ones tracing cannot do without (the rest degrade with a warning).
pub const REQUIRED: &[&str] = &[
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYSLOG",
];

/// Every check, in the order `doctor` prints them.
pub fn collect(btf: &Path, tracefs: Option<&Path>) -> Vec<Check> {
    let mut checks = vec![
        btf_check(btf),
        tracefs_check(tracefs),
        ftrace_check(tracefs),
        kprobes_check(tracefs),
        kmsg_check(),
        dmesg_restrict_check(),
        lockdown_check(),
    ];
    checks.extend(capability_checks());
    checks
}

fn btf_check(btf: &Path) -> Check {
    match fs::metadata(btf) {
        Ok(m) => Check::ok("btf", format!("{} ({} bytes)", btf.display(), m.len())),
        Err(e) => Check::missing(
            "btf",
            format!("{}: {e}", btf.display()),
            "struct offsets cannot be resolved: oomtrace cannot start",
            Some("a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, RHEL 8.2+ have it)"),
        ),
    }
}

fn tracefs_check(tracefs: Option<&Path>) -> Check {
    match tracefs {
        Some(dir) => Check::ok("tracefs", dir.display().to_string()),
        None => Check::missing(
            "tracefs",
            "not mounted",
            "tracepoint layouts and ids are unknown: oomtrace cannot start",
            Some("mount -t tracefs nodev /sys/kernel/tracing"),
        ),
    }
}

/// fentry/fexit need ftrace; a kernel that locks it answers EPERM here.
fn ftrace_check(tracefs: Option<&Path>) -> Check {
    let Some(dir) = tracefs else {
        return Check::missing("fentry", "tracefs not mounted", "unknown", None);
    };
    match fs::File::open(dir.join("available_filter_functions")) {
        Ok(_) => Check::ok("fentry", "ftrace is available"),
        Err(e) if e.kind() == ErrorKind::NotFound => Check::missing(
            "fentry",
            "no function tracer (CONFIG_FUNCTION_TRACER off)",
            "no fentry/fexit: the killer's own evaluation comes from kprobes, else from the printed report",
            None,
        ),
        Err(e) => Check::missing(
            "fentry",
            format!("ftrace is locked ({e})"),
            "no fentry/fexit: the killer's own evaluation comes from kprobes, else from the printed report",
            Some("boot without the policy that locks ftrace (lockdown, a hardened sysctl)"),
        ),
    }
}

fn kprobes_check(tracefs: Option<&Path>) -> Check {
    let found = tracefs.is_some_and(|d| d.join("kprobe_events").exists())
        || Path::new("/sys/bus/event_source/devices/kprobe").exists();
    if found {
        Check::ok("kprobes", "kprobe events are available")
    } else {
        Check::missing(
            "kprobes",
            "no kprobe event source (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off)",
            "without fentry too, candidates come from the kernel's printed report",
            None,
        )
    }
}

fn kmsg_check() -> Check {
    match fs::File::open("/dev/kmsg") {
        Ok(_) => Check::ok("kmsg", "/dev/kmsg is readable"),
        Err(e) => Check::missing(
            "kmsg",
            format!("/dev/kmsg: {e}"),
            "decisions lack the kernel's report (task table, constraint line)",
            Some("CAP_SYSLOG, or kernel.dmesg_restrict=0; in a container, mount /dev/kmsg"),
        ),
    }
}

fn dmesg_restrict_check() -> Check {
    let value = read_trimmed("/proc/sys/kernel/dmesg_restrict");
    match value.as_deref() {
        Some("0") => Check::ok("dmesg_restrict", "0"),
        Some(v) => Check {
            name: "dmesg_restrict",
            ok: true,
            found: format!("{v}: reading the kernel log needs CAP_SYSLOG"),
            impact: None,
            fix: None,
        },
        None => Check::ok("dmesg_restrict", "unknown"),
    }
}

fn lockdown_check() -> Check {
    let text = read_trimmed("/sys/kernel/security/lockdown");
    // "none [integrity] confidentiality": the bracketed word is in force.
    let mode = text
        .as_deref()
        .and_then(|t| t.split('[').nth(1))
        .and_then(|t| t.split(']').next())
        .unwrap_or("none");
    match mode {
        "none" => Check::ok("lockdown", "none"),
        "integrity" => Check::ok("lockdown", "integrity: tracing still allowed"),
        other => Check::missing(
            "lockdown",
            other.to_owned(),
            "confidentiality lockdown forbids reading kernel memory from BPF: oomtrace cannot run",
            Some("boot with lockdown=integrity or none"),
        ),
    }
}

fn capability_checks() -> Vec<Check> {
    let effective = effective_capabilities();
    CAPABILITIES
        .iter()
        .map(|(bit, name, why)| match effective {
            Some(mask) if mask & (1u64 << bit) != 0 => Check::ok(name, "held"),
            Some(_) => Check::missing(
                name,
                "not held",
                why,
                Some("run as root, or grant it (see deploy/)"),
            ),
            None => Check::missing(name, "unknown (no /proc/self/status)", why, None),
        })
        .collect()
}

/// `CapEff` of this process.
pub fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_capabilities_are_read() {
        // Whatever the sandbox grants, CapEff is a hex mask this parses.
        assert!(effective_capabilities().is_some());
    }

    /// The deployment units grant exactly the capabilities listed here
    /// (which the non-root host test proves sufficient).
    #[test]
    fn deployment_units_grant_exactly_these_capabilities() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let ours: std::collections::BTreeSet<String> = CAPABILITIES
            .iter()
            .map(|(_, n, _)| (*n).to_owned())
            .collect();
        let unit = fs::read_to_string(deploy.join("systemd/oomtrace.service")).unwrap();
        for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
            let line = unit.lines().find_map(|l| l.strip_prefix(key)).unwrap();
            let granted = line.split_whitespace().map(str::to_owned).collect();
            assert_eq!(ours, granted, "{key}");
        }
        let daemonset = fs::read_to_string(deploy.join("kubernetes/daemonset.yaml")).unwrap();
        let added: std::collections::BTreeSet<String> = daemonset
            .split("add:")
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .map_while(|l| l.trim().strip_prefix("- "))
            .map(|l| format!("CAP_{}", l.split_whitespace().next().unwrap()))
            .collect();
        assert_eq!(ours, added);
    }

    #[test]
    fn a_missing_btf_file_is_a_missing_check_with_a_fix() {
        let check = btf_check(Path::new("/nonexistent/vmlinux"));
        assert!(!check.ok);
        assert!(check.fix.is_some());
    }
}
