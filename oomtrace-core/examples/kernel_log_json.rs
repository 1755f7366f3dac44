//! Prints what `oomtrace_core::report::parse_log` makes of kernel logs, as JSON:
//! one line per file, `{"file": ..., "items": [...]}` (or `"error"`).
//!
//! Used by `cargo xtask vm-test` (xtask cannot link the oomtrace crate: that
//! would need the eBPF toolchain before `cargo xtask setup` installs it), to
//! check each decision of a VM guest against the kernel's own report.
use oomtrace_core::report::parse_log;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    for path in std::env::args_os().skip(1) {
        let text = std::fs::read(&path)?;
        let file = path.to_string_lossy();
        let line = match parse_log(&text) {
            Ok(items) => json!({ "file": file, "items": items }),
            Err(error) => json!({ "file": file, "error": error.to_string() }),
        };
        println!("{line}");
    }
    Ok(())
}
