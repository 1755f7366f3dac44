//! The Mem-Info of global OOMs.

use super::{fixtures::check_fixture, *};

#[test]
fn global_oom() {
    for name in [
        "5.10.0-32-amd64-f-global.log",
        "6.12.100+deb12-amd64-f-global.log",
    ] {
        let text = raw(name);
        let items = check_fixture(name);
        let r = only_report(&items);
        let g = r.global_mem.as_ref().unwrap();
        let stated = |suffix: &str| -> u64 {
            let header = text
                .lines()
                .position(|l| l.contains("invoked oom-killer"))
                .unwrap();
            let l = text
                .lines()
                .skip(header)
                .find(|l| l.ends_with(suffix))
                .unwrap();
            l.split("] ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(g.ram_pages, Some(stated(" pages RAM")), "{name}");
        assert_eq!(g.reserved_pages, Some(stated(" pages reserved")), "{name}");
        assert_eq!(g.total_swap_kb, Some(0));
        assert_eq!(g.free_swap_kb, Some(0));
        // totalpages = managed RAM (RAM less reserved) + swap pages.
        let swap_kb: u64 = word_after(&text, "Total swap = ")
            .trim_end_matches("kB")
            .parse()
            .unwrap();
        assert_eq!(
            r.global_totalpages(4096),
            Some(stated(" pages RAM") - stated(" pages reserved") + swap_kb / 4),
            "{name}"
        );
        let mut with_swap = r.clone();
        with_swap.global_mem.as_mut().unwrap().total_swap_kb = Some(1 << 20);
        assert_eq!(
            with_swap.global_totalpages(4096),
            Some(stated(" pages RAM") - stated(" pages reserved") + (1 << 18))
        );
        assert_eq!(
            with_swap.global_totalpages(16384).map(|t| t > 0),
            Some(true)
        );
        assert_eq!(with_swap.global_totalpages(512), None);
        assert!(r.counters.is_empty() && r.memcg_stats_for.is_none());
        let c = r.constraint.as_ref().unwrap();
        assert_eq!(c.constraint, "CONSTRAINT_NONE");
        assert_eq!(c.oom_memcg, None);
        assert_eq!(c.task_memcg.as_deref(), Some("/"));
        let k = r.kill.as_ref().unwrap();
        assert!(!k.memcg_oom);
        assert!(k.source.text.starts_with("Out of memory: Killed process"));
        assert_eq!(
            r.header
                .as_ref()
                .unwrap()
                .gfp_flags
                .as_deref()
                .map(|f| f.starts_with("GFP_HIGHUSER_MOVABLE")),
            Some(true)
        );
    }
}
