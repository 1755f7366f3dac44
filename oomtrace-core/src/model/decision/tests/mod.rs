//! Decisions rebuilt from every kernel-report fixture, checked against the
//! reports themselves, and sentences of the explanation.
use std::{path::PathBuf, time::Instant};

use super::{
    Builder, Decision, Environment, OfflineEnv, OomMemcg, Sources, Trigger,
    assemble::row_input,
    builder::DEADLINE,
    explain::{ExplainInput, explain_memory},
};
use crate::{
    cgroup::{MemcgFiles, MemcgSnapshot},
    model::score::{BadnessModel, badness, expected_choice},
    report::{KernelReport, ReportItem, parse_log},
};

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/kernel-reports"
    ));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 30, "fixtures missing in {}", dir.display());
    logs
}

fn items(path: &PathBuf) -> Vec<ReportItem> {
    parse_log(&std::fs::read(path).unwrap()).unwrap()
}

/// Rebuilds decisions from a log the way `oomtrace report` does.
fn decisions(path: &PathBuf) -> Vec<Decision> {
    let sources = Sources::KERNEL_REPORT;
    let mut builder = Builder::new(sources, Vec::new());
    let start = Instant::now();
    for item in items(path) {
        builder.on_report(start, item);
    }
    let mut env = OfflineEnv::new(4096);
    builder.poll(start + DEADLINE, &mut env)
}

/// For every complete report of every kernel, the candidate our scoring
/// ranks first is the task the kernel killed: the kernel is the oracle.
#[test]
fn recomputed_ranking_picks_the_kernels_victim_in_every_fixture() {
    let mut checked = 0;
    for path in fixtures() {
        for item in items(&path) {
            let ReportItem::Report(report) = item else {
                continue;
            };
            let (Some(kill), Some(table), Some(release)) =
                (&report.kill, &report.tasks, &report.kernel_release)
            else {
                continue;
            };
            let Some(memory) = report.counter("memory") else {
                continue; // global OOM: totalpages needs the machine's RAM
            };
            let model = BadnessModel::for_release(release).unwrap();
            let totalpages = memory.limit_kb / 4;
            let points: Vec<Option<i64>> = table
                .rows
                .iter()
                .map(|row| badness(model, row_input(row, 4096), totalpages))
                .collect();
            let best = points.iter().flatten().max().copied();
            let killed_points = table
                .rows
                .iter()
                .zip(&points)
                .find(|(row, _)| row.pid == kill.pid || row.tgid == kill.pid)
                .and_then(|(_, p)| *p);
            // Ties at the top are possible: the table is printed after the
            // choice and rss counters are per-CPU approximations, so equal
            // rows need not have been equal when the killer compared them.
            assert_eq!(
                killed_points,
                best,
                "{}: kernel killed {} ({}) with {killed_points:?} points, the best is {best:?}",
                path.display(),
                kill.pid,
                kill.comm,
            );
            assert!(expected_choice(model, &points).is_some());
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} reports checked");
}

#[test]
fn decisions_from_logs_carry_the_reports_numbers() {
    for path in fixtures() {
        let raw_items = items(&path);
        let reports: Vec<&KernelReport> = raw_items
            .iter()
            .filter_map(|i| match i {
                ReportItem::Report(r) => Some(r),
                _ => None,
            })
            .collect();
        let built = decisions(&path);
        for report in reports.iter().filter(|r| r.kill.is_some()) {
            let kill = report.kill.as_ref().unwrap();
            let d = built
                .iter()
                .find(|d| d.victim.as_ref().is_some_and(|v| v.pid == kill.pid))
                .unwrap_or_else(|| panic!("{}: no decision for {}", path.display(), kill.pid));
            let v = d.victim.as_ref().unwrap();
            assert_eq!(v.comm.as_deref(), Some(kill.comm.as_str()));
            assert_eq!(v.rss_anon_bytes, kill.anon_rss_kb.map(|k| k * 1024));
            assert_eq!(v.rss_file_bytes, kill.file_rss_kb.map(|k| k * 1024));
            assert_eq!(
                d.candidates_source,
                if report.tasks.is_some() {
                    "kernel_report"
                } else {
                    "none"
                }
            );
            if let Some(table) = &report.tasks {
                assert_eq!(d.candidates.len(), table.rows.len());
            }
            if let (Some(memory), Some(constraint)) = (report.counter("memory"), &report.constraint)
            {
                let m = d.oom_memcg.as_ref().unwrap();
                assert_eq!(m.limit_bytes, Some(memory.limit_kb * 1024));
                assert_eq!(m.usage_bytes, Some(memory.usage_kb * 1024));
                assert_eq!(m.path, constraint.oom_memcg);
                assert_eq!(v.memcg, constraint.task_memcg);
                if let Some(swap) = report.counter("swap") {
                    assert_eq!(m.swap_usage_bytes, Some(swap.usage_kb * 1024));
                    assert_eq!(m.swap_limit_bytes, Some(swap.limit_kb * 1024));
                }
                if let Some(memsw) = report.counter("memory+swap") {
                    assert_eq!(m.memsw_limit_bytes, Some(memsw.limit_kb * 1024));
                    let swap = (memsw.usage_kb - memory.usage_kb) * 1024;
                    assert_eq!(m.swap_usage_bytes, Some(swap));
                }
                let anon = ["total_rss", "anon", "rss"]
                    .iter()
                    .find_map(|k| report.memcg_stat(k));
                if let Some(anon) = anon {
                    let stat = m.stat.as_ref().unwrap();
                    assert_eq!(stat.source, "kernel_report");
                    assert_eq!(stat.anon_bytes, Some(anon));
                }
            }
        }
    }
}

/// Without the report's memcg stats (a storm, a lost kmsg record), the
/// memcg's files read during the OOM say what its memory was made of.
#[test]
fn memcg_files_read_during_the_oom_stand_in_for_missing_stats() {
    struct SnapshotEnv(OfflineEnv);
    impl Environment for SnapshotEnv {
        fn memcg_path(&mut self, id: u64) -> Option<String> {
            self.0.memcg_path(id)
        }
        fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
            self.0.memcg_files(relative)
        }
        fn page_size(&self) -> u64 {
            4096
        }
        fn memcg_snapshot(&self, relative: &str) -> Option<(MemcgSnapshot, u64)> {
            (relative == "/oomtest").then(|| {
                let stat = [
                    ("anon", 1 << 20),
                    ("file", 3 << 20),
                    ("active_file", 1 << 20),
                ];
                let snapshot = MemcgSnapshot {
                    stat: stat.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
                    swap_usage_bytes: Some(0),
                    ..Default::default()
                };
                (snapshot, 5)
            })
        }
    }
    let path = fixtures()
        .into_iter()
        .find(|p| p.ends_with("6.1.0-50-amd64-a-v2-single-hog.log"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // Drop the "Memory cgroup stats" block: the lines from its header to
    // the task table.
    let mut skipping = false;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            if l.contains("Memory cgroup stats for") {
                skipping = true;
            } else if l.contains("Tasks state") {
                skipping = false;
            }
            !skipping
        })
        .collect();
    let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
    let start = Instant::now();
    for item in parse_log(kept.join("\n").as_bytes()).unwrap() {
        builder.on_report(start, item);
    }
    let built = builder.poll(start + DEADLINE, &mut SnapshotEnv(OfflineEnv::new(4096)));
    let m = built[0].oom_memcg.as_ref().unwrap();
    let stat = m.stat.as_ref().unwrap();
    assert_eq!(stat.source, "memcg_files");
    assert_eq!(
        (stat.anon_bytes, stat.file_bytes),
        (Some(1 << 20), Some(3 << 20))
    );
    assert_eq!(stat.inactive_file_bytes, None);
    // Swap still comes from the report's own line.
    assert_eq!(m.swap_limit_bytes, Some(0));
}

