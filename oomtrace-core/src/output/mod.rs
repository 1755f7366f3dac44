//! Output: JSON Lines (one record per line, `type` first) or a compact card
//! for a person. Sizes are bytes in JSON and human units on screen.
use std::io::Write;

use serde::Serialize;

pub use crate::base::units::human_bytes;
use crate::{
    base::{Envelope, hooks::HookStatus},
    model::decision::Decision,
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
/// (a memcg reclaims at its limit) or detached (no reclaim for a while).
#[derive(Debug, Clone, Serialize)]
pub struct ChargeHookRecord {
    #[serde(flatten)]
    pub envelope: Envelope,
    /// `armed` or `disarmed`.
    pub state: &'static str,
    /// The memcg whose reclaim armed it (null: disarmed, or unnamed).
    pub memcg: Option<String>,
}

pub struct Output<W: Write> {
    json: bool,
    top: usize,
    out: W,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, json: bool, top: usize) -> Self {
        Self { json, top, out }
    }

    fn line(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    fn json_line<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
        self.line(&text)
    }

    pub fn start(&mut self, record: &StartRecord<'_>) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        let attached: Vec<&str> = record
            .hooks
            .iter()
            .filter(|h| h.attached)
            .map(|h| h.hook.as_str())
            .collect();
        let scope = if record.cgroups.is_empty() {
            "all memory cgroups".to_owned()
        } else {
            record.cgroups.join(", ")
        };
        self.line(&format!(
            "oomtrace: tracing OOM kills in {scope} (backend {}, kernel {}, {} hooks attached)",
            record.backend,
            record.kernel_release,
            attached.len()
        ))?;
        // One line per backend that could not be used, one per other hook.
        let mut reported_backends: Vec<&str> = Vec::new();
        for hook in record.hooks.iter().filter(|h| !h.attached) {
            let family = match hook.hook.split('/').next() {
                Some("fentry" | "fexit") => Some("fentry"),
                Some("kprobe" | "kretprobe") => Some("kprobe"),
                _ => None,
            };
            // Only the first line of an error: verifier logs stay in the JSON record.
            let reason = hook
                .error
                .as_deref()
                .unwrap_or("unknown reason")
                .lines()
                .next()
                .unwrap_or_default();
            match family {
                Some(family) if family == record.backend => self.line(&format!(
                    "oomtrace: hook {} not attached: {reason}",
                    hook.hook
                ))?,
                Some(family) if !reported_backends.contains(&family) => {
                    reported_backends.push(family);
                    self.line(&format!(
                        "oomtrace: {family} backend not usable here ({}: {reason})",
                        hook.hook
                    ))?;
                }
                Some(_) => {}
                None => self.line(&format!(
                    "oomtrace: hook {} not attached: {reason}",
                    hook.hook
                ))?,
            }
        }
        if !record.unavailable_fields.is_empty() {
            self.line(&format!(
                "oomtrace: not available on this kernel: {}",
                record.unavailable_fields.join(", ")
            ))?;
        }
        Ok(())
    }

    pub fn lost(&mut self, record: &LostRecord) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        self.line(&format!(
            "oomtrace: WARNING: {} events lost from {} ({} in total)",
            record.count, record.source, record.total
        ))
    }

    pub fn stall(&mut self, record: &crate::model::stall::StallRecord) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        let mut text = format!(
            "━━ OOM stall in {} — {} ({:.1} s so far)",
            record.memcg,
            record.state,
            record.stalled_ms / 1000.0
        );
        for task in &record.tasks {
            text.push_str(&format!(
                "\n  task       {} (pid {}) state {} in {}",
                task.comm,
                task.pid,
                task.state.as_deref().unwrap_or("?"),
                task.wchan.as_deref().unwrap_or("?")
            ));
        }
        for line in &record.explanation {
            text.push_str(&format!("\n    • {line}"));
        }
        self.line(&text)
    }

    pub fn charge_failure(
        &mut self,
        record: &crate::model::charge::ChargeFailureRecord,
    ) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        let mut text = format!(
            "━━ Charge failed in {} — {} ({})\n  task       {} (pid {}), {} order {}",
            record.memcg.as_deref().unwrap_or("?"),
            record.reason.replace('_', " "),
            record.result.replace('_', " "),
            record.task.comm,
            record.task.pid,
            record.gfp_flags.as_deref().unwrap_or("gfp ?"),
            record.order.map_or("?".to_owned(), |o| o.to_string())
        );
        if let (Some(usage), Some(limit)) = (record.usage_bytes, record.limit_bytes) {
            text.push_str(&format!(
                "\n  memcg      {} used of {}",
                human_bytes(usage),
                human_bytes(limit)
            ));
        }
        for line in &record.explanation {
            text.push_str(&format!("\n    • {line}"));
        }
        self.line(&text)
    }

    pub fn charge_hook(&mut self, record: &ChargeHookRecord) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        self.line(&match record.state {
            "armed" => format!(
                "oomtrace: {} reclaims at its limit: charge hook armed (every charge is checked until 10 s without reclaim)",
                record.memcg.as_deref().unwrap_or("a memcg")
            ),
            _ => "oomtrace: no memcg reclaim for 10 s: charge hook disarmed".to_owned(),
        })
    }

    pub fn charge_failure_summary(
        &mut self,
        record: &crate::model::charge::ChargeFailureSummary,
    ) -> std::io::Result<()> {
        if self.json {
            return self.json_line(record);
        }
        self.line(&format!(
            "oomtrace: {} charge failure(s) in {} were counted but not reported ({} in all, {} reported)",
            record.suppressed,
            record.memcg.as_deref().unwrap_or("a removed memcg"),
            record.failures_total,
            record.reported
        ))
    }

    pub fn warning(&mut self, text: &str) -> std::io::Result<()> {
        eprintln!("oomtrace: warning: {text}");
        Ok(())
    }

    pub fn decision(&mut self, decision: &Decision) -> std::io::Result<()> {
        if self.json {
            return self.json_line(decision);
        }
        let card = render_card(decision, self.top);
        self.line(&card)
    }
}

