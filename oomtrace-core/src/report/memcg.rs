//! The memcg lines of a memcg OOM: the page counters ("memory: usage …"),
//! pre-4.19's "Task in … killed as a result of limit of …", and the
//! "Memory cgroup stats for" block (4.4 prints it on one line).

use serde::Serialize;

use super::{
    fit::Fit,
    numbers::{MAX_COUNTER_KB, MAX_PLAUSIBLE_BYTES},
};

/// "memory: usage 65536kB, limit 65536kB, failcnt 3374" (also memory+swap, swap, kmem).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterLine {
    pub name: String,
    pub usage_kb: u64,
    pub limit_kb: u64,
    pub failcnt: u64,
}

/// "Memory cgroup stats for /path:": the memcg, and the one-line form's
/// stats (`None` when a block of "key value" lines follows).
pub(super) struct StatsFor {
    path: String,
    inline: Option<Vec<(String, u64)>>,
}

impl StatsFor {
    fn new(path: &str, inline: Option<Vec<(String, u64)>>) -> Self {
        Self {
            path: path.to_string(),
            inline,
        }
    }
}

/// "memory: usage 65536kB, limit 65536kB, failcnt 3374"
pub(super) fn parse_counter(t: &str) -> Option<CounterLine> {
    let (name, rest) = t.split_once(": usage ")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'+') {
        return None;
    }
    let (usage, rest) = rest.split_once("kB, limit ")?;
    let (limit, failcnt) = rest.split_once("kB, failcnt ")?;
    Some(CounterLine {
        name: name.to_string(),
        usage_kb: usage.parse().ok()?,
        limit_kb: limit.parse().ok()?,
        failcnt: failcnt.trim_end().parse().ok()?,
    })
}

/// Pre-4.19 "Task in /a killed as a result of limit of /b": (task memcg,
/// OOM memcg); the OOM memcg is empty when the line was cut off before it.
pub(super) fn parse_task_in(t: &str) -> Option<(String, String)> {
    let rest = t.strip_prefix("Task in ")?;
    Some(match rest.split_once(" killed as a result of limit of ") {
        Some((task, oom)) => (task.to_string(), oom.trim_end().to_string()),
        None => (rest.trim_end().to_string(), String::new()),
    })
}

/// "Memory cgroup stats for /path:" (a key/value block follows), or the
/// one-line 4.4 form "Memory cgroup stats for /path: cache:96KB rss:262048KB ...".
pub(super) fn parse_stats_for(t: &str) -> Option<StatsFor> {
    let rest = t.strip_prefix("Memory cgroup stats for ")?.trim_end();
    if let Some((path, items)) = rest.split_once(": ") {
        let tokens: Vec<&str> = items.split_whitespace().collect();
        let mut stats = Vec::new();
        for (i, tok) in tokens.iter().enumerate() {
            let Some((key, value)) = tok.split_once(':') else {
                continue;
            };
            let parsed = match value.strip_suffix("KB") {
                Some(kb) => kb.parse::<u64>().ok().and_then(|v| v.checked_mul(1024)),
                // Every item of this form ends in "KB": a last item without it
                // was cut off (journal line limit).
                None if i + 1 == tokens.len() => None,
                None => value.parse().ok(),
            };
            if let Some(v) = parsed.filter(|&v| stat_is_plausible(key, v)) {
                stats.push((key.to_string(), v));
            }
        }
        return Some(StatsFor::new(path, Some(stats)));
    }
    Some(match rest.strip_suffix(':') {
        Some(path) => StatsFor::new(path, None),
        // Cut off inside the path: keep what there is, expect no block.
        None => StatsFor::new(rest, Some(Vec::new())),
    })
}

/// "rss 66703360" inside the stats block.
fn parse_stat_kv(text: &str) -> Option<(String, u64)> {
    let (key, value) = text.trim().split_once(' ')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    Some((key.to_string(), value.parse().ok()?))
}

/// A memcg stat within what a kernel prints: an unlimited v1
/// `hierarchical_memsw_limit` is `PAGE_COUNTER_MAX` pages in bytes, just
/// under 2^63; every other stat is a size or a count, at most 64 PiB.
fn stat_is_plausible(key: &str, value: u64) -> bool {
    if key.contains("limit") {
        value <= 1 << 63
    } else {
        value <= MAX_PLAUSIBLE_BYTES
    }
}

/// A counter no memcg can have is left out; the same counter twice is
/// another report's.
pub(super) fn add_counter(counters: &mut Vec<CounterLine>, c: CounterLine) -> Fit {
    if c.usage_kb > MAX_COUNTER_KB || c.limit_kb > MAX_COUNTER_KB {
        Fit::Implausible
    } else if counters.iter().any(|o| o.name == c.name) {
        Fit::Interleaved
    } else {
        counters.push(c);
        Fit::Belongs
    }
}

/// Records the report's stats: old v1 kernels print one block per memcg of
/// the hierarchy; the first is the OOM memcg, the rest stay in `lines`.
/// True when the stats follow as a block of lines.
pub(super) fn open_stats(
    stats_for: &mut Option<String>,
    stats: &mut Vec<(String, u64)>,
    line: StatsFor,
) -> bool {
    if stats_for.is_some() {
        return false;
    }
    *stats_for = Some(line.path);
    match line.inline {
        Some(items) => {
            *stats = items;
            false
        }
        None => true,
    }
}

/// A "key value" line of the stats block, kept unless no kernel prints its
/// value; `None` when the line is not one.
pub(super) fn read_stat(text: &str, stats: &mut Vec<(String, u64)>) -> Option<Fit> {
    let (key, value) = parse_stat_kv(text)?;
    if !stat_is_plausible(&key, value) {
        return Some(Fit::Implausible);
    }
    stats.push((key, value));
    Some(Fit::Belongs)
}
