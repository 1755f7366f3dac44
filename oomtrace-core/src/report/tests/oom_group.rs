//! The `memory.oom.group` sweep after a report.

use super::{fixtures::check_fixture, *};

#[test]
fn oom_group_sweep() {
    for name in [
        "6.1.0-50-amd64-d-v2-oom-group.log",
        "6.12.100+deb12-amd64-d-v2-oom-group.log",
    ] {
        let text = raw(name);
        let items = check_fixture(name);
        assert_eq!(items.len(), 5, "{name}");
        let ReportItem::Report(r) = &items[0] else {
            panic!("{name}: first item is not a report")
        };
        let victim = r.kill.as_ref().unwrap();
        assert_eq!(victim.comm, "grpC");
        let ReportItem::OomGroup { memcg, line } = &items[1] else {
            panic!("{name}: no oom.group line")
        };
        assert_eq!(memcg, "/grp");
        assert!(
            text.lines()
                .nth(line.line_no - 1)
                .unwrap()
                .contains("memory.oom.group")
        );
        let swept: Vec<(u32, &str)> = items[2..]
            .iter()
            .map(|i| match i {
                ReportItem::Kill(k) => (k.pid, k.comm.as_str()),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        // The victim is killed a second time by the sweep.
        assert_eq!(swept.len(), 3);
        assert!(swept.contains(&(victim.pid, "grpC")));
        // Every swept task was in the report's table, with matching sizes.
        for i in &items[2..] {
            let ReportItem::Kill(k) = i else {
                unreachable!()
            };
            let row = r
                .tasks
                .as_ref()
                .unwrap()
                .rows
                .iter()
                .find(|r| r.pid == k.pid)
                .unwrap();
            let rss_kb = k.anon_rss_kb.unwrap() + k.file_rss_kb.unwrap() + k.shmem_rss_kb.unwrap();
            assert_eq!(rss_kb, row.rss_pages * 4, "{name}: {}", k.comm);
            if let Some(anon) = row.rss_anon_pages {
                assert_eq!(k.anon_rss_kb, Some(anon * 4));
            }
            assert_eq!(k.pgtables_kb, Some(row.pgtables_bytes.unwrap() / 1024));
        }
    }
}
