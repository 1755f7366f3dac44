//! The victim's command line and its runtime's heap setting, on this
//! machine's kernel with Debian's OpenJDK: a real JVM given `-Xmx` above its
//! memcg's limit is killed by the kernel, and the decision carries what
//! `/proc` showed while it ran (secrets masked) and the heap the JVM itself
//! reports against the limit; no secret of that line reaches any output.
mod support;

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
};

use oomtrace_core::base::scrub::scrub_proc_cmdline;
use support::*;

/// Allocates 1 MiB arrays and touches them, once told to on stdin.
const HOG_JAVA: &str = "public class Hog {
    public static void main(String[] args) throws Exception {
        System.out.println(\"ready\");
        System.out.flush();
        if (System.in.read() < 0) return;
        java.util.List<byte[]> kept = new java.util.ArrayList<>();
        while (true) {
            byte[] b = new byte[1 << 20];
            for (int i = 0; i < b.length; i += 4096) b[i] = 1;
            kept.add(b);
        }
    }
}
";

/// Flags that keep the JVM's start short on a loaded machine.
const FAST_START: &[&str] = &[
    "-Xshare:auto",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
];

/// `Hog.class` compiled into a temporary directory.
fn compile_hog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Hog.java"), HOG_JAVA).unwrap();
    let status = Command::new("javac")
        .arg("-d")
        .arg(dir.path())
        .arg(dir.path().join("Hog.java"))
        .status()
        .unwrap_or_else(|e| {
            panic!("javac (openjdk-17-jdk-headless, `cargo xtask setup`) cannot run: {e}")
        });
    assert!(status.success(), "javac failed: {status}");
    dir
}

/// A JVM started inside `cgroup` (joined before the exec, so the exec is
/// the memcg's), waiting on stdin.
struct Jvm {
    child: Child,
    stdin: ChildStdin,
}

