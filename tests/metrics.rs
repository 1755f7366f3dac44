//! `--metrics` on this machine's kernel: a real Prometheus server scrapes a
//! running oomtrace through a real memcg OOM kill, its query API returns the
//! kill on the memcg whose limit fired (as many as the memcg's own `oom_kill`
//! counter says), and the alert of deploy/prometheus fires; `promtool`
//! checks the exposition and the alert rules.
mod support;

use std::{
    fs,
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::*;

const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/oomtrace-alerts.yml"
);
/// The example alert on the early warning (issue #18).
const EARLY_WARNING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/oomtrace-early-warning.yml"
);

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} not found: `cargo xtask setup` installs it"))
}

/// A Prometheus server on a loopback port, with its config and storage in
/// a temporary directory; killed and removed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second and evaluates `rules` every second.
    fn start(target: SocketAddr, rules: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: oomtrace\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(which("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let prometheus = Self { child, addr, dir };
        prometheus.wait_until("ready", || {
            matches!(http_get(addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        prometheus
    }

    /// The vector an instant query returns.
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let Ok((200, body)) = http_get(self.addr, &path) else {
            return Vec::new();
        };
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["status"], "success", "{body}");
        value["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `check` until it returns a value, for at most [`TIMEOUT`].
    fn wait_until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(found) = check() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus: no {what} within {TIMEOUT:?}; its log:\n{}",
                fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
            );
            // Polling a server: the scrape and rule intervals are 1 s.
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for `promql` to return exactly one series; returns it.
    fn wait_for_one(&self, promql: &str) -> Value {
        self.wait_until(promql, || {
            let result = self.query(promql);
            (result.len() == 1).then(|| result[0].clone())
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(which("promtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `oomtrace --json --cgroup <cgroup> --metrics <a free loopback port>`,
/// once its start record is out: the tracer, that record and the address.
fn start_tracer(cgroup: &TestCgroup) -> (Tracer, Value, SocketAddr) {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (tracer, start) = Tracer::start_json(&[
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--metrics",
        &metrics.to_string(),
    ]);
    (tracer, start, metrics)
}

/// The kill counter of `memcg` as exposed (no Kubernetes names here).
fn kills_series(memcg: &str) -> String {
    format!(
        "oomtrace_oom_kills_total{{constraint=\"memcg\",namespace=\"\",pod=\"\",container=\"\",memcg=\"{memcg}\"}}"
    )
}

fn sample_value(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_a_real_oom_kill_and_the_alert_fires() {
    require_root();
    let cgroup = TestCgroup::new_v1("metrics", 64 << 20);
    let log = KernelLog::open();
    let (mut tracer, start, metrics) = start_tracer(&cgroup);
    let prometheus = Prometheus::start(metrics, Path::new(ALERTS));
    let up = prometheus.wait_for_one("up{job=\"oomtrace\"} == 1");
    assert_eq!(up["metric"]["instance"], metrics.to_string());
    let info = prometheus.wait_for_one("oomtrace_tracer_info");
    assert_eq!(info["metric"]["backend"], start["backend"], "{info}");
    assert_eq!(info["metric"]["kernel"], start["kernel_release"], "{info}");
    // Nothing was killed in this memcg before the hog.
    let kills = format!("oomtrace_oom_kills_total{{memcg=\"{}\"}}", cgroup.relative);
    assert!(prometheus.query(&kills).is_empty());

    let mut hog = Hog::start("metricshog", &cgroup, &[]);
    let killed = log.killed_line(hog.pid());
    assert!(hog.wait_killed(), "the hog was not SIGKILLed");
    let decision = tracer.next_record("decision");
    assert_eq!(u64_of(&decision["victim"]["pid"]), u64::from(killed.pid));

    let series = prometheus.wait_for_one(&kills);
    let last = prometheus.wait_for_one(&kills.replace(
        "oomtrace_oom_kills_total",
        "oomtrace_oom_last_kill_timestamp_seconds",
    ));
    let kill_time = oomtrace_core::base::time::parse_rfc3339(decision["time"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(sample_value(&last), kill_time.as_secs_f64(), "{last}");
    assert_eq!(
        sample_value(&series),
        cgroup.oom_kill_count() as f64,
        "{series}"
    );
    assert_eq!(sample_value(&series), 1.0, "{series}");
    assert_eq!(series["metric"]["constraint"], decision["constraint"]);
    for label in ["pid", "comm", "namespace", "pod", "container"] {
        assert!(series["metric"].get(label).is_none(), "{series}");
    }

    let alert = prometheus.wait_for_one(&format!(
        "ALERTS{{alertname=\"OOMKilled\",alertstate=\"firing\",memcg=\"{}\"}}",
        cgroup.relative
    ));
    assert_eq!(alert["metric"]["severity"], "warning", "{alert}");

    // promtool reads the Prometheus text format (what a plain GET gets).
    let (status, exposition) = http_get(metrics, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(exposition.contains(&cgroup.relative), "{exposition}");
    let (ok, out) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(ok, "promtool check metrics: {out}\n{exposition}");
    drop(prometheus);
    drop(tracer);
}

#[test]
fn an_oom_disabled_stall_shows_while_it_lasts() {
    require_root();
    let cgroup = TestCgroup::new_v1("metricstall", 32 << 20);
    fs::write(cgroup.path.join("memory.oom_control"), "1").unwrap();
    let log = KernelLog::open();
    let (mut tracer, _, metrics) = start_tracer(&cgroup);
    let identity = format!(
        "{{namespace=\"\",pod=\"\",container=\"\",memcg=\"{}\"}}",
        cgroup.relative
    );
    let stalled = format!("oomtrace_oom_stalled{identity}");
    let stalls = format!("oomtrace_oom_stalls_total{identity}");
    assert_eq!(scraped(metrics, &stalled), None);

    let mut hog = Hog::start("metricstuck", &cgroup, &[]);
    assert_eq!(tracer.next_record("oom_stall")["state"], "stalled");
    assert_eq!(scraped(metrics, &stalled), Some(1.0));
    assert_eq!(scraped(metrics, &stalls), Some(1.0));

    // The killer back on: the kernel kills the hog and the stall ends.
    fs::write(cgroup.path.join("memory.oom_control"), "0").unwrap();
    log.killed_line(hog.pid());
    assert!(hog.wait_killed());
    assert_eq!(tracer.next_record("oom_stall")["state"], "released");
    assert_eq!(scraped(metrics, &stalled), Some(0.0));
    assert_eq!(scraped(metrics, &stalls), Some(1.0));
    // The decision comes before or after the stall's end.
    if tracer.seen_records("decision").is_empty() {
        tracer.next_record("decision");
    }
    let kills = kills_series(&cgroup.relative);
    assert_eq!(
        scraped(metrics, &kills),
        Some(cgroup.oom_kill_count() as f64)
    );
}

/// A parent's lower limit fires: the kill is counted on the parent, the
/// `oom_memcg` of the kernel's own report, not on the victim's memcg.
#[test]
fn a_kill_counts_on_the_parent_whose_limit_fired() {
    require_root();
    let parent = TestCgroup::new_v1("metricparent", 48 << 20);
    let child = parent.child("child", 200 << 20);
    let log = KernelLog::open();
    let (mut tracer, _, metrics) = start_tracer(&parent);
    let mut hog = Hog::start("metrichier", &child, &[]);
    let (report, _) = log.killed_report(hog.pid());
    assert!(hog.wait_killed());
    let decision = tracer.next_record("decision");
    assert_eq!(decision["victim"]["memcg"], child.relative.as_str());
    let oom_memcg = report
        .iter()
        .find_map(|l| l.split("oom_memcg=").nth(1)?.split(',').next())
        .unwrap_or_else(|| panic!("no oom_memcg= in {report:?}"));
    assert_eq!(oom_memcg, parent.relative);

    // cgroup v1 counts the kill in the victim's memcg's own file.
    assert_eq!(child.oom_kill_count(), 1);
    assert_eq!(scraped(metrics, &kills_series(oom_memcg)), Some(1.0));
    assert_eq!(scraped(metrics, &kills_series(&child.relative)), None);
}

/// Half-sent requests held open, far more than the server's slots (any
/// client that can reach the port can open them), still leave a scrape its
/// whole exposition.
#[test]
fn held_half_requests_do_not_starve_a_scrape() {
    require_root();
    let cgroup = TestCgroup::new_v1("metricheld", 64 << 20);
    let (tracer, _, metrics) = start_tracer(&cgroup);
    let held: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut stream = TcpStream::connect(metrics).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    let (status, exposition) = http_get(metrics, "/metrics")
        .unwrap_or_else(|e| panic!("the scrape was not answered: {e}"));
    assert_eq!(status, 200, "{exposition}");
    assert!(
        exposition.contains("\noomtrace_build_info{"),
        "{exposition}"
    );
    let (ok, out) = promtool(&["check", "metrics"], Some(&exposition));
    assert!(ok, "promtool check metrics: {out}\n{exposition}");
    drop(held);
    drop(tracer);
}

#[test]
fn the_alert_rules_pass_promtool_and_are_the_readme_s() {
    let (ok, out) = promtool(&["check", "rules", ALERTS, EARLY_WARNING], None);
    assert!(ok, "promtool check rules: {out}");
    // Which series fire which alert when, with which text.
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/prometheus");
    let output = Command::new(which("promtool"))
        .args(["test", "rules", "oomtrace-alerts-test.yml"])
        .current_dir(tests)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let rules = fs::read_to_string(ALERTS).unwrap();
    let operations = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .unwrap();
    assert!(
        operations.contains(&format!("```yaml\n{rules}```")),
        "docs/operations.md must show deploy/prometheus/oomtrace-alerts.yml as it is"
    );
}

#[test]
fn metrics_on_a_bad_address_is_one_clear_line() {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run_oomtrace(&["--json", "--metrics", &addr, "--duration", "1"]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("oomtrace: --metrics: cannot listen on {addr}")),
        "{stderr}"
    );
    let (code, _, stderr) = run_oomtrace(&["--metrics", "localhost"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--metrics"), "{stderr}");
}
