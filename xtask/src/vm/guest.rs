//! What a guest wrote on its second serial port (protocol: see tests/vm/init).
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct ScenarioOutput {
    pub name: String,
    /// `@@info key value...` lines, in order.
    pub infos: Vec<(String, String)>,
    pub files: BTreeMap<String, String>,
    /// `ran` or `error:<reason>`; `None` when the guest never finished the scenario.
    pub status: Option<String>,
    pub seconds: Option<f64>,
}

impl ScenarioOutput {
    pub fn info(&self, key: &str) -> Option<&str> {
        self.infos
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `@@info <key> <name> <value>` (pids, exit statuses) as `value` for `name`.
    pub fn named(&self, key: &str, name: &str) -> Option<&str> {
        self.infos.iter().find_map(|(k, v)| {
            let (n, value) = v.split_once(' ')?;
            (k == key && n == name).then_some(value)
        })
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.named("pid", name)?.trim().parse().ok()
    }

    pub fn file(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }
}

#[derive(Debug, Default)]
pub struct GuestOutput {
    /// `@@info` lines outside any scenario (kernel release, backend, ...).
    pub infos: Vec<(String, String)>,
    pub scenarios: Vec<ScenarioOutput>,
    pub dmesg: String,
    /// The guest reached the end of its script.
    pub done: bool,
}

impl GuestOutput {
    pub fn info(&self, key: &str) -> Option<&str> {
        self.infos
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn scenario(&self, name: &str) -> Option<&ScenarioOutput> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

pub fn parse(raw: &[u8]) -> GuestOutput {
    let text = String::from_utf8_lossy(raw);
    let mut out = GuestOutput::default();
    let mut current: Option<ScenarioOutput> = None;
    let mut file: Option<(String, String)> = None;
    let mut in_dmesg = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if in_dmesg {
            if line == "@@enddmesg" {
                in_dmesg = false;
            } else {
                out.dmesg.push_str(line);
                out.dmesg.push('\n');
            }
            continue;
        }
        if let Some((name, body)) = &mut file {
            if line == "@@endfile" {
                let (name, body) = (std::mem::take(name), std::mem::take(body));
                file = None;
                if let Some(s) = current.as_mut() {
                    s.files.insert(name, body);
                }
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "@@begin" => {
                if let Some(s) = current.take() {
                    out.scenarios.push(s);
                }
                current = Some(ScenarioOutput {
                    name: rest.to_owned(),
                    ..Default::default()
                });
            }
            "@@info" => {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                let entry = (key.to_owned(), value.to_owned());
                match current.as_mut() {
                    Some(s) => s.infos.push(entry),
                    None => out.infos.push(entry),
                }
            }
            "@@file" => file = Some((rest.to_owned(), String::new())),
            "@@end" => {
                let mut parts = rest.splitn(3, ' ');
                let name = parts.next().unwrap_or_default();
                if let Some(mut s) = current.take() {
                    if s.name == name {
                        s.seconds = parts.next().and_then(|t| t.parse().ok());
                        s.status = parts.next().map(str::to_owned);
                    }
                    out.scenarios.push(s);
                }
            }
            "@@dmesg" => in_dmesg = true,
            "@@done" => out.done = true,
            _ => {}
        }
    }
    if let Some(s) = current.take() {
        out.scenarios.push(s);
    }
    out
}

/// The kernel log lines between "oomtrace-vm: begin <scenario>" and
/// "oomtrace-vm: end <scenario>" (the marks the guest writes to /dev/kmsg).
pub fn kernel_log_of(dmesg: &str, scenario: &str) -> String {
    let begin = format!("oomtrace-vm: begin {scenario}");
    let end = format!("oomtrace-vm: end {scenario}");
    let mut inside = false;
    let mut out = String::new();
    for line in dmesg.lines() {
        if line.ends_with(&begin) {
            inside = true;
            continue;
        }
        if line.ends_with(&end) {
            break;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines_become_scenarios() {
        let raw = b"@@info kernel 6.1.0-56-amd64\r\n\
            @@begin v2-single\r\n\
            @@info pid hog64 81\r\n\
            @@info exit hog64 137\r\n\
            @@file tracer.out\r\n\
            {\"type\":\"start\"}\r\n\
            @@endfile\r\n\
            @@end v2-single 3.25 error:hog did not start\r\n\
            @@begin v2-many\r\n\
            @@dmesg\r\n\
            [    1.0] oomtrace-vm: begin v2-single\r\n\
            [    2.0] hog64 invoked oom-killer\r\n\
            [    3.0] oomtrace-vm: end v2-single\r\n\
            @@enddmesg\r\n\
            @@done\r\n";
        let out = parse(raw);
        assert_eq!(out.info("kernel"), Some("6.1.0-56-amd64"));
        assert!(out.done);
        let single = out.scenario("v2-single").unwrap();
        assert_eq!(single.pid("hog64"), Some(81));
        assert_eq!(single.named("exit", "hog64"), Some("137"));
        assert_eq!(single.file("tracer.out"), Some("{\"type\":\"start\"}\n"));
        assert_eq!(single.status.as_deref(), Some("error:hog did not start"));
        assert_eq!(single.seconds, Some(3.25));
        let many = out.scenario("v2-many").unwrap();
        assert_eq!(many.status, None);
        assert_eq!(
            kernel_log_of(&out.dmesg, "v2-single"),
            "[    2.0] hog64 invoked oom-killer\n"
        );
    }
}