#[test]
fn hierarchy_fixture_names_the_parent() {
    for path in fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("hierarchy"))
    {
        let d = &decisions(&path)[0];
        let m = d.oom_memcg.as_ref().unwrap();
        let own = d.victim.as_ref().unwrap().memcg.clone().unwrap();
        let oom = m.path.clone().unwrap();
        assert!(own.starts_with(&format!("{oom}/")), "{}", path.display());
        assert!(
            d.explanation
                .iter()
                .any(|e| e.contains("ancestor's limit") && e.contains(&oom)),
            "{}: {:?}",
            path.display(),
            d.explanation
        );
    }
}

#[test]
fn oom_group_sweep_is_one_decision_killing_the_group() {
    for path in fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("oom-group"))
    {
        let raw = items(&path);
        let group_kills: Vec<u32> = raw
            .iter()
            .filter_map(|i| match i {
                ReportItem::Kill(k) => Some(k.pid),
                _ => None,
            })
            .collect();
        let built = decisions(&path);
        assert_eq!(built.len(), 1, "{}", path.display());
        let d = &built[0];
        assert!(d.oom_group.is_some());
        for pid in group_kills {
            assert!(
                d.killed.contains(&pid),
                "{}: {pid} not in {:?}",
                path.display(),
                d.killed
            );
        }
    }
}

#[test]
fn many_small_tasks_are_called_out() {
    let path = fixtures()
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .contains("6.1.0-50-amd64-c-v2-many-procs.log")
        })
        .unwrap();
    let raw = items(&path);
    let first_rows = raw
        .iter()
        .find_map(|i| match i {
            ReportItem::Report(r) => r.tasks.as_ref().map(|t| t.rows.len()),
            _ => None,
        })
        .unwrap();
    let d = &decisions(&path)[0];
    assert!(
        d.explanation
            .iter()
            .any(|e| e.starts_with(&format!("{first_rows} eligible tasks and none above"))),
        "{:?}",
        d.explanation
    );
}

