//! Recovery across restarts (`--state-dir`), on this machine's kernel: kills
//! that happen while the tracer is down are rebuilt from the kernel log at
//! the next start, checked against the kernel's own `oom-kill:` lines.
mod support;

use std::{
    fs,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use support::*;

const STATE_FILE: &str = "kmsg-position.json";

/// A state directory of our own, removed on drop.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("oomtrace-test-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn file(&self) -> PathBuf {
        self.0.join(STATE_FILE)
    }

    fn read(&self) -> Option<String> {
        fs::read_to_string(self.file()).ok()
    }

    /// A state as a previous run would have left it.
    fn write(&self, state: &Value) {
        fs::create_dir_all(&self.0).unwrap();
        fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700)).unwrap();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.file())
            .unwrap();
        std::io::Write::write_all(&mut file, state.to_string().as_bytes()).unwrap();
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn this_boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_owned()
}

/// The sequence number of the oldest record `/dev/kmsg` still holds.
fn first_kmsg_seq() -> u64 {
    use std::io::Read as _;
    let mut file = fs::File::open("/dev/kmsg").unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let n = file.read(&mut buf).unwrap();
    let record = String::from_utf8_lossy(&buf[..n]);
    record.split(',').nth(1).unwrap().parse().unwrap()
}

/// Runs a hog in `cgroup` until the kernel kills it; its pid.
fn hog_killed(cgroup: &TestCgroup) -> u32 {
    let mut hog = Hog::start("restarthog", cgroup, &[]);
    assert!(hog.wait_killed(), "hog {} was not SIGKILLed", hog.pid());
    hog.pid()
}

/// The tracer's arguments: `cgroup` traced, its state in `state`.
fn traced_with_state<'a>(cgroup: &'a TestCgroup, state: &'a StateDir) -> [&'a str; 4] {
    [
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--state-dir",
        state.arg(),
    ]
}

fn victim_pid(decision: &Value) -> u32 {
    u64_of(&decision["victim"]["pid"]) as u32
}

