//! `oomtrace doctor`: what this node allows and what oomtrace will do on it.
//! The node's files say what exists; then the tracer is started for real
//! (and stopped) so the backend and every hook's outcome are the kernel's
//! answer, not a guess.
use std::{io::Write, path::PathBuf};

use anyhow::Result;
use oomtrace_core::{
    base::{Envelope, hooks::HookStatus, privileges::Privileges, text::escape},
    cgroup::MemoryHierarchy,
};
use serde::Serialize;

use crate::kernel::{
    facts::{self, Check},
    loader::{self, Backend, BackendRequest, TraceOptions, Tracer},
    privilege, tracefs,
};

pub struct DoctorOptions {
    pub json: bool,
    pub btf_path: PathBuf,
    /// `--host-root`: where the memory cgroup hierarchy is looked for.
    pub host_root: PathBuf,
}

/// The `doctor` record (JSON) and the report on screen.
#[derive(Debug, Serialize)]
pub struct DoctorRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub kernel_release: String,
    pub checks: Vec<Check>,
    /// The memory cgroup hierarchy: `v1` or `v2` and where it is mounted.
    pub cgroup: Option<String>,
    /// The backend `auto` chose (null: the tracer could not start).
    pub backend: Option<&'static str>,
    /// Where a decision's candidates come from with that backend.
    pub fidelity: String,
    pub hooks: Vec<HookStatus>,
    /// Why the tracer could not start, if it could not.
    pub start_error: Option<String>,
    /// What a run started like this one keeps of its privileges once
    /// attached (the `start` record's `privileges`; `seccomp` unless
    /// `--no-seccomp`, where the kernel has seccomp filters).
    pub privileges_after_start: Privileges,
}

pub fn run(options: &DoctorOptions) -> Result<u64> {
    let record = examine(options);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if options.json {
        writeln!(out, "{}", serde_json::to_string(&record)?)?;
    } else {
        write!(out, "{}", render(&record))?;
    }
    out.flush()?;
    Ok(0)
}

fn examine(options: &DoctorOptions) -> DoctorRecord {
    let tracefs = tracefs::tracefs_root().ok();
    let mut checks = facts::collect(&options.btf_path, tracefs.as_deref());
    let cgroup = match MemoryHierarchy::detect_under(&options.host_root) {
        Ok(h) => Some(format!("{:?} at {}", h.version, h.mount.display()).to_lowercase()),
        Err(e) => {
            checks.push(Check {
                name: "memory cgroup",
                ok: false,
                found: e.to_string(),
                impact: Some("no memcg to trace or filter on".into()),
                fix: Some(
                    "mount the memory controller (cgroup v2, or v1 at /sys/fs/cgroup/memory)"
                        .into(),
                ),
            });
            None
        }
    };
    let started = loader::ensure_privileges()
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            Tracer::start(&TraceOptions {
                backend: BackendRequest::Auto,
                cgroup_ids: Vec::new(),
                btf_path: options.btf_path.clone(),
                cmdline: true,
            })
            .map_err(anyhow::Error::from)
        });
    let (backend, hooks, start_error) = match started {
        Ok(tracer) => (Some(tracer.backend), tracer.hooks.clone(), None),
        Err(e) => (None, Vec::new(), Some(format!("{e:#}"))),
    };
    DoctorRecord {
        envelope: Envelope::now("doctor"),
        kernel_release: loader::kernel_release(),
        checks,
        cgroup,
        backend: backend.map(Backend::name),
        fidelity: fidelity(backend),
        hooks,
        start_error,
        privileges_after_start: privilege::plan(),
    }
}

fn fidelity(backend: Option<Backend>) -> String {
    match backend {
        Some(Backend::Tracepoint) => "candidates from the kernel's printed report (its task table, rate-limited to 10 reports per 5 s), points recomputed with the kernel's rule".into(),
        Some(other) => format!("candidates from the OOM killer's own evaluation ({}), with the kernel's points", other.name()),
        None => "none: oomtrace cannot trace on this node as it is".into(),
    }
}

fn render(r: &DoctorRecord) -> String {
    let mut s = format!("oomtrace doctor — kernel {}\n", escape(&r.kernel_release));
    for c in &r.checks {
        let mark = if c.ok { "ok  " } else { "MISS" };
        s += &format!("  {mark} {:<20} {}\n", c.name, escape(&c.found));
        if let Some(impact) = &c.impact {
            s += &format!("       {:<20} → {impact}\n", "");
        }
        if let Some(fix) = &c.fix {
            s += &format!("       {:<20} fix: {fix}\n", "");
        }
    }
    if let Some(cgroup) = &r.cgroup {
        s += &format!("  cgroup  {}\n", escape(cgroup));
    }
    match (&r.backend, &r.start_error) {
        (Some(backend), _) => {
            s += &format!("backend `auto` uses: {backend}\nfidelity: {}\n", r.fidelity);
            s += &not_attached(&r.hooks);
        }
        (None, Some(e)) => s += &format!("oomtrace cannot start here: {}\n", escape(e)),
        (None, None) => {}
    }
    s += &after_start(&r.privileges_after_start);
    s
}

/// What the running tracer keeps, on one line.
fn after_start(p: &Privileges) -> String {
    let caps = match p.capabilities.is_empty() {
        true => "no capability".to_owned(),
        false => p.capabilities.join(", "),
    };
    let seccomp = match p.seccomp {
        true => "a seccomp allowlist (--no-seccomp: none)",
        false => "no seccomp filter (the kernel has none)",
    };
    format!("after start-up: keeps {caps}; no_new_privs; {seccomp}\n")
}

/// Hooks that did not attach, one line per reason (a locked ftrace fails
/// every fentry hook the same way).
fn not_attached(hooks: &[HookStatus]) -> String {
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for h in hooks.iter().filter(|h| !h.attached) {
        let why = h.error.as_deref().unwrap_or("not attached");
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(&h.hook),
            None => reasons.push((why, vec![&h.hook])),
        }
    }
    reasons
        .iter()
        .map(|(why, names)| {
            format!(
                "  not attached ({}): {} — {}\n",
                names.len(),
                names.join(", "),
                escape(why)
            )
        })
        .collect()
}