#[test]
fn kernel_memory_share_is_explained() {
    let report = KernelReport {
        complete: true,
        memcg_stats: vec![
            ("anon".into(), 40 << 20),
            ("file".into(), 4 << 20),
            ("kernel".into(), 20 << 20),
        ],
        ..KernelReport::default()
    };
    let oom_memcg = OomMemcg {
        path: Some("/app".into()),
        limit_bytes: Some(64 << 20),
        usage_bytes: Some(64 << 20),
        source: "kernel_report".into(),
        usage_after_kill_bytes: None,
        swap_usage_bytes: None,
        swap_limit_bytes: None,
        memsw_limit_bytes: None,
        stat: None,
    };
    let trigger = Trigger {
        pid: None,
        comm: None,
        memcg: None,
        gfp_mask: None,
        gfp_flags: None,
        order: None,
    };
    let mut out = Vec::new();
    let x = ExplainInput {
        sources: Sources::KERNEL_REPORT,
        points_recomputed: None,
        constraint: Some("memcg"),
        oom_memcg: Some(&oom_memcg),
        victim_memcg: Some("/app"),
        trigger: &trigger,
        victim: None,
        candidates: &[],
        candidates_source: "none",
        snapshot: None,
        model: None,
        totalpages: None,
        page_size: 4096,
        report: Some(&report),
    };
    explain_memory(&mut out, &x, &report);
    assert!(
        out.iter()
            .any(|e| e.starts_with("Kernel memory") && e.contains("20.0 MiB (31% of usage)")),
        "{out:?}"
    );
}

#[test]
fn storms_without_reports_say_the_table_is_missing() {
    let storm = fixtures()
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .contains("5.10.0-32-amd64-c-v2-many-procs.log")
        })
        .unwrap();
    let raw = items(&storm);
    let kills = raw
        .iter()
        .filter(|i| matches!(i, ReportItem::Kill(_)))
        .count();
    let built = decisions(&storm);
    let missing: Vec<&Decision> = built
        .iter()
        .filter(|d| d.kernel_report == "missing")
        .collect();
    assert_eq!(missing.len(), kills);
    for d in missing {
        assert_eq!(d.candidates_source, "none");
        assert!(d.explanation.iter().any(|e| e.contains("rate-limited")));
    }
}

/// One task failing its charge three times with nothing to kill: the
/// killer's evaluations come first (ring buffer), the reports later
/// (kernel log); each report goes with its own evaluation, in order.
#[test]
fn repeated_no_victim_reports_pair_with_their_own_invocations() {
    use oomtrace_ebpf::{EventHeader, OomCandidateEvent, OomEndEvent, kind};

    use crate::events::Event;
    let log = no_killable_log();
    let reports: Vec<KernelReport> = parse_log(&log)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i {
            ReportItem::Report(r) if r.no_killable => Some(r),
            _ => None,
        })
        .collect();
    let first = reports.first().expect("a no-killable report");
    let trigger = first.trigger.as_ref().unwrap().pid;
    let mut builder = fentry_builder(false);
    let now = Instant::now();
    let header = |k: u32| EventHeader {
        kind: k,
        pid: trigger,
        tgid: trigger,
        ..Default::default()
    };
    for seq in 1..=3u64 {
        builder.on_event(
            now,
            Event::OomCandidate(OomCandidateEvent {
                header: header(kind::OOM_CANDIDATE),
                oom_seq: seq,
                pid: trigger,
                tgid: trigger,
                oom_score_adj: -1000,
                rss_anon_pages: seq as i64 * 100,
                flags: oomtrace_ebpf::candidate_flag::MEMORY,
                ..Default::default()
            }),
        );
        builder.on_event(
            now,
            Event::OomEnd(OomEndEvent {
                header: header(kind::OOM_END),
                oom_seq: seq,
                candidates: 1,
                ..Default::default()
            }),
        );
    }
    let decisions = three_reports_in_order(&mut builder, now, first);
    let anon: Vec<Option<u64>> = decisions
        .iter()
        .map(|d| d.candidates[0].rss_anon_bytes)
        .collect();
    assert_eq!(
        anon,
        [Some(100 * 4096), Some(200 * 4096), Some(300 * 4096)],
        "report n goes with evaluation n"
    );
}

#[test]
fn only_unkillable_reports_are_decisions_without_victim() {
    for path in fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("only-unkillable"))
    {
        let built = decisions(&path);
        assert!(!built.is_empty());
        for d in &built {
            assert!(d.victim.is_none());
            assert!(d.killed.is_empty());
            assert!(
                d.explanation
                    .iter()
                    .any(|e| e.contains("no killable process"))
            );
        }
    }
}

/// The tracepoint backend's view of a kill: the mark_victim event alone.
fn mark(pid: u32) -> crate::events::Event {
    // SAFETY: a plain-old-data ABI record; all zeroes is a valid value.
    let mut event: oomtrace_ebpf::MarkVictimEvent = unsafe { std::mem::zeroed() };
    event.pid = pid as i32;
    crate::events::Event::MarkVictim(event)
}

const TRACEPOINTS: Sources = Sources {
    backend: "tracepoint",
    victim_task_hook: false,
    exit_hook: false,
    oom_path_hooks: false,
    pagefault_hook: false,
};

/// The kill lines of a storm the kernel printed without reports.
fn storm_kills() -> Vec<ReportItem> {
    let storm = fixtures()
        .into_iter()
        .find(|p| p.ends_with("5.10.0-32-amd64-c-v2-many-procs.log"))
        .unwrap();
    let kills: Vec<ReportItem> = items(&storm)
        .into_iter()
        .filter(|i| matches!(i, ReportItem::Kill(_)))
        .collect();
    assert!(kills.len() >= 2, "the storm fixture has several kill lines");
    kills
}