/// Waits until the tracer has replaced its state file since `before`.
fn await_state_saved(state: &StateDir, before: &Option<String>) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while &state.read() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the state file was not saved after the decision within {TIMEOUT:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One kill traced; the tracer SIGKILLed; kills while it is down; the same
/// state at the restart: exactly those kills are recovered, in the kernel's
/// order, none of the first run's again; then live tracing goes on.
#[test]
fn a_restart_recovers_exactly_the_kills_it_missed_then_traces_live() {
    require_root();
    let state = StateDir::new("resume");
    let cgroup = TestCgroup::new_v1("restart", 48 << 20);
    let log = KernelLog::open();
    let args = traced_with_state(&cgroup, &state);

    let (mut first, start) = Tracer::start_json(&args);
    assert_eq!(start["recovery"]["state"], "none", "{start}");
    assert_eq!(start["recovery"]["recovered"], 0, "{start}");
    let saved_at_start = state.read();
    assert!(saved_at_start.is_some(), "no state saved at start");
    let traced = hog_killed(&cgroup);
    let decision = first.next_record("decision");
    assert_eq!(victim_pid(&decision), traced);
    assert!(decision.get("recovered").is_none(), "{decision}");
    await_state_saved(&state, &saved_at_start);
    send_signal(&first.child, libc::SIGKILL);
    first.wait_exit();

    let missed: Vec<u32> = (0..3).map(|_| hog_killed(&cgroup)).collect();
    let kernel = log.oom_kills_in_so_far(&cgroup.relative);
    assert_eq!(kernel.first(), Some(&traced), "kernel's kills: {kernel:?}");
    let expected = &kernel[1..];
    assert_eq!(expected, &missed[..], "the kernel's kills while down");

    let (mut second, start) = Tracer::start_json(&args);
    let recovery = &start["recovery"];
    assert_eq!(recovery["state"], "resumed", "{start}");
    assert_eq!(recovery["lost_records"], 0, "{start}");
    assert_eq!(u64_of(&recovery["recovered"]), expected.len() as u64);
    let mut recovered = Vec::new();
    for (index, _) in expected.iter().enumerate() {
        let decision = second.next_record("decision");
        assert_eq!(decision["recovered"], true, "{decision}");
        assert_eq!(decision["backend"], "kernel_report", "{decision}");
        assert_eq!(decision["kernel_report"], "complete", "{decision}");
        assert_eq!(decision["victim"]["memcg"], cgroup.relative.as_str());
        assert_eq!(u64_of(&decision["seq"]), index as u64 + 1);
        recovered.push(victim_pid(&decision));
    }
    assert_eq!(recovered, expected, "recovered, in the kernel's order");

    let live = hog_killed(&cgroup);
    let decision = second.next_record("decision");
    assert_eq!(victim_pid(&decision), live, "{decision}");
    assert!(decision.get("recovered").is_none(), "{decision}");
    assert_eq!(decision["backend"], "tracepoint", "{decision}");
    assert_eq!(u64_of(&decision["seq"]), expected.len() as u64 + 1);
    assert_eq!(log.oom_kills_in_so_far(&cgroup.relative), vec![live]);

    send_signal(&second.child, libc::SIGTERM);
    assert!(second.wait_exit().success());
    let decisions = second.seen_records("decision");
    assert_eq!(decisions.len(), expected.len() + 1, "{decisions:?}");
    assert!(second.seen_records("lost").is_empty());
}

/// A state older than the oldest record the kernel still holds: the records
/// overwritten in between are a `lost` record with their count.
#[test]
fn a_log_that_wrapped_past_the_state_is_a_lost_record_with_its_count() {
    require_root();
    let state = StateDir::new("wrapped");
    let cgroup = TestCgroup::new_v1("wrapped", 48 << 20);
    let before = first_kmsg_seq();
    assert!(
        before >= 11,
        "the kernel log has not wrapped yet (first record {before}): this test needs a log that overwrote records"
    );
    let saved = before - 11;
    state.write(&json!({"boot_id": this_boot_id(), "seq": saved, "emitted": []}));

    let (mut tracer, start) = Tracer::start_json(&[
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--state-dir",
        state.arg(),
    ]);
    let after = first_kmsg_seq();
    let recovery = &start["recovery"];
    assert_eq!(recovery["state"], "resumed", "{start}");
    let from = u64_of(&recovery["from_seq"]);
    assert!(
        (before..=after).contains(&from),
        "the first record read ({from}) was the oldest one then ({before}..={after})"
    );
    let missed = from - saved - 1;
    assert_eq!(u64_of(&recovery["lost_records"]), missed, "{start}");
    let lost = tracer.next_record("lost");
    assert_eq!(lost["source"], "kmsg_wrapped", "{lost}");
    assert_eq!(u64_of(&lost["count"]), missed, "{lost}");
    assert_eq!(u64_of(&lost["total"]), missed, "{lost}");
    assert_eq!(recovery["recovered"], 0, "nothing of ours was in the log");
    send_signal(&tracer.child, libc::SIGTERM);
    assert!(tracer.wait_exit().success());
}

/// A state from another boot recovers nothing, even with a kill of ours in
/// the log after its position.
#[test]
fn a_state_from_another_boot_recovers_nothing() {
    require_root();
    let state = StateDir::new("otherboot");
    let cgroup = TestCgroup::new_v1("otherboot", 48 << 20);
    let log = KernelLog::open();
    let saved = first_kmsg_seq();
    let other_boot = "00000000-0000-4000-8000-000000000000";
    assert_ne!(other_boot, this_boot_id());
    state.write(&json!({"boot_id": other_boot, "seq": saved, "emitted": []}));
    let killed = hog_killed(&cgroup);
    assert_eq!(log.oom_kills_in_so_far(&cgroup.relative), vec![killed]);

    let (mut tracer, start) = Tracer::start_json(&[
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--state-dir",
        state.arg(),
    ]);
    let recovery = &start["recovery"];
    assert_eq!(recovery["state"], "other_boot", "{start}");
    assert_eq!(recovery["recovered"], 0, "{start}");
    assert_eq!(recovery["lost_records"], 0, "{start}");
    send_signal(&tracer.child, libc::SIGTERM);
    assert!(tracer.wait_exit().success());
    assert!(tracer.seen_records("decision").is_empty());
    assert!(tracer.seen_records("lost").is_empty());
    // The run saved this boot's position for the next one.
    let saved: Value = serde_json::from_str(&state.read().unwrap()).unwrap();
    assert_eq!(saved["boot_id"], this_boot_id().as_str());
    assert!(Path::new(&state.file()).exists());
}

/// `--count` ends a run before every decision it built went out: those it
/// cut stay undecided in the state, and the next start recovers them (and
/// not the one that went out). The kernel's lines are the oracle.
#[test]
fn decisions_cut_by_count_are_recovered_at_the_next_start() {
    require_root();
    let state = StateDir::new("count");
    let cgroup = TestCgroup::new_v1("restartcount", 48 << 20);
    let log = KernelLog::open();
    let args = traced_with_state(&cgroup, &state);
    // This boot's position saved, then two kills while no tracer runs.
    let (mut first, _) = Tracer::start_json(&args);
    send_signal(&first.child, libc::SIGTERM);
    assert!(first.wait_exit().success());
    let missed: Vec<u32> = (0..2).map(|_| hog_killed(&cgroup)).collect();
    assert_eq!(log.oom_kills_in_so_far(&cgroup.relative), missed);

    let mut counted = args.to_vec();
    counted.extend(["--count", "1"]);
    let (mut second, start) = Tracer::start_json(&counted);
    assert_eq!(u64_of(&start["recovery"]["recovered"]), 2, "{start}");
    assert!(second.wait_exit().success());
    let out: Vec<u32> = second
        .seen_records("decision")
        .iter()
        .map(victim_pid)
        .collect();
    assert_eq!(out, missed[..1], "--count 1");

    let (mut third, start) = Tracer::start_json(&args);
    assert_eq!(u64_of(&start["recovery"]["recovered"]), 1, "{start}");
    let decision = third.next_record("decision");
    assert_eq!(decision["recovered"], true, "{decision}");
    assert_eq!(victim_pid(&decision), missed[1], "the one --count cut");
    send_signal(&third.child, libc::SIGTERM);
    assert!(third.wait_exit().success());
    assert_eq!(third.seen_records("decision").len(), 1);
}
