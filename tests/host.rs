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

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap()
}

fn possible_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }).unwrap()
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
    // Read once the victim's memory was uncharged: the memcg's anonymous
    // memory in the kernel's report (the hog's alone) is no longer counted.
    // The page counter also holds what the kernel charged ahead into
    // per-CPU stocks, at most MEMCG_CHARGE_BATCH (64) pages per CPU, which
    // the report's stats do not show (drained at the OOM, refilled after).
    let after = u64_of(&oom_memcg["usage_after_kill_bytes"]);
    let anon = u64_of(&oom_memcg["stat"]["anon_bytes"]);
    let stocks = 64 * page_size() * possible_cpus();
    assert!(
        after + anon <= u64_of(&oom_memcg["usage_bytes"]) + stocks,
        "{oom_memcg}"
    );
    assert_eq!(cgroup.oom_kill_count(), 1);
    assert!(tracer.wait_exit().success());
}

/// A memcg made after the tracer's start scan: its id is looked up off the
/// loop, and the decision waits for the answer (the trigger's memcg comes
/// from that lookup alone, the kernel's report has no fallback for it).
#[test]
fn a_memcg_made_after_the_start_is_named() {
    require_root();
    let parent = TestCgroup::new_v1("late-parent", 1 << 30);
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", parent.path.to_str().unwrap(), "--count", "1"]);
    let child = parent.child("late", 64 << 20);
    let log = KernelLog::open();
    let mut hog = Hog::start("latehog", &child, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed(), "the hog was not SIGKILLed");
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert_eq!(decision["victim"]["memcg"], child.relative.as_str());
    assert_eq!(decision["trigger"]["memcg"], child.relative.as_str());
    assert!(tracer.wait_exit().success());
    assert!(tracer.seen_records("lost").is_empty(), "{:?}", tracer.seen);
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
    assert_readme_card_is_the_demos(&stdout);
}

