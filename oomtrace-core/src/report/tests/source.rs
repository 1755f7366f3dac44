//! The prefixes of every log format.

use crate::report::{split_prefix, strip_prefix};

#[test]
fn prefix_formats() {
    let msg = "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0";
    for (input, ts) in [
        (format!("[ 1534.287964] {msg}"), Some(1534.287964)),
        (format!("[    0.000000] {msg}"), Some(0.0)),
        (format!("<4>[ 1534.287964] {msg}"), Some(1534.287964)),
        (format!("[Mon Nov 23 18:32:48 2026] {msg}"), None),
        (
            format!("Nov 23 18:32:48 host kernel: [ 1534.287964] {msg}"),
            Some(1534.287964),
        ),
        (
            format!("Nov  3 18:32:48 host kernel: [ 1534.287964] {msg}"),
            Some(1534.287964),
        ),
        (format!("Jul 07 02:43:54 ip-10-1-2-125 kernel: {msg}"), None),
        (
            format!("2026-11-23T18:32:48.123456+0000 host kernel: {msg}"),
            None,
        ),
        (
            format!("[ 1534.287964] host kernel: {msg}"),
            Some(1534.287964),
        ),
        (format!("{msg}\r"), None),
        (msg.to_string(), None),
    ] {
        assert_eq!(strip_prefix(&input), (ts, msg), "{input}");
    }
    // Message-owned leading spaces survive; task rows are not time stamps.
    assert_eq!(
        strip_prefix("[    3.206494]  active_file:0"),
        (Some(3.206494), " active_file:0")
    );
    assert_eq!(
        strip_prefix("Jul 07 02:43:54 h kernel:  [<ffffffff813eb1a3>] x").1,
        " [<ffffffff813eb1a3>] x"
    );
    let row = "[15947]     0 15947    29022       26   5       0             0 init";
    assert_eq!(strip_prefix(row), (None, row));
    assert_eq!(strip_prefix("[  12621]     0 12621").0, None);
    assert_eq!(strip_prefix("[ pid ]   uid  tgid").1, "[ pid ]   uid  tgid");
    // Other programs' lines are identified.
    let p = split_prefix("Jul 07 02:43:54 ip-10-1-2-125 docker[977]: Killed");
    assert_eq!((p.ident, p.message), (Some("docker[977]"), "Killed"));
    assert_eq!(
        split_prefix("Nov 23 18:32:48 host kernel: x").ident,
        Some("kernel")
    );
    assert_eq!(split_prefix("[ 1.5] x").ident, None);
    assert_eq!(split_prefix("Nov 23 18:32:48 host kernel:").message, "");
}
