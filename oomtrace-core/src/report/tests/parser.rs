//! The parser's own rules: reports cut by a new header or their bounds,
//! noise between their lines, two reports mixed, numbers no kernel prints.

use super::*;
use crate::report::{
    MAX_COUNTER_KB, MAX_PLAUSIBLE_KB, MAX_REPORT_BYTES, MAX_REPORT_LINES, ReportParser, SourceLine,
};

#[test]
fn small_report_fields() {
    let items = parse_log(small_report(500, 2).join("\n").as_bytes()).unwrap();
    let r = only_report(&items);
    assert!(r.complete);
    let t = r.trigger.as_ref().unwrap();
    assert_eq!((t.pid, t.comm.as_str()), (500, "hog"));
    assert_eq!(r.kernel_release.as_deref(), Some("6.12.1"));
    assert_eq!(r.memcg_stats, [("anon".to_string(), 1048576)]);
    let rows = &r.tasks.as_ref().unwrap().rows;
    assert_eq!((rows[0].pid, rows[0].tgid), (500, 500));
    assert_eq!((rows[1].pid, rows[1].tgid), (501, 10501));
    let row = r.victim_row().unwrap();
    assert_eq!(row.name, "my prog");
    assert_eq!(
        (
            row.uid,
            row.oom_score_adj,
            row.swapents,
            row.rss_shmem_pages
        ),
        (1000, -500, Some(2), Some(4))
    );
    let c = r.constraint.as_ref().unwrap();
    assert_eq!(c.cpuset.as_deref(), Some("/"));
    assert_eq!(c.task_memcg.as_deref(), Some("/t/a,b"));
    assert_eq!(c.task.as_deref(), Some("my prog"));
    assert_eq!((c.pid, c.uid), (Some(500), Some(1000)));
    let k = r.kill.as_ref().unwrap();
    assert_eq!(
        (k.comm.as_str(), k.uid, k.oom_score_adj, k.pgtables_kb),
        ("my prog", Some(1000), Some(-500), Some(64))
    );
    // Serializes (other modules dump it as JSON).
    let json = serde_json::to_string(&items).unwrap();
    assert!(json.contains("\"rss_anon_pages\":256"));
}

#[test]
fn new_header_cuts_open_report() {
    let mut lines = small_report(1, 1);
    lines.truncate(4);
    lines.extend(small_report(2, 1));
    let items = parse_log(lines.join("\n").as_bytes()).unwrap();
    let reps = reports(&items);
    assert_eq!(reps.len(), 2);
    assert!(!reps[0].complete && reps[0].kill.is_none());
    assert_eq!(reps[0].lines.len(), 4);
    assert!(reps[1].complete);
    assert_eq!(reps[1].kill.as_ref().unwrap().pid, 2);
    assert_eq!(reps[1].lines[0].line_no, 5);
}

#[test]
fn garbage_interleaved() {
    let mut lines = vec![
        "random text".to_string(),
        "Jul 07 02:43:54 host docker[977]: Killed process 5 (fake) total-vm:1kB".to_string(),
        "[   9.0] eth0: link up".to_string(),
        "Killed".to_string(),
        String::new(),
        "[ 9.5] \u{1b}[31m ansi ✓ Ω".to_string(),
    ];
    let mut report = small_report(900, 3);
    report.insert(2, "[  10.0000025] usb 1-1: new device".to_string());
    report.insert(9, "[  10.0000075] audit: type=1400 something".to_string()); // inside the table
    lines.extend(report);
    lines.push("Jul 07 02:43:54 host sshd[1]: Killed process 6 (also fake)".to_string());
    lines.push("[  11.0] oom_reaper: reaped process 900 (my prog), now anon-rss:0kB, file-rss:0kB, shmem-rss:12kB".to_string());
    lines.push("[  11.1] more noise: Kill".to_string());
    let items = parse_log(lines.join("\n").as_bytes()).unwrap();
    assert_eq!(items.len(), 2, "{items:#?}");
    let ReportItem::Report(r) = &items[0] else {
        panic!()
    };
    assert!(r.complete && r.header.is_some());
    assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
    assert_eq!(r.kill.as_ref().unwrap().pid, 900);
    assert!(r.lines.iter().any(|l| l.text.starts_with("audit:")));
    assert_eq!(r.memcg_stats.len(), 1);
    let ReportItem::Reaped(rp) = &items[1] else {
        panic!()
    };
    assert_eq!(
        (
            rp.pid,
            rp.comm.as_str(),
            rp.anon_rss_kb,
            rp.file_rss_kb,
            rp.shmem_rss_kb
        ),
        (900, "my prog", 0, 0, 12)
    );
    assert_eq!(rp.source.line_no, lines.len() - 1);
}

#[test]
fn runaway_report_is_capped() {
    let mut p = ReportParser::new();
    let line = |n: usize, text: &str| SourceLine {
        line_no: n,
        timestamp: None,
        text: text.to_string(),
    };
    assert!(
        p.push(line(1, "x invoked oom-killer: gfp_mask=0x0, order=0"))
            .is_empty()
    );
    let mut n = 2;
    let out = loop {
        let out = p.push(line(n, "noise"));
        if !out.is_empty() {
            break out;
        }
        assert!(
            p.open_bytes() <= MAX_REPORT_BYTES,
            "estimate within the bound"
        );
        n += 1;
    };
    let r = only_report(&out);
    assert!(!r.complete);
    assert_eq!(r.lines.len(), n - 1, "every line before the cut is kept");
    assert!(r.lines.len() <= MAX_REPORT_LINES);
    assert_eq!(p.cut_by_bound, 1, "the cut is counted");
    // The line that did not fit opened a report of its own (headerless
    // noise does not), so nothing is open and the count stays.
    assert!(!p.has_open_report());
    assert!(p.finish().is_empty());
    assert_eq!(p.cut_by_bound, 1);
}

