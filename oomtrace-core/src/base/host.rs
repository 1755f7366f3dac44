//! Facts about the host that make a dump self-contained.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub kernel_release: Option<String>,
    pub boot_id: Option<String>,
    pub page_size: u64,
    pub oomtrace_version: String,
}

impl HostFacts {
    pub fn collect(page_size: u64) -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
        };
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            kernel_release: read("/proc/sys/kernel/osrelease"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            page_size,
            oomtrace_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The kernel's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}
