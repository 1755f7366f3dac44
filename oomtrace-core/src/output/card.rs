//! The multi-line text records: the decision card as a person reads it at
//! 3 a.m. (what, whose limit, who, why), the full candidate table of
//! `oomtrace report`, and the stall and charge-failure cards.
use crate::{
    base::units::human_bytes,
    model::{
        charge::ChargeFailureRecord,
        decision::{Candidate, Decision},
        stall::StallRecord,
    },
};

fn opt_bytes(value: Option<u64>) -> String {
    value.map_or("?".to_owned(), human_bytes)
}

/// The decision as a person reads it at 3 a.m.: what, whose limit, who, why.
pub fn render_card(d: &Decision, top: usize) -> String {
    let mut s = String::new();
    header(&mut s, d);
    trigger(&mut s, d);
    limit(&mut s, d);
    victim(&mut s, d);
    container(&mut s, d);
    killed(&mut s, d);
    candidates(&mut s, d, top);
    freed(&mut s, d);
    reclaim(&mut s, d);
    why(&mut s, d);
    s.pop();
    s
}

fn header(s: &mut String, d: &Decision) {
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
}

fn trigger(s: &mut String, d: &Decision) {
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
}

fn limit(s: &mut String, d: &Decision) {
    let Some(m) = &d.oom_memcg else {
        return;
    };
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

fn victim(s: &mut String, d: &Decision) {
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
}

fn container(s: &mut String, d: &Decision) {
    let Some(c) = &d.container else {
        return;
    };
    let mut parts = vec![c.runtime.to_owned()];
    parts.extend(c.id.as_deref().map(|id| id[..id.len().min(12)].to_owned()));
    parts.extend(c.pod_uid.as_ref().map(|p| format!("pod {p}")));
    parts.extend(c.qos_class.map(|q| format!("QoS {q}")));
    parts.extend(c.unit.clone());
    parts.extend(c.name.clone());
    s.push_str(&format!("  container  {}\n", parts.join(" ")));
}

fn killed(s: &mut String, d: &Decision) {
    if d.killed.len() <= 1 {
        return;
    }
    let pids: Vec<String> = d.killed.iter().map(|p| p.to_string()).collect();
    s.push_str(&format!(
        "  killed     {}{}\n",
        pids.join(", "),
        d.oom_group
            .as_ref()
            .map_or(String::new(), |g| format!(" (memory.oom.group of {g})"))
    ));
}

/// The first `top` candidates, then how many more there are.
fn candidates(s: &mut String, d: &Decision, top: usize) {
    if d.candidates.is_empty() {
        s.push_str(&format!(
            "  candidates unknown (kernel report {})\n",
            d.kernel_report
        ));
        return;
    }
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
            victim_mark(c)
        ));
    }
    if d.candidates.len() > top {
        s.push_str(&format!("    … and {} more\n", d.candidates.len() - top));
    }
}

fn victim_mark(c: &Candidate) -> &'static str {
    if c.victim { "  ← victim" } else { "" }
}

/// What the kill freed: shown only when something was killed.
fn freed(s: &mut String, d: &Decision) {
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
}

fn reclaim(s: &mut String, d: &Decision) {
    let Some(r) = &d.reclaim else {
        return;
    };
    s.push_str(&format!(
        "  reclaim    {} reclaim passes in {} since tracing began ({} reclaimed nothing), {} reclaimed in {:.1} ms\n",
        r.passes,
        r.memcg.as_deref().unwrap_or("?"),
        r.empty_passes,
        human_bytes(r.reclaimed_bytes),
        r.time_ms
    ));
}

fn why(s: &mut String, d: &Decision) {
    if d.explanation.is_empty() {
        return;
    }
    s.push_str("  why\n");
    for line in &d.explanation {
        s.push_str(&format!("    • {line}\n"));
    }
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
        s.push_str(&candidate_row(c));
    }
    s.pop();
    s
}

fn candidate_row(c: &Candidate) -> String {
    format!(
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
        victim_mark(c)
    )
}

/// An OOM-disabled memcg's stall: its waiting tasks and why they wait.
pub fn stall_card(record: &StallRecord) -> String {
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
    text
}

/// A memory charge that failed outside (or before) an OOM kill.
pub fn charge_failure_card(record: &ChargeFailureRecord) -> String {
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
    text
}
