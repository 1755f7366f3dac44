//! The collector's own records (`start`, `lost`, `charge_hook`), and the
//! one-line text of those and of the charge-failure summary.
use serde::Serialize;

use crate::{
    base::{Envelope, hooks::HookStatus, privileges::Privileges, text::Escaped},
    model::charge::ChargeFailureSummary,
};

#[derive(Debug, Serialize)]
pub struct StartRecord<'a> {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub backend: &'static str,
    pub kernel_release: &'a str,
    pub hooks: &'a [HookStatus],
    /// Kernel struct or tracepoint fields this kernel does not have (reported, never guessed).
    pub unavailable_fields: &'a [String],
    pub cgroups: Vec<String>,
    pub kernel_report: bool,
    /// The tracer's own oom_score_adj once it tried `--oom-score-adj`
    /// (null: unreadable).
    pub oom_score_adj: Option<i32>,
    /// The tracer's own nice value once it tried `--nice` (null: unreadable).
    pub nice: Option<i32>,
    /// What the tracer kept of its privileges once attached.
    pub privileges: Privileges,
    /// With `--state-dir`: what the previous run left and what was
    /// recovered from it; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryStatus>,
}

/// The start record's `recovery`: kills the kernel logged while oomtrace
/// was not running, rebuilt from the kernel log at start-up.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryStatus {
    /// `none` (no state), `other_boot`, `invalid` (unusable, see the
    /// warning) or `resumed`.
    pub state: &'static str,
    /// The first `/dev/kmsg` record the run read (resumed only).
    pub from_seq: Option<u64>,
    /// Records the kernel overwrote before they could be read (a `lost`
    /// record `kmsg_wrapped` says so too).
    pub lost_records: u64,
    /// Decisions recovered (`"recovered": true`), emitted before any live one.
    pub recovered: u64,
}

#[derive(Debug, Serialize)]
pub struct LostRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// "ringbuf:<event kind>", "kmsg" or "pending".
    pub source: String,
    /// Newly lost since the previous lost record of this source.
    pub count: u64,
    pub total: u64,
}

/// `charge_hook`: the on-demand fexit on the charge function was attached
/// (a memcg's reclaim fell short of its target) or detached (no such pass
/// for a while).
#[derive(Debug, Clone, Serialize)]
pub struct ChargeHookRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// `armed` or `disarmed`.
    pub state: &'static str,
    /// The memcg whose reclaim armed it (null: disarmed, or unnamed).
    pub memcg: Option<String>,
    /// What armed it (`model::arming::Trigger::name`): `short_reclaim`, or
    /// `any_reclaim` where this kernel's reclaim target cannot be read
    /// (null: disarmed, or armed for the whole run by `--charge-hook always`).
    pub rule: Option<&'static str>,
}

/// What is traced and how; then one line per backend that could not be
/// used, one per other hook not attached, and the fields this kernel lacks.
pub fn start_text(record: &StartRecord<'_>) -> String {
    let attached = record.hooks.iter().filter(|h| h.attached).count();
    let scope = if record.cgroups.is_empty() {
        "all memory cgroups".to_owned()
    } else {
        record.cgroups.join(", ")
    };
    let mut lines = vec![format!(
        "oomtrace: tracing OOM kills in {} (backend {}, kernel {}, {attached} hooks attached)",
        Escaped(&scope),
        Escaped(record.backend),
        Escaped(record.kernel_release),
    )];
    lines.extend(unattached_hook_lines(record));
    if !record.unavailable_fields.is_empty() {
        lines.push(format!(
            "oomtrace: not available on this kernel: {}",
            Escaped(&record.unavailable_fields.join(", "))
        ));
    }
    lines.join("\n")
}

/// One line per backend that could not be used (its first failed hook), one
/// per hook of the chosen backend or of no backend that did not attach.
fn unattached_hook_lines(record: &StartRecord<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut reported_backends: Vec<&str> = Vec::new();
    for hook in record.hooks.iter().filter(|h| !h.attached) {
        let family = match hook.hook.split('/').next() {
            Some("fentry" | "fexit") => Some("fentry"),
            Some("kprobe" | "kretprobe") => Some("kprobe"),
            _ => None,
        };
        // Only the first line of an error: verifier logs stay in the JSON record.
        let reason = Escaped(
            hook.error
                .as_deref()
                .unwrap_or("unknown reason")
                .lines()
                .next()
                .unwrap_or_default(),
        );
        let name = Escaped(&hook.hook);
        match family {
            Some(family) if family == record.backend => {
                lines.push(format!("oomtrace: hook {name} not attached: {reason}"))
            }
            Some(family) if !reported_backends.contains(&family) => {
                reported_backends.push(family);
                lines.push(format!(
                    "oomtrace: {family} backend not usable here ({name}: {reason})"
                ));
            }
            Some(_) => {}
            None => lines.push(format!("oomtrace: hook {name} not attached: {reason}")),
        }
    }
    lines
}

pub fn lost_text(record: &LostRecord) -> String {
    format!(
        "oomtrace: WARNING: {} events lost from {} ({} in total)",
        record.count,
        Escaped(&record.source),
        record.total
    )
}

