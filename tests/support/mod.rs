//! Helpers for the kernel integration tests: throw-away memcgs, a memory hog
//! under a chosen name, the tracer as a child process, and an independent
//! reader of the kernel log (the oracle).
#![allow(dead_code)]

use std::{
    fs,
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const OOMTRACE: &str = env!("CARGO_BIN_EXE_oomtrace");

/// The workload binary (`oomtrace-hog`, its own package): `cargo xtask test`
/// builds it and names it in OOMTRACE_HOG; else it is looked for beside the
/// test's own target directory.
pub fn hog_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OOMTRACE_HOG") {
        return PathBuf::from(path);
    }
    let beside = Path::new(OOMTRACE).with_file_name("oomtrace-hog");
    assert!(
        beside.exists(),
        "{} is missing: run `cargo build -p oomtrace-hog` (cargo xtask test does)",
        beside.display()
    );
    beside
}
pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const MEMCG_V1: &str = "/sys/fs/cgroup/memory";

/// Checks a record against docs/schema.json (the documented schema).
pub fn assert_schema_valid(record: &Value) {
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("docs/schema.json is a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "record does not match docs/schema.json: {errors:?}\n{record}"
    );
}

pub fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {value}"))
}

/// Polls `ready` until it returns a value, failing after a deadline.
pub fn await_value<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "no {what} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "kernel integration tests need root (run `sudo -E cargo xtask test`)"
    );
}

/// A memcg made for one test, removed (tasks killed first) on drop.
pub struct TestCgroup {
    pub path: PathBuf,
    /// As the kernel prints it ("/a/b").
    pub relative: String,
}

impl TestCgroup {
    pub fn new_v1(name: &str, limit_bytes: u64) -> Self {
        let relative = format!("/oomtrace-test-{name}-{}", std::process::id());
        Self::create(relative, limit_bytes)
    }

    pub fn child(&self, name: &str, limit_bytes: u64) -> Self {
        Self::create(format!("{}/{name}", self.relative), limit_bytes)
    }