impl Jvm {
    fn start(cgroup: &TestCgroup, classes: &Path, jvm_flags: &[&str], app_args: &[&str]) -> Self {
        let mut child = Command::new("sh")
            .args(["-c", "echo $$ > \"$0\"/cgroup.procs && exec \"$@\""])
            .arg(&cgroup.path)
            .arg("java")
            .args(jvm_flags)
            .args(FAST_START)
            .arg("-cp")
            .arg(classes)
            .arg("Hog")
            .args(app_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("java cannot start: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the JVM did not start");
        let stdin = child.stdin.take().unwrap();
        Self { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What /proc shows of it now, scrubbed as the tracer scrubs.
    fn proc_cmdline(&self) -> Vec<String> {
        let raw = fs::read(format!("/proc/{}/cmdline", self.pid())).unwrap();
        scrub_proc_cmdline(&raw).args
    }

    /// Lets it allocate, and waits for the kernel's SIGKILL.
    fn grow_until_killed(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }
}

impl Drop for Jvm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JVM's own final `MaxHeapSize` for these flags (`-XX:+PrintFlagsFinal`).
fn jvm_max_heap(flags: &[&str]) -> u64 {
    let out = Command::new("java")
        .args(flags)
        .args(["-XX:+PrintFlagsFinal", "-version"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.nth(1)? == "MaxHeapSize").then(|| words.nth(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no MaxHeapSize in -XX:+PrintFlagsFinal: {text}"))
}

#[test]
fn a_jvm_heap_above_its_limit_is_named_with_its_command_line() {
    require_root();
    let classes = compile_hog();
    let cgroup = TestCgroup::new_v1("jvm", 256 << 20);
    let log = KernelLog::open();
    let (mut tracer, _start) =
        Tracer::start_json(&["--cgroup", cgroup.path.to_str().unwrap(), "--count", "1"]);
    let mut jvm = Jvm::start(&cgroup, classes.path(), &["-Xmx512m"], &[]);
    let seen_in_proc = jvm.proc_cmdline();
    jvm.grow_until_killed();
    let killed = log.killed_line(jvm.pid());
    let decision = tracer.next_record("decision");

    let victim = &decision["victim"];
    assert_eq!(u64_of(&victim["pid"]), u64::from(killed.pid), "{decision}");
    assert_eq!(
        victim["cmdline"],
        serde_json::json!(seen_in_proc),
        "{decision}"
    );
    assert_eq!(victim["cmdline_truncated"], false);

    let heap = &decision["runtime_heap"];
    assert_eq!(heap["runtime"], "jvm", "{decision}");
    assert_eq!(heap["setting"], "-Xmx512m");
    assert_eq!(heap["source"], "cmdline");
    assert_eq!(u64_of(&heap["heap_max_bytes"]), jvm_max_heap(&["-Xmx512m"]));
    assert_eq!(u64_of(&heap["limit_bytes"]), cgroup.limit_bytes());
    assert_eq!(
        heap["fits"],
        u64_of(&heap["heap_max_bytes"]) < cgroup.limit_bytes()
    );
    let explanation = decision["explanation"].to_string();
    assert!(
        explanation.contains("-Xmx512m") && explanation.contains("OutOfMemoryError"),
        "{explanation}"
    );
    assert!(tracer.wait_exit().success());
}

/// A fresh secret for this run (so a hit cannot be an earlier run's).
fn secret(tag: &str) -> String {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{tag}-{hex}")
}

/// Every file below `dir`, as text.
fn files_below(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    found
}

#[test]
fn no_secret_of_the_command_line_reaches_any_output() {
    require_root();
    let classes = compile_hog();
    let cgroup = TestCgroup::new_v1("secrets", 256 << 20);
    let (password, api_key, db_password) = (secret("hunter2"), secret("apikey"), secret("dbpass"));
    let password_arg = format!("--password={password}");
    let db_arg = format!("DB_PASSWORD={db_password}");
    let app_args = [password_arg.as_str(), "--api-key", &api_key, &db_arg];
    let cgroup_arg = cgroup.path.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (file, dumps) = (dir.path().join("oom.jsonl"), dir.path().join("dumps"));
    let port = free_port();
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Stdout JSON, the card, and a run with --output, --dump-dir and --metrics.
    let (mut json, _) = Tracer::start_json(&["--cgroup", cgroup_arg, "--count", "1"]);
    let mut card = Tracer::start(&["--cgroup", cgroup_arg, "--count", "1"]);
    let (mut without, _) =
        Tracer::start_json(&["--cgroup", cgroup_arg, "--count", "1", "--no-cmdline"]);
    let files = Tracer::start(&[
        "--cgroup",
        cgroup_arg,
        "--output",
        file.to_str().unwrap(),
        "--dump-dir",
        dumps.to_str().unwrap(),
        "--metrics",
        &metrics.to_string(),
    ]);
    card.wait_line("oomtrace: tracing OOM kills");
    await_value("start record in --output", || {
        let text = fs::read_to_string(&file).ok()?;
        text.contains("\"type\":\"start\"").then_some(())
    });

    let mut jvm = Jvm::start(&cgroup, classes.path(), &["-Xmx512m"], &app_args);
    assert!(jvm.proc_cmdline().iter().any(|a| a.contains("--password")));
    jvm.grow_until_killed();

    let decision = json.next_record("decision");
    let cmdline = decision["victim"]["cmdline"].to_string();
    for masked in [
        "--password=********",
        "\"--api-key\",\"********\"",
        "DB_PASSWORD=********",
    ] {
        assert!(cmdline.contains(masked), "{masked} not in {cmdline}");
    }
    // --no-cmdline records none, so no heap setting either.
    let bare = without.next_record("decision");
    assert_eq!(bare["victim"]["pid"], decision["victim"]["pid"]);
    assert!(bare["victim"]["cmdline"].is_null(), "{bare}");
    assert!(bare["runtime_heap"].is_null(), "{bare}");
    assert!(card.wait_exit().success());
    assert!(json.wait_exit().success());
    let decided = await_value("decision in --output", || {
        let text = fs::read_to_string(&file).ok()?;
        text.contains("\"type\":\"decision\"").then_some(text)
    });
    let dumped = await_value("a dump", || {
        let found = files_below(&dumps);
        (!found.is_empty()).then_some(found)
    });
    let (status, scrape) = http_get(metrics, "/metrics").unwrap();
    assert_eq!(status, 200);
    drop(files);

    let mut outputs: Vec<(String, String)> = vec![
        ("stdout JSON".into(), json.seen.join("\n")),
        ("--no-cmdline".into(), without.seen.join("\n")),
        ("card".into(), card.seen.join("\n")),
        ("--output".into(), decided),
        ("--metrics".into(), scrape),
    ];
    let card_text = &outputs[2].1;
    assert!(
        card_text.contains("  command    "),
        "no command line on the card: {card_text}"
    );
    outputs.extend(
        dumped
            .into_iter()
            .map(|(p, t)| (p.display().to_string(), t)),
    );
    for (name, text) in &outputs {
        for secret in [&password, &api_key, &db_password] {
            assert!(
                !text.contains(secret.as_str()),
                "{secret} leaked into {name}"
            );
        }
    }
}
