//! `oomtrace report` on saved kernel logs and dumps (no root needed): the
//! seed incidents that exist only as logs, and bad input. Every expected
//! number is read from the log itself.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[path = "support/mod.rs"]
mod support;

use oomtrace_core::base::units::human_bytes;
use serde_json::Value;

const OOMTRACE: &str = env!("CARGO_BIN_EXE_oomtrace");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/kernel-reports"
    ))
    .join(name)
}

fn report(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(OOMTRACE)
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The text between `before` and the next `after` on the first line holding `before`.
fn between<'a>(text: &'a str, before: &str, after: &str) -> &'a str {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} not in log"))
        + before.len();
    let rest = &text[start..];
    &rest[..rest.find(after).unwrap()]
}

#[test]
fn seed_2_6_32_many_workers_init_selected_child_sacrificed() {
    let path = fixture("seed-2.6.32-centos6-many-procs-excerpt.log");
    let log = std::fs::read_to_string(&path).unwrap();
    // From the log: "Kill process 15947 (init) score 1 or sacrifice child"
    let selected_pid = between(&log, "Kill process ", " (");
    let selected_comm = between(&log, &format!("Kill process {selected_pid} ("), ")");
    let score = between(&log, "score ", " or sacrifice");
    // "Killed process 16944, UID 0, (mingetty)"
    let killed_pid = between(&log, "Killed process ", ",");
    let killed_comm = between(&log, "UID 0, (", ")");
    let workers = log.lines().filter(|l| l.ends_with(" node")).count();
    assert_eq!(score, "1");

    let (code, out, err) = report(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("per mille"), "{out}");
    assert!(
        out.contains(&format!(
            "the first one found won — {selected_comm} (pid {selected_pid})"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{killed_comm} (pid {killed_pid}) was killed in place of {selected_comm} (pid {selected_pid})"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("victim     {killed_comm} (pid {killed_pid})")));
    // The excerpt lists the worker rows the author kept; all are candidates.
    assert!(
        out.contains(&format!("all candidates ({})", workers + 4)),
        "{out}"
    );
}

#[test]
fn seed_4_4_java_pages_are_not_kilobytes() {
    let path = fixture("seed-4.4-ubuntu-java-256m.log");
    let log = std::fs::read_to_string(&path).unwrap();
    let java_row = log.lines().find(|l| l.ends_with(" java")).unwrap();
    let columns: Vec<&str> = java_row
        .split(']')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    // uid tgid total_vm rss nr_ptes nr_pmds swapents oom_score_adj name
    let rss_pages: u64 = columns[3].parse().unwrap();
    let score = between(&log, "(java) score ", " or sacrifice");
    let limit_kb: u64 = between(&log, "memory: usage 262144kB, limit ", "kB")
        .parse()
        .unwrap();
    let rss_huge_kb: u64 = between(&log, "rss_huge:", "KB").parse().unwrap();
    let container_id = between(&log, "Task in /docker/", " killed");

    let (code, out, err) = report(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "java's rss column {rss_pages} means {}, not {rss_pages} kB",
            human_bytes(rss_pages * 4096)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("with score {score} (points × 1000 / totalpages) — the recomputed points give the same score")),
        "{out}"
    );
    assert!(out.contains(&format!("limit of {}", human_bytes(limit_kb * 1024))));
    assert!(
        out.contains(&format!(
            "{} of the anonymous memory was transparent huge pages",
            human_bytes(rss_huge_kb * 1024)
        )),
        "{out}"
    );
    assert!(out.contains(container_id), "{out}");
}

#[test]
fn report_json_round_trips_and_matches_the_log() {
    let path = fixture("6.12.100+deb12-amd64-b-v2-hierarchy.log");
    let log = std::fs::read_to_string(&path).unwrap();
    let oom_memcg = between(&log, "oom_memcg=", ",");
    let task_memcg = between(&log, "task_memcg=", ",");
    let killed_pid: u64 = between(&log, "Killed process ", " (").parse().unwrap();
    let (code, out, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let decision: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    support::assert_schema_valid(&decision);
    assert_eq!(decision["type"], "decision");
    assert_eq!(decision["backend"], "kernel_report");
    assert_eq!(decision["victim"]["pid"], killed_pid);
    assert_eq!(decision["oom_memcg"]["path"], oom_memcg);
    assert_eq!(decision["victim"]["memcg"], task_memcg);

    // The re-emitted JSON is itself valid input, and says the same.
    let saved = std::env::temp_dir().join(format!("oomtrace-report-{}.jsonl", std::process::id()));
    std::fs::write(&saved, &out).unwrap();
    let (code, again, err) = report(&["--json", saved.to_str().unwrap()]);
    std::fs::remove_file(&saved).unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, out);
}

fn assert_one_line_error(args: &[&str], expected: &[&str]) {
    let (code, _, err) = report(args);
    assert_ne!(code, 0);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for e in expected {
        assert!(err.contains(e), "{e:?} not in {err}");
    }
}

#[test]
fn corrupt_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // A NUL costs its line: with no report in the rest, the file has
    // nothing, and the message says which line was skipped.
    let binary = dir.path().join("binary.log");
    std::fs::write(&binary, b"line one\nline two\x00\n").unwrap();
    assert_one_line_error(
        &[binary.to_str().unwrap()],
        &["binary.log", "no oomtrace dump", "line 2", "NUL"],
    );
    let all_binary = dir.path().join("all-binary.bin");
    std::fs::write(&all_binary, b"\x00\x01\x02\n\x7fELF\x00\n").unwrap();
    assert_one_line_error(
        &[all_binary.to_str().unwrap()],
        &["all-binary.bin", "not text", "line 1"],
    );

    let truncated = dir.path().join("oom-truncated.json");
    std::fs::write(
        &truncated,
        b"{\"type\":\"dump\",\"schema_version\":1,\"decision\":{\"ty",
    )
    .unwrap();
    assert_one_line_error(
        &[truncated.to_str().unwrap()],
        &["oom-truncated.json:1", "truncated"],
    );

    let unrelated = dir.path().join("syslog");
    std::fs::write(&unrelated, b"Nov 23 10:00:00 host sshd[1]: Accepted key\n").unwrap();
    assert_one_line_error(
        &[unrelated.to_str().unwrap()],
        &["syslog", "no oomtrace dump"],
    );

    let empty = dir.path().join("empty-dir");
    std::fs::create_dir(&empty).unwrap();
    assert_one_line_error(&[empty.to_str().unwrap()], &["empty-dir"]);

    assert_one_line_error(
        &["/nonexistent/oomtrace.log"],
        &["/nonexistent/oomtrace.log"],
    );
}

/// Every decision rebuilt from every kernel's reports matches the documented schema.
#[test]
fn decisions_from_every_fixture_match_the_schema() {
    let dir = fixture("");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let (code, out, err) = report(&["--json", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", path.display());
        for line in out.lines() {
            support::assert_schema_valid(&serde_json::from_str(line).unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} decisions");
}

#[test]
fn schema_rejects_undocumented_or_missing_fields() {
    let path = fixture("6.1.0-50-amd64-a-v2-single-hog.log");
    let (_, out, _) = report(&["--json", path.to_str().unwrap()]);
    let decision: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&decision));
    let mut missing = decision.clone();
    missing.as_object_mut().unwrap().remove("victim");
    assert!(!validator.is_valid(&missing));
    let mut extra = decision.clone();
    extra["undocumented"] = Value::from(1);
    assert!(!validator.is_valid(&extra));
    let mut pages = decision;
    pages["victim"]["rss_anon_bytes"] = Value::from(-4);
    assert!(!validator.is_valid(&pages));
}

/// Runs `oomtrace report` and fails the test (instead of hanging it) if it
/// has not exited within a generous bound.
fn report_bounded(args: &[&str]) -> (i32, String, String) {
    use std::io::Read as _;
    let mut child = Command::new(OOMTRACE)
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("oomtrace report {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn non_regular_files_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kmsg.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let socket = dir.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let link = dir.path().join("link-to-fifo");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for (path, kind) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        (link.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (socket.to_str().unwrap(), "a socket"),
    ] {
        let (code, out, err) = report_bounded(&[path]);
        assert_ne!(code, 0, "{path}");
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(path) && err.contains(kind), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
}

#[test]
fn damaged_log_still_reports_and_says_what_it_skipped() {
    let path = fixture("6.1.0-50-amd64-c-v2-many-procs-adj500-vs-grower.log");
    let log = std::fs::read(&path).unwrap();
    let (code, clean, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // A NUL block where a crash cut the file, a line of bytes that are not
    // UTF-8, and a line far longer than any kernel line, all before the
    // first report.
    let header = log
        .windows(b"invoked oom-killer".len())
        .position(|w| w == b"invoked oom-killer")
        .unwrap();
    let line_start = log[..header].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let mut damaged = log[..line_start].to_vec();
    damaged.extend_from_slice(&[0u8; 4096]);
    damaged.extend_from_slice(b"\n\xff\xfe\xfd not utf-8\n");
    damaged.extend(std::iter::repeat_n(b'x', 1 << 20));
    damaged.push(b'\n');
    damaged.extend_from_slice(&log[line_start..]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.log");
    std::fs::write(&file, &damaged).unwrap();
    let (code, out, err) = report(&["--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let strip = |out: &str| -> Vec<Value> {
        out.lines()
            .map(|l| {
                let mut d: Value = serde_json::from_str(l).unwrap();
                // Line numbers in the evidence moved by three lines.
                d.as_object_mut().unwrap().remove("evidence");
                d
            })
            .collect()
    };
    assert_eq!(strip(&out), strip(&clean));
    let nul_line = log[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("crash.log"), "{err}");
    assert!(
        err.contains(&format!(
            "1 line(s) skipped as not text (first: line {nul_line}, NUL byte)"
        )),
        "{err}"
    );
    assert!(err.contains("1 line(s) with invalid UTF-8"), "{err}");
    assert!(err.contains("1 line(s) longer than"), "{err}");
}

/// `log` as `journalctl -o json` entries of `host`, each kernel line one
/// entry with the kernel's time stamp; an entry of another program and one
/// whose MESSAGE is an array of bytes mixed in.
fn as_journal_json(log: &str, host: &str) -> String {
    let mut out = String::new();
    for (i, line) in log.lines().enumerate() {
        let (ts, msg) = oomtrace_core::report::strip_prefix(line);
        let mut entry = serde_json::json!({
            "__CURSOR": format!("s=abc;i={i:x}"),
            "__REALTIME_TIMESTAMP": (1_700_000_000_000_000u64 + i as u64).to_string(),
            "__MONOTONIC_TIMESTAMP": "1",
            "_TRANSPORT": "kernel",
            "SYSLOG_IDENTIFIER": "kernel",
            "_HOSTNAME": host,
            "PRIORITY": "6",
            "MESSAGE": msg,
        });
        if let Some(ts) = ts {
            entry["_SOURCE_MONOTONIC_TIMESTAMP"] = ((ts * 1e6).round() as u64).to_string().into();
        }
        if i % 7 == 3 {
            entry["MESSAGE"] = msg.bytes().map(Value::from).collect();
        }
        out.push_str(&entry.to_string());
        out.push('\n');
        if i % 11 == 0 {
            let other = serde_json::json!({
                "__CURSOR": "x", "_TRANSPORT": "stdout", "_HOSTNAME": host,
                "MESSAGE": "Killed process 1 (init) total-vm:1kB",
            });
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
    out
}

/// `log` as `journalctl -o export`, every third MESSAGE a binary field.
fn as_journal_export(log: &str, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in log.lines().enumerate() {
        let (ts, msg) = oomtrace_core::report::strip_prefix(line);
        out.extend(format!("__CURSOR=s=abc;i={i:x}\n__REALTIME_TIMESTAMP=1700000000000000\n_TRANSPORT=kernel\n_HOSTNAME={host}\n").bytes());
        if let Some(ts) = ts {
            out.extend(
                format!(
                    "_SOURCE_MONOTONIC_TIMESTAMP={}\n",
                    (ts * 1e6).round() as u64
                )
                .bytes(),
            );
        }
        if i % 3 == 0 {
            out.extend(b"MESSAGE\n");
            out.extend((msg.len() as u64).to_le_bytes());
            out.extend(msg.bytes());
            out.push(b'\n');
        } else {
            out.extend(format!("MESSAGE={msg}\n").bytes());
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn journal_json_and_export_give_the_same_decisions_as_dmesg() {
    let path = fixture("6.12.100+deb12-amd64-c-v2-many-procs-adj500-vs-grower.log");
    let log = std::fs::read_to_string(&path).unwrap();
    let (code, from_dmesg, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!from_dmesg.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("journal.json");
    std::fs::write(&json, as_journal_json(&log, "node-1")).unwrap();
    let export = dir.path().join("journal.export");
    std::fs::write(&export, as_journal_export(&log, "node-1")).unwrap();
    let comparable = |out: &str| -> Vec<Value> {
        out.lines()
            .map(|l| {
                let mut d: Value = serde_json::from_str(l).unwrap();
                d.as_object_mut().unwrap().remove("evidence");
                d
            })
            .collect()
    };
    for input in [&json, &export] {
        let (code, out, err) = report(&["--json", input.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", input.display());
        assert_eq!(err, "");
        assert_eq!(
            comparable(&out),
            comparable(&from_dmesg),
            "{}",
            input.display()
        );
    }
}

/// Two hosts' logs merged line by line: each host's report stays its own.
#[test]
fn hosts_interleaved_in_one_syslog_stay_apart() {
    let a = std::fs::read_to_string(fixture("6.1.0-50-amd64-a-v2-single-hog.log")).unwrap();
    let b = std::fs::read_to_string(fixture("6.12.100+deb12-amd64-b-v2-hierarchy.log")).unwrap();
    let victim = |log: &str| -> u64 { between(log, "Killed process ", " (").parse().unwrap() };
    let syslog = |host: &str, log: &str| -> Vec<String> {
        log.lines()
            .map(|l| format!("Nov 23 18:32:48 {host} kernel: {l}"))
            .collect()
    };
    let (la, lb) = (syslog("web-1", &a), syslog("db-2", &b));
    let mut merged = Vec::new();
    for i in 0..la.len().max(lb.len()) {
        merged.extend(la.get(i).cloned());
        merged.extend(lb.get(i).cloned());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages");
    std::fs::write(&file, merged.join("\n")).unwrap();
    let (code, out, err) = report(&["--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let decisions: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut victims: Vec<u64> = decisions
        .iter()
        .map(|d| d["victim"]["pid"].as_u64().unwrap())
        .collect();
    victims.sort();
    let mut expected = vec![victim(&a), victim(&b)];
    expected.sort();
    assert_eq!(victims, expected);
    for d in &decisions {
        assert_eq!(d["kernel_report"], "complete");
        let pids: Vec<u64> = d["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["pid"].as_u64().unwrap())
            .collect();
        let mut unique = pids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), pids.len());
    }
}

/// A dump document around a decision, as `--dump-dir` writes it.
fn dump_of(decision: &Value, schema_version: u64) -> String {
    serde_json::json!({
        "type": "dump",
        "schema_version": schema_version,
        "decision": decision,
        "kernel_report_lines": [],
        "events": [],
        "host": {
            "hostname": "h", "kernel_release": null, "boot_id": null,
            "page_size": 4096, "oomtrace_version": "0.1.0"
        },
    })
    .to_string()
        + "\n"
}

#[test]
fn dump_directory_renders_good_dumps_and_names_each_bad_one() {
    let decisions: Vec<Value> = [
        "6.1.0-50-amd64-a-v2-single-hog.log",
        "6.12.100+deb12-amd64-b-v2-hierarchy.log",
    ]
    .iter()
    .map(|name| {
        let (code, out, err) = report(&["--json", fixture(name).to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.lines().next().unwrap()).unwrap()
    })
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let name = |seq: u32| format!("oom-20261123T184512.000000000Z-{seq:06}.json");
    std::fs::write(dir.path().join(name(1)), dump_of(&decisions[0], 1)).unwrap();
    std::fs::write(dir.path().join(name(2)), "{\"type\":\"dump\",\"sch").unwrap();
    std::fs::write(dir.path().join(name(3)), dump_of(&decisions[1], 1)).unwrap();
    std::fs::write(dir.path().join(name(4)), dump_of(&decisions[1], 99)).unwrap();
    let (code, out, err) = report(&["--json", dir.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    let rendered: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rendered, decisions, "both good dumps, in order");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains(&name(2)) && lines[0].contains("truncated"),
        "{err}"
    );
    assert!(lines[1].contains(&name(4)), "{err}");
    assert!(
        lines[1].contains("schema_version 99") && lines[1].contains("reads up to 1"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    // One file from a newer oomtrace, alone: one line naming both versions.
    assert_one_line_error(
        &[dir.path().join(name(4)).to_str().unwrap()],
        &["schema_version 99", "up to 1"],
    );
    // Several paths, some missing: the good one still renders.
    let (code, out, err) = report(&[
        "/nonexistent/a.log",
        dir.path().join(name(1)).to_str().unwrap(),
        "/nonexistent/b.log",
    ]);
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("(pid {})", decisions[0]["victim"]["pid"])),
        "{out}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn write_errors_fail_and_a_closed_pipe_succeeds_quietly() {
    let path = fixture("6.1.0-50-amd64-c-v1-many-procs.log");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = Command::new(OOMTRACE)
        .args(["report", path.to_str().unwrap()])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write the report") && err.contains("No space left"),
        "{err}"
    );

    // `report | head -c 100`: the reader goes away after a few bytes.
    let paths: Vec<&str> = std::iter::repeat_n(path.to_str().unwrap(), 40).collect();
    for json in [false, true] {
        let mut child = Command::new(OOMTRACE)
            .arg("report")
            .args(json.then_some("--json"))
            .args(&paths)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        use std::io::Read as _;
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "json {json}: {err}");
        assert_eq!(err, "", "json {json}");
        // The whole output is far larger than a pipe holds, so the write did fail.
        let mut args = vec!["--json"];
        args.truncate(usize::from(json));
        args.extend(&paths);
        let (_, whole, _) = report(&args);
        assert!(whole.len() > 1 << 20, "{}", whole.len());
    }
}

#[test]
fn error_lines_escape_terminal_controls() {
    let dir = tempfile::tempdir().unwrap();
    let nasty = dir
        .path()
        .join("x\u{1b}]0;owned\u{7}\nvictim init (pid 1).log");
    std::fs::write(&nasty, "Nov 23 10:00:00 host sshd[1]: nothing\n").unwrap();
    let (code, _, err) = report(&[nasty.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(
        err.contains("x\\x1b]0;owned\\x07\\x0avictim init (pid 1).log"),
        "{err:?}"
    );
}

#[test]
fn json_pretty_journal_and_pretty_dump_are_read() {
    let path = fixture("6.1.0-50-amd64-b-v2-hierarchy.log");
    let log = std::fs::read_to_string(&path).unwrap();
    let (code, from_dmesg, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pretty: String = as_journal_json(&log, "n")
        .lines()
        .map(|l| {
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(l).unwrap()).unwrap() + "\n"
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("journal-pretty.json");
    std::fs::write(&file, pretty).unwrap();
    let (code, out, err) = report(&["--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let victims = |out: &str| -> Vec<Value> {
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["victim"].clone())
            .collect()
    };
    assert_eq!(victims(&out), victims(&from_dmesg));

    // A dump pretty-printed (by jq, say) is one document over many lines.
    let decision: Value = serde_json::from_str(from_dmesg.lines().next().unwrap()).unwrap();
    let dump: Value = serde_json::from_str(&dump_of(&decision, 1)).unwrap();
    let file = dir.path().join("dump-pretty.json");
    std::fs::write(&file, serde_json::to_string_pretty(&dump).unwrap()).unwrap();
    let (code, out, err) = report(&["--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap(), decision);
    // Cut off inside: named with the line where the document began to fail.
    let text = serde_json::to_string_pretty(&dump).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let (code, _, err) = report(&[file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("dump-pretty.json:") && err.contains("EOF"),
        "{err}"
    );
}

#[test]
fn unwritable_stderr_is_no_panic() {
    // A log that reports fine but has a NUL line: the warning about it goes
    // to a stderr that cannot take it, which must not turn into a panic.
    let good = std::fs::read(fixture("6.1.0-50-amd64-a-v2-single-hog.log")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.log");
    let mut bytes = b"\0\0\0\n".to_vec();
    bytes.extend(good);
    std::fs::write(&damaged, bytes).unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = Command::new(OOMTRACE)
        .arg("report")
        .arg(&damaged)
        .stdout(Stdio::null())
        .stderr(full)
        .status()
        .unwrap();
    // 101 would be a panic.
    assert_eq!(status.code(), Some(0));
}

#[test]
fn dump_with_sizes_beyond_any_machine_is_refused_by_name() {
    let path = fixture("6.1.0-50-amd64-a-v2-single-hog.log");
    let (code, out, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let decision: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut forged = decision.clone();
    forged["victim"]["rss_anon_bytes"] = Value::from(u64::MAX);
    let file = dir.path().join("oom-forged.json");
    std::fs::write(&file, dump_of(&forged, 1)).unwrap();
    assert_one_line_error(
        &[file.to_str().unwrap()],
        &[
            "oom-forged.json:1",
            "implausible",
            "victim.rss_anon_bytes",
            &u64::MAX.to_string(),
        ],
    );
    // An unlimited swap limit, as a live decision records it, is fine.
    let mut unlimited = decision;
    unlimited["oom_memcg"]["swap_limit_bytes"] = Value::from(u64::MAX);
    std::fs::write(&file, dump_of(&unlimited, 1)).unwrap();
    let (code, _, err) = report(&[file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// `report -` reads a pipe as a stream and rebuilds exactly what the same
/// log read as a file gives.
#[test]
fn standard_input_gives_what_the_file_gives() {
    use std::io::Write as _;
    for name in [
        "seed-2.6.32-centos6-many-procs-excerpt.log",
        "6.1.0-50-amd64-c-v1-many-procs.log",
    ] {
        let path = fixture(name);
        let (code, from_file, err) = report(&["--json", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(!from_file.is_empty());
        let mut child = Command::new(OOMTRACE)
            .args(["report", "--json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::fs::read(&path).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&log));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), from_file);
    }
}

/// Dumps of `decisions` as `--dump-dir` writes them on a node named `host`.
fn dumps_from_node(dir: &std::path::Path, host: &str, decisions: &[&Value]) {
    use oomtrace_core::{
        base::host::HostFacts,
        dump::{DumpConfig, DumpDocument, DumpWriter},
        model::decision::Decision,
    };
    let mut writer = DumpWriter::open(DumpConfig {
        dir: dir.to_owned(),
        max_files: None,
        max_bytes: None,
    })
    .unwrap();
    for (seq, decision) in decisions.iter().enumerate() {
        let decision: Decision = serde_json::from_value((*decision).clone()).unwrap();
        let mut facts = HostFacts::collect(4096);
        facts.hostname = Some(host.to_owned());
        let document = DumpDocument::new(decision, Vec::new(), facts);
        let value = serde_json::to_value(&document).unwrap();
        writer
            .write(std::time::SystemTime::now(), seq as u64 + 1, &value)
            .unwrap();
    }
}

/// The fleet view over two nodes' dump directories: the memcg that OOMed
/// three times on two nodes comes first, with its usual cause; the bad dump
/// is counted and named, and the rest still sum up.
#[test]
fn summary_groups_many_nodes_dumps_and_names_bad_ones() {
    let rebuilt = |name: &str| -> Value {
        let (code, out, err) = report(&["--json", fixture(name).to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.lines().next().unwrap()).unwrap()
    };
    let often = rebuilt("6.1.0-50-amd64-a-v2-single-hog.log");
    let once = rebuilt("6.12.100+deb12-amd64-b-v2-hierarchy.log");
    assert_ne!(often["victim"]["memcg"], once["victim"]["memcg"]);
    let (node_a, node_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    dumps_from_node(node_a.path(), "node-a", &[&often, &often]);
    dumps_from_node(node_b.path(), "node-b", &[&often, &once]);
    let bad = node_b
        .path()
        .join("oom-20261123T184512.000000000Z-000009.json");
    std::fs::write(&bad, "{\"type\":\"dump\",\"sch").unwrap();
    let dirs = [
        node_a.path().to_str().unwrap(),
        node_b.path().to_str().unwrap(),
    ];

    let (code, out, err) = report(&["--summary", "--json", dirs[0], dirs[1]]);
    assert_ne!(code, 0, "a bad dump makes the status non-zero");
    assert!(
        err.contains("000009.json") && err.lines().count() == 1,
        "{err}"
    );
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for record in &records {
        support::assert_schema_valid(record);
    }
    assert_eq!(records.len(), 3, "{out}");
    let (first, second, inputs) = (&records[0], &records[1], &records[2]);
    assert_eq!(first["type"], "oom_summary");
    assert_eq!(first["group"], often["victim"]["memcg"]);
    assert_eq!(
        (first["ooms"].as_u64(), first["nodes"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(first["hosts"], serde_json::json!(["node-a", "node-b"]));
    let limit = human_bytes(often["oom_memcg"]["limit_bytes"].as_u64().unwrap());
    let cause = first["usual_cause"].as_str().unwrap();
    assert!(cause.contains(&limit), "{cause} lacks {limit}");
    assert_eq!(first["usual_cause_count"], 3);
    assert_eq!(second["group"], once["victim"]["memcg"]);
    assert_eq!(second["ooms"], 1);
    // The hierarchy fixture's limit is its parent's: said so.
    assert!(
        second["usual_cause"]
            .as_str()
            .unwrap()
            .contains(once["oom_memcg"]["path"].as_str().unwrap()),
        "{second}"
    );
    assert_eq!(inputs["type"], "oom_summary_inputs");
    assert_eq!(
        (inputs["decisions"].as_u64(), inputs["bad_files"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(
        inputs["bad"][0].as_str().unwrap().contains("000009.json"),
        "{inputs}"
    );

    // The table says the same for a person.
    let (code, table, _) = report(&["--summary", dirs[0], dirs[1]]);
    assert_ne!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let row = lines[1].split_whitespace().collect::<Vec<_>>();
    assert_eq!(&row[..2], ["3", "2"], "{table}");
    assert!(
        lines[1].ends_with(often["victim"]["memcg"].as_str().unwrap()),
        "{table}"
    );
    assert!(lines[3].contains("4 OOM kill(s) in 2 group(s)"), "{table}");
    assert!(lines[3].contains("1 file(s) could not be read"), "{table}");
}
