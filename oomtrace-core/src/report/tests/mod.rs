//! The parser on the kernel's own reports (`tests/fixtures/kernel-reports`,
//! listed in its INDEX.md) and on small inline inputs, by part of the report.

use super::{KernelReport, KillLine, ReportItem, parse_log};

mod fixtures;
mod header;
mod kill;
mod logs;
mod memcg;
mod meminfo;
mod oom_group;
mod parser;
mod source;
mod tasks;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/kernel-reports"
);

fn raw(name: &str) -> String {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> Vec<ReportItem> {
    parse_log(raw(name).as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn reports(items: &[ReportItem]) -> Vec<&KernelReport> {
    items
        .iter()
        .filter_map(|i| match i {
            ReportItem::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn loose_kills(items: &[ReportItem]) -> Vec<&KillLine> {
    items
        .iter()
        .filter_map(|i| match i {
            ReportItem::Kill(k) => Some(k),
            _ => None,
        })
        .collect()
}

/// Every kill line the parser produced, in input order.
fn all_kills(items: &[ReportItem]) -> Vec<&KillLine> {
    items
        .iter()
        .filter_map(|i| match i {
            ReportItem::Report(r) => r.kill.as_ref(),
            ReportItem::Kill(k) => Some(k),
            _ => None,
        })
        .collect()
}

fn only_report(items: &[ReportItem]) -> &KernelReport {
    let r = reports(items);
    assert_eq!(r.len(), 1, "expected exactly one report");
    r[0]
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn word_after<'a>(text: &'a str, key: &str) -> &'a str {
    let i = text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
    text[i + key.len()..]
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap()
}

/// A small 6.x report in dmesg form, `rows` task rows long.
fn small_report(pid: u32, rows: usize) -> Vec<String> {
    let mut v = vec![
        format!("[  10.000001] hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
        format!("[  10.000002] CPU: 0 UID: 0 PID: {pid} Comm: hog Tainted: G        W  O      6.12.1 #1 PREEMPT"),
        "[  10.000003] memory: usage 1024kB, limit 1024kB, failcnt 9".to_string(),
        "[  10.000004] Memory cgroup stats for /t:".to_string(),
        "[  10.000005] anon 1048576".to_string(),
        "[  10.000006] Tasks state (memory values in pages):".to_string(),
        "[  10.000007] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name".to_string(),
    ];
    for i in 0..rows {
        let p = pid + i as u32;
        // A thread whose group leader is gone is listed with pid != tgid.
        let tgid = if i == 0 { p } else { p + 10000 };
        v.push(format!("[  10.000008] [{p:7}]  1000 {tgid:5}     1000      300      256       40         4    65536        2          -500 my prog"));
    }
    v.push(format!("[  10.000009] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,3,oom_memcg=/t,task_memcg=/t/a,b,task=my prog,pid={pid},uid=1000"));
    v.push(format!("[  10.000010] Memory cgroup out of memory: Killed process {pid} (my prog) total-vm:4000kB, anon-rss:1024kB, file-rss:160kB, shmem-rss:16kB, UID:1000 pgtables:64kB oom_score_adj:-500"));
    v
}

fn interleave(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        out.extend(a.get(i).cloned());
        out.extend(b.get(i).cloned());
    }
    out
}