fn opt_bytes(value: Option<u64>) -> String {
    value.map_or("?".to_owned(), human_bytes)
}

/// The decision as a person reads it at 3 a.m.: what, whose limit, who, why.
pub fn render_card(d: &Decision, top: usize) -> String {
    let mut s = String::new();
    let kind = match d.constraint.as_deref() {
        Some("memcg") => "memory cgroup limit",
        Some("global") => "system out of memory",
        Some(other) => other,
        None => "unknown constraint",
    };
    s.push_str(&format!(
        "━━ OOM kill #{} at {} — {kind}\n",
        d.seq,
        d.envelope.time.as_deref().unwrap_or("an unknown time")
    ));
    let t = &d.trigger;
    s.push_str(&format!(
        "  trigger    {} (pid {}){}{}\n",
        t.comm.as_deref().unwrap_or("?"),
        t.pid.map_or("?".to_owned(), |p| p.to_string()),
        t.memcg
            .as_ref()
            .map_or(String::new(), |m| format!(" in {m}")),
        match (&t.gfp_flags, &t.gfp_mask, t.order) {
            (Some(flags), _, Some(order)) => format!(", allocating {flags} order {order}"),
            (None, Some(mask), Some(order)) => format!(", allocating gfp {mask} order {order}"),
            _ => String::new(),
        }
    ));
    if let Some(m) = &d.oom_memcg {
        s.push_str(&format!(
            "  limit      {}: {} used of {}{}\n",
            m.path.as_deref().unwrap_or("?"),
            opt_bytes(m.usage_bytes),
            opt_bytes(m.limit_bytes),
            if m.source == "bpf" {
                " (read from the kernel's page counters)"
            } else {
                ""
            }
        ));
    }
    match &d.victim {
        Some(v) => {
            let rss = v.rss_anon_bytes.unwrap_or(0)
                + v.rss_file_bytes.unwrap_or(0)
                + v.rss_shmem_bytes.unwrap_or(0);
            s.push_str(&format!(
                "  victim     {} (pid {}){} — {} points\n             rss {} (anon {}, file {}, shmem {}), swap {}, page tables {}, oom_score_adj {}\n",
                v.comm.as_deref().unwrap_or("?"),
                v.pid,
                v.memcg.as_ref().map_or(String::new(), |m| format!(" in {m}")),
                v.points.map_or("?".to_owned(), |p| p.to_string()),
                human_bytes(rss),
                opt_bytes(v.rss_anon_bytes),
                opt_bytes(v.rss_file_bytes),
                opt_bytes(v.rss_shmem_bytes),
                opt_bytes(v.swap_bytes),
                opt_bytes(v.pgtables_bytes),
                v.oom_score_adj.map_or("?".to_owned(), |a| a.to_string()),
            ));
        }
        None if d.kernel_report == "incomplete" => {
            s.push_str("  victim     unknown: the kernel's report is cut off\n")
        }
        None => s.push_str("  victim     none: nothing was killed\n"),
    }
    if let Some(c) = &d.container {
        let mut parts = vec![c.runtime.to_owned()];
        parts.extend(c.id.as_deref().map(|id| id[..id.len().min(12)].to_owned()));
        parts.extend(c.pod_uid.as_ref().map(|p| format!("pod {p}")));
        parts.extend(c.qos_class.map(|q| format!("QoS {q}")));
        parts.extend(c.unit.clone());
        parts.extend(c.name.clone());
        s.push_str(&format!("  container  {}\n", parts.join(" ")));
    }
    if d.killed.len() > 1 {
        let pids: Vec<String> = d.killed.iter().map(|p| p.to_string()).collect();
        s.push_str(&format!(
            "  killed     {}{}\n",
            pids.join(", "),
            d.oom_group
                .as_ref()
                .map_or(String::new(), |g| format!(" (memory.oom.group of {g})"))
        ));
    }
    if d.candidates.is_empty() {
        s.push_str(&format!(
            "  candidates unknown (kernel report {})\n",
            d.kernel_report
        ));
    } else {
        s.push_str(&format!(
            "  candidates {} (from {}):\n",
            d.candidates.len(),
            d.candidates_source.replace('_', " ")
        ));
        for c in d.candidates.iter().take(top) {
            s.push_str(&format!(
                "    {:>8} {:<16} {:>10}  rss {:>9}  adj {:>5}{}\n",
                c.pid,
                c.comm,
                match (c.points, c.eligible) {
                    (Some(p), _) => format!("{p} pts"),
                    (None, false) => "never".to_owned(),
                    (None, true) => "? pts".to_owned(),
                },
                human_bytes(c.rss_bytes),
                c.oom_score_adj,
                if c.victim { "  ← victim" } else { "" }
            ));
        }
        if d.candidates.len() > top {
            s.push_str(&format!("    … and {} more\n", d.candidates.len() - top));
        }
    }
    let f = &d.freed;
    let mut freed = vec![format!("rss {}", opt_bytes(f.rss_bytes))];
    if let Some(reaper) = &f.reaper {
        freed.push(format!("oom_reaper {reaper}"));
    }
    match f.exit_after_ms {
        Some(ms) => freed.push(format!("victim exited {ms:.1} ms after the kill")),
        None if f.exited == Some(false) => freed.push("victim exit not seen".to_owned()),
        None => {}
    }
    if let Some(after) = d.oom_memcg.as_ref().and_then(|m| m.usage_after_kill_bytes) {
        freed.push(format!("memcg now uses {}", human_bytes(after)));
    }
    if d.victim.is_some() {
        s.push_str(&format!("  freed      {}\n", freed.join("; ")));
    }
    if let Some(r) = &d.reclaim {
        s.push_str(&format!(
            "  reclaim    {} reclaim passes in {} since tracing began ({} reclaimed nothing), {} reclaimed in {:.1} ms\n",
            r.passes,
            r.memcg.as_deref().unwrap_or("?"),
            r.empty_passes,
            human_bytes(r.reclaimed_bytes),
            r.time_ms
        ));
    }
    if !d.explanation.is_empty() {
        s.push_str("  why\n");
        for line in &d.explanation {
            s.push_str(&format!("    • {line}\n"));
        }
    }
    s.pop();
    s
}