fn kill_pid(item: &ReportItem) -> u32 {
    match item {
        ReportItem::Kill(kill) => kill.pid,
        _ => unreachable!("only kill lines"),
    }
}

/// In a storm the kernel log lags: a kill line read after its victim's
/// decision went out (at the deadline) completes nothing and opens nothing.
#[test]
fn a_kill_line_after_the_decision_is_not_a_second_decision() {
    let kill = storm_kills().remove(0);
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    builder.on_event(t0, mark(kill_pid(&kill)));
    let first = builder.poll(t0 + DEADLINE, &mut env);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kernel_report, "missing");
    builder.on_report(t0 + DEADLINE, kill);
    let later = builder.poll(t0 + DEADLINE * 3, &mut env);
    assert!(
        later.is_empty() && builder.flush(&mut env).is_empty(),
        "{later:?}"
    );
    assert_eq!(builder.late_pieces, 1);
}

/// A later kill that completes first still comes out after the earlier one.
#[test]
fn decisions_come_out_in_kill_order() {
    let kills = storm_kills();
    let (a, b) = (&kills[0], &kills[1]);
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    builder.on_event(t0, mark(kill_pid(a)));
    builder.on_event(t0, mark(kill_pid(b)));
    builder.on_report(t0, b.clone());
    let second = std::time::Duration::from_secs(1);
    assert!(
        builder.poll(t0 + second, &mut env).is_empty(),
        "b waits for a"
    );
    builder.on_report(t0 + second, a.clone());
    // a complete, both go out at once, before the deadline.
    let out = builder.poll(t0 + second, &mut env);
    let order: Vec<(u64, Option<u32>)> = out
        .iter()
        .map(|d| (d.seq, d.victim.as_ref().map(|v| v.pid)))
        .collect();
    assert_eq!(order, [(1, Some(kill_pid(a))), (2, Some(kill_pid(b)))]);
}

/// The loop sleeps until the builder's next deadline: the first piece's
/// deadline, never a time already past (a complete decision blocked behind
/// an earlier one), none when empty.
#[test]
fn the_next_deadline_is_the_earliest_decision_due() {
    let kills = storm_kills();
    let (a, b) = (&kills[0], &kills[1]);
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    assert_eq!(builder.next_deadline(), None, "nothing pending, no timer");
    builder.on_event(t0, mark(kill_pid(a)));
    assert!(builder.poll(t0, &mut env).is_empty());
    assert_eq!(builder.next_deadline(), Some(t0 + DEADLINE));
    let t1 = t0 + std::time::Duration::from_millis(500);
    builder.on_event(t1, mark(kill_pid(b)));
    builder.on_report(t1, b.clone());
    // b is complete, so due now, but waits for a: its due time is no deadline.
    assert!(builder.poll(t1, &mut env).is_empty());
    assert_eq!(builder.next_deadline(), Some(t0 + DEADLINE));
    let out = builder.poll(t0 + DEADLINE, &mut env);
    assert_eq!(out.len(), 2);
    assert_eq!(builder.next_deadline(), None);
}

/// Decisions in flight are bounded in bytes: past the budget the oldest go,
/// each counted, and the estimate stays within the budget.
#[test]
fn pending_decisions_are_bounded_in_bytes() {
    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    builder.on_event(t0, mark(1));
    let one = builder.heap_bytes();
    assert!(one > 0);
    builder.budget = 3 * one;
    for pid in 2..=5 {
        builder.on_event(t0, mark(pid));
    }
    assert!(builder.poll(t0, &mut env).is_empty());
    assert_eq!(builder.evicted_over_budget, 2);
    assert!(builder.heap_bytes() <= builder.budget);
    assert!(builder.evictions().contains(&("evicted:pending", 2)));
    // The newest survive and still come out.
    let pids: Vec<u32> = builder
        .flush(&mut env)
        .iter()
        .filter_map(|d| d.victim.as_ref().map(|v| v.pid))
        .collect();
    assert_eq!(pids, [3, 4, 5]);
}

