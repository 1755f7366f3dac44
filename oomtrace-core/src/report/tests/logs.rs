//! Whole logs as they come: damaged, without a report, several hosts
//! merged, journal JSON and export.

use super::*;
use crate::report::{ReportError, strip_prefix};

#[test]
fn damaged_lines_cost_only_themselves() {
    // A NUL block (a crash mid-write) and bytes that are not UTF-8 in the
    // middle of a real report: the NUL line is skipped, the rest parses.
    let text = raw("6.18-a-single-hog-v1.log");
    let clean = parse_log(text.as_bytes()).unwrap();
    let mut damaged = Vec::new();
    damaged.extend_from_slice(b"\0\0\0\0\0\0\0\0\n");
    damaged.extend_from_slice(text.as_bytes());
    damaged.extend_from_slice(b"garbage \xff\xfe\n\0\0\0\n");
    let items = parse_log(&damaged).unwrap();
    let (a, b) = (only_report(&clean), only_report(&items));
    assert_eq!(b.tasks, a.tasks);
    assert_eq!(
        b.kill.as_ref().map(|k| k.pid),
        a.kill.as_ref().map(|k| k.pid)
    );
    assert_eq!(b.lines.len(), a.lines.len());
    assert_eq!(b.lines[0].line_no, a.lines[0].line_no + 1);
    assert!(b.complete);

    // Nothing but binary: said as such, with the line.
    assert_eq!(
        parse_log(b"\n\0\x01\x02\n\0\n"),
        Err(ReportError::NotText {
            line: 2,
            reason: "NUL byte"
        })
    );
    // Text without a report, with a NUL line in it: no report.
    assert_eq!(
        parse_log(b"line one\nline two\0\n"),
        Err(ReportError::NoOomReport)
    );
    // A lone lead byte inside a task row: the row is kept.
    let mut fixture = text.into_bytes();
    let row = fixture
        .windows(8)
        .position(|w| w == b"python3\n")
        .expect("a python3 row");
    fixture[row + 6] = 0xc3;
    let r = parse_log(&fixture).unwrap();
    let rows = &only_report(&r).tasks.as_ref().unwrap().rows;
    assert_eq!(rows.len(), a.tasks.as_ref().unwrap().rows.len());
    assert!(rows.iter().any(|row| row.name == "python\u{fffd}"));
}

#[test]
fn no_oom_content() {
    assert_eq!(parse_log(b""), Err(ReportError::NoOomReport));
    assert_eq!(parse_log(b"\n\n"), Err(ReportError::NoOomReport));
    let boot: String = raw("6.1.0-50-amd64-a-v2-single-hog.log")
        .lines()
        .take_while(|l| !l.contains("invoked oom-killer"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(boot.lines().count() > 100);
    assert_eq!(parse_log(boot.as_bytes()), Err(ReportError::NoOomReport));
}

/// `lines` as syslog lines of `host`.
fn on_host(host: &str, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("Nov 23 18:32:48 {host} kernel: {l}"))
        .collect()
}

#[test]
fn interleaved_hosts_are_parsed_apart() {
    let a = small_report(500, 3);
    let b = small_report(600, 4);
    let merged = interleave(&on_host("node-a", &a), &on_host("node-b.example", &b));
    let items = parse_log(merged.join("\n").as_bytes()).unwrap();
    let reps = reports(&items);
    assert_eq!(reps.len(), 2, "{items:#?}");
    for (r, (host, pid, rows)) in reps
        .iter()
        .zip([("node-a", 500, 3), ("node-b.example", 600, 4)])
    {
        assert!(r.complete && !r.interleaved);
        assert_eq!(r.host.as_deref(), Some(host));
        assert_eq!(r.kill.as_ref().unwrap().pid, pid);
        let t = r.tasks.as_ref().unwrap();
        assert_eq!(t.rows.len(), rows);
        assert!(
            t.rows
                .iter()
                .all(|row| row.pid >= pid && row.pid < pid + 10)
        );
    }
    // The same through journalctl -o short-monotonic.
    let mono = |host: &str, lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let (ts, msg) = l.split_once("] ").unwrap();
                format!("{ts}] {host} kernel: {msg}")
            })
            .collect()
    };
    let merged = interleave(&mono("a", &a), &mono("b", &b));
    let items = parse_log(merged.join("\n").as_bytes()).unwrap();
    let reps = reports(&items);
    assert_eq!(reps.len(), 2);
    assert!(reps.iter().all(|r| r.complete && !r.interleaved));
}

#[test]
fn journal_json_and_export_read_like_dmesg() {
    use crate::report::journal::{ExportReader, JournalEntry};
    use crate::report::log::{HostItem, LogParser};
    let name = "6.12.100+deb12-amd64-b-v2-hierarchy.log";
    let text = raw(name);
    let from_dmesg = parse(name);
    let mut json_parser = LogParser::new();
    let mut export = Vec::new();
    let mut json_items: Vec<HostItem> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let (ts, msg) = strip_prefix(l);
        let us = ts.map(|t| (t * 1e6).round() as u64);
        let mut o = serde_json::json!({
            "__CURSOR": format!("s={i}"),
            "_TRANSPORT": "kernel",
            "_HOSTNAME": "vm",
            "MESSAGE": msg,
        });
        if let Some(us) = us {
            o["_SOURCE_MONOTONIC_TIMESTAMP"] = us.to_string().into();
        }
        let e = JournalEntry::from_json(&o).unwrap();
        json_parser.push_entry(i + 1, &e, &mut json_items);
        export.extend(format!("__CURSOR=s={i}\n_TRANSPORT=kernel\n").bytes());
        if let Some(us) = us {
            export.extend(format!("_SOURCE_MONOTONIC_TIMESTAMP={us}\n").bytes());
        }
        // Every other message as a binary field.
        if i % 2 == 0 {
            export.extend(b"MESSAGE\n");
            export.extend((msg.len() as u64).to_le_bytes());
            export.extend(msg.bytes());
            export.push(b'\n');
        } else {
            export.extend(format!("MESSAGE={msg}\n").bytes());
        }
        export.push(b'\n');
        // Another program's entry is skipped.
        export.extend(b"_TRANSPORT=syslog\nMESSAGE=Killed process 1 (x)\n\n");
    }
    json_parser.finish(&mut json_items);
    let mut export_parser = LogParser::new();
    let mut export_items = Vec::new();
    let mut reader = ExportReader::new(&export[..], 1);
    while let Some((line, e)) = reader.next_entry().unwrap() {
        export_parser.push_entry(line, &e, &mut export_items);
    }
    export_parser.finish(&mut export_items);
    for items in [json_items, export_items] {
        let items: Vec<ReportItem> = items.into_iter().map(|i| i.item).collect();
        assert_eq!(items.len(), from_dmesg.len());
        let (a, b) = (only_report(&from_dmesg), only_report(&items));
        assert_eq!(b.tasks, a.tasks);
        assert_eq!(
            b.kill.as_ref().map(|k| k.pid),
            a.kill.as_ref().map(|k| k.pid)
        );
        assert_eq!(b.counters, a.counters);
        assert_eq!(b.constraint, a.constraint);
        assert_eq!(
            b.host.as_deref(),
            if b.host.is_some() { Some("vm") } else { None }
        );
        let ts = |r: &KernelReport| r.lines.iter().map(|l| l.timestamp).collect::<Vec<_>>();
        assert_eq!(ts(b), ts(a));
        assert!(b.complete);
    }
}
