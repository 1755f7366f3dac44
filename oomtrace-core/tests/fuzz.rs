//! Property-based fuzzing of what reads untrusted input: the kernel-report
//! parser (text logs, journal exports) and the dump reader behind `oomtrace
//! report`, plus the badness arithmetic. Inputs are real fixtures mutated
//! (bytes flipped, NULs and garbage spliced in, lines dropped, duplicated,
//! cut or swapped) and plain random bytes. Nothing may panic or hang, and the
//! parser's own promises must hold on whatever comes out, and every decision
//! rebuilt renders as a card without a control character from the input.
//!
//! `cargo test -p oomtrace-core --test fuzz` runs a small budget;
//! `PROPTEST_CASES=20000 cargo test --release -p oomtrace-core --test fuzz`
//! a long one. A failure found is kept below as a plain regression test.
use std::{io::Write as _, path::PathBuf, sync::OnceLock};

use oomtrace_core::{
    base::{lines::read_line_capped, text::is_unsafe},
    dump::read::{ReadError, read_file},
    model::score::{BadnessInput, BadnessModel, try_badness},
    output::{render_candidate_table, render_card},
    report::{KernelReport, ReportItem, journal::ExportReader, log::LogParser, parse_log},
};
use proptest::prelude::*;

fn fixtures() -> &'static Vec<Vec<u8>> {
    static FIXTURES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/kernel-reports"
        ));
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        names.sort();
        // The smaller ones keep each case fast; the large storms are covered
        // by the unit tests.
        names
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .filter(|b| b.len() < 200_000)
            .collect()
    })
}

/// One edit of a log.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    DropLine(usize),
    DupLine(usize),
    SwapLines(usize, usize),
    NulBlock(usize, usize),
    /// The digits around a position replaced by an extreme number.
    Number(usize, &'static str),
}

/// Numbers at and past every bound a report's values can have.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "17592186044416",
    "17592186044417",
    "18014398509481984",
    "18014398509481985",
    "9007199254740988",
    "9007199254740992",
    "9007199254740993",
    "70368744177664",
    "70368744177665",
    "-1",
    "-2147483648",
    "99999999999999999999999",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                Just(b"\n".to_vec()),
                Just(b"[  pid  ]   uid  tgid total_vm      rss name\n".to_vec()),
                Just(b"\xff\xfe\xc3".to_vec()),
                Just("\u{1b}]0;t\u{7}\u{2028}\u{9b}".as_bytes().to_vec()),
                Just(b"x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0\n".to_vec()),
                Just(
                    b"Killed process 18446744073709551615 (x) total-vm:99999999999999999999kB\n"
                        .to_vec()
                ),
                Just(
                    b"[4294967295]  0 1 18446744073709551615 18446744073709551615 0 0 1000 x\n"
                        .to_vec()
                ),
                Just(b"Out of memory and no killable processes...\n".to_vec()),
                Just(b"Nov 23 18:32:48 other kernel: ".to_vec()),
            ]
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DupLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), 1usize..5000).prop_map(|(at, n)| Edit::NulBlock(at, n)),
        (any::<usize>(), prop::sample::select(EXTREMES)).prop_map(|(at, n)| Edit::Number(at, n)),
        (any::<usize>(), prop::sample::select(EXTREMES)).prop_map(|(at, n)| Edit::Number(at, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    let line_spans = |b: &[u8]| -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' {
                spans.push((start, i + 1));
                start = i + 1;
            }
        }
        if start < b.len() {
            spans.push((start, b.len()));
        }
        spans
    };
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Flip(at, b) => {
                if !bytes.is_empty() {
                    bytes[at % len] = *b;
                }
            }
            Edit::Insert(at, ins) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, ins.iter().copied());
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
            Edit::Number(at, n) => {
                // The next digit run at or after `at`.
                let Some(start) = bytes
                    .iter()
                    .skip(at % len)
                    .position(u8::is_ascii_digit)
                    .map(|i| i + at % len)
                else {
                    continue;
                };
                let end = start
                    + bytes[start..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                bytes.splice(start..end, n.bytes());
            }
            Edit::NulBlock(at, n) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, std::iter::repeat_n(0u8, *n));
            }
            Edit::DropLine(i) | Edit::DupLine(i) => {
                let spans = line_spans(&bytes);
                if spans.is_empty() {
                    continue;
                }
                let (s, t) = spans[i % spans.len()];
                if matches!(e, Edit::DropLine(_)) {
                    bytes.drain(s..t);
                } else {
                    let copy = bytes[s..t].to_vec();
                    bytes.splice(t..t, copy);
                }
            }
            Edit::SwapLines(a, b) => {
                let spans = line_spans(&bytes);
                if spans.len() < 2 {
                    continue;
                }
                let (x, y) = (spans[a % spans.len()], spans[b % spans.len()]);
                let (x, y) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                if x == y {
                    continue;
                }
                let mut out = bytes[..x.0].to_vec();
                out.extend_from_slice(&bytes[y.0..y.1]);
                out.extend_from_slice(&bytes[x.1..y.0]);
                out.extend_from_slice(&bytes[x.0..x.1]);
                out.extend_from_slice(&bytes[y.1..]);
                bytes = out;
            }
        }
    }
    bytes
}