/// A fixture's log with its lines transformed, rebuilt as `oomtrace report` does.
fn decisions_of_edited(name: &str, edit: impl Fn(Vec<&str>) -> Vec<String>) -> Vec<Decision> {
    let path = fixtures().into_iter().find(|p| p.ends_with(name)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(text.lines().collect()).join("\n") + "\n";
    let mut builder = Builder::new(Sources::KERNEL_REPORT, Vec::new());
    let start = Instant::now();
    for item in parse_log(edited.as_bytes()).unwrap() {
        builder.on_report(start, item);
    }
    let mut env = OfflineEnv::new(4096);
    builder.poll(start + DEADLINE, &mut env)
}

const HOG: &str = "6.1.0-50-amd64-a-v2-single-hog.log";

/// The lines of `lines` up to (not including) the first that contains `marker`.
fn until(lines: &[&str], marker: &str) -> Vec<String> {
    let end = lines.iter().position(|l| l.contains(marker)).unwrap();
    lines[..end].iter().map(|l| l.to_string()).collect()
}

/// A report cut off in its task table says nothing of killable processes:
/// the decision says it was cut off, never "no killable process".
#[test]
fn a_report_cut_off_in_its_task_table_is_not_no_killable() {
    let built = decisions_of_edited(HOG, |lines| until(&lines, "oom-kill:constraint"));
    assert_eq!(built.len(), 1, "{built:#?}");
    let d = &built[0];
    assert_eq!(d.kernel_report, "incomplete");
    assert!(d.victim.is_none() && !d.candidates.is_empty());
    assert!(
        !d.explanation.iter().any(|e| e.contains("no killable")),
        "{:#?}",
        d.explanation
    );
    assert!(
        d.explanation
            .iter()
            .any(|e| e.contains("cut off") && e.contains("incomplete")),
        "{:#?}",
        d.explanation
    );
}

/// Cut off after the summary line: the summary names the victim, and the
/// kill line read later joins the same decision instead of opening a second.
#[test]
fn a_report_cut_before_its_kill_line_names_the_summarys_victim() {
    let text = std::fs::read_to_string(fixtures().into_iter().find(|p| p.ends_with(HOG)).unwrap())
        .unwrap();
    let kill_line = text
        .lines()
        .find(|l| l.contains("Killed process"))
        .unwrap()
        .to_owned();
    let items_of = |t: &str| parse_log(t.as_bytes()).unwrap();
    let kill = items_of(&(kill_line.clone() + "\n"));
    let expected = kill_pid(&kill[0]);
    let cut: Vec<&str> = text
        .lines()
        .take_while(|l| !l.contains("Killed process"))
        .collect();
    let report = items_of(&(cut.join("\n") + "\n"));

    let mut builder = Builder::new(TRACEPOINTS, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    for item in report {
        builder.on_report(t0, item);
    }
    builder.on_event(t0, mark(expected));
    for item in kill {
        builder.on_report(t0, item);
    }
    let mut out = builder.poll(t0 + DEADLINE, &mut env);
    out.extend(builder.flush(&mut env));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].victim.as_ref().map(|v| v.pid), Some(expected));
    assert_eq!(out[0].killed, [expected]);
    assert!(!out[0].explanation.iter().any(|e| e.contains("no killable")));
}

/// A task row printed twice: two reports interleaved, said before anything else.
#[test]
fn an_interleaved_report_says_its_table_is_not_trustworthy() {
    let built = decisions_of_edited(HOG, |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains("Tasks state"))
            .unwrap()
            + 2;
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out.insert(row + 1, lines[row].to_owned());
        out
    });
    let d = built
        .iter()
        .find(|d| d.kernel_report == "incomplete")
        .unwrap();
    assert!(
        d.explanation
            .iter()
            .any(|e| e.contains("interleaved") && e.contains("not trustworthy")),
        "{:#?}",
        d.explanation
    );
    assert!(!d.explanation.iter().any(|e| e.contains("cut off")));
}

/// An rss no machine has: the report says so instead of ranking with it.
#[test]
fn an_implausible_report_says_values_were_left_out() {
    let built = decisions_of_edited(HOG, |lines| {
        let row = lines
            .iter()
            .position(|l| l.contains("Tasks state"))
            .unwrap()
            + 2;
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        // The rss column (after the pid bracket: uid, tgid, total_vm, rss) made absurd.
        let (head, tail) = lines[row].split_at(lines[row].rfind("] ").unwrap() + 2);
        let mut fields: Vec<String> = tail.split_whitespace().map(str::to_owned).collect();
        fields[3] = (1u64 << 62).to_string();
        out[row] = format!("{head}{}", fields.join(" "));
        out
    });
    let d = &built[0];
    assert_eq!(d.kernel_report, "incomplete");
    assert!(
        d.explanation
            .iter()
            .any(|e| e.contains("no kernel prints") && e.contains("left out")),
        "{:#?}",
        d.explanation
    );
}

/// An environment that knows only the kernel release (so points are recomputed).
fn comm(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..name.len()].copy_from_slice(name.as_bytes());
    out
}

