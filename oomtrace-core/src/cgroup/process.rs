//! A process's command line and its runtime memory settings from the
//! environment, read from `/proc` while the process lives (after an OOM
//! kill its memory, argv included, is gone), and the bounded cache that
//! keeps them past its death.
//!
//! Secrets are masked as the line is read (`base::scrub`); of the
//! environment only [`ENV_ALLOWLIST`] is kept, read entry by entry.
use std::{
    collections::{HashMap, VecDeque},
    fs,
    io::{BufRead, BufReader},
    path::Path,
};

use crate::base::{
    bounds,
    scrub::{self, Cmdline},
};

/// Environment variables that set a runtime's memory and carry no secret.
pub const ENV_ALLOWLIST: &[&str] = &[
    "GOMEMLIMIT",
    "GOGC",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "NODE_OPTIONS",
    "MALLOC_ARENA_MAX",
];

/// Processes kept at most (the byte budget is [`bounds::CMDLINES`]).
pub const MAX_PROCESSES: usize = 16384;

/// What was read of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessArgs {
    pub cmdline: Cmdline,
    /// The allowlisted variables that are set, scrubbed (None: the
    /// environment could not be read, e.g. another user's process after the
    /// capabilities were dropped).
    pub env: Option<Vec<(String, String)>>,
}

impl ProcessArgs {
    /// Upper bound of its heap use.
    pub fn heap_bytes(&self) -> usize {
        let env = self.env.iter().flatten();
        self.cmdline.heap_bytes() + env.map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
    }

    /// The value of an allowlisted variable, if set and read.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        let env = self.env.as_ref()?;
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads `/proc/<pid>/cmdline` and, with `with_env`, the allowlisted
/// variables of `/proc/<pid>/environ`. None: the process is gone or has no
/// command line (a kernel thread, or one whose memory is already released).
pub fn read_process_args(proc: &Path, pid: u32, with_env: bool) -> Option<ProcessArgs> {
    let dir = proc.join(pid.to_string());
    let raw = fs::read(dir.join("cmdline")).ok()?;
    let cmdline = scrub::scrub_proc_cmdline(&raw);
    if cmdline.args.is_empty() {
        return None;
    }
    let env = with_env
        .then(|| fs::File::open(dir.join("environ")).ok())
        .flatten()
        .map(|f| allowlisted_env(BufReader::new(f)));
    Some(ProcessArgs { cmdline, env })
}

/// The allowlisted variables of a NUL-separated environment, one entry in
/// memory at a time; values scrubbed and capped like arguments.
pub fn allowlisted_env(mut reader: impl BufRead) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut entry = Vec::new();
    loop {
        entry.clear();
        match reader.read_until(0, &mut entry) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let entry = entry.strip_suffix(b"\0").unwrap_or(&entry);
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&entry[..eq]) else {
            continue;
        };
        if !ENV_ALLOWLIST.contains(&name) || kept.iter().any(|(k, _)| k == name) {
            continue;
        }
        let value = String::from_utf8_lossy(&entry[eq + 1..]);
        let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
        kept.push((name.to_owned(), scrub::scrub(&words).args.join(" ")));
    }
    kept
}

/// Command lines by pid, kept past the process's death; the oldest read is
/// evicted past [`MAX_PROCESSES`] or [`bounds::CMDLINES`], and counted.
#[derive(Debug, Default)]
pub struct CmdlineCache {
    by_pid: HashMap<u32, (u64, ProcessArgs)>,
    /// (pid, sequence of its read), oldest first; stale pairs (a pid read
    /// again since) are skipped when evicting.
    order: VecDeque<(u32, u64)>,
    next_seq: u64,
    bytes: usize,
    pub evicted: u64,
}

impl CmdlineCache {
    /// Reads `pid` now and keeps it (replacing what an earlier process of
    /// that pid left). False: nothing could be read.
    pub fn read(&mut self, proc: &Path, pid: u32, with_env: bool) -> bool {
        match read_process_args(proc, pid, with_env) {
            Some(args) => {
                self.insert(pid, args);
                true
            }
            None => false,
        }
    }

    /// Every process of the host, at start (before the capabilities are
    /// dropped, so every environment can be read).
    pub fn scan(&mut self, proc: &Path, with_env: bool) {
        let Ok(entries) = fs::read_dir(proc) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                self.read(proc, pid, with_env);
            }
        }
    }

    pub fn insert(&mut self, pid: u32, args: ProcessArgs) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += args.heap_bytes() + bounds::ENTRY_OVERHEAD;
        if let Some((_, old)) = self.by_pid.insert(pid, (seq, args)) {
            self.bytes -= old.heap_bytes() + bounds::ENTRY_OVERHEAD;
        }
        self.order.push_back((pid, seq));
        while self.by_pid.len() > MAX_PROCESSES || self.bytes > bounds::CMDLINES {
            let Some((old_pid, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self
                .by_pid
                .get(&old_pid)
                .is_some_and(|(s, _)| *s == old_seq)
            {
                let (_, old) = self.by_pid.remove(&old_pid).expect("present");
                self.bytes -= old.heap_bytes() + bounds::ENTRY_OVERHEAD;
                self.evicted += 1;
            }
        }
        // Re-reads leave stale pairs behind: keep the queue near the map's size.
        if self.order.len() > 2 * self.by_pid.len() + 64 {
            let by_pid = &self.by_pid;
            self.order
                .retain(|(p, s)| by_pid.get(p).is_some_and(|(seq, _)| seq == s));
        }
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessArgs> {
        self.by_pid.get(&pid).map(|(_, args)| args)
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// Its heap use as counted against [`bounds::CMDLINES`].
    pub fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowlisted_variables_are_kept_and_scrubbed() {
        let environ = b"PATH=/bin\0DB_PASSWORD=hunter2\0GOMEMLIMIT=200MiB\0\
            JAVA_TOOL_OPTIONS=-Xmx1g -Djavax.net.ssl.keyStorePassword=s3\0noequals\0\
            GOMEMLIMIT=ignored-second\0";
        let kept = allowlisted_env(&environ[..]);
        assert_eq!(
            kept,
            [
                ("GOMEMLIMIT".to_owned(), "200MiB".to_owned()),
                (
                    "JAVA_TOOL_OPTIONS".to_owned(),
                    "-Xmx1g -Djavax.net.ssl.keyStorePassword=********".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_cache_evicts_the_oldest_past_its_entry_bound_and_counts_it() {
        let mut cache = CmdlineCache::default();
        let args = ProcessArgs {
            cmdline: scrub::scrub(&["x".to_owned()]),
            env: None,
        };
        for pid in 0..(MAX_PROCESSES as u32 + 3) {
            cache.insert(pid, args.clone());
        }
        assert_eq!(cache.len(), MAX_PROCESSES);
        assert_eq!(cache.evicted, 3);
        assert!(cache.get(0).is_none() && cache.get(3).is_some());
        // A pid read again replaces its entry and is not evicted for the old one.
        cache.insert(3, args.clone());
        cache.insert(MAX_PROCESSES as u32 + 10, args);
        assert!(cache.get(3).is_some() && cache.get(4).is_none());
        assert!(cache.heap_bytes() <= bounds::CMDLINES);
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let pid = std::process::id();
        let args = read_process_args(Path::new("/proc"), pid, true).unwrap();
        let own: Vec<String> = std::env::args().collect();
        assert_eq!(args.cmdline, scrub::scrub(&own));
        assert!(args.env.is_some());
        assert!(read_process_args(Path::new("/proc"), u32::MAX, true).is_none());
    }
}
