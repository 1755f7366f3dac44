//! Issue #18 on this machine's kernel (cgroup v1, tracepoints): one tracer
//! on a parent memcg, every scenario of docs/early-warning.md running at
//! once in a child of its own. The kernel is the oracle: the leakers are
//! killed (SIGKILL seen by waitpid, the kernel's `Killed process` line, the
//! memcg's `oom_kill` count), the others are not, and the warnings must
//! have come before the kills, naming the leaker, and nowhere else.
//!
//! Positives: a leak, a faster leak, a tmpfs writer (shmem, written through
//! a shared mapping). Negatives: a page-cache reader and a dirty-page
//! writer at their limit, a steady task at 92%, a sawtooth to 80%, a
//! start-up burst to 70%.
//!
//! As on a node where containers come and go, not every memcg is there
//! when the tracer starts: half of them are created after its start
//! record, and one is there without a limit until then (a runtime makes
//! the directory, then writes the limit).
mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::Value;
use support::*;

const MIB: u64 = 1 << 20;
/// The observation window for the negatives.
const WINDOW: Duration = Duration::from_secs(75);

/// A scenario: its memcg and the task whose kill (if any) is expected.
struct Scenario {
    name: &'static str,
    cgroup: TestCgroup,
    hogs: Vec<Hog>,
    /// The leaker: its pid is the one warned of and killed.
    leaker: Option<usize>,
    /// The least lead the warning must have had on the kill.
    min_lead: Duration,
    killed_at: Option<Instant>,
}

const LIMIT: u64 = 256 * MIB;

fn scenario(parent: &TestCgroup, name: &'static str, limit: u64) -> Scenario {
    Scenario {
        name,
        cgroup: parent.child(name, limit),
        hogs: Vec::new(),
        leaker: None,
        min_lead: Duration::ZERO,
        killed_at: None,
    }
}

#[test]
fn leaks_are_warned_ahead_of_their_kill_and_nothing_else_is() {
    require_root();
    let parent = TestCgroup::new_v1("risk", 1 << 62);
    let data = tempdir_on_disk();
    let shm = Tmpfs::mount();
    let mut scenarios = vec![
        scenario(&parent, "leak", LIMIT),
        scenario(&parent, "pagecache", LIMIT),
        scenario(&parent, "dirty", LIMIT),
        scenario(&parent, "steady", LIMIT),
    ];
    let unlimited = scenario(&parent, "shmem", 1 << 62);
    let log = KernelLog::open();
    let (mut tracer, _) = Tracer::start_json(&["--cgroup", parent.path.to_str().unwrap()]);
    unlimited.cgroup.set_limit(LIMIT);
    scenarios.push(unlimited);
    for name in ["fastleak", "sawtooth", "burst"] {
        scenarios.push(scenario(&parent, name, LIMIT));
    }

    start_workloads(&mut scenarios, &data, &shm);
    let started = Instant::now();
    let mut warned_at: HashMap<String, (Instant, Value)> = HashMap::new();
    while started.elapsed() < WINDOW
        || scenarios
            .iter()
            .any(|s| s.leaker.is_some() && s.killed_at.is_none())
    {
        assert!(
            started.elapsed() < WINDOW * 2,
            "the leaks were not killed; saw {:?}",
            tracer.seen
        );
        if let Some(line) = tracer.line_within(Duration::from_millis(100)) {
            let record: Value = serde_json::from_str(&line).unwrap();
            assert_schema_valid(&record);
            if record["type"] == "oom_warning" {
                let memcg = record["memcg"].as_str().unwrap().to_owned();
                warned_at.entry(memcg).or_insert((Instant::now(), record));
            }
        }
        for s in &mut scenarios {
            if let Some(i) = s.leaker
                && s.killed_at.is_none()
                && s.hogs[i].child.try_wait().unwrap().is_some()
            {
                s.killed_at = Some(Instant::now());
            }
        }
    }

    let kernel_killed = log.killed_pids_so_far();
    for s in &mut scenarios {
        let warning = warned_at.get(&s.cgroup.relative);
        let Some(i) = s.leaker else {
            assert!(
                warning.is_none(),
                "{}: warned of a negative: {warning:?}",
                s.name
            );
            assert_eq!(
                s.cgroup.oom_kill_count(),
                0,
                "{}: the kernel killed in a negative",
                s.name
            );
            continue;
        };
        let leaker = s.hogs[i].pid();
        assert!(
            s.hogs[i].wait_killed(),
            "{}: the leaker was not SIGKILLed",
            s.name
        );
        assert!(
            kernel_killed.contains(&leaker),
            "{}: no `Killed process {leaker}`",
            s.name
        );
        assert!(s.cgroup.oom_kill_count() >= 1, "{}", s.name);
        let (at, warning) =
            warning.unwrap_or_else(|| panic!("{}: no oom_warning before its kill", s.name));
        let lead = s.killed_at.unwrap() - *at;
        // The measurement docs/early-warning.md records.
        eprintln!("{}: warned {lead:?} before the kill: {warning}", s.name);
        assert!(
            lead >= s.min_lead,
            "{}: warned only {lead:?} before the kill: {warning}",
            s.name
        );
        assert_eq!(
            u64_of(&warning["top_growers"][0]["pid"]),
            u64::from(leaker),
            "{}: {warning}",
            s.name
        );
        let decision = tracer
            .seen_records("decision")
            .into_iter()
            .find(|d| d["victim"]["pid"] == leaker)
            .or_else(|| {
                let d = tracer.next_record("decision");
                (d["victim"]["pid"] == leaker).then_some(d)
            })
            .unwrap_or_else(|| panic!("{}: no decision for {leaker}", s.name));
        assert_eq!(decision["oom_id"], warning["oom_id"], "{}", s.name);
        assert_eq!(
            decision["warning"]["grower_pid"], leaker,
            "{}: {decision}",
            s.name
        );
        assert!(
            decision["lead_ms"].as_u64().is_some(),
            "{}: {decision}",
            s.name
        );
    }
    drop(tracer);
    // The tmpfs writer's file outlives it: its memcg goes first, then the file.
    drop(scenarios);
    drop(shm);
}