fn mutated_log() -> impl Strategy<Value = Vec<u8>> {
    let n = fixtures().len();
    (0..n, prop::collection::vec(edit(), 0..12))
        .prop_map(|(i, edits)| apply(fixtures()[i].clone(), &edits))
}

/// What the parser promises about every report it returns.
fn check_report(r: &KernelReport) {
    assert!(!r.lines.is_empty());
    assert!(r.lines.windows(2).all(|w| w[0].line_no < w[1].line_no));
    if r.complete {
        assert!(r.kill.is_some() || r.no_killable);
        assert!(!r.interleaved);
    }
    assert_eq!(r.cut_off(), !r.complete && !r.no_killable);
    if let Some(t) = &r.tasks {
        let mut pids: Vec<u32> = t.rows.iter().map(|row| row.pid).collect();
        pids.sort_unstable();
        let before = pids.len();
        pids.dedup();
        assert_eq!(pids.len(), before, "a pid listed twice");
    }
    let _ = r.global_totalpages(4096);
    let _ = r.chosen_pid();
    serde_json::to_string(r).unwrap();
}

fn check_items(items: &[ReportItem]) {
    for item in items {
        if let ReportItem::Report(r) = item {
            check_report(r);
        }
    }
}

/// The same input read in the smallest chunks must give the same items.
fn streamed(bytes: &[u8]) -> Vec<ReportItem> {
    let mut reader = std::io::BufReader::with_capacity(7, bytes);
    let mut parser = LogParser::new();
    let mut items = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    while let Some(cut) = read_line_capped(
        &mut reader,
        &mut buf,
        oomtrace_core::report::log::MAX_LINE_BYTES,
    )
    .unwrap()
    {
        line += 1;
        parser.push_raw(line, &buf, cut, &mut items);
    }
    parser.finish(&mut items);
    items.into_iter().map(|i| i.item).collect()
}

