//! The rule on signal traces of each scenario of docs/early-warning.md:
//! one sample a second of (usage, unreclaimable, tasks' rss).
use super::*;
use crate::cgroup::tasks::TaskSample;

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 256 * MIB;
const MEMCG: &str = "/risk/leak";

/// A trace: at second `t`, the memcg's unreclaimable and file bytes, and
/// its tasks' rss.
struct Trace<F: Fn(u64) -> (u64, u64, Vec<(u32, u64)>)> {
    at: F,
    t: u64,
}

impl<F: Fn(u64) -> (u64, u64, Vec<(u32, u64)>)> RiskEnvironment for Trace<F> {
    fn sample(&mut self, _memcg: &str) -> Option<MemcgSample> {
        let (anon, file, _) = (self.at)(self.t);
        Some(MemcgSample {
            boot_ms: self.t * 1000,
            usage_bytes: (anon + file).min(LIMIT),
            limit_bytes: Some(LIMIT),
            stat: StatFields {
                anon_bytes: anon,
                file_bytes: file,
                ..Default::default()
            },
            ..Default::default()
        })
    }
    fn tasks(&mut self, _memcg: &str) -> Vec<TaskSample> {
        (self.at)(self.t)
            .2
            .into_iter()
            .map(|(pid, rss)| TaskSample {
                pid,
                comm: format!("task{pid}"),
                rss_anon_bytes: rss,
                ..Default::default()
            })
            .collect()
    }
    fn badness_model(&self) -> Option<crate::model::score::BadnessModel> {
        Some(crate::model::score::BadnessModel::Linux5_9)
    }
    fn page_size(&self) -> u64 {
        4096
    }
}

/// Runs the trace for `seconds` and returns each record with its second;
/// the memcg is notified every second (the kernel notifies it once, as its
/// usage crosses the threshold: a memcg let go below it is notified again).
fn run<F: Fn(u64) -> (u64, u64, Vec<(u32, u64)>)>(at: F, seconds: u64) -> Vec<(u64, RiskRecord)> {
    let mut env = Trace { at, t: 0 };
    let mut monitor = RiskMonitor::new();
    let mut records = Vec::new();
    for t in 0..seconds {
        env.t = t;
        monitor.watch(MEMCG);
        records.extend(monitor.poll(t * 1000, &mut env).into_iter().map(|r| (t, r)));
    }
    records
}

fn warnings<F: Fn(u64) -> (u64, u64, Vec<(u32, u64)>)>(
    at: F,
    seconds: u64,
) -> Vec<(u64, OomWarning)> {
    run(at, seconds)
        .into_iter()
        .filter_map(|(t, r)| match r {
            RiskRecord::Warning(w) => Some((t, *w)),
            RiskRecord::Clear(_) => None,
        })
        .collect()
}

/// The second a leak reaches the limit (its kill).
fn kill_second(base: u64, rate: u64) -> u64 {
    (LIMIT - base).div_ceil(rate)
}

/// Two steady neighbours of 20 MiB and a leaker (pid 3) from `base`.
fn leak(rate: u64) -> impl Fn(u64) -> (u64, u64, Vec<(u32, u64)>) {
    move |t| {
        let leaker = (t * rate).min(LIMIT - 40 * MIB);
        (
            40 * MIB + leaker,
            4 * MIB,
            vec![(1, 20 * MIB), (2, 20 * MIB), (3, leaker)],
        )
    }
}

#[test]
fn a_steady_leak_is_warned_well_before_the_limit_with_the_leaker_first() {
    let found = warnings(leak(4 * MIB), 60);
    let (t, warning) = &found[0];
    assert_eq!(found.len(), 1);
    let kill = kill_second(40 * MIB, 4 * MIB);
    assert!(kill - t >= 10, "warned at {t} s, limit at {kill} s");
    assert_eq!(warning.top_growers[0].pid, 3);
    assert!(warning.top_growers[0].would_be_killed);
    assert_eq!(warning.growth_bytes_per_s, 4 * MIB);
}

#[test]
fn a_faster_leak_is_warned_as_soon_as_the_window_is_covered() {
    let found = warnings(leak(10 * MIB), 25);
    let (t, warning) = &found[0];
    // Watched from 64 MiB (6.4 s for this one), warned once the window is covered.
    let kill = kill_second(40 * MIB, 10 * MIB);
    assert!(kill - t >= 5, "warned at {t} s, limit at {kill} s");
    assert_eq!(warning.top_growers[0].pid, 3);
}

#[test]
fn page_cache_at_the_limit_is_not_a_risk() {
    // The reader's cache fills the memcg and stays there; its anon is flat.
    let trace = |t: u64| {
        (
            8 * MIB,
            (t * 50 * MIB).min(LIMIT - 8 * MIB),
            vec![(1, 8 * MIB)],
        )
    };
    assert!(warnings(trace, 300).is_empty());
}

#[test]
fn a_task_sitting_at_92_percent_is_not_a_risk() {
    let at = LIMIT * 92 / 100;
    assert!(warnings(|_| (at, 0, vec![(1, at)]), 300).is_empty());
}

#[test]
fn a_sawtooth_to_80_percent_is_not_a_risk() {
    // Rises 64 MiB/s from 30% to 80% (2 s), holds 2 s, falls: a 6 s cycle.
    let trace = |t: u64| {
        let low = LIMIT * 30 / 100;
        let high = LIMIT * 80 / 100;
        let level = match t % 6 {
            0 => low,
            k @ 1..=2 => (low + k * 64 * MIB).min(high),
            3 | 4 => high,
            _ => low,
        };
        (level, 0, vec![(1, level)])
    };
    assert!(warnings(trace, 300).is_empty());
}