/// The killer's evaluation (oom_badness inlined: points recomputed) of a
/// small task and of a victim with adj 1000 and an rss no machine has, the
/// victim's mark event claiming u64::MAX kB.
pub(crate) fn extreme_decision() -> Decision {
    use crate::events::Event;
    use oomtrace_ebpf::{candidate_flag, mark_victim_field as field};
    let mut builder = Builder::new(
        Sources {
            backend: "fentry",
            victim_task_hook: false,
            exit_hook: false,
            oom_path_hooks: true,
            pagefault_hook: false,
        },
        Vec::new(),
    );
    let t0 = Instant::now();
    for (index, (pid, name, pages, adj)) in
        [(100, "small", 1000i64, 0), (200, "huge", i64::MAX, 1000)]
            .into_iter()
            .enumerate()
    {
        // SAFETY: plain-old-data ABI records; all zeroes is a valid value.
        let mut c: oomtrace_ebpf::OomCandidateEvent = unsafe { std::mem::zeroed() };
        c.oom_seq = 1;
        c.pid = pid;
        c.tgid = pid;
        c.comm = comm(name);
        c.oom_score_adj = adj;
        c.rss_anon_pages = pages;
        c.rss_file_pages = pages;
        c.rss_shmem_pages = pages;
        c.swapents = pages;
        c.pgtables_bytes = pages;
        c.flags = candidate_flag::MEMORY;
        c.index = index as u32;
        builder.on_event(t0, Event::OomCandidate(c));
    }
    // SAFETY: as above.
    let mut choice: oomtrace_ebpf::OomChoiceEvent = unsafe { std::mem::zeroed() };
    choice.oom_seq = 1;
    choice.pid = 200;
    choice.points = i64::MAX;
    builder.on_event(t0, Event::OomChoice(choice));
    // SAFETY: as above.
    let mut mark: oomtrace_ebpf::MarkVictimEvent = unsafe { std::mem::zeroed() };
    mark.pid = 200;
    mark.comm = comm("huge");
    mark.anon_rss_kb = u64::MAX;
    mark.file_rss_kb = u64::MAX;
    mark.shmem_rss_kb = u64::MAX;
    mark.pgtables_kb = u64::MAX;
    mark.oom_score_adj = 1000;
    mark.present = field::COMM
        | field::ANON_RSS
        | field::FILE_RSS
        | field::SHMEM_RSS
        | field::PGTABLES
        | field::OOM_SCORE_ADJ;
    builder.on_event(t0, Event::MarkVictim(mark));
    // SAFETY: as above.
    let mut end: oomtrace_ebpf::OomEndEvent = unsafe { std::mem::zeroed() };
    end.oom_seq = 1;
    end.totalpages = 262_144;
    end.chosen = 1;
    end.chosen_pid = 200;
    builder.on_event(t0, Event::OomEnd(end));
    let mut release_env = OfflineEnv {
        kernel_release: Some("6.1.0-50-amd64".to_owned()),
        ..OfflineEnv::new(4096)
    };
    let mut out = builder.poll(t0 + DEADLINE, &mut release_env);
    out.extend(builder.flush(&mut release_env));
    assert_eq!(out.len(), 1, "{out:#?}");
    out.remove(0)
}

/// Impossible numbers from the events saturate instead of wrapping, and the
/// decision says which task's points were left out rather than claiming a
/// small task "scored higher".
#[test]
fn impossible_event_numbers_are_explained_not_wrapped() {
    let d = extreme_decision();
    let v = d.victim.as_ref().unwrap();
    assert_eq!(v.pid, 200);
    assert_eq!(v.rss_anon_bytes, Some(u64::MAX));
    assert_eq!(d.freed.rss_bytes, Some(u64::MAX));
    let huge = d.candidates.iter().find(|c| c.pid == 200).unwrap();
    assert_eq!(huge.rss_bytes, u64::MAX);
    assert_eq!(huge.points, None);
    let small = d.candidates.iter().find(|c| c.pid == 100).unwrap();
    assert!(small.points.is_some_and(|p| p > 0));
    let text = d.explanation.join("\n");
    assert!(!text.contains("scored higher"), "{text}");
    assert_eq!(
        d.explanation
            .iter()
            .filter(|e| e.contains("pid 200") && e.contains("no kernel prints"))
            .count(),
        1,
        "{text}"
    );
}

/// A global OOM's totalpages comes from the report's Mem-Info: every
/// candidate gets points and the recomputed ranking picks the kernel's
/// victim; the selected score, where printed, matches too.
#[test]
fn global_reports_score_with_their_own_totalpages() {
    let globals: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-global.log"))
        .collect();
    assert!(globals.len() >= 2, "{globals:?}");
    for path in globals {
        let reports: Vec<KernelReport> = items(&path)
            .into_iter()
            .filter_map(|i| match i {
                ReportItem::Report(r) => Some(r),
                _ => None,
            })
            .collect();
        let expected = reports
            .iter()
            .find_map(|r| Some((r.global_totalpages(4096)?, r.kill.as_ref()?.pid)))
            .unwrap_or_else(|| panic!("{}: no global report", path.display()));
        let d = decisions(&path)
            .into_iter()
            .find(|d| d.constraint.as_deref() == Some("global") && d.victim.is_some())
            .unwrap_or_else(|| panic!("{}: no global decision", path.display()));
        assert_eq!(d.totalpages, Some(expected.0), "{}", path.display());
        assert!(
            d.candidates
                .iter()
                .all(|c| c.points.is_some() || !c.eligible),
            "{}: {:?}",
            path.display(),
            d.candidates
        );
        let model = d.badness_model.unwrap();
        let points: Vec<Option<i64>> = d.candidates.iter().map(|c| c.points).collect();
        let top = expected_choice(model, &points).map(|i| d.candidates[i].pid);
        // Candidates are listed by points; ties keep the kernel's choice rule
        // on the table order, so compare the best points.
        let victim = d.candidates.iter().find(|c| c.pid == expected.1).unwrap();
        let best = points.iter().flatten().max().copied();
        assert_eq!(victim.points, best, "{}: top {top:?}", path.display());
        assert!(
            !d.explanation.iter().any(|e| e.contains("scored higher")),
            "{:#?}",
            d.explanation
        );
    }
}

