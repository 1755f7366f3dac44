//! Least privilege after start-up, on this machine's kernel: a running
//! tracer holds, in every thread, exactly the capabilities its start record
//! says it kept, with no_new_privs and the seccomp filter, and through all
//! its features under that filter (decision, dump, `--output` rotation,
//! `--metrics` scrapes, `--state-dir` saves, and the on-demand charge hook
//! where the backend has one) it still traces a real OOM kill as the kernel's own `Killed process`
//! line tells it; the kernel logged no system call the filter refused.
mod support;

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::*;

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET /metrics` over HTTP/1.0: status and body.
fn scrape(addr: SocketAddr) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (status.unwrap_or(0), body.to_owned())
}

/// Every record written to `--output FILE` and its rotated files, oldest
/// first, and how many files there are.
fn output_records(file: &Path) -> (Vec<Value>, usize) {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| PathBuf::from(format!("{}.{n}", file.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(file.to_owned());
    let records = files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .inspect(assert_schema_valid)
        .collect();
    (records, files.len())
}

/// Waits (at most [`TIMEOUT`]) for the first record of `kind` in the output
/// files (the tracer writes them and gives no other signal).
fn await_record(file: &Path, kind: &str, child: &mut Child) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = output_records(file)
            .0
            .into_iter()
            .find(|r| r["type"] == kind)
        {
            return found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("oomtrace exited ({status}) before a {kind} record");
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} record within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The audit lines of system calls the seccomp filter refused `pid`
/// (`SECCOMP_FILTER_FLAG_LOG`: `type=1326 ... pid=N ... syscall=M`).
fn refused_calls(log: &[String], pid: u32) -> Vec<&String> {
    let who = format!(" pid={pid} ");
    log.iter()
        .filter(|l| l.contains("type=1326") && l.contains(&who))
        .collect()
}

/// A nice value other than the default, so that the threads' own value
/// shows it was applied rather than inherited.
const NICE: i32 = -7;

/// Every thread of `pid` runs at nice value `nice` (field 19 of its stat).
fn assert_threads_nice(pid: u32, nice: i32) {
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // The fields after the parenthesised comm, which may hold spaces.
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let field: i32 = after_comm.split(' ').nth(16).unwrap().parse().unwrap();
        assert_eq!(field, nice, "{stat}");
    }
}

#[test]
fn a_tracer_under_its_filter_holds_only_what_it_kept_and_traces_an_oom_with_every_feature() {
    require_root();
    let cgroup = TestCgroup::new_v1("privdrop", 32 << 20);
    let work = tempfile::tempdir().unwrap();
    let dumps = work.path().join("dumps");
    let output = work.path().join("records.jsonl");
    let state = work.path().join("state");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = KernelLog::open();
    let audit = KernelLog::open();
    let mut child = Command::new(OOMTRACE)
        .arg("--cgroup")
        .arg(&cgroup.path)
        .arg("--dump-dir")
        .arg(&dumps)
        .arg("--output")
        .arg(&output)
        // Every record rotates the file: rotation runs under the filter.
        .args(["--output-max-bytes", "1", "--output-keep", "50"])
        .args(["--metrics", &metrics.to_string()])
        .arg("--state-dir")
        .arg(&state)
        .arg(format!("--nice={NICE}"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = await_record(&output, "start", &mut child);
    assert_eq!(start["kernel_report"], true, "{start}");
    assert_eq!(start["privileges"]["no_new_privs"], true, "{start}");
    assert_eq!(start["privileges"]["seccomp"], true, "{start}");
    assert_eq!(start["recovery"]["state"], "none", "{start}");
    assert_holds_what_start_says(pid, &start);
    assert_eq!(start["nice"], NICE, "{start}");
    assert_threads_nice(pid, NICE);
    let (status, body) = scrape(metrics);
    assert_eq!(status, 200, "{body}");

    let mut hog = Hog::start("privhog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    let decision = await_record(&output, "decision", &mut child);
    let victim = &decision["victim"];
    assert_eq!(u64_of(&victim["pid"]), u64::from(killed.pid), "{decision}");
    assert_eq!(victim["comm"], killed.comm.as_str(), "{decision}");
    assert_eq!(
        u64_of(&victim["rss_anon_bytes"]),
        killed.anon_rss_kb * 1024,
        "{decision}"
    );
    // The run's own threads (writers started after the drop) too.
    assert_holds_what_start_says(pid, &start);
    assert_threads_nice(pid, NICE);

    // The metrics count the kill as the memcg's own counter does.
    let series = format!(
        "oomtrace_oom_kills_total{{constraint=\"memcg\",namespace=\"\",pod=\"\",container=\"\",memcg=\"{}\"}} ",
        cgroup.relative
    );
    let (status, body) = scrape(metrics);
    assert_eq!(status, 200, "{body}");
    let counted: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {body}"));
    assert_eq!(counted, cgroup.oom_kill_count(), "{body}");

    // SIGTERM ends the run (its handler runs under the filter too).
    send_signal(&child, libc::SIGTERM);
    let mut stderr = child.stderr.take().unwrap();
    let exit = exit_within_timeout(child);
    let mut said = String::new();
    stderr.read_to_string(&mut said).unwrap();
    assert!(exit.success(), "{exit}: {said}");
    // No warning (a dump, a rotation or the charge hook that failed) but
    // the one of a machine that withholds CAP_SYS_RESOURCE.
    for line in said.lines() {
        assert!(line.contains("its own oom_score_adj"), "{said}");
    }

    // The state was saved under the filter (a refused call would have been
    // a warning above, and no file).
    let saved: Value =
        serde_json::from_str(&fs::read_to_string(state.join("kmsg-position.json")).unwrap())
            .unwrap();
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(
        saved["boot_id"].as_str().map(str::trim),
        Some(boot_id.trim()),
        "{saved}"
    );
    assert!(saved["seq"].is_u64(), "{saved}");

    // The dump holds the decision of that kill.
    let files: Vec<PathBuf> = fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let dump: Value = serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(
        dump.to_string()
            .contains(&format!("\"pid\":{}", killed.pid)),
        "{dump}"
    );

    // Rotated once per record, none lost.
    let (records, file_count) = output_records(&output);
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    assert!(
        file_count >= kinds.len(),
        "{file_count} files for {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "decision").count(),
        1,
        "{kinds:?}"
    );

    // Where the backend has the on-demand charge hook, the memcg's reclaim
    // at its limit armed it under the filter (the VM scenario `thp` checks
    // it on fentry kernels; this host's kernel may have no fentry).
    let on_demand = start["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["attached"] == true && h["hook"].as_str().unwrap().ends_with("(on demand)"));
    if on_demand {
        let armed = records
            .iter()
            .find(|r| r["type"] == "charge_hook" && r["state"] == "armed");
        assert!(armed.is_some(), "no charge_hook armed in {kinds:?}");
    }
    let logged = audit.lines_so_far();
    let refused = refused_calls(&logged, pid);
    assert!(refused.is_empty(), "the filter refused: {refused:?}");
}

#[test]
fn no_seccomp_leaves_the_filter_off_and_still_drops_capabilities() {
    require_root();
    let (mut tracer, start) = Tracer::start_json(&["--no-seccomp", "--duration", "2"]);
    assert_eq!(start["privileges"]["seccomp"], false, "{start}");
    assert_holds_what_start_says(tracer.child.id(), &start);
    assert!(tracer.wait_exit().success());
}

/// The child's exit status, awaited at most [`TIMEOUT`] (a hang fails).
fn exit_within_timeout(mut child: Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("oomtrace did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
