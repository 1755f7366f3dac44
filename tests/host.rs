//! Integration tests on this machine's kernel (tracepoint backend, cgroup v1):
//! real OOM kills in throw-away memcgs, checked against what the kernel
//! itself printed and the memcg's own files.
mod support;

use serde_json::Value;
use support::*;

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The victim in the decision equals the kernel's own kill line, number for number.
fn assert_victim_matches_kernel(decision: &Value, killed: &KilledLine) {
    let victim = &decision["victim"];
    assert_eq!(u64_of(&victim["pid"]), u64::from(killed.pid), "{decision}");
    assert_eq!(victim["comm"], killed.comm.as_str());
    assert_eq!(u64_of(&victim["rss_anon_bytes"]), killed.anon_rss_kb * 1024);
    assert_eq!(u64_of(&victim["rss_file_bytes"]), killed.file_rss_kb * 1024);
    assert_eq!(
        u64_of(&victim["rss_shmem_bytes"]),
        killed.shmem_rss_kb * 1024
    );
    assert_eq!(u64_of(&victim["pgtables_bytes"]), killed.pgtables_kb * 1024);
    assert_eq!(u64_of(&victim["total_vm_bytes"]), killed.total_vm_kb * 1024);
    assert_eq!(
        victim["oom_score_adj"].as_i64(),
        Some(i64::from(killed.oom_score_adj))
    );
    assert_eq!(u64_of(&victim["uid"]), u64::from(killed.uid));
    assert!(
        decision["killed"]
            .as_array()
            .unwrap()
            .contains(&Value::from(killed.pid))
    );
}

