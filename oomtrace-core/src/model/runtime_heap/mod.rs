//! The runtime's own memory setting (JVM heap, V8 old space, Go's memory
//! limit) against the memcg limit that fired: the most common reason a JVM,
//! Node or Go service is OOM-killed in a container is a heap allowed to
//! grow past the container's limit, so the kernel kills it before the
//! runtime collects harder or fails with its own out-of-memory error.
//! I/O-free: the command line and environment come in read.
mod settings;
mod size;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::{base::units::human_bytes, cgroup::process::ProcessArgs};

pub use settings::{Bound, HeapSetting, Runtime, heap_setting};

/// The victim's heap setting compared with the limit that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeHeap {
    /// `jvm`, `node` or `go`.
    pub runtime: Cow<'static, str>,
    /// As written (`-Xmx512m`), or `default` (the JVM's 25% of its limit).
    pub setting: String,
    /// `cmdline`, the environment variable it came from, or `default`.
    pub source: Cow<'static, str>,
    /// How far the heap (Go: all the runtime's memory) may grow.
    pub heap_max_bytes: u64,
    /// `-XX:MaxDirectMemorySize` (JVM), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_max_bytes: Option<u64>,
    /// The limit of the memcg whose OOM this was.
    pub limit_bytes: u64,
    /// The heap (and direct memory) fit under the limit: the heap was not
    /// what outgrew it.
    pub fits: bool,
}

/// The victim's setting against `limit_bytes`; None for a process of no
/// runtime known here.
pub fn assess(args: &ProcessArgs, comm: &str, limit_bytes: u64) -> Option<RuntimeHeap> {
    let setting = heap_setting(args, comm)?;
    let heap_max_bytes = match setting.bound {
        Bound::Bytes(bytes) => bytes,
        Bound::PercentOfRam { percent, max_ram } => {
            (max_ram.unwrap_or(limit_bytes) as f64 * percent / 100.0) as u64
        }
    };
    let total = heap_max_bytes.saturating_add(setting.direct_max_bytes.unwrap_or(0));
    Some(RuntimeHeap {
        runtime: Cow::Borrowed(setting.runtime.name()),
        setting: setting.setting,
        source: Cow::Borrowed(setting.source),
        heap_max_bytes,
        direct_max_bytes: setting.direct_max_bytes,
        limit_bytes,
        fits: total < limit_bytes,
    })
}

impl RuntimeHeap {
    /// What the setting means for this kill, and what to change.
    pub fn sentence(&self) -> String {
        let (heap, limit) = (
            human_bytes(self.heap_max_bytes),
            human_bytes(self.limit_bytes),
        );
        let setting = match self.source.as_ref() {
            "cmdline" | "GOMEMLIMIT" => self.setting.clone(),
            "default" => "the JVM's default of 25% of its limit".to_owned(),
            source => format!("{} in {source}", self.setting),
        };
        match (self.runtime.as_ref(), self.fits) {
            ("jvm", false) => format!(
                "the JVM's heap may grow to {heap} ({setting}) while the memcg's limit is {limit}, \
                 so the kernel killed it before the JVM could throw OutOfMemoryError; set -Xmx \
                 below {limit}, leaving room for metaspace, threads and native memory, or use \
                 -XX:MaxRAMPercentage instead of a fixed size"
            ),
            ("jvm", true) => format!(
                "the JVM's heap is capped at {heap} ({setting}), below the memcg's limit of \
                 {limit}: the heap was not the cause; memory outside it grew (direct buffers, \
                 metaspace, thread stacks, native allocations)"
            ),
            ("node", false) => format!(
                "V8's old space may grow to {heap} ({setting}) while the memcg's limit is {limit}, \
                 so the kernel killed it before Node could fail with \"JavaScript heap out of \
                 memory\"; set --max-old-space-size below {} (MiB), leaving room for buffers \
                 and native memory",
                self.limit_bytes >> 20
            ),
            ("node", true) => format!(
                "V8's old space is capped at {heap} ({setting}), below the memcg's limit of \
                 {limit}: the JavaScript heap was not the cause; memory outside it grew \
                 (Buffers, native addons, code space)"
            ),
            (_, false) => format!(
                "the Go runtime's soft memory limit is {heap} ({setting}) while the memcg's \
                 limit is {limit}, so its garbage collector did not work harder before the \
                 kernel killed it; set GOMEMLIMIT below {limit} (about 90% of it)"
            ),
            (_, true) => format!(
                "the Go runtime's soft memory limit is {heap} ({setting}), below the memcg's \
                 limit of {limit}: the collector works to stay under it, so the live heap \
                 outgrew it or memory outside the Go heap grew (cgo, mapped files)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::scrub::scrub;

    fn java(line: &str) -> ProcessArgs {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        ProcessArgs {
            cmdline: scrub(&args),
            env: None,
        }
    }

    #[test]
    fn a_heap_above_the_limit_is_named_with_what_to_change() {
        let heap = assess(&java("java -Xmx512m Hog"), "java", 256 << 20).unwrap();
        assert!(!heap.fits);
        assert_eq!(
            (heap.heap_max_bytes, heap.limit_bytes),
            (512 << 20, 256 << 20)
        );
        let sentence = heap.sentence();
        assert!(sentence.contains("512.0 MiB (-Xmx512m)"), "{sentence}");
        assert!(sentence.contains("256.0 MiB") && sentence.contains("OutOfMemoryError"));
    }

    #[test]
    fn a_heap_that_fits_was_not_the_cause() {
        let heap = assess(&java("java -Xmx64m Hog"), "java", 256 << 20).unwrap();
        assert!(heap.fits);
        assert!(heap.sentence().contains("was not the cause"));
        // The default percentage of the limit fits; 100% of it does not.
        let default = assess(&java("java Hog"), "java", 256 << 20).unwrap();
        assert_eq!(default.heap_max_bytes, 64 << 20);
        assert!(default.fits);
        let all = assess(
            &java("java -XX:MaxRAMPercentage=100 Hog"),
            "java",
            256 << 20,
        )
        .unwrap();
        assert!(!all.fits);
        // Direct memory counts with the heap.
        let direct = java("java -Xmx128m -XX:MaxDirectMemorySize=200m Hog");
        assert!(!assess(&direct, "java", 256 << 20).unwrap().fits);
    }

    #[test]
    fn other_programs_have_no_runtime_heap() {
        assert_eq!(assess(&java("/bin/sh -c x"), "sh", 1 << 30), None);
    }
}