/// Every candidate with every number, for `oomtrace report`.
pub fn render_candidate_table(d: &Decision) -> String {
    if d.candidates.is_empty() {
        return "  (no candidate table)".to_owned();
    }
    let mut s = format!(
        "  all candidates ({}):\n  {:>8} {:>8} {:>6} {:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>10}\n",
        d.candidates.len(),
        "pid",
        "tgid",
        "uid",
        "comm",
        "rss",
        "anon",
        "file",
        "shmem",
        "swap",
        "pgtables",
        "adj",
        "points"
    );
    for c in &d.candidates {
        s.push_str(&format!(
            "  {:>8} {:>8} {:>6} {:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>10}{}\n",
            c.pid,
            c.tgid.map_or("?".to_owned(), |t| t.to_string()),
            c.uid.map_or("?".to_owned(), |u| u.to_string()),
            c.comm,
            human_bytes(c.rss_bytes),
            opt_bytes(c.rss_anon_bytes),
            opt_bytes(c.rss_file_bytes),
            opt_bytes(c.rss_shmem_bytes),
            opt_bytes(c.swap_bytes),
            opt_bytes(c.pgtables_bytes),
            c.oom_score_adj,
            match (c.points, c.eligible) {
                (Some(p), _) => p.to_string(),
                (None, false) => "never".to_owned(),
                (None, true) => "?".to_owned(),
            },
            if c.victim { "  ← victim" } else { "" }
        ));
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
