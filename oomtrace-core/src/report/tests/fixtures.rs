//! Every fixture: what holds for all of them, their counts and victims, and
//! the reports read in full.

use super::*;
use crate::report::{SourceLine, TaskRow};

/// Independent scan: (pid, comm) of every "Killed process" line, by plain
/// string splitting.
fn scan_killed(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| l.split_once("Killed process "))
        .map(|(_, rest)| {
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let open = rest.find('(').unwrap();
            let close = rest[open..].find(')').unwrap() + open;
            (pid.parse().unwrap(), rest[open + 1..close].to_string())
        })
        .collect()
}

/// The value a row holds for a column, rendered like the kernel prints it.
fn row_value(row: &TaskRow, col: &str) -> String {
    let o = |v: Option<u64>| v.expect(col).to_string();
    match col {
        "pid" => row.pid.to_string(),
        "uid" => row.uid.to_string(),
        "tgid" => row.tgid.to_string(),
        "total_vm" => row.total_vm_pages.to_string(),
        "rss" => row.rss_pages.to_string(),
        "rss_anon" => o(row.rss_anon_pages),
        "rss_file" => o(row.rss_file_pages),
        "rss_shmem" => o(row.rss_shmem_pages),
        "pgtables_bytes" => o(row.pgtables_bytes),
        "nr_ptes" => o(row.nr_ptes),
        "nr_pmds" => o(row.nr_pmds),
        "swapents" => o(row.swapents),
        "oom_score_adj" => row.oom_score_adj.to_string(),
        "oom_adj" => row.oom_adj.expect(col).to_string(),
        "cpu" => row.cpu.expect(col).to_string(),
        "name" => row.name.clone(),
        other => panic!("unexpected column {other}"),
    }
}

