//! The fleet view (`oomtrace report --summary`): decisions from many nodes'
//! dumps grouped by who was killed — a Kubernetes pod, a container, a
//! systemd unit, else the memcg — with how often, on how many nodes, when
//! last, and the usual cause. No server: the dumps are the database.
use std::{
    collections::{BTreeSet, HashMap},
    time::SystemTime,
};

use serde::Serialize;

use crate::{
    base::{Envelope, text::Escaped, time::parse_rfc3339, units::human_bytes},
    cgroup::container::{self, Container, KUBERNETES},
    model::decision::Decision,
};

/// Host names kept per group (the count of nodes stays exact past it).
const MAX_HOSTS_LISTED: usize = 16;

/// One group of the summary: an `oom_summary` record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryGroup {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// `pod`, `container`, `unit`, `memcg` or `node` (a global OOM without a memcg).
    pub kind: &'static str,
    /// The pod UID, `<runtime> <container id or name>`, the unit or the memcg path.
    pub group: String,
    pub ooms: u64,
    /// Distinct host names among the inputs (dumps name their host; a saved
    /// kernel log may not: those count as one unnamed node).
    pub nodes: u64,
    /// Up to 16 of those host names, sorted.
    pub hosts: Vec<String>,
    /// The latest kill (null: no input had a time).
    pub last_time: Option<String>,
    /// The most frequent cause, and how many of `ooms` it explains.
    pub usual_cause: String,
    pub usual_cause_count: u64,
}

/// What the summary read: an `oom_summary_inputs` record, after the groups.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryInputs {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub files: u64,
    pub decisions: u64,
    /// Inputs that could not be read, each named (escaped) in `bad`.
    pub bad_files: u64,
    pub bad: Vec<String>,
}

#[derive(Default)]
struct Group {
    kind: &'static str,
    ooms: u64,
    hosts: BTreeSet<String>,
    nodes: HashMap<String, ()>,
    last: Option<(SystemTime, String)>,
    causes: HashMap<String, u64>,
}

/// Decisions folded into groups as they are read; memory grows with the
/// number of groups and nodes, not of decisions.
#[derive(Default)]
pub struct Summary {
    groups: HashMap<String, Group>,
    files: u64,
    decisions: u64,
    bad: Vec<String>,
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    /// One input file was read (whether or not it held decisions).
    pub fn file_read(&mut self) {
        self.files += 1;
    }

    /// One input could not be read: counted and named.
    pub fn bad_file(&mut self, message: String) {
        self.bad.push(message);
    }

    pub fn add(&mut self, decision: &Decision, host: Option<&str>) {
        self.decisions += 1;
        let (kind, label) = identity(decision);
        let group = self.groups.entry(label).or_default();
        group.kind = kind;
        group.ooms += 1;
        let host = host.unwrap_or("").to_owned();
        if group.hosts.len() < MAX_HOSTS_LISTED && !host.is_empty() {
            group.hosts.insert(host.clone());
        }
        group.nodes.insert(host, ());
        if let Some(text) = decision.envelope.time.as_deref()
            && let Some(time) = parse_rfc3339(text)
            && group.last.as_ref().is_none_or(|(last, _)| time > *last)
        {
            group.last = Some((time, text.to_owned()));
        }
        *group.causes.entry(cause(decision)).or_default() += 1;
    }

    /// The groups, most OOMs first (then the latest, then by name).
    pub fn groups(&self) -> Vec<SummaryGroup> {
        let mut rows: Vec<(Option<SystemTime>, SummaryGroup)> = self
            .groups
            .iter()
            .map(|(label, g)| {
                let (usual_cause, usual_cause_count) = g
                    .causes
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(c, n)| (c.clone(), *n))
                    .unwrap_or_default();
                let row = SummaryGroup {
                    envelope: Envelope::now("oom_summary"),
                    kind: g.kind,
                    group: label.clone(),
                    ooms: g.ooms,
                    nodes: g.nodes.len() as u64,
                    hosts: g.hosts.iter().cloned().collect(),
                    last_time: g.last.as_ref().map(|(_, t)| t.clone()),
                    usual_cause,
                    usual_cause_count,
                };
                (g.last.as_ref().map(|(t, _)| *t), row)
            })
            .collect();
        rows.sort_by(|a, b| {
            b.1.ooms
                .cmp(&a.1.ooms)
                .then(b.0.cmp(&a.0))
                .then(a.1.group.cmp(&b.1.group))
        });
        rows.into_iter().map(|(_, row)| row).collect()
    }

    pub fn inputs(&self) -> SummaryInputs {
        SummaryInputs {
            envelope: Envelope::now("oom_summary_inputs"),
            files: self.files,
            decisions: self.decisions,
            bad_files: self.bad.len() as u64,
            bad: self.bad.clone(),
        }
    }

    /// The table for a person: one line per group, untrusted text escaped.
    pub fn render(&self) -> String {
        let groups = self.groups();
        let mut lines = vec![format!(
            "{:>6}  {:>5}  {:<30}  {:<40}  group",
            "OOMs", "nodes", "last", "usual cause (its OOMs)"
        )];
        for g in &groups {
            let cause = format!("{} ({})", g.usual_cause, g.usual_cause_count);
            lines.push(format!(
                "{:>6}  {:>5}  {:<30}  {:<40}  {} {}",
                g.ooms,
                g.nodes,
                g.last_time.as_deref().unwrap_or("-"),
                Escaped(&cause).to_string(),
                g.kind,
                Escaped(&g.group),
            ));
        }
        let inputs = self.inputs();
        let mut footer = format!(
            "{} OOM kill(s) in {} group(s), from {} file(s)",
            inputs.decisions,
            groups.len(),
            inputs.files
        );
        if inputs.bad_files > 0 {
            footer.push_str(&format!(
                "; {} file(s) could not be read (named above)",
                inputs.bad_files
            ));
        }
        lines.push(footer);
        lines.join("\n")
    }
}