/// A fault loop in an unkillable memcg (5.16+): each no-victim OOM leaks
/// one fault to the #PF handler right after the killer returns; each
/// decision carries its own fault, not an earlier or later one.
#[test]
fn each_no_victim_oom_joins_the_fault_it_leaked() {
    use oomtrace_ebpf::{EventHeader, OomEndEvent, kind};

    use crate::{events::Event, model::pagefault};
    let first = no_killable_report();
    let trigger = first.trigger.as_ref().unwrap().pid;
    let mut builder = fentry_builder(true);
    let now = Instant::now();
    let fault = |boot_ns: u64, pid: u32| pagefault::PagefaultJoin {
        time: format!("t{boot_ns}"),
        boot_ns,
        pid,
        memcg_oom_in_progress: Some(false),
        in_oom_memcg: None,
        kernel_action: pagefault::RETRIES_FAULT.to_owned(),
    };
    // A leak of another task, and one of this task before any OOM.
    builder.on_pagefault(fault(500, trigger + 1));
    builder.on_pagefault(fault(600, trigger));
    for seq in 1..=3u64 {
        builder.on_event(
            now,
            Event::OomEnd(OomEndEvent {
                header: EventHeader {
                    kind: kind::OOM_END,
                    pid: trigger,
                    tgid: trigger,
                    boot_ns: seq * 1000,
                    ..Default::default()
                },
                oom_seq: seq,
                ..Default::default()
            }),
        );
        builder.on_pagefault(fault(seq * 1000 + 1, trigger));
    }
    let decisions = three_reports_in_order(&mut builder, now, &first);
    let joined: Vec<Option<u64>> = decisions
        .iter()
        .map(|d| d.pagefault_oom.as_ref().map(|j| j.boot_ns))
        .collect();
    assert_eq!(joined, [Some(1001), Some(2001), Some(3001)]);
    assert!(decisions[0].explanation.iter().any(|l| l.contains("t1001")));
}

/// With the fault hook attached, a no-victim decision waits for the fault
/// its OOM leaks (it comes after the report, however late the ring is read)
/// and goes out without one only once its task went on to another OOM.
#[test]
fn a_no_victim_decision_waits_for_its_fault_or_its_tasks_next_oom() {
    use oomtrace_ebpf::{EventHeader, OomCandidateEvent, OomEndEvent, kind};

    use crate::{events::Event, model::pagefault};
    let report = no_killable_report();
    let trigger = report.trigger.as_ref().unwrap().pid;
    let mut builder = fentry_builder(true);
    let header = |kind, boot_ns| EventHeader {
        kind,
        pid: trigger,
        tgid: trigger,
        boot_ns,
        ..Default::default()
    };
    let end = |oom_seq: u64| {
        Event::OomEnd(OomEndEvent {
            header: header(kind::OOM_END, oom_seq * 1000),
            oom_seq,
            ..Default::default()
        })
    };
    let env = &mut OfflineEnv::new(4096);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    builder.on_event(at(0), end(1));
    builder.on_report(at(0), ReportItem::Report(report.clone()));
    assert!(
        builder.poll(at(500), env).is_empty(),
        "out before its fault"
    );
    builder.on_pagefault(pagefault::PagefaultJoin {
        time: "t1001".into(),
        boot_ns: 1001,
        pid: trigger,
        memcg_oom_in_progress: Some(false),
        in_oom_memcg: None,
        kernel_action: pagefault::RETRIES_FAULT.to_owned(),
    });
    // Complete with its fault: out at once, no grace.
    let first = builder.poll(at(510), env);
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].pagefault_oom.as_ref().map(|j| j.boot_ns),
        Some(1001)
    );

    // An OOM of a system call: no fault follows; its task's next OOM says so.
    builder.on_event(at(700), end(2));
    builder.on_report(at(700), ReportItem::Report(report.clone()));
    assert!(
        builder.poll(at(1200), env).is_empty(),
        "out before its fault"
    );
    builder.on_event(
        at(1200),
        Event::OomCandidate(OomCandidateEvent {
            header: header(kind::OOM_CANDIDATE, 3000),
            oom_seq: 3,
            ..Default::default()
        }),
    );
    let second = builder.poll(at(1210), env);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].pagefault_oom, None);
}

/// Live, a no-victim OOM seen by the hooks waits for its report as long as
/// the kernel log is read behind it, past the deadline (a storm's log can
/// lag seconds; sent alone, it would shift the pairing of the next ones),
/// and goes out without one once the log was read to its end after it.
#[test]
fn a_no_victim_oom_waits_for_the_log_to_be_read_not_for_a_deadline() {
    use oomtrace_ebpf::{EventHeader, OomEndEvent, kind};

    use crate::events::Event;
    let report = no_killable_report();
    let trigger = report.trigger.as_ref().unwrap().pid;
    let mut builder = fentry_builder(false);
    let end = |oom_seq: u64| {
        Event::OomEnd(OomEndEvent {
            header: EventHeader {
                kind: kind::OOM_END,
                pid: trigger,
                tgid: trigger,
                boot_ns: oom_seq * 1000,
                ..Default::default()
            },
            oom_seq,
            ..Default::default()
        })
    };
    let env = &mut OfflineEnv::new(4096);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    builder.on_log_read(at(0));
    builder.on_event(at(1), end(1));
    assert!(
        builder.poll(at(5000), env).is_empty(),
        "out without the log read"
    );
    builder.on_report(at(5000), ReportItem::Report(report.clone()));
    // Its deadline long past: out as soon as it is complete.
    let first = builder.poll(at(5000), env);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kernel_report, "complete");

    // Read to its end after the OOM, the log had no report for it.
    builder.on_event(at(6000), end(2));
    builder.on_log_read(at(6001));
    let second = builder.poll(at(6001), env);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].kernel_report, "complete");
}

