//! `oomtrace report` on saved kernel logs and dumps (no root needed): the
//! seed incidents that exist only as logs, and bad input. Every expected
//! number is read from the log itself.
use std::{path::PathBuf, process::Command};

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
    let binary = dir.path().join("binary.log");
    std::fs::write(&binary, b"line one\nline two\x00\n").unwrap();
    assert_one_line_error(&[binary.to_str().unwrap()], &["binary.log", "line 2"]);

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
