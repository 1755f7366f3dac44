//! Task tables: their columns by kernel, and a table cut off.

use super::{fixtures::check_fixture, *};
use crate::report::{ReportParser, SourceLine, strip_prefix};

#[test]
fn columns_by_kernel() {
    let cols = |name: &str| {
        let items = parse(name);
        reports(&items)[0].tasks.as_ref().unwrap().columns.join(" ")
    };
    assert_eq!(
        cols("5.10.0-32-amd64-a-v2-single-hog.log"),
        "pid uid tgid total_vm rss pgtables_bytes swapents oom_score_adj name"
    );
    assert_eq!(
        cols("6.12.100+deb12-amd64-a-v2-single-hog.log"),
        "pid uid tgid total_vm rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
    );
    let items = parse("5.10.0-32-amd64-a-v2-single-hog.log");
    let row = only_report(&items).victim_row().unwrap().clone();
    assert_eq!(row.rss_anon_pages, None);
    assert!(row.pgtables_bytes.is_some() && row.swapents.is_some());
    assert_eq!((row.nr_ptes, row.cpu, row.oom_adj), (None, None, None));
}

#[test]
fn adj_minus_1000_listed() {
    let items = check_fixture("6.12.100+deb12-amd64-e-v2-adj-minus1000.log");
    let r = only_report(&items);
    assert_eq!(r.header.as_ref().unwrap().oom_score_adj, Some(-1000));
    let rows = &r.tasks.as_ref().unwrap().rows;
    assert!(rows.iter().any(|row| row.oom_score_adj == -1000));
    assert_eq!(r.victim_row().unwrap().oom_score_adj, 0);
}

#[test]
fn truncated_mid_table_is_incomplete() {
    let lines = small_report(700, 5);
    let cut = &lines[..lines.len() - 4]; // three rows in, no summary, no kill
    let mut p = ReportParser::new();
    for (i, l) in cut.iter().enumerate() {
        let (ts, msg) = strip_prefix(l);
        let out = p.push(SourceLine {
            line_no: i + 1,
            timestamp: ts,
            text: msg.to_string(),
        });
        assert!(out.is_empty(), "nothing completes before the kill line");
    }
    assert!(p.has_open_report());
    let out = p.finish();
    assert!(!p.has_open_report());
    let r = only_report(&out);
    assert!(!r.complete);
    assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
    assert_eq!((r.kill.as_ref(), r.constraint.as_ref()), (None, None));
    assert_eq!(r.lines.len(), cut.len());
    assert!(p.finish().is_empty());
    // Same through parse_log, with a half row at the end.
    let mut text = cut.join("\n");
    text.push_str("\n[  10.000008] [    703]  1000   703     10");
    let items = parse_log(text.as_bytes()).unwrap();
    let r = only_report(&items);
    assert!(!r.complete);
    assert_eq!(r.tasks.as_ref().unwrap().rows.len(), 3);
    assert_eq!(r.lines.len(), cut.len() + 1);
}
