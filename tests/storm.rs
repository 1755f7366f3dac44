//! An OOM storm on the real kernel: 100 cgroup-v1 memcgs of 8 MiB under one
//! parent, each OOM-killing a hog 10 times while the others do the same,
//! traced by one `oomtrace --json --cgroup <parent>`. Every kill the kernel
//! counted in those memcgs must come out as one decision with its victim;
//! what could not be read (kernel-log records overwritten, ring-buffer
//! drops) must be `lost` records. Needs root.
mod support;

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;
use support::*;

const MEMCGS: usize = 100;
const KILLS_PER_MEMCG: usize = 10;

#[test]
fn every_kill_of_a_storm_is_a_decision_or_a_counted_loss() {
    require_root();
    let parent = TestCgroup::new_v1("storm", 8 << 30);
    let children: Vec<Arc<TestCgroup>> = (0..MEMCGS)
        .map(|i| Arc::new(parent.child(&format!("m{i}"), 8 << 20)))
        .collect();
    let parent_path = parent.path.to_str().unwrap().to_owned();
    let (mut tracer, _start) = Tracer::start_json(&["--cgroup", &parent_path]);
    let log = KernelLog::open();

    let per_memcg = storm(&children);
    let victims: Vec<u32> = per_memcg.concat();
    // The kernel's own count of kills in these memcgs is the oracle.
    let kernel_kills: u64 = children.iter().map(|c| c.oom_kill_count()).sum();
    assert_eq!(
        kernel_kills,
        victims.len() as u64,
        "each hog dies by one OOM kill"
    );

    // SIGINT: oomtrace flushes what it holds and exits 0.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tracer.child.id() as i32, libc::SIGINT) };
    assert!(
        tracer.wait_exit().success(),
        "oomtrace failed: {:?}",
        tracer.seen.last()
    );

    let (decisions, victimless): (Vec<Value>, Vec<Value>) = tracer
        .seen_records("decision")
        .into_iter()
        .partition(|d| !d["victim"].is_null());
    // Every OOM here killed: a decision without a victim can only be the
    // part of a report before a kernel-log gap, and must say it is incomplete.
    for d in &victimless {
        assert_ne!(d["kernel_report"], "complete", "{d}");
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for decision in &decisions {
        *seen.entry(u64_of(&decision["victim"]["pid"])).or_default() += 1;
    }
    let missing: Vec<&u32> = victims
        .iter()
        .filter(|p| !seen.contains_key(&u64::from(**p)))
        .collect();
    let twice: Vec<(&u64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let lost = lost_totals(&tracer.seen_records("lost"));
    eprintln!(
        "storm: {kernel_kills} kernel kills, {} decisions ({} without the kernel's task table), {} report fragments cut by log gaps, lost: {lost:?}",
        decisions.len(),
        decisions
            .iter()
            .filter(|d| d["kernel_report"] != "complete")
            .count(),
        victimless.len(),
    );
    assert!(twice.is_empty(), "victims decided twice: {twice:?}");
    // The kernel prints at most 10 reports per 5 s: the others take their
    // candidates from the OOM memcg's tasks read just after the kill.
    let with_candidates = decisions
        .iter()
        .filter(|d| d["candidates"].as_array().is_some_and(|c| !c.is_empty()))
        .count();
    let by_source = decisions.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d["candidates_source"].to_string())
            .or_insert(0usize) += 1;
        m
    });
    eprintln!("storm: candidates by source {by_source:?}");
    assert!(
        with_candidates * 100 >= decisions.len() * 99,
        "only {with_candidates} of {} decisions have candidates: {by_source:?}",
        decisions.len()
    );
    for d in &decisions {
        let victims: Vec<&Value> = d["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["victim"] == true)
            .collect();
        if d["candidates_source"] == "proc_snapshot" {
            assert_eq!(victims.len(), 1, "{d}");
            assert_eq!(victims[0]["pid"], d["victim"]["pid"], "{d}");
        }
    }
    // Each kill is an OOM episode of its own, even when ten of one memcg
    // go out in the same tick.
    let ids: std::collections::BTreeSet<&str> = decisions
        .iter()
        .map(|d| d["oom_id"].as_str().expect("oom_id"))
        .collect();
    assert_eq!(ids.len(), decisions.len(), "decisions sharing an oom_id");
    // Only a pending decision evicted under memory pressure may stand for a
    // missing one, and then it was counted.
    let evicted = lost.get("pending").copied().unwrap_or(0);
    assert!(
        missing.len() as u64 <= evicted,
        "{} kills without a decision and only {evicted} counted as lost: {missing:?}",
        missing.len()
    );
    assert!(
        decisions.len() as u64 <= kernel_kills,
        "more decisions than kills"
    );

    // Within a memcg, `seq` follows the kernel's order of kills (its
    // "Killed process" lines); memcgs that cannot share an OOM do not wait
    // for one another (docs/schema.md, `seq`).
    let kernel_order = log.killed_pids_so_far();
    let mut by_seq: Vec<(u64, u64)> = decisions
        .iter()
        .map(|d| (u64_of(&d["seq"]), u64_of(&d["victim"]["pid"])))
        .collect();
    by_seq.sort();
    let our_order: Vec<u32> = by_seq.iter().map(|(_, pid)| *pid as u32).collect();
    // Kill lines the kernel overwrote before they were read are absent from
    // its order; compare the pids both sides have.
    let ours: std::collections::BTreeSet<u32> = our_order.iter().copied().collect();
    let theirs: std::collections::BTreeSet<u32> = kernel_order.iter().copied().collect();
    let both = |p: &u32| ours.contains(p) && theirs.contains(p);
    assert!(
        kernel_order.iter().filter(|p| both(p)).count() * 2 > victims.len(),
        "the kernel log lost most kill lines"
    );
    for memcg in &per_memcg {
        let of_memcg = |order: &[u32]| -> Vec<u32> {
            order
                .iter()
                .copied()
                .filter(|p| memcg.contains(p) && both(p))
                .collect()
        };
        assert_eq!(
            of_memcg(&our_order),
            of_memcg(&kernel_order),
            "a memcg's decisions not in the kernel's kill order"
        );
    }
}

/// Runs the storm: per memcg a thread starts a hog and waits for its death,
/// `KILLS_PER_MEMCG` times. Returns every victim's pid, per memcg.
fn storm(children: &[Arc<TestCgroup>]) -> Vec<Vec<u32>> {
    let threads: Vec<_> = children
        .iter()
        .map(|child| {
            let child = Arc::clone(child);
            std::thread::spawn(move || {
                (0..KILLS_PER_MEMCG)
                    .map(|_| {
                        let mut hog = Hog::start("stormhog", &child, &[]);
                        assert!(hog.wait_killed(), "a storm hog was not SIGKILLed");
                        hog.pid()
                    })
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("storm thread"))
        .collect()
}

/// The last `total` per `source` of the lost records.
fn lost_totals(records: &[Value]) -> BTreeMap<String, u64> {
    records
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap_or("?").to_owned(),
                u64_of(&r["total"]),
            )
        })
        .collect()
}