/// `oomtrace report`'s reader on `bytes` as a file: it may fail, with one
/// line, but never panic.
fn read_as_file(bytes: &[u8], suffix: &str) {
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    file.write_all(bytes).unwrap();
    let mut count = 0;
    match read_file(file.path(), &mut |d| {
        count += 1;
        // Every decision renders, and its card and table carry no control
        // character from the input (a line feed only between lines).
        for text in [render_card(&d, 20), render_candidate_table(&d)] {
            for line in text.lines() {
                assert!(!line.chars().any(is_unsafe), "{line:?}");
            }
        }
        serde_json::to_string(&d)
            .map(drop)
            .map_err(std::io::Error::other)
    }) {
        Ok(summary) => assert_eq!(summary.decisions, count),
        Err(ReadError::Input(e)) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg:?}");
        }
        Err(ReadError::Sink(e)) => panic!("{e}"),
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides this for a longer run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_survives_mutated_logs(bytes in mutated_log()) {
        let parsed = parse_log(&bytes);
        if let Ok(items) = &parsed {
            check_items(items);
            prop_assert_eq!(&streamed(&bytes), items);
        }
    }

    #[test]
    fn parser_survives_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(items) = parse_log(&bytes) {
            check_items(&items);
        }
    }

    #[test]
    fn reader_survives_mutated_logs_and_dumps(bytes in mutated_log(), as_json in any::<bool>()) {
        if as_json {
            // The log's first report as a dump-like JSON document, mutated
            // the same way.
            let doc = serde_json::json!({
                "type": "dump",
                "schema_version": 1,
                "decision": { "type": "decision", "lines": String::from_utf8_lossy(&bytes) },
            });
            let mut text = doc.to_string().into_bytes();
            let cut = bytes.len() % (text.len() + 1);
            text.truncate(cut.max(1));
            read_as_file(&text, ".json");
        } else {
            read_as_file(&bytes, ".log");
        }
    }

    #[test]
    fn export_reader_terminates(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut input = b"__CURSOR=s\n".to_vec();
        input.extend(bytes);
        let mut reader = ExportReader::new(&input[..], 1);
        let mut entries = 0;
        while let Ok(Some(_)) = reader.next_entry() {
            entries += 1;
            prop_assert!(entries <= input.len());
        }
        read_as_file(&input, ".export");
    }

    #[test]
    fn badness_never_wraps(
        rss in any::<u64>(), swap in any::<u64>(), pgt in any::<u64>(),
        adj in any::<i32>(), uid in any::<u32>(), total in any::<u64>(),
        model in prop_oneof![
            Just(BadnessModel::Linux5_9), Just(BadnessModel::Linux4_19),
            Just(BadnessModel::Linux3_10), Just(BadnessModel::PerMille),
        ],
    ) {
        let input = BadnessInput {
            rss_pages: rss, swap_pages: swap, pgtable_pages: pgt, oom_score_adj: adj, uid,
        };
        if let Ok(Some(points)) = try_badness(model, input, total) {
            // Exactly the formula, computed wide.
            let base = i128::from(rss) + i128::from(swap) + i128::from(pgt);
            let wide = base + i128::from(adj) * i128::from(total / 1000);
            match model {
                BadnessModel::Linux5_9 => prop_assert_eq!(i128::from(points), wide),
                BadnessModel::Linux4_19 | BadnessModel::Linux3_10 => {
                    prop_assert_eq!(i128::from(points), wide.max(1))
                }
                BadnessModel::PerMille => prop_assert!((1..=1000).contains(&points)),
            }
        }
    }
}

/// Found by hand while fuzzing (then by the `Number` edit): a task row with
/// rss 2^64-1 or a memcg limit of 2^64-1 kB overflowed the decision's
/// arithmetic (`pages * page_size`, `limit_kb * 1024`) — a panic in debug
/// builds, a wrapped number in release. The parser now leaves such numbers
/// out and flags the report `implausible`.
#[test]
fn regression_forged_extremes_do_not_overflow() {
    let log = fixtures()
        .iter()
        .find(|l| {
            let t = String::from_utf8_lossy(l);
            t.contains("limit 65536kB") && t.contains(" hog64\n")
        })
        .expect("a single-hog fixture")
        .clone();
    let text = String::from_utf8(log).unwrap();
    let row = text
        .lines()
        .find(|l| l.ends_with(" hog64") && l.contains("] ["))
        .unwrap();
    let close = row.rfind(']').unwrap();
    let mut columns: Vec<&str> = row[close + 1..].split_whitespace().collect();
    // uid tgid total_vm rss ...: rss is the fourth column.
    columns[3] = "18446744073709551615";
    let forged_row = format!("{} {}", &row[..=close], columns.join(" "));
    // The first memcg stat after its header, as i64::MAX bytes (found by
    // the fuzzer: `kernel * 10` overflowed in the decision).
    let stats = text.find("Memory cgroup stats for").unwrap();
    let stat_line = text[stats..].lines().nth(1).unwrap();
    let (key_part, _) = stat_line.rsplit_once(' ').unwrap();
    let forged_stat = format!("{key_part} 9223372036854775807");
    for forged in [
        text.replacen(stat_line, &forged_stat, 1),
        text.replacen(row, &forged_row, 1),
        text.replace("limit 65536kB", "limit 18446744073709551615kB"),
        text.replace("limit 65536kB", "limit 18014398509481985kB"),
        // Found by the fuzzer: 2^54 kB is 2^64 bytes.
        text.replace("limit 65536kB", "limit 18014398509481984kB"),
        text.replace("usage 65536kB", "usage 9007199254740993kB"),
    ] {
        assert_ne!(forged, text);
        let items = parse_log(forged.as_bytes()).unwrap();
        let report = items
            .iter()
            .find_map(|i| match i {
                ReportItem::Report(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert!(report.implausible && !report.complete);
        read_as_file(forged.as_bytes(), ".log");
    }
}