#[test]
fn interleaved_without_hosts_is_never_complete() {
    // Two OOMs of one memcg on two CPUs: the same table twice, mixed.
    let a = small_report(500, 3);
    let mut b = small_report(500, 3);
    b[0] = b[0].replace("hog invoked", "other invoked");
    let items = parse_log(interleave(&a, &b).join("\n").as_bytes()).unwrap();
    let reps = reports(&items);
    assert!(reps.iter().any(|r| r.interleaved));
    for r in &reps {
        assert!(!(r.complete && r.interleaved));
        if let Some(t) = &r.tasks {
            let mut pids: Vec<u32> = t.rows.iter().map(|row| row.pid).collect();
            pids.sort();
            pids.dedup();
            assert_eq!(pids.len(), t.rows.len(), "no pid listed twice");
        }
    }
    assert!(!reps.iter().any(|r| r.complete && r.tasks.is_some()));

    // Each signal alone: a second column header, a repeated counter, a
    // second summary, a kill line for another pid than the summary's.
    let base = small_report(700, 2);
    let columns = base.iter().position(|l| l.contains("[  pid  ]")).unwrap();
    let counter = base
        .iter()
        .position(|l| l.contains("memory: usage"))
        .unwrap();
    let summary = base.iter().position(|l| l.contains("oom-kill:")).unwrap();
    let kill = base.len() - 1;
    for (what, edit) in [
        ("columns", (columns, base[columns].clone())),
        ("counter", (counter, base[counter].clone())),
        ("summary", (summary, base[summary].clone())),
        (
            "kill",
            (kill, base[kill].replace("process 700", "process 999")),
        ),
    ] {
        let mut lines = base.clone();
        if what == "kill" {
            lines[kill] = edit.1;
        } else {
            lines.insert(edit.0 + 1, edit.1);
        }
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(r.interleaved && !r.complete, "{what}");
        assert!(r.cut_off(), "{what}");
    }
    // The untouched report is neither.
    let r = parse_log(base.join("\n").as_bytes()).unwrap();
    let r = only_report(&r);
    assert!(r.complete && !r.interleaved && !r.cut_off());
}

#[test]
fn implausible_numbers_are_left_out_and_flagged() {
    let base = small_report(900, 3);
    let row = base.iter().position(|l| l.contains("[    901]")).unwrap();
    let counter = base
        .iter()
        .position(|l| l.contains("memory: usage"))
        .unwrap();
    let huge = u64::MAX.to_string();
    for (what, index, forged) in [
        (
            "rss",
            row,
            base[row].replace("      300 ", &format!(" {huge} ")),
        ),
        ("pgtables", row, base[row].replace("65536", &huge)),
        (
            "limit",
            counter,
            base[counter].replace("limit 1024kB", &format!("limit {huge}kB")),
        ),
    ] {
        assert_ne!(forged, base[index], "{what}");
        let mut lines = base.clone();
        lines[index] = forged;
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let r = only_report(&items);
        assert!(r.implausible && !r.complete, "{what}");
        assert_eq!(r.lines.len(), lines.len(), "{what}: the line is kept");
        if what == "limit" {
            assert!(r.counters.is_empty());
        } else {
            assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 2, "{what}");
        }
    }
    // A real unlimited v1 memcg prints PAGE_COUNTER_MAX pages in kB: fine.
    let mut lines = base.clone();
    lines[counter] = base[counter].replace("limit 1024kB", "limit 9007199254740988kB");
    let items = parse_log(lines.join("\n").as_bytes()).unwrap();
    let r = only_report(&items);
    assert!(!r.implausible && r.complete);
    assert_eq!(r.counters[0].limit_kb, 9007199254740988);
    // Kill-line sizes beyond any machine are dropped, not wrapped.
    let kill = base.len() - 1;
    let mut lines = base.clone();
    lines[kill] = base[kill].replace("anon-rss:1024kB", &format!("anon-rss:{huge}kB"));
    let items = parse_log(lines.join("\n").as_bytes()).unwrap();
    let k = only_report(&items).kill.clone().unwrap();
    assert_eq!((k.anon_rss_kb, k.file_rss_kb), (None, Some(160)));
    for (kb, kept) in [(MAX_PLAUSIBLE_KB, true), (MAX_PLAUSIBLE_KB + 1, false)] {
        let mut lines = base.clone();
        lines[kill] = base[kill].replace("anon-rss:1024kB", &format!("anon-rss:{kb}kB"));
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        let k = only_report(&items).kill.clone().unwrap();
        assert_eq!(k.anon_rss_kb, kept.then_some(kb));
    }
    // Counters: just under 2^53 kB is a real unlimited limit; past it, not.
    for (kb, plausible) in [(MAX_COUNTER_KB, true), (MAX_COUNTER_KB + 1, false)] {
        let mut lines = base.clone();
        lines[counter] = base[counter].replace("limit 1024kB", &format!("limit {kb}kB"));
        let items = parse_log(lines.join("\n").as_bytes()).unwrap();
        assert_eq!(only_report(&items).implausible, !plausible, "{kb}");
        assert!(kb.checked_mul(1024).is_some());
    }
}
