//! The report's first lines: "X invoked oom-killer:", and the dump_stack
//! line naming the task that ran into the OOM and the kernel's release.

use serde::Serialize;

use super::numbers::split_num;

/// "X invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvokedHeader {
    /// Command name of the task that ran into the OOM.
    pub comm: String,
    pub gfp_mask: u64,
    /// Symbolic flags printed after the mask on newer kernels ("GFP_KERNEL").
    pub gfp_flags: Option<String>,
    pub order: i32,
    pub oom_score_adj: Option<i32>,
    /// Only pre-3.x kernels print `oom_adj=`.
    pub oom_adj: Option<i32>,
}

/// The dump_stack line naming the task that triggered the OOM:
/// "CPU: 1 UID: 0 PID: 12621 Comm: python3 Not tainted 6.18.44 ..."
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerCpuLine {
    pub cpu: u32,
    /// Printed since 6.11.
    pub uid: Option<u32>,
    pub pid: u32,
    pub comm: String,
}

/// "X invoked oom-killer: gfp_mask=…, order=…, …"; `Some(None)` for a header
/// cut off before its gfp_mask or order.
pub(super) fn parse_header(t: &str) -> Option<Option<InvokedHeader>> {
    const MARK: &str = " invoked oom-killer:";
    let idx = t.find(MARK)?;
    let comm = t[..idx].to_string();
    let params = &t[idx + MARK.len()..];
    let mut gfp = None;
    let mut gfp_flags = None;
    let mut order = None;
    let mut oom_score_adj = None;
    let mut oom_adj = None;
    for part in params.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "gfp_mask" => {
                let (hex, flags) = match value.split_once('(') {
                    Some((hex, rest)) => (hex, rest.strip_suffix(')')),
                    None => (value, None),
                };
                let hex = hex.strip_prefix("0x").unwrap_or(hex);
                gfp = u64::from_str_radix(hex, 16).ok();
                gfp_flags = flags.map(str::to_string);
            }
            "order" => order = value.parse().ok(),
            "oom_score_adj" => oom_score_adj = value.parse().ok(),
            "oom_adj" => oom_adj = value.parse().ok(),
            _ => {}
        }
    }
    // A header cut off before gfp_mask/order still starts a report, but we do
    // not invent the missing values.
    let header = match (gfp, order) {
        (Some(gfp_mask), Some(order)) => Some(InvokedHeader {
            comm,
            gfp_mask,
            gfp_flags,
            order,
            oom_score_adj,
            oom_adj,
        }),
        _ => None,
    };
    Some(header)
}

/// "CPU: 1 UID: 0 PID: 12621 Comm: python3 Not tainted 6.18.44-fc-v669 #1 ..."
/// (UID since 6.11; "Kdump: loaded" and "Tainted: G   W  O" variants), and the
/// 2.6.32 "Pid: 1, comm: init Not tainted 2.6.32-431.el6.x86_64 #1" (release only).
pub(super) fn parse_cpu_line(t: &str) -> Option<(Option<TriggerCpuLine>, Option<String>)> {
    if let Some(rest) = t.strip_prefix("Pid: ") {
        let (_, rest) = split_num::<u32>(rest)?;
        let rest = rest.strip_prefix(", comm: ")?;
        let (_, release) = split_taint(rest);
        return Some((None, release));
    }
    let rest = t.strip_prefix("CPU: ")?;
    let (cpu, rest) = split_num::<u32>(rest)?;
    let mut rest = rest.trim_start();
    let mut uid = None;
    if let Some(r) = rest.strip_prefix("UID: ") {
        let (u, r) = split_num::<u32>(r)?;
        uid = Some(u);
        rest = r.trim_start();
    }
    let rest = rest.strip_prefix("PID: ")?;
    let (pid, rest) = split_num::<u32>(rest)?;
    let rest = rest.trim_start().strip_prefix("Comm: ")?;
    let (comm, release) = split_taint(rest);
    Some((
        Some(TriggerCpuLine {
            cpu,
            uid,
            pid,
            comm: comm.to_string(),
        }),
        release,
    ))
}

/// Splits "comm [Kdump: loaded ]Not tainted REL #..." / "comm Tainted: G  W  REL #...".
fn split_taint(rest: &str) -> (&str, Option<String>) {
    let not = rest.find(" Not tainted");
    let tainted = rest.find(" Tainted: ");
    let cut = match (not, tainted) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return (rest.trim_end(), None),
    };
    let comm = rest[..cut]
        .strip_suffix(" Kdump: loaded")
        .unwrap_or(&rest[..cut]);
    let after = &rest[cut..];
    let release = if let Some(a) = after.strip_prefix(" Not tainted") {
        a.split_whitespace()
            .next()
            .filter(|r| !r.starts_with('#'))
            .map(str::to_string)
    } else {
        // Taint flags are single characters padded with spaces; the release is
        // the word before the "#N" build number.
        let words: Vec<&str> = after[" Tainted: ".len()..].split_whitespace().collect();
        words
            .iter()
            .position(|w| w.starts_with('#'))
            .filter(|&i| i > 0)
            .map(|i| words[i - 1].to_string())
    };
    (comm, release)
}

/// Keeps the report's first CPU line: the trigger and the release it names.
pub(super) fn keep_first_cpu_line(
    trigger: &mut Option<TriggerCpuLine>,
    release: &mut Option<String>,
    line_trigger: Option<TriggerCpuLine>,
    line_release: Option<String>,
) {
    if trigger.is_none() && release.is_none() {
        *trigger = line_trigger;
        *release = line_release;
    }
}