    fn create(relative: String, limit_bytes: u64) -> Self {
        let path = PathBuf::from(format!("{MEMCG_V1}{relative}"));
        if path.exists() {
            oomtrace_core::cgroup::throwaway::remove_cgroup(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::write(path.join("memory.limit_in_bytes"), limit_bytes.to_string()).unwrap();
        Self { path, relative }
    }

    pub fn set_limit(&self, bytes: u64) {
        fs::write(self.path.join("memory.limit_in_bytes"), bytes.to_string()).unwrap();
    }

    pub fn limit_bytes(&self) -> u64 {
        fs::read_to_string(self.path.join("memory.limit_in_bytes"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn oom_kill_count(&self) -> u64 {
        let text = fs::read_to_string(self.path.join("memory.oom_control")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |v| v.trim().parse().unwrap())
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        oomtrace_core::cgroup::throwaway::remove_cgroup(&self.path);
    }
}

/// The workload binary under another name, so the kernel sees that comm.
pub fn named_binary(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oomtrace-test-bin-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let link = dir.join(name);
    // Threads of one test may race to make the same link.
    match std::os::unix::fs::symlink(hog_binary(), &link) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            panic!("{}: {e}", link.display())
        }
        _ => link,
    }
}

pub struct Hog {
    pub child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Hog {
    /// Starts `name hog --join cgroup extra...`.
    pub fn start(name: &str, cgroup: &TestCgroup, extra: &[&str]) -> Self {
        Self::start_mode(name, "hog", cgroup, extra)
    }

    /// Starts `name mode --join cgroup extra...` (a workload of oomtrace-hog).
    pub fn start_mode(name: &str, mode: &str, cgroup: &TestCgroup, extra: &[&str]) -> Self {
        let mut child = Command::new(named_binary(name))
            .arg(mode)
            .arg("--join")
            .arg(&cgroup.path)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().map(BufReader::new);
        Self { child, stdout }
    }

    /// [`Hog::start`] holding no capability (uid 0 still): a task whose
    /// `/proc/<pid>/wchan` the tracer may read once it dropped its own
    /// (ptrace-read access wants the reader's capabilities to cover the
    /// target's).
    pub fn start_without_capabilities(name: &str, cgroup: &TestCgroup) -> Self {
        let mut child = Command::new("setpriv")
            .args([
                "--inh-caps=-all",
                "--ambient-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(named_binary(name))
            .arg("hog")
            .arg("--join")
            .arg(&cgroup.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().map(BufReader::new);
        Self { child, stdout }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for "ready" (started with `--mib N --announce`).
    pub fn wait_ready(&mut self) {
        let mut line = String::new();
        self.stdout
            .as_mut()
            .expect("stdout")
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "hog {} did not get ready", self.pid());
    }

    /// Waits for the hog to end and says whether SIGKILL ended it.
    pub fn wait_killed(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().unwrap();
        status.signal() == Some(libc::SIGKILL)
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// oomtrace running as a child, its stdout read line by line.
pub struct Tracer {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Tracer {
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(OOMTRACE);
        command.args(args);
        Self::spawn(command)
    }

    /// oomtrace started by `command` (e.g. under setpriv), stdout read line by line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Starts `oomtrace --json ...` and waits for its `start` record.
    pub fn start_json(args: &[&str]) -> (Self, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let mut tracer = Self::start(&all);
        let start = tracer.next_record("start");
        (tracer, start)
    }

    /// The next output line for which `wanted` returns a value; every line
    /// read is kept in `seen`. Panics (with what was seen) on timeout or exit.
    fn next_matching<T>(&mut self, what: &str, mut wanted: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(found) = wanted(&line) {
                        return found;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {TIMEOUT:?}; saw {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "oomtrace exited ({status}) before {what}; saw {:?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// The next output line within `timeout` (kept in `seen`); `None` when
    /// none came in time or the output ended.
    pub fn line_within(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits for a plain-text line starting with `prefix` (card mode).
    pub fn wait_line(&mut self, prefix: &str) -> String {
        self.next_matching(&format!("a line starting with {prefix:?}"), |line| {
            line.starts_with(prefix).then(|| line.to_owned())
        })
    }

    /// JSON records of `record_type` among the lines seen so far.
    pub fn seen_records(&self, record_type: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .inspect(assert_schema_valid)
            .filter(|v| v["type"] == record_type)
            .collect()
    }

    /// Next JSON record of `record_type` (every record read is checked
    /// against the schema; others are kept in `seen`).
    pub fn next_record(&mut self, record_type: &str) -> Value {
        self.next_matching(&format!("{record_type} record"), |line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_schema_valid(&value);
            (value["type"] == record_type).then_some(value)
        })
    }

    /// Waits for the process to exit (it was started with --count): its
    /// stdout closing is the event, then `wait` returns at once.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return self.child.wait().unwrap(),
                Err(RecvTimeoutError::Timeout) => panic!("oomtrace did not exit"),
            }
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel log from now on, read independently of oomtrace: the oracle.
pub struct KernelLog {
    lines: Receiver<String>,
}

impl KernelLog {
    pub fn open() -> Self {
        let mut file = fs::File::open("/dev/kmsg").expect("open /dev/kmsg");
        file.seek(SeekFrom::End(0)).unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let record = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let message = record
                            .split_once(';')
                            .map(|(_, m)| m.lines().next().unwrap_or("").to_owned())
                            .unwrap_or_default();
                        if tx.send(message).is_err() {
                            break;
                        }
                    }
                    // EPIPE: records overwritten; keep reading.
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                    Err(e) => {
                        let _ = tx.send(format!("oomtrace-test: /dev/kmsg read failed: {e}"));
                        break;
                    }
                }
            }
        });
        Self { lines: rx }
    }

    /// Waits for the kernel's "Killed process <pid> (...)" line and returns it.
    pub fn killed_line(&self, pid: u32) -> KilledLine {
        let needle = format!("Killed process {pid} (");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kernel printed no kill line for pid {pid}"));
            if line.contains(&needle) {
                return KilledLine::parse(&line);
            }
        }
    }

    /// Waits for the kill line of `pid` and returns it with the report that
    /// preceded it (from its "invoked oom-killer" header).
    pub fn killed_report(&self, pid: u32) -> (Vec<String>, KilledLine) {
        let needle = format!("Killed process {pid} (");
        let deadline = Instant::now() + TIMEOUT;
        let mut report = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kernel printed no kill line for pid {pid}"));
            if line.contains("invoked oom-killer") {
                report.clear();
            }
            report.push(line.clone());
            if line.contains(&needle) {
                return (report, KilledLine::parse(&line));
            }
        }
    }

    /// The pids of the "Killed process" lines from now back to when the
    /// log was opened, in the kernel's order: a mark written to the log
    /// now ends the read (records the kernel overwrote are simply absent).
    pub fn killed_pids_so_far(&self) -> Vec<u32> {
        let mark = format!("oomtrace-test: mark {}", std::process::id());
        // A newline finalizes the record: without one the kernel keeps it open
        // for continuation and readers do not see it yet.
        fs::write("/dev/kmsg", format!("{mark}\n")).expect("writing a mark to /dev/kmsg");
        let mut order = Vec::new();
        loop {
            let line = self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|e| {
                panic!("the mark {mark:?} never came back ({e}); after {order:?}")
            });
            if line.contains(&mark) {
                return order;
            }
            if let Some(pid) = line
                .split("Killed process ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            {
                order.push(pid);
            }
        }
    }

    /// The pids of the kernel's `oom-kill:` lines whose `task_memcg` is
    /// `memcg` (as the kernel prints it), from now back to when the log was
    /// opened (or the last such call), in the kernel's order: a mark written
    /// to the log now ends the read. Other memcgs' kills on the node are left out.
    pub fn oom_kills_in_so_far(&self, memcg: &str) -> Vec<u32> {
        let mark = format!("oomtrace-test: mark {} {memcg}", std::process::id());
        fs::write("/dev/kmsg", format!("{mark}\n")).expect("writing a mark to /dev/kmsg");
        let task_memcg = format!(",task_memcg={memcg},");
        let mut order = Vec::new();
        loop {
            let line = self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|e| {
                panic!("the mark {mark:?} never came back ({e}); after {order:?}")
            });
            if line.contains(&mark) {
                return order;
            }
            if line.starts_with("oom-kill:") && line.contains(&task_memcg) {
                let pid = line
                    .split(',')
                    .find_map(|field| field.strip_prefix("pid="))
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .unwrap_or_else(|| panic!("no pid in {line}"));
                order.push(pid);
            }
        }
    }

    /// The records the kernel logged since the last call (or since the log
    /// was opened), without waiting.
    pub fn records_since(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kernel printed no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }
}

/// The numbers of the kernel's own kill line, parsed here independently.
#[derive(Debug)]
pub struct KilledLine {
    pub line: String,
    pub pid: u32,
    pub comm: String,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub uid: u32,
    pub pgtables_kb: u64,
    pub oom_score_adj: i32,
}

impl KilledLine {
    fn parse(line: &str) -> Self {
        let after = line.split("Killed process ").nth(1).unwrap();
        let (pid, rest) = after.split_once(" (").unwrap();
        let (comm, rest) = rest.split_once(") ").unwrap();
        let field = |key: &str| -> &str {
            rest.split([' ', ','])
                .find_map(|item| item.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} missing in {line}"))
        };
        let kb = |key: &str| -> u64 { field(key).trim_end_matches("kB").parse().unwrap() };
        Self {
            line: line.to_owned(),
            pid: pid.parse().unwrap(),
            comm: comm.to_owned(),
            total_vm_kb: kb("total-vm:"),
            anon_rss_kb: kb("anon-rss:"),
            file_rss_kb: kb("file-rss:"),
            shmem_rss_kb: kb("shmem-rss:"),
            uid: field("UID:").parse().unwrap(),
            pgtables_kb: kb("pgtables:"),
            oom_score_adj: field("oom_score_adj:").parse().unwrap(),
        }
    }
}

/// Runs oomtrace with `args` to completion: (exit code, stdout, stderr).
pub fn run_oomtrace(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(OOMTRACE).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A value from the kernel's "Memory cgroup stats" lines ("cache 123").
pub fn report_stat(report: &[String], key: &str) -> Option<u64> {
    report.iter().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub fn send_signal(child: &Child, signal: i32) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// One thread's privileges, from `/proc/<pid>/task/<tid>/status`.
#[derive(Debug, PartialEq, Eq)]
pub struct ThreadPrivileges {
    pub name: String,
    pub cap_eff: u64,
    pub cap_prm: u64,
    pub cap_inh: u64,
    pub cap_amb: u64,
    pub no_new_privs: u32,
    /// 0 off, 1 strict, 2 filter.
    pub seccomp: u32,
}

/// Every thread of `pid` (capabilities belong to threads: one started
/// before a drop would keep its own).
pub fn thread_privileges(pid: u32) -> Vec<ThreadPrivileges> {
    let mut threads = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |key: &str| -> &str {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("no {key} in {status}"))
                .trim()
        };
        let hex = |key: &str| u64::from_str_radix(field(key), 16).unwrap();
        threads.push(ThreadPrivileges {
            name: field("Name").to_owned(),
            cap_eff: hex("CapEff"),
            cap_prm: hex("CapPrm"),
            cap_inh: hex("CapInh"),
            cap_amb: hex("CapAmb"),
            no_new_privs: field("NoNewPrivs").parse().unwrap(),
            seccomp: field("Seccomp").parse().unwrap(),
        });
    }
    threads
}

/// The capability mask of the names in the start record's `privileges`.
pub fn capability_mask(privileges: &Value) -> u64 {
    privileges["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no capabilities in {privileges}"))
        .iter()
        .map(|name| {
            let name = name.as_str().unwrap();
            name.parse::<caps::Capability>()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .bitmask()
        })
        .fold(0, |mask, bit| mask | bit)
}

/// Every thread of the tracer `pid` holds exactly what its start record
/// says it kept, none inheritable or ambient, with no_new_privs, and the
/// seccomp filter if the record says so.
pub fn assert_holds_what_start_says(pid: u32, start: &Value) {
    let privileges = &start["privileges"];
    let kept = capability_mask(privileges);
    let seccomp = if privileges["seccomp"] == true { 2 } else { 0 };
    let threads = thread_privileges(pid);
    assert!(!threads.is_empty());
    for t in &threads {
        let expected = ThreadPrivileges {
            name: t.name.clone(),
            cap_eff: kept,
            cap_prm: kept,
            cap_inh: 0,
            cap_amb: 0,
            no_new_privs: 1,
            seccomp,
        };
        assert_eq!(t, &expected, "{privileges}; every thread: {threads:?}");
    }
}

impl KernelLog {
    /// Every line from the last read up to now: a mark written to the log
    /// now ends the read.
    pub fn lines_so_far(&self) -> Vec<String> {
        let mark = format!("oomtrace-test: lines mark {}", std::process::id());
        fs::write("/dev/kmsg", format!("{mark}\n")).expect("writing a mark to /dev/kmsg");
        let mut lines = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|e| panic!("the mark {mark:?} never came back ({e})"));
            if line.contains(&mark) {
                return lines;
            }
            lines.push(line);
        }
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET path` over HTTP/1.0 (no chunked answer): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// The value of `series` (name and labels as exposed) in a scrape of `addr`.
pub fn scraped(addr: SocketAddr, series: &str) -> Option<f64> {
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
