//! Candidates of a rate-limited OOM on a tracepoint-only node: the OOM
//! memcg's tasks read from /proc just after the kill, the victim as the
//! kernel saw it.
use std::time::Instant;

use oomtrace_ebpf::{MemcgLevel, VictimTaskEvent, victim_valid};

use super::{DEADLINE, TRACEPOINTS, kill_pid, mark, storm_kills};
use crate::{
    cgroup::tasks::{TaskSample, TaskSnapshot},
    events::Event,
    model::decision::{Builder, Environment, Sources},
};

const MEMCG_ID: u64 = 7;
const KILLED_NS: u64 = 5_000_000_000;
const READ_NS: u64 = KILLED_NS + 1_500_000;

struct TasksEnv(Option<TaskSnapshot>);

impl Environment for TasksEnv {
    fn memcg_path(&mut self, id: u64) -> Option<String> {
        (id == MEMCG_ID).then(|| "/storm/m1".to_owned())
    }
    fn swap_total_pages(&self) -> Option<u64> {
        Some(0)
    }
    fn page_size(&self) -> u64 {
        4096
    }
    fn kernel_release(&self) -> Option<String> {
        Some("6.18.0".to_owned())
    }
    fn task_snapshot(&self, _victim_pid: u32) -> Option<TaskSnapshot> {
        self.0.clone()
    }
}

/// The raw mark_victim hook's event: the victim at the kill, in a memcg of
/// 2048 pages at its limit.
fn victim_task(pid: u32) -> Event {
    // SAFETY: a plain-old-data ABI record; all zeroes is a valid value.
    let mut event: VictimTaskEvent = unsafe { std::mem::zeroed() };
    event.header.boot_ns = KILLED_NS;
    event.victim_pid = pid;
    event.victim_tgid = pid;
    event.valid = victim_valid::IDENTITY
        | victim_valid::OOM_SCORE_ADJ
        | victim_valid::RSS
        | victim_valid::PGTABLES
        | victim_valid::MEMCG
        | victim_valid::SWAPENTS
        | victim_valid::RSS_ATOMIC;
    event.rss_anon_pages = 1900;
    event.pgtables_bytes = 8 * 4096;
    event.memcg_depth = 1;
    event.memcg[0] = MemcgLevel {
        cgroup_id: MEMCG_ID,
        usage_pages: 2048,
        max_pages: 2048,
        ..Default::default()
    };
    Event::VictimTask(Box::new(event))
}

fn sample(pid: u32, anon_pages: u64, oom_score_adj: i32) -> TaskSample {
    TaskSample {
        pid,
        tgid: pid,
        uid: 0,
        comm: format!("t{pid}"),
        rss_anon_bytes: anon_pages * 4096,
        pgtables_bytes: 4096,
        oom_score_adj,
        ..Default::default()
    }
}

fn decide(snapshot: Option<TaskSnapshot>) -> crate::model::decision::Decision {
    let kill = storm_kills().remove(0);
    let pid = kill_pid(&kill);
    let mut builder = Builder::new(
        Sources {
            victim_task_hook: true,
            ..TRACEPOINTS
        },
        Vec::new(),
    );
    let t0 = Instant::now();
    let Event::MarkVictim(mut marked) = mark(pid) else {
        unreachable!("mark() is a MarkVictim event")
    };
    marked.header.boot_ns = KILLED_NS;
    builder.on_event(t0, Event::MarkVictim(marked));
    builder.on_event(t0, victim_task(pid));
    builder.on_report(t0, kill);
    let mut env = TasksEnv(snapshot.map(|mut s| {
        // The victim's own /proc entry, half torn down, is not listed.
        s.tasks.push(sample(pid, 3, 0));
        s
    }));
    let mut out = builder.poll(t0 + DEADLINE, &mut env);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

#[test]
fn a_rate_limited_oom_takes_its_candidates_from_the_proc_snapshot() {
    let snapshot = TaskSnapshot {
        memcg: "/storm/m1".to_owned(),
        read_boot_ns: READ_NS,
        tasks: vec![sample(101, 100, 0), sample(102, 50, -1000)],
        cut: 2,
    };
    let d = decide(Some(snapshot));
    assert_eq!(d.candidates_source, "proc_snapshot");
    assert_eq!(d.candidates_snapshot_after_kill_ms, Some(1.5));
    assert_eq!(d.candidates_dropped, Some(2));
    let victim = d.victim.as_ref().unwrap();
    let row = |pid: u32| d.candidates.iter().find(|c| c.pid == pid).unwrap();
    // The victim's row is the kernel's at the kill, not its torn-down /proc entry.
    assert!(row(victim.pid).victim);
    assert_eq!(row(victim.pid).points, victim.points);
    assert_eq!(
        d.candidates.iter().filter(|c| c.pid == victim.pid).count(),
        1
    );
    // 100 rss pages + 1 page-table page, oom_score_adj 0.
    assert_eq!(row(101).points, Some(101));
    assert_eq!(row(101).rss_source.as_deref(), Some("proc_status"));
    assert!(!row(102).eligible && row(102).points.is_none());
    assert_eq!(d.candidates[0].pid, victim.pid, "listed by points");
    let said = d.explanation.join(" ");
    assert!(
        said.contains("as /proc showed them 1.5 ms after the kill"),
        "{said}"
    );
    assert!(said.contains("2 more tasks were not read"), "{said}");
}

#[test]
fn without_a_snapshot_the_candidates_stay_unknown() {
    let d = decide(None);
    assert_eq!(d.candidates_source, "none");
    assert!(d.candidates.is_empty());
    assert_eq!(d.candidates_snapshot_after_kill_ms, None);
}
