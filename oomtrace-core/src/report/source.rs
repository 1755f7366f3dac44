//! One line of input: the prefixes a log puts in front of the kernel's
//! message (dmesg, `dmesg -T` and `-r`, syslog, the journal), and the
//! message they leave.

use serde::Serialize;

/// One line of a report as it stands in the input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceLine {
    /// 1-based line number in the input, or the kmsg sequence number for live input.
    pub line_no: usize,
    /// Seconds since boot from a `[   12.345678]` prefix, when there was one.
    pub timestamp: Option<f64>,
    /// The message without any prefix.
    pub text: String,
}

/// The prefixes found in front of one raw log line; see [`split_prefix`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prefixed<'a> {
    /// Seconds since boot from a dmesg `[ 1534.287964]` stamp.
    pub timestamp: Option<f64>,
    /// The syslog/journal identifier ("kernel", "docker[977]") when the line
    /// came from a syslog or journal export; `None` for dmesg and raw text.
    pub ident: Option<&'a str>,
    /// The host name of a syslog/journal line (`Nov 23 18:32:48 host kernel:`),
    /// so that a log merging several hosts can be told apart.
    pub host: Option<&'a str>,
    /// The message itself.
    pub message: &'a str,
}

/// Removes dmesg / `dmesg -T` / journal / syslog prefixes from one raw line.
/// Returns the boot-seconds timestamp (when the line had a `[ 12.345]` stamp)
/// and the message. Leading spaces that belong to the message (stack-trace
/// lines, Mem-Info continuation lines) are kept.
pub fn strip_prefix(raw: &str) -> (Option<f64>, &str) {
    let p = split_prefix(raw);
    (p.timestamp, p.message)
}

/// Like [`strip_prefix`], but also says which program a syslog/journal line
/// came from, so callers can skip lines that the kernel did not write
/// (e.g. `docker[977]: Killed`).
pub fn split_prefix(raw: &str) -> Prefixed<'_> {
    let mut s = raw.trim_end_matches(['\r', '\n']);
    s = strip_priority(s);
    let mut ident = None;
    let mut host = None;
    if let Some((h, id, rest)) = strip_syslog_header(s) {
        host = Some(h);
        ident = Some(id);
        s = rest;
    }
    let mut timestamp = None;
    if let Some(rest) = strip_wallclock_stamp(s) {
        s = rest;
    } else if let Some((ts, rest)) = strip_boot_stamp(s) {
        timestamp = Some(ts);
        s = rest;
        if ident.is_none() {
            // journalctl -o short-monotonic: "[ 1534.287964] host kernel: msg"
            if let Some((h, host_ident, rest)) = strip_host_ident(s) {
                host = Some(h);
                ident = Some(host_ident);
                s = rest;
            }
        }
    }
    Prefixed {
        timestamp,
        ident,
        host,
        message: s,
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `<6>` syslog priority as printed by `dmesg -r`.
fn strip_priority(s: &str) -> &str {
    let Some((num, after)) = s.strip_prefix('<').and_then(|r| r.split_once('>')) else {
        return s;
    };
    if (1..=3).contains(&num.len()) && num.bytes().all(|b| b.is_ascii_digit()) {
        after
    } else {
        s
    }
}

/// "Nov 23 18:32:48 host ident: " or "2026-11-23T18:32:48+0000 host ident: ".
/// Returns (host, ident without the colon, message).
fn strip_syslog_header(s: &str) -> Option<(&str, &str, &str)> {
    let rest = strip_syslog_time(s)?;
    let (host, rest) = rest.split_once(' ')?;
    if host.is_empty() {
        return None;
    }
    let (ident, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let ident = ident.strip_suffix(':')?;
    if ident.is_empty() {
        return None;
    }
    Some((host, ident, msg))
}

/// The time stamp of a syslog/journal line, returning what follows it.
fn strip_syslog_time(s: &str) -> Option<&str> {
    // Traditional: "Nov 23 18:32:48" / "Nov  3 18:32:48" / "Nov 23 18:32:48.123456"
    let traditional = s
        .get(..3)
        .filter(|m| MONTHS.contains(m))
        .and_then(|_| s[3..].strip_prefix(' '));
    if let Some(rest) = traditional {
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let (day, rest) = rest.split_once(' ')?;
        let (clock, rest) = rest.split_once(' ')?;
        if (1..=2).contains(&day.len())
            && day.bytes().all(|b| b.is_ascii_digit())
            && is_clock(clock)
        {
            return Some(rest);
        }
        return None;
    }
    // ISO 8601: "2026-11-23T18:32:48+0000", "2026-11-23T18:32:48.123456+00:00"
    let (stamp, rest) = s.split_once(' ')?;
    let b = stamp.as_bytes();
    if b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && is_clock(&stamp[11..])
    {
        return Some(rest);
    }
    None
}

/// "HH:MM:SS" optionally followed by fractional seconds / a zone.
fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

/// dmesg's `[ 1534.287964] ` (digits, a dot, digits: a bare `[15947]` task-table
/// row is not a stamp).
fn strip_boot_stamp(s: &str) -> Option<(f64, &str)> {
    let rest = s.strip_prefix('[')?;
    let (inner, after) = rest.split_once(']')?;
    let inner = inner.trim_start();
    let (secs, frac) = inner.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let ts = inner.parse().ok()?;
    Some((ts, after.strip_prefix(' ').unwrap_or(after)))
}

/// `dmesg -T`'s `[Mon Nov 23 18:32:48 2026] `.
fn strip_wallclock_stamp(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let (inner, after) = rest.split_once(']')?;
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [weekday, month, day, clock, year] = parts[..] else {
        return None;
    };
    let ok = WEEKDAYS.contains(&weekday)
        && MONTHS.contains(&month)
        && day.bytes().all(|b| b.is_ascii_digit())
        && is_clock(clock)
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| after.strip_prefix(' ').unwrap_or(after))
}

/// "host kernel: msg" after a monotonic stamp (journalctl -o short-monotonic).
fn strip_host_ident(s: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = s.split_once(' ')?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return None;
    }
    let msg = rest.strip_prefix("kernel:")?;
    if !(msg.is_empty() || msg.starts_with(' ')) {
        return None;
    }
    Some((host, "kernel", msg.strip_prefix(' ').unwrap_or(msg)))
}