/// Three reports of `first`'s OOM (told apart by their line counts, 1 to 3)
/// given to `builder`, and its decisions in the reports' order.
fn three_reports_in_order(
    builder: &mut Builder,
    now: Instant,
    first: &KernelReport,
) -> Vec<Decision> {
    for n in 1..=3 {
        let mut report = first.clone();
        report.lines.truncate(n);
        builder.on_report(now, ReportItem::Report(report));
    }
    let mut decisions = builder.flush(&mut OfflineEnv::new(4096));
    decisions.sort_by_key(|d| d.report_lines.len());
    decisions
}

/// A live builder with every hook of the fentry backend; the page-fault
/// hook as given.
fn fentry_builder(pagefault_hook: bool) -> Builder {
    Builder::new(
        Sources {
            backend: "fentry",
            victim_task_hook: true,
            exit_hook: false,
            oom_path_hooks: true,
            pagefault_hook,
        },
        Vec::new(),
    )
}

/// The first report of [`no_killable_log`].
fn no_killable_report() -> KernelReport {
    parse_log(&no_killable_log())
        .unwrap()
        .into_iter()
        .find_map(|i| match i {
            ReportItem::Report(r) if r.no_killable => Some(r),
            _ => None,
        })
        .expect("a no-killable report")
}

/// A fixture log whose memcg OOM found nothing killable.
pub(super) fn no_killable_log() -> Vec<u8> {
    let path = fixtures()
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains("Out of memory and no killable processes"))
        })
        .expect("a no-killable fixture");
    std::fs::read(path).unwrap()
}

/// A host whose cgroup path lookups are answered later, off the loop.
struct LatePaths {
    offline: OfflineEnv,
    /// The scan answered: id 42 is `/late`.
    answered: bool,
    asked: Vec<u64>,
}

impl Environment for LatePaths {
    fn memcg_path(&mut self, id: u64) -> Option<String> {
        (self.answered && id == 42).then(|| "/late".to_owned())
    }
    fn memcg_paths_ready(&mut self, ids: &[u64]) -> bool {
        self.asked.extend_from_slice(ids);
        self.answered
    }
    fn memcg_files(&self, relative: &str) -> Option<MemcgFiles> {
        self.offline.memcg_files(relative)
    }
    fn page_size(&self) -> u64 {
        4096
    }
}

/// A kill whose victim task (in memcg 42) and kill line are in.
fn kill_in_memcg_42(builder: &mut Builder, t0: Instant) {
    let kill = storm_kills().remove(0);
    let pid = kill_pid(&kill);
    let mut task = oomtrace_ebpf::VictimTaskEvent {
        victim_pid: pid,
        victim_tgid: pid,
        valid: oomtrace_ebpf::victim_valid::MEMCG,
        memcg_depth: 1,
        ..Default::default()
    };
    task.memcg[0].cgroup_id = 42;
    builder.on_event(t0, mark(pid));
    builder.on_event(t0, crate::events::Event::VictimTask(Box::new(task)));
    builder.on_report(t0, kill);
}

const VICTIM_TASK_HOOK: Sources = Sources {
    victim_task_hook: true,
    ..TRACEPOINTS
};

/// The victim's memcg path is one more piece a decision waits for: out
/// once the lookup is answered, and at the deadline if it never is.
#[test]
fn a_decision_waits_for_its_memcg_path_until_its_deadline() {
    let t0 = Instant::now();
    let mut env = LatePaths {
        offline: OfflineEnv::new(4096),
        answered: false,
        asked: Vec::new(),
    };
    let mut builder = Builder::new(VICTIM_TASK_HOOK, Vec::new());
    kill_in_memcg_42(&mut builder, t0);
    assert!(builder.poll(t0, &mut env).is_empty());
    assert_eq!(env.asked, [42], "it asks for the ids it will name");
    assert_eq!(
        builder.next_deadline(),
        Some(t0 + DEADLINE),
        "not settling: a piece is missing"
    );
    let t1 = t0 + DEADLINE / 10;
    env.answered = true;
    // Answered: out at the next poll, with no grace.
    let out = builder.poll(t1, &mut env);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].victim.as_ref().and_then(|v| v.memcg.as_deref()),
        Some("/late")
    );

    // Never answered: the deadline is the backstop.
    env.answered = false;
    let mut builder = Builder::new(VICTIM_TASK_HOOK, Vec::new());
    kill_in_memcg_42(&mut builder, t0);
    assert!(builder.poll(t0 + DEADLINE / 2, &mut env).is_empty());
    let out = builder.poll(t0 + DEADLINE, &mut env);
    assert_eq!(out.len(), 1, "out at its deadline without the path");
}

mod order;
mod readiness;
mod snapshot;
