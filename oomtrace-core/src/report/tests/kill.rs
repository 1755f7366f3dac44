//! How reports end: kill lines of every kernel, storms, no killable
//! process, reports cut off before their end.

use super::{fixtures::check_fixture, *};
use crate::report::{
    SourceLine,
    kill::{parse_kill, parse_selected},
};

#[test]
fn kill_line_variants() {
    let k = |s: &str| {
        parse_kill(s).map(|f| {
            f.into_kill(SourceLine {
                line_no: 1,
                timestamp: None,
                text: s.to_string(),
            })
        })
    };
    let a = k("Out of memory (oom_kill_allocating_task): Killed process 42 (a (b)) total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB").unwrap();
    assert_eq!(
        (a.pid, a.comm.as_str(), a.memcg_oom, a.total_vm_kb),
        (42, "a (b)", false, Some(8))
    );
    // Cut off mid-field: the partial value is dropped, not guessed.
    let b =
        k("Memory cgroup out of memory: Killed process 7 (x) total-vm:100kB, anon-rss:5").unwrap();
    assert_eq!(
        (b.memcg_oom, b.total_vm_kb, b.anon_rss_kb),
        (true, Some(100), None)
    );
    assert!(k("Killed").is_none());
    assert!(k("Killed process (x)").is_none());
    // Selection lines.
    assert_eq!(
        parse_selected("Out of memory: Kill process 9 (x) score 5 or sacrifice child"),
        Some((9, "x".to_string(), 5, true))
    );
    assert_eq!(
        parse_selected("Out of memory: Kill process 9 (x) score 0"),
        Some((9, "x".to_string(), 0, false))
    );
    assert_eq!(parse_selected("we Kill process 9 (x) score 1"), None);
}

#[test]
fn many_procs_storm() {
    let name = "5.10.0-32-amd64-c-v2-many-procs.log";
    let text = raw(name);
    let items = check_fixture(name);
    let reps = reports(&items);
    assert_eq!(reps.len(), 10);
    assert!(reps.iter().all(|r| r.kill.is_some()));
    // The rest of the kill lines come without a report.
    assert_eq!(
        loose_kills(&items).len(),
        count(&text, "Killed process") - 10
    );
    // First victim: the adj500 process, whose row says so.
    let first = reps[0];
    let row = first.victim_row().unwrap();
    assert_eq!((row.name.as_str(), row.oom_score_adj), ("adj500", 500));
    assert_eq!(first.kill.as_ref().unwrap().oom_score_adj, Some(500));
    // Rows in the first table: one per "[  pid]" line between its header and summary.
    let start = text
        .lines()
        .position(|l| l.contains("invoked oom-killer"))
        .unwrap();
    let n_rows = text
        .lines()
        .skip(start)
        .take_while(|l| !l.contains("oom-kill:constraint"))
        .filter(|l| l.contains("] [ ") && !l.contains(" pid "))
        .count();
    assert_eq!(first.tasks.as_ref().unwrap().rows.len(), n_rows);
    assert!(n_rows > 80);
    // Order: items come out in input order.
    let mut last = 0;
    for it in &items {
        let line = match it {
            ReportItem::Report(r) => r.lines[0].line_no,
            ReportItem::Kill(k) => k.source.line_no,
            _ => unreachable!(),
        };
        assert!(line > last);
        last = line;
    }
}

#[test]
fn only_unkillable_ends_without_kill() {
    for name in [
        "5.10.0-32-amd64-e-v2-only-unkillable.log",
        "6.1.0-50-amd64-e-v1-only-unkillable.log",
        "6.1.0-50-amd64-e-v2-only-unkillable.log",
        "6.12.100+deb12-amd64-e-v2-only-unkillable.log",
    ] {
        let text = raw(name);
        let items = check_fixture(name);
        let reps = reports(&items);
        assert_eq!(reps.len(), items.len(), "{name}: only reports");
        assert_eq!(reps.len(), count(&text, "no killable processes"));
        for r in reps {
            assert!(r.no_killable && r.complete && r.kill.is_none() && r.constraint.is_none());
            assert!(
                r.lines
                    .last()
                    .unwrap()
                    .text
                    .starts_with("Out of memory and no killable")
            );
            let rows = &r.tasks.as_ref().unwrap().rows;
            assert!(rows.iter().all(|row| row.oom_score_adj == -1000));
            assert_eq!(r.header.as_ref().unwrap().oom_score_adj, Some(-1000));
        }
    }
}

#[test]
fn lines_outside_reports() {
    let text = "\
[ 0.5] Task in D state for too long
[ 1.0] Out of memory: Kill process 10 (p) score 900 or sacrifice child
[ 1.1] Killed process 11 (c) total-vm:4kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[ 2.0] Out of memory and no killable processes...
[ 3.0] Tasks in /g are going to be killed due to memory.oom.group set
[ 3.1] Memory cgroup out of memory: Killed process 12 (d) total-vm:4kB, anon-rss:0kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB oom_score_adj:0
";
    let items = parse_log(text.as_bytes()).unwrap();
    assert_eq!(items.len(), 4, "{items:#?}");
    // An old-kernel storm: selection + kill whose dump_header was rate-limited.
    let ReportItem::Report(r) = &items[0] else {
        panic!()
    };
    assert!(r.header.is_none() && r.tasks.is_none() && r.complete);
    // An unrelated "Task in ..." line before it did not open a report.
    assert_eq!((r.lines.len(), r.lines[0].line_no), (2, 2));
    assert_eq!(r.task_in_line, None);
    assert_eq!(
        (
            r.selected.as_ref().unwrap().pid,
            r.kill.as_ref().unwrap().pid
        ),
        (10, 11)
    );
    let ReportItem::Report(r) = &items[1] else {
        panic!()
    };
    assert!(r.no_killable && r.header.is_none() && r.lines.len() == 1);
    assert!(matches!(&items[2], ReportItem::OomGroup { memcg, .. } if memcg == "/g"));
    assert!(matches!(&items[3], ReportItem::Kill(k) if k.pid == 12 && k.memcg_oom));
}

#[test]
fn cut_off_is_not_no_killable() {
    let lines = small_report(800, 3);
    let summary = lines.iter().position(|l| l.contains("oom-kill:")).unwrap();
    // Cut in the table: no victim known, cut off.
    let items = parse_log(lines[..summary - 1].join("\n").as_bytes()).unwrap();
    let r = only_report(&items);
    assert!(r.cut_off() && !r.no_killable && !r.complete);
    assert_eq!(r.chosen_pid(), None);
    // Cut after the summary: the victim is named there.
    let items = parse_log(lines[..=summary].join("\n").as_bytes()).unwrap();
    let r = only_report(&items);
    assert!(r.cut_off());
    let stated: u32 = word_after(&lines[summary], ",pid=").parse().unwrap();
    assert_eq!(r.chosen_pid(), Some(stated));
    // The kernel's own "no killable processes" is not cut off.
    let items = check_fixture("6.1.0-50-amd64-e-v1-only-unkillable.log");
    assert!(
        reports(&items)
            .iter()
            .all(|r| r.no_killable && !r.cut_off())
    );
}