#[test]
fn single_hog_decision_matches_the_kernel_report() {
    require_root();
    let cgroup = TestCgroup::new_v1("single", 64 << 20);
    let log = KernelLog::open();
    let cgroup_arg = cgroup.path.to_str().unwrap();
    let (mut tracer, start) = Tracer::start_json(&["--cgroup", cgroup_arg, "--count", "1"]);
    assert_eq!(start["backend"], "tracepoint");
    assert!(
        start["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["hook"] == "tracepoint/oom/mark_victim" && h["attached"] == true)
    );

    let mut hog = Hog::start("hog64", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed(), "the hog was not SIGKILLed");
    let decision = tracer.next_record("decision");

    assert_eq!(decision["schema_version"], 1);
    assert_eq!(decision["constraint"], "memcg");
    assert_eq!(decision["backend"], "tracepoint");
    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(decision["victim"]["memcg"], cgroup.relative.as_str());
    assert_eq!(decision["kernel_report"], "complete");

    // The limit that fired is the memcg's own, as its file says.
    let oom_memcg = &decision["oom_memcg"];
    assert_eq!(oom_memcg["path"], cgroup.relative.as_str());
    assert_eq!(u64_of(&oom_memcg["limit_bytes"]), cgroup.limit_bytes());
    assert!(u64_of(&oom_memcg["usage_bytes"]) <= cgroup.limit_bytes());

    // The hog allocated, so the kernel charged it: it is the trigger too.
    assert_eq!(u64_of(&decision["trigger"]["pid"]), u64::from(hog.pid()));
    assert_eq!(decision["trigger"]["memcg"], cgroup.relative.as_str());

    // The candidate table holds the hog, ranked first, flagged as the victim.
    let candidates = decision["candidates"].as_array().unwrap();
    assert_eq!(decision["candidates_source"], "kernel_report");
    assert_eq!(u64_of(&candidates[0]["pid"]), u64::from(hog.pid()));
    assert_eq!(candidates[0]["victim"], true);
    assert_eq!(decision["totalpages"], cgroup.limit_bytes() / 4096);
    assert_eq!(
        u64_of(&candidates[0]["rss_anon_bytes"]),
        killed.anon_rss_kb * 1024
    );
    assert_eq!(decision["freed"]["exited"], true);
    assert_eq!(cgroup.oom_kill_count(), 1);
    assert!(tracer.wait_exit().success());
}

#[test]
fn parent_limit_is_named_as_the_oom_memcg() {
    require_root();
    let parent = TestCgroup::new_v1("parent", 48 << 20);
    let child = parent.child("child", 200 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", child.path.to_str().unwrap(), "--count", "1"]);
    let mut hog = Hog::start("hierhog", &child, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");

    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(decision["victim"]["memcg"], child.relative.as_str());
    assert_eq!(decision["oom_memcg"]["path"], parent.relative.as_str());
    assert_eq!(
        u64_of(&decision["oom_memcg"]["limit_bytes"]),
        parent.limit_bytes()
    );
    assert!(parent.limit_bytes() < child.limit_bytes());
    let explanation = decision["explanation"].to_string();
    assert!(
        explanation.contains("ancestor's limit") && explanation.contains(&parent.relative),
        "{explanation}"
    );
    assert!(tracer.wait_exit().success());
}

#[test]
fn cgroup_filter_keeps_other_memcgs_out() {
    require_root();
    let traced = TestCgroup::new_v1("traced", 64 << 20);
    let other = TestCgroup::new_v1("other", 64 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", traced.path.to_str().unwrap(), "--count", "1"]);
    // First an OOM outside the traced memcg; the kernel's line proves it happened.
    let mut outsider = Hog::start("outsider", &other, &[]);
    log.killed_line(outsider.pid());
    assert!(outsider.wait_killed());
    // Then one inside: the first decision printed must be this one.
    let mut insider = Hog::start("insider", &traced, &[]);
    let killed = log.killed_line(insider.pid());
    assert!(insider.wait_killed());
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(decision["victim"]["comm"], "insider");
    assert!(tracer.wait_exit().success());
    assert!(
        !tracer.seen.iter().any(|l| l.contains("outsider")),
        "{:?}",
        tracer.seen
    );
}

#[test]
fn oom_score_adj_outranks_size_and_ranking_matches_the_kernel() {
    require_root();
    let cgroup = TestCgroup::new_v1("adj", 96 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    let mut small = Hog::start("small", &cgroup, &["--mib", "4", "--announce"]);
    small.wait_ready();
    // adj 1000 adds totalpages/1000*1000 points, more than the grower can reach.
    let mut adj1000 = Hog::start(
        "adj1000",
        &cgroup,
        &["--mib", "8", "--announce", "--oom-score-adj", "1000"],
    );
    adj1000.wait_ready();
    let grower = Hog::start("grower", &cgroup, &[]);
    // The kernel's choice is the oracle: oom_score_adj beats the larger grower.
    let killed = log.killed_line(adj1000.pid());
    assert!(adj1000.wait_killed());
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(killed.oom_score_adj, 1000);

    let candidates = decision["candidates"].as_array().unwrap();
    let find = |pid: u32| {
        candidates
            .iter()
            .find(|c| c["pid"] == pid)
            .unwrap_or_else(|| panic!("pid {pid} not a candidate: {decision}"))
    };
    assert_eq!(find(small.pid())["oom_score_adj"], 0);
    assert_eq!(find(adj1000.pid())["oom_score_adj"], 1000);
    assert_eq!(find(grower.pid())["oom_score_adj"], 0);
    // Ranked by points, the victim first, and it is not the biggest task.
    assert_eq!(u64_of(&candidates[0]["pid"]), u64::from(adj1000.pid()));
    assert!(u64_of(&find(grower.pid())["rss_bytes"]) > u64_of(&find(adj1000.pid())["rss_bytes"]));
    let totalpages = u64_of(&decision["totalpages"]);
    let adj_term = 1000 * (totalpages / 1000);
    let victim = find(adj1000.pid());
    let base = (u64_of(&victim["rss_bytes"])
        + u64_of(&victim["swap_bytes"])
        + u64_of(&victim["pgtables_bytes"]) / 4096 * 4096)
        / 4096;
    assert_eq!(u64_of(&victim["points"]), base + adj_term);
    assert!(tracer.wait_exit().success());
}

#[test]
fn demo_traces_its_own_oom_and_cleans_up() {
    require_root();
    let log = KernelLog::open();
    let (code, stdout, stderr) = run_oomtrace(&["demo", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let decision: Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "decision")
        .unwrap_or_else(|| panic!("no decision in {stdout}"));
    let pid = u64_of(&decision["victim"]["pid"]) as u32;
    let killed = log.killed_line(pid);
    assert_victim_matches_kernel(&decision, &killed);
    let cgroup = decision["oom_memcg"]["path"].as_str().unwrap().to_owned();
    assert!(cgroup.starts_with("/oomtrace-demo-"));
    assert!(!std::path::Path::new(&format!("{MEMCG_V1}{cgroup}")).exists());
}

/// Bad input: one clear line on stderr, a non-zero exit, never a panic.
fn assert_one_line_error(args: &[&str], expected: &str) {
    let (code, _, stderr) = run_oomtrace(args);
    assert_ne!(code, 0, "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].contains(expected), "{args:?}: {stderr}");
}

#[test]
fn bad_input_gets_one_clear_line() {
    require_root();
    assert_one_line_error(
        &["--cgroup", "/sys/fs/cgroup/memory/does-not-exist-oomtrace"],
        "does not exist",
    );
    assert_one_line_error(&["--cgroup", "/tmp"], "not in the memory cgroup hierarchy");
    assert_one_line_error(
        &["--cgroup", "/sys/fs/cgroup/memory/memory.stat"],
        "not a directory",
    );
    assert_one_line_error(&["--btf", "/nonexistent/vmlinux"], "kernel BTF not found");
    let (code, _, stderr) = run_oomtrace(&["--count", "many"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid value"), "{stderr}");
}

#[test]
fn non_root_is_told_to_use_sudo() {
    require_root();
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            OOMTRACE,
            "--count",
            "1",
        ])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}