/// Who was killed, as a stable name across restarts and nodes: the pod
/// (container ids change on every restart), a named or identified
/// container, a systemd unit, else the memcg path.
fn identity(decision: &Decision) -> (&'static str, String) {
    let memcg = decision
        .victim
        .as_ref()
        .and_then(|v| v.memcg.as_deref())
        .or(decision.oom_memcg.as_ref().and_then(|m| m.path.as_deref()));
    let found: Option<Container> = decision
        .container
        .clone()
        .or_else(|| memcg.and_then(container::attribute));
    if let Some(c) = found {
        // Kubernetes names where the dump has them: a person's names.
        if let (Some(ns), Some(pod)) = (&c.namespace, &c.pod_name) {
            return match &c.container_name {
                Some(name) => ("container", format!("{ns}/{pod}/{name}")),
                None => ("pod", format!("{ns}/{pod}")),
            };
        }
        if c.orchestrator == Some(KUBERNETES)
            && let Some(uid) = &c.pod_uid
        {
            return ("pod", uid.clone());
        }
        if let Some(name) = c.owner_name().or(c.id.clone()) {
            return ("container", format!("{} {name}", c.runtime));
        }
        if let Some(unit) = c.unit {
            return ("unit", unit);
        }
    }
    match memcg {
        Some(path) if !path.is_empty() => ("memcg", path.to_owned()),
        _ => ("node", "(no memcg)".to_owned()),
    }
}

/// A decision's cause in a few words: whose limit fired, and its size.
fn cause(decision: &Decision) -> String {
    let oom = decision.oom_memcg.as_ref();
    let limit = oom
        .and_then(|m| m.limit_bytes)
        .map_or("unknown".to_owned(), human_bytes);
    match decision.constraint.as_deref() {
        Some("memcg") => {
            let path = oom.and_then(|m| m.path.as_deref());
            let victim = decision.victim.as_ref().and_then(|v| v.memcg.as_deref());
            match path {
                Some(path) if Some(path) != victim => {
                    format!("ancestor memcg limit {limit} at {path}")
                }
                _ => format!("own memcg limit {limit}"),
            }
        }
        Some("global") | None => "node out of memory".to_owned(),
        Some(other) => format!("{other} constraint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::card::tests::fixture_decision;

    #[test]
    fn groups_count_nodes_and_the_usual_cause() {
        let decision = fixture_decision("6.1.0-50-amd64-a-v2-single-hog.log");
        let mut summary = Summary::new();
        summary.add(&decision, Some("node-a"));
        summary.add(&decision, Some("node-b"));
        summary.add(&decision, Some("node-a"));
        let groups = summary.groups();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].ooms, 3);
        assert_eq!(groups[0].nodes, 2);
        assert_eq!(groups[0].hosts, ["node-a", "node-b"]);
        assert_eq!(groups[0].usual_cause_count, 3);
        let limit = decision.oom_memcg.as_ref().unwrap().limit_bytes.unwrap();
        assert!(
            groups[0].usual_cause.contains(&human_bytes(limit)),
            "{groups:?}"
        );
    }

    #[test]
    fn the_table_makes_untrusted_names_inert() {
        let mut decision = fixture_decision("6.1.0-50-amd64-a-v2-single-hog.log");
        let evil = "/evil\u{1b}]0;x\u{7}\nline";
        decision.victim.as_mut().unwrap().memcg = Some(evil.to_owned());
        decision.container = None;
        let mut summary = Summary::new();
        summary.add(&decision, Some("host\u{1b}[2J"));
        summary.bad_file("a: corrupt".to_owned());
        let text = summary.render();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("\\x1b]0;x\\x07\\x0aline"), "{text}");
        assert!(text.contains("1 file(s) could not be read"), "{text}");
        for line in text.lines() {
            assert!(!line.chars().any(crate::base::text::is_unsafe), "{line:?}");
        }
    }
}
