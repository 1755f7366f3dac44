//! Integration tests on this machine's kernel (tracepoint backend, cgroup v1):
//! real OOM kills in throw-away memcgs, checked against what the kernel
//! itself printed and the memcg's own files.
mod support;

use std::fs;

use serde_json::Value;
use support::*;

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
    // Taken from that very line, and said so.
    assert_eq!(victim["rss_source"], "kernel_report", "{decision}");
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
        .inspect(assert_schema_valid)
        .find(|v| v["type"] == "decision")
        .unwrap_or_else(|| panic!("no decision in {stdout}"));
    let pid = u64_of(&decision["victim"]["pid"]) as u32;
    let killed = log.killed_line(pid);
    assert_victim_matches_kernel(&decision, &killed);
    // The victim is the demo's hog, named so nobody reads it as the tracer.
    assert_eq!(decision["victim"]["comm"], "demo-hog");
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

// ---- Post-mortem, stalls and the seed incidents (issue: the decision, explained) ----

/// Seed 001: a container vanishes at its 512 MiB limit, exit 137, nothing in its logs.
#[test]
fn seed_container_vanishes_at_512_mib_with_exit_137() {
    require_root();
    let id = "0ead341e639c2f2bd27a38666aa0834c969e8c7e6d2fb21516a2c698adce8d5f";
    let host = TestCgroup::new_v1("docker-seed", 8 << 30);
    let docker = host.child("docker", 8 << 30);
    let container = docker.child(id, 512 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", container.path.to_str().unwrap(), "--count", "1"]);
    let mut app = Hog::start("app", &container, &[]);
    let killed = log.killed_line(app.pid());
    let status = app.child.wait().unwrap();
    // What `docker inspect` shows as ExitCode 137: 128 + SIGKILL.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(decision["container"]["runtime"], "docker");
    assert_eq!(decision["container"]["id"], id);
    assert_eq!(
        u64_of(&decision["oom_memcg"]["limit_bytes"]),
        container.limit_bytes()
    );
    let why = decision["explanation"].to_string();
    assert!(why.contains("exit status 137"), "{why}");
    assert!(
        why.contains(&format!("docker container {}", &id[..12])),
        "{why}"
    );
    assert!(
        why.contains(&format!(
            "limit of {}",
            oomtrace_core::base::units::human_bytes(container.limit_bytes())
        )),
        "{why}"
    );
    assert!(tracer.wait_exit().success());
}

/// Seed 003: usage_in_bytes counts page cache; the kill is decided on rss.
#[test]
fn page_cache_in_usage_is_explained_with_the_kernels_numbers() {
    require_root();
    let cgroup = TestCgroup::new_v1("cache", 96 << 20);
    let file = std::env::temp_dir().join(format!("oomtrace-cache-{}", std::process::id()));
    // Write 48 MiB from inside the memcg so its page cache is charged there.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 0 > {}/cgroup.procs && dd if=/dev/zero of={} bs=1M count=48 status=none",
            cgroup.path.display(),
            file.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let usage_before: u64 = std::fs::read_to_string(cgroup.path.join("memory.usage_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        usage_before >= 40 << 20,
        "page cache not charged: {usage_before}"
    );

    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    let mut hog = Hog::start("cachehog", &cgroup, &[]);
    let (report, killed) = log.killed_report(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");
    std::fs::remove_file(&file).unwrap();
    assert_victim_matches_kernel(&decision, &killed);

    // The composition sentence uses the kernel's own "Memory cgroup stats".
    let cache = report_stat(&report, "total_cache")
        .or(report_stat(&report, "cache"))
        .unwrap();
    let anon = report_stat(&report, "total_rss")
        .or(report_stat(&report, "rss"))
        .unwrap();
    let hb = oomtrace_core::base::units::human_bytes;
    let why = decision["explanation"].to_string();
    assert!(
        why.contains(&format!("{} anonymous memory", hb(anon)))
            && why.contains(&format!("{} page cache", hb(cache))),
        "{why} / cache {cache} anon {anon}"
    );
    assert!(why.contains("Usage counts page cache"), "{why}");
    assert!(tracer.wait_exit().success());
}

#[test]
fn oom_disabled_stall_is_reported_then_released() {
    require_root();
    let cgroup = TestCgroup::new_v1("stall", 32 << 20);
    std::fs::write(cgroup.path.join("memory.oom_control"), "1").unwrap();
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    let mut hog = Hog::start("stuckhog", &cgroup, &[]);
    let stalled = tracer.next_record("oom_stall");
    assert_eq!(stalled["state"], "stalled");
    assert_eq!(stalled["memcg"], cgroup.relative.as_str());
    assert_eq!(u64_of(&stalled["limit_bytes"]), cgroup.limit_bytes());
    let task = stalled["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["pid"] == hog.pid())
        .unwrap_or_else(|| panic!("hog not in {stalled}"));
    assert_eq!(task["wchan"], "mem_cgroup_oom_synchronize");
    // The memcg's own file agrees: the killer is off and the memcg is under OOM.
    let control = std::fs::read_to_string(cgroup.path.join("memory.oom_control")).unwrap();
    assert!(control.contains("oom_kill_disable 1") && control.contains("under_oom 1"));

    // Re-enable the killer: the kernel kills the hog and the stall ends.
    std::fs::write(cgroup.path.join("memory.oom_control"), "0").unwrap();
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    // --count 1 ends the run after the decision; the stall's end is reported before exit.
    assert!(tracer.wait_exit().success());
    let decisions = tracer.seen_records("decision");
    assert_eq!(decisions.len(), 1);
    assert_victim_matches_kernel(&decisions[0], &killed);
    let stalls = tracer.seen_records("oom_stall");
    let released = stalls.last().unwrap();
    assert_eq!(stalls.len(), 2, "{stalls:?}");
    assert_eq!(released["state"], "released");
    assert!(released["stalled_ms"].as_f64().unwrap() >= stalled["stalled_ms"].as_f64().unwrap());

    // One OOM, one episode: the stall, the kill that ended it and the
    // stall's end share an oom_id, which names this boot.
    let id = stalled["oom_id"].as_str().expect("oom_id");
    assert!(id.starts_with(&this_boot_prefix()), "{id}");
    assert_eq!(
        decisions[0]["oom_id"].as_str(),
        Some(id),
        "{}",
        decisions[0]
    );
    assert_eq!(released["oom_id"].as_str(), Some(id), "{released}");
}

/// The first 8 hex digits of this boot's id: the start of every live `oom_id`.
fn this_boot_prefix() -> String {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    boot.chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect()
}

#[test]
fn dump_survives_sigterm_mid_oom() {
    require_root();
    let cgroup = TestCgroup::new_v1("sigterm", 48 << 20);
    let dumps = tempfile::tempdir().unwrap();
    let log = KernelLog::open();
    let (mut tracer, _) = Tracer::start_json(&[
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--dump-dir",
        dumps.path().to_str().unwrap(),
    ]);
    let mut hog = Hog::start("termhog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    // SIGTERM as soon as the kernel has reported the kill.
    send_signal(&tracer.child, libc::SIGTERM);
    assert!(tracer.wait_exit().success());
    assert!(hog.wait_killed());

    let files = oomtrace_core::dump::DumpWriter::list(dumps.path()).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dump: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_schema_valid(&dump);
    assert_eq!(dump["type"], "dump");
    assert_victim_matches_kernel(&dump["decision"], &killed);
    let lines = dump["kernel_report_lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| {
        l.as_str()
            .unwrap()
            .contains(&format!("Killed process {}", killed.pid))
    }));
    assert!(!dump["events"].as_array().unwrap().is_empty());
    let id = dump["decision"]["oom_id"]
        .as_str()
        .expect("oom_id in the dump");
    assert!(id.starts_with(&this_boot_prefix()), "{id}");
    // The report keeps the dump's id rather than making one up.
    let (code, out, err) = run_oomtrace(&["report", "--json", files[0].to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let reported: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reported["oom_id"].as_str(), Some(id));
    assert_eq!(
        dump["host"]["boot_id"].as_str().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
}

#[test]
fn report_reproduces_the_live_card_from_a_dump() {
    require_root();
    let cgroup = TestCgroup::new_v1("card", 48 << 20);
    let dumps = tempfile::tempdir().unwrap();
    let log = KernelLog::open();
    let mut tracer = Tracer::start(&[
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--count",
        "1",
        "--dump-dir",
        dumps.path().to_str().unwrap(),
    ]);
    tracer.wait_line("oomtrace: tracing OOM kills");
    let mut hog = Hog::start("cardhog", &cgroup, &[]);
    log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    assert!(tracer.wait_exit().success());
    let card_start = tracer
        .seen
        .iter()
        .position(|l| l.starts_with("━━ OOM kill #1"))
        .unwrap_or_else(|| panic!("no card in {:?}", tracer.seen));
    let live_card = tracer.seen[card_start..].join("\n");

    let (code, out, err) = run_oomtrace(&["report", dumps.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&live_card),
        "live:\n{live_card}\nreport:\n{out}"
    );
    assert!(out.contains("all candidates (1)"), "{out}");
}

/// The same memcg OOMing again and again (a crash loop) is called out with
/// how fast it refilled.
#[test]
fn repeated_ooms_in_one_memcg_are_called_out() {
    require_root();
    let cgroup = TestCgroup::new_v1("loop", 32 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "3"]);
    for _ in 0..3 {
        let mut hog = Hog::start("crashloop", &cgroup, &[]);
        log.killed_line(hog.pid());
        assert!(hog.wait_killed());
    }
    assert!(tracer.wait_exit().success());
    assert_eq!(cgroup.oom_kill_count(), 3);
    let decisions = tracer.seen_records("decision");
    assert_eq!(decisions.len(), 3);
    let last = decisions[2]["explanation"].to_string();
    assert!(
        last.contains(&format!("{} has hit its limit 3 times", cgroup.relative))
            && last.contains("refilled at"),
        "{last}"
    );
    assert!(!decisions[0]["explanation"].to_string().contains("times in"));
    // Each kill is an OOM of its own: three episodes, three ids.
    let mut ids: Vec<&str> = decisions
        .iter()
        .map(|d| d["oom_id"].as_str().expect("oom_id"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

/// `doctor` reads the node's files; the tracer then tries for real. What
/// doctor says of fentry and kprobes, and the backend it names, must be
/// what the tracer's own start record shows.
#[test]
fn doctor_agrees_with_what_the_tracer_attaches() {
    require_root();
    let (code, stdout, stderr) = run_oomtrace(&["doctor", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let doctor: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_schema_valid(&doctor);
    let (_tracer, start) = Tracer::start_json(&["--duration", "1"]);
    assert_eq!(doctor["backend"], start["backend"], "{doctor}");
    let check = |name: &str| {
        doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {doctor}"))["ok"]
            .as_bool()
            .unwrap()
    };
    let attached = |prefix: &str| {
        start["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["attached"] == true && h["hook"].as_str().unwrap().starts_with(prefix))
    };
    assert_eq!(check("fentry"), attached("fentry/"), "{doctor}\n{start}");
    assert_eq!(check("kprobes"), attached("kprobe/"), "{doctor}\n{start}");
    assert!(
        check("btf") && check("tracefs") && check("kmsg"),
        "{doctor}"
    );
}

/// Self-protection: the start record says the tracer's oom_score_adj as the
/// kernel holds it; with CAP_SYS_RESOURCE that is the default -900, without
/// it the value is unchanged and a warning said why.
#[test]
fn the_tracer_lowers_its_own_oom_score_adj_where_allowed() {
    require_root();
    let (tracer, start) = Tracer::start_json(&["--duration", "5"]);
    let path = format!("/proc/{}/oom_score_adj", tracer.child.id());
    let held: i64 = fs::read_to_string(path).unwrap().trim().parse().unwrap();
    assert_eq!(start["oom_score_adj"].as_i64(), Some(held), "{start}");
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    const CAP_SYS_RESOURCE: u32 = 24;
    if cap_eff & (1 << CAP_SYS_RESOURCE) != 0 {
        assert_eq!(held, -900);
    }
}

/// The capability set the deployment units grant is enough: oomtrace as
/// user nobody, holding only the required capabilities (plus
/// CAP_SYS_RESOURCE where this machine can grant it), traces a real OOM
/// and its decision matches the kernel's own kill line.
#[test]
fn a_non_root_user_with_the_documented_capabilities_traces_an_oom() {
    use oomtrace::kernel::facts::{CAPABILITIES, REQUIRED, effective_capabilities};
    require_root();
    let ours = effective_capabilities().unwrap();
    let caps: Vec<String> = CAPABILITIES
        .iter()
        .filter(|(bit, name, _)| REQUIRED.contains(name) || ours & (1 << bit) != 0)
        .map(|(_, name, _)| format!("+{}", name.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = format!("-all,{}", caps.join(","));
    let cgroup = TestCgroup::new_v1("caps", 32 << 20);
    let log = KernelLog::open();
    let mut setpriv = std::process::Command::new("setpriv");
    setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    for flag in ["--inh-caps", "--ambient-caps", "--bounding-set"] {
        setpriv.arg(format!("{flag}={caps}"));
    }
    let path = cgroup.path.to_str().unwrap();
    setpriv.args([OOMTRACE, "--json", "--count", "1", "--cgroup", path]);
    let mut tracer = Tracer::spawn(setpriv);
    let start = tracer.next_record("start");
    assert_eq!(start["kernel_report"], true, "{start}");
    let mut hog = Hog::start("caphog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert!(tracer.wait_exit().success());
}
