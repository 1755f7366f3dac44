//! The CPU line of every kernel.

use crate::report::header::parse_cpu_line;

#[test]
fn cpu_line_variants() {
    let (t, rel) =
        parse_cpu_line("CPU: 3 PID: 77 Comm: a b Kdump: loaded Not tainted 5.15.0-1-x #2 SMP")
            .unwrap();
    assert_eq!(
        (t.unwrap().comm, rel.as_deref()),
        ("a b".to_string(), Some("5.15.0-1-x"))
    );
    let (t, rel) = parse_cpu_line(
        "CPU: 0 PID: 5 Comm: x Tainted: P           O      4.15.0-20-generic #21-Ubuntu",
    )
    .unwrap();
    assert_eq!(
        (t.unwrap().pid, rel.as_deref()),
        (5, Some("4.15.0-20-generic"))
    );
    let (t, rel) =
        parse_cpu_line("Pid: 1, comm: init Not tainted 2.6.32-431.el6.x86_64 #1").unwrap();
    assert_eq!((t, rel.as_deref()), (None, Some("2.6.32-431.el6.x86_64")));
    assert!(parse_cpu_line("CPU    0: hi:  186, btch:  31 usd:  30").is_none());
}
