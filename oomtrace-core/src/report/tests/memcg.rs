//! Counters and stats of memcg OOMs, v1 and v2, in a hierarchy.

use super::{fixtures::check_fixture, *};

#[test]
fn hierarchy_oom_memcg_vs_task_memcg() {
    for (name, oom, task) in [
        (
            "5.10.0-32-amd64-b-v1-hierarchy.log",
            "/parent",
            "/parent/child",
        ),
        (
            "5.10.0-32-amd64-b-v2-hierarchy.log",
            "/parent",
            "/parent/child",
        ),
        (
            "6.1.0-50-amd64-b-v2-hierarchy.log",
            "/parent",
            "/parent/child",
        ),
        (
            "6.12.100+deb12-amd64-b-v2-hierarchy.log",
            "/parent",
            "/parent/child",
        ),
        ("6.18-b-parent-limit-v1.log", "/fix-b", "/fix-b/child"),
    ] {
        let items = check_fixture(name);
        let r = only_report(&items);
        let c = r.constraint.as_ref().unwrap();
        assert_eq!(c.oom_memcg.as_deref(), Some(oom), "{name}");
        assert_eq!(c.task_memcg.as_deref(), Some(task), "{name}");
        assert_eq!(r.memcg_stats_for.as_deref(), Some(oom), "{name}");
    }
    // 5.10 v1: the OOM fired while usage was below the limit.
    let items = parse("5.10.0-32-amd64-b-v1-hierarchy.log");
    let mem = only_report(&items).counter("memory").unwrap().clone();
    assert_eq!((mem.usage_kb, mem.limit_kb), (49032, 49152));
    assert!(mem.usage_kb < mem.limit_kb);
}

#[test]
fn v1_counters_memsw_and_kmem_v2_swap() {
    let items = parse("6.1.0-50-amd64-a-v1-single-hog.log");
    let r = only_report(&items);
    assert!(r.counter("swap").is_none());
    assert_eq!(r.counter("memory+swap").unwrap().limit_kb, 9007199254740988);
    assert_eq!(r.counter("kmem").unwrap().limit_kb, 9007199254740988);
    let items = parse("6.1.0-50-amd64-a-v2-single-hog.log");
    let r = only_report(&items);
    let names: Vec<&str> = r.counters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["memory", "swap"]);
    assert_eq!(r.counter("memory").unwrap().limit_kb, 65536);
}