pub fn charge_hook_text(record: &ChargeHookRecord) -> String {
    let memcg = Escaped(record.memcg.as_deref().unwrap_or("a memcg"));
    match (record.state, record.rule) {
        ("armed", Some("any_reclaim")) => format!(
            "oomtrace: {memcg} reclaims at its limit: charge hook armed (this kernel does not show reclaim targets, so any reclaim arms it; every charge is checked until 10 s without reclaim)"
        ),
        ("armed", Some(_)) => format!(
            "oomtrace: {memcg} reclaimed less than it needed: charge hook armed (every charge is checked until 10 s without such a pass)"
        ),
        ("armed", None) => "oomtrace: charge hook armed (every charge is checked)".to_owned(),
        _ => "oomtrace: no memcg reclaim fell short for 10 s: charge hook disarmed".to_owned(),
    }
}

pub fn charge_failure_summary_text(record: &ChargeFailureSummary) -> String {
    format!(
        "oomtrace: {} charge failure(s) in {} were counted but not reported ({} in all, {} reported)",
        record.suppressed,
        Escaped(record.memcg.as_deref().unwrap_or("a removed memcg")),
        record.failures_total,
        record.reported
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, error: Option<&str>) -> HookStatus {
        HookStatus {
            hook: name.to_owned(),
            attached: error.is_none(),
            required: false,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn start_text_names_each_unusable_backend_once_and_each_missing_hook() {
        let hooks = [
            hook("fentry/out_of_memory", Some("EPERM\nverifier log")),
            hook("fexit/oom_kill_process", Some("EPERM")),
            hook("kprobe/out_of_memory", Some("no kprobes")),
            hook("tracepoint/oom/mark_victim", None),
            hook("raw_tracepoint/mark_victim", Some("ENOENT")),
        ];
        let unavailable = ["task_struct.signal".to_owned()];
        let record = StartRecord {
            envelope: Envelope::now("start"),
            backend: "tracepoint",
            kernel_release: "6.18.0",
            hooks: &hooks,
            unavailable_fields: &unavailable,
            cgroups: vec![],
            kernel_report: true,
            oom_score_adj: Some(-900),
            nice: Some(-10),
            privileges: Privileges::default(),
            recovery: None,
        };
        assert_eq!(
            start_text(&record),
            "oomtrace: tracing OOM kills in all memory cgroups (backend tracepoint, kernel 6.18.0, 1 hooks attached)\n\
             oomtrace: fentry backend not usable here (fentry/out_of_memory: EPERM)\n\
             oomtrace: kprobe backend not usable here (kprobe/out_of_memory: no kprobes)\n\
             oomtrace: hook raw_tracepoint/mark_victim not attached: ENOENT\n\
             oomtrace: not available on this kernel: task_struct.signal"
        );
    }

    #[test]
    fn start_text_lists_every_missing_hook_of_the_chosen_backend() {
        let hooks = [
            hook("fentry/out_of_memory", None),
            hook("fexit/oom_badness", Some("ENOENT")),
            hook("fexit/oom_kill_process", Some("E2BIG")),
        ];
        let record = StartRecord {
            envelope: Envelope::now("start"),
            backend: "fentry",
            kernel_release: "6.1.0",
            hooks: &hooks,
            unavailable_fields: &[],
            cgroups: vec!["/sys/fs/cgroup/a".to_owned(), "/sys/fs/cgroup/b".to_owned()],
            kernel_report: false,
            oom_score_adj: Some(-900),
            nice: Some(-10),
            privileges: Privileges::default(),
            recovery: None,
        };
        assert_eq!(
            start_text(&record),
            "oomtrace: tracing OOM kills in /sys/fs/cgroup/a, /sys/fs/cgroup/b (backend fentry, kernel 6.1.0, 1 hooks attached)\n\
             oomtrace: hook fexit/oom_badness not attached: ENOENT\n\
             oomtrace: hook fexit/oom_kill_process not attached: E2BIG"
        );
    }

    #[test]
    fn one_line_texts_make_input_inert() {
        let evil = "x\u{1b}]0;t\u{7}\nvictim init (pid 1)";
        let hooks = [hook("kprobe/out_of_memory", Some(evil))];
        let fields = [evil.to_owned()];
        let record = StartRecord {
            envelope: Envelope::now("start"),
            backend: "tracepoint",
            kernel_release: evil,
            hooks: &hooks,
            unavailable_fields: &fields,
            cgroups: vec![evil.to_owned()],
            kernel_report: true,
            oom_score_adj: None,
            nice: None,
            privileges: Privileges::default(),
            recovery: None,
        };
        let lost = LostRecord {
            envelope: Envelope::now("lost"),
            source: evil.to_owned(),
            count: 1,
            total: 1,
        };
        let armed = |rule| ChargeHookRecord {
            envelope: Envelope::now("charge_hook"),
            state: "armed",
            memcg: Some(evil.to_owned()),
            rule: Some(rule),
        };
        for text in [
            start_text(&record),
            lost_text(&lost),
            charge_hook_text(&armed("short_reclaim")),
            charge_hook_text(&armed("any_reclaim")),
        ] {
            assert!(text.contains("x\\x1b]0;t\\x07\\x0avictim"), "{text}");
            for line in text.lines() {
                assert!(line.starts_with("oomtrace: "), "{text}");
                assert!(!line.chars().any(crate::base::text::is_unsafe), "{line:?}");
            }
        }
    }
}