/// The card README.md shows is what the demo prints: this run's decision,
/// rendered by `oomtrace report`, has the same header, the same lines in
/// the same order and the same first reason, numbers and names aside.
fn assert_readme_card_is_the_demos(demo_json: &str) {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("demo.jsonl");
    fs::write(&saved, demo_json).unwrap();
    let (code, card, stderr) = run_oomtrace(&["report", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let readme = include_str!("../README.md");
    let shown = readme
        .split("```\n━━")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .map(|card| format!("━━{card}"))
        .expect("README.md shows a card in a code block");
    let outline = |card: &str| -> Vec<String> {
        let mut lines = card.lines();
        let mut outline = vec![mask(lines.next().unwrap_or_default())];
        for line in lines {
            let label = line.strip_prefix("  ").filter(|l| !l.starts_with(' '));
            if let Some(label) = label.and_then(|l| l.split_whitespace().next()) {
                outline.push(label.to_owned());
                if label == "why" {
                    break;
                }
            }
        }
        outline
    };
    assert_eq!(
        outline(&shown),
        outline(&card),
        "README.md's card:\n{shown}\nthe demo's:\n{card}"
    );
    let first_reason = |card: &str| card.lines().find(|l| l.starts_with("    • ")).map(mask);
    assert_eq!(first_reason(&shown), first_reason(&card));
}

/// `line` with its numbers (and so timestamps and demo memcg names) as `N`.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            out.push('N');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
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

/// A directory at the root of the v1 memory hierarchy, removed on drop if
/// the test made it.
struct RootDir {
    path: std::path::PathBuf,
    made: bool,
}

impl RootDir {
    fn make(name: &str) -> Self {
        let path = std::path::Path::new(MEMCG_V1).join(name);
        let made = !path.exists();
        if made {
            fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        }
        RootDir { path, made }
    }

    fn child(&self, name: &str, limit_bytes: u64) -> TestCgroup {
        let path = self.path.join(name);
        if path.exists() {
            oomtrace_core::cgroup::throwaway::remove_cgroup(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::write(path.join("memory.limit_in_bytes"), limit_bytes.to_string()).unwrap();
        let relative = format!(
            "/{}/{name}",
            self.path.file_name().unwrap().to_string_lossy()
        );
        TestCgroup { path, relative }
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        if self.made {
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// Seed 001: a container vanishes at its 512 MiB limit, exit 137, nothing in its logs.
#[test]
fn seed_container_vanishes_at_512_mib_with_exit_137() {
    require_root();
    let id = "0ead341e639c2f2bd27a38666aa0834c969e8c7e6d2fb21516a2c698adce8d5f";
    // Where dockerd (cgroupfs driver) makes it: `/docker/<id>` at the root
    // (the same names below another cgroup are nobody's container).
    let docker = RootDir::make("docker");
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
    // Without capabilities: the tracer, which dropped its own, reads the
    // wchan only of a task whose capabilities its own cover.
    let mut hog = Hog::start_without_capabilities("stuckhog", &cgroup);
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
    // Once attached it dropped what only the start-up needed; not uid 0,
    // it keeps CAP_DAC_READ_SEARCH for the runtimes' root-only state.
    assert_holds_what_start_says(tracer.child.id(), &start);
    let kept = start["privileges"]["capabilities"].as_array().unwrap();
    assert!(kept.contains(&"CAP_DAC_READ_SEARCH".into()), "{start}");
    assert!(!kept.contains(&"CAP_SYSLOG".into()), "{start}");
    let mut hog = Hog::start("caphog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert!(tracer.wait_exit().success());
}

/// Waits (at most [`TIMEOUT`]) until `ready` says the thing is there: for
/// files the tracer writes, which give no other signal.
fn await_fs<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = ready() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within {TIMEOUT:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The child's exit status, awaited at most [`TIMEOUT`] (a hang fails).
fn exit_within_timeout(child: std::process::Child) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, which hangs.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("oomtrace did not exit within {TIMEOUT:?}")
        }
    }
}

/// stderr says nothing but warnings: no error text.
fn assert_only_warnings(stderr: &[u8]) {
    let stderr = String::from_utf8_lossy(stderr);
    for line in stderr.lines() {
        assert!(line.starts_with("oomtrace: warning: "), "{stderr}");
    }
}

/// oomtrace with `args`, stdout and stderr piped and not read yet.
fn spawn_piped(args: &[&std::ffi::OsStr]) -> std::process::Child {
    std::process::Command::new(OOMTRACE)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A stdout nobody reads does not stall tracing: with the reader stuck
/// from the start (a 4 KiB pipe, full of records), the OOMs are still
/// traced and dumped; once the reader resumes, every decision comes out,
/// in order, after the start record.
#[test]
fn a_stdout_nobody_reads_never_stalls_tracing() {
    use std::{io::BufRead, os::fd::AsRawFd};
    require_root();
    let cgroup = TestCgroup::new_v1("stuckout", 48 << 20);
    let dumps = tempfile::tempdir().unwrap();
    let log = KernelLog::open();
    let mut child = spawn_piped(&[
        "--json".as_ref(),
        "--count".as_ref(),
        "3".as_ref(),
        "--cgroup".as_ref(),
        cgroup.path.as_os_str(),
        "--dump-dir".as_ref(),
        dumps.path().as_os_str(),
    ]);
    let stdout = child.stdout.take().unwrap();
    // SAFETY: fcntl on a pipe we own.
    let size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        size >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );

    // The start record is not read: the tracer is ready once it holds the
    // kernel log, which it opens after every hook is attached.
    let fds = format!("/proc/{}/fd", child.id());
    await_fs("the tracer's /dev/kmsg", || {
        fs::read_dir(&fds)
            .ok()?
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .any(|target| target == std::path::Path::new("/dev/kmsg"))
            .then_some(())
    });
    let pipe_full = || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD into an int, on a pipe we own.
        unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut queued) };
        queued as usize >= size as usize
    };
    let mut killed = Vec::new();
    for i in 0..3 {
        let mut hog = Hog::start(&format!("stuck{i}"), &cgroup, &[]);
        killed.push(log.killed_line(hog.pid()).pid);
        assert!(hog.wait_killed());
        // Dumped, and the pipe full: the output is stuck, the loop is not.
        await_fs(&format!("dump {}", i + 1), || {
            let files = oomtrace_core::dump::DumpWriter::list(dumps.path()).unwrap();
            (files.len() > i).then_some(())
        });
        await_fs("a full stdout pipe", || pipe_full().then_some(()));
    }
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .collect();
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .inspect(assert_schema_valid)
        .collect();
    assert_eq!(records[0]["type"], "start", "{lines:?}");
    let victims: Vec<u64> = records
        .iter()
        .filter(|r| r["type"] == "decision")
        .map(|r| u64_of(&r["victim"]["pid"]))
        .collect();
    let lost_output: u64 = records
        .iter()
        .filter(|r| r["type"] == "lost" && r["source"] == "output_backlog")
        .map(|r| u64_of(&r["count"]))
        .sum();
    // Three decisions fit the backlog many times over: none is lost.
    assert_eq!(lost_output, 0, "{lines:?}");
    let expected: Vec<u64> = killed.iter().map(|&p| u64::from(p)).collect();
    assert_eq!(victims, expected, "{lines:?}");
    let output = exit_within_timeout(child);
    assert!(output.status.success(), "{:?}", output.status);
    assert_only_warnings(&output.stderr);
}

/// `oomtrace --json | head -n 1`: the reader closes after the first record
/// and the tracer ends at once, exit 0, no error text — as Unix tools do.
#[test]
fn a_reader_that_closes_ends_the_run_cleanly() {
    use std::io::BufRead;
    require_root();
    let cgroup = TestCgroup::new_v1("headone", 48 << 20);
    let mut child = spawn_piped(&[
        "--json".as_ref(),
        "--cgroup".as_ref(),
        cgroup.path.as_os_str(),
    ]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let start: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(start["type"], "start");
    drop(stdout);
    // No --duration, no --count: only the closed pipe can end it.
    let output = exit_within_timeout(child);
    assert!(output.status.success(), "{:?}", output.status);
    assert_only_warnings(&output.stderr);
}

/// `--output FILE` through a real OOM: JSON Lines in FILE (stdout stays
/// empty), rotated by size (here: one record per file), every file 0600.
#[test]
fn output_file_rotates_through_a_real_oom() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let cgroup = TestCgroup::new_v1("outfile", 48 << 20);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oom.jsonl");
    let log = KernelLog::open();
    let flags = [
        "--count",
        "1",
        "--output-max-bytes",
        "1",
        "--output-keep",
        "3",
    ];
    let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    args.extend(["--output".as_ref(), file.as_os_str()]);
    args.extend(["--cgroup".as_ref(), cgroup.path.as_os_str()]);
    let child = spawn_piped(&args);
    await_fs("start record in the output file", || {
        let text = fs::read_to_string(&file).ok()?;
        text.contains("\"type\":\"start\"").then_some(())
    });
    let mut hog = Hog::start("filehog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let output = exit_within_timeout(child);
    assert!(output.status.success(), "{:?}", output.status);
    assert!(output.stdout.is_empty());
    assert_only_warnings(&output.stderr);

    // Oldest first: FILE.3, FILE.2, FILE.1, FILE.
    let rotated = |n: usize| dir.path().join(format!("oom.jsonl.{n}"));
    let mut files: Vec<_> = (1..=3).rev().map(rotated).filter(|p| p.exists()).collect();
    files.push(file.clone());
    assert!(!rotated(4).exists());
    let mut records = Vec::new();
    for path in &files {
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{path:?}");
        let text = fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 1, "{path:?}: {text}");
        let record: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_schema_valid(&record);
        records.push(record);
    }
    assert!(files.len() >= 2, "start and decision: {files:?}");
    let decision = records.last().unwrap();
    assert_eq!(decision["type"], "decision");
    assert_victim_matches_kernel(decision, &killed);
    if records.len() <= 4 {
        assert_eq!(records[0]["type"], "start", "{records:?}");
    }
}

/// A refused `--output` or a stdout that cannot be written: one clear line
/// (besides warnings), a non-zero exit.
#[test]
fn a_bad_output_is_one_clear_line() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, "keep\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_one_line_error(
        &["--output", link.to_str().unwrap(), "--duration", "1"],
        "is a symbolic link",
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    let open = dir.path().join("open.jsonl");
    fs::write(&open, "").unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
    assert_one_line_error(
        &["--output", open.to_str().unwrap(), "--duration", "1"],
        "writable by group or others",
    );
    assert_one_line_error(
        &["--output", "/dev/null", "--duration", "1"],
        "not a regular file",
    );

    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = std::process::Command::new(OOMTRACE)
        .args(["--json", "--duration", "30"])
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The start record fails at once: no need to wait for --duration.
    let output = exit_within_timeout(output);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("oomtrace: warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("writing records to stdout") && errors[0].contains("No space left"),
        "{stderr}"
    );
}

/// Issue #6: on an idle node the collector sleeps with no timer at all (no
/// tick), and its deadlines still bring the decision out. Idle is awaited,
/// not timed: every thread of the tracer comes to block in a wait without a
/// timeout, so that nothing but an input (the ring buffer, the kernel log,
/// stdout's reader, a signal) can wake it. Colleagues' OOMs on this host are
/// inputs and arm its deadlines for a while: it must come back to that.
#[test]
fn an_idle_tracer_sleeps_and_its_deadlines_still_decide() {
    require_root();
    let cgroup = TestCgroup::new_v1("idle", 48 << 20);
    let log = KernelLog::open();
    let (mut tracer, _) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    await_untimed_sleep(tracer.child.id());

    // Nothing after the kill wakes it but its own deadlines.
    let mut hog = Hog::start("idlehog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");
    assert_victim_matches_kernel(&decision, &killed);
    assert!(tracer.wait_exit().success());
}

/// Waits (at most [`TIMEOUT`]) until every thread of `pid` is blocked in a
/// wait that has no timeout.
fn await_untimed_sleep(pid: u32) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let timed = timed_threads(pid);
        if timed.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tracer never slept without a timer within {TIMEOUT:?}; last seen: {timed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The threads of `pid` that are running or may wake without an input, with
/// their `/proc/<pid>/task/<tid>/syscall` line (the call's number and
/// arguments while blocked in one).
fn timed_threads(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| {
            let read = |name| fs::read_to_string(task.path().join(name)).unwrap_or_default();
            let syscall = read("syscall");
            (!waits_without_timeout(&syscall))
                .then(|| format!("{}: {}", read("comm").trim(), syscall.trim()))
        })
        .collect()
}

/// Whether a `/proc/.../syscall` line is a wait only an event can end: epoll
/// or poll with no timeout, a futex wait with none.
fn waits_without_timeout(syscall: &str) -> bool {
    let mut fields = syscall.split_whitespace();
    let Some(Ok(nr)) = fields.next().map(str::parse::<libc::c_long>) else {
        return false; // "running", or blocked outside a system call
    };
    let args: Vec<u64> = fields
        .take(6)
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    let [_, a1, a2, a3, ..] = args[..] else {
        return false;
    };
    // Millisecond timeouts are C ints: -1 (any negative) waits forever.
    let forever = |ms: u64| (ms as u32 as i32) < 0;
    match nr {
        #[cfg(target_arch = "x86_64")]
        libc::SYS_poll => forever(a2),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_epoll_wait => forever(a3),
        libc::SYS_epoll_pwait => forever(a3),
        // A null timespec: no timeout.
        libc::SYS_epoll_pwait2 => a3 == 0,
        libc::SYS_ppoll => a2 == 0,
        libc::SYS_futex => {
            let cmd = a1 as i32 & !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
            (cmd == libc::FUTEX_WAIT || cmd == libc::FUTEX_WAIT_BITSET) && a3 == 0
        }
        _ => false,
    }
}

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs(std::ffi::CString);

impl Tmpfs {
    fn mount(dir: &std::path::Path, options: &str) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let target = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let options = std::ffi::CString::new(options).unwrap();
        // SAFETY: valid NUL-terminated strings; tmpfs takes a string as data.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Self(target)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: a valid NUL-terminated path of our own mount.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A child killed if the test fails before it ends it.
struct KilledOnDrop(Option<std::process::Child>);

impl KilledOnDrop {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every record of FILE and its rotations, oldest first; a line that is
/// not a whole JSON record fails.
fn output_records(file: &std::path::Path, keep: usize) -> Vec<Value> {
    let rotated = |n: usize| {
        let mut name = file.as_os_str().to_owned();
        name.push(format!(".{n}"));
        std::path::PathBuf::from(name)
    };
    let mut paths: Vec<_> = (1..=keep).rev().map(rotated).collect();
    paths.push(file.to_owned());
    let mut records = Vec::new();
    for path in paths.iter().filter(|p| p.exists()) {
        let text = fs::read_to_string(path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{path:?} ends mid-line"
        );
        for line in text.lines() {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{path:?}: not a whole record ({e}): {line}"));
            assert_schema_valid(&record);
            records.push(record);
        }
    }
    records
}

/// `--output` on a 64 KiB tmpfs that a filler file fills up: the tracer
/// goes on (its decisions are dumped meanwhile), the metrics count what it
/// could not write, and once the filler is gone a `lost` record (source
/// `output_write`) says how many records are missing, before the decisions
/// of the kills after it. Every line of every file is a whole record.
/// (One record a file: each goes to a fresh file with no page of its own
/// yet, so while the disk is full no record fits in part of one.)
#[test]
fn output_survives_a_full_disk() {
    use std::{io::Write, os::unix::process::ExitStatusExt};
    require_root();
    let cgroup = TestCgroup::new_v1("fulldisk", 48 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _tmpfs = Tmpfs::mount(&mnt, "size=64k,mode=0700");
    let file = mnt.join("oom.jsonl");
    let keep = 50;
    let dumps = tempfile::tempdir().unwrap();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = KernelLog::open();
    let keep_arg = keep.to_string();
    let metrics_arg = metrics.to_string();
    let flags = [
        "--output-max-bytes",
        "1",
        "--output-keep",
        &keep_arg,
        "--metrics",
        &metrics_arg,
    ];
    let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    args.extend(["--output".as_ref(), file.as_os_str()]);
    args.extend(["--cgroup".as_ref(), cgroup.path.as_os_str()]);
    args.extend(["--dump-dir".as_ref(), dumps.path().as_os_str()]);
    let mut tracer = KilledOnDrop(Some(spawn_piped(&args)));
    let stderr = tracer.child().stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut text).unwrap();
        text
    });
    await_fs("the start record in the output file", || {
        let found = output_records(&file, keep)
            .iter()
            .any(|r| r["type"] == "start");
        found.then_some(())
    });
    let lost_series = "oomtrace_lost_events_total{cause=\"output_write\"}";
    let at_start = await_fs("the metrics", || {
        http_get(metrics, "/metrics").ok()?;
        scraped(metrics, lost_series)
    });
    assert_eq!(at_start, 0.0);

    // Full: the filler takes every page left.
    let filler_path = mnt.join("filler");
    let mut filler = fs::File::create(&filler_path).unwrap();
    let full = loop {
        if let Err(e) = filler.write_all(&[b'x'; 4096]) {
            break e;
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    let mut killed_while_full = Vec::new();
    for i in 0..2 {
        let mut hog = Hog::start(&format!("fullhog{i}"), &cgroup, &[]);
        killed_while_full.push(log.killed_line(hog.pid()).pid);
        assert!(hog.wait_killed());
        // Traced and dumped, and counted lost by the metrics.
        await_fs(&format!("dump {}", i + 1), || {
            let files = oomtrace_core::dump::DumpWriter::list(dumps.path()).unwrap();
            (files.len() > i).then_some(())
        });
        await_fs(&format!("{} record(s) counted lost", i + 1), || {
            let lost = scraped(metrics, lost_series)?;
            (lost >= (i + 1) as f64).then_some(())
        });
    }

    // Room again: the tracer's next try writes the count.
    drop(filler);
    fs::remove_file(&filler_path).unwrap();
    let lost = await_fs("the output_write lost record", || {
        output_records(&file, keep)
            .into_iter()
            .find(|r| r["type"] == "lost" && r["source"] == "output_write")
    });
    let mut killed_after = Vec::new();
    for i in 0..2 {
        let mut hog = Hog::start(&format!("afterhog{i}"), &cgroup, &[]);
        let pid = log.killed_line(hog.pid()).pid;
        killed_after.push(pid);
        assert!(hog.wait_killed());
        await_fs(&format!("the decision on pid {pid}"), || {
            output_records(&file, keep)
                .iter()
                .any(|r| r["type"] == "decision" && u64_of(&r["victim"]["pid"]) == u64::from(pid))
                .then_some(())
        });
    }
    assert!(
        tracer.child().try_wait().unwrap().is_none(),
        "the tracer stopped"
    );

    let records = output_records(&file, keep);
    let victims = |records: &[Value]| -> Vec<u32> {
        records
            .iter()
            .filter(|r| r["type"] == "decision")
            .map(|r| u64_of(&r["victim"]["pid"]) as u32)
            .collect()
    };
    let killed: Vec<u32> = killed_while_full
        .iter()
        .chain(&killed_after)
        .copied()
        .collect();
    assert_eq!(cgroup.oom_kill_count(), killed.len() as u64);
    let written = victims(&records);
    let missing: Vec<u32> = killed
        .iter()
        .copied()
        .filter(|pid| !written.contains(pid))
        .collect();
    // What is missing is what the disk did not take, and the count says so.
    assert_eq!(missing, killed_while_full, "{records:?}");
    let losses: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "lost" && r["source"] == "output_write")
        .collect();
    assert_eq!(losses, [&lost], "one gap, one count");
    assert_eq!(u64_of(&lost["count"]), missing.len() as u64, "{lost}");
    assert_eq!(u64_of(&lost["total"]), missing.len() as u64, "{lost}");
    assert_eq!(scraped(metrics, lost_series), Some(missing.len() as f64));
    // After the gap: every kill the kernel reported, in its order.
    let at = records.iter().position(|r| *r == lost).unwrap();
    assert_eq!(victims(&records[at..]), killed_after, "{records:?}");

    let child = tracer.0.take().unwrap();
    send_signal(&child, libc::SIGTERM);
    let status = exit_within_timeout(child).status;
    assert!(status.success(), "{status:?} {:?}", status.signal());
    let stderr = stderr.join().unwrap();
    assert_only_warnings(stderr.as_bytes());
    assert!(stderr.contains("cannot write --output"), "{stderr}");
    assert!(stderr.contains("is written again"), "{stderr}");
}

/// On the tracepoint backend every kill's memcg tasks are read from /proc
/// (the candidates of a rate-limited report); with the kernel's own table
/// there too, the decision says how close the snapshot came to it.
#[test]
fn a_proc_snapshot_of_the_oom_memcg_matches_the_kernels_table() {
    require_root();
    let cgroup = TestCgroup::new_v1("snapshot", 64 << 20);
    let (mut tracer, start) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    assert_eq!(
        start["backend"], "tracepoint",
        "this check is the tracepoint backend's"
    );
    let mut holders = Hog::start(
        "snapholder",
        &cgroup,
        &["--mib", "4", "--children", "3", "--announce"],
    );
    // One "ready" once all three children hold their memory.
    holders.wait_ready();
    let mut grower = Hog::start("snapgrower", &cgroup, &[]);
    assert!(grower.wait_killed());
    let decision = tracer.next_record("decision");
    assert_eq!(decision["candidates_source"], "kernel_report");
    let others = decision["candidates"].as_array().unwrap().len() - 1;
    assert!(
        others >= 3,
        "the holders are in the kernel's table: {decision}"
    );
    let check = decision["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.starts_with("A /proc snapshot"))
        .unwrap_or_else(|| panic!("no snapshot check: {decision}"));
    assert!(
        check.contains(&format!("listed the same {others} other task(s)")),
        "{check}"
    );
    assert!(tracer.wait_exit().success());
}