/// A memcg removed leaves no inotify watch behind in the tracer: the
/// kernel keeps a watch on a removed cgroup's directory until its owner
/// removes it, so a node's containers coming and going would pile them up.
#[test]
fn removed_memcgs_leave_no_watch_behind() {
    require_root();
    let parent = TestCgroup::new_v1("riskwatches", 1 << 62);
    let (tracer, _) = Tracer::start_json(&["--cgroup", parent.path.to_str().unwrap()]);
    let pid = tracer.child.id();
    let before = inotify_watches(pid);
    let children: Vec<TestCgroup> = (0..3)
        .map(|i| parent.child(&format!("c{i}"), 64 * MIB))
        .collect();
    await_value("watch of each memcg created", || {
        (inotify_watches(pid) == before + children.len()).then_some(())
    });
    drop(children);
    await_value("return to the watches held before the memcgs", || {
        (inotify_watches(pid) == before).then_some(())
    });
}

/// The inotify watches a process holds, as its `fdinfo` lists them.
fn inotify_watches(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap();
    fds.flatten()
        .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// The workloads, each in its memcg (docs/early-warning.md, "Scenarios").
fn start_workloads(scenarios: &mut [Scenario], data: &std::path::Path, shm: &Tmpfs) {
    let file = data.join("pagecache");
    let file = file.to_str().unwrap();
    let dirty = data.join("dirty");
    let dirty = dirty.to_str().unwrap();
    let shm = shm.0.to_str().unwrap();
    for s in scenarios.iter_mut() {
        let cg = &s.cgroup;
        match s.name {
            // A few MiB/s among two steady neighbours.
            "leak" => {
                s.hogs.push(Hog::start("neighbour", cg, &["--mib", "16"]));
                s.hogs.push(Hog::start("neighbour", cg, &["--mib", "16"]));
                s.hogs
                    .push(Hog::start_mode("leaker", "leak", cg, &["--rate", "4"]));
                s.leaker = Some(2);
                s.min_lead = Duration::from_secs(10);
            }
            "fastleak" => {
                s.hogs.push(Hog::start("neighbour", cg, &["--mib", "16"]));
                s.hogs
                    .push(Hog::start_mode("fastleaker", "leak", cg, &["--rate", "10"]));
                s.leaker = Some(1);
                s.min_lead = Duration::from_secs(5);
            }
            // Shmem grown through a shared mapping of a tmpfs file (its pages
            // count in the writer's RssShmem, so the writer can be named).
            "shmem" => {
                s.hogs.push(Hog::start("neighbour", cg, &["--mib", "16"]));
                s.hogs.push(Hog::start_mode(
                    "shmwriter",
                    "leak",
                    cg,
                    &["--rate", "4", "--file-in", shm, "--map"],
                ));
                s.leaker = Some(1);
                s.min_lead = Duration::from_secs(10);
            }
            // A reader of a file twice its limit: page cache at the limit.
            "pagecache" => s.hogs.push(Hog::start_mode(
                "reader",
                "pagecache",
                cg,
                &["--file", file, "--mib", "512"],
            )),
            // A writer of a file twice its limit: dirty pages, throttled at
            // the limit while they are written back.
            "dirty" => s.hogs.push(Hog::start_mode(
                "dirtywriter",
                "pagecache",
                cg,
                &["--file", dirty, "--mib", "512", "--write"],
            )),
            // ~92% of the limit, not growing.
            "steady" => s.hogs.push(Hog::start("steady", cg, &["--mib", "236"])),
            // A collector's sawtooth to ~80%.
            "sawtooth" => s.hogs.push(Hog::start_mode(
                "sawtooth",
                "sawtooth",
                cg,
                &["--low", "64", "--high", "205", "--rate", "48"],
            )),
            // A start-up burst to ~70%, then flat.
            "burst" => s.hogs.push(Hog::start("burst", cg, &["--mib", "180"])),
            other => panic!("no workload for {other}"),
        }
    }
}

/// A directory on a disk file system (not a tmpfs: the reader's file must
/// be page cache, not shmem), removed on drop.
fn tempdir_on_disk() -> TempDir {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("risk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs of the test's own (its files are shmem, charged to the memcg of
/// the task that writes them), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount() -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("risk-shm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512m", "oomtrace-risk"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs {}: {status}",
            dir.display()
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}