/// Checks that hold for every fixture; returns the items.
pub(super) fn check_fixture(name: &str) -> Vec<ReportItem> {
    let text = raw(name);
    let items = parse(name);
    let reps = reports(&items);

    // One report per header line (plus a headerless one only if the input
    // starts mid-report).
    let headers = count(&text, " invoked oom-killer: ");
    assert_eq!(
        reps.iter().filter(|r| r.header.is_some()).count(),
        headers,
        "{name}: headers"
    );

    // Every kill line, in order, matches an independent scan of the text.
    let kills: Vec<(u32, String)> = all_kills(&items)
        .iter()
        .map(|k| (k.pid, k.comm.clone()))
        .collect();
    assert_eq!(kills, scan_killed(&text), "{name}: kill lines");

    // Each kill's source line is the line it says it is.
    let lines: Vec<&str> = text.lines().collect();
    for k in all_kills(&items) {
        assert!(lines[k.source.line_no - 1].ends_with(&k.source.text));
    }

    for r in &reps {
        assert!(!r.lines.is_empty());
        assert!(!r.interleaved, "{name}: a real report is not interleaved");
        assert!(r.lines.windows(2).all(|w| w[0].line_no < w[1].line_no));
        // A report ends with its kill or the no-killable line, else it is incomplete.
        assert_eq!(
            r.complete,
            r.kill.is_some() || r.no_killable,
            "{name}: complete flag"
        );
        if let Some(k) = &r.kill {
            assert_eq!(r.lines.last(), Some(&k.source));
        }
        if let Some(h) = &r.header {
            let hl = &r.lines[0].text;
            assert!(hl.starts_with(&format!("{} invoked oom-killer", h.comm)));
            let mask = word_after(hl, "gfp_mask=0x");
            let mask = mask.split('(').next().unwrap();
            assert_eq!(format!("{:x}", h.gfp_mask), mask);
            assert_eq!(h.order.to_string(), word_after(hl, "order="));
        }
        if let (Some(t), Some(h)) = (&r.trigger, &r.header) {
            assert_eq!(t.comm, h.comm, "{name}: trigger comm");
        }

        // Counters: every "X: usage" line of the report, parsed back.
        let counter_lines: Vec<&SourceLine> = r
            .lines
            .iter()
            .filter(|l| l.text.contains(": usage ") && l.text.contains(", failcnt "))
            .collect();
        assert_eq!(counter_lines.len(), r.counters.len(), "{name}: counters");
        for (l, c) in counter_lines.iter().zip(&r.counters) {
            assert!(l.text.starts_with(&format!("{}: ", c.name)));
            assert_eq!(word_after(&l.text, "usage "), format!("{}kB", c.usage_kb));
            assert_eq!(word_after(&l.text, "limit "), format!("{}kB", c.limit_kb));
            assert_eq!(word_after(&l.text, "failcnt "), c.failcnt.to_string());
        }

        // Multi-line memcg stats: one pair per line between the stats
        // header and the task table.
        if let Some(path) = &r.memcg_stats_for {
            let start = r
                .lines
                .iter()
                .position(|l| l.text == format!("Memory cgroup stats for {path}:"));
            if let Some(start) = start {
                let block: Vec<&SourceLine> = r.lines[start + 1..]
                    .iter()
                    .take_while(|l| !l.text.starts_with("Tasks state"))
                    .collect();
                assert_eq!(block.len(), r.memcg_stats.len(), "{name}: stats");
                for (l, (k, v)) in block.iter().zip(&r.memcg_stats) {
                    assert_eq!(l.text, format!("{k} {v}"));
                }
            }
        }

        // Task table: rows round-trip to their lines, by column name.
        if let Some(t) = &r.tasks {
            let row_lines: Vec<&SourceLine> = r
                .lines
                .iter()
                .filter(|l| {
                    l.text.starts_with('[')
                        && l.text[1..]
                            .trim_start()
                            .starts_with(|c: char| c.is_ascii_digit())
                })
                .collect();
            assert_eq!(row_lines.len(), t.rows.len(), "{name}: row count");
            assert!(!t.rows.is_empty());
            for (l, row) in row_lines.iter().zip(&t.rows) {
                let printed: Vec<&str> = l
                    .text
                    .split(|c: char| c == '[' || c == ']' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .collect();
                let ours: Vec<String> = t.columns.iter().map(|c| row_value(row, c)).collect();
                assert_eq!(printed, ours, "{name}: row {}", l.text);
            }
        }

        // The victim's row matches its Killed line.
        if let (Some(k), Some(row)) = (&r.kill, r.victim_row()) {
            assert_eq!(k.comm, row.name);
            assert_eq!(
                k.total_vm_kb,
                Some(row.total_vm_pages * 4),
                "{name}: total-vm"
            );
            let rss_kb =
                k.anon_rss_kb.unwrap() + k.file_rss_kb.unwrap() + k.shmem_rss_kb.unwrap_or(0);
            if name == "6.1.0-50-amd64-e-v1-adj-minus1000.log" {
                // The victim's rss grew by 66 pages between the table and the
                // kill line (both numbers as printed in the fixture).
                assert_eq!((rss_kb, row.rss_pages * 4), (21172, 20908));
            } else {
                assert_eq!(rss_kb, row.rss_pages * 4, "{name}: rss");
            }
            if let Some(anon) = row.rss_anon_pages {
                assert_eq!(k.anon_rss_kb, Some(anon * 4));
                assert_eq!(k.file_rss_kb, Some(row.rss_file_pages.unwrap() * 4));
                assert_eq!(k.shmem_rss_kb, Some(row.rss_shmem_pages.unwrap() * 4));
            }
            if let Some(pgt) = row.pgtables_bytes {
                assert_eq!(k.pgtables_kb, Some(pgt / 1024), "{name}: pgtables");
            }
            if let Some(adj) = k.oom_score_adj {
                assert_eq!(adj, row.oom_score_adj);
            }
            if let Some(uid) = k.uid {
                assert_eq!(uid, row.uid);
            }
        }

        // The summary names the victim (5.x+; the selected task is the victim there).
        if let (Some(c), Some(k)) = (&r.constraint, &r.kill) {
            assert_eq!(c.pid, Some(k.pid), "{name}: constraint pid");
            assert_eq!(c.task.as_deref(), Some(k.comm.as_str()));
            assert_eq!(c.uid, k.uid);
            let line = r
                .lines
                .iter()
                .find(|l| l.text.starts_with("oom-kill:"))
                .unwrap();
            assert_eq!(c.constraint, word_after(&line.text, "constraint="));
            if line.text.contains(",global_oom,") {
                assert_eq!(c.oom_memcg, None);
            } else {
                assert_eq!(
                    c.oom_memcg.as_deref(),
                    Some(word_after(&line.text, "oom_memcg="))
                );
            }
            assert_eq!(
                c.task_memcg.as_deref(),
                Some(word_after(&line.text, "task_memcg="))
            );
            assert_eq!(k.memcg_oom, c.constraint == "CONSTRAINT_MEMCG");
        }
    }
    items
}

/// Per fixture, from INDEX.md (checked against the files with grep):
/// (file, OOM invocations, "Killed process" lines, first victims).
type Expected = (&'static str, usize, usize, &'static [(u32, &'static str)]);
const DEBIAN: &[Expected] = &[
    (
        "5.10.0-32-amd64-a-v1-single-hog.log",
        1,
        1,
        &[(83, "hog64")],
    ),
    (
        "5.10.0-32-amd64-a-v2-single-hog.log",
        1,
        1,
        &[(81, "hog64")],
    ),
    (
        "5.10.0-32-amd64-b-v1-hierarchy.log",
        1,
        1,
        &[(84, "hierhog")],
    ),
    (
        "5.10.0-32-amd64-b-v2-hierarchy.log",
        1,
        1,
        &[(82, "hierhog")],
    ),
    (
        "5.10.0-32-amd64-c-v1-many-procs-adj500-vs-grower.log",
        2,
        2,
        &[(238, "adj500"), (240, "grower")],
    ),
    (
        "5.10.0-32-amd64-c-v1-many-procs.log",
        10,
        65,
        &[(85, "adj500"), (178, "many-kid"), (180, "many-kid")],
    ),
    (
        "5.10.0-32-amd64-c-v2-many-procs.log",
        10,
        65,
        &[(81, "adj500"), (176, "many-kid"), (178, "many-kid")],
    ),
    (
        "5.10.0-32-amd64-e-v2-adj-minus1000.log",
        1,
        1,
        &[(82, "normal")],
    ),
    ("5.10.0-32-amd64-e-v2-only-unkillable.log", 272, 0, &[]),
    ("5.10.0-32-amd64-f-global.log", 1, 1, &[(81, "globalhog")]),
    ("6.1.0-50-amd64-a-v1-single-hog.log", 1, 1, &[(95, "hog64")]),
    ("6.1.0-50-amd64-a-v2-single-hog.log", 1, 1, &[(94, "hog64")]),
    (
        "6.1.0-50-amd64-b-v2-hierarchy.log",
        1,
        1,
        &[(95, "hierhog")],
    ),
    (
        "6.1.0-50-amd64-c-v1-many-procs-adj500-vs-grower.log",
        2,
        2,
        &[(251, "adj500"), (253, "grower")],
    ),
    (
        "6.1.0-50-amd64-c-v1-many-procs.log",
        10,
        65,
        &[(96, "adj500"), (191, "many-kid"), (192, "many-kid")],
    ),
    (
        "6.1.0-50-amd64-c-v2-many-procs-adj500-vs-grower.log",
        2,
        2,
        &[(249, "adj500"), (251, "grower")],
    ),
    (
        "6.1.0-50-amd64-c-v2-many-procs.log",
        10,
        66,
        &[(94, "adj500"), (181, "many-kid"), (189, "many-kid")],
    ),
    (
        "6.1.0-50-amd64-d-v2-oom-group.log",
        1,
        4,
        &[(96, "grpC"), (93, "grpA"), (94, "grpB"), (96, "grpC")],
    ),
    (
        "6.1.0-50-amd64-e-v1-adj-minus1000.log",
        1,
        1,
        &[(96, "normal")],
    ),
    ("6.1.0-50-amd64-e-v1-only-unkillable.log", 2, 0, &[]),
    (
        "6.1.0-50-amd64-e-v2-adj-minus1000.log",
        1,
        1,
        &[(93, "normal")],
    ),
    ("6.1.0-50-amd64-e-v2-only-unkillable.log", 2, 0, &[]),
    (
        "6.1.0-50-amd64-g-v1-oom-control-disabled.log",
        1,
        1,
        &[(96, "stuckhog")],
    ),
    (
        "6.12.100+deb12-amd64-a-v2-single-hog.log",
        1,
        1,
        &[(141, "hog64")],
    ),
    (
        "6.12.100+deb12-amd64-b-v2-hierarchy.log",
        1,
        1,
        &[(147, "hierhog")],
    ),
    (
        "6.12.100+deb12-amd64-c-v2-many-procs-adj500-vs-grower.log",
        2,
        2,
        &[(297, "adj500"), (299, "grower")],
    ),
    (
        "6.12.100+deb12-amd64-c-v2-many-procs.log",
        10,
        66,
        &[(140, "adj500"), (227, "many-kid"), (190, "many-kid")],
    ),
    (
        "6.12.100+deb12-amd64-d-v2-oom-group.log",
        1,
        4,
        &[(148, "grpC"), (145, "grpA"), (146, "grpB"), (148, "grpC")],
    ),
    (
        "6.12.100+deb12-amd64-e-v2-adj-minus1000.log",
        1,
        1,
        &[(145, "normal")],
    ),
    ("6.12.100+deb12-amd64-e-v2-only-unkillable.log", 2, 0, &[]),
    (
        "6.12.100+deb12-amd64-f-global.log",
        1,
        1,
        &[(141, "globalhog")],
    ),
    ("6.18-a-single-hog-v1.log", 1, 1, &[(12621, "python3")]),
    ("6.18-b-parent-limit-v1.log", 1, 1, &[(12668, "python3")]),
    ("6.18-g-oom-disabled-v1.log", 1, 1, &[(12729, "python3")]),
];

#[test]
fn every_fixture_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log") && !n.starts_with("seed-"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = DEBIAN.iter().map(|d| d.0.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn fixture_counts_and_victims() {
    for &(name, invocations, kill_lines, victims) in DEBIAN {
        let text = raw(name);
        assert_eq!(count(&text, "invoked oom-killer"), invocations, "{name}");
        assert_eq!(count(&text, "Killed process"), kill_lines, "{name}");

        let items = check_fixture(name);
        let reps = reports(&items);
        assert_eq!(reps.len(), invocations, "{name}: reports");
        assert!(reps.iter().all(|r| r.complete && r.header.is_some()));
        assert!(
            reps.iter()
                .all(|r| (r.tasks.is_some() && r.constraint.is_some()) || r.no_killable)
        );
        let kills = all_kills(&items);
        assert_eq!(kills.len(), kill_lines, "{name}: kills");
        assert_eq!(
            loose_kills(&items).len(),
            kill_lines - reps.iter().filter(|r| r.kill.is_some()).count()
        );
        for (k, (pid, comm)) in kills.iter().zip(victims.iter()) {
            assert_eq!((k.pid, k.comm.as_str()), (*pid, *comm), "{name}");
        }
        // Each kernel's CPU line names its release.
        let release = reps[0].kernel_release.as_deref().unwrap();
        assert!(
            name.starts_with(release) || release.starts_with(&name[..4]),
            "{name}: {release}"
        );
        assert!(reps.iter().all(|r| r.trigger.is_some()));
    }
}

#[test]
fn single_hog_6_18_v1() {
    let name = "6.18-a-single-hog-v1.log";
    let text = raw(name);
    let items = check_fixture(name);
    assert_eq!(items.len(), 1);
    let r = only_report(&items);
    let h = r.header.as_ref().unwrap();
    assert_eq!(h.comm, "python3");
    assert_eq!(h.gfp_mask, 0xcc0);
    assert_eq!(h.gfp_flags.as_deref(), Some("GFP_KERNEL"));
    assert_eq!((h.order, h.oom_score_adj, h.oom_adj), (0, Some(0), None));
    let t = r.trigger.as_ref().unwrap();
    assert_eq!(
        (t.cpu, t.uid, t.pid, t.comm.as_str()),
        (1, Some(0), 12621, "python3")
    );
    assert_eq!(r.kernel_release.as_deref(), Some("6.18.44-fc-v669"));
    let names: Vec<&str> = r.counters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["memory", "memory+swap", "kmem"]);
    let mem = r.counter("memory").unwrap();
    assert_eq!(
        (mem.usage_kb, mem.limit_kb, mem.failcnt),
        (65536, 65536, 3374)
    );
    assert_eq!(r.memcg_stats_for.as_deref(), Some("/fix-a"));
    let rss_line = text.lines().find(|l| l.ends_with("] rss 66703360"));
    assert!(rss_line.is_some());
    assert_eq!(r.memcg_stat("rss"), Some(66703360));
    assert_eq!(r.memcg_stat("total_unevictable"), Some(0));
    let c = r.constraint.as_ref().unwrap();
    assert_eq!(c.constraint, "CONSTRAINT_MEMCG");
    assert_eq!(c.cpuset.as_deref(), Some("/"));
    let k = r.kill.as_ref().unwrap();
    assert!(k.memcg_oom);
    assert_eq!((k.anon_rss_kb, k.pgtables_kb), (Some(65024), Some(192)));
    let row = r.victim_row().unwrap();
    assert_eq!(row.rss_pages, 16820);
    assert_eq!(row.pgtables_bytes, Some(196608));
    assert_eq!(r.global_mem, None);
    // Header and kill line carry the dmesg time stamps.
    assert_eq!(r.lines[0].timestamp, Some(1534.287964));
    assert_eq!(k.source.timestamp, Some(1534.288352));
    assert_eq!(r.lines[0].line_no, 1);
    assert_eq!(r.lines.len(), text.lines().count());
}

#[test]
fn seed_4_4_journal() {
    let name = "seed-4.4-ubuntu-java-256m.log";
    let text = raw(name);
    let items = check_fixture(name);
    let r = only_report(&items);
    assert!(r.complete);
    // The "callbacks suppressed" line precedes the report; "docker[977]: Killed" is not kernel.
    assert_eq!(r.lines[0].line_no, 2);
    assert_eq!(r.lines.last().unwrap().line_no, text.lines().count() - 1);
    assert!(r.lines.iter().all(|l| l.text != "Killed"));
    assert_eq!(count(&text, "docker[977]: Killed"), 1);
    assert!(r.lines.iter().all(|l| l.timestamp.is_none()));
    let h = r.header.as_ref().unwrap();
    assert_eq!(
        (h.comm.as_str(), h.gfp_mask, h.gfp_flags.as_deref()),
        ("java", 0x2400040, None)
    );
    let t = r.trigger.as_ref().unwrap();
    assert_eq!(
        (t.cpu, t.uid, t.pid, t.comm.as_str()),
        (0, None, 26686, "java")
    );
    assert_eq!(r.kernel_release.as_deref(), Some("4.4.0-28-generic"));
    // Task-in line, cut off by the journal inside the second path.
    let (task, oom) = r.task_in_line.as_ref().unwrap();
    let id = "0ead341e639c2f2bd27a38666aa0834c969e8c7e6d2fb21516a2c698adce8d5f";
    assert_eq!(task, &format!("/docker/{id}"));
    assert!(oom.starts_with("/docker/0ead341e") && id.starts_with(&oom["/docker/".len()..]));
    assert!(oom.len() < task.len());
    let mem = r.counter("memory").unwrap();
    assert_eq!(
        (mem.usage_kb, mem.limit_kb, mem.failcnt),
        (262144, 262144, 6868)
    );
    // One-line stats in KB, converted to bytes; the cut-off "mapped_file:16" is dropped.
    assert_eq!(r.memcg_stats_for.as_deref(), Some(task.as_str()));
    assert_eq!(
        r.memcg_stats,
        [
            ("cache".to_string(), 96 * 1024),
            ("rss".to_string(), 262048 * 1024),
            ("rss_huge".to_string(), 135168 * 1024),
        ]
    );
    let t = r.tasks.as_ref().unwrap();
    assert!(
        t.columns.contains(&"nr_ptes".to_string()) && t.columns.contains(&"nr_pmds".to_string())
    );
    assert_eq!(t.rows.len(), 3);
    let java = r.victim_row().unwrap();
    assert_eq!(
        (java.pid, java.rss_pages, java.nr_ptes, java.nr_pmds),
        (26675, 64577, Some(204), Some(7))
    );
    assert_eq!(java.pgtables_bytes, None);
    let s = r.selected.as_ref().unwrap();
    assert_eq!(
        (s.pid, s.comm.as_str(), s.score, s.sacrifice_child),
        (26675, "java", 988, true)
    );
    let k = r.kill.as_ref().unwrap();
    assert!(!k.memcg_oom);
    assert_eq!(
        (k.pid, k.anon_rss_kb, k.file_rss_kb, k.shmem_rss_kb),
        (26675, Some(258308), Some(0), None)
    );
    assert_eq!(k.anon_rss_kb, Some(java.rss_pages * 4));
}

#[test]
fn seed_2_6_32_excerpt() {
    let name = "seed-2.6.32-centos6-many-procs-excerpt.log";
    let text = raw(name);
    let items = check_fixture(name);
    let reps = reports(&items);
    assert_eq!(items.len(), 2);
    // First: the excerpt starts at the task table (no header) and ends with the kill.
    let r = reps[0];
    assert!(r.header.is_none() && r.complete);
    assert_eq!(r.lines.len(), count(&text, "") - 2);
    let t = r.tasks.as_ref().unwrap();
    assert!(t.elided_rows);
    assert_eq!(
        t.columns.join(" "),
        "pid uid tgid total_vm rss cpu oom_adj oom_score_adj name"
    );
    assert_eq!(
        t.rows.len(),
        text.lines()
            .filter(|l| l.starts_with('[') && !l.starts_with("[ pid"))
            .count()
    );
    let init = &t.rows[0];
    assert_eq!(
        (
            init.pid,
            init.name.as_str(),
            init.cpu,
            init.oom_adj,
            init.swapents
        ),
        (15947, "init", Some(5), Some(0), None)
    );
    assert!(t.rows.iter().any(|r| r.uid == 30000 && r.name == "node"));
    let s = r.selected.as_ref().unwrap();
    assert_eq!(
        (s.pid, s.comm.as_str(), s.score, s.sacrifice_child),
        (15947, "init", 1, true)
    );
    let k = r.kill.as_ref().unwrap();
    assert_eq!(
        (k.pid, k.comm.as_str(), k.uid),
        (16944, "mingetty", Some(0))
    );
    assert_eq!(
        (k.total_vm_kb, k.anon_rss_kb, k.file_rss_kb, k.pgtables_kb),
        (Some(4064), Some(4), Some(56), None)
    );
    assert!(!k.memcg_oom);
    // Second: a new header, cut off by the end of the excerpt.
    let r2 = reps[1];
    assert!(!r2.complete && r2.kill.is_none());
    let h = r2.header.as_ref().unwrap();
    assert_eq!(
        (
            h.comm.as_str(),
            h.gfp_mask,
            h.order,
            h.oom_adj,
            h.oom_score_adj
        ),
        ("node", 0xd0, 0, Some(0), Some(0))
    );
    assert_eq!(r2.lines.len(), 2);
}
