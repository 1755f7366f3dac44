//! The order decisions go out in: the kernel's kill order within an OOM
//! domain; a victim slow to exit holds back no other memcg's decisions.
use std::time::{Duration, Instant};

use oomtrace_ebpf::{MemcgLevel, VictimExitEvent, VictimTaskEvent, victim_valid};

use super::{TRACEPOINTS, kill_pid, mark, storm_kills};
use crate::{
    events::Event,
    model::decision::{Builder, Decision, OfflineEnv, Sources},
};

/// The tracepoint backend with the raw mark_victim and exit hooks.
const SOURCES: Sources = Sources {
    victim_task_hook: true,
    exit_hook: true,
    ..TRACEPOINTS
};

const ROOT: u64 = 1;
const PARENT: u64 = 2;
const A: u64 = 10;
const B: u64 = 11;

/// A memcg level: `at_limit` is the one whose limit fired.
fn level(cgroup_id: u64, at_limit: bool) -> MemcgLevel {
    MemcgLevel {
        cgroup_id,
        usage_pages: 2048,
        max_pages: if at_limit { 2048 } else { 1 << 40 },
        ..Default::default()
    }
}

/// The victim in `memcg` (a child of PARENT), the OOM in `oom_memcg`.
fn victim_task(pid: u32, memcg: u64, oom_memcg: u64) -> Event {
    // SAFETY: a plain-old-data ABI record; all zeroes is a valid value.
    let mut event: VictimTaskEvent = unsafe { std::mem::zeroed() };
    event.victim_pid = pid;
    event.victim_tgid = pid;
    event.valid = victim_valid::IDENTITY | victim_valid::MEMCG;
    let chain = [memcg, PARENT, ROOT];
    for (i, id) in chain.iter().enumerate() {
        event.memcg[i] = level(*id, *id == oom_memcg);
    }
    event.memcg_depth = chain.len() as u32;
    Event::VictimTask(Box::new(event))
}

fn exit(pid: u32) -> Event {
    // SAFETY: as above.
    let mut event: VictimExitEvent = unsafe { std::mem::zeroed() };
    event.header.pid = pid;
    Event::VictimExit(event)
}

/// Kills `victims` (victim memcg, OOM memcg) in that order at `t0`, every
/// piece but the exit in; the first victim's exit never comes.
fn first_victim_slow(victims: &[(u64, u64)]) -> (Builder, Vec<u32>, Instant) {
    let kills = storm_kills();
    let mut builder = Builder::new(SOURCES, Vec::new());
    let t0 = Instant::now();
    let mut pids = Vec::new();
    for (kill, &(memcg, oom_memcg)) in kills.iter().zip(victims) {
        let pid = kill_pid(kill);
        builder.on_event(t0, mark(pid));
        builder.on_event(t0, victim_task(pid, memcg, oom_memcg));
        builder.on_report(t0, kill.clone());
        pids.push(pid);
    }
    for &pid in &pids[1..] {
        builder.on_event(t0, exit(pid));
    }
    builder.on_log_read(t0);
    (builder, pids, t0)
}

fn victims(out: &[Decision]) -> Vec<Option<u32>> {
    out.iter()
        .map(|d| d.victim.as_ref().map(|v| v.pid))
        .collect()
}

#[test]
fn a_slow_victim_holds_back_only_its_own_memcgs_decisions() {
    let (mut builder, pids, t0) = first_victim_slow(&[(A, A), (B, B), (A, A)]);
    let mut env = OfflineEnv::new(4096);
    let out = builder.poll(t0, &mut env);
    assert_eq!(
        victims(&out),
        [Some(pids[1])],
        "B's decision is out; A's second waits for A's first"
    );
    assert_eq!(out[0].seq, 1);
    let t1 = t0 + Duration::from_millis(40);
    builder.on_event(t1, exit(pids[0]));
    builder.on_log_read(t1);
    let out = builder.poll(t1, &mut env);
    assert_eq!(
        victims(&out),
        [Some(pids[0]), Some(pids[2])],
        "A's in kill order"
    );
    assert_eq!((out[0].seq, out[1].seq), (2, 3));
}

#[test]
fn an_oom_of_a_parent_keeps_its_place_among_its_childrens() {
    // The first OOM is PARENT's (its victim in A): B is in its domain.
    let (mut builder, pids, t0) = first_victim_slow(&[(A, PARENT), (B, B)]);
    let mut env = OfflineEnv::new(4096);
    assert!(
        builder.poll(t0, &mut env).is_empty(),
        "B waits for PARENT's"
    );
    let t1 = t0 + Duration::from_millis(40);
    builder.on_event(t1, exit(pids[0]));
    builder.on_log_read(t1);
    assert_eq!(
        victims(&builder.poll(t1, &mut env)),
        [Some(pids[0]), Some(pids[1])]
    );
}

#[test]
fn a_decision_whose_memcg_is_unknown_holds_back_every_later_one() {
    let kills = storm_kills();
    let mut builder = Builder::new(SOURCES, Vec::new());
    let mut env = OfflineEnv::new(4096);
    let t0 = Instant::now();
    // The first kill without its raw mark_victim event: no memcg chain.
    let first = kill_pid(&kills[0]);
    builder.on_event(t0, mark(first));
    builder.on_report(t0, kills[0].clone());
    let second = kill_pid(&kills[1]);
    builder.on_event(t0, mark(second));
    builder.on_event(t0, victim_task(second, B, B));
    builder.on_report(t0, kills[1].clone());
    builder.on_event(t0, exit(second));
    builder.on_log_read(t0);
    assert!(builder.poll(t0, &mut env).is_empty());
    let out = builder.flush(&mut env);
    assert_eq!(victims(&out), [Some(first), Some(second)]);
}
