//! The multi-line text records: the decision card as a person reads it at
//! 3 a.m. (what, whose limit, who, why), the full candidate table of
//! `oomtrace report`, and the stall and charge-failure cards.
use crate::{
    base::{
        text::{Escaped, escape},
        units::human_bytes,
    },
    model::{
        charge::ChargeFailureRecord,
        decision::{Candidate, Decision},
        pagefault::PagefaultOomRecord,
        risk::{OomWarning, OomWarningClear},
        stall::StallRecord,
    },
};

fn opt_bytes(value: Option<u64>) -> String {
    value.map_or("?".to_owned(), human_bytes)
}

/// Untrusted text (from a process, a cgroup, a log or a dump), inert on a
/// terminal; `?` when unknown.
fn opt_text(value: Option<&str>) -> Escaped<'_> {
    Escaped(value.unwrap_or("?"))
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
        "━━ OOM kill #{} at {} — {}\n",
        d.seq,
        Escaped(d.envelope.time.as_deref().unwrap_or("an unknown time")),
        Escaped(kind)
    ));
}

fn trigger(s: &mut String, d: &Decision) {
    let t = &d.trigger;
    s.push_str(&format!(
        "  trigger    {} (pid {}){}{}\n",
        opt_text(t.comm.as_deref()),
        t.pid.map_or("?".to_owned(), |p| p.to_string()),
        t.memcg
            .as_ref()
            .map_or(String::new(), |m| format!(" in {}", Escaped(m))),
        match (&t.gfp_flags, &t.gfp_mask, t.order) {
            (Some(flags), _, Some(order)) => {
                format!(", allocating {} order {order}", Escaped(flags))
            }
            (None, Some(mask), Some(order)) => {
                format!(", allocating gfp {} order {order}", Escaped(mask))
            }
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
        opt_text(m.path.as_deref()),
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
            let rss = v
                .rss_anon_bytes
                .unwrap_or(0)
                .saturating_add(v.rss_file_bytes.unwrap_or(0))
                .saturating_add(v.rss_shmem_bytes.unwrap_or(0));
            s.push_str(&format!(
                "  victim     {} (pid {}){} — {} points\n             rss {} (anon {}, file {}, shmem {}), swap {}, page tables {}, oom_score_adj {}\n",
                opt_text(v.comm.as_deref()),
                v.pid,
                v.memcg.as_ref().map_or(String::new(), |m| format!(" in {}", Escaped(m))),
                v.points.map_or("?".to_owned(), |p| p.to_string()),
                human_bytes(rss),
                opt_bytes(v.rss_anon_bytes),
                opt_bytes(v.rss_file_bytes),
                opt_bytes(v.rss_shmem_bytes),
                opt_bytes(v.swap_bytes),
                opt_bytes(v.pgtables_bytes),
                v.oom_score_adj.map_or("?".to_owned(), |a| a.to_string()),
            ));
            if let Some(args) = &v.cmdline {
                s.push_str(&format!("  command    {}\n", Escaped(&args.join(" "))));
            }
            runtime_heap(s, d);
        }
        None if d.kernel_report == "incomplete" => {
            s.push_str("  victim     unknown: the kernel's report is cut off\n")
        }
        None => s.push_str("  victim     none: nothing was killed\n"),
    }
}

/// The victim's runtime heap bound next to the limit (the why says more).
fn runtime_heap(s: &mut String, d: &Decision) {
    let Some(h) = &d.runtime_heap else { return };
    s.push_str(&format!(
        "  heap       {} {}: up to {}, limit {}{}\n",
        Escaped(&h.runtime),
        Escaped(&h.setting),
        human_bytes(h.heap_max_bytes),
        human_bytes(h.limit_bytes),
        if h.fits { "" } else { " — above the limit" },
    ));
}

fn container(s: &mut String, d: &Decision) {
    let Some(c) = &d.container else {
        return;
    };
    let mut parts = Vec::new();
    // Kubernetes names first, as kubectl shows them: namespace/pod/container.
    if let (Some(ns), Some(pod)) = (&c.namespace, &c.pod_name) {
        let mut names = format!("{ns}/{pod}");
        if let Some(container) = &c.container_name {
            names = format!("{names}/{container}");
        }
        parts.push(names);
    } else if let Some(owner) = c.owner_name() {
        // Else as the runtime's users know it: Compose's, `docker ps`'s.
        parts.push(owner);
    }
    parts.push(c.runtime.to_owned());
    // The short id: its first 12 characters (never a byte slice, which a
    // multi-byte character would make panic).
    parts.extend(c.id.as_deref().map(|id| id.chars().take(12).collect()));
    parts.extend(c.pod_uid.as_ref().map(|p| format!("pod {p}")));
    parts.extend(c.qos_class.map(|q| format!("QoS {q}")));
    parts.extend(c.unit.clone());
    parts.extend(c.name.clone().filter(|_| c.owner_name().is_none()));
    parts.extend(c.image.as_ref().map(|i| format!("image {i}")));
    parts.extend(
        c.memory_limit_bytes
            .map(|b| format!("{} limit {}", c.runtime, human_bytes(b))),
    );
    s.push_str(&format!("  container  {}\n", Escaped(&parts.join(" "))));
}

fn killed(s: &mut String, d: &Decision) {
    if d.killed.len() <= 1 {
        return;
    }
    let pids: Vec<String> = d.killed.iter().map(|p| p.to_string()).collect();
    s.push_str(&format!(
        "  killed     {}{}\n",
        pids.join(", "),
        d.oom_group.as_ref().map_or(String::new(), |g| format!(
            " (memory.oom.group of {})",
            Escaped(g)
        ))
    ));
}

/// The first `top` candidates, then how many more there are.
fn candidates(s: &mut String, d: &Decision, top: usize) {
    if d.candidates.is_empty() {
        s.push_str(&format!(
            "  candidates unknown (kernel report {})\n",
            Escaped(&d.kernel_report)
        ));
        return;
    }
    s.push_str(&format!(
        "  candidates {} (from {}):\n",
        d.candidates.len(),
        Escaped(&d.candidates_source.replace('_', " "))
    ));
    for c in d.candidates.iter().take(top) {
        s.push_str(&format!(
            "    {:>8} {:<16} {:>10}  rss {:>9}  adj {:>5}{}\n",
            c.pid,
            escape(&c.comm),
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
        freed.push(format!("oom_reaper {}", Escaped(reaper)));
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
        opt_text(r.memcg.as_deref()),
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
        s.push_str(&format!("    • {}\n", Escaped(line)));
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
        escape(&c.comm),
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
        Escaped(&record.memcg),
        record.state,
        record.stalled_ms / 1000.0
    );
    for task in &record.tasks {
        text.push_str(&format!(
            "\n  task       {} (pid {}) state {} in {}",
            Escaped(&task.comm),
            task.pid,
            opt_text(task.state.as_deref()),
            opt_text(task.wchan.as_deref())
        ));
    }
    for line in &record.explanation {
        text.push_str(&format!("\n    • {}", Escaped(line)));
    }
    text
}

/// A memcg heading for an OOM kill: how fast, how soon, and who grows.
pub fn warning_card(record: &OomWarning) -> String {
    let mut text = format!(
        "━━ OOM warning for {} — limit in about {:.0} s\n  memory     {} used of {}, {} unreclaimable (anon, shmem, kernel), growing {}/s",
        Escaped(&record.memcg),
        record.eta_seconds,
        human_bytes(record.usage_bytes),
        human_bytes(record.limit_bytes),
        human_bytes(record.unreclaimable_bytes),
        human_bytes(record.growth_bytes_per_s),
    );
    for grower in &record.top_growers {
        text.push_str(&format!(
            "\n  grower     {:>7} {:<16} rss {:>9}  {:>9}/s{}",
            grower.pid,
            Escaped(&grower.comm),
            human_bytes(grower.rss_bytes),
            human_bytes(grower.growth_bytes_per_s.max(0) as u64),
            if grower.would_be_killed {
                "  ← the killer's choice now"
            } else {
                ""
            },
        ));
    }
    for line in &record.explanation {
        text.push_str(&format!("\n    • {}", Escaped(line)));
    }
    text
}

/// The risk of a warning passed.
pub fn warning_clear_text(record: &OomWarningClear) -> String {
    format!(
        "OOM warning for {} cleared after {:.0} s: {}",
        Escaped(&record.memcg),
        record.warned_ms as f64 / 1000.0,
        record.reason.replace('_', " "),
    )
}

/// A page fault whose `VM_FAULT_OOM` reached the #PF handler.
pub fn pagefault_card(record: &PagefaultOomRecord) -> String {
    let pending = match (record.memcg_oom_in_progress, &record.in_oom_memcg) {
        (Some(true), memcg) => format!("memcg OOM of {} in progress", opt_text(memcg.as_deref())),
        (Some(false), _) => "no memcg OOM in progress".to_owned(),
        (None, _) => "memcg OOM state unknown".to_owned(),
    };
    let mut text = format!(
        "━━ Page fault OOM in {} — {} ({})\n  task       {} (pid {})",
        opt_text(record.memcg.as_deref()),
        Escaped(&record.kernel_action.replace('_', " ")),
        pending,
        Escaped(&record.task.comm),
        record.task.pid,
    );
    for line in &record.explanation {
        text.push_str(&format!("\n    • {}", Escaped(line)));
    }
    text
}

/// A memory charge that failed outside (or before) an OOM kill.
pub fn charge_failure_card(record: &ChargeFailureRecord) -> String {
    let mut text = format!(
        "━━ Charge failed in {} — {} ({})\n  task       {} (pid {}), {} order {}",
        opt_text(record.memcg.as_deref()),
        Escaped(&record.reason.replace('_', " ")),
        Escaped(&record.result.replace('_', " ")),
        Escaped(&record.task.comm),
        record.task.pid,
        Escaped(record.gfp_flags.as_deref().unwrap_or("gfp ?")),
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
        text.push_str(&format!("\n    • {}", Escaped(line)));
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{path::PathBuf, time::Instant};

    use super::*;
    use crate::{
        base::text::is_unsafe,
        model::decision::{Builder, OfflineEnv, Sources},
        report::parse_log,
    };

    /// The decision `oomtrace report` rebuilds from a kernel-report fixture.
    pub(crate) fn fixture_decision(name: &str) -> Decision {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/kernel-reports/"
        ))
        .join(name);
        let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
        let start = Instant::now();
        for item in parse_log(&std::fs::read(&path).unwrap()).unwrap() {
            builder.on_report(start, item);
        }
        let mut env = OfflineEnv::new(4096);
        let mut out = builder.poll(start + std::time::Duration::from_secs(3600), &mut env);
        assert!(!out.is_empty(), "{name}: no decision");
        out.remove(0)
    }

    const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\nvictim init (pid 1)";

    /// Every line of `text` is free of control characters, and no line of it
    /// is the forged one.
    fn assert_inert(text: &str) {
        for line in text.lines() {
            assert!(!line.chars().any(is_unsafe), "{line:?}");
            assert!(!line.trim_start().starts_with("victim init"), "{text}");
        }
    }

    #[test]
    fn hostile_text_from_input_is_inert_on_the_card_and_exact_in_json() {
        let mut d = fixture_decision("6.1.0-50-amd64-d-v2-oom-group.log");
        d.envelope.time = Some(EVIL.to_owned());
        d.constraint = Some(EVIL.to_owned().into());
        d.trigger.comm = Some(EVIL.to_owned());
        d.trigger.memcg = Some(EVIL.to_owned());
        d.trigger.gfp_flags = Some(EVIL.to_owned());
        let victim = d.victim.as_mut().expect("a victim");
        victim.comm = Some(EVIL.to_owned());
        victim.memcg = Some(EVIL.to_owned());
        victim.cmdline = Some(vec!["java".to_owned(), EVIL.to_owned()]);
        for c in &mut d.candidates {
            c.comm = EVIL.to_owned();
        }
        if let Some(m) = d.oom_memcg.as_mut() {
            m.path = Some(EVIL.to_owned());
        }
        d.oom_group = Some(EVIL.to_owned());
        d.killed = vec![1, 2];
        d.freed.reaper = Some(EVIL.to_owned().into());
        d.reclaim = Some(crate::model::decision::ReclaimSummary {
            memcg: Some(EVIL.to_owned()),
            passes: 1,
            empty_passes: 1,
            reclaimed_bytes: 0,
            time_ms: 0.0,
        });
        d.container = crate::cgroup::container::attribute(&format!("/system.slice/{EVIL}.service"));
        if let Some(c) = d.container.as_mut() {
            c.namespace = Some(EVIL.to_owned());
            c.pod_name = Some(EVIL.to_owned());
            c.container_name = Some(EVIL.to_owned());
        }
        assert!(d.container.is_some());
        d.explanation.push(EVIL.to_owned());
        let card = render_card(&d, 100);
        assert!(card.contains("evil\\x1b]0;pwned\\x07\\x0avictim init (pid 1)"));
        assert_inert(&card);
        assert_inert(&render_candidate_table(&d));

        let json = serde_json::to_string(&d).unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["victim"]["comm"], EVIL);
        assert_eq!(back["victim"]["cmdline"][1], EVIL);
        assert_eq!(back["candidates"][0]["comm"], EVIL);
        assert_eq!(
            back["explanation"].as_array().unwrap().last().unwrap(),
            EVIL
        );
    }

    #[test]
    fn hostile_text_is_inert_on_stall_and_charge_cards() {
        use crate::{
            base::Envelope,
            model::{
                charge::{ChargeFailureRecord, FailedTask},
                stall::{StallRecord, StalledTask},
            },
        };
        let stall = StallRecord {
            envelope: Envelope::now("stall"),
            memcg: EVIL.to_owned(),
            state: "stalled",
            stalled_ms: 1.0,
            oom_kill_disable: true,
            limit_bytes: None,
            usage_bytes: None,
            tasks: vec![StalledTask {
                pid: 7,
                comm: EVIL.to_owned(),
                wchan: Some(EVIL.to_owned()),
                state: Some(EVIL.to_owned()),
                tgid: None,
                waited_ms: None,
                waits: None,
            }],
            explanation: vec![EVIL.to_owned()],
            source: "poll",
            oom_id: None,
        };
        assert_inert(&stall_card(&stall));
        let charge = ChargeFailureRecord {
            envelope: Envelope::now("charge_failure"),
            memcg: Some(EVIL.to_owned()),
            task: FailedTask {
                pid: 7,
                tgid: 7,
                comm: EVIL.to_owned(),
            },
            gfp_mask: None,
            gfp_flags: Some(EVIL.to_owned()),
            order: Some(0),
            nr_pages: None,
            reason: "no_victim",
            result: "enomem",
            limit_bytes: Some(1),
            usage_bytes: Some(1),
            suppressed: 0,
            failures_total: 1,
            explanation: vec![EVIL.to_owned()],
            oom_id: None,
        };
        assert_inert(&charge_failure_card(&charge));
    }

    #[test]
    fn hostile_text_is_inert_on_the_warning_cards() {
        use crate::model::risk::{OomWarning, OomWarningClear};
        assert_inert(&warning_card(&OomWarning::fixture(EVIL, EVIL)));
        assert_inert(&warning_clear_text(&OomWarningClear::fixture(EVIL)));
    }

    #[test]
    fn hostile_text_is_inert_on_the_pagefault_card() {
        use crate::{
            base::Envelope,
            model::pagefault::{PagefaultOomRecord, PagefaultTask, WAITS_FOR_MEMCG_OOM},
        };
        let record = PagefaultOomRecord {
            envelope: Envelope::now("pagefault_oom"),
            task: PagefaultTask {
                pid: 7,
                tgid: 7,
                comm: EVIL.to_owned(),
            },
            memcg: Some(EVIL.to_owned()),
            memcg_oom_in_progress: Some(true),
            in_oom_memcg: Some(EVIL.to_owned()),
            fatal_signal_pending: Some(false),
            kernel_action: WAITS_FOR_MEMCG_OOM,
            explanation: vec![EVIL.to_owned()],
            oom_id: None,
            boot_ns: 0,
        };
        assert_inert(&pagefault_card(&record));
    }

    #[test]
    fn multi_byte_container_ids_do_not_panic_the_card() {
        let mut d = fixture_decision("6.1.0-50-amd64-a-v2-single-hog.log");
        let mut c = crate::cgroup::container::attribute("/system.slice/a.service").expect("a unit");
        c.id = Some("aéééééééééééé".to_owned());
        d.container = Some(c);
        assert!(render_card(&d, 5).contains("aééééééééééé "));
    }

    #[test]
    fn kubernetes_names_show_as_namespace_pod_container() {
        let mut d = fixture_decision("6.1.0-50-amd64-a-v2-single-hog.log");
        let id = "8d083e51abd2e1096bc106e308144c7efe71ae92f3c12e6be5bc7bc78f5cc751";
        let path = format!("/kubepods/burstable/pod42968967-a234-4826-a0d4-f90eaf4ef52e/{id}");
        let mut c = crate::cgroup::container::attribute(&path).expect("a pod");
        c.namespace = Some("shop".to_owned());
        c.pod_name = Some("cart-1".to_owned());
        c.container_name = Some("app".to_owned());
        d.container = Some(c.clone());
        let card = render_card(&d, 5);
        assert!(
            card.contains("  container  shop/cart-1/app cri 8d083e51abd2 pod 42968967-"),
            "{card}"
        );
        // A sandbox has no container name: namespace/pod.
        c.container_name = None;
        d.container = Some(c);
        assert!(render_card(&d, 5).contains("  container  shop/cart-1 cri "));
    }

    #[test]
    fn docker_names_show_as_compose_or_docker_ps_shows_them() {
        let mut d = fixture_decision("6.1.0-50-amd64-a-v2-single-hog.log");
        let path = "/docker/8d083e51abd2e1096bc106e308144c7efe71ae92f3c12e6be5bc7bc78f5cc751";
        let mut c = crate::cgroup::container::attribute(path).expect("a container");
        c.name = Some("ledger-sync".to_owned());
        c.image = Some("busybox:1.36".to_owned());
        c.memory_limit_bytes = Some(48 << 20);
        d.container = Some(c.clone());
        let card = render_card(&d, 5);
        assert!(
            card.contains(
                "  container  ledger-sync docker 8d083e51abd2 image busybox:1.36 docker limit 48.0 MiB"
            ),
            "{card}"
        );
        c.compose = Some(crate::cgroup::container::Compose {
            project: "ledger".to_owned(),
            service: "sync".to_owned(),
            number: Some(1),
        });
        d.container = Some(c);
        assert!(render_card(&d, 5).contains("  container  compose ledger/sync docker "));
    }

    /// u64::MAX rss and adj 1000 from the events: the card shows saturated
    /// sizes, "? pts" for the unscorable victim, and never that a small task
    /// "scored higher".
    #[test]
    fn extreme_numbers_on_the_card_are_saturated_and_not_misexplained() {
        let d = crate::model::decision::tests::extreme_decision();
        let card = render_card(&d, 10);
        assert!(!card.contains("scored higher"), "{card}");
        assert!(card.contains("rss 16384.0 PiB (anon 16384.0 PiB"), "{card}");
        assert!(card.contains("? pts"), "{card}");
        assert!(!card.contains("never  rss"), "{card}");
        assert!(card.contains("no kernel prints"), "{card}");
        render_candidate_table(&d);
    }
}