#[test]
fn a_start_up_burst_to_70_percent_then_flat_is_not_a_risk() {
    let trace = |t: u64| {
        let level = (t * 60 * MIB).min(LIMIT * 70 / 100);
        (level, 0, vec![(1, level)])
    };
    assert!(warnings(trace, 300).is_empty());
}

#[test]
fn slow_growth_far_from_the_limit_is_not_a_risk() {
    // 1 MiB/s from 10%: sustained, but the limit is over 3 minutes away.
    let trace = |t: u64| {
        let level = LIMIT / 10 + t * MIB;
        (level, 0, vec![(1, level)])
    };
    let found = warnings(trace, 60);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_leak_that_stops_clears_its_warning() {
    let trace = |t: u64| {
        let level = 40 * MIB + t.min(30) * 4 * MIB;
        (level, 0, vec![(1, level)])
    };
    let records = run(trace, 60);
    assert!(matches!(records[0].1, RiskRecord::Warning(_)));
    let RiskRecord::Clear(clear) = &records[1].1 else {
        panic!("{records:?}")
    };
    assert_eq!(clear.reason, "growth_stopped");
    assert_eq!(records.len(), 2);
}

#[test]
fn the_kill_takes_the_warning_for_its_decision() {
    let mut env = Trace {
        at: leak(4 * MIB),
        t: 0,
    };
    let mut monitor = RiskMonitor::new();
    let mut warned_at = None;
    for t in 0..40 {
        env.t = t;
        monitor.watch(MEMCG);
        if !monitor.poll(t * 1000, &mut env).is_empty() {
            warned_at.get_or_insert(t);
        }
    }
    let link = monitor.on_kill(MEMCG, 40_000).unwrap();
    assert_eq!(Some(link.warned_boot_ms / 1000), warned_at);
    assert_eq!(link.leader.unwrap().pid, 3);
    assert_eq!(monitor.on_kill(MEMCG, 40_000), None);
}

/// A leak frozen at the limit from second 30 (the kernel reclaiming before
/// it kills): its warning clears as growth stopped at `cleared`.
fn warned_then_cleared() -> (RiskMonitor, u64) {
    let trace = |t: u64| {
        let level = 40 * MIB + t.min(30) * 4 * MIB;
        (level, 0, vec![(1, level)])
    };
    let mut env = Trace { at: trace, t: 0 };
    let mut monitor = RiskMonitor::new();
    let mut cleared = None;
    for t in 0..60 {
        env.t = t;
        monitor.watch(MEMCG);
        for record in monitor.poll(t * 1000, &mut env) {
            match record {
                RiskRecord::Warning(_) => monitor.set_oom_id(MEMCG, "episode-of-the-warning"),
                RiskRecord::Clear(_) => _ = cleared.get_or_insert(t * 1000),
            }
        }
    }
    (monitor, cleared.expect("the warning clears"))
}

/// The sample that clears a warning may come after the kill, and before
/// the kill's decision: the decision still links the warning that stood,
/// and joins its episode (the clear closed it; measured on 6.12 in the VM).
#[test]
fn a_warning_cleared_after_the_kill_still_links_its_decision() {
    let (mut monitor, cleared) = warned_then_cleared();
    let link = monitor.on_kill(MEMCG, cleared - 1).unwrap();
    assert_eq!(link.oom_id.as_deref(), Some("episode-of-the-warning"));
    assert_eq!(monitor.on_kill(MEMCG, cleared - 1), None, "taken once");
}

#[test]
fn a_warning_cleared_before_the_kill_does_not() {
    let (mut monitor, cleared) = warned_then_cleared();
    assert_eq!(monitor.on_kill(MEMCG, cleared + 1), None);
}

#[test]
fn an_idle_monitor_has_no_deadline_and_a_quiet_memcg_is_let_go() {
    let mut monitor = RiskMonitor::new();
    assert_eq!(monitor.next_deadline_ms(), None);
    monitor.watch(MEMCG);
    let mut env = Trace {
        at: |_| (MIB, 0, vec![]),
        t: 0,
    };
    assert!(monitor.poll(0, &mut env).is_empty());
    assert_eq!(monitor.watched(), 0, "below the threshold, not growing");
    assert_eq!(monitor.next_deadline_ms(), None);
}

#[test]
fn v1_stat_takes_shmem_out_of_the_cache() {
    let text = "cache 1\nrss 2\ntotal_cache 3000\ntotal_rss 500\ntotal_shmem 1000\ntotal_inactive_file 700\n";
    let stat = parse_stat(text, crate::cgroup::CgroupVersion::V1);
    assert_eq!(
        stat,
        StatFields {
            anon_bytes: 500,
            shmem_bytes: 1000,
            kernel_bytes: 0,
            file_bytes: 2000,
            inactive_file_bytes: 700,
        }
    );
    let v2 = "anon 10\nfile 50\nkernel 7\nshmem 20\ninactive_file 5\n";
    let stat = parse_stat(v2, crate::cgroup::CgroupVersion::V2);
    assert_eq!(
        (stat.anon_bytes, stat.file_bytes, stat.kernel_bytes),
        (10, 30, 7)
    );
}
